// The HE Standard table and the checks built on it.
#include "he/security.h"

#include <gtest/gtest.h>

#include "he/primes.h"
#include "he/rns.h"

namespace blindfold::he {
namespace {

// The table is usable at compile time (a context can static_assert on it).
static_assert(max_log_qp(8192, SecurityLevel::k128) == 218);
static_assert(max_log_qp(32768, SecurityLevel::k256) == 476);
static_assert(max_log_qp(1000, SecurityLevel::k128) == 0);
static_assert(check_security(16384, 438, SecurityLevel::k128) == SecurityCheck::kOk);
static_assert(check_security(16384, 439, SecurityLevel::k128) == SecurityCheck::kModulusTooLarge);

TEST(Security, StandardTableValues) {
  // HomomorphicEncryption.org standard v1.1, Table 1, ternary secret,
  // classical: {N, 128, 192, 256}.
  const int expected[6][4] = {{1024, 27, 19, 14},     {2048, 54, 37, 29},
                              {4096, 109, 75, 58},    {8192, 218, 152, 118},
                              {16384, 438, 305, 237}, {32768, 881, 611, 476}};
  for (const auto& row : expected) {
    const auto n = static_cast<std::size_t>(row[0]);
    EXPECT_EQ(max_log_qp(n, SecurityLevel::k128), row[1]) << n;
    EXPECT_EQ(max_log_qp(n, SecurityLevel::k192), row[2]) << n;
    EXPECT_EQ(max_log_qp(n, SecurityLevel::k256), row[3]) << n;
    EXPECT_TRUE(in_he_standard(n));
  }
  // The extension row is labelled as such.
  ASSERT_GE(security_row(65536), 0);
  EXPECT_FALSE(in_he_standard(65536));
  EXPECT_FALSE(in_he_standard(1000));
  EXPECT_EQ(security_row(1000), -1);
  EXPECT_EQ(max_log_qp(65536, SecurityLevel::k128), 1772);
  // Monotone: more degree allows more modulus (about twice as much per
  // doubling), more security less.
  for (std::size_t i = 1; i < kHeStandardTernary.size(); ++i) {
    for (int l = 0; l < 3; ++l) {
      const int prev = kHeStandardTernary[i - 1].max_log_qp[l];
      const int cur = kHeStandardTernary[i].max_log_qp[l];
      EXPECT_GE(cur * 10, prev * 19) << kHeStandardTernary[i].n;
      EXPECT_LE(cur * 10, prev * 21) << kHeStandardTernary[i].n;
    }
  }
  for (const auto& b : kHeStandardTernary) {
    EXPECT_GT(b.max_log_qp[0], b.max_log_qp[1]);
    EXPECT_GT(b.max_log_qp[1], b.max_log_qp[2]);
  }
}

TEST(Security, Checks) {
  using L = SecurityLevel;
  EXPECT_EQ(check_security(8192, 218, L::k128), SecurityCheck::kOk);
  EXPECT_EQ(check_security(8192, 219, L::k128), SecurityCheck::kModulusTooLarge);
  EXPECT_EQ(check_security(8192, 200, L::k192), SecurityCheck::kModulusTooLarge);
  EXPECT_EQ(check_security(8192, 118, L::k256), SecurityCheck::kOk);
  EXPECT_EQ(check_security(512, 10, L::k128), SecurityCheck::kDegreeTooSmall);
  EXPECT_EQ(check_security(131072, 100, L::k128), SecurityCheck::kDegreeTooLarge);
  EXPECT_EQ(check_security(3000, 50, L::k128), SecurityCheck::kDegreeNotPowerOfTwo);
  EXPECT_EQ(check_security(0, 50, L::k128), SecurityCheck::kDegreeNotPowerOfTwo);
  EXPECT_EQ(check_security(4096, 0, L::k128), SecurityCheck::kNoModulus);
  EXPECT_EQ(check_security(65536, 1772, L::k128), SecurityCheck::kOk);
  for (SecurityCheck c : {SecurityCheck::kOk, SecurityCheck::kDegreeNotPowerOfTwo,
                          SecurityCheck::kDegreeTooSmall, SecurityCheck::kDegreeTooLarge,
                          SecurityCheck::kNoModulus, SecurityCheck::kModulusTooLarge}) {
    EXPECT_FALSE(describe(c).empty());
  }
}

// The benchmark chains are secure at 128 bits, measured as the bit
// length of the actual product of their primes.
TEST(Security, BenchmarkChainsAre128BitSecure) {
  const std::vector<int> small = {60, 40, 40, 60};
  const std::vector<int> large = {60, 40, 40, 40, 40, 40, 40, 60};
  const RnsBase q8192(ntt_prime_chain(8192, small));
  const RnsBase q16384(ntt_prime_chain(16384, large));
  EXPECT_LE(q8192.product_bits(), 200);
  EXPECT_GE(q8192.product_bits(), 197);
  EXPECT_EQ(check_security(8192, q8192.product_bits(), SecurityLevel::k128), SecurityCheck::kOk);
  EXPECT_EQ(check_security(16384, q16384.product_bits(), SecurityLevel::k128), SecurityCheck::kOk);
  EXPECT_EQ(check_security(4096, q8192.product_bits(), SecurityLevel::k128),
            SecurityCheck::kModulusTooLarge);
}

}  // namespace
}  // namespace blindfold::he
