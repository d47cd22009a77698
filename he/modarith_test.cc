// Modular arithmetic against unsigned __int128 remainders, for moduli of every
// bit length 2..61 (powers of two, 2^k +- 1, random), edge values (0, 1,
// q - 1) and the widest inputs each contract allows; vector kernels in every
// instruction-set variant against the scalar ones.
#include "he/modarith.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/error.h"

namespace blindfold::he {
namespace {

std::uint64_t ref_mod(u128 x, std::uint64_t q) {
  return static_cast<std::uint64_t>(x % q);
}

// Moduli of every bit length, with the awkward ones at each length.
std::vector<std::uint64_t> test_moduli() {
  std::vector<std::uint64_t> qs = {2, 3, 5, 7, 12289, 786433};
  std::mt19937_64 rng(7);
  for (int bits = 2; bits <= 61; ++bits) {
    const std::uint64_t lo = std::uint64_t{1} << (bits - 1);
    qs.push_back(lo);                       // power of two
    qs.push_back((lo << 1) - 1);            // 2^bits - 1
    if (bits >= 3) qs.push_back(lo + 1);    // 2^(bits-1) + 1
    qs.push_back(lo + (rng() & (lo - 1)));  // random of this length
  }
  return qs;
}

std::vector<std::uint64_t> samples(std::uint64_t q, std::mt19937_64& rng, int random_count) {
  std::vector<std::uint64_t> v = {0, 1, q - 1, q / 2, q - 2 < q ? q - 2 : 0};
  for (int i = 0; i < random_count; ++i) v.push_back(rng() % q);
  return v;
}

TEST(Modulus, RejectsOutOfRange) {
  for (std::uint64_t bad :
       {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{1} << 61, ~std::uint64_t{0}}) {
    try {
      Modulus m(bad);
      FAIL() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
    }
  }
  EXPECT_EQ(Modulus(2).bits(), 2);
  EXPECT_EQ(Modulus(3).bits(), 2);
  EXPECT_EQ(Modulus(4).bits(), 3);
  EXPECT_EQ(Modulus((std::uint64_t{1} << 61) - 1).bits(), 61);
}

TEST(Modulus, BarrettRatios) {
  for (std::uint64_t q : test_moduli()) {
    const Modulus m(q);
    // floor(2^128/q) = hi * 2^64 + lo with hi = floor(2^64/q) and
    // lo = floor((2^64 mod q) * 2^64 / q).
    const u128 two64 = u128{1} << 64;
    const auto hi = static_cast<std::uint64_t>(two64 / q);
    const auto rem = static_cast<std::uint64_t>(two64 % q);
    const auto lo = static_cast<std::uint64_t>((u128{rem} << 64) / q);
    EXPECT_EQ(m.barrett_ratio()[1], hi) << q;
    EXPECT_EQ(m.barrett_ratio()[0], lo) << q;
    EXPECT_EQ(m.mul_ratio(), static_cast<std::uint64_t>((u128{1} << (m.bits() + 62)) / q)) << q;
    EXPECT_LE(m.mul_ratio(), std::uint64_t{1} << 63);
  }
}

TEST(ModArith, ScalarOpsMatchReference) {
  std::mt19937_64 rng(1);
  for (std::uint64_t q : test_moduli()) {
    const Modulus m(q);
    const auto v = samples(q, rng, 40);
    for (std::uint64_t a : v) {
      EXPECT_EQ(negate_mod(a, m), ref_mod(q - a, q)) << q << " " << a;
      for (std::uint64_t b : v) {
        ASSERT_EQ(add_mod(a, b, m), ref_mod(u128{a} + b, q)) << q << " " << a << " " << b;
        ASSERT_EQ(sub_mod(a, b, m), ref_mod(u128{a} + q - b, q)) << q << " " << a << " " << b;
        ASSERT_EQ(mul_mod(a, b, m), ref_mod(u128{a} * b, q)) << q << " " << a << " " << b;
        const std::uint64_t ws = shoup(b, m);
        ASSERT_EQ(ws, static_cast<std::uint64_t>((u128{b} << 64) / q));
        ASSERT_EQ(mul_mod_shoup(a, b, ws, m), ref_mod(u128{a} * b, q));
      }
    }
  }
}

TEST(ModArith, WidestInputs) {
  std::mt19937_64 rng(2);
  const std::uint64_t max64 = ~std::uint64_t{0};
  const std::uint64_t max61 = (std::uint64_t{1} << 61) - 1;
  for (std::uint64_t q : test_moduli()) {
    const Modulus m(q);
    std::vector<std::uint64_t> xs = {0, 1, max64, max64 - 1, max61, q, 2 * q, 4 * q - 1};
    for (int i = 0; i < 30; ++i) xs.push_back(rng());
    for (std::uint64_t x : xs) {
      EXPECT_EQ(barrett_reduce_64(x, m), x % q) << q << " " << x;
      for (std::uint64_t w : samples(q, rng, 5)) {
        // Shoup accepts any 64-bit x; lazy results stay below 2q.
        const std::uint64_t ws = shoup(w, m);
        const std::uint64_t lazy = mul_mod_shoup_lazy(x, w, ws, m);
        EXPECT_LT(lazy, 2 * q);
        EXPECT_EQ(lazy % q, ref_mod(u128{x} * w, q)) << q << " " << x << " " << w;
        // mul_mod accepts a < 2^61 with b < q.
        const std::uint64_t a = x & max61;
        EXPECT_EQ(mul_mod(a, w, m), ref_mod(u128{a} * w, q)) << q << " " << a << " " << w;
      }
    }
    // Any 128-bit input, including the largest.
    std::vector<u128> wide = {0, ~u128{0}, (~u128{0}) - 1, u128{q} * q - 1, u128{q - 1} * (q - 1)};
    for (int i = 0; i < 50; ++i) wide.push_back((u128{rng()} << 64) | rng());
    for (u128 x : wide) EXPECT_EQ(barrett_reduce_128(x, m), ref_mod(x, q)) << q;
  }
}

TEST(ModArith, PowAndInverse) {
  const Modulus p((std::uint64_t{1} << 61) - 1);  // a Mersenne prime
  EXPECT_EQ(pow_mod(0, 0, p), 1u);
  EXPECT_EQ(pow_mod(0, 5, p), 0u);
  EXPECT_EQ(pow_mod(3, 0, p), 1u);
  EXPECT_EQ(pow_mod(2, 61, p), 1u);  // 2^61 = 1 mod 2^61 - 1
  EXPECT_EQ(pow_mod(2, 10, Modulus(1000)), 24u);
  EXPECT_EQ(pow_mod(5, 3, Modulus(2)), 1u);
  EXPECT_EQ(pow_mod(~std::uint64_t{0}, 2, Modulus(7)),
            ref_mod(u128{~std::uint64_t{0} % 7} * (~std::uint64_t{0} % 7), 7));
  std::mt19937_64 rng(3);
  for (std::uint64_t q : {std::uint64_t{3}, std::uint64_t{12289},
                          std::uint64_t{1152921504606830593}, (std::uint64_t{1} << 61) - 1}) {
    const Modulus m(q);
    for (int i = 0; i < 200; ++i) {
      const std::uint64_t a = 1 + rng() % (q - 1);
      EXPECT_EQ(pow_mod(a, q - 1, m), 1u);  // Fermat
      const std::uint64_t inv = inv_mod(a, m);
      EXPECT_LT(inv, q);
      EXPECT_EQ(mul_mod(a, inv, m), 1u) << q << " " << a;
    }
    EXPECT_EQ(inv_mod(q - 1, m), q - 1);
    EXPECT_EQ(inv_mod(q + 1, m), 1u);  // reduced first
  }
  // Not invertible: zero, and a shared factor with a composite modulus.
  for (auto [a, q] : {std::pair<std::uint64_t, std::uint64_t>{0, 12289},
                      {12289, 12289},
                      {6, 1000},
                      {5, 10},
                      {0, 2}}) {
    try {
      inv_mod(a, Modulus(q));
      FAIL() << a << " mod " << q;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
    }
  }
  EXPECT_EQ(inv_mod(7, Modulus(1000)), 143u);  // 7 * 143 = 1001
}

std::vector<Isa> vector_isas() {
  std::vector<Isa> v = {Isa::kScalar};
  if (isa_supported(Isa::kAvx512)) v.push_back(Isa::kAvx512);
  if (isa_supported(Isa::kAvx512Ifma)) v.push_back(Isa::kAvx512Ifma);
  return v;
}

TEST(ModArithVector, EveryVariantMatchesScalar) {
  if (!isa_supported(Isa::kAvx512)) {
    GTEST_LOG_(INFO) << "no AVX-512 here: only the scalar kernels run";
  }
  std::mt19937_64 rng(4);
  for (std::uint64_t q : test_moduli()) {
    const Modulus m(q);
    for (std::size_t len : {0, 1, 7, 8, 9, 15, 16, 17, 64, 1001}) {
      std::vector<std::uint64_t> a(len), b(len);
      for (std::size_t i = 0; i < len; ++i) {
        a[i] = rng() % q;
        b[i] = rng() % q;
      }
      // Edge values in the first lanes (and in the tail lanes for len > 8).
      if (len >= 4) {
        a[0] = 0, b[0] = q - 1;
        a[1] = q - 1, b[1] = q - 1;
        a[2] = q - 1, b[2] = 0;
        a[len - 1] = q - 1, b[len - 1] = q - 1;
      }
      std::vector<std::uint64_t> sum(len), diff(len), neg(len), prod(len), red(len);
      add_mod(a, b, m, sum);
      sub_mod(a, b, m, diff);
      negate_mod(a, m, neg);
      for (std::size_t i = 0; i < len; ++i) {
        ASSERT_EQ(sum[i], add_mod(a[i], b[i], m));
        ASSERT_EQ(diff[i], sub_mod(a[i], b[i], m));
        ASSERT_EQ(neg[i], negate_mod(a[i], m));
      }
      std::vector<std::uint64_t> wide(len);
      for (auto& x : wide) x = rng();
      reduce_mod(wide, m, red);
      for (std::size_t i = 0; i < len; ++i) ASSERT_EQ(red[i], wide[i] % q);

      const std::uint64_t s = rng();
      for (Isa isa : vector_isas()) {
        mul_mod(a, b, m, prod, isa);
        for (std::size_t i = 0; i < len; ++i) {
          ASSERT_EQ(prod[i], ref_mod(u128{a[i]} * b[i], q))
              << isa_name(isa) << " q=" << q << " i=" << i;
        }
        // Shoup by a scalar accepts any 64-bit input.
        mul_scalar_mod(wide, s, m, prod, isa);
        for (std::size_t i = 0; i < len; ++i) {
          ASSERT_EQ(prod[i], ref_mod(u128{wide[i]} * (s % q), q))
              << isa_name(isa) << " q=" << q << " i=" << i;
        }
      }
    }
  }
}

TEST(ModArithVector, InPlaceAndSizeChecks) {
  const Modulus m(12289);
  std::vector<std::uint64_t> a = {1, 2, 12288, 5, 6, 7, 8, 9, 10, 11};
  std::vector<std::uint64_t> b = a;
  for (Isa isa : vector_isas()) {
    std::vector<std::uint64_t> x = a;
    mul_mod(x, x, m, x, isa);  // in place, both operands aliased
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(x[i], mul_mod(a[i], a[i], m));
    x = a;
    mul_scalar_mod(x, 3, m, x, isa);
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(x[i], mul_mod(a[i], 3, m));
  }
  add_mod(b, a, m, b);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(b[i], add_mod(a[i], a[i], m));

  std::vector<std::uint64_t> shorter(a.size() - 1);
  EXPECT_THROW(add_mod(a, shorter, m, b), Error);
  EXPECT_THROW(sub_mod(a, b, m, shorter), Error);
  EXPECT_THROW(mul_mod(shorter, b, m, b), Error);
  EXPECT_THROW(negate_mod(a, m, shorter), Error);
  EXPECT_THROW(mul_scalar_mod(a, 2, m, shorter), Error);
  EXPECT_THROW(reduce_mod(a, m, shorter), Error);
}

}  // namespace
}  // namespace blindfold::he
