// Internal to he/: AVX-512 helpers for 64-bit modular arithmetic, for the
// translation units that hold AVX-512 kernels (modarith_avx512.cc,
// ntt_avx512.cc). Every function carries a `target` attribute instead of the
// TU being built with -mavx512f: GCC 12.2 miscompiles some generic code when
// AVX-512 is enabled for a whole file (cmake/arch_check.cc). For the same
// reason these functions hold no scalar constant arrays, only intrinsics.
#pragma once

// GCC 12 reports the deliberate self-initialisation inside its own
// _mm512_undefined_epi32 wherever an intrinsic using it is inlined: a false
// positive, silenced for the intrinsic headers only (as in model/ops_nn.cc).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <cstdint>

#define BF_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl")))
// The NTT templates carry IFMA for their IFMA instantiation; the compiler
// emits vpmadd52* only for the intrinsics, never for generic code, so the
// 64-bit instantiation still runs on AVX-512 CPUs without IFMA (checked with
// objdump when this was written).
#define BF_AVX512_IFMA __attribute__((target("avx512f,avx512dq,avx512vl,avx512ifma")))
#define BF_INLINE inline __attribute__((always_inline))

namespace blindfold::he::detail {

/// The eight-lane index vector (e0, ..., e7), written in lane order
/// (_mm512_set_epi64 takes them highest lane first).
BF_AVX512 BF_INLINE __m512i lanes(long long e0, long long e1, long long e2, long long e3,
                                  long long e4, long long e5, long long e6, long long e7) {
  return _mm512_set_epi64(e7, e6, e5, e4, e3, e2, e1, e0);
}

/// x in [0, 2m) -> x mod m in [0, m), per lane, for m < 2^63: when x < m,
/// x - m wraps above x, so the unsigned minimum picks the right one.
BF_AVX512 BF_INLINE __m512i cond_sub(__m512i x, __m512i m) {
  return _mm512_min_epu64(x, _mm512_sub_epi64(x, m));
}

/// High 64 bits of the 128-bit products a * b per lane, from four 32x32-bit
/// products (AVX-512 has no 64-bit high multiply); b_hi = b >> 32 is passed
/// in so loops with a fixed b shift it once.
BF_AVX512 BF_INLINE __m512i mulhi_u64(__m512i a, __m512i b, __m512i b_hi) {
  const __m512i a_hi = _mm512_srli_epi64(a, 32);
  const __m512i ll = _mm512_mul_epu32(a, b);
  const __m512i lh = _mm512_mul_epu32(a, b_hi);
  const __m512i hl = _mm512_mul_epu32(a_hi, b);
  const __m512i hh = _mm512_mul_epu32(a_hi, b_hi);
  // a*b = hh*2^64 + (hl + lh)*2^32 + ll; carry the middle terms in two
  // steps so no sum exceeds 64 bits.
  const __m512i t = _mm512_add_epi64(hl, _mm512_srli_epi64(ll, 32));
  const __m512i u = _mm512_add_epi64(lh, _mm512_maskz_mov_epi32(0x5555, t));  // t mod 2^32
  return _mm512_add_epi64(_mm512_add_epi64(hh, _mm512_srli_epi64(t, 32)), _mm512_srli_epi64(u, 32));
}

/// A lower estimate of the high 64 bits of a * b, per lane: in [hi - 2, hi]
/// for the exact hi. Three 32x32-bit multiplies and four other operations
/// instead of four and eight: it drops a0*b0 and the low halves of the two
/// middle products, terms that sum to less than 3 * 2^64, so the high word
/// loses at most 2.
BF_AVX512 BF_INLINE __m512i mulhi_u64_approx(__m512i a, __m512i b, __m512i b_hi) {
  const __m512i a_hi = _mm512_srli_epi64(a, 32);
  const __m512i lh = _mm512_mul_epu32(a, b_hi);
  const __m512i hl = _mm512_mul_epu32(a_hi, b);
  const __m512i hh = _mm512_mul_epu32(a_hi, b_hi);
  return _mm512_add_epi64(_mm512_add_epi64(hh, _mm512_srli_epi64(hl, 32)),
                          _mm512_srli_epi64(lh, 32));
}

BF_AVX512 BF_INLINE __m512i mulhi_u64(__m512i a, __m512i b) {
  return mulhi_u64(a, b, _mm512_srli_epi64(b, 32));
}

/// Shoup's lazy product per lane (modarith.h, mul_mod_shoup_lazy): any x,
/// w in [0, q), ws = shoup(w, q) -> x * w mod q in [0, 2q).
BF_AVX512 BF_INLINE __m512i mul_shoup_lazy(__m512i x, __m512i w, __m512i ws, __m512i ws_hi,
                                           __m512i q) {
  const __m512i qhat = mulhi_u64(x, ws, ws_hi);
  return _mm512_sub_epi64(_mm512_mullo_epi64(x, w), _mm512_mullo_epi64(qhat, q));
}

}  // namespace blindfold::he::detail
