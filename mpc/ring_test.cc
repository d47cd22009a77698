// Tests of the ring kernels (mpc/ring.h) against straightforward references.
#include "mpc/ring.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"

namespace blindfold::mpc {
namespace {

using detail::MatmulKernel;

std::vector<u64> random_u64(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<u64> v(n);
  for (auto& x : v) x = rng();
  return v;
}

// a * b mod 2^64 from 32-bit halves, independent of the compiler's 64-bit multiply.
u64 mul_by_halves(u64 a, u64 b) {
  const u64 a0 = a & 0xffffffffu, a1 = a >> 32, b0 = b & 0xffffffffu, b1 = b >> 32;
  return a0 * b0 + ((a0 * b1 + a1 * b0) << 32);
}

constexpr u64 kMax = std::numeric_limits<u64>::max();

// Expects fn() to throw Error of category `cat` whose message contains `text`.
template <typename Fn>
void expect_error(Fn&& fn, ErrorCategory cat, const std::string& text) {
  try {
    fn();
    ADD_FAILURE() << "no exception; wanted one containing '" << text << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), cat) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(RingElementwise, AgainstReferenceWithWrapAround) {
  for (std::size_t n : {0u, 1u, 3u, 7u, 8u, 17u, 64u, 1001u}) {
    std::vector<u64> a = random_u64(n, 1 + n), b = random_u64(n, 2 + n);
    if (n >= 3) {  // wrap-around cases
      a[0] = kMax, b[0] = 1;
      a[1] = 0, b[1] = kMax;
      a[2] = u64{1} << 63, b[2] = u64{1} << 63;
    }
    std::vector<u64> out(n);
    ring_add(a, b, out);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(out[i], static_cast<u64>(a[i] + b[i]));
    if (n >= 3) {
      EXPECT_EQ(out[0], 0u);
      EXPECT_EQ(out[1], kMax);
      EXPECT_EQ(out[2], 0u);
    }
    ring_sub(a, b, out);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(out[i] + b[i], a[i]);
    if (n >= 3) {
      EXPECT_EQ(out[1], 1u);  // 0 - (2^64 - 1) = 1
    }
    ring_neg(a, out);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(out[i] + a[i], 0u);
    ring_mul(a, b, out);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(out[i], mul_by_halves(a[i], b[i]));
    if (n >= 3) {
      EXPECT_EQ(out[1], 0u);  // 0 * x
      EXPECT_EQ(out[2], 0u);  // 2^63 * 2^63
    }
    ring_mul_scalar(a, kMax, out);  // * -1
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(out[i], u64{0} - a[i]);
    std::vector<u64> acc = random_u64(n, 3 + n), acc0 = acc;
    ring_mul_acc(a, b, acc);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(acc[i], static_cast<u64>(acc0[i] + a[i] * b[i]));
  }
}

TEST(RingElementwise, OutputMayAliasInputs) {
  std::vector<u64> a = random_u64(33, 5), b = random_u64(33, 6);
  std::vector<u64> want(33), x = a;
  for (std::size_t i = 0; i < 33; ++i) want[i] = a[i] + b[i];
  ring_add(x, b, x);
  EXPECT_EQ(x, want);
  x = b;
  ring_sub(a, x, x);
  for (std::size_t i = 0; i < 33; ++i) EXPECT_EQ(x[i], a[i] - b[i]);
  x = a;
  ring_mul(x, x, x);
  for (std::size_t i = 0; i < 33; ++i) EXPECT_EQ(x[i], a[i] * a[i]);
  x = a;
  ring_neg(x, x);
  for (std::size_t i = 0; i < 33; ++i) EXPECT_EQ(x[i], u64{0} - a[i]);
}

TEST(RingElementwise, SizeMismatchThrowsInternal) {
  std::vector<u64> a(4), b(5), out(4);
  expect_error([&] { ring_add(a, b, out); }, ErrorCategory::kInternal, "ring_add");
  expect_error([&] { ring_sub(a, b, out); }, ErrorCategory::kInternal, "ring_sub");
  expect_error([&] { ring_mul(a, b, out); }, ErrorCategory::kInternal, "ring_mul");
  expect_error([&] { ring_mul_acc(a, b, out); }, ErrorCategory::kInternal, "ring_mul_acc");
  expect_error([&] { ring_neg(b, out); }, ErrorCategory::kInternal, "ring_neg");
  expect_error([&] { ring_mul_scalar(b, 3, out); }, ErrorCategory::kInternal, "ring_mul_scalar");
  expect_error([&] { ring_sar(b, 3, out); }, ErrorCategory::kInternal, "ring_sar");
  expect_error([&] { ring_add(a, a, b); }, ErrorCategory::kInternal, "sizes");
}

TEST(RingGather, GathersAndChecksEveryIndex) {
  const std::vector<u64> a = random_u64(10, 7);
  const std::vector<std::uint32_t> idx = {9, 0, 3, 3, 9, 5};
  std::vector<u64> out(idx.size());
  ring_gather(a, idx, out);
  for (std::size_t i = 0; i < idx.size(); ++i) EXPECT_EQ(out[i], a[idx[i]]);
  std::vector<u64> none;
  ring_gather(a, std::span<const std::uint32_t>(), none);
  // The last index is bad: nothing may be read out of range, and the
  // message names it.
  const std::vector<std::uint32_t> bad = {1, 2, 10};
  std::vector<u64> out3(3);
  expect_error([&] { ring_gather(a, bad, out3); }, ErrorCategory::kInternal, "index 10");
  const std::vector<std::uint32_t> huge = {0xffffffffu};
  std::vector<u64> out1(1);
  expect_error([&] { ring_gather(a, huge, out1); }, ErrorCategory::kInternal, "ring_gather");
  expect_error([&] { ring_gather(std::span<const u64>(), std::vector<std::uint32_t>{0}, out1); },
               ErrorCategory::kInternal, "out of range");
  expect_error([&] { ring_gather(a, idx, out3); }, ErrorCategory::kInternal, "sizes");
}

TEST(RingSar, ArithmeticShiftOfSignedValues) {
  std::vector<u64> a = random_u64(100, 8);
  a[0] = kMax;  // -1
  a[1] = u64{1} << 63;
  a[2] = 0;
  a[3] = static_cast<u64>(std::int64_t{-12345});
  std::vector<u64> out(a.size());
  for (int bits : {0, 1, 12, 31, 63}) {
    ring_sar(a, bits, out);
    for (std::size_t i = 0; i < a.size(); ++i) {
      const auto v = static_cast<std::int64_t>(a[i]);
      // floor(v / 2^bits) computed without shifts.
      const long double q = std::floor(static_cast<long double>(v) / std::ldexp(1.0L, bits));
      EXPECT_EQ(static_cast<std::int64_t>(out[i]), static_cast<std::int64_t>(q)) << i << " " << bits;
    }
    EXPECT_EQ(out[0], kMax);  // -1 stays -1
  }
  ring_sar(a, 63, out);
  EXPECT_EQ(out[1], kMax);
  EXPECT_EQ(out[2], 0u);
  ring_sar(a, 4, out);
  EXPECT_EQ(static_cast<std::int64_t>(out[3]), -772);  // floor(-12345 / 16)
  expect_error([&] { ring_sar(a, 64, out); }, ErrorCategory::kInternal, "64");
  expect_error([&] { ring_sar(a, -1, out); }, ErrorCategory::kInternal, "-1");
}

// ---- matmul ----------------------------------------------------------------

std::vector<u64> naive_matmul(const std::vector<u64>& a, const std::vector<u64>& b, std::size_t m, std::size_t k,
                              std::size_t n) {
  std::vector<u64> c(m * n, 0);
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      u64 s = 0;
      for (std::size_t p = 0; p < k; ++p) s += a[i * k + p] * b[p * n + j];
      c[i * n + j] = s;
    }
  }
  return c;
}

std::vector<MatmulKernel> kernels() {
  std::vector<MatmulKernel> out;
  for (MatmulKernel kern :
       {MatmulKernel::kAuto, MatmulKernel::kPortable, MatmulKernel::kVector, MatmulKernel::kAvx512}) {
    if (detail::matmul_kernel_supported(kern)) out.push_back(kern);
  }
  return out;
}

void check_matmul(MatmulKernel kern, bool parallel, std::size_t m, std::size_t k, std::size_t n,
                  std::uint64_t seed) {
  SCOPED_TRACE(std::string(detail::matmul_kernel_name(kern)) + (parallel ? " parallel" : " serial") +
               " m=" + std::to_string(m) + " k=" + std::to_string(k) + " n=" + std::to_string(n));
  const std::vector<u64> a = random_u64(m * k, seed), b = random_u64(k * n, seed + 1);
  const std::vector<u64> want = naive_matmul(a, b, m, k, n);
  std::vector<u64> c = random_u64(m * n, seed + 2);  // overwritten
  detail::ring_matmul_kernel(kern, parallel, a, b, c, m, k, n, false);
  ASSERT_EQ(c, want);
  std::vector<u64> acc = random_u64(m * n, seed + 3), acc_want = acc;
  for (std::size_t i = 0; i < acc.size(); ++i) acc_want[i] += want[i];
  detail::ring_matmul_kernel(kern, parallel, a, b, acc, m, k, n, true);
  ASSERT_EQ(acc, acc_want);
}

TEST(RingMatmul, EveryKernelOnEdgeShapes) {
  // Sizes around the block sizes (4 rows; 4 and 8 lanes; panels of 8 and
  // 32 columns; the dot kernel below 16 columns), zeros included.
  const std::size_t ms[] = {0, 1, 2, 3, 4, 5, 7, 9, 16};
  const std::size_t ks[] = {0, 1, 2, 7, 8, 9, 25, 33};
  const std::size_t ns[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 65, 100};
  std::uint64_t seed = 1;
  for (MatmulKernel kern : kernels()) {
    for (std::size_t m : ms) {
      for (std::size_t k : ks) {
        for (std::size_t n : ns) check_matmul(kern, false, m, k, n, seed++);
      }
    }
  }
}

TEST(RingMatmul, EveryKernelOnRandomShapes) {
  std::mt19937_64 rng(99);
  for (MatmulKernel kern : kernels()) {
    for (int t = 0; t < 40; ++t) {
      const std::size_t m = rng() % 40, k = rng() % 120, n = rng() % 150;
      check_matmul(kern, false, m, k, n, rng());
    }
  }
}

TEST(RingMatmul, EveryKernelParallelOnLargeShapes) {
  // Above the 2^20 multiply-add threshold: the column split (wide n), the
  // row split (narrow n, dot kernel) and ragged ends.
  const std::tuple<std::size_t, std::size_t, std::size_t> shapes[] = {
      {16, 25, 576 * 8 + 5}, {16, 400, 64 * 4 + 3}, {128, 784, 11}, {101, 256, 64}, {3, 1000, 700}};
  std::uint64_t seed = 1000;
  for (MatmulKernel kern : kernels()) {
    for (const auto& [m, k, n] : shapes) check_matmul(kern, true, m, k, n, seed++);
  }
}

TEST(RingMatmul, PublicEntryPointAndWrapAround) {
  // (2^64 - 1) * (2^64 - 1) = 1 mod 2^64, summed k times.
  const std::size_t m = 3, k = 5, n = 20;
  std::vector<u64> a(m * k, kMax), b(k * n, kMax), c(m * n, 7);
  ring_matmul(a, b, c, m, k, n);
  for (u64 v : c) EXPECT_EQ(v, k);
  ring_matmul(a, b, c, m, k, n, true);
  for (u64 v : c) EXPECT_EQ(v, 2 * k);
  // 2^32 * 2^32 = 0 mod 2^64.
  std::fill(a.begin(), a.end(), u64{1} << 32);
  std::fill(b.begin(), b.end(), u64{1} << 32);
  ring_matmul(a, b, c, m, k, n);
  for (u64 v : c) EXPECT_EQ(v, 0u);
  const std::vector<u64> ra = random_u64(37 * 129, 4), rb = random_u64(129 * 70, 5);
  std::vector<u64> rc(37 * 70);
  ring_matmul(ra, rb, rc, 37, 129, 70);
  EXPECT_EQ(rc, naive_matmul(ra, rb, 37, 129, 70));
}

TEST(RingMatmul, SizeMismatchThrowsInternal) {
  std::vector<u64> a(6), b(12), c(8);
  ring_matmul(a, b, c, 2, 3, 4);
  expect_error([&] { ring_matmul(a, b, c, 2, 3, 5); }, ErrorCategory::kInternal, "ring_matmul");
  expect_error([&] { ring_matmul(a, b, c, 3, 2, 4); }, ErrorCategory::kInternal, "m=3");
  std::vector<u64> c7(7);
  expect_error([&] { ring_matmul(a, b, c7, 2, 3, 4); }, ErrorCategory::kInternal, "ring_matmul");
  expect_error([&] { detail::ring_matmul_kernel(MatmulKernel::kPortable, false, a, b, c7, 2, 3, 4, false); },
               ErrorCategory::kInternal, "ring_matmul");
}

TEST(RingMatmul, KernelNames) {
  EXPECT_STREQ(detail::matmul_kernel_name(MatmulKernel::kAvx512), "avx512");
  EXPECT_STREQ(detail::matmul_kernel_name(MatmulKernel::kVector), "vector");
  EXPECT_TRUE(detail::matmul_kernel_supported(MatmulKernel::kPortable));
  EXPECT_TRUE(detail::matmul_kernel_supported(MatmulKernel::kVector));
  EXPECT_TRUE(detail::matmul_kernel_supported(MatmulKernel::kAuto));
  if (!detail::matmul_kernel_supported(MatmulKernel::kAvx512)) {
    std::vector<u64> a(1), b(1), c(1);
    expect_error([&] { detail::ring_matmul_kernel(MatmulKernel::kAvx512, false, a, b, c, 1, 1, 1, false); },
                 ErrorCategory::kUnsupported, "avx512");
  }
}

// ---- fixed point -----------------------------------------------------------

TEST(RingFixedPoint, EncodeRoundsToNearestTwosComplement) {
  EXPECT_EQ(fxp_encode1(0.0, 12), 0u);
  EXPECT_EQ(fxp_encode1(1.0, 12), 4096u);
  EXPECT_EQ(fxp_encode1(-1.0, 12), static_cast<u64>(std::int64_t{-4096}));
  EXPECT_EQ(fxp_encode1(1.5, 0), 2u);                 // halves round away from zero
  EXPECT_EQ(fxp_encode1(-1.5, 0), static_cast<u64>(std::int64_t{-2}));
  EXPECT_EQ(fxp_encode1(0.3, 12), 1229u);            // 1228.8
  EXPECT_EQ(fxp_encode1(-0.3, 12), static_cast<u64>(std::int64_t{-1229}));
  EXPECT_EQ(fxp_encode1(1.0 / 8192, 12), 1u);        // exactly half a unit: away from zero
  EXPECT_EQ(fxp_encode1(1.0 / 8193, 12), 0u);
  EXPECT_EQ(fxp_encode1(0.5, 62), u64{1} << 61);
  EXPECT_EQ(fxp_encode1(-1.0, 62), static_cast<u64>(std::int64_t{-1} << 62));
  EXPECT_EQ(fxp_encode1(-0x1p63, 0), u64{1} << 63);  // INT64_MIN fits
}

TEST(RingFixedPoint, DecodeAndRoundTrips) {
  EXPECT_EQ(fxp_decode1(4096, 12), 1.0);
  EXPECT_EQ(fxp_decode1(static_cast<u64>(std::int64_t{-6144}), 12), -1.5);
  EXPECT_EQ(fxp_decode1(kMax, 12), -1.0 / 4096);
  EXPECT_EQ(fxp_decode1(u64{1} << 63, 0), -0x1p63);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> dist(-1000.0f, 1000.0f);
  for (int f : {0, 8, 12, 16, 20}) {
    std::vector<float> v(257), back(257);
    for (auto& x : v) x = dist(rng);
    v[0] = 0.0f, v[1] = -0.0f, v[2] = 1e-9f, v[3] = -1e-9f;
    std::vector<u64> enc(v.size());
    fxp_encode(v, f, enc);
    fxp_decode(enc, f, back);
    for (std::size_t i = 0; i < v.size(); ++i) {
      EXPECT_EQ(enc[i], fxp_encode1(v[i], f));
      EXPECT_LE(std::fabs(back[i] - v[i]), std::ldexp(0.5, -f) + 1e-4f * std::fabs(v[i])) << i << " f=" << f;
      EXPECT_EQ(static_cast<double>(back[i]), static_cast<double>(static_cast<float>(fxp_decode1(enc[i], f))));
    }
  }
  // Exact for multiples of 2^-f (up to float precision).
  std::vector<float> v = {0.25f, -3.75f, 1024.0f, -0.000244140625f};
  std::vector<u64> enc(v.size());
  std::vector<float> back(v.size());
  fxp_encode(v, 12, enc);
  fxp_decode(enc, 12, back);
  EXPECT_EQ(back, v);
  // Arithmetic on encodings: sum and sign survive the ring.
  EXPECT_EQ(fxp_decode1(fxp_encode1(-2.5, 12) + fxp_encode1(1.25, 12), 12), -1.25);
}

TEST(RingFixedPoint, RejectsNonFiniteAndOverflowNamingTheIndex) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<u64> out(3);
  for (float bad : {nan, inf, -inf, 1e30f, -1e30f}) {
    std::vector<float> v = {1.0f, 2.0f, bad};
    expect_error([&] { fxp_encode(v, 12, out); }, ErrorCategory::kBadInput, "index 2");
  }
  // 2^51 * 2^12 = 2^63 does not fit; -2^51 * 2^12 = -2^63 does.
  std::vector<float> edge = {-0x1p51f, 0x1p51f, 0.0f};
  expect_error([&] { fxp_encode(edge, 12, out); }, ErrorCategory::kBadInput, "index 1");
  EXPECT_EQ(fxp_encode1(-0x1p51, 12), u64{1} << 63);
  expect_error([&] { fxp_encode1(0x1p51, 12); }, ErrorCategory::kBadInput, "fixed-point");
  expect_error([&] { fxp_encode1(std::nan(""), 12); }, ErrorCategory::kBadInput, "fixed-point");
  expect_error([&] { fxp_encode1(-std::numeric_limits<double>::infinity(), 12); }, ErrorCategory::kBadInput,
               "fixed-point");
  std::vector<float> two(2);
  expect_error([&] { fxp_encode(two, 12, out); }, ErrorCategory::kInternal, "fxp_encode");
  std::vector<float> three(3);
  expect_error([&] { fxp_decode(std::vector<u64>(2), 12, three); }, ErrorCategory::kInternal, "fxp_decode");
}

}  // namespace
}  // namespace blindfold::mpc
