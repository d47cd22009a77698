// The negacyclic NTT: a known-answer test at N = 16 (values from an
// independent evaluation with Python integers, and re-derived here by an
// O(N^2) evaluation at the odd powers of psi), the transform against that
// slow evaluation, inverse(forward(a)) = a, negacyclic products against the
// schoolbook product, and every instruction-set variant against the scalar
// code for every N = 2 .. 2^17.
#include "he/ntt.h"

#include <gtest/gtest.h>

#include <bit>
#include <random>
#include <vector>

#include "core/error.h"
#include "he/primes.h"

namespace blindfold::he {
namespace {

using Vec = std::vector<std::uint64_t>;

// a(psi^(2*brv(i)+1)) for every i: the definition of the forward transform,
// evaluated the slow way.
Vec slow_forward(const Vec& a, std::uint64_t psi, const Modulus& q) {
  const std::size_t n = a.size();
  const int log_n = std::countr_zero(n);
  Vec out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t x =
        pow_mod(psi, 2 * reverse_bits(static_cast<std::uint32_t>(i), log_n) + 1, q);
    std::uint64_t acc = 0;
    std::uint64_t power = 1;
    for (std::size_t j = 0; j < n; ++j) {
      acc = add_mod(acc, mul_mod(a[j], power, q), q);
      power = mul_mod(power, x, q);
    }
    out[i] = acc;
  }
  return out;
}

// Schoolbook product in Z_q[X]/(X^n + 1): X^n wraps to -1.
Vec schoolbook(const Vec& a, const Vec& b, const Modulus& q) {
  const std::size_t n = a.size();
  Vec out(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      const std::uint64_t p = mul_mod(a[i], b[j], q);
      const std::size_t k = i + j;
      out[k % n] = k < n ? add_mod(out[k], p, q) : sub_mod(out[k - n], p, q);
    }
  }
  return out;
}

Vec random_vec(std::size_t n, std::uint64_t bound, std::mt19937_64& rng) {
  Vec v(n);
  for (auto& x : v) x = rng() % bound;
  return v;
}

std::vector<Isa> usable_isas(const NttTables& t) {
  std::vector<Isa> v;
  for (Isa isa : {Isa::kScalar, Isa::kAvx512, Isa::kAvx512Ifma}) {
    if (ntt_isa_usable(isa, t)) v.push_back(isa);
  }
  return v;
}

// Moduli for degree n: the largest NTT prime below 2^61 (the widest Modulus),
// 60 bits (the benchmark size), 51 bits (just too wide for IFMA), 50 bits
// (the widest IFMA takes), 40 bits, and the smallest there is.
std::vector<Modulus> moduli_for(std::size_t n) {
  std::vector<Modulus> qs;
  // 61-bit: ntt_primes stops at 60 bits, so search by hand.
  for (std::uint64_t v = ((std::uint64_t{1} << 61) - 2) / (2 * n) * (2 * n) + 1;; v -= 2 * n) {
    if (is_prime(v)) {
      qs.emplace_back(v);
      break;
    }
  }
  for (int bits : {60, 51, 50, 40}) qs.emplace_back(ntt_primes(bits, 1, n)[0]);
  // The smallest bit size with a prime = 1 mod 2n.
  for (int bits = std::countr_zero(2 * n) + 2; bits <= 60; ++bits) {
    try {
      qs.emplace_back(ntt_primes(bits, 1, n)[0]);
      break;
    } catch (const Error&) {
    }
  }
  return qs;
}

TEST(NttTables, Validation) {
  const Modulus q(12289);
  for (std::size_t bad_n : {0, 1, 3, 12, 1 << 18}) {
    EXPECT_THROW(NttTables(bad_n, q), Error) << bad_n;
  }
  EXPECT_THROW(NttTables(8192, q), Error);                // 12289 != 1 mod 16384
  EXPECT_THROW(NttTables(16, Modulus(97 * 193)), Error);  // 1 mod 32, composite
  try {
    NttTables t(4096, q);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
  }
  const NttTables t(2048, q);  // 12288 = 3 * 2^12
  EXPECT_EQ(t.n(), 2048u);
  EXPECT_EQ(t.log_n(), 11);
}

TEST(NttTables, RootPowers) {
  for (std::size_t n : {2, 16, 4096}) {
    for (const Modulus& q : moduli_for(n)) {
      const NttTables t(n, q);
      EXPECT_TRUE(is_primitive_root(t.root(), 2 * n, q));
      EXPECT_EQ(t.root_powers()[0], 1u);
      // psi^brv(1) = psi^(n/2), a square root of -1.
      EXPECT_EQ(mul_mod(t.root_powers()[1], t.root_powers()[1], q), q.value() - 1);
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_EQ(t.root_powers()[i],
                  pow_mod(t.root(), reverse_bits(static_cast<std::uint32_t>(i), t.log_n()), q));
        ASSERT_EQ(mul_mod(t.root_powers()[i], t.inv_root_powers()[i], q), 1u);
        ASSERT_EQ(t.root_powers_shoup()[i], shoup(t.root_powers()[i], q));
        ASSERT_EQ(t.inv_root_powers_shoup()[i], shoup(t.inv_root_powers()[i], q));
      }
      EXPECT_EQ(mul_mod(t.inv_n(), n, q), 1u);
    }
  }
}

// Known answer: N = 16, q = 12289 (= 3 * 2^12 + 1), psi = 1212 (the least
// primitive 32nd root of unity mod 12289), input a_i = (7919 i^2 + 3 i + 1)
// mod q. Expected values from Python big integers (pow and sum), and
// from slow_forward below.
TEST(NttKat, N16Q12289) {
  const Modulus q(12289);
  const NttTables t(16, q);
  ASSERT_EQ(t.root(), 1212u);
  Vec a(16);
  for (std::uint64_t i = 0; i < 16; ++i) a[i] = (7919 * i * i + 3 * i + 1) % 12289;
  const Vec expected = {2862,  3147, 6263, 9643, 6911, 4530, 3849, 8694,
                        10273, 7736, 7816, 1623, 9754, 8192, 1336, 5699};
  EXPECT_EQ(slow_forward(a, t.root(), q), expected);
  for (Isa isa : usable_isas(t)) {
    Vec v = a;
    ntt_forward(v, t, NttOutput::kReduced, isa);
    EXPECT_EQ(v, expected) << isa_name(isa);
    ntt_inverse(v, t, NttOutput::kReduced, isa);
    EXPECT_EQ(v, a) << isa_name(isa);
  }
}

// The same at 60 bits: q = 2^60 - 1503, the largest 60-bit prime = 1 mod 32,
// psi = 3291845140097365.
TEST(NttKat, N16Q60Bits) {
  const Modulus q(1152921504606845473ULL);
  const NttTables t(16, q);
  ASSERT_EQ(t.root(), 3291845140097365ULL);
  Vec a(16);
  for (std::uint64_t i = 0; i < 16; ++i) a[i] = (7919 * i * i + 3 * i + 1) % q.value();
  const Vec expected = {
      155840641428950832ULL, 778401799489972753ULL, 661169925814109730ULL,  1079057961503174252ULL,
      983787011040617524ULL, 538844543386389880ULL, 520963213709104825ULL,  368659823539781877ULL,
      937730192618972944ULL, 47017021304090487ULL,  1061800246847129651ULL, 412049307936662805ULL,
      545183856386054956ULL, 987505117910573185ULL, 943389433594926188ULL,  354893444951097384ULL};
  EXPECT_EQ(slow_forward(a, t.root(), q), expected);
  for (Isa isa : usable_isas(t)) {
    Vec v = a;
    ntt_forward(v, t, NttOutput::kReduced, isa);
    EXPECT_EQ(v, expected) << isa_name(isa);
  }
}

TEST(Ntt, ForwardMatchesSlowEvaluation) {
  std::mt19937_64 rng(11);
  for (std::size_t n = 2; n <= 512; n *= 2) {
    for (const Modulus& q : moduli_for(n)) {
      const NttTables t(n, q);
      const Vec a = random_vec(n, q.value(), rng);
      const Vec expected = slow_forward(a, t.root(), q);
      for (Isa isa : usable_isas(t)) {
        Vec v = a;
        ntt_forward(v, t, NttOutput::kReduced, isa);
        ASSERT_EQ(v, expected) << "n=" << n << " q=" << q.value() << " " << isa_name(isa);
      }
    }
  }
}

// Every variant against scalar, every N, in both output modes, with inputs
// spanning the whole accepted range (forward: [0, 4q), inverse: [0, 2q)) and
// the edge vectors 0 and q - 1.
TEST(Ntt, VariantsAgreeAndRoundTripForEveryN) {
  std::mt19937_64 rng(12);
  for (int log_n = 1; log_n <= NttTables::kMaxLogN; ++log_n) {
    const std::size_t n = std::size_t{1} << log_n;
    for (const Modulus& q : moduli_for(n)) {
      const NttTables t(n, q);
      const std::uint64_t qv = q.value();
      std::vector<Vec> inputs = {random_vec(n, qv, rng), random_vec(n, 4 * qv, rng), Vec(n, 0),
                                 Vec(n, qv - 1), Vec(n, 4 * qv - 1)};
      for (const Vec& a : inputs) {
        Vec reduced = a;
        for (auto& x : reduced) x %= qv;
        Vec ref = a;
        ntt_forward(ref, t, NttOutput::kReduced, Isa::kScalar);
        for (Isa isa : usable_isas(t)) {
          Vec v = a;
          ntt_forward(v, t, NttOutput::kReduced, isa);
          ASSERT_EQ(v, ref) << "forward n=" << n << " q=" << qv << " " << isa_name(isa);
          Vec lazy = a;
          ntt_forward(lazy, t, NttOutput::kLazy, isa);
          for (std::size_t i = 0; i < n; ++i) {
            ASSERT_LT(lazy[i], 4 * qv);
            ASSERT_EQ(lazy[i] % qv, ref[i]) << "lazy forward " << isa_name(isa) << " i=" << i;
          }
          // Inverse from reduced and from lazy-in-[0, 2q) inputs.
          Vec back = v;
          ntt_inverse(back, t, NttOutput::kReduced, isa);
          ASSERT_EQ(back, reduced) << "round trip n=" << n << " q=" << qv << " " << isa_name(isa);
          Vec shifted = ref;
          for (std::size_t i = 0; i < n; i += 3) shifted[i] += qv;  // still < 2q
          ntt_inverse(shifted, t, NttOutput::kLazy, isa);
          for (std::size_t i = 0; i < n; ++i) {
            ASSERT_LT(shifted[i], 2 * qv);
            ASSERT_EQ(shifted[i] % qv, reduced[i]) << "lazy inverse " << isa_name(isa);
          }
        }
      }
    }
  }
}

TEST(Ntt, DefaultDispatchUsesBestVariant) {
  std::mt19937_64 rng(13);
  for (int bits : {60, 40}) {
    const Modulus q(ntt_primes(bits, 1, 8192)[0]);
    const NttTables t(8192, q);
    const Isa best = ntt_best_isa(t);
    if (bits == 60) {
      EXPECT_NE(best, Isa::kAvx512Ifma);
    }
    if (isa_supported(Isa::kAvx512Ifma) && bits == 40) {
      EXPECT_EQ(best, Isa::kAvx512Ifma);
    }
    const Vec a = random_vec(8192, q.value(), rng);
    Vec x = a, y = a;
    ntt_forward(x, t);
    ntt_forward(y, t, NttOutput::kReduced, Isa::kScalar);
    EXPECT_EQ(x, y);
    ntt_inverse(x, t);
    EXPECT_EQ(x, a);
  }
}

TEST(Ntt, NegacyclicProductMatchesSchoolbook) {
  std::mt19937_64 rng(14);
  for (std::size_t n : {2, 4, 8, 16, 32, 64, 256, 1024, 2048}) {
    std::vector<Modulus> qs = moduli_for(n);
    if (n <= 2048) qs.emplace_back(12289);  // 12288 = 3 * 2^12
    for (const Modulus& q : qs) {
      const NttTables t(n, q);
      const Vec a = random_vec(n, q.value(), rng);
      const Vec b = random_vec(n, q.value(), rng);
      Vec c(n);
      negacyclic_multiply(a, b, t, c);
      ASSERT_EQ(c, schoolbook(a, b, q)) << "n=" << n << " q=" << q.value();
      // X * X^(n-1) = X^n = -1.
      Vec x(n, 0), y(n, 0);
      x[1 % n] = 1;
      y[n - 1] = 1;
      if (n > 1) {
        negacyclic_multiply(x, y, t, c);
        Vec minus_one(n, 0);
        minus_one[0] = q.value() - 1;
        ASSERT_EQ(c, minus_one);
      }
    }
  }
}

TEST(Ntt, SizeAndVariantChecks) {
  const Modulus q60(ntt_primes(60, 1, 1024)[0]);
  const NttTables t(1024, q60);
  Vec wrong(512);
  EXPECT_THROW(ntt_forward(wrong, t), Error);
  EXPECT_THROW(ntt_inverse(wrong, t), Error);
  Vec v(1024, 1);
  EXPECT_FALSE(ntt_isa_usable(Isa::kAvx512Ifma, t));  // 60-bit q is too wide for IFMA52
  try {
    ntt_forward(v, t, NttOutput::kReduced, Isa::kAvx512Ifma);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUnsupported);
  }
  EXPECT_EQ(reverse_bits(1, 4), 8u);
  EXPECT_EQ(reverse_bits(6, 3), 3u);
  EXPECT_EQ(reverse_bits(0xF0000000u, 32), 0xFu);
  EXPECT_EQ(reverse_bits(5, 0), 0u);
}

}  // namespace
}  // namespace blindfold::he
