// The CKKS encoder: the special FFT against the O(N^2) definition (slot j =
// m(zeta^(5^j))), a known-answer test at N = 16 whose coefficients are derived
// here by the slow definition and also hard-coded, the encode -> decode round
// trip within 2^-30 at scale 2^40 for every level of the N = 8192 set, scales
// whose coefficients exceed 64 bits, and refused inputs.
#include "he/encoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>

#include "core/error.h"

namespace blindfold::he {
namespace {

using cd = std::complex<double>;

std::shared_ptr<const CkksContext> toy_context(std::size_t n, std::vector<int> chain = {50, 40}) {
  CkksParameters p;
  p.n = n;
  p.chain_bits = std::move(chain);
  return CkksContext::create_insecure_for_tests(p);
}

std::vector<cd> random_slots(std::size_t count, double bound, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(-bound, bound);
  std::vector<cd> v(count);
  for (auto& x : v) x = cd(d(rng), d(rng));
  return v;
}

// zeta^(5^j) for zeta = exp(2 pi i / 2N).
cd slot_root(std::size_t j, std::size_t n) {
  std::uint64_t e = 1;
  for (std::size_t t = 0; t < j; ++t) e = e * 5 % (2 * n);
  return std::polar(1.0, std::numbers::pi * static_cast<double>(e) / static_cast<double>(n));
}

// The slow definition: the real m of degree < N with m(zeta_j) = z_j and
// m(conj zeta_j) = conj z_j is m_k = (1/N) sum_j 2 Re(z_j zeta_j^-k).
std::vector<double> slow_coefficients(const std::vector<cd>& z, std::size_t n) {
  std::vector<double> m(n, 0);
  for (std::size_t k = 0; k < n; ++k) {
    double s = 0;
    for (std::size_t j = 0; j < z.size(); ++j) {
      s += 2 * (z[j] * std::pow(std::conj(slot_root(j, n)), static_cast<double>(k))).real();
    }
    m[k] = s / static_cast<double>(n);
  }
  return m;
}

// Centred coefficients of a plaintext from its first prime (values small).
std::vector<std::int64_t> coefficients(const CkksContext& ctx, const Plaintext& p) {
  std::vector<std::uint64_t> row(p.row(0).begin(), p.row(0).end());
  ntt_inverse(row, ctx.ntt(0));
  const std::uint64_t q = ctx.modulus(0).value();
  std::vector<std::int64_t> out(row.size());
  for (std::size_t i = 0; i < row.size(); ++i) {
    out[i] =
        row[i] > q / 2 ? -static_cast<std::int64_t>(q - row[i]) : static_cast<std::int64_t>(row[i]);
  }
  return out;
}

TEST(CkksEncoder, SpecialFftMatchesEvaluationAtRotationGroupRoots) {
  for (std::size_t n : {8u, 32u, 256u}) {
    const auto ctx = toy_context(n);
    const CkksEncoder enc(ctx);
    std::mt19937_64 rng(n);
    std::uniform_real_distribution<double> d(-1, 1);
    std::vector<double> m(n);
    for (auto& x : m) x = d(rng);
    // The FFT's input is u_i = m_i + i m_{i+N/2}.
    std::vector<cd> u(n / 2);
    for (std::size_t i = 0; i < n / 2; ++i) u[i] = cd(m[i], m[i + n / 2]);
    enc.fft_special(u);
    for (std::size_t j = 0; j < n / 2; ++j) {
      cd want = 0;
      const cd root = slot_root(j, n);
      for (std::size_t k = 0; k < n; ++k) want += m[k] * std::pow(root, static_cast<double>(k));
      EXPECT_LT(std::abs(u[j] - want), 1e-10) << "n " << n << " slot " << j;
    }
    enc.fft_special_inverse(u);
    for (std::size_t i = 0; i < n / 2; ++i) {
      EXPECT_LT(std::abs(u[i] - cd(m[i], m[i + n / 2])), 1e-14);
    }
  }
}

// Known answer at N = 16, scale 2^20: the coefficients of the slow definition,
// and a few of them hard-coded (computed once by slow_coefficients, which
// shares no code with the encoder) so that a change of convention in both
// places at once still fails.
TEST(CkksEncoder, KnownAnswerN16) {
  const auto ctx = toy_context(16);
  const CkksEncoder enc(ctx);
  const std::vector<cd> z = {{1, 0},     {-2, 0.5}, {0.25, -1}, {3, 3},
                             {0, -0.75}, {0.5, 0},  {-1, -1},   {2, -0.125}};
  const double scale = std::exp2(20);
  const Plaintext p = enc.encode(z, scale, 1);
  const auto got = coefficients(*ctx, p);
  const auto m = slow_coefficients(z, 16);
  for (std::size_t k = 0; k < 16; ++k) {
    EXPECT_EQ(got[k], static_cast<std::int64_t>(std::nearbyint(m[k] * scale))) << k;
  }
  // Hard-coded: round(2^20 m_k) for k = 0, 1, 5, 8, 15.
  // m_0 = (2/N) sum_j Re z_j = 3.75 / 8, and m_8 = (2/N) sum_j Im z_j = 0.625 / 8
  // (zeta_j^-8 = -i for every j, as 5^j = 1 mod 4), checkable by hand.
  EXPECT_EQ(got[0], 491520);
  EXPECT_EQ(got[1], -66442);
  EXPECT_EQ(got[5], -45882);
  EXPECT_EQ(got[8], 81920);
  EXPECT_EQ(got[15], -241342);
  // Every prime holds the same integers.
  std::vector<std::uint64_t> row1(p.row(1).begin(), p.row(1).end());
  ntt_inverse(row1, ctx->ntt(1));
  const std::uint64_t q1 = ctx->modulus(1).value();
  for (std::size_t k = 0; k < 16; ++k) {
    const std::int64_t v = row1[k] > q1 / 2 ? -static_cast<std::int64_t>(q1 - row1[k])
                                            : static_cast<std::int64_t>(row1[k]);
    EXPECT_EQ(v, got[k]);
  }
  const auto back = enc.decode(p);
  for (std::size_t j = 0; j < z.size(); ++j) EXPECT_LT(std::abs(back[j] - z[j]), 1e-5);
}

TEST(CkksEncoder, RoundTripWithin2ToMinus30AtEveryLevel) {
  const auto ctx = CkksContext::create(CkksParameters::n8192_default());
  const CkksEncoder enc(ctx);
  const double scale = std::exp2(40);
  const auto z = random_slots(enc.slots(), 1.0, 7);
  for (int level = 0; level <= ctx->max_level(); ++level) {
    const Plaintext p = enc.encode(z, scale, level);
    EXPECT_EQ(p.level(), level);
    EXPECT_EQ(p.scale(), scale);
    const auto back = enc.decode(p);
    double max_err = 0;
    for (std::size_t j = 0; j < z.size(); ++j)
      max_err = std::max(max_err, std::abs(back[j] - z[j]));
    EXPECT_LT(max_err, std::exp2(-30)) << "level " << level;
  }
  // Real input: imaginary parts decode to (nearly) zero; fewer values than
  // slots leave the rest zero.
  const std::vector<double> r = {0.5, -0.25, 3.0};
  const auto back = enc.decode(enc.encode(r, scale));
  for (std::size_t j = 0; j < back.size(); ++j) {
    const double want = j < r.size() ? r[j] : 0.0;
    EXPECT_LT(std::abs(back[j] - want), std::exp2(-30)) << j;
  }
}

// Scale 2^90 at the 3-prime level of {60, 40, 40}: coefficients far above
// 2^64, reduced through their mantissa and exponent, and composed back by
// the full CRT.
TEST(CkksEncoder, CoefficientsAbove64Bits) {
  const auto ctx = CkksContext::create(CkksParameters::n8192_default());
  const CkksEncoder enc(ctx);
  const auto z = random_slots(64, 8.0, 9);
  const double scale = std::exp2(90);
  const auto back = enc.decode(enc.encode(z, scale, 2));
  for (std::size_t j = 0; j < z.size(); ++j) EXPECT_LT(std::abs(back[j] - z[j]), 1e-12);
  // Negative and positive values near Q/2 compose with the right sign.
  const std::vector<double> big = {-1.0e6, 1.0e6};
  const auto b2 = enc.decode(enc.encode(big, std::exp2(100), 2));
  EXPECT_NEAR(b2[0].real(), -1.0e6, 1e-6);
  EXPECT_NEAR(b2[1].real(), 1.0e6, 1e-6);
}

TEST(CkksEncoder, RefusesBadInput) {
  const auto ctx = CkksContext::create(CkksParameters::n8192_default());
  const CkksEncoder enc(ctx);
  const double scale = std::exp2(40);
  auto category = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.category();
    }
    return ErrorCategory::kInternal;
  };
  const std::vector<cd> too_many(enc.slots() + 1);
  EXPECT_EQ(category([&] { enc.encode(too_many, scale); }), ErrorCategory::kBadInput);
  const std::vector<double> one = {1.0};
  EXPECT_EQ(category([&] { enc.encode(one, scale, 3); }), ErrorCategory::kBadInput);
  EXPECT_EQ(category([&] { enc.encode(one, scale, -1); }), ErrorCategory::kBadInput);
  EXPECT_EQ(category([&] { enc.encode(one, 0.0); }), ErrorCategory::kBadInput);
  EXPECT_EQ(category([&] { enc.encode(one, std::nan("")); }), ErrorCategory::kBadInput);
  const std::vector<double> nan = {std::nan("")};
  EXPECT_EQ(category([&] { enc.encode(nan, scale); }), ErrorCategory::kBadInput);
  // 2^45 in one slot gives coefficients near 2^(45 + 1 - 12 + 40) = 2^74:
  // they do not fit the 60-bit modulus of level 0.
  const std::vector<double> huge = {std::exp2(45)};
  EXPECT_EQ(category([&] { enc.encode(huge, scale, 0); }), ErrorCategory::kBadInput);
  // A plaintext of another context.
  auto p2 = CkksParameters::n8192_default();
  p2.chain_bits = {60, 40};
  const CkksEncoder enc3(CkksContext::create(p2));
  const Plaintext foreign = enc3.encode(one, scale);
  EXPECT_EQ(category([&] { enc.decode(foreign); }), ErrorCategory::kBadInput);
}

}  // namespace
}  // namespace blindfold::he
