// AVX-512 negacyclic NTTs, eight butterflies per instruction: the algorithms
// of ntt.cc (Longa-Naehrig 2016 with Harvey 2014's lazy butterflies), with two
// ways to multiply by a twiddle with Shoup's method:
//  - Shoup64, any q < 2^61: AVX-512 has no 64x64-bit high product, so the
//    quotient estimate comes from three 32x32-bit multiplies and drops the
//    lowest partial product and two carries (mulhi_u64_approx, up to 2
//    short). The product is then in [0, 4q) instead of Harvey's [0, 2q), and
//    the butterflies keep values in [0, 8q) (forward) and [0, 4q) (inverse)
//    instead of [0, 4q) and [0, 2q): 8q <= 2^64 still. One correction per
//    butterfly as before, and a third fewer operations on the vector port
//    that limits this loop. The low products use vpmullq (AVX-512 DQ).
//  - Ifma52, q < 2^50: every lazy value (< 4q) fits the 52-bit IFMA
//    multiplier, so quotient and remainder take three vpmadd52 and an AND,
//    as in Intel HEXL (Boemer et al. 2021, "Intel HEXL: Accelerating
//    homomorphic encryption with Intel AVX512-IFMA52"). Its Shoup constant
//    floor(w * 2^52 / q) is the 64-bit one shifted right by 12 (nested floors).
// The outputs meet ntt.h's contract either way (reduced, or lazy in [0, 4q)
// forward and [0, 2q) inverse).
#include "he/avx512_internal.h"
#include "he/avx512_ops.h"
#include "he/ntt.h"

namespace blindfold::he::detail {
namespace {

inline long long ll(std::uint64_t v) {
  return static_cast<long long>(v);
}

// A twiddle multiplier: mul_lazy(x, w) = x * w mod q in [0, lazy); the
// butterflies then keep forward values in [0, 2 * lazy) and inverse values in
// [0, lazy).
struct Shoup64 {
  __m512i q, two_q, four_q;
  __m512i lazy;  // 4q
  struct Twiddle {
    __m512i w, ws, ws_hi;
  };
  BF_AVX512_IFMA BF_INLINE explicit Shoup64(std::uint64_t m)
      : q(_mm512_set1_epi64(ll(m))),
        two_q(_mm512_set1_epi64(ll(2 * m))),
        four_q(_mm512_set1_epi64(ll(4 * m))),
        lazy(four_q) {}
  BF_AVX512_IFMA BF_INLINE Twiddle twiddle(__m512i w, __m512i ws) const {
    return {w, ws, _mm512_srli_epi64(ws, 32)};
  }
  // Any 64-bit x -> [0, 4q): the estimate qhat' is at most 2 below Shoup's
  // qhat, itself at most 1 below floor(x * w / q).
  BF_AVX512_IFMA BF_INLINE __m512i mul_lazy(__m512i x, const Twiddle& t) const {
    const __m512i qhat = mulhi_u64_approx(x, t.ws, t.ws_hi);
    return _mm512_sub_epi64(_mm512_mullo_epi64(x, t.w), _mm512_mullo_epi64(qhat, q));
  }
  // Forward output [0, 8q) -> [0, q) (full) or [0, 4q).
  BF_AVX512_IFMA BF_INLINE __m512i finish_forward(__m512i x, bool full) const {
    x = cond_sub(x, four_q);
    return full ? cond_sub(cond_sub(x, two_q), q) : x;
  }
  // Inverse output [0, 4q) -> [0, q) (full) or [0, 2q).
  BF_AVX512_IFMA BF_INLINE __m512i finish_inverse(__m512i x, bool full) const {
    x = cond_sub(x, two_q);
    return full ? cond_sub(x, q) : x;
  }
};

struct Ifma52 {
  __m512i q, two_q;
  __m512i lazy;    // 2q
  __m512i neg_q;   // 2^52 - q: adding its product subtracts q's, mod 2^52
  __m512i mask52;  // 2^52 - 1
  struct Twiddle {
    __m512i w, ws52;
  };
  BF_AVX512_IFMA BF_INLINE explicit Ifma52(std::uint64_t m)
      : q(_mm512_set1_epi64(ll(m))),
        two_q(_mm512_set1_epi64(ll(2 * m))),
        lazy(two_q),
        neg_q(_mm512_set1_epi64(ll((std::uint64_t{1} << 52) - m))),
        mask52(_mm512_set1_epi64(ll((std::uint64_t{1} << 52) - 1))) {}
  BF_AVX512_IFMA BF_INLINE Twiddle twiddle(__m512i w, __m512i ws) const {
    return {w, _mm512_srli_epi64(ws, 12)};
  }
  // x < 2^52 -> [0, 2q): the remainder is below 2q < 2^51, so computing it
  // mod 2^52 is exact.
  BF_AVX512_IFMA BF_INLINE __m512i mul_lazy(__m512i x, const Twiddle& t) const {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i qhat = _mm512_madd52hi_epu64(zero, x, t.ws52);
    __m512i r = _mm512_madd52lo_epu64(zero, x, t.w);
    r = _mm512_madd52lo_epu64(r, qhat, neg_q);
    return _mm512_and_si512(r, mask52);
  }
  // Forward output [0, 4q) -> [0, q) or as is.
  BF_AVX512_IFMA BF_INLINE __m512i finish_forward(__m512i x, bool full) const {
    return full ? cond_sub(cond_sub(x, two_q), q) : x;
  }
  // Inverse output [0, 2q) -> [0, q) or as is.
  BF_AVX512_IFMA BF_INLINE __m512i finish_inverse(__m512i x, bool full) const {
    return full ? cond_sub(x, q) : x;
  }
};

// Harvey's lazy butterflies (Harvey 2014), lane-wise, with
// L = mul.lazy. Cooley-Tukey: x, y in [0, 2L) -> x + w*y, x - w*y in [0, 2L).
template <class Mul>
BF_AVX512_IFMA BF_INLINE void ct(__m512i& x, __m512i& y, const typename Mul::Twiddle& w,
                                 const Mul& mul) {
  const __m512i a = cond_sub(x, mul.lazy);  // [0, L)
  const __m512i t = mul.mul_lazy(y, w);     // [0, L)
  x = _mm512_add_epi64(a, t);
  y = _mm512_add_epi64(_mm512_sub_epi64(a, t), mul.lazy);
}

// Gentleman-Sande: x, y in [0, L) -> x + y, (x - y) * w in [0, L).
template <class Mul>
BF_AVX512_IFMA BF_INLINE void gs(__m512i& x, __m512i& y, const typename Mul::Twiddle& w,
                                 const Mul& mul) {
  const __m512i d = _mm512_add_epi64(_mm512_sub_epi64(x, y), mul.lazy);  // [0, 2L)
  x = cond_sub(_mm512_add_epi64(x, y), mul.lazy);
  y = mul.mul_lazy(d, w);
}

// The inverse's last stage with n^-1 merged in (ntt.cc, inverse_scalar):
// x, y in [0, L) -> (x + y) / n, (x - y) * psi^-brv(1) / n in [0, L).
template <class Mul>
BF_AVX512_IFMA BF_INLINE void gs_last(__m512i& x, __m512i& y, const typename Mul::Twiddle& ni,
                                      const typename Mul::Twiddle& nw, const Mul& mul) {
  const __m512i s = _mm512_add_epi64(x, y);
  const __m512i d = _mm512_add_epi64(_mm512_sub_epi64(x, y), mul.lazy);
  x = mul.mul_lazy(s, ni);
  y = mul.mul_lazy(d, nw);
}

// The last three forward stages (butterfly distances 4, 2, 1; the first three
// inverse ones) run together on sixteen consecutive values held in two
// vectors, regrouping lanes between stages so each vector still holds eight
// independent butterflies. Layouts, by the index of each value within the
// sixteen (lane k of permutex2var's second operand is index 8 + k):
//   distance 4: x = 0-3, 8-11          y = 4-7, 12-15
//   distance 2: x = 0,1,4,5,8,9,12,13  y = 2,3,6,7,10,11,14,15
//   distance 1: x = 0,2,4,...,14       y = 1,3,5,...,15
struct Perms {
  __m512i x42, y42;  // distance-4 (x, y) -> distance-2 (x, y), and back
  __m512i x21, y21;  // distance-2 (x, y) -> distance-1 (x, y), and back
  __m512i x1, y1;    // natural (v0, v1) -> distance-1 (x, y)
  __m512i lo1, hi1;  // distance-1 (x, y) -> natural (v0, v1)
  __m512i dup2;      // (w0, w1, w2, w3) -> (w0, w0, w1, w1, w2, w2, w3, w3)
  BF_AVX512_IFMA BF_INLINE Perms()
      : x42(lanes(0, 1, 8, 9, 4, 5, 12, 13)),
        y42(lanes(2, 3, 10, 11, 6, 7, 14, 15)),
        x21(lanes(0, 8, 2, 10, 4, 12, 6, 14)),
        y21(lanes(1, 9, 3, 11, 5, 13, 7, 15)),
        x1(lanes(0, 2, 4, 6, 8, 10, 12, 14)),
        y1(lanes(1, 3, 5, 7, 9, 11, 13, 15)),
        lo1(lanes(0, 8, 1, 9, 2, 10, 3, 11)),
        hi1(lanes(4, 12, 5, 13, 6, 14, 7, 15)),
        dup2(lanes(0, 0, 1, 1, 2, 2, 3, 3)) {}
};

BF_AVX512_IFMA BF_INLINE void regroup(__m512i& x, __m512i& y, __m512i px, __m512i py) {
  const __m512i nx = _mm512_permutex2var_epi64(x, px, y);
  y = _mm512_permutex2var_epi64(x, py, y);
  x = nx;
}

// One twiddle for a whole block.
template <class Mul>
BF_AVX512_IFMA BF_INLINE typename Mul::Twiddle twiddle_b(const Mul& mul, std::uint64_t w,
                                                         std::uint64_t ws) {
  return mul.twiddle(_mm512_set1_epi64(ll(w)), _mm512_set1_epi64(ll(ws)));
}

// Twiddles w[0], w[1] of two consecutive blocks, four lanes each.
template <class Mul>
BF_AVX512_IFMA BF_INLINE typename Mul::Twiddle twiddle_4(const Mul& mul, const std::uint64_t* w,
                                                         const std::uint64_t* ws) {
  return mul.twiddle(
      _mm512_inserti64x4(_mm512_set1_epi64(ll(w[0])), _mm256_set1_epi64x(ll(w[1])), 1),
      _mm512_inserti64x4(_mm512_set1_epi64(ll(ws[0])), _mm256_set1_epi64x(ll(ws[1])), 1));
}

// Twiddles w[0..4) of four consecutive blocks, two lanes each.
template <class Mul>
BF_AVX512_IFMA BF_INLINE typename Mul::Twiddle twiddle_2(const Mul& mul, const Perms& p,
                                                         const std::uint64_t* w,
                                                         const std::uint64_t* ws) {
  const __m512i vw =
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
  const __m512i vws =
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ws)));
  return mul.twiddle(_mm512_permutexvar_epi64(p.dup2, vw), _mm512_permutexvar_epi64(p.dup2, vws));
}

// Twiddles w[0..8) of eight consecutive blocks, one lane each.
template <class Mul>
BF_AVX512_IFMA BF_INLINE typename Mul::Twiddle twiddle_1(const Mul& mul, const std::uint64_t* w,
                                                         const std::uint64_t* ws) {
  return mul.twiddle(_mm512_loadu_si512(w), _mm512_loadu_si512(ws));
}

// Each chunk is a chain of three dependent butterflies, too long for the
// out-of-order window to overlap with the next chunk on its own, so the
// loops below process K = 2 chunks interleaved butterfly by butterfly.

// Forward distances 4, 2, 1 on K chunks of sixteen from v; i is the chunk's
// first distance-4 block index and m = n/8.
template <int K, class Mul>
BF_AVX512_IFMA BF_INLINE void forward_last3(std::uint64_t* v, std::size_t i, std::size_t m,
                                            const std::uint64_t* w, const std::uint64_t* ws,
                                            const Perms& p, const Mul& mul, bool full) {
  __m512i x[K], y[K];
#pragma GCC unroll 2
  for (int k = 0; k < K; ++k) {
    const __m512i v0 = _mm512_loadu_si512(v + 16 * k);
    const __m512i v1 = _mm512_loadu_si512(v + 16 * k + 8);
    x[k] = _mm512_shuffle_i64x2(v0, v1, 0x44);  // v0[0..4), v1[0..4)
    y[k] = _mm512_shuffle_i64x2(v0, v1, 0xEE);  // v0[4..8), v1[4..8)
  }
#pragma GCC unroll 2
  for (int k = 0; k < K; ++k) {
    const std::size_t b = m + i + 2 * k;
    ct(x[k], y[k], twiddle_4(mul, w + b, ws + b), mul);
  }
#pragma GCC unroll 2
  for (int k = 0; k < K; ++k) {
    regroup(x[k], y[k], p.x42, p.y42);
    const std::size_t b = 2 * (m + i + 2 * k);
    ct(x[k], y[k], twiddle_2(mul, p, w + b, ws + b), mul);
  }
#pragma GCC unroll 2
  for (int k = 0; k < K; ++k) {
    regroup(x[k], y[k], p.x21, p.y21);
    const std::size_t b = 4 * (m + i + 2 * k);
    ct(x[k], y[k], twiddle_1(mul, w + b, ws + b), mul);
  }
#pragma GCC unroll 2
  for (int k = 0; k < K; ++k) {
    const __m512i rx = mul.finish_forward(x[k], full);
    const __m512i ry = mul.finish_forward(y[k], full);
    _mm512_storeu_si512(v + 16 * k, _mm512_permutex2var_epi64(rx, p.lo1, ry));
    _mm512_storeu_si512(v + 16 * k + 8, _mm512_permutex2var_epi64(rx, p.hi1, ry));
  }
}

// Inverse distances 1, 2, 4 on K chunks (the mirror of forward_last3).
template <int K, class Mul>
BF_AVX512_IFMA BF_INLINE void inverse_first3(std::uint64_t* v, std::size_t i, std::size_t m,
                                             const std::uint64_t* w, const std::uint64_t* ws,
                                             const Perms& p, const Mul& mul) {
  __m512i x[K], y[K];
#pragma GCC unroll 2
  for (int k = 0; k < K; ++k) {
    const __m512i v0 = _mm512_loadu_si512(v + 16 * k);
    const __m512i v1 = _mm512_loadu_si512(v + 16 * k + 8);
    x[k] = _mm512_permutex2var_epi64(v0, p.x1, v1);
    y[k] = _mm512_permutex2var_epi64(v0, p.y1, v1);
  }
#pragma GCC unroll 2
  for (int k = 0; k < K; ++k) {
    const std::size_t b = 4 * (m + i + 2 * k);
    gs(x[k], y[k], twiddle_1(mul, w + b, ws + b), mul);
    regroup(x[k], y[k], p.x21, p.y21);  // its own inverse
  }
#pragma GCC unroll 2
  for (int k = 0; k < K; ++k) {
    const std::size_t b = 2 * (m + i + 2 * k);
    gs(x[k], y[k], twiddle_2(mul, p, w + b, ws + b), mul);
    regroup(x[k], y[k], p.x42, p.y42);  // likewise
  }
#pragma GCC unroll 2
  for (int k = 0; k < K; ++k) {
    const std::size_t b = m + i + 2 * k;
    gs(x[k], y[k], twiddle_4(mul, w + b, ws + b), mul);
    _mm512_storeu_si512(v + 16 * k, _mm512_shuffle_i64x2(x[k], y[k], 0x44));
    _mm512_storeu_si512(v + 16 * k + 8, _mm512_shuffle_i64x2(x[k], y[k], 0xEE));
  }
}

// Stages with butterfly distance >= 16 run two at a time (radix 4), halving
// the passes over an array that at N = 8192 (64 KiB) no longer fits L1.
template <class Mul>
BF_AVX512_IFMA BF_INLINE void forward(std::uint64_t* a, const NttTables& t, bool full,
                                      const Mul& mul) {
  const std::size_t n = t.n();
  const std::uint64_t* w = t.root_powers().data();
  const std::uint64_t* ws = t.root_powers_shoup().data();
  const Perms p;
  std::size_t m = 1;
  std::size_t gap = n >> 1;
  // log2(n) - 3 stages have distance >= 8; an odd one out runs alone.
  if ((t.log_n() - 3) % 2 == 1) {
    const auto tw = twiddle_b(mul, w[1], ws[1]);
    for (std::size_t j = 0; j < gap; j += 8) {
      __m512i x = _mm512_loadu_si512(a + j);
      __m512i y = _mm512_loadu_si512(a + gap + j);
      ct(x, y, tw, mul);
      _mm512_storeu_si512(a + j, x);
      _mm512_storeu_si512(a + gap + j, y);
    }
    m = 2;
    gap >>= 1;
  }
  // Block i of distance `gap` (twiddle w[m+i]) splits into blocks 2i, 2i+1
  // of distance gap/2 (twiddles w[2m+2i], w[2m+2i+1]).
  for (; gap >= 16; m <<= 2, gap >>= 2) {
    const std::size_t h = gap >> 1;
    for (std::size_t i = 0; i < m; ++i) {
      const auto t1 = twiddle_b(mul, w[m + i], ws[m + i]);
      const auto t2 = twiddle_b(mul, w[2 * m + 2 * i], ws[2 * m + 2 * i]);
      const auto t3 = twiddle_b(mul, w[2 * m + 2 * i + 1], ws[2 * m + 2 * i + 1]);
      std::uint64_t* b = a + 2 * i * gap;
      for (std::size_t j = 0; j < h; j += 8) {
        __m512i x0 = _mm512_loadu_si512(b + j);
        __m512i x1 = _mm512_loadu_si512(b + h + j);
        __m512i x2 = _mm512_loadu_si512(b + gap + j);
        __m512i x3 = _mm512_loadu_si512(b + gap + h + j);
        ct(x0, x2, t1, mul);
        ct(x1, x3, t1, mul);
        ct(x0, x1, t2, mul);
        ct(x2, x3, t3, mul);
        _mm512_storeu_si512(b + j, x0);
        _mm512_storeu_si512(b + h + j, x1);
        _mm512_storeu_si512(b + gap + j, x2);
        _mm512_storeu_si512(b + gap + h + j, x3);
      }
    }
  }
  // Distances 4, 2, 1 in registers, with the final correction; m = n/8.
  std::size_t c = 0;
  for (; c + 32 <= n; c += 32) forward_last3<2>(a + c, c >> 3, m, w, ws, p, mul, full);
  if (c < n) forward_last3<1>(a + c, c >> 3, m, w, ws, p, mul, full);
}

template <class Mul>
BF_AVX512_IFMA BF_INLINE void inverse(std::uint64_t* a, const NttTables& t, bool full,
                                      const Mul& mul) {
  const std::size_t n = t.n();
  const std::uint64_t* w = t.inv_root_powers().data();
  const std::uint64_t* ws = t.inv_root_powers_shoup().data();
  const auto ni = twiddle_b(mul, t.inv_n(), t.inv_n_shoup());
  const auto nw = twiddle_b(mul, t.inv_n_root(), t.inv_n_root_shoup());
  const Perms p;
  // Distances 1, 2, 4 in registers (m = n/2, n/4, n/8).
  std::size_t m = n >> 3;
  std::size_t c = 0;
  for (; c + 32 <= n; c += 32) inverse_first3<2>(a + c, c >> 3, m, w, ws, p, mul);
  if (c < n) inverse_first3<1>(a + c, c >> 3, m, w, ws, p, mul);
  m >>= 1;
  std::size_t gap = 8;
  // Distances 8 .. n/2 remain, log2(n) - 3 stages, the last (m = 1) with
  // n^-1. An odd one out runs alone first, or is that last stage.
  if ((t.log_n() - 3) % 2 == 1) {
    if (m == 1) {
      for (std::size_t j = 0; j < gap; j += 8) {
        __m512i x = _mm512_loadu_si512(a + j);
        __m512i y = _mm512_loadu_si512(a + gap + j);
        gs_last(x, y, ni, nw, mul);
        _mm512_storeu_si512(a + j, mul.finish_inverse(x, full));
        _mm512_storeu_si512(a + gap + j, mul.finish_inverse(y, full));
      }
      return;
    }
    for (std::size_t i = 0; i < m; ++i) {
      const auto tw = twiddle_b(mul, w[m + i], ws[m + i]);
      std::uint64_t* b = a + 2 * i * gap;
      for (std::size_t j = 0; j < gap; j += 8) {
        __m512i x = _mm512_loadu_si512(b + j);
        __m512i y = _mm512_loadu_si512(b + gap + j);
        gs(x, y, tw, mul);
        _mm512_storeu_si512(b + j, x);
        _mm512_storeu_si512(b + gap + j, y);
      }
    }
    m >>= 1;
    gap <<= 1;
  }
  // Blocks 2i, 2i+1 of distance `gap` (twiddles w[m+2i], w[m+2i+1]) merge
  // into block i of distance 2*gap (twiddle w[m/2+i]).
  for (; m > 2; m >>= 2, gap <<= 2) {
    for (std::size_t i = 0; i < m / 2; ++i) {
      const auto ta = twiddle_b(mul, w[m + 2 * i], ws[m + 2 * i]);
      const auto tb = twiddle_b(mul, w[m + 2 * i + 1], ws[m + 2 * i + 1]);
      const auto tc = twiddle_b(mul, w[m / 2 + i], ws[m / 2 + i]);
      std::uint64_t* b = a + 4 * i * gap;
      for (std::size_t j = 0; j < gap; j += 8) {
        __m512i x0 = _mm512_loadu_si512(b + j);
        __m512i x1 = _mm512_loadu_si512(b + gap + j);
        __m512i x2 = _mm512_loadu_si512(b + 2 * gap + j);
        __m512i x3 = _mm512_loadu_si512(b + 3 * gap + j);
        gs(x0, x1, ta, mul);
        gs(x2, x3, tb, mul);
        gs(x0, x2, tc, mul);
        gs(x1, x3, tc, mul);
        _mm512_storeu_si512(b + j, x0);
        _mm512_storeu_si512(b + gap + j, x1);
        _mm512_storeu_si512(b + 2 * gap + j, x2);
        _mm512_storeu_si512(b + 3 * gap + j, x3);
      }
    }
  }
  // The last two stages: m = 2 (twiddles w[2], w[3]) and the n^-1 stage.
  const auto ta = twiddle_b(mul, w[2], ws[2]);
  const auto tb = twiddle_b(mul, w[3], ws[3]);
  for (std::size_t j = 0; j < gap; j += 8) {
    __m512i x0 = _mm512_loadu_si512(a + j);
    __m512i x1 = _mm512_loadu_si512(a + gap + j);
    __m512i x2 = _mm512_loadu_si512(a + 2 * gap + j);
    __m512i x3 = _mm512_loadu_si512(a + 3 * gap + j);
    gs(x0, x1, ta, mul);
    gs(x2, x3, tb, mul);
    gs_last(x0, x2, ni, nw, mul);
    gs_last(x1, x3, ni, nw, mul);
    _mm512_storeu_si512(a + j, mul.finish_inverse(x0, full));
    _mm512_storeu_si512(a + gap + j, mul.finish_inverse(x1, full));
    _mm512_storeu_si512(a + 2 * gap + j, mul.finish_inverse(x2, full));
    _mm512_storeu_si512(a + 3 * gap + j, mul.finish_inverse(x3, full));
  }
}

BF_AVX512_IFMA void forward_shoup64(std::uint64_t* a, const NttTables& t, bool full) {
  forward(a, t, full, Shoup64(t.modulus().value()));
}
BF_AVX512_IFMA void inverse_shoup64(std::uint64_t* a, const NttTables& t, bool full) {
  inverse(a, t, full, Shoup64(t.modulus().value()));
}
BF_AVX512_IFMA void forward_ifma52(std::uint64_t* a, const NttTables& t, bool full) {
  forward(a, t, full, Ifma52(t.modulus().value()));
}
BF_AVX512_IFMA void inverse_ifma52(std::uint64_t* a, const NttTables& t, bool full) {
  inverse(a, t, full, Ifma52(t.modulus().value()));
}

}  // namespace

void ntt_forward_avx512(std::uint64_t* a, const NttTables& t, bool full) {
  forward_shoup64(a, t, full);
}
void ntt_inverse_avx512(std::uint64_t* a, const NttTables& t, bool full) {
  inverse_shoup64(a, t, full);
}
void ntt_forward_ifma(std::uint64_t* a, const NttTables& t, bool full) {
  forward_ifma52(a, t, full);
}
void ntt_inverse_ifma(std::uint64_t* a, const NttTables& t, bool full) {
  inverse_ifma52(a, t, full);
}

}  // namespace blindfold::he::detail
