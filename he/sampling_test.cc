// he/sampling: expand_uniform's output is exactly the word-by-word rejection
// over Prg(seed, stream) (it generates the AES-CTR key stream in large chunks
// itself), for several prime sizes and lengths; the signed-residue
// conversions against a plain reference; the fresh error's distribution
// (centred binomial, variance 10.5) from sample_cbd; secure_wipe zeroes.
#include "he/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "he/primes.h"

namespace blindfold::he {
namespace {

std::vector<std::uint64_t> reference_expand(const Seed& seed, std::uint64_t stream,
                                            const Modulus& q, std::size_t n) {
  Prg prg(seed, stream);
  const std::uint64_t mask = (std::uint64_t{1} << q.bits()) - 1;
  std::vector<std::uint64_t> out;
  while (out.size() < n) {
    const std::uint64_t v = prg.next_u64() & mask;
    if (v < q.value()) out.push_back(v);
  }
  return out;
}

TEST(Sampling, ExpandUniformIsTheWordByWordRejection) {
  Seed seed{};
  for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<std::uint8_t>(7 * i + 1);
  // 31 bits just above a power of two: about half the words are rejected.
  const std::vector<Modulus> moduli = {Modulus(ntt_primes(48, 1, 16384)[0]),
                                       Modulus(ntt_primes(60, 1, 16384)[0]),
                                       Modulus((std::uint64_t{1} << 30) + 3)};
  for (const Modulus& q : moduli) {
    for (const std::size_t n : {1u, 7u, 2048u, 16384u, 40000u}) {
      const auto want = reference_expand(seed, 5, q, n);
      std::vector<std::uint64_t> got(n);
      expand_uniform(seed, 5, q, got);
      EXPECT_EQ(got, want) << q.value() << " n " << n;
      // Each variant: OpenSSL, and VAES where this CPU has it.
      for (const Isa isa : {Isa::kScalar, Isa::kAvx512}) {
        std::vector<std::uint64_t> pinned(n);
        try {
          expand_uniform(seed, 5, q, pinned, isa);
        } catch (const Error& e) {
          ASSERT_EQ(e.category(), ErrorCategory::kUnsupported);
          continue;
        }
        EXPECT_EQ(pinned, want) << isa_name(isa) << " " << q.value() << " n " << n;
      }
    }
  }
}

TEST(Sampling, SignedResidues) {
  const Modulus q(ntt_primes(48, 1, 16384)[0]);
  const std::int64_t m = static_cast<std::int64_t>(q.value());
  std::vector<std::int64_t> v = {0,
                                 1,
                                 -1,
                                 m - 1,
                                 -(m - 1),
                                 m,
                                 -m,
                                 m + 5,
                                 -m - 5,
                                 3 * m,
                                 std::numeric_limits<std::int64_t>::max(),
                                 std::numeric_limits<std::int64_t>::min() + 1};
  std::vector<std::uint64_t> out(v.size());
  signed_to_residues(v, q, out);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::int64_t r = v[i] % m;
    EXPECT_EQ(out[i], static_cast<std::uint64_t>(r < 0 ? r + m : r)) << v[i];
  }
  std::vector<std::int64_t> small = {0, 1, -1, m - 1, -(m - 1), 21, -21};
  std::vector<std::uint64_t> out2(small.size());
  small_signed_to_residues(small, q, out2);
  for (std::size_t i = 0; i < small.size(); ++i) {
    EXPECT_EQ(out2[i], static_cast<std::uint64_t>(small[i] < 0 ? small[i] + m : small[i]));
  }
}

TEST(Sampling, CenteredBinomialError) {
  Prg prg(Seed{});
  std::vector<std::int8_t> e(1 << 18);
  sample_cbd(prg, e);
  double sum = 0, sq = 0;
  for (const std::int8_t x : e) {
    ASSERT_LE(std::abs(x), kCbdK);
    sum += x;
    sq += static_cast<double>(x) * x;
  }
  const double mean = sum / static_cast<double>(e.size());
  const double var = sq / static_cast<double>(e.size()) - mean * mean;
  EXPECT_LT(std::fabs(mean), 0.03);
  EXPECT_NEAR(var, kCbdK / 2.0, 0.15);
}

TEST(Sampling, SecureWipeZeroes) {
  std::vector<std::uint64_t> v(1000, 0xdeadbeef);
  secure_wipe(std::span<std::uint64_t>(v));
  for (const auto x : v) EXPECT_EQ(x, 0u);
}

}  // namespace
}  // namespace blindfold::he
