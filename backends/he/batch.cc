// Batch mode (program.h): one sample per slot, every weight a scalar
// (Gilad-Bachrach et al., "CryptoNets", ICML 2016; Boemer et al.,
// "nGraph-HE2", 2019). Query ciphertext i holds input element i of every
// sample; a linear layer is, per RNS limb and per polynomial, an integer
// matrix product over ciphertexts, done by he/lincomb.h with lazy reduction
// (IFMA52 when the primes are below 2^50, which is why every prime of the
// chain is at most 50 bits).
//
// Levels and scales. A chain of depth L runs from level L down to 0, one
// level per layer:
//  - linear (Conv, Dense, AvgPool) at level l: weights encoded once, at
//    build time, as round(w * Dw) mod q_i with Dw = q_l * D_out / D_in, the
//    bias as round(b * D_out * q_l) (a column of the matrix against an
//    all-ones row); the sum is rescaled by q_l after the combination (one
//    rescale per output, not per input) and lands on D_out exactly. D_out is
//    2^s (the scale primes' size) unless the layer's magnitude bound needs a
//    smaller one to fit Q_{l-1} (the last layer, where only q0 is left).
//  - x (x + b) at level l: one ciphertext product, rescaled: D^2 / q_l. Its
//    size-3 result is not relinearized: the next linear layer combines
//    3-component ciphertexts and relinearizes only its outputs (e.g. 100
//    instead of 1352 key switchings for fmnist-he), before their rescale
//    (a size-3 rescale would add e2 s^2 to the noise).
//  - [linear, x (x + b), Dense] run fused, a chunk of the first layer's
//    outputs at a time (memory), each output's activation in one pass. When
//    they open the chain (fmnist-he's Conv), the first layer's sums are not
//    rescaled: they sit at S = sqrt(q_L q_{L-1} 2^s) (input and weights at
//    about sqrt(S) each), the activation multiplies at level L and divides
//    by q_L q_{L-1} at once (18 NTTs per output instead of 27).
//
// Parameters: q0 and the special prime of 50 bits, the scale primes of s
// bits; the smallest N (HE Standard, 128-bit) for which some s in [24, 48]
// fits and meets the error budget, at that N the largest such s (the cost
// does not depend on s: every prime is one 64-bit word, IFMA52 below 2^50).
//
// Error budget (ClientSpec::output_error): every ciphertext's noise is
// tracked as a standard deviation per slot (fresh symmetric encryption
// sqrt(N (3.2^2 + 1/12)) / D, a rescale sqrt(N (1 + 2N/3) / 12) / D, i.e.
// rounding times a ternary secret of Hamming weight 2N/3, plus N 4N/9 under
// the root for the s^2 of a size-3 ciphertext), propagated through linear layers by the weights' L2
// norm (independent ciphertexts) and through x (x + b) by the derivative
// bound 2B + |b| (B the interval bound); weight and constant rounding is
// added as a worst case. output_error = 6 sigma + worst case. Criterion: the
// plan is refused unless output_error <= output_error_limit (layers.h: 2^-10,
// times the output bound when below 1): then every sample whose two largest
// outputs differ by more than twice that keeps its arg max.
// Magnitudes: interval bounds from |input| <= input_bound (chain_bounds);
// every value times its scale must stay below a quarter of its modulus.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "backends/he/layers.h"
#include "backends/he/modes.h"
#include "core/error.h"
#include "he/ckks.h"
#include "he/lincomb.h"
#include "he/memory.h"
#include "he/ntt.h"

namespace blindfold::backends::heplan {
namespace {

constexpr int kQ0Bits = 50;        // q0 and the special prime: the IFMA52 limit
constexpr int kSpecialBits = 50;   // >= every chain prime: key switching noise ~ rescale noise
constexpr int kMaxScaleBits = 48;  // below 2^50 (IFMA52) with room
constexpr int kMinScaleBits = 20;  // the IFMA52 lincomb's smallest prime
constexpr double kSigmas = 6;
constexpr double kMinWeightScale = 1 << 20;  // weight precision floor (bits of Dw)

std::size_t sz(std::int64_t v) {
  return static_cast<std::size_t>(v);
}
std::int64_t numel(const Shape& s) {
  return checked_numel(s);
}

// One group of outputs that read the same inputs (a conv position: every
// output channel; a dense layer: one group).
struct Block {
  std::vector<std::uint32_t> in, out;
  std::vector<double> w;     // out.size() x in.size()
  std::vector<double> bias;  // out.size()
  // Per limb i of the layer's level: out.size() x (in.size() + 1) residues,
  // the last column the bias against the all-ones row.
  std::vector<std::vector<std::uint64_t>> res;
};

bool is_linear(LayerKind k) {
  return k != LayerKind::kPoly;
}

const char* kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::kConv: return "Conv";
    case LayerKind::kDense: return "Dense";
    case LayerKind::kPoly: return "x(x+b)";
    case LayerKind::kAvgPool: return "AvgPool";
  }
  return "?";
}

std::vector<Block> linear_blocks(const Layer& l) {
  std::vector<Block> blocks;
  if (l.kind == LayerKind::kDense) {
    const std::int64_t m = numel(l.out_shape), k = numel(l.in_shape);
    Block b;
    b.in.resize(sz(k));
    std::iota(b.in.begin(), b.in.end(), 0u);
    b.out.resize(sz(m));
    std::iota(b.out.begin(), b.out.end(), 0u);
    b.w = l.weight;
    b.bias = l.bias.empty() ? std::vector<double>(sz(m), 0.0) : l.bias;
    blocks.push_back(std::move(b));
    return blocks;
  }
  const std::int64_t ic = l.in_shape.at(0), ih = l.in_shape.at(1), iw = l.in_shape.at(2);
  const std::int64_t oc = l.out_shape.at(0), oh = l.out_shape.at(1), ow = l.out_shape.at(2);
  for (std::int64_t oy = 0; oy < oh; ++oy) {
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      // Taps inside the image (padding reads zeros: dropped).
      std::vector<std::array<std::int64_t, 4>> taps;  // c, ky, kx, input index
      for (std::int64_t c = 0; c < ic; ++c) {
        for (std::int64_t ky = 0; ky < l.kh; ++ky) {
          for (std::int64_t kx = 0; kx < l.kw; ++kx) {
            const std::int64_t y = oy * l.sh - l.pt + ky * l.dh;
            const std::int64_t x = ox * l.sw - l.pl + kx * l.dw;
            if (y < 0 || y >= ih || x < 0 || x >= iw) continue;
            taps.push_back({c, ky, kx, (c * ih + y) * iw + x});
          }
        }
      }
      if (l.kind == LayerKind::kConv) {
        Block b;
        for (const auto& t : taps) b.in.push_back(static_cast<std::uint32_t>(t[3]));
        for (std::int64_t o = 0; o < oc; ++o) {
          b.out.push_back(static_cast<std::uint32_t>((o * oh + oy) * ow + ox));
          for (const auto& t : taps) {
            b.w.push_back(l.weight[sz(((o * ic + t[0]) * l.kh + t[1]) * l.kw + t[2])]);
          }
          b.bias.push_back(l.bias.empty() ? 0.0 : l.bias[sz(o)]);
        }
        blocks.push_back(std::move(b));
      } else {  // average pooling, per channel
        const double count = l.count_include_pad ? static_cast<double>(l.kh * l.kw)
                                                 : static_cast<double>(taps.size() / sz(ic));
        for (std::int64_t c = 0; c < ic; ++c) {
          Block b;
          b.out.push_back(static_cast<std::uint32_t>((c * oh + oy) * ow + ox));
          for (const auto& t : taps) {
            if (t[0] != c) continue;
            b.in.push_back(static_cast<std::uint32_t>(t[3]));
            b.w.push_back(1.0 / count);
          }
          b.bias.push_back(0.0);
          blocks.push_back(std::move(b));
        }
      }
    }
  }
  return blocks;
}

// One layer as the program runs it.
struct Step {
  LayerKind kind = LayerKind::kDense;
  std::string node;
  int level = 0;  // the level it reads (writes level - 1)
  double in_scale = 0, out_scale = 0, weight_scale = 0;
  std::int64_t in_count = 0, out_count = 0;
  std::vector<Block> blocks;                      // linear
  std::vector<double> b;                          // kPoly: per element
  std::vector<std::vector<std::uint64_t>> b_res;  // kPoly: round(b * in_scale) mod q_i
  std::int64_t macs = 0;                          // scalar products per sample (linear)
  double bound = 0;                               // max |value| after the step
  double sigma = 0, worst = 0;  // max noise std and worst-case rounding after the step
  // The first layer when [linear, x(x+b), Dense] opens the chain: its sums
  // are not rescaled (out_scale is their scale at level L) and the
  // activation's product is divided by q_L q_{L-1} at once: 18 NTTs per
  // output instead of 27.
  bool deferred = false;
  // Set on a linear step followed by x(x+b) and a Dense layer: the three run
  // fused, A's outputs a chunk at a time (see Chunk).
  std::vector<struct Chunk> chunks;
};

// One chunk of a fused [linear A, x(x+b), Dense B]: some of A's blocks,
// their outputs numbered 0.. locally, and B restricted to those inputs, so
// that only a chunk of A's outputs is ever held (fmnist-he: about 200 of
// 1352 ciphertexts) and B's sums accumulate chunk by chunk.
struct Chunk {
  std::vector<Block> a;             // outputs renumbered to local indices
  std::vector<std::uint32_t> outs;  // A's output index of each local output
  Block b;                          // inputs local; bias column nonzero in chunk 0 only
};
constexpr std::size_t kChunkOutputs = 208;

std::vector<Chunk> make_chunks(const Step& a, const Step& b) {
  std::vector<Chunk> chunks;
  const Block& bb = b.blocks.at(0);
  const std::size_t k = bb.in.size(), m = bb.out.size();
  for (std::size_t i = 0; i < a.blocks.size();) {
    Chunk c;
    while (i < a.blocks.size() && c.outs.size() < kChunkOutputs) {
      Block blk = a.blocks[i++];
      for (std::uint32_t& o : blk.out) {
        c.outs.push_back(o);
        o = static_cast<std::uint32_t>(c.outs.size() - 1);
      }
      blk.w.clear();
      c.a.push_back(std::move(blk));
    }
    const std::size_t kc = c.outs.size();
    c.b.in.resize(kc);
    std::iota(c.b.in.begin(), c.b.in.end(), 0u);
    c.b.out = bb.out;
    c.b.res.assign(bb.res.size(), std::vector<std::uint64_t>(m * (kc + 1)));
    for (std::size_t li = 0; li < bb.res.size(); ++li) {
      for (std::size_t r = 0; r < m; ++r) {
        for (std::size_t j = 0; j < kc; ++j) {
          c.b.res[li][r * (kc + 1) + j] = bb.res[li][r * (k + 1) + c.outs[j]];
        }
        c.b.res[li][r * (kc + 1) + kc] = chunks.empty() ? bb.res[li][r * (k + 1) + k] : 0;
      }
    }
    chunks.push_back(std::move(c));
  }
  return chunks;
}

// The plan's numbers for one candidate (N, s), without primes: 2^bits stands
// in for each prime (exact enough for the budget and the magnitudes).
struct Budget {
  bool ok = false;
  std::string why;
  double output_error = 0;
  std::vector<double> sigma, worst;  // per step (max over elements)
};

std::vector<double> element_b(const Layer& l) {
  const std::int64_t n = numel(l.in_shape);
  std::vector<double> b(sz(n));
  const std::int64_t per = l.b.size() <= 1 ? n : n / l.in_shape.at(0);
  for (std::int64_t e = 0; e < n; ++e)
    b[sz(e)] = l.b.empty() ? 0.0 : l.b.size() == 1 ? l.b[0] : l.b[sz(e / per)];
  return b;
}

// Per-element interval bounds (the max over elements is chain_bounds').
std::vector<std::vector<double>> element_bounds(const Chain& chain,
                                                const std::vector<std::vector<Block>>& blocks,
                                                double input_bound) {
  std::vector<std::vector<double>> out;
  std::vector<double> x(sz(numel(chain.input_shape)), input_bound);
  for (std::size_t i = 0; i < chain.layers.size(); ++i) {
    const Layer& l = chain.layers[i];
    std::vector<double> y(sz(numel(l.out_shape)), 0.0);
    if (is_linear(l.kind)) {
      for (const Block& b : blocks[i]) {
        for (std::size_t r = 0; r < b.out.size(); ++r) {
          double s = std::fabs(b.bias[r]);
          for (std::size_t j = 0; j < b.in.size(); ++j)
            s += std::fabs(b.w[r * b.in.size() + j]) * x[b.in[j]];
          y[b.out[r]] = s;
        }
      }
    } else {
      const auto be = element_b(l);
      for (std::size_t e = 0; e < y.size(); ++e) y[e] = x[e] * (x[e] + std::fabs(be[e]));
    }
    out.push_back(y);
    x = std::move(y);
  }
  return out;
}

// Scales of every step for chain primes `q` (values or 2^bits stand-ins);
// sets d0, the input scale: 2^s, or, when the first layer is linear and its
// output needs a smaller scale (a large bound), sqrt(q_L * D_out) rounded
// to a power of two, which balances the input's noise (1 / d0) against the
// weights' rounding (1 / Dw, Dw = q_L D_out / d0). Returns "" or why the
// magnitudes do not fit.
std::string plan_scales(const Chain& chain, const std::vector<double>& q, int s_bits,
                        double input_bound, const std::vector<std::vector<double>>& bounds,
                        std::vector<Step>& steps, double& d0) {
  const int depth = static_cast<int>(chain.layers.size());
  d0 = std::exp2(s_bits);
  const bool defer = depth >= 3 && is_linear(chain.layers[0].kind) &&
                     chain.layers[1].kind == LayerKind::kPoly &&
                     chain.layers[2].kind == LayerKind::kDense;
  double log2_q_below = 0;  // log2 Q_{l-1}
  for (int j = 0; j < depth; ++j) log2_q_below += std::log2(q[sz(j)]);
  if (defer) {
    // The activation's output at 2^s: its input at S = sqrt(q_L q_{L-1} 2^s);
    // the input and the weights share S evenly (2^36 each for s = 48: the
    // weights' rounding is a worst case carried through every later layer).
    steps[0].deferred = true;
    const double sy = std::sqrt(q[sz(depth)] * q[sz(depth - 1)] * std::exp2(s_bits));
    d0 = std::min(std::exp2(s_bits), std::exp2(std::floor(std::log2(sy) / 2)));
  } else if (is_linear(chain.layers[0].kind)) {
    const double bound = *std::max_element(bounds[0].begin(), bounds[0].end());
    const double cap = std::floor(log2_q_below - 2 - std::log2(std::max(bound, 1e-300)));
    if (cap < s_bits) d0 = std::exp2(std::floor((std::log2(q[sz(depth)]) + cap) / 2));
  }
  if (std::log2(std::max(input_bound, 1e-300)) + std::log2(d0) >
      log2_q_below + std::log2(q[sz(depth)]) - 2) {
    return "inputs |x| <= " + std::to_string(input_bound) + " do not fit the top level";
  }
  const double d_max = std::exp2(s_bits);
  double d = d0;
  for (int i = 0; i < depth; ++i) {
    Step& s = steps[sz(i)];
    s.level = depth - i;
    s.in_scale = d;
    log2_q_below = 0;
    for (int j = 0; j < s.level; ++j) log2_q_below += std::log2(q[sz(j)]);
    const double bound = *std::max_element(bounds[sz(i)].begin(), bounds[sz(i)].end());
    // |value| * scale < Q_{l-1} / 4 (after the rescale; before it, the same
    // with both sides times q_l).
    const double cap = log2_q_below - 2 - std::log2(std::max(bound, 1e-300));
    if (s.deferred) {
      s.out_scale = std::sqrt(q[sz(s.level)] * q[sz(s.level - 1)] * d_max);
      s.weight_scale = s.out_scale / d;
      if (s.weight_scale < kMinWeightScale) {
        return "layer '" + s.node + "': weights at 2^" + std::to_string(std::log2(s.weight_scale));
      }
    } else if (is_linear(s.kind)) {
      const double target = std::min(d_max, std::exp2(std::floor(cap)));
      s.out_scale = target;
      s.weight_scale = q[sz(s.level)] * target / d;
      if (s.weight_scale < kMinWeightScale) {
        return "layer '" + s.node + "': magnitude bound " + std::to_string(bound) +
               " leaves weights " + std::to_string(std::log2(s.weight_scale)) +
               " bits of precision at level " + std::to_string(s.level);
      }
    } else {
      s.out_scale = i > 0 && steps[sz(i - 1)].deferred
                        ? d * d / (q[sz(s.level)] * q[sz(s.level + 1)])
                        : d * d / q[sz(s.level)];
      if (std::log2(s.out_scale) > cap) {
        return "layer '" + s.node + "': magnitude bound " + std::to_string(bound) + " at scale 2^" +
               std::to_string(std::log2(s.out_scale)) + " does not fit level " +
               std::to_string(s.level - 1);
      }
    }
    d = s.out_scale;
  }
  return "";
}

Budget error_budget(const Chain& chain, std::size_t n, const std::vector<double>& q, double d0,
                    const std::vector<std::vector<double>>& bounds, const std::vector<Step>& steps,
                    double input_bound) {
  Budget bud;
  const double nn = static_cast<double>(n);
  const double fresh = std::sqrt(nn * (3.2 * 3.2 + 1.0 / 12));
  // Rounding of a rescale: e0 + e1 s (+ e2 s^2 for a size-3 ciphertext), e_i
  // uniform in [-1/2, 1/2], s ternary with 2N/3 nonzero coefficients (s^2's
  // coefficients have variance 4N/9).
  const double round = std::sqrt(nn * (1 + 2 * nn / 3) / 12);
  const double round3 = std::sqrt(nn * (1 + 2 * nn / 3 + nn * 4 * nn / 9) / 12);
  std::vector<double> sig(sz(numel(chain.input_shape)), fresh / d0);
  std::vector<double> wc(sig.size(), 0.0);  // encoding rounding: in `fresh`
  std::vector<double> xb(sig.size(), input_bound);
  bool three = false;  // 3-component ciphertexts
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    const Layer& l = chain.layers[i];
    std::vector<double> ns(sz(numel(l.out_shape)), 0.0), nw(ns.size(), 0.0);
    if (is_linear(s.kind)) {
      // Relinearized before the rescale: the key switching noise (about a
      // rescale's rounding) is divided by q_l; the rescale adds its own.
      const double extra = s.deferred
                               ? 0.0
                               : std::hypot(round / s.out_scale,
                                            three ? round / (s.out_scale * q[sz(s.level)]) : 0.0);
      for (const Block& b : s.blocks) {
        for (std::size_t r = 0; r < b.out.size(); ++r) {
          double v = 0, w = 0.5 / (s.out_scale * (s.deferred ? 1.0 : q[sz(s.level)]));
          for (std::size_t j = 0; j < b.in.size(); ++j) {
            const double wt = b.w[r * b.in.size() + j];
            v += wt * wt * sig[b.in[j]] * sig[b.in[j]];
            w += std::fabs(wt) * wc[b.in[j]] + 0.5 / s.weight_scale * xb[b.in[j]];
          }
          ns[b.out[r]] = std::hypot(std::sqrt(v), extra);
          nw[b.out[r]] = w;
        }
      }
      three = false;
    } else {
      const auto be = element_b(l);
      for (std::size_t e = 0; e < ns.size(); ++e) {
        const double deriv = 2 * xb[e] + std::fabs(be[e]);
        ns[e] = std::hypot(deriv * sig[e], round3 / s.out_scale);
        nw[e] = deriv * wc[e] + wc[e] * wc[e] + 0.5 / s.in_scale * xb[e];
      }
      three = true;
    }
    sig = std::move(ns);
    wc = std::move(nw);
    xb = bounds[i];
    bud.sigma.push_back(*std::max_element(sig.begin(), sig.end()));
    bud.worst.push_back(*std::max_element(wc.begin(), wc.end()));
  }
  double err = 0;
  for (std::size_t e = 0; e < sig.size(); ++e) err = std::max(err, kSigmas * sig[e] + wc[e]);
  bud.output_error = err;
  double out_bound = 0;
  for (double b : bounds.back()) out_bound = std::max(out_bound, b);
  const double limit = output_error_limit(out_bound);
  bud.ok = err <= limit;
  if (!bud.ok) {
    bud.why = "expected output error " + std::to_string(err) + " exceeds " + std::to_string(limit) +
              " (2^-10, times the output bound when below 1)";
  }
  return bud;
}

// Divides `rows` (comps polynomials of level + 1 limbs each, NTT form,
// layout [k][i][n]) by q_level with rounding, as Evaluator::rescale does
// (Cheon, Han, Kim, Kim and Song 2018), with the vector kernels of
// he/modarith.h: writes comps x level limbs to `out` (layout [k][i][n]).
// `x` and `t` are scratch of n words each.
void rescale_rows(const he::CkksContext& ctx, const std::uint64_t* rows, std::size_t comps,
                  int level, std::uint64_t* out, std::span<std::uint64_t> x,
                  std::span<std::uint64_t> t) {
  const std::size_t n = ctx.n();
  const auto last = sz(level);
  const he::Modulus& ql = ctx.modulus(last);
  const std::uint64_t half = ql.value() >> 1;
  for (std::size_t k = 0; k < comps; ++k) {
    const std::uint64_t* src = rows + (k * (last + 1) + last) * n;
    std::copy(src, src + n, x.begin());
    he::ntt_inverse(x, ctx.ntt(last));
    for (std::size_t c = 0; c < n; ++c) {
      const std::uint64_t v = x[c] + half;
      x[c] = v >= ql.value() ? v - ql.value() : v;
    }
    for (std::size_t i = 0; i < last; ++i) {
      const he::Modulus& q = ctx.modulus(i);
      const std::uint64_t qv = q.value();
      const std::uint64_t half_i = he::barrett_reduce_64(half, q);
      if (ql.value() < qv) {
        for (std::size_t c = 0; c < n; ++c) {
          const std::uint64_t d = x[c] + qv - half_i;
          t[c] = d >= qv ? d - qv : d;
        }
      } else {
        he::reduce_mod(x, q, t);
        for (std::size_t c = 0; c < n; ++c) {
          const std::uint64_t d = t[c] + qv - half_i;
          t[c] = d >= qv ? d - qv : d;
        }
      }
      he::ntt_forward(t, ctx.ntt(i));
      const std::uint64_t* ci = rows + (k * (last + 1) + i) * n;
      std::uint64_t* o = out + (k * last + i) * n;
      // (c - t) q_l^-1: c + q - t in [1, 2q), reduced by the Shoup product.
      for (std::size_t c = 0; c < n; ++c) o[c] = ci[c] + qv - t[c];
      he::mul_scalar_mod(std::span<const std::uint64_t>(o, n), ctx.inv_last(level, i), q,
                         std::span<std::uint64_t>(o, n));
    }
  }
}

// (y + b) y for y of size 2 on its first m limbs (rows [k][i][n]), b given
// by its residues b_res[i]: d0 = (c0 + B) c0, d1 = (2 c0 + B) c1, d2 = c1^2,
// three products per coefficient, into d (size 3, m limbs, rows [k][i][n]).
// x, t: scratch of n words each.
void times_plus_b(const he::CkksContext& ctx, const std::uint64_t* y, std::size_t m,
                  std::span<const std::uint64_t> b_res, std::uint64_t* d,
                  std::span<std::uint64_t> x, std::span<std::uint64_t> t) {
  const std::size_t n = ctx.n();
  for (std::size_t i = 0; i < m; ++i) {
    const he::Modulus& q = ctx.modulus(i);
    const std::uint64_t qv = q.value(), bv = b_res[i];
    const std::span<const std::uint64_t> c0(y + i * n, n), c1(y + (m + i) * n, n);
    const std::span<std::uint64_t> d0(d + i * n, n), d1(d + (m + i) * n, n),
        d2(d + (2 * m + i) * n, n);
    for (std::size_t c = 0; c < n; ++c) {  // x = c0 + B, t = 2 c0 + B
      const std::uint64_t u = c0[c] + bv;
      const std::uint64_t a = u >= qv ? u - qv : u;
      x[c] = a;
      const std::uint64_t v = a + c0[c];
      t[c] = v >= qv ? v - qv : v;
    }
    he::mul_mod(x, c0, q, d0);
    he::mul_mod(t, c1, q, d1);
    he::mul_mod(c1, c1, q, d2);
  }
}

// y (size 2, level l, before its rescale; rows [k][i][n]) -> rescaled by
// q_l, then (y + b) y (size 3: d0 = (c0 + B) c0, d1 = (2 c0 + B) c1,
// d2 = c1^2, three products per coefficient), rescaled by q_{l-1}: z, size 3
// at level l - 2 (rows [k][i][n]). `b_res[i]` = round(b * scale of the
// rescaled y) mod q_i.
void activate(const he::CkksContext& ctx, const std::uint64_t* y, int l,
              std::span<const std::uint64_t> b_res, std::uint64_t* z) {
  const std::size_t n = ctx.n();
  const std::size_t m = sz(l);  // limbs after the first rescale
  thread_local he::PolyVector r, d, x, t;
  r.resize(2 * m * n);
  d.resize(3 * m * n);
  x.resize(n);
  t.resize(n);
  rescale_rows(ctx, y, 2, l, r.data(), x, t);
  times_plus_b(ctx, r.data(), m, b_res, d.data(), x, t);
  rescale_rows(ctx, d.data(), 3, l - 1, z, x, t);
}

// Divides `rows` (comps polynomials of level + 1 limbs, NTT form, rows
// [k][i][n]) by q_level q_{level-1} with rounding in one step: the two top
// residues are brought to coefficient form, centred by H = floor(q_l q_{l-1}
// / 2) and combined in mixed radix (v = a + q_l u, u = (b - a) q_l^-1 mod
// q_{l-1}); then out_i = (c_i - (v - H)) (q_l q_{l-1})^-1 mod q_i. Writes
// comps x (level - 1) limbs. Needs the top two primes within a factor of 2
// of each other and of every lower prime (checked by the caller).
void rescale2_rows(const he::CkksContext& ctx, const std::uint64_t* rows, std::size_t comps,
                   int level, std::uint64_t* out, std::span<std::uint64_t> a,
                   std::span<std::uint64_t> b, std::span<std::uint64_t> t) {
  const std::size_t n = ctx.n();
  const auto la = sz(level), lb = sz(level - 1);
  const he::Modulus& qa = ctx.modulus(la);
  const he::Modulus& qb = ctx.modulus(lb);
  const he::u128 h = he::u128{qa.value()} * qb.value() / 2;
  const auto h_mod = [&](const he::Modulus& q) {
    return static_cast<std::uint64_t>(h % q.value());
  };
  const std::uint64_t ha = h_mod(qa), hb = h_mod(qb);
  const std::uint64_t inv_a = he::inv_mod(qa.value() % qb.value(), qb);
  const std::size_t limbs = la + 1;
  for (std::size_t k = 0; k < comps; ++k) {
    const std::uint64_t* ra = rows + (k * limbs + la) * n;
    const std::uint64_t* rb = rows + (k * limbs + lb) * n;
    std::copy(ra, ra + n, a.begin());
    std::copy(rb, rb + n, b.begin());
    he::ntt_inverse(a, ctx.ntt(la));
    he::ntt_inverse(b, ctx.ntt(lb));
    const std::uint64_t qav = qa.value(), qbv = qb.value();
    for (std::size_t c = 0; c < n; ++c) {
      std::uint64_t x = a[c] + ha;
      x = x >= qav ? x - qav : x;  // a' in [0, q_a)
      a[c] = x;
      const std::uint64_t xr = x >= qbv ? x - qbv : x;  // a' mod q_b (q_a < 2 q_b)
      std::uint64_t y = b[c] + hb;
      y = y >= qbv ? y - qbv : y;
      b[c] = y + qbv - xr;  // (b' - a') + q_b in [1, 2 q_b)
    }
    he::mul_scalar_mod(b, inv_a, qb, b);  // u in [0, q_b)
    for (std::size_t i = 0; i < lb; ++i) {
      const he::Modulus& q = ctx.modulus(i);
      const std::uint64_t qv = q.value();
      const std::uint64_t hi = h_mod(q);
      he::mul_scalar_mod(b, qav % qv, q, t);
      // a' + q_a u - H + q_i < 4 q_i: the forward NTT's input range.
      for (std::size_t c = 0; c < n; ++c) t[c] = a[c] + t[c] + (qv - hi);
      he::ntt_forward(t, ctx.ntt(i));
      const std::uint64_t* ci = rows + (k * limbs + i) * n;
      std::uint64_t* o = out + (k * lb + i) * n;
      for (std::size_t c = 0; c < n; ++c) o[c] = ci[c] + qv - t[c];
      const std::uint64_t inv = he::inv_mod(he::mul_mod(qav % qv, qbv % qv, q), q);
      he::mul_scalar_mod(std::span<const std::uint64_t>(o, n), inv, q,
                         std::span<std::uint64_t>(o, n));
    }
  }
}

// y: size 2 at level l, the first layer's sums left unrescaled (scale S);
// (y + b) y on all l + 1 limbs (b_res[i] = round(b S) mod q_i), divided by
// q_l q_{l-1}: z, size 3 at level l - 2.
void activate_deferred(const he::CkksContext& ctx, const std::uint64_t* y, int l,
                       std::span<const std::uint64_t> b_res, std::uint64_t* z) {
  const std::size_t n = ctx.n();
  const std::size_t m = sz(l) + 1;
  thread_local he::PolyVector d, x, t, u;
  d.resize(3 * m * n);
  x.resize(n);
  t.resize(n);
  u.resize(n);
  times_plus_b(ctx, y, m, b_res, d.data(), x, t);
  rescale2_rows(ctx, d.data(), 3, l, z, x, t, u);
}

std::vector<const std::uint64_t*> bases(const std::vector<he::Ciphertext>& x) {
  std::vector<const std::uint64_t*> b;
  b.reserve(x.size());
  for (const he::Ciphertext& c : x) b.push_back(c.data().data());
  return b;
}

class BatchProgram final : public Program {
 public:
  BatchProgram(ClientSpec spec, std::shared_ptr<const he::CkksContext> ctx, std::vector<Step> steps,
               ThreadPool* pool, std::string notes)
      : spec_(std::move(spec)),
        ctx_(std::move(ctx)),
        steps_(std::move(steps)),
        pool_(pool),
        notes_(std::move(notes)),
        eval_(ctx_),
        ones_(ctx_->n(), 1),
        zeros_(ctx_->n(), 0) {}

  const ClientSpec& spec() const override { return spec_; }
  std::shared_ptr<const he::CkksContext> context() const override { return ctx_; }
  std::string describe() const override;
  std::vector<he::Ciphertext> evaluate(const EvalKeys& keys,
                                       std::vector<he::Ciphertext> inputs) const override;

 private:
  void parallel(std::int64_t n, const std::function<void(std::int64_t)>& fn) const {
    auto body = [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) fn(i);
    };
    if (pool_ != nullptr) {
      pool_->parallel_for(n, body);
    } else {
      body(0, n);
    }
  }
  std::vector<he::Ciphertext> run_linear(const Step& s, const EvalKeys& keys,
                                         std::vector<he::Ciphertext> x) const;
  std::vector<he::Ciphertext> run_fused(const Step& a, const Step& p, const Step& b,
                                        const EvalKeys& keys, std::vector<he::Ciphertext> x) const;
  void run_poly(const Step& s, const EvalKeys& keys, std::vector<he::Ciphertext>& x,
                const std::vector<std::uint32_t>* index = nullptr) const;
  std::vector<he::Ciphertext> allocate(std::size_t count, int level, double scale,
                                       std::size_t comps, std::vector<std::uint64_t*>& base) const;
  void combine(const std::vector<Block>& blocks, int level, std::size_t comps,
               const std::vector<const std::uint64_t*>& in_base,
               const std::vector<std::uint64_t*>& out_base, bool accumulate) const;
  void finish_linear(const Step& s, const EvalKeys& keys, std::vector<he::Ciphertext>& out) const;

  ClientSpec spec_;
  std::shared_ptr<const he::CkksContext> ctx_;
  std::vector<Step> steps_;
  ThreadPool* pool_;
  std::string notes_;
  he::Evaluator eval_;  // per-ciphertext operations; the pool splits ciphertexts
  std::vector<std::uint64_t> ones_, zeros_;
};

std::vector<he::Ciphertext> BatchProgram::allocate(std::size_t count, int level, double scale,
                                                   std::size_t comps,
                                                   std::vector<std::uint64_t*>& base) const {
  std::vector<he::Ciphertext> out;
  out.reserve(count);
  base.resize(count);
  for (std::size_t r = 0; r < count; ++r) {
    out.emplace_back(ctx_->id(), ctx_->n(), level, scale, comps);
    base[r] = out.back().mutable_data().data();
  }
  return out;
}

// Inputs and outputs: rows [k][i][n] (a ciphertext's layout) at `level`.
void BatchProgram::combine(const std::vector<Block>& blocks, int level, std::size_t comps,
                           const std::vector<const std::uint64_t*>& in_base,
                           const std::vector<std::uint64_t*>& out_base, bool accumulate) const {
  const std::size_t n = ctx_->n();
  const std::size_t limbs = sz(level) + 1;
  // Tasks: (component, limb, quarter of the coefficients).
  constexpr std::size_t kParts = 4;
  const std::size_t part = n / kParts;
  parallel(static_cast<std::int64_t>(comps * limbs * kParts), [&](std::int64_t t) {
    const std::size_t p = sz(t) % kParts;
    const std::size_t i = (sz(t) / kParts) % limbs;
    const std::size_t k = sz(t) / kParts / limbs;
    const std::size_t off = (k * limbs + i) * n + p * part;
    const he::Modulus& q = ctx_->modulus(i);
    std::vector<const std::uint64_t*> in;
    std::vector<std::uint64_t*> o;
    for (const Block& b : blocks) {
      in.clear();
      o.clear();
      for (std::uint32_t j : b.in) in.push_back(in_base[j] + off);
      in.push_back((k == 0 ? ones_.data() : zeros_.data()) + p * part);
      for (std::uint32_t r : b.out) o.push_back(out_base[r] + off);
      he::lincomb(in, b.res[i], q, o, part, accumulate);
    }
  });
}

void BatchProgram::finish_linear(const Step& s, const EvalKeys& keys,
                                 std::vector<he::Ciphertext>& out) const {
  parallel(static_cast<std::int64_t>(out.size()), [&](std::int64_t r) {
    // Relinearize first: a size-3 rescale would add e2 s^2 (hundreds of times
    // the size-2 rounding), and the key switching noise is then divided by q_l.
    he::Ciphertext& c = out[sz(r)];
    if (c.size() == 3) eval_.relinearize_inplace(c, keys.relin);
    eval_.rescale_inplace(c);
    c.set_scale(s.out_scale);
  });
}

std::vector<he::Ciphertext> BatchProgram::run_linear(const Step& s, const EvalKeys& keys,
                                                     std::vector<he::Ciphertext> x) const {
  const std::size_t comps = x.front().size();
  std::vector<std::uint64_t*> base;
  const double pre_scale = s.out_scale * static_cast<double>(ctx_->modulus(sz(s.level)).value());
  std::vector<he::Ciphertext> out = allocate(sz(s.out_count), s.level, pre_scale, comps, base);
  combine(s.blocks, s.level, comps, bases(x), base, false);
  x.clear();
  x.shrink_to_fit();
  finish_linear(s, keys, out);
  return out;
}

std::vector<he::Ciphertext> BatchProgram::run_fused(const Step& a, const Step& p, const Step& b,
                                                    const EvalKeys& keys,
                                                    std::vector<he::Ciphertext> x) const {
  const std::size_t n = ctx_->n();
  const std::size_t comps = x.front().size();
  const auto in_base = bases(x);
  std::vector<std::uint64_t*> acc_base, base;
  const double b_pre = b.out_scale * static_cast<double>(ctx_->modulus(sz(b.level)).value());
  std::vector<he::Ciphertext> acc = allocate(sz(b.out_count), b.level, b_pre, 3, acc_base);
  std::size_t most = 0;
  for (const Chunk& c : a.chunks) most = std::max(most, c.outs.size());
  // A chunk's outputs and their activations as bare rows, reused from chunk
  // to chunk (no zero fill, no fresh pages).
  const std::size_t a_words = comps * (sz(a.level) + 1) * n;
  const std::size_t z_words = 3 * (sz(b.level) + 1) * n;
  he::PolyVector z_rows;
  std::vector<he::Ciphertext> y;  // comps == 3: the general path
  if (comps == 2) z_rows.resize(most * z_words);
  bool first = true;
  for (const Chunk& c : a.chunks) {
    std::vector<const std::uint64_t*> z_base(c.outs.size());
    if (comps == 2) {
      // Per block of A (a conv position: every output channel), on one
      // thread: its outputs, then for each the rescale, x (x + b) and the
      // second rescale, while the block's rows are still in cache.
      parallel(static_cast<std::int64_t>(c.a.size()), [&](std::int64_t bi) {
        const Block& blk = c.a[sz(bi)];
        thread_local he::PolyVector rows;
        rows.resize(blk.out.size() * a_words);
        for (std::size_t k = 0; k < comps; ++k) {
          for (std::size_t i = 0; i <= sz(a.level); ++i) {
            const std::size_t off = (k * (sz(a.level) + 1) + i) * n;
            std::vector<const std::uint64_t*> in;
            std::vector<std::uint64_t*> o;
            for (std::uint32_t j : blk.in) in.push_back(in_base[j] + off);
            in.push_back((k == 0 ? ones_.data() : zeros_.data()));
            for (std::size_t r = 0; r < blk.out.size(); ++r)
              o.push_back(rows.data() + r * a_words + off);
            he::lincomb(in, blk.res[i], ctx_->modulus(i), o, n);
          }
        }
        for (std::size_t r = 0; r < blk.out.size(); ++r) {
          const std::uint32_t e = blk.out[r];
          if (a.deferred) {
            activate_deferred(*ctx_, rows.data() + r * a_words, a.level, p.b_res[c.outs[e]],
                              z_rows.data() + e * z_words);
          } else {
            activate(*ctx_, rows.data() + r * a_words, a.level, p.b_res[c.outs[e]],
                     z_rows.data() + e * z_words);
          }
        }
      });
      for (std::size_t j = 0; j < c.outs.size(); ++j) z_base[j] = z_rows.data() + j * z_words;
      combine({c.b}, b.level, 3, z_base, acc_base, !first);
    } else {
      const double a_pre = a.out_scale * static_cast<double>(ctx_->modulus(sz(a.level)).value());
      y = allocate(c.outs.size(), a.level, a_pre, comps, base);
      combine(c.a, a.level, comps, in_base, base, false);
      finish_linear(a, keys, y);
      run_poly(p, keys, y, &c.outs);
      combine({c.b}, b.level, 3, bases(y), acc_base, !first);
    }
    first = false;
  }
  x.clear();
  x.shrink_to_fit();
  finish_linear(b, keys, acc);
  return acc;
}

void BatchProgram::run_poly(const Step& s, const EvalKeys& keys, std::vector<he::Ciphertext>& x,
                            const std::vector<std::uint32_t>* index) const {
  parallel(static_cast<std::int64_t>(x.size()), [&](std::int64_t e) {
    he::Ciphertext& y = x[sz(e)];
    if (y.size() == 3) eval_.relinearize_inplace(y, keys.relin);
    const he::Ciphertext t = eval_.add_scalar(y, s.b[index ? (*index)[sz(e)] : sz(e)]);
    y = eval_.multiply(t, y);
    eval_.rescale_inplace(y);
    y.set_scale(s.out_scale);
  });
}

std::vector<he::Ciphertext> BatchProgram::evaluate(const EvalKeys& keys,
                                                   std::vector<he::Ciphertext> inputs) const {
  const std::int64_t want = numel(spec_.input_shape);
  if (static_cast<std::int64_t>(inputs.size()) != want) {
    throw_error(ErrorCategory::kBadInput, "he batch program: " + std::to_string(inputs.size()) +
                                              " input ciphertexts (expected " +
                                              std::to_string(want) + ")");
  }
  const double d0 = std::exp2(spec_.log2_input_scale);
  const int top = steps_.empty() ? 0 : steps_.front().level;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const he::Ciphertext& c = inputs[i];
    std::string why;
    if (c.context_id() != ctx_->id()) {
      why = "another context";
    } else if (c.level() != top) {
      why = "level " + std::to_string(c.level()) + " (expected " + std::to_string(top) + ")";
    } else if (c.size() != 2) {
      why = "size " + std::to_string(c.size());
    } else if (std::fabs(c.scale() / d0 - 1) > 1e-9) {
      why = "scale 2^" + std::to_string(std::log2(c.scale()));
    }
    if (!why.empty()) {
      throw_error(ErrorCategory::kBadInput,
                  "he batch program: input ciphertext " + std::to_string(i) + ": " + why);
    }
  }
  std::vector<he::Ciphertext> x = std::move(inputs);
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const Step& s = steps_[i];
    if (!s.chunks.empty()) {
      x = run_fused(s, steps_[i + 1], steps_[i + 2], keys, std::move(x));
      i += 2;
    } else if (is_linear(s.kind)) {
      x = run_linear(s, keys, std::move(x));
    } else {
      run_poly(s, keys, x);
    }
  }
  for (he::Ciphertext& c : x) {
    if (c.size() == 3) eval_.relinearize_inplace(c, keys.relin);
  }
  return x;
}

std::string BatchProgram::describe() const {
  const he::CkksParameters& p = ctx_->parameters();
  std::ostringstream o;
  o << "mode: batch (CryptoNets: one sample per slot, scalar weights; up to " << spec_.max_batch
    << " samples per query)\n";
  o << "parameters: " << p.describe() << ", log2(QP) = " << ctx_->log_qp() << "\n";
  o << "  why N = " << p.n << ": depth " << steps_.size() << " needs " << steps_.size()
    << " scale primes + q0 + a special prime; primes <= 50 bits (IFMA52); " << notes_ << "\n";
  o << "  chain:";
  for (std::size_t i = 0; i < ctx_->chain_size(); ++i)
    o << " q" << i << "=" << ctx_->modulus(i).value();
  o << " | special " << ctx_->modulus(ctx_->chain_size()).value() << "\n";
  o << "input: " << numel(spec_.input_shape) << " ciphertexts at level " << spec_.input_level
    << ", scale 2^" << spec_.log2_input_scale << ", |x| <= " << spec_.input_bound << "\n";
  bool three = false;  // the step reads size-3 ciphertexts
  for (const Step& s : steps_) {
    o << "  " << kind_name(s.kind) << " '" << s.node << "': level " << s.level << " -> "
      << s.level - 1 << ", " << s.in_count << " -> " << s.out_count << " ciphertexts";
    if (!s.chunks.empty()) {
      o << " [fused with the next two layers in " << s.chunks.size() << " chunks of about "
        << kChunkOutputs << " outputs: per output one pass of "
        << (s.deferred ? "x(x+b) on the unrescaled sums at level " + std::to_string(s.level) +
                             " and one division by q" + std::to_string(s.level) + " q" +
                             std::to_string(s.level - 1)
                       : std::string("rescale, x(x+b) and rescale"))
        << ", then the Dense sums]";
    }
    if (is_linear(s.kind)) {
      o << ", " << s.macs << " scalar products (" << s.blocks.size() << " blocks), weights at 2^"
        << format_short(std::log2(s.weight_scale), 4) << ", "
        << (s.deferred ? std::string("no rescale") : std::to_string(s.out_count) + " rescales")
        << (three ? " (each relinearized first)" : "");
    } else {
      o << ", " << s.out_count << " products + rescales (outputs left unrelinearized)";
    }
    three = !is_linear(s.kind);
    o << ", scale 2^" << format_short(std::log2(s.out_scale), 6)
      << ", |y| <= " << format_short(s.bound) << ", noise sigma " << format_short(s.sigma) << "\n";
  }
  o << "output: " << spec_.output_bound << " bound, error budget "
    << format_short(spec_.output_error) << " (6 sigma + worst-case rounding; refused above "
    << format_short(output_error_limit(spec_.output_bound))
    << ": every sample whose two largest outputs differ by more than twice this keeps its arg "
       "max)\n";
  o << "Galois keys: none; relinearization key: " << (spec_.relin_keys ? "yes" : "no") << "\n";
  return o.str();
}

struct Plan {
  he::CkksParameters params;
  int scale_bits = 0;
  std::vector<Step> steps;
  Budget budget;
  std::string notes;
};

Plan make_plan(const Chain& chain, double input_bound) {
  if (chain.layers.empty()) {
    throw_error(ErrorCategory::kUnsupported, "he batch: the model has no layer to evaluate");
  }
  const int depth = chain_depth(chain);
  if (depth != static_cast<int>(chain.layers.size())) {
    throw_error(ErrorCategory::kInternal, "he batch: depth " + std::to_string(depth) + " for " +
                                              std::to_string(chain.layers.size()) + " layers");
  }
  std::vector<std::vector<Block>> blocks(chain.layers.size());
  std::vector<Step> steps(chain.layers.size());
  for (std::size_t i = 0; i < chain.layers.size(); ++i) {
    const Layer& l = chain.layers[i];
    Step& s = steps[i];
    s.kind = l.kind;
    s.node = l.node;
    s.in_count = numel(l.in_shape);
    s.out_count = numel(l.out_shape);
    if (is_linear(l.kind)) {
      if (l.kind != LayerKind::kDense && (l.in_shape.size() != 3 || l.out_shape.size() != 3)) {
        throw_error(ErrorCategory::kUnsupported,
                    "he batch: node '" + l.node + "': 2-D convolution/pooling on [C, H, W] only");
      }
      blocks[i] = linear_blocks(l);
      for (const Block& b : blocks[i])
        s.macs += static_cast<std::int64_t>(b.in.size() * b.out.size());
    } else {
      s.b = element_b(l);
    }
  }
  const auto bounds = element_bounds(chain, blocks, input_bound);
  const auto layer_bounds = chain_bounds(chain, input_bound);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    steps[i].bound =
        std::max(layer_bounds[i], *std::max_element(bounds[i].begin(), bounds[i].end()));
    steps[i].blocks = std::move(blocks[i]);
  }
  // Smallest N first; at each N the largest scale that fits.
  std::string last_why;
  for (std::size_t n = 4096; n <= 32768; n *= 2) {
    const int room = he::max_log_qp(n, he::SecurityLevel::k128) - kQ0Bits - kSpecialBits;
    const int s_bits = std::min(kMaxScaleBits, depth > 0 ? room / depth : kMaxScaleBits);
    if (s_bits < kMinScaleBits) {
      last_why = "N = " + std::to_string(n) + " leaves " + std::to_string(s_bits) + "-bit scales";
      continue;
    }
    he::CkksParameters params = choose_parameters(depth, s_bits, kQ0Bits, kSpecialBits);
    if (params.n != n) continue;
    std::vector<double> q(sz(depth) + 1, std::exp2(s_bits));
    q[0] = std::exp2(kQ0Bits);
    double d0 = 0;
    std::vector<Step> trial = steps;
    const std::string why = plan_scales(chain, q, s_bits, input_bound, bounds, trial, d0);
    if (!why.empty()) {
      last_why = "N = " + std::to_string(n) + ": " + why;
      continue;
    }
    Budget bud = error_budget(chain, n, q, d0, bounds, trial, input_bound);
    if (!bud.ok) {
      last_why =
          "N = " + std::to_string(n) + ", " + std::to_string(s_bits) + "-bit scales: " + bud.why;
      continue;
    }
    Plan plan;
    plan.params = params;
    plan.scale_bits = s_bits;
    plan.steps = std::move(steps);
    plan.budget = std::move(bud);
    plan.notes = "the smallest N whose 128-bit bound holds q0 (" + std::to_string(kQ0Bits) +
                 ") + " + std::to_string(depth) + " x " + std::to_string(s_bits) + " + special (" +
                 std::to_string(kSpecialBits) + ") bits within the error budget" +
                 (last_why.empty() ? std::string() : " (smaller: " + last_why + ")");
    return plan;
  }
  throw_error(ErrorCategory::kUnsupported,
              "he batch: no parameter set at 128-bit security meets the depth " +
                  std::to_string(depth) + " and the error budget: " + last_why);
}

}  // namespace

std::unique_ptr<Program> build_batch(const Chain& chain, const ProgramOptions& options) {
  const bool declared = options.input_bound > 0;
  const double input_bound = declared ? options.input_bound : 1.0;
  Plan plan = make_plan(chain, input_bound);
  auto ctx = he::CkksContext::create(plan.params);
  // The real primes: scales and weight encodings.
  const int depth = static_cast<int>(plan.steps.size());
  std::vector<double> q(sz(depth) + 1);
  for (int i = 0; i <= depth; ++i) q[sz(i)] = static_cast<double>(ctx->modulus(sz(i)).value());
  double d0 = 0;
  std::vector<std::vector<Block>> blocks;
  std::vector<std::vector<double>> bounds;
  {
    for (const Step& s : plan.steps) blocks.push_back(s.blocks);
    bounds = element_bounds(chain, blocks, input_bound);
  }
  const std::string why =
      plan_scales(chain, q, plan.scale_bits, input_bound, bounds, plan.steps, d0);
  if (!why.empty()) throw_error(ErrorCategory::kUnsupported, "he batch: " + why);
  const Budget bud = error_budget(chain, ctx->n(), q, d0, bounds, plan.steps, input_bound);
  if (!bud.ok) throw_error(ErrorCategory::kUnsupported, "he batch: " + bud.why);
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    Step& s = plan.steps[i];
    s.sigma = bud.sigma[i];
    s.worst = bud.worst[i];
    if (!is_linear(s.kind)) continue;
    for (Block& b : s.blocks) {
      const std::size_t k = b.in.size(), m = b.out.size();
      b.res.assign(sz(s.level) + 1, std::vector<std::uint64_t>(m * (k + 1)));
      for (int li = 0; li <= s.level; ++li) {
        const he::Modulus& qm = ctx->modulus(sz(li));
        auto& res = b.res[sz(li)];
        for (std::size_t r = 0; r < m; ++r) {
          for (std::size_t j = 0; j < k; ++j) {
            res[r * (k + 1) + j] = he::rounded_residue(b.w[r * k + j] * s.weight_scale, qm);
          }
          res[r * (k + 1) + k] = he::rounded_residue(
              b.bias[r] * s.out_scale * (s.deferred ? 1.0 : q[sz(s.level)]), qm);
        }
      }
      b.w.clear();
      b.w.shrink_to_fit();
    }
  }
  for (std::size_t si = 0; si < plan.steps.size(); ++si) {
    Step& s = plan.steps[si];
    if (s.kind != LayerKind::kPoly) continue;
    const int top = s.level + (si > 0 && plan.steps[si - 1].deferred ? 1 : 0);
    for (double bv : s.b) {
      std::vector<std::uint64_t> res(sz(top) + 1);
      for (int li = 0; li <= top; ++li) {
        res[sz(li)] = he::rounded_residue(bv * s.in_scale, ctx->modulus(sz(li)));
      }
      s.b_res.push_back(std::move(res));
    }
  }
  for (std::size_t i = 0; i + 2 < plan.steps.size(); ++i) {
    Step& s = plan.steps[i];
    if (is_linear(s.kind) && plan.steps[i + 1].kind == LayerKind::kPoly &&
        plan.steps[i + 2].kind == LayerKind::kDense && plan.steps[i + 2].blocks.size() == 1) {
      s.chunks = make_chunks(s, plan.steps[i + 2]);
      i += 2;
    }
  }
  ClientSpec spec;
  spec.mode = Mode::kBatch;
  spec.params = plan.params;
  spec.relin_keys = std::any_of(plan.steps.begin(), plan.steps.end(),
                                [](const Step& s) { return s.kind == LayerKind::kPoly; });
  spec.log2_input_scale = std::log2(d0);
  spec.input_level = depth;
  spec.input_shape = chain.input_shape;
  spec.output_shape = chain.output_shape;
  spec.max_batch = static_cast<std::int64_t>(ctx->slots());
  spec.input_bound = declared ? options.input_bound : 0;
  spec.finish = chain.finish;
  spec.softmax_axis = chain.softmax_axis;
  spec.output_error = bud.output_error;
  spec.output_bound = plan.steps.back().bound;
  std::string notes = plan.notes;
  if (!declared) notes += "; no input bound declared: |x| <= 1 assumed";
  return std::make_unique<BatchProgram>(std::move(spec), std::move(ctx), std::move(plan.steps),
                                        options.pool, std::move(notes));
}

Support batch_support(const Chain& chain) {
  try {
    make_plan(chain, 1.0);
  } catch (const Error& e) {
    return Support::no(chain.layers.empty() ? std::string() : chain.layers.front().node, e.what());
  }
  return Support::yes();
}

}  // namespace blindfold::backends::heplan
