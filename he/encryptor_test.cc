// Encryption and decryption: encrypt -> decrypt -> decode at both benchmark
// parameter sets and every level, public-key and symmetric, within the stated
// bound for fresh ciphertexts (max slot error <= 2^-20 at scale 2^40; the
// measured error is near 2^-26), the seeded symmetric ciphertext (c1 is the
// seed's expansion), determinism only through the test seed, and refusal of
// objects of another context.
#include "he/encryptor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "he/encoder.h"
#include "he/sampling.h"

namespace blindfold::he {
namespace {

using cd = std::complex<double>;

Seed test_seed(std::uint8_t v) {
  Seed s{};
  s.fill(v);
  return s;
}

std::vector<cd> random_slots(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<cd> v(count);
  for (auto& x : v) x = cd(d(rng), d(rng));
  return v;
}

double max_error(const std::vector<cd>& a, const std::vector<cd>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

constexpr double kFreshBound = 1.0 / (1 << 20);  // 2^-20 at scale 2^40

class EncryptTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    ctx_ = CkksContext::create(GetParam() == 8192 ? CkksParameters::n8192_default()
                                                  : CkksParameters::n16384_default());
  }
  std::shared_ptr<const CkksContext> ctx_;
};

TEST_P(EncryptTest, PublicKeyRoundTripAtEveryLevel) {
  KeyGenerator gen(ctx_);
  const PublicKey pk = gen.create_public_key();
  Encryptor enc(ctx_, pk);
  Decryptor dec(ctx_, gen.secret_key());
  const CkksEncoder encoder(ctx_);
  const auto z = random_slots(encoder.slots(), 11);
  for (int level = 0; level <= ctx_->max_level(); ++level) {
    const Ciphertext ct = enc.encrypt(encoder.encode(z, std::exp2(40), level));
    EXPECT_EQ(ct.level(), level);
    EXPECT_EQ(ct.size(), 2u);
    EXPECT_FALSE(ct.seed().has_value());
    const double err = max_error(encoder.decode(dec.decrypt(ct)), z);
    EXPECT_LT(err, kFreshBound) << "level " << level;
    if (level == ctx_->max_level()) {
      std::printf("N=%zu public-key fresh max error 2^%.1f\n", ctx_->n(), std::log2(err));
    }
  }
}

TEST_P(EncryptTest, SymmetricRoundTripIsSeeded) {
  KeyGenerator gen(ctx_);
  Encryptor enc(ctx_, gen.secret_key());
  Decryptor dec(ctx_, gen.secret_key());
  const CkksEncoder encoder(ctx_);
  const auto z = random_slots(encoder.slots(), 12);
  for (int level = 0; level <= ctx_->max_level(); ++level) {
    const Ciphertext ct = enc.encrypt(encoder.encode(z, std::exp2(40), level));
    ASSERT_TRUE(ct.seed().has_value());
    for (std::size_t i = 0; i < ct.primes(); ++i) {
      std::vector<std::uint64_t> a(ctx_->n());
      expand_uniform(*ct.seed(), kCiphertextStream + i, ctx_->modulus(i), a);
      EXPECT_TRUE(std::equal(a.begin(), a.end(), ct.row(1, i).begin())) << "prime " << i;
    }
    EXPECT_LT(max_error(encoder.decode(dec.decrypt(ct)), z), kFreshBound) << "level " << level;
  }
}

INSTANTIATE_TEST_SUITE_P(Sets, EncryptTest, ::testing::Values(8192, 16384), [](const auto& info) {
  return std::string("N").append(std::to_string(info.param));
});

TEST(Encrypt, DeterministicOnlyThroughTheTestSeed) {
  const auto ctx = CkksContext::create(CkksParameters::n8192_default());
  KeyGenerator gen(ctx, test_seed(1));
  const PublicKey pk = gen.create_public_key();
  const CkksEncoder encoder(ctx);
  const std::vector<double> v = {1, 2, 3};
  const Plaintext p = encoder.encode(v, std::exp2(40));
  Encryptor e1(ctx, pk, test_seed(2)), e2(ctx, pk, test_seed(2)), e3(ctx, pk);
  const Ciphertext c1 = e1.encrypt(p), c2 = e2.encrypt(p), c3 = e3.encrypt(p);
  EXPECT_TRUE(std::equal(c1.data().begin(), c1.data().end(), c2.data().begin()));
  EXPECT_FALSE(std::equal(c1.data().begin(), c1.data().end(), c3.data().begin()));
  // Two encryptions by one encryptor differ.
  const Ciphertext c4 = e1.encrypt(p);
  EXPECT_FALSE(std::equal(c1.data().begin(), c1.data().end(), c4.data().begin()));
}

TEST(Encrypt, ZeroAndDroppedLevels) {
  const auto ctx = CkksContext::create(CkksParameters::n8192_default());
  KeyGenerator gen(ctx);
  Encryptor enc(ctx, gen.secret_key());
  Decryptor dec(ctx, gen.secret_key());
  const CkksEncoder encoder(ctx);
  const auto zero = encoder.decode(dec.decrypt(enc.encrypt_zero(1, std::exp2(40))));
  for (const cd& x : zero) ASSERT_LT(std::abs(x), kFreshBound);
  // Dropping primes keeps the message, and a symmetric ciphertext its seed.
  const auto z = random_slots(encoder.slots(), 13);
  Ciphertext ct = enc.encrypt(encoder.encode(z, std::exp2(40)));
  ct.drop_to_level(0);
  EXPECT_EQ(ct.level(), 0);
  EXPECT_TRUE(ct.seed().has_value());
  EXPECT_LT(max_error(encoder.decode(dec.decrypt(ct)), z), kFreshBound);
  EXPECT_THROW(ct.drop_to_level(1), Error);
}

TEST(Encrypt, RefusesObjectsOfAnotherContext) {
  const auto ctx = CkksContext::create(CkksParameters::n8192_default());
  auto p = CkksParameters::n8192_default();
  p.chain_bits = {60, 40};
  const auto other = CkksContext::create(p);
  KeyGenerator gen(ctx), gen2(other);
  EXPECT_THROW(Encryptor(ctx, gen2.create_public_key()), Error);
  EXPECT_THROW(Decryptor(ctx, gen2.secret_key()), Error);
  Encryptor enc(ctx, gen.secret_key());
  const std::vector<double> v = {1};
  const Plaintext foreign = CkksEncoder(other).encode(v, std::exp2(40));
  try {
    enc.encrypt(foreign);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
  }
  Decryptor dec2(other, gen2.secret_key());
  const Ciphertext ct = enc.encrypt(CkksEncoder(ctx).encode(v, std::exp2(40)));
  EXPECT_THROW(dec2.decrypt(ct), Error);
}

}  // namespace
}  // namespace blindfold::he
