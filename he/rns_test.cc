// RNS base constants, CRT composition/decomposition and fast base conversion,
// all against GMP big integers as the independent reference.
#include "he/rns.h"

#include <gmp.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/error.h"
#include "he/primes.h"

namespace blindfold::he {
namespace {

// A small RAII wrapper: enough of GMP for reference values.
struct Mpz {
  mpz_t z;
  Mpz() { mpz_init(z); }
  explicit Mpz(std::span<const std::uint64_t> words) {
    mpz_init(z);
    if (!words.empty()) mpz_import(z, words.size(), -1, 8, 0, 0, words.data());
  }
  ~Mpz() { mpz_clear(z); }
  Mpz(const Mpz&) = delete;
  Mpz& operator=(const Mpz&) = delete;
  std::uint64_t mod(std::uint64_t m) const {
    return mpz_fdiv_ui(z, m);  // unsigned long is 64-bit here
  }
};

static_assert(sizeof(unsigned long) == 8, "GMP's ui functions must take 64-bit words");

std::vector<std::uint64_t> random_below(const Mpz& bound, std::size_t words, std::mt19937_64& rng) {
  std::vector<std::uint64_t> v(words);
  for (auto& w : v) w = rng();
  Mpz x(v);
  mpz_mod(x.z, x.z, bound.z);
  std::fill(v.begin(), v.end(), 0);
  mpz_export(v.data(), nullptr, -1, 8, 0, 0, x.z);
  return v;
}

std::vector<Modulus> mixed_base(std::size_t k, std::size_t n, std::size_t skip) {
  // Alternating 60/40/30-bit NTT primes, distinct.
  const auto p60 = ntt_primes(60, k + skip, n);
  const auto p40 = ntt_primes(40, k + skip, n);
  const auto p30 = ntt_primes(30, k + skip, n);
  std::vector<Modulus> out;
  for (std::size_t i = 0; i < k; ++i) {
    const auto& src = i % 3 == 0 ? p60 : i % 3 == 1 ? p40 : p30;
    out.emplace_back(src[skip + i]);
  }
  return out;
}

TEST(RnsBase, Validation) {
  EXPECT_THROW(RnsBase({}), Error);
  EXPECT_THROW(RnsBase({Modulus(6), Modulus(9)}), Error);  // gcd 3
  EXPECT_THROW(RnsBase({Modulus(12289), Modulus(12289)}), Error);
  EXPECT_THROW(RnsBase(std::vector<Modulus>(65, Modulus(3))), Error);
  const RnsBase ok({Modulus(4), Modulus(9), Modulus(25)});  // coprime, not prime
  EXPECT_EQ(ok.product()[0], 900u);
  EXPECT_EQ(ok.product_bits(), 10);
}

TEST(RnsBase, ConstantsMatchGmp) {
  for (std::size_t k = 1; k <= 8; ++k) {
    const RnsBase base(mixed_base(k, 4096, 0));
    Mpz q;
    mpz_set_ui(q.z, 1);
    for (const Modulus& m : base.moduli()) mpz_mul_ui(q.z, q.z, m.value());
    Mpz product(base.product());
    EXPECT_EQ(mpz_cmp(q.z, product.z), 0) << k;
    EXPECT_EQ(base.product_bits(), static_cast<int>(mpz_sizeinbase(q.z, 2)));
    for (std::size_t i = 0; i < k; ++i) {
      Mpz punctured(base.punctured_product(i));
      Mpz expect;
      mpz_divexact_ui(expect.z, q.z, base[i].value());
      EXPECT_EQ(mpz_cmp(punctured.z, expect.z), 0);
      const std::uint64_t r = punctured.mod(base[i].value());
      EXPECT_EQ(mul_mod(r, base.inv_punctured(i), base[i]), 1u);
      EXPECT_EQ(base.inv_punctured_shoup(i), shoup(base.inv_punctured(i), base[i]));
    }
  }
}

TEST(RnsBase, ComposeDecomposeMatchGmp) {
  std::mt19937_64 rng(31);
  for (std::size_t k = 1; k <= 8; ++k) {
    const RnsBase base(mixed_base(k, 8192, 1));
    Mpz q(base.product());
    std::vector<std::vector<std::uint64_t>> values;
    for (int t = 0; t < 200; ++t) values.push_back(random_below(q, k + 1, rng));
    // Edges: 0, 1, Q - 1.
    values.push_back(std::vector<std::uint64_t>(k, 0));
    values.push_back(std::vector<std::uint64_t>(k, 0));
    values.back()[0] = 1;
    {
      Mpz qm1(base.product());
      mpz_sub_ui(qm1.z, qm1.z, 1);
      std::vector<std::uint64_t> v(k, 0);
      mpz_export(v.data(), nullptr, -1, 8, 0, 0, qm1.z);
      values.push_back(v);
    }
    for (const auto& v : values) {
      std::vector<std::uint64_t> residues(k);
      base.decompose(v, residues);
      Mpz x(v);
      for (std::size_t i = 0; i < k; ++i) ASSERT_EQ(residues[i], x.mod(base[i].value()));
      std::vector<std::uint64_t> back(k);
      base.compose(residues, back);
      Mpz composed(back);
      mpz_mod(x.z, x.z, q.z);
      ASSERT_EQ(mpz_cmp(composed.z, x.z), 0) << "k=" << k;
    }
    // Decompose reads any number of words (here more than Q has).
    std::vector<std::uint64_t> wide(k + 3);
    for (auto& w : wide) w = rng();
    std::vector<std::uint64_t> residues(k);
    base.decompose(wide, residues);
    Mpz xw(wide);
    for (std::size_t i = 0; i < k; ++i) EXPECT_EQ(residues[i], xw.mod(base[i].value()));
  }
  const RnsBase base(mixed_base(3, 8192, 0));
  std::vector<std::uint64_t> two(2), three(3);
  EXPECT_THROW(base.decompose(three, two), Error);
  EXPECT_THROW(base.compose(two, three), Error);
  EXPECT_THROW(base.compose(three, two), Error);
}

// FastBConv: out_j = S mod p_j for S = sum_i y_i * (Q/q_i), and S = x + alpha
// * Q with 0 <= alpha < k. Checked exactly with GMP per coefficient, with
// alpha > 0 seen (the conversion is genuinely approximate) and alpha = 0 for
// x = 0.
TEST(BaseConverter, FastConversionIsExactUpToAlphaQ) {
  std::mt19937_64 rng(32);
  const std::size_t n = 256;
  for (std::size_t k : {1, 2, 3, 5, 8}) {
    for (std::size_t l : {1, 2, 4}) {
      const RnsBase from(mixed_base(k, n, 0));
      const RnsBase to(mixed_base(l, n, 10));  // disjoint primes
      const BaseConverter conv(from, to);
      Mpz q(from.product());
      std::vector<std::vector<std::uint64_t>> xs;
      for (std::size_t c = 0; c < n; ++c) xs.push_back(random_below(q, k + 1, rng));
      xs[0].assign(k, 0);  // x = 0
      {
        Mpz qm1(from.product());
        mpz_sub_ui(qm1.z, qm1.z, 1);
        xs[1].assign(k, 0);
        mpz_export(xs[1].data(), nullptr, -1, 8, 0, 0, qm1.z);
      }
      std::vector<std::uint64_t> in(k * n), out(l * n);
      for (std::size_t c = 0; c < n; ++c) {
        std::vector<std::uint64_t> r(k);
        from.decompose(xs[c], r);
        for (std::size_t i = 0; i < k; ++i) in[i * n + c] = r[i];
      }
      conv.fast_convert(in, out, n);
      std::size_t nonzero_alpha = 0;
      for (std::size_t c = 0; c < n; ++c) {
        Mpz s;
        for (std::size_t i = 0; i < k; ++i) {
          const std::uint64_t y = mul_mod(in[i * n + c], from.inv_punctured(i), from[i]);
          Mpz p(from.punctured_product(i));
          mpz_addmul_ui(s.z, p.z, y);
        }
        for (std::size_t j = 0; j < l; ++j) {
          ASSERT_EQ(out[j * n + c], s.mod(to[j].value())) << "k=" << k << " c=" << c;
        }
        // alpha = (S - x) / Q exactly, in [0, k).
        Mpz x(xs[c]);
        Mpz diff, alpha, rem;
        mpz_sub(diff.z, s.z, x.z);
        mpz_fdiv_qr(alpha.z, rem.z, diff.z, q.z);
        ASSERT_EQ(mpz_sgn(rem.z), 0);
        ASSERT_GE(mpz_sgn(alpha.z), 0);
        ASSERT_LT(mpz_cmp_ui(alpha.z, k), 0);
        if (c == 0) {
          EXPECT_EQ(mpz_sgn(alpha.z), 0);
        }
        if (mpz_sgn(alpha.z) != 0) ++nonzero_alpha;
      }
      if (k >= 2) {
        EXPECT_GT(nonzero_alpha, 0u) << "k=" << k;
      }
      if (k == 1) {
        EXPECT_EQ(nonzero_alpha, 0u);  // one modulus: conversion is exact
      }
    }
  }
}

TEST(BaseConverter, SizeChecks) {
  const BaseConverter conv(RnsBase(mixed_base(2, 16, 0)), RnsBase(mixed_base(3, 16, 5)));
  EXPECT_EQ(conv.from().size(), 2u);
  EXPECT_EQ(conv.to().size(), 3u);
  std::vector<std::uint64_t> in(2 * 16), out(3 * 16), bad(7);
  conv.fast_convert(in, out, 16);
  for (auto v : out) EXPECT_EQ(v, 0u);
  EXPECT_THROW(conv.fast_convert(bad, out, 16), Error);
  EXPECT_THROW(conv.fast_convert(in, bad, 16), Error);
  EXPECT_THROW(conv.fast_convert(in, out, 15), Error);
}

}  // namespace
}  // namespace blindfold::he
