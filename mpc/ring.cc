// Ring kernels over Z_2^64: see ring.h.
#include "mpc/ring.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace blindfold::mpc {

namespace {

[[noreturn]] void size_error(const char* fn, const std::string& detail) {
  throw Error(ErrorCategory::kInternal, std::string("mpc ") + fn + ": " + detail);
}

void check_same(const char* fn, std::size_t a, std::size_t b, std::size_t out) {
  if (a != b || a != out) {
    size_error(fn, "span sizes differ (" + std::to_string(a) + ", " + std::to_string(b) + ", out " +
                       std::to_string(out) + ")");
  }
}

void check_same(const char* fn, std::size_t a, std::size_t out) {
  if (a != out) {
    size_error(fn, "span sizes differ (" + std::to_string(a) + ", out " + std::to_string(out) + ")");
  }
}

void check_frac_bits(const char* fn, int frac_bits) {
  if (frac_bits < 0 || frac_bits > 62) {
    size_error(fn, "frac_bits " + std::to_string(frac_bits) + " outside [0, 62]");
  }
}

}  // namespace

void ring_add(std::span<const u64> a, std::span<const u64> b, std::span<u64> out) {
  check_same("ring_add", a.size(), b.size(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] + b[i];
}

void ring_sub(std::span<const u64> a, std::span<const u64> b, std::span<u64> out) {
  check_same("ring_sub", a.size(), b.size(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] - b[i];
}

void ring_neg(std::span<const u64> a, std::span<u64> out) {
  check_same("ring_neg", a.size(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = u64{0} - a[i];
}

void ring_mul(std::span<const u64> a, std::span<const u64> b, std::span<u64> out) {
  check_same("ring_mul", a.size(), b.size(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] * b[i];
}

void ring_mul_scalar(std::span<const u64> a, u64 c, std::span<u64> out) {
  check_same("ring_mul_scalar", a.size(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] * c;
}

void ring_mul_acc(std::span<const u64> a, std::span<const u64> b, std::span<u64> acc) {
  check_same("ring_mul_acc", a.size(), b.size(), acc.size());
  for (std::size_t i = 0; i < acc.size(); ++i) acc[i] += a[i] * b[i];
}

void ring_gather(std::span<const u64> a, std::span<const std::uint32_t> idx, std::span<u64> out) {
  check_same("ring_gather", idx.size(), out.size());
  const std::size_t n = a.size();
  for (std::size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] >= n) {
      size_error("ring_gather", "index " + std::to_string(idx[i]) + " at position " + std::to_string(i) +
                                    " out of range for a source of " + std::to_string(n) + " elements");
    }
  }
  for (std::size_t i = 0; i < idx.size(); ++i) out[i] = a[idx[i]];
}

void ring_sar(std::span<const u64> a, int bits, std::span<u64> out) {
  check_same("ring_sar", a.size(), out.size());
  if (bits < 0 || bits > 63) size_error("ring_sar", "shift " + std::to_string(bits) + " outside [0, 63]");
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<u64>(static_cast<std::int64_t>(a[i]) >> bits);
  }
}

// ---- ring_matmul -----------------------------------------------------------
//
// Two register-blocked kernels, written once over GCC vector extensions and
// compiled into an AVX-512 entry point (target attribute, chosen at run time)
// and one for the build's target (AVX2 by default). Every helper is
// always_inline so that it takes the target of the entry point it lands in.
//  - Panel kernel (n >= kDotMaxN, or n = 8): C[R rows][W vectors] stays in registers
//    while p runs over all of k; each step broadcasts A[i][p] and multiplies
//    it into W vectors of B row p. One panel of B (k x W*L) is reused from
//    cache by every block of rows.
//  - Dot kernel (small n, the dense layers at small batch): B is transposed
//    into a k-contiguous copy and C[i][j] is a dot product of A row i and
//    B column j, vectorised over p, R rows by S columns at once.

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // wide vectors between inlined helpers

namespace {

#define BF_RING_INLINE inline __attribute__((always_inline))

typedef u64 V4 __attribute__((vector_size(32)));
typedef u64 V8 __attribute__((vector_size(64)));

template <class V>
BF_RING_INLINE V vload(const u64* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

template <class V>
BF_RING_INLINE void vstore(u64* p, V v) {
  __builtin_memcpy(p, &v, sizeof v);
}

template <class V>
constexpr int lanes() {
  return static_cast<int>(sizeof(V) / sizeof(u64));
}

struct MatmulCall {
  const u64* a;
  const u64* b;
  u64* c;
  std::size_t m, k, n;
  bool accumulate;
};

// Below this many columns the dot kernel runs, except for n = 8 (one full
// vector of 8 lanes). Measured with AVX-512 on (100, 256, n) and
// (128, 784, n): n = 8: panel 10.3, dot 9.2 GMAC/s; n = 12: panel 7.3, dot
// 9.2; n = 16: panel 10.6. The AVX2 kernels are equal within noise there.
constexpr std::size_t kDotMaxN = 16;

// C rows [0, R) x W*L columns (+)= A rows [0, R) (stride lda, length k) * B
// (k rows, stride ldb).
template <class V, int R, int W>
BF_RING_INLINE void panel_kernel(const u64* a, std::size_t lda, const u64* b, std::size_t ldb, u64* c,
                                 std::size_t ldc, std::size_t k, bool accumulate) {
  constexpr int L = lanes<V>();
  V s[R][W];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int w = 0; w < W; ++w) s[r][w] = accumulate ? vload<V>(c + r * ldc + w * L) : V{};
  }
  for (std::size_t p = 0; p < k; ++p) {
    V bv[W];
#pragma GCC unroll 16
    for (int w = 0; w < W; ++w) bv[w] = vload<V>(b + p * ldb + w * L);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const V av = V{} + a[r * lda + p];
#pragma GCC unroll 16
      for (int w = 0; w < W; ++w) s[r][w] += av * bv[w];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int w = 0; w < W; ++w) vstore<V>(c + r * ldc + w * L, s[r][w]);
  }
}

// All rows [i0, i1) of one panel of W vectors, R rows at a time; c points
// at the panel's row i0.
template <class V, int R, int W>
BF_RING_INLINE void panel_rows(const MatmulCall& g, std::size_t i0, std::size_t i1, const u64* b,
                               std::size_t ldb, u64* c, std::size_t ldc, bool accumulate) {
  static_assert(R == 4);
  std::size_t i = i0;
  for (; i + R <= i1; i += R) {
    panel_kernel<V, R, W>(g.a + i * g.k, g.k, b, ldb, c + (i - i0) * ldc, ldc, g.k, accumulate);
  }
  u64* ct = c + (i - i0) * ldc;
  switch (i1 - i) {
    case 3: panel_kernel<V, 3, W>(g.a + i * g.k, g.k, b, ldb, ct, ldc, g.k, accumulate); break;
    case 2: panel_kernel<V, 2, W>(g.a + i * g.k, g.k, b, ldb, ct, ldc, g.k, accumulate); break;
    case 1: panel_kernel<V, 1, W>(g.a + i * g.k, g.k, b, ldb, ct, ldc, g.k, accumulate); break;
    default: break;
  }
}

// C rows [i0, i1), columns [j0, j1) with the panel kernel. Full panels of W
// vectors, then single vectors, then the last < L columns through a
// zero-padded copy of B's columns and a scratch C. When more than one block
// of rows reuses a panel of B and B's rows are far apart, the panel is first
// copied to a contiguous buffer: with n a multiple of a large power of two
// (4096 columns = 32 KiB) the strided panel maps onto a few cache sets and
// thrashes (measured with AVX-512: 6.0 -> 8.2 GMAC/s on (16, 400, 4096));
// for narrow B the copy only costs (10.9 -> 8.8 on (16, 400, 64)).
template <class V, int W>
BF_RING_INLINE void panel_block(const MatmulCall& g, std::size_t i0, std::size_t i1, std::size_t j0,
                                std::size_t j1) {
  constexpr std::size_t L = lanes<V>();
  constexpr std::size_t NR = W * L;
  const bool pack = i1 - i0 > 4 && g.n >= 256;
  std::vector<u64> packed(pack ? g.k * NR : 0);
  std::size_t j = j0;
  for (; j + NR <= j1; j += NR) {
    if (pack) {
      for (std::size_t p = 0; p < g.k; ++p) {
#pragma GCC unroll 16
        for (int w = 0; w < W; ++w) vstore<V>(packed.data() + p * NR + w * L, vload<V>(g.b + p * g.n + j + w * L));
      }
      panel_rows<V, 4, W>(g, i0, i1, packed.data(), NR, g.c + i0 * g.n + j, g.n, g.accumulate);
    } else {
      panel_rows<V, 4, W>(g, i0, i1, g.b + j, g.n, g.c + i0 * g.n + j, g.n, g.accumulate);
    }
  }
  for (; j + L <= j1; j += L) {
    panel_rows<V, 4, 1>(g, i0, i1, g.b + j, g.n, g.c + i0 * g.n + j, g.n, g.accumulate);
  }
  if (j == j1) return;
  const std::size_t w = j1 - j;
  std::vector<u64> bpad(g.k * L, 0), cpad((i1 - i0) * L, 0);
  for (std::size_t p = 0; p < g.k; ++p) {
    for (std::size_t t = 0; t < w; ++t) bpad[p * L + t] = g.b[p * g.n + j + t];
  }
  if (g.accumulate) {
    for (std::size_t i = i0; i < i1; ++i) {
      for (std::size_t t = 0; t < w; ++t) cpad[(i - i0) * L + t] = g.c[i * g.n + j + t];
    }
  }
  panel_rows<V, 4, 1>(g, i0, i1, bpad.data(), L, cpad.data(), L, g.accumulate);
  for (std::size_t i = i0; i < i1; ++i) {
    for (std::size_t t = 0; t < w; ++t) g.c[i * g.n + j + t] = cpad[(i - i0) * L + t];
  }
}

template <class V>
BF_RING_INLINE u64 hsum(V v) {
  u64 t = 0;
  for (int l = 0; l < lanes<V>(); ++l) t += v[l];
  return t;
}

// C[R rows][S columns] (+)= dot products of A rows (stride lda) and rows of
// the transposed B (stride ldbt), each of length k.
template <class V, int R, int S>
BF_RING_INLINE void dot_kernel(const u64* a, std::size_t lda, const u64* bt, std::size_t ldbt, u64* c,
                               std::size_t ldc, std::size_t k, bool accumulate) {
  constexpr std::size_t L = lanes<V>();
  V s[R][S];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int q = 0; q < S; ++q) s[r][q] = V{};
  }
  const std::size_t kv = k - k % L;
  for (std::size_t p = 0; p < kv; p += L) {
    V bv[S];
#pragma GCC unroll 16
    for (int q = 0; q < S; ++q) bv[q] = vload<V>(bt + q * ldbt + p);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const V av = vload<V>(a + r * lda + p);
#pragma GCC unroll 16
      for (int q = 0; q < S; ++q) s[r][q] += av * bv[q];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int q = 0; q < S; ++q) {
      u64 t = hsum(s[r][q]);
      for (std::size_t p = kv; p < k; ++p) t += a[r * lda + p] * bt[q * ldbt + p];
      u64& out = c[r * ldc + q];
      out = accumulate ? out + t : t;
    }
  }
}

template <class V, int R, int S>
BF_RING_INLINE void dot_cols(const MatmulCall& g, std::size_t i, const u64* bt) {
  static_assert(S == 2 || S == 4);
  const u64* a = g.a + i * g.k;
  u64* c = g.c + i * g.n;
  std::size_t j = 0;
  for (; j + S <= g.n; j += S) dot_kernel<V, R, S>(a, g.k, bt + j * g.k, g.k, c + j, g.n, g.k, g.accumulate);
  switch (g.n - j) {
    case 3: dot_kernel<V, R, 3>(a, g.k, bt + j * g.k, g.k, c + j, g.n, g.k, g.accumulate); break;
    case 2: dot_kernel<V, R, 2>(a, g.k, bt + j * g.k, g.k, c + j, g.n, g.k, g.accumulate); break;
    case 1: dot_kernel<V, R, 1>(a, g.k, bt + j * g.k, g.k, c + j, g.n, g.k, g.accumulate); break;
    default: break;
  }
}

// C rows [i0, i1) with the dot kernel; bt = B transposed (n x k). S columns
// at a time (4 with 32 vector registers, 2 with 16).
template <class V, int S>
BF_RING_INLINE void dot_block(const MatmulCall& g, std::size_t i0, std::size_t i1, const u64* bt) {
  std::size_t i = i0;
  for (; i + 4 <= i1; i += 4) dot_cols<V, 4, S>(g, i, bt);
  switch (i1 - i) {
    case 3: dot_cols<V, 3, S>(g, i, bt); break;
    case 2: dot_cols<V, 2, S>(g, i, bt); break;
    case 1: dot_cols<V, 1, S>(g, i, bt); break;
    default: break;
  }
}

// One block of C: rows [i0, i1), columns [j0, j1); bt is B transposed when
// the dot kernel runs (then j0 = 0, j1 = n), else null.
using BlockFn = void (*)(const MatmulCall&, std::size_t, std::size_t, std::size_t, std::size_t, const u64*);

__attribute__((target("avx512f,avx512dq,avx512vl"))) void block_avx512(const MatmulCall& g, std::size_t i0,
                                                                        std::size_t i1, std::size_t j0,
                                                                        std::size_t j1, const u64* bt) {
  if (bt != nullptr) {
    dot_block<V8, 4>(g, i0, i1, bt);
  } else {
    panel_block<V8, 4>(g, i0, i1, j0, j1);
  }
}

void block_vector(const MatmulCall& g, std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1,
                  const u64* bt) {
  if (bt != nullptr) {
    dot_block<V4, 2>(g, i0, i1, bt);
  } else {
    panel_block<V4, 2>(g, i0, i1, j0, j1);
  }
}

// The plain loop: rows [i0, i1), columns [j0, j1).
void block_portable(const MatmulCall& g, std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1,
                    const u64*) {
  for (std::size_t i = i0; i < i1; ++i) {
    u64* crow = g.c + i * g.n;
    if (!g.accumulate) {
      for (std::size_t j = j0; j < j1; ++j) crow[j] = 0;
    }
    for (std::size_t p = 0; p < g.k; ++p) {
      const u64 av = g.a[i * g.k + p];
      const u64* brow = g.b + p * g.n;
      for (std::size_t j = j0; j < j1; ++j) crow[j] += av * brow[j];
    }
  }
}

bool cpu_has_avx512() noexcept {
#if defined(__x86_64__)
  static const bool has = [] {
    __builtin_cpu_init();
    // libgcc also checks that the OS saves the AVX-512 state (XCR0).
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
  }();
  return has;
#else
  return false;
#endif
}

// Work above which ring_matmul splits across the thread pool (multiply-adds).
constexpr std::size_t kParallelMacs = std::size_t{1} << 20;

void matmul_run(detail::MatmulKernel kernel, bool parallel, const MatmulCall& g) {
  using detail::MatmulKernel;
  if (kernel == MatmulKernel::kAuto) kernel = cpu_has_avx512() ? MatmulKernel::kAvx512 : MatmulKernel::kVector;
  BlockFn fn = nullptr;
  std::size_t panel = 1;  // column granularity of a split
  switch (kernel) {
    case MatmulKernel::kAvx512: fn = block_avx512; panel = 32; break;
    case MatmulKernel::kVector: fn = block_vector; panel = 8; break;
    default: fn = block_portable; panel = 8; break;
  }
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {
    if (!g.accumulate) std::fill(g.c, g.c + g.m * g.n, u64{0});
    return;
  }
  std::vector<u64> bt;
  const bool dot = kernel != MatmulKernel::kPortable && g.n < kDotMaxN && g.n != 8;
  if (dot) {
    bt.resize(g.n * g.k);
    for (std::size_t p = 0; p < g.k; ++p) {
      for (std::size_t j = 0; j < g.n; ++j) bt[j * g.k + p] = g.b[p * g.n + j];
    }
  }
  const u64* btp = dot ? bt.data() : nullptr;
  ThreadPool& pool = ThreadPool::global();
  const std::size_t macs = g.m * g.k * g.n;
  if (!parallel || macs <= kParallelMacs || pool.size() < 2) {
    fn(g, 0, g.m, 0, g.n, btp);
    return;
  }
  const std::size_t panels = (g.n + panel - 1) / panel;
  if (!dot && panels >= 2 * static_cast<std::size_t>(pool.size())) {
    // Split columns: whole panels per task, the ragged end with the last.
    pool.parallel_for(static_cast<std::int64_t>(panels), [&](std::int64_t b, std::int64_t e) {
      const std::size_t j0 = static_cast<std::size_t>(b) * panel;
      const std::size_t j1 = std::min(g.n, static_cast<std::size_t>(e) * panel);
      fn(g, 0, g.m, j0, j1, btp);
    });
  } else {
    pool.parallel_for(static_cast<std::int64_t>(g.m), [&](std::int64_t b, std::int64_t e) {
      fn(g, static_cast<std::size_t>(b), static_cast<std::size_t>(e), 0, g.n, btp);
    });
  }
}

void check_matmul(std::span<const u64> a, std::span<const u64> b, std::span<u64> c, std::size_t m,
                  std::size_t k, std::size_t n) {
  if (a.size() != m * k || b.size() != k * n || c.size() != m * n) {
    size_error("ring_matmul", "spans of " + std::to_string(a.size()) + ", " + std::to_string(b.size()) + ", " +
                                  std::to_string(c.size()) + " elements for m=" + std::to_string(m) +
                                  " k=" + std::to_string(k) + " n=" + std::to_string(n) +
                                  " (want m*k, k*n, m*n)");
  }
}

}  // namespace

#pragma GCC diagnostic pop

void ring_matmul(std::span<const u64> a, std::span<const u64> b, std::span<u64> c, std::size_t m,
                 std::size_t k, std::size_t n, bool accumulate) {
  check_matmul(a, b, c, m, k, n);
  matmul_run(detail::MatmulKernel::kAuto, true, MatmulCall{a.data(), b.data(), c.data(), m, k, n, accumulate});
}

namespace detail {

bool matmul_kernel_supported(MatmulKernel kernel) noexcept {
  return kernel != MatmulKernel::kAvx512 || cpu_has_avx512();
}

const char* matmul_kernel_name(MatmulKernel kernel) noexcept {
  switch (kernel) {
    case MatmulKernel::kAuto: return "auto";
    case MatmulKernel::kPortable: return "portable";
    case MatmulKernel::kVector: return "vector";
    case MatmulKernel::kAvx512: return "avx512";
  }
  return "unknown";
}

void ring_matmul_kernel(MatmulKernel kernel, bool parallel, std::span<const u64> a, std::span<const u64> b,
                        std::span<u64> c, std::size_t m, std::size_t k, std::size_t n, bool accumulate) {
  check_matmul(a, b, c, m, k, n);
  if (!matmul_kernel_supported(kernel)) {
    throw Error(ErrorCategory::kUnsupported,
                std::string("ring_matmul: kernel ") + matmul_kernel_name(kernel) + " is not supported by this CPU");
  }
  matmul_run(kernel, parallel, MatmulCall{a.data(), b.data(), c.data(), m, k, n, accumulate});
}

}  // namespace detail

namespace {

// 2^63 as a double, exactly: encodings must lie in [-2^63, 2^63).
constexpr double kTwo63 = 9223372036854775808.0;

// Encodes one value or returns false when its encoding does not fit.
bool encode_one(double v, int frac_bits, u64& out) {
  if (!std::isfinite(v)) return false;
  const double scaled = std::round(std::ldexp(v, frac_bits));
  if (!(scaled >= -kTwo63 && scaled < kTwo63)) return false;
  out = static_cast<u64>(static_cast<std::int64_t>(scaled));
  return true;
}

}  // namespace

void fxp_encode(std::span<const float> v, int frac_bits, std::span<u64> out) {
  check_same("fxp_encode", v.size(), out.size());
  check_frac_bits("fxp_encode", frac_bits);
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!encode_one(static_cast<double>(v[i]), frac_bits, out[i])) {
      throw Error(ErrorCategory::kBadInput,
                  "fixed-point encoding: value " + std::to_string(v[i]) + " at index " + std::to_string(i) +
                      " is not finite or does not fit in 64 bits with " + std::to_string(frac_bits) +
                      " fractional bits");
    }
  }
}

void fxp_decode(std::span<const u64> a, int frac_bits, std::span<float> out) {
  check_same("fxp_decode", a.size(), out.size());
  check_frac_bits("fxp_decode", frac_bits);
  for (std::size_t i = 0; i < a.size(); ++i) {
    out[i] = static_cast<float>(std::ldexp(static_cast<double>(static_cast<std::int64_t>(a[i])), -frac_bits));
  }
}

u64 fxp_encode1(double v, int frac_bits) {
  check_frac_bits("fxp_encode1", frac_bits);
  u64 out = 0;
  if (!encode_one(v, frac_bits, out)) {
    throw Error(ErrorCategory::kBadInput, "fixed-point encoding: value " + std::to_string(v) +
                                              " is not finite or does not fit in 64 bits with " +
                                              std::to_string(frac_bits) + " fractional bits");
  }
  return out;
}

double fxp_decode1(u64 a, int frac_bits) {
  check_frac_bits("fxp_decode1", frac_bits);
  return std::ldexp(static_cast<double>(static_cast<std::int64_t>(a)), -frac_bits);
}

}  // namespace blindfold::mpc
