// AVX-512 variants of the element-wise kernels of modarith.h (eight 64-bit
// lanes; the arithmetic is lane-for-lane the scalar code's).
#include "he/avx512_internal.h"
#include "he/avx512_ops.h"

namespace blindfold::he::detail {
namespace {

// Barrett as scalar mul_mod: x = a*b, xs = x >> (L-2), qhat = hi(xs * ratio).
struct BarrettLanes {
  __m512i q, ratio, ratio_hi;
  __m128i lo_shift, hi_shift;
};

BF_AVX512 BF_INLINE __m512i mul_mod_lanes(__m512i a, __m512i b, const BarrettLanes& c) {
  const __m512i lo = _mm512_mullo_epi64(a, b);
  const __m512i hi = mulhi_u64(a, b);
  const __m512i xs =
      _mm512_or_si512(_mm512_sll_epi64(hi, c.hi_shift), _mm512_srl_epi64(lo, c.lo_shift));
  const __m512i qhat = mulhi_u64(xs, c.ratio, c.ratio_hi);
  return cond_sub(_mm512_sub_epi64(lo, _mm512_mullo_epi64(qhat, c.q)), c.q);
}

BF_AVX512 void mul_mod_impl(const std::uint64_t* a, const std::uint64_t* b, const Modulus& q,
                            std::uint64_t* out, std::size_t n) {
  BarrettLanes c;
  c.q = _mm512_set1_epi64(static_cast<long long>(q.value()));
  c.ratio = _mm512_set1_epi64(static_cast<long long>(q.mul_ratio()));
  c.ratio_hi = _mm512_srli_epi64(c.ratio, 32);
  // Shift counts as vectors: a count of 64 (L = 2) shifts everything out, as
  // the 128-bit scalar shift would.
  c.lo_shift = _mm_cvtsi32_si128(q.mul_shift());
  c.hi_shift = _mm_cvtsi32_si128(64 - q.mul_shift());
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i r = mul_mod_lanes(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i), c);
    _mm512_storeu_si512(out + i, r);
  }
  if (i < n) {
    const __mmask8 m = static_cast<__mmask8>((1u << (n - i)) - 1);
    const __m512i r =
        mul_mod_lanes(_mm512_maskz_loadu_epi64(m, a + i), _mm512_maskz_loadu_epi64(m, b + i), c);
    _mm512_mask_storeu_epi64(out + i, m, r);
  }
}

BF_AVX512 void mul_scalar_impl(const std::uint64_t* a, std::uint64_t w, std::uint64_t w_shoup,
                               const Modulus& q, std::uint64_t* out, std::size_t n) {
  const __m512i vq = _mm512_set1_epi64(static_cast<long long>(q.value()));
  const __m512i vw = _mm512_set1_epi64(static_cast<long long>(w));
  const __m512i vws = _mm512_set1_epi64(static_cast<long long>(w_shoup));
  const __m512i vws_hi = _mm512_srli_epi64(vws, 32);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i x = _mm512_loadu_si512(a + i);
    _mm512_storeu_si512(out + i, cond_sub(mul_shoup_lazy(x, vw, vws, vws_hi, vq), vq));
  }
  if (i < n) {
    const __mmask8 m = static_cast<__mmask8>((1u << (n - i)) - 1);
    const __m512i x = _mm512_maskz_loadu_epi64(m, a + i);
    _mm512_mask_storeu_epi64(out + i, m, cond_sub(mul_shoup_lazy(x, vw, vws, vws_hi, vq), vq));
  }
}

}  // namespace

void mul_mod_avx512(const std::uint64_t* a, const std::uint64_t* b, const Modulus& q,
                    std::uint64_t* out, std::size_t n) {
  mul_mod_impl(a, b, q, out, n);
}

void mul_scalar_mod_avx512(const std::uint64_t* a, std::uint64_t w, std::uint64_t w_shoup,
                           const Modulus& q, std::uint64_t* out, std::size_t n) {
  mul_scalar_impl(a, w, w_shoup, q, out, n);
}

}  // namespace blindfold::he::detail
