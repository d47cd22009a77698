// Lazy-reduction linear combinations (lincomb.h): the portable 128-bit path
// and the AVX-512 IFMA52 path, chosen at run time.
#include "he/lincomb.h"

#include <algorithm>
#include <array>
#include <string>

#include "core/error.h"
#include "he/avx512_ops.h"

namespace blindfold::he {
namespace {

constexpr std::uint64_t kIfmaMin = std::uint64_t{1} << 20;
constexpr std::uint64_t kIfmaMax = std::uint64_t{1} << 50;
// Terms per IFMA segment: each adds < 2^52 to a 64-bit lane.
constexpr std::size_t kIfmaTerms = 4095;

bool ifma_fits(const Modulus& q) noexcept {
  return q.value() >= kIfmaMin && q.value() < kIfmaMax;
}

// Terms a 128-bit accumulator holds: products below 2^(2L).
std::size_t scalar_terms(const Modulus& q) noexcept {
  const int spare = 127 - 2 * q.bits();
  return spare >= 20 ? (std::size_t{1} << 20) : (std::size_t{1} << std::max(spare, 0));
}

// ---- scalar --------------------------------------------------------------

constexpr std::size_t kChunk = 256;

// One segment of terms [j0, j1): out (+)= sum w_rj in_j over coefficients
// [c0, c0 + len).
void segment_scalar(const std::uint64_t* const* in, std::size_t k, std::size_t j0, std::size_t j1,
                    const std::uint64_t* w, std::size_t m, const Modulus& q,
                    std::uint64_t* const* out, std::size_t c0, std::size_t len, bool add) {
  std::array<u128, kChunk> acc;
  for (std::size_t r = 0; r < m; ++r) {
    std::fill_n(acc.begin(), len, u128{0});
    const std::uint64_t* wr = w + r * k;
    for (std::size_t j = j0; j < j1; ++j) {
      const std::uint64_t wj = wr[j];
      if (wj == 0) continue;
      const std::uint64_t* x = in[j] + c0;
      for (std::size_t c = 0; c < len; ++c) acc[c] += u128{x[c]} * wj;
    }
    std::uint64_t* o = out[r] + c0;
    for (std::size_t c = 0; c < len; ++c) {
      const std::uint64_t v = barrett_reduce_128(acc[c], q);
      o[c] = add ? add_mod(o[c], v, q) : v;
    }
  }
}

void lincomb_scalar(const std::uint64_t* const* in, std::size_t k, const std::uint64_t* w,
                    std::size_t m, const Modulus& q, std::uint64_t* const* out, std::size_t c_begin,
                    std::size_t c_end, bool accumulate) {
  const std::size_t seg = scalar_terms(q);
  for (std::size_t c0 = c_begin; c0 < c_end; c0 += kChunk) {
    const std::size_t len = std::min(kChunk, c_end - c0);
    if (k == 0 && !accumulate) {
      for (std::size_t r = 0; r < m; ++r) std::fill_n(out[r] + c0, len, std::uint64_t{0});
    }
    for (std::size_t j0 = 0; j0 < k; j0 += seg) {
      segment_scalar(in, k, j0, std::min(k, j0 + seg), w, m, q, out, c0, len, accumulate || j0 > 0);
    }
  }
}

// ---- AVX-512 IFMA52 ------------------------------------------------------

struct IfmaConsts {
  __m512i q, q2, r52, r52_shoup, mask52;
  __m512d inv_q;
};

// x (any 64-bit) mod q, for 2^20 <= q < 2^50: the quotient from doubles is
// within one of floor(x / q) (x / q < 2^45, relative error < 2^-51), so
// x - qhat q + q lies in (0, 3q).
BF_AVX512_IFMA BF_INLINE __m512i reduce64(__m512i x, const IfmaConsts& c) {
  const __m512d qd = _mm512_mul_pd(_mm512_cvtepu64_pd(x), c.inv_q);
  const __m512i qhat = _mm512_cvttpd_epu64(qd);
  __m512i r = _mm512_add_epi64(_mm512_sub_epi64(x, _mm512_mullo_epi64(qhat, c.q)), c.q);
  r = detail::cond_sub(r, c.q2);
  return detail::cond_sub(r, c.q);
}

// lo + hi * 2^52 mod q.
BF_AVX512_IFMA BF_INLINE __m512i reduce_pair(__m512i lo, __m512i hi, const IfmaConsts& c) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i h = reduce64(hi, c);
  // Shoup on 52-bit words: h * (2^52 mod q) mod q in [0, 2q).
  const __m512i qh = _mm512_madd52hi_epu64(zero, h, c.r52_shoup);
  const __m512i t = _mm512_and_si512(
      _mm512_sub_epi64(_mm512_madd52lo_epu64(zero, h, c.r52), _mm512_madd52lo_epu64(zero, qh, c.q)),
      c.mask52);
  const __m512i s = _mm512_add_epi64(t, reduce64(lo, c));  // [0, 3q)
  return detail::cond_sub(detail::cond_sub(s, c.q2), c.q);
}

// Outputs [r0, r0 + RB) over coefficients [c, c + 16), terms [j0, j1).
template <int RB>
BF_AVX512_IFMA void tile_ifma(const std::uint64_t* const* in, std::size_t k, std::size_t j0,
                              std::size_t j1, const std::uint64_t* w, std::uint64_t* const* out,
                              std::size_t c, bool add, const IfmaConsts& cs) {
  __m512i lo[RB][2], hi[RB][2];
  for (int r = 0; r < RB; ++r) {
    lo[r][0] = lo[r][1] = hi[r][0] = hi[r][1] = _mm512_setzero_si512();
  }
  for (std::size_t j = j0; j < j1; ++j) {
    const __m512i x0 = _mm512_loadu_si512(in[j] + c);
    const __m512i x1 = _mm512_loadu_si512(in[j] + c + 8);
    for (int r = 0; r < RB; ++r) {
      const __m512i wv = _mm512_set1_epi64(static_cast<long long>(w[r * k + j]));
      lo[r][0] = _mm512_madd52lo_epu64(lo[r][0], x0, wv);
      hi[r][0] = _mm512_madd52hi_epu64(hi[r][0], x0, wv);
      lo[r][1] = _mm512_madd52lo_epu64(lo[r][1], x1, wv);
      hi[r][1] = _mm512_madd52hi_epu64(hi[r][1], x1, wv);
    }
  }
  for (int r = 0; r < RB; ++r) {
    for (int v = 0; v < 2; ++v) {
      std::uint64_t* o = out[r] + c + 8 * v;
      __m512i s = reduce_pair(lo[r][v], hi[r][v], cs);
      if (add) s = detail::cond_sub(_mm512_add_epi64(s, _mm512_loadu_si512(o)), cs.q);
      _mm512_storeu_si512(o, s);
    }
  }
}

// Coefficients [c_begin, c_end), a multiple of 16 long.
BF_AVX512_IFMA void lincomb_ifma(const std::uint64_t* const* in, std::size_t k,
                                 const std::uint64_t* w, std::size_t m, const Modulus& q,
                                 std::uint64_t* const* out, std::size_t c_begin, std::size_t c_end,
                                 bool accumulate) {
  IfmaConsts cs;
  cs.q = _mm512_set1_epi64(static_cast<long long>(q.value()));
  cs.q2 = _mm512_set1_epi64(static_cast<long long>(2 * q.value()));
  const std::uint64_t r52 = (std::uint64_t{1} << 52) % q.value();
  cs.r52 = _mm512_set1_epi64(static_cast<long long>(r52));
  cs.r52_shoup = _mm512_set1_epi64(static_cast<long long>((u128{r52} << 52) / q.value()));
  cs.mask52 = _mm512_set1_epi64(static_cast<long long>((std::uint64_t{1} << 52) - 1));
  cs.inv_q = _mm512_set1_pd(1.0 / static_cast<double>(q.value()));
  // Coefficient blocks keep a block of every input (k x 8 x block bytes,
  // at most about 1 MiB) in L2 while the output groups sweep it.
  const std::size_t kBlock = std::clamp<std::size_t>(
      (std::size_t{1} << 17) / std::max<std::size_t>(k, 1) / 16 * 16, 16, 256);
  for (std::size_t b0 = c_begin; b0 < c_end; b0 += kBlock) {
    const std::size_t b1 = std::min(c_end, b0 + kBlock);
    for (std::size_t j0 = 0; j0 < k || j0 == 0; j0 += kIfmaTerms) {
      const std::size_t j1 = std::min(k, j0 + kIfmaTerms);
      const bool add = accumulate || j0 > 0;
      // Output groups of at most 6, as even as possible (8 outputs: 4 + 4,
      // not 6 + 2: a small group loads its inputs for few products).
      const std::size_t groups = (m + 5) / 6;
      std::size_t r = 0;
      for (std::size_t g = 0; g < groups; ++g) {
        const std::size_t size = m / groups + (g < m % groups ? 1 : 0);
        for (std::size_t c = b0; c < b1; c += 16) {
          switch (size) {
            case 1: tile_ifma<1>(in, k, j0, j1, w + r * k, out + r, c, add, cs); break;
            case 2: tile_ifma<2>(in, k, j0, j1, w + r * k, out + r, c, add, cs); break;
            case 3: tile_ifma<3>(in, k, j0, j1, w + r * k, out + r, c, add, cs); break;
            case 4: tile_ifma<4>(in, k, j0, j1, w + r * k, out + r, c, add, cs); break;
            case 5: tile_ifma<5>(in, k, j0, j1, w + r * k, out + r, c, add, cs); break;
            default: tile_ifma<6>(in, k, j0, j1, w + r * k, out + r, c, add, cs); break;
          }
        }
        r += size;
      }
      if (k == 0) break;
    }
  }
}

}  // namespace

Isa lincomb_isa(const Modulus& q) noexcept {
  return isa_supported(Isa::kAvx512Ifma) && ifma_fits(q) ? Isa::kAvx512Ifma : Isa::kScalar;
}

void lincomb(std::span<const std::uint64_t* const> in, std::span<const std::uint64_t> w,
             const Modulus& q, std::span<std::uint64_t* const> out, std::size_t n, bool accumulate,
             Isa isa) {
  const std::size_t k = in.size();
  const std::size_t m = out.size();
  if (w.size() != m * k) {
    throw Error(ErrorCategory::kBadInput, "lincomb: " + std::to_string(w.size()) + " weights for " +
                                              std::to_string(m) + " x " + std::to_string(k));
  }
  if (!isa_supported(isa)) {
    throw Error(ErrorCategory::kUnsupported,
                "this CPU cannot run the " + std::string(isa_name(isa)) + " kernels");
  }
  if (m == 0 || n == 0) return;
  if (isa == Isa::kAvx512Ifma) {
    if (!ifma_fits(q)) {
      throw Error(ErrorCategory::kBadInput, "lincomb: the IFMA52 path needs 2^20 <= q < 2^50");
    }
    const std::size_t vec_end = n - n % 16;
    if (vec_end > 0) lincomb_ifma(in.data(), k, w.data(), m, q, out.data(), 0, vec_end, accumulate);
    if (vec_end < n)
      lincomb_scalar(in.data(), k, w.data(), m, q, out.data(), vec_end, n, accumulate);
    return;
  }
  lincomb_scalar(in.data(), k, w.data(), m, q, out.data(), 0, n, accumulate);
}

void lincomb(std::span<const std::uint64_t* const> in, std::span<const std::uint64_t> w,
             const Modulus& q, std::span<std::uint64_t* const> out, std::size_t n,
             bool accumulate) {
  lincomb(in, w, q, out, n, accumulate, lincomb_isa(q));
}

}  // namespace blindfold::he
