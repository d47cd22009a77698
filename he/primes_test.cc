// Primality against a sieve and against GMP, known strong pseudoprimes,
// deterministic NTT prime generation (largest first, none skipped), and the
// minimal primitive root against brute force.
#include "he/primes.h"

#include <gmp.h>
#include <gtest/gtest.h>

#include <bit>
#include <random>
#include <set>
#include <vector>

#include "core/error.h"

namespace blindfold::he {
namespace {

bool gmp_is_prime(std::uint64_t n) {
  mpz_t z;
  mpz_init(z);
  mpz_import(z, 1, -1, sizeof n, 0, 0, &n);
  // GMP runs Baillie-PSW first, which has no known pseudoprime below 2^64,
  // then Miller-Rabin rounds: an independent check.
  const int r = mpz_probab_prime_p(z, 30);
  mpz_clear(z);
  return r != 0;
}

TEST(IsPrime, MatchesSieve) {
  constexpr std::uint64_t kLimit = 200000;
  std::vector<bool> composite(kLimit, false);
  composite[0] = composite[1] = true;
  for (std::uint64_t i = 2; i * i < kLimit; ++i) {
    if (!composite[i]) {
      for (std::uint64_t j = i * i; j < kLimit; j += i) composite[j] = true;
    }
  }
  for (std::uint64_t n = 0; n < kLimit; ++n) ASSERT_EQ(is_prime(n), !composite[n]) << n;
}

TEST(IsPrime, HardCases) {
  // Primes.
  const std::uint64_t primes[] = {2305843009213693951ULL,   // 2^61 - 1
                                  18446744073709551557ULL,  // 2^64 - 59, the largest
                                  4294967291ULL, 1152921504606830593ULL};
  for (std::uint64_t p : primes) EXPECT_TRUE(is_prime(p)) << p;
  // Composites: Carmichael numbers, the least strong pseudoprimes to the
  // first 4, 5, 6, 7 and 9 prime bases (the last passes bases 2 .. 23, so
  // 29, 31 and 37 are needed), a prime square, a product of two large
  // primes, and 2^64 - 1.
  const std::uint64_t composites[] = {561,
                                      41041,
                                      825265,
                                      3215031751ULL,           // spsp(2, 3, 5, 7)
                                      2152302898747ULL,        // spsp(2, ..., 11)
                                      3474749660383ULL,        // spsp(2, ..., 13)
                                      341550071728321ULL,      // spsp(2, ..., 17)
                                      3825123056546413051ULL,  // spsp(2, ..., 23)
                                      4294967291ULL * 4294967279ULL,
                                      4294967291ULL * 4294967291ULL,
                                      18446744073709551615ULL};
  for (std::uint64_t c : composites) EXPECT_FALSE(is_prime(c)) << c;
}

TEST(IsPrime, MatchesGmpOnRandomAndNttCandidates) {
  std::mt19937_64 rng(21);
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t n = rng() | 1;
    ASSERT_EQ(is_prime(n), gmp_is_prime(n)) << n;
  }
  // Numbers of the NTT form k * 2^14 + 1 near 2^60, where primes are dense.
  for (std::uint64_t v = ((std::uint64_t{1} << 60) - 2) / 16384 * 16384 + 1, i = 0; i < 5000;
       ++i, v -= 16384) {
    ASSERT_EQ(is_prime(v), gmp_is_prime(v)) << v;
  }
}

TEST(NttPrimes, LargestFirstNoneSkipped) {
  for (std::size_t n : {1024, 4096, 8192, 16384, 32768, 65536, 131072}) {
    for (int bits : {60, 50, 40, 30}) {
      const auto primes = ntt_primes(bits, 5, n);
      ASSERT_EQ(primes.size(), 5u);
      const std::uint64_t step = 2 * n;
      std::uint64_t expect_next = ((std::uint64_t{1} << bits) - 2) / step * step + 1;
      for (std::uint64_t p : primes) {
        EXPECT_EQ(p % step, 1u);
        EXPECT_EQ(std::bit_width(p), bits);
        EXPECT_TRUE(gmp_is_prime(p));
        // Every candidate above p (down from the top) is composite.
        for (std::uint64_t v = expect_next; v > p; v -= step) EXPECT_FALSE(gmp_is_prime(v)) << v;
        expect_next = p - step;
      }
    }
  }
  // Values pinned (also computed with Python integers): the 60-bit primes
  // for N = 8192 and N = 16384, the benchmark chains' outer primes.
  EXPECT_EQ(ntt_primes(60, 3, 8192),
            (std::vector<std::uint64_t>{1152921504606830593ULL, 1152921504606748673ULL,
                                        1152921504606683137ULL}));
  EXPECT_EQ(ntt_primes(60, 3, 16384),
            (std::vector<std::uint64_t>{1152921504606748673ULL, 1152921504606683137ULL,
                                        1152921504606584833ULL}));
  EXPECT_EQ(ntt_primes(14, 1, 2048), (std::vector<std::uint64_t>{12289}));
  EXPECT_TRUE(ntt_primes(40, 0, 8192).empty());
}

TEST(NttPrimes, ImpossibleRequestsThrow) {
  auto expect_bad = [](auto f) {
    try {
      f();
      FAIL();
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
    }
  };
  expect_bad([] { ntt_primes(1, 1, 8); });
  expect_bad([] { ntt_primes(61, 1, 8); });
  expect_bad([] { ntt_primes(40, 1, 1000); });  // n not a power of two
  expect_bad([] { ntt_primes(40, 1, 0); });
  expect_bad([] { ntt_primes(10, 1, 1024); });       // 2n > 2^10: no candidate
  expect_bad([] { ntt_primes(14, 2, 2048); });       // only 12289 exists
  expect_bad([] { ntt_primes(20, 100000, 4096); });  // far more than exist
}

TEST(NttPrimes, Chain) {
  const std::vector<int> sizes = {60, 40, 40, 40, 60};
  const auto chain = ntt_prime_chain(16384, sizes);
  ASSERT_EQ(chain.size(), 5u);
  std::set<std::uint64_t> distinct;
  for (std::size_t i = 0; i < chain.size(); ++i) {
    EXPECT_EQ(chain[i].bits(), sizes[i]);
    EXPECT_EQ(chain[i].value() % 32768, 1u);
    distinct.insert(chain[i].value());
  }
  EXPECT_EQ(distinct.size(), 5u);
  const auto p60 = ntt_primes(60, 2, 16384);
  const auto p40 = ntt_primes(40, 3, 16384);
  EXPECT_EQ(chain[0].value(), p60[0]);
  EXPECT_EQ(chain[4].value(), p60[1]);
  EXPECT_EQ(chain[1].value(), p40[0]);
  EXPECT_EQ(chain[3].value(), p40[2]);
}

TEST(PrimitiveRoot, MinimalAgainstBruteForce) {
  for (auto [degree, q] : {std::pair<std::uint64_t, std::uint64_t>{32, 12289},
                           {2, 12289},
                           {4096, 12289},
                           {8192, 40961},
                           {2, 3},
                           {16, 97},
                           {64, 7681}}) {
    const Modulus m(q);
    const std::uint64_t root = minimal_primitive_root(degree, m);
    EXPECT_TRUE(is_primitive_root(root, degree, m)) << degree << " " << q;
    for (std::uint64_t x = 1; x < root; ++x) {
      ASSERT_FALSE(is_primitive_root(x, degree, m)) << x << " " << degree << " " << q;
    }
  }
  EXPECT_EQ(minimal_primitive_root(32, Modulus(12289)), 1212u);
  EXPECT_EQ(minimal_primitive_root(2, Modulus(12289)), 12288u);  // -1
}

TEST(PrimitiveRoot, LargeAndInvalid) {
  for (std::size_t n : {4096, 131072}) {
    const Modulus q(ntt_primes(60, 1, n)[0]);
    const std::uint64_t root = minimal_primitive_root(2 * n, q);
    EXPECT_TRUE(is_primitive_root(root, 2 * n, q));
    EXPECT_EQ(pow_mod(root, 2 * n, q), 1u);
    EXPECT_EQ(pow_mod(root, n, q), q.value() - 1);
  }
  EXPECT_THROW(minimal_primitive_root(64, Modulus(193 * 257)), Error);  // composite, 1 mod 64
  EXPECT_THROW(minimal_primitive_root(3, Modulus(12289)), Error);       // not a power of 2
  EXPECT_THROW(minimal_primitive_root(16384, Modulus(12289)), Error);   // does not divide q-1
  EXPECT_FALSE(is_primitive_root(1, 2, Modulus(12289)));
  EXPECT_FALSE(is_primitive_root(12289, 2, Modulus(12289)));
}

}  // namespace
}  // namespace blindfold::he
