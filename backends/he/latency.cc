// Latency mode: one sample per query, packed in the slots of one ciphertext.
//
// Packing.
//  - A first convolution reads an input the client lays out as im2col
//    patches: the value under kernel offset k (k = (ci, ki, kj)) at output
//    position p sits in slot k * B + p, B the power of two >= the output
//    positions (0 for padding), repeated with the period of the power of two
//    >= offsets * B where that is below the slot count. This is the convolution representation of
//    LoLa (Brutzkus, Gilad-Bachrach and Elisha, "Low Latency Privacy
//    Preserving Inference", ICML 2019, section 4): the convolution becomes a
//    block matrix-vector product whose blocks are w[c, k] * I_B, so no
//    rotation moves data inside a block. Output channel c, position p lands
//    in slot c * B + p; the rotate-and-sum at the end sums the blocks over the
//    whole ring, so the output repeats with period h (the power of two >= the
//    channels * B) with clean zeros on unused positions.
//  - Any other first layer reads the flattened sample in slots 0.. numel-1,
//    repeated with period P (the power of two >= numel): the client fills
//    every slot, which costs it nothing and gives the next layer copies.
//  - Every linear layer (dense, the first convolution, average pooling) is
//    one sparse matrix evaluated on whatever layout the previous layer left
//    (element e in the slots = pos[e] mod period; any other slot zero or
//    garbage, which gets zero weight) by the hybrid of the diagonal method
//    and rotate-and-sum (Juvekar, Vaikuntanathan and Chandrakasan, "GAZELLE",
//    USENIX Security 2018, section 5.1): output row m is collected from the
//    slots o[m] + h u (u < T) by log2(T) rotate-and-add steps of stride h,
//    each product w[m, k] x[k] is put in the one slot s = o[m] + h u with
//    s + i = pos[k] (mod period), i = (pos[k] - o[m]) mod h; so at most h
//    generalised diagonals P_i, and out = sum_i P_i * rot(x, i) is computed
//    with baby-step/giant-step (Halevi and Shoup, "Faster homomorphic linear
//    transformations in HElib", CRYPTO 2018): the baby rotations of x share
//    one decomposition (hoisted), the products are accumulated in one pass
//    per RNS row (Shoup multiplications, no temporaries), and each giant's
//    partial sum (its plaintexts pre-rotated at build time) is rescaled
//    before its giant rotation, which then runs one level lower. Dense rows are placed at
//    o[m] = (m mod h) + (m div h) * P in windows of one input period, so that
//    with an input repeated 4 times (period 2048 in 8192 slots) a 100-row
//    layer needs 32 diagonals, not 128. h and the baby/giant split are chosen
//    per layer to minimise rotations.
//  - kPoly: y = x * (x + b), b per element's channel in its slots: add_plain,
//    one ciphertext product, relinearize, rescale.
// Levels and scales are tracked exactly: a linear layer's plaintexts are
// encoded at scale q_l (the prime its rescale drops), so the scale returns to
// the input's; a product divides the square of the scale by q_l. Every
// plaintext is encoded once, at build time, at the level it is used.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "backends/he/layers.h"
#include "backends/he/modes.h"
#include "backends/lowering.h"
#include "core/error.h"
#include "he/ckks.h"

namespace blindfold::backends::heplan {
namespace {

// Fixed choices of the mode. The scale Delta = 2^s is chosen per model
// (make_plan): the largest s <= kMaxScaleBits whose chain fits the smallest
// N at 128-bit security and whose magnitudes fit. Every chain prime is one
// 64-bit word whatever its size, but primes below 2^50 take the AVX-512
// IFMA52 NTT (he/ntt.cc; Boemer et al. 2021), so the scale primes stay
// below it: at 57 bits fmnist-he evaluated in 1.6x the time of 48 bits.
constexpr int kQ0Bits = 60;       // the output's modulus
constexpr int kSpecialBits = 60;  // one special prime as large as any digit
constexpr int kMaxScaleBits = 48;
constexpr int kMinScaleBits = 30;
// Magnitudes: a value v at scale D needs |v| D < q/2; we ask for 2^kMarginBits
// more, on top of interval bounds that are already worst case.
constexpr int kMarginBits = 4;
// Error budget (the criterion of both modes, output_error_limit in
// layers.h): every output's noise is tracked as a standard deviation per
// slot and the rounding of weights as a worst case; output_error = 6 sigma
// + worst case, and a plan is refused unless output_error <= 2^-10 (times
// the output bound when that is below 1), so every sample whose two largest
// outputs differ by more than twice that keeps its arg max. The noise model (per slot, message
// units; N the ring degree, sigma = 3.2 the error's deviation, Delta the scale where it lands):
//  - fresh symmetric encryption: sqrt(N (sigma^2 + 1/12)) / Delta;
//  - a rescale (and the ModDown of a key switch) rounds e0 + e1 s with e_i
//    uniform in [-1/2, 1/2] and s ternary of weight 2N/3:
//    sqrt(N (1 + 2N/3) / 12) / Delta;
//  - a key switch at level l (hybrid, one digit per chain prime, digits not
//    centred: E[d^2] = q_i^2 / 3; Han-Ki, CT-RSA 2020, Sec. 3):
//    sqrt(N) sigma sqrt(N sum_i q_i^2 / 3) / P, plus the ModDown rounding;
//  - a plaintext encoded at scale W rounds each coefficient: sqrt(N / 12) / W
//    per slot, times the value it multiplies (|x| <= its interval bound);
//  - linear layers propagate variances by the squared weights of each row
//    (slots' noises taken as independent), x (x + b) by its derivative
//    2|x| + |b| at the element's interval bound, plus e^2 as a worst case.
// Interval bounds per element (not the layer's maximum) enter the
// derivatives, as in batch mode.
constexpr double kSigma = 3.2;
constexpr double kSigmas = 6;
// Cost model of a linear layer at level l (units of one NTT-sized pass over
// N words; per-prime digits, one special prime): a key switch decomposes
// into l + 1 digits over l + 2 primes (ModUp, ~(l+1)(l+2)), takes an inner
// product of the same size, and divides by P (ModDown, ~2(l+1)). A hoisted
// rotation shares ModUp; a rescale is ~2(l+1); a plaintext product and add
// ~0.8(l+1) (measured against a rotation at N = 16384).
double modup_cost(int l) {
  return (l + 1.0) * (l + 2.0);
}
double hoisted_cost(int l) {
  return (l + 1.0) * (l + 2.0) + 2.0 * (l + 1);
}
double full_cost(int l) {
  return modup_cost(l) + hoisted_cost(l);
}
double rescale_cost(int l) {
  return 2.0 * (l + 1);
}
double mac_cost(int l) {
  return 0.8 * (l + 1);
}
// A layer whose encoded weights would exceed this is refused (a dense layer
// with thousands of diagonals is no latency-mode workload).
constexpr double kMaxPlaintextBytes = 4.0 * (1 << 30);

// A refusal that names the node; latency_support() reads node and reason.
class Refusal : public Error {
 public:
  Refusal(std::string node, std::string reason)
      : Error(ErrorCategory::kUnsupported, "he latency mode: node '" + node + "': " + reason),
        node_(std::move(node)),
        reason_(std::move(reason)) {}
  const std::string& node() const { return node_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string node_, reason_;
};

// A value that does not fit its level at the scale tried: a smaller scale
// may fit (make_plan tries it).
class MagnitudeRefusal : public Refusal {
 public:
  using Refusal::Refusal;
};

using lowering::numel;

std::int64_t pow2_at_least(std::int64_t v) {
  std::int64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

int log2_exact(std::int64_t v) {
  int e = 0;
  while ((std::int64_t{1} << e) < v) ++e;
  return e;
}

std::int64_t mod(std::int64_t a, std::int64_t m) {
  const std::int64_t r = a % m;
  return r < 0 ? r + m : r;
}

const char* kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::kConv: return "conv";
    case LayerKind::kDense: return "dense";
    case LayerKind::kPoly: return "poly";
    case LayerKind::kAvgPool: return "avgpool";
  }
  return "?";
}

// Where a layer's input or output lives: element e in every slot s with
// s = pos[e] (mod period); period is a power of two dividing the slots.
struct Layout {
  std::vector<std::int64_t> pos;
  std::int64_t period = 0;
};

// One nonzero of a linear layer's matrix.
struct Entry {
  std::int32_t row, col;
  double w;
};

// How a linear layer places its output rows.
struct RowPlacement {
  bool block = false;  // conv/avgpool: row (c, p) at c * B + p, one window
  std::int64_t B = 0;  // block size (power of two >= positions)
  std::int64_t positions = 0;
  std::int64_t channels = 0;
  // Non-empty: row m at slot pos[m], one window (a convolution or pooling
  // on a channel-block grid: outputs stay where their windows start, see
  // grid_placement).
  std::vector<std::int64_t> pos;
};

// A linear layer, planned: out = sum_g rot(sum_b P[g][b] * rot(x, baby[b]), giant[g]),
// rescale, then rotate-and-add by sum_steps, then + bias.
struct LinearPlan {
  std::int64_t h = 0, T = 0, windows = 0;
  std::int64_t g0 = 1, beta = 1;
  std::vector<int> baby_steps;  // rotation of each baby (0 for x itself)
  struct Giant {
    int step = 0;
    std::vector<std::pair<int, std::vector<double>>> terms;  // (baby index, slot values)
    std::vector<he::Plaintext> plains;
    std::vector<std::vector<std::uint64_t>> shoup;  // Shoup constants of each plaintext
  };
  std::vector<Giant> giants;
  std::vector<int> sum_steps;
  int scale_shift = 0;             // weights at q_l / 2^shift: the output scale drops by it
  std::vector<double> bias_slots;  // empty: no bias
  he::Plaintext bias;
  std::size_t diagonals = 0;
  double cost = 0;
  Layout out;
};

struct PolyPlan {
  std::vector<double> b_slots;  // empty: b = 0 (a square)
  he::Plaintext b;
};

struct Step {
  LayerKind kind = LayerKind::kDense;
  std::string node;
  int level_in = 0, level_out = 0;
  double scale_in = 0, scale_out = 0;
  LinearPlan lin;
  PolyPlan poly;
  double bound_in = 0, bound_out = 0;
  double gain = 0;  // L1 gain (linear) or 2 B + |b| (poly)
  double err_out = 0;
};

int normalise_step(std::int64_t step, std::int64_t slots) {
  return static_cast<int>(mod(step, slots));
}

// BSGS split of a set of diagonals (multiples of g0): baby b, giant g with
// i / g0 = g * beta + b. The babies rotate x at level l (hoisted), each
// giant's partial sum is rescaled and rotated at level l - 1.
double bsgs_cost(const std::set<std::int64_t>& a, std::int64_t beta, int l) {
  std::set<std::int64_t> babies, giants;
  for (auto v : a) {
    if (v % beta) babies.insert(v % beta);
    giants.insert(v / beta);
  }
  const double nb = static_cast<double>(babies.size());
  const double ng = static_cast<double>(giants.size());
  return (nb > 0 ? modup_cost(l) : 0) + nb * hoisted_cost(l) + ng * rescale_cost(l) +
         (ng - 1) * full_cost(l - 1) + static_cast<double>(a.size()) * mac_cost(l);
}

// Plans one linear layer on layout `in` (no encoding).
LinearPlan plan_linear(const Layer& layer, const std::vector<Entry>& entries, std::int64_t rows,
                       const RowPlacement& place, const Layout& in, std::int64_t slots,
                       const std::vector<double>& bias, int level) {
  const std::int64_t P = in.period;
  std::vector<std::int64_t> hs;
  if (!place.pos.empty()) {
    const std::int64_t h = pow2_at_least(*std::max_element(place.pos.begin(), place.pos.end()) + 1);
    if (h > slots) {
      throw Refusal(layer.node, "outputs up to slot " + std::to_string(h - 1) + " do not fit " +
                                    std::to_string(slots) + " slots");
    }
    hs.push_back(h);
  } else if (place.block) {
    const std::int64_t h = pow2_at_least(place.channels * place.B);
    if (h > slots) {
      throw Refusal(layer.node, std::to_string(place.channels) + " channels of " +
                                    std::to_string(place.B) + " slots do not fit " +
                                    std::to_string(slots) + " slots");
    }
    hs.push_back(h);
  } else {
    for (std::int64_t h = 1; h <= std::min(P, slots); h <<= 1) {
      const std::int64_t windows = (rows + h - 1) / h;
      if (windows == 1 || (P < slots && windows <= slots / P)) hs.push_back(h);
    }
    if (hs.empty()) {
      throw Refusal(layer.node, std::to_string(rows) + " outputs do not fit " +
                                    std::to_string(slots) + " slots");
    }
  }

  LinearPlan best;
  best.cost = 1e300;
  for (const std::int64_t h : hs) {
    const bool one_window = place.block || !place.pos.empty();
    const std::int64_t windows = one_window ? 1 : (rows + h - 1) / h;
    std::vector<std::int64_t> o(static_cast<std::size_t>(rows));
    for (std::int64_t m = 0; m < rows; ++m) {
      o[static_cast<std::size_t>(m)] = !place.pos.empty() ? place.pos[static_cast<std::size_t>(m)]
                                       : place.block
                                           ? (m / place.positions) * place.B + m % place.positions
                                           : (m % h) + (m / h) * P;
    }
    const std::int64_t G = std::min(h, P);
    std::set<std::int64_t> diag;
    std::int64_t max_u = 0;
    for (const Entry& e : entries) {
      const std::int64_t om = o[static_cast<std::size_t>(e.row)];
      const std::int64_t pk = in.pos[static_cast<std::size_t>(e.col)];
      const std::int64_t i = mod(pk - om, G);
      const std::int64_t r = mod(pk - om - i, P);
      diag.insert(i);
      max_u = std::max(max_u, r / h);
    }
    const std::int64_t T = windows > 1 ? P / h : pow2_at_least(max_u + 1);
    std::int64_t g0 = h;
    for (auto i : diag) g0 = std::gcd(g0, i);
    if (g0 == 0) g0 = 1;
    std::set<std::int64_t> a;
    for (auto i : diag) a.insert(i / g0);
    const std::int64_t amax = a.empty() ? 0 : *a.rbegin();
    std::int64_t best_beta = 1;
    double best_cost = 1e300;
    for (std::int64_t beta = 1; beta <= pow2_at_least(amax + 1); beta <<= 1) {
      const double c = bsgs_cost(a, beta, level);
      if (c < best_cost) best_cost = c, best_beta = beta;
    }
    const double cost = best_cost + log2_exact(T) * full_cost(level - 1);
    if (cost >= best.cost) continue;

    LinearPlan p;
    p.h = h;
    p.T = T;
    p.windows = windows;
    p.g0 = g0;
    p.beta = best_beta;
    p.cost = cost;
    p.diagonals = diag.size();
    // One window on a repeated input: the products repeat with
    // F = max(h, P) (a multiple of both the rows' span and the input's
    // period), every copy computing the same rows, so the output repeats too.
    const std::int64_t F = std::max(h, P);
    const bool periodic = windows == 1 && F < slots;
    const std::int64_t span = periodic ? F : slots;
    // Slot values of every diagonal P_i, then pre-rotated into giant groups.
    std::map<std::int64_t, std::vector<double>> P_i;
    for (const Entry& e : entries) {
      const std::int64_t om = o[static_cast<std::size_t>(e.row)];
      const std::int64_t pk = in.pos[static_cast<std::size_t>(e.col)];
      const std::int64_t i = mod(pk - om, G);
      const std::int64_t s = om + mod(pk - om - i, P);
      auto& v = P_i[i];
      if (v.empty()) v.assign(static_cast<std::size_t>(slots), 0.0);
      for (std::int64_t t = mod(s, slots) % span; t < slots; t += span) {
        v[static_cast<std::size_t>(t)] += e.w;
      }
    }
    std::map<std::int64_t, std::size_t> baby_index;
    std::map<std::int64_t, std::size_t> giant_index;
    for (auto& [i, v] : P_i) {
      const std::int64_t ai = i / g0, b = ai % best_beta, g = ai / best_beta;
      if (!baby_index.count(b)) {
        baby_index[b] = p.baby_steps.size();
        p.baby_steps.push_back(normalise_step(b * g0, slots));
      }
      if (!giant_index.count(g)) {
        giant_index[g] = p.giants.size();
        p.giants.emplace_back();
        p.giants.back().step = normalise_step(g * best_beta * g0, slots);
      }
      const std::int64_t shift = g * best_beta * g0;
      std::vector<double> rotated(static_cast<std::size_t>(slots));
      for (std::int64_t t = 0; t < slots; ++t) {
        rotated[static_cast<std::size_t>(t)] = v[static_cast<std::size_t>(mod(t - shift, slots))];
      }
      p.giants[giant_index[g]].terms.emplace_back(static_cast<int>(baby_index[b]),
                                                  std::move(rotated));
    }
    for (std::int64_t t = 1; t < T; t <<= 1) p.sum_steps.push_back(normalise_step(h * t, slots));
    // Output layout: a sum over a whole period of the input repeats with
    // period h; a partial one leaves garbage between the rows.
    p.out.period = windows > 1 ? slots : (h * T == span ? h : span);
    p.out.pos.resize(static_cast<std::size_t>(rows));
    for (std::int64_t m = 0; m < rows; ++m) {
      p.out.pos[static_cast<std::size_t>(m)] = o[static_cast<std::size_t>(m)];
    }
    if (!bias.empty()) {
      bool any = false;
      for (double b : bias) any = any || b != 0;
      if (any) {
        p.bias_slots.assign(static_cast<std::size_t>(slots), 0.0);
        for (std::int64_t m = 0; m < rows; ++m) {
          for (std::int64_t s = o[static_cast<std::size_t>(m)]; s < slots; s += p.out.period) {
            p.bias_slots[static_cast<std::size_t>(s)] = bias[static_cast<std::size_t>(m)];
          }
        }
      }
    }
    best = std::move(p);
  }
  return best;
}

// The matrix of a layer on its (flattened) input, with the row placement.
struct Matrix {
  std::vector<Entry> entries;
  std::int64_t rows = 0;
  RowPlacement place;
  std::vector<double> bias;  // per row
  double gain = 0;           // max row L1 norm
  std::int64_t max_row_nnz = 0;
};

void finish_matrix(Matrix& m) {
  std::vector<double> l1(static_cast<std::size_t>(m.rows), 0.0);
  std::vector<std::int64_t> nnz(static_cast<std::size_t>(m.rows), 0);
  for (const Entry& e : m.entries) {
    l1[static_cast<std::size_t>(e.row)] += std::fabs(e.w);
    ++nnz[static_cast<std::size_t>(e.row)];
  }
  m.gain = l1.empty() ? 0 : *std::max_element(l1.begin(), l1.end());
  m.max_row_nnz = nnz.empty() ? 0 : *std::max_element(nnz.begin(), nnz.end());
}

// First convolution on the im2col layout: columns (k, p) at k * B + p.
Matrix conv_im2col_matrix(const Layer& L) {
  const std::int64_t oc = L.out_shape[0], oh = L.out_shape[1], ow = L.out_shape[2];
  const std::int64_t ic = L.in_shape[0];
  const std::int64_t K = ic * L.kh * L.kw, npos = oh * ow;
  Matrix m;
  m.rows = oc * npos;
  m.place.block = true;
  m.place.B = pow2_at_least(npos);
  m.place.positions = npos;
  m.place.channels = oc;
  for (std::int64_t c = 0; c < oc; ++c) {
    for (std::int64_t k = 0; k < K; ++k) {
      const double w = L.weight[static_cast<std::size_t>(c * K + k)];
      if (w == 0) continue;
      for (std::int64_t p = 0; p < npos; ++p) {
        m.entries.push_back(
            {static_cast<std::int32_t>(c * npos + p), static_cast<std::int32_t>(k * npos + p), w});
      }
    }
  }
  m.bias.assign(static_cast<std::size_t>(m.rows), 0.0);
  if (!L.bias.empty()) {
    for (std::int64_t r = 0; r < m.rows; ++r) {
      m.bias[static_cast<std::size_t>(r)] = L.bias[static_cast<std::size_t>(r / npos)];
    }
  }
  finish_matrix(m);
  return m;
}

Matrix dense_matrix(const Layer& L) {
  const std::int64_t M = numel(L.out_shape), K = numel(L.in_shape);
  if (static_cast<std::int64_t>(L.weight.size()) != M * K) {
    throw Refusal(L.node, "weight has " + std::to_string(L.weight.size()) + " values, expected " +
                              std::to_string(M * K));
  }
  Matrix m;
  m.rows = M;
  for (std::int64_t r = 0; r < M; ++r) {
    for (std::int64_t k = 0; k < K; ++k) {
      const double w = L.weight[static_cast<std::size_t>(r * K + k)];
      if (w != 0)
        m.entries.push_back({static_cast<std::int32_t>(r), static_cast<std::int32_t>(k), w});
    }
  }
  m.bias = L.bias;
  if (m.bias.empty()) m.bias.assign(static_cast<std::size_t>(M), 0.0);
  finish_matrix(m);
  return m;
}

// A layout is a channel-block grid when element (c, y, x) of a [C, H, W]
// value sits at base + c * B + y * RS + x * CS for every element (the
// first convolution's output is one with RS = W, CS = 1; a grid layer keeps
// its outputs on the grid of its input, see grid_placement).
struct Grid {
  bool ok = false;
  std::int64_t base = 0, B = 0, RS = 0, CS = 0;
};

Grid grid_of(const Layout& in, const Shape& shape) {
  Grid g;
  if (shape.size() != 3) return g;
  const std::int64_t C = shape[0], H = shape[1], W = shape[2];
  if (static_cast<std::int64_t>(in.pos.size()) != C * H * W || C * H * W == 0) return g;
  auto at = [&](std::int64_t c, std::int64_t y, std::int64_t x) {
    return in.pos[static_cast<std::size_t>((c * H + y) * W + x)];
  };
  g.base = at(0, 0, 0);
  g.CS = W > 1 ? at(0, 0, 1) - g.base : 1;
  g.RS = H > 1 ? at(0, 1, 0) - g.base : W * g.CS;
  g.B = C > 1 ? at(1, 0, 0) - g.base : pow2_at_least((H - 1) * g.RS + (W - 1) * g.CS + 1);
  if (g.CS <= 0 || g.RS < W * g.CS || g.B < (H - 1) * g.RS + (W - 1) * g.CS + 1) return g;
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t y = 0; y < H; ++y)
      for (std::int64_t x = 0; x < W; ++x)
        if (at(c, y, x) != g.base + c * g.B + y * g.RS + x * g.CS) return g;
  g.ok = true;
  return g;
}

// Outputs of a window layer (conv, pooling) on a grid input stay on that
// grid: output (c, y, x) at base + c * B + y * sh * RS + x * sw * CS, where
// its window starts (Lee et al., "Low-complexity deep convolutional neural
// networks on FHE using multiplexed parallel convolutions", ICML 2022, keep
// strided outputs in place rather than compacting them). Every tap
// (ci, ki, kj) is then one fixed offset between input and output slots:
// the diagonal method needs one diagonal per (ci - co, ki, kj), not one per
// output position, and taps that fall into the padding are zeros of their
// diagonal at those outputs.
std::vector<std::int64_t> grid_placement(const Layer& L, const Grid& g) {
  const std::int64_t OC = L.out_shape[0], OH = L.out_shape[1], OW = L.out_shape[2];
  std::vector<std::int64_t> pos(static_cast<std::size_t>(OC * OH * OW));
  for (std::int64_t c = 0; c < OC; ++c)
    for (std::int64_t y = 0; y < OH; ++y)
      for (std::int64_t x = 0; x < OW; ++x)
        pos[static_cast<std::size_t>((c * OH + y) * OW + x)] =
            g.base + c * g.B + y * L.sh * g.RS + x * L.sw * g.CS;
  return pos;
}

// A convolution after the first layer, on a grid input (element indices as
// columns).
Matrix conv_grid_matrix(const Layer& L, const Layout& in) {
  const Grid g = grid_of(in, L.in_shape);
  if (!g.ok) {
    throw Refusal(L.node,
                  "its input is not laid out as a channel-block grid (a convolution after "
                  "a dense layer); use batch mode");
  }
  const std::int64_t IC = L.in_shape[0], H = L.in_shape[1], W = L.in_shape[2];
  const std::int64_t OC = L.out_shape[0], OH = L.out_shape[1], OW = L.out_shape[2];
  Matrix m;
  m.rows = OC * OH * OW;
  m.place.pos = grid_placement(L, g);
  for (std::int64_t co = 0; co < OC; ++co) {
    for (std::int64_t ci = 0; ci < IC; ++ci) {
      for (std::int64_t ki = 0; ki < L.kh; ++ki) {
        for (std::int64_t kj = 0; kj < L.kw; ++kj) {
          const double w =
              L.weight[static_cast<std::size_t>(((co * IC + ci) * L.kh + ki) * L.kw + kj)];
          if (w == 0) continue;
          for (std::int64_t y = 0; y < OH; ++y) {
            const std::int64_t iy = y * L.sh - L.pt + ki * L.dh;
            if (iy < 0 || iy >= H) continue;
            for (std::int64_t x = 0; x < OW; ++x) {
              const std::int64_t ix = x * L.sw - L.pl + kj * L.dw;
              if (ix < 0 || ix >= W) continue;
              m.entries.push_back({static_cast<std::int32_t>((co * OH + y) * OW + x),
                                   static_cast<std::int32_t>((ci * H + iy) * W + ix), w});
            }
          }
        }
      }
    }
  }
  m.bias.assign(static_cast<std::size_t>(m.rows), 0.0);
  if (!L.bias.empty()) {
    for (std::int64_t r = 0; r < m.rows; ++r)
      m.bias[static_cast<std::size_t>(r)] = L.bias[static_cast<std::size_t>(r / (OH * OW))];
  }
  finish_matrix(m);
  return m;
}

Matrix avgpool_matrix(const Layer& L, const Layout& in) {
  const std::int64_t C = L.in_shape[0], H = L.in_shape[1], W = L.in_shape[2];
  const std::int64_t OH = L.out_shape[1], OW = L.out_shape[2];
  Matrix m;
  m.rows = C * OH * OW;
  if (const Grid g = grid_of(in, L.in_shape); g.ok) {
    m.place.pos = grid_placement(L, g);
  } else {
    m.place.block = true;
    m.place.B = pow2_at_least(OH * OW);
    m.place.positions = OH * OW;
    m.place.channels = C;
  }
  for (std::int64_t c = 0; c < C; ++c) {
    for (std::int64_t y = 0; y < OH; ++y) {
      for (std::int64_t x = 0; x < OW; ++x) {
        std::vector<std::int64_t> cols;
        std::int64_t total = 0;
        for (std::int64_t ki = 0; ki < L.kh; ++ki) {
          for (std::int64_t kj = 0; kj < L.kw; ++kj) {
            const std::int64_t iy = y * L.sh - L.pt + ki * L.dh, ix = x * L.sw - L.pl + kj * L.dw;
            const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
            // count_include_pad counts the padded cells of the window (not
            // beyond the padding).
            if (inside || (L.count_include_pad && iy >= -L.pt && iy < H + L.pb && ix >= -L.pl &&
                           ix < W + L.pr)) {
              ++total;
            }
            if (inside) cols.push_back((c * H + iy) * W + ix);
          }
        }
        const std::int64_t row = (c * OH + y) * OW + x;
        for (auto col : cols) {
          m.entries.push_back({static_cast<std::int32_t>(row), static_cast<std::int32_t>(col),
                               1.0 / static_cast<double>(std::max<std::int64_t>(total, 1))});
        }
      }
    }
  }
  m.bias.assign(static_cast<std::size_t>(m.rows), 0.0);
  finish_matrix(m);
  return m;
}

double max_abs(const std::vector<double>& v) {
  double r = 0;
  for (double x : v) r = std::max(r, std::fabs(x));
  return r;
}

std::string log2_str(double v) {
  if (v <= 0) return "0";
  return "2^" + format_short(std::log2(v), 3);
}

// Everything build() decides, without the context (latency_support runs it).
struct Plan {
  he::CkksParameters params;
  std::int64_t slots = 0;
  int depth = 0;
  double input_bound = 1;
  bool input_bound_assumed = false;
  std::vector<double> bounds;  // after each layer
  std::vector<std::int32_t> in_map;
  Layout input_layout;
  std::vector<Step> steps;
  std::vector<int> galois_steps;
  bool relin = false;
  double output_error = 0, output_bound = 0;
  double output_sigma = 0, output_worst = 0;
  int scale_bits = 0;
  std::string why_n;
};

void check_layers(const Chain& chain) {
  if (chain.layers.empty()) throw Refusal("(model)", "the chain has no layers");
  for (const Layer& L : chain.layers) {
    if ((L.kind == LayerKind::kConv || L.kind == LayerKind::kAvgPool) &&
        (L.in_shape.size() != 3 || L.out_shape.size() != 3)) {
      throw Refusal(L.node, std::string(kind_name(L.kind)) + " expects [C, H, W] per sample");
    }
    if (L.kind == LayerKind::kConv && static_cast<std::int64_t>(L.weight.size()) !=
                                          L.out_shape[0] * L.in_shape[0] * L.kh * L.kw) {
      throw Refusal(L.node, "weight is not [oc, ic, kh, kw] (groups must be 1)");
    }
  }
}

// The plan at ring degree n and scale 2^s_bits; out_bits > 0 adds a second
// prime of that many bits below the scale primes, so that the output (at
// level 1 then) keeps the full scale where q_0 alone would not hold it.
// `base` holds what does not depend on n and s (depth, input bound, the
// layers' interval bounds), computed once by make_plan.
Plan make_plan_at(const Chain& chain, const Plan& base, std::size_t n, int s_bits, int out_bits) {
  Plan plan;
  plan.depth = base.depth;
  plan.input_bound = base.input_bound;
  plan.input_bound_assumed = base.input_bound_assumed;
  plan.bounds = base.bounds;
  plan.scale_bits = s_bits;
  plan.params.n = n;
  plan.params.chain_bits.assign(1, kQ0Bits);
  if (out_bits > 0) plan.params.chain_bits.push_back(out_bits);
  plan.params.chain_bits.insert(plan.params.chain_bits.end(), static_cast<std::size_t>(plan.depth),
                                s_bits);
  plan.params.special_primes = 1;
  plan.params.special_bits = kSpecialBits;
  plan.params.dnum = 0;
  plan.params.log2_scale = s_bits;
  plan.params.security = he::SecurityLevel::k128;
  plan.slots = static_cast<std::int64_t>(plan.params.n / 2);
  const std::int64_t slots = plan.slots;

  // Input layout.
  const Layer& first = chain.layers.front();
  const std::int64_t in_numel = numel(chain.input_shape);
  plan.in_map.assign(static_cast<std::size_t>(slots), -1);
  if (first.kind == LayerKind::kConv) {
    const std::int64_t ic = first.in_shape[0], H = first.in_shape[1], W = first.in_shape[2];
    const std::int64_t oh = first.out_shape[1], ow = first.out_shape[2];
    const std::int64_t npos = oh * ow, B = pow2_at_least(npos);
    const std::int64_t K = ic * first.kh * first.kw;
    if (K * B > slots) {
      throw Refusal(first.node, "im2col needs " + std::to_string(K) + " kernel offsets x " +
                                    std::to_string(B) + " slots > " + std::to_string(slots) +
                                    " slots at N = " + std::to_string(plan.params.n));
    }
    // The patches repeat with period P (the power of two >= K * B) over the
    // slots: rotate-and-sum then never wraps into an empty part of the ring.
    const std::int64_t P = pow2_at_least(K * B);
    plan.input_layout.period = P;
    plan.input_layout.pos.resize(static_cast<std::size_t>(K * npos));
    for (std::int64_t ci = 0; ci < ic; ++ci) {
      for (std::int64_t ki = 0; ki < first.kh; ++ki) {
        for (std::int64_t kj = 0; kj < first.kw; ++kj) {
          const std::int64_t k = (ci * first.kh + ki) * first.kw + kj;
          for (std::int64_t y = 0; y < oh; ++y) {
            for (std::int64_t x = 0; x < ow; ++x) {
              const std::int64_t p = y * ow + x;
              const std::int64_t iy = y * first.sh - first.pt + ki * first.dh;
              const std::int64_t ix = x * first.sw - first.pl + kj * first.dw;
              plan.input_layout.pos[static_cast<std::size_t>(k * npos + p)] = k * B + p;
              if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
                for (std::int64_t s = k * B + p; s < slots; s += P) {
                  plan.in_map[static_cast<std::size_t>(s)] =
                      static_cast<std::int32_t>((ci * H + iy) * W + ix);
                }
              }
            }
          }
        }
      }
    }
  } else {
    const std::int64_t P = pow2_at_least(in_numel);
    if (P > slots) {
      throw Refusal(first.node, "the input's " + std::to_string(in_numel) + " values exceed " +
                                    std::to_string(slots) + " slots");
    }
    plan.input_layout.period = P;
    plan.input_layout.pos.resize(static_cast<std::size_t>(in_numel));
    for (std::int64_t e = 0; e < in_numel; ++e)
      plan.input_layout.pos[static_cast<std::size_t>(e)] = e;
    for (std::int64_t s = 0; s < slots; ++s) {
      if (s % P < in_numel)
        plan.in_map[static_cast<std::size_t>(s)] = static_cast<std::int32_t>(s % P);
    }
  }

  // Layers, with magnitudes (scales in log2) and the error budget (noise
  // model at the top of this file): per element of the current values, the
  // noise variance, the worst-case rounding and the interval bound.
  std::vector<double> log_q(plan.params.chain_bits.size());
  {
    double acc = 0;
    for (std::size_t i = 0; i < log_q.size(); ++i) {
      acc += plan.params.chain_bits[i];
      log_q[i] = acc;
    }
  }
  const double nn = static_cast<double>(n);
  const double round_c = std::sqrt(nn * (1 + 2 * nn / 3) / 12);
  const double encode_c = std::sqrt(nn / 12);
  auto key_switch = [&](int l) {  // slot deviation of a key switch at level l, times Delta
    double sum_q2 = 0;
    for (int i = 0; i <= l; ++i)
      sum_q2 += std::exp2(2.0 * plan.params.chain_bits[static_cast<std::size_t>(i)]);
    const double ks = std::sqrt(nn) * kSigma * std::sqrt(nn * sum_q2 / 3) / std::exp2(kSpecialBits);
    return std::hypot(ks, round_c);
  };
  Layout cur = plan.input_layout;
  int level = static_cast<int>(plan.params.chain_bits.size()) - 1;
  double log_scale = s_bits;
  std::vector<double> var, worst, xb;  // per element (im2col column for a first conv)
  {
    const std::int64_t e0 =
        first.kind == LayerKind::kConv
            ? first.in_shape[0] * first.kh * first.kw * first.out_shape[1] * first.out_shape[2]
            : in_numel;
    const double fresh = std::sqrt(nn * (kSigma * kSigma + 1.0 / 12)) / std::exp2(s_bits);
    var.assign(static_cast<std::size_t>(e0), fresh * fresh);
    worst.assign(static_cast<std::size_t>(e0), 0.0);
    xb.assign(static_cast<std::size_t>(e0), plan.input_bound);
  }
  auto summarise = [&](const std::vector<double>& v, const std::vector<double>& w) {
    double e = 0;
    for (std::size_t i = 0; i < v.size(); ++i) e = std::max(e, kSigmas * std::sqrt(v[i]) + w[i]);
    return e;
  };
  std::set<int> galois;
  for (std::size_t li = 0; li < chain.layers.size(); ++li) {
    const Layer& L = chain.layers[li];
    Step st;
    st.kind = L.kind;
    st.node = L.node;
    st.level_in = level;
    st.bound_in = li == 0 ? plan.input_bound : plan.bounds[li - 1];
    if (level < 1) throw Refusal(L.node, "no level left (internal: depth mismatch)");
    const double out_bound = plan.bounds[li];
    // Magnitudes: a value v at level l and scale D needs |v| D < Q_l / 2,
    // with 2^kMarginBits to spare; garbage slots (partial sums across two
    // windows, or their squares) are counted at twice the bound.
    const double need = std::log2(2 * std::max(out_bound, 1e-300)) + 1 + kMarginBits;
    const double room = log_q[static_cast<std::size_t>(level - 1)];
    const double ql = std::exp2(plan.params.chain_bits[static_cast<std::size_t>(level)]);
    std::vector<double> nvar, nworst, nxb;
    if (L.kind == LayerKind::kPoly) {
      const std::int64_t ne = numel(L.in_shape);
      if (static_cast<std::int64_t>(cur.pos.size()) != ne ||
          static_cast<std::int64_t>(var.size()) != ne) {
        throw Refusal(L.node, "input size does not match the previous layer's output");
      }
      const std::int64_t ch = L.in_shape.empty() ? 1 : L.in_shape[0];
      const std::int64_t per = std::max<std::int64_t>(ne / std::max<std::int64_t>(ch, 1), 1);
      if (!(L.b.size() == 1 || static_cast<std::int64_t>(L.b.size()) == ch)) {
        throw Refusal(L.node, "b has " + std::to_string(L.b.size()) + " entries for " +
                                  std::to_string(ch) + " channels");
      }
      const bool has_b = max_abs(L.b) != 0;
      if (has_b) {
        st.poly.b_slots.assign(static_cast<std::size_t>(slots), 0.0);
        for (std::int64_t e = 0; e < ne; ++e) {
          const double b = L.b.size() == 1 ? L.b[0] : L.b[static_cast<std::size_t>(e / per)];
          for (std::int64_t s = cur.pos[static_cast<std::size_t>(e)]; s < slots; s += cur.period) {
            st.poly.b_slots[static_cast<std::size_t>(s)] = b;
          }
        }
      }
      plan.relin = true;
      const double scale_in = std::exp2(log_scale);
      log_scale = 2 * log_scale - plan.params.chain_bits[static_cast<std::size_t>(level)];
      if (need + log_scale > room) {
        throw MagnitudeRefusal(
            L.node, "values up to " + format_short(out_bound) +
                        " (interval bound for |input| <= " + format_short(plan.input_bound) +
                        ") at scale 2^" + format_short(log_scale) + " do not fit level " +
                        std::to_string(level - 1) + " (" + format_short(room) + " bits) with " +
                        std::to_string(kMarginBits) + " bits of margin");
      }
      // (x + e)(x + e + b) - x (x + b) = e (2x + b) + e^2; b's encoding
      // rounds at the input's scale; relinearization (divided by q_l) and
      // the rescale at the output's.
      const double scale_out = std::exp2(log_scale);
      const double fixed = std::pow(std::hypot(round_c, key_switch(level) / ql) / scale_out, 2);
      nvar.resize(var.size());
      nworst.resize(var.size());
      nxb.resize(var.size());
      double gain = 0;
      for (std::int64_t e = 0; e < ne; ++e) {
        const std::size_t i = static_cast<std::size_t>(e);
        const double b =
            std::fabs(L.b.size() == 1 ? L.b[0] : L.b[static_cast<std::size_t>(e / per)]);
        const double d = 2 * xb[i] + b;
        gain = std::max(gain, d);
        const double enc = has_b ? encode_c / scale_in * xb[i] : 0.0;
        nvar[i] = d * d * var[i] + enc * enc + fixed;
        const double e_max = kSigmas * std::sqrt(var[i]) + worst[i];
        nworst[i] = d * worst[i] + e_max * e_max;
        nxb[i] = xb[i] * (xb[i] + b);
      }
      st.gain = gain;
    } else {
      Matrix m;
      if (L.kind == LayerKind::kConv) {
        m = li == 0 ? conv_im2col_matrix(L) : conv_grid_matrix(L, cur);
      } else if (L.kind == LayerKind::kDense) {
        m = dense_matrix(L);
      } else {
        m = avgpool_matrix(L, cur);
      }
      if ((L.kind != LayerKind::kConv || li > 0) &&
          static_cast<std::int64_t>(cur.pos.size()) != numel(L.in_shape)) {
        throw Refusal(L.node, "input size " + std::to_string(numel(L.in_shape)) +
                                  " does not match the previous layer's output " +
                                  std::to_string(cur.pos.size()));
      }
      st.lin = plan_linear(L, m.entries, m.rows, m.place, cur, slots, m.bias, level);
      st.gain = m.gain;
      {
        // Encoded weights (and their Shoup constants) held by the program.
        const double bytes = static_cast<double>(st.lin.diagonals) * (level + 1) *
                             static_cast<double>(plan.params.n) * 8 * 2;
        if (bytes > kMaxPlaintextBytes) {
          throw Refusal(L.node, std::to_string(st.lin.diagonals) + " diagonals at level " +
                                    std::to_string(level) + " would hold " +
                                    format_short(bytes / (1 << 30)) + " GiB of plaintexts");
        }
      }
      // Where the output would not fit at the input's scale (the last
      // layer, at q_0: interval bounds are loose), the weights are encoded
      // at q_l / 2^shift and the output scale drops by 2^shift.
      st.lin.scale_shift = std::max(0, static_cast<int>(std::ceil(need + log_scale - room)));
      const double ls_out = log_scale - st.lin.scale_shift;
      if (ls_out < 20) {
        throw MagnitudeRefusal(
            L.node, "values up to " + format_short(out_bound) +
                        " (interval bound for |input| <= " + format_short(plan.input_bound) +
                        ") leave a scale of 2^" + format_short(ls_out) + " at level " +
                        std::to_string(level - 1) + " (" + format_short(room) + " bits)");
      }
      for (int s : st.lin.baby_steps)
        if (s) galois.insert(s);
      for (const auto& g : st.lin.giants)
        if (g.step) galois.insert(g.step);
      for (int s : st.lin.sum_steps) galois.insert(s);
      // Noise: x's own noise and the baby rotations' key switches (at the
      // input's scale) through each row's squared weights; the weights'
      // encoding at W = q_l / 2^shift, every diagonal against every slot of
      // the window (garbage slots at twice the bound) in each of the T
      // partial sums; per giant a rescale and (if it rotates) a key switch
      // at the output's scale, T times over the rotate-and-sum, which adds
      // its own key switches; the bias's encoding.
      const double scale_in = std::exp2(log_scale), scale_out = std::exp2(ls_out);
      const double W = ql / std::exp2(st.lin.scale_shift);
      const bool babies = std::count_if(st.lin.baby_steps.begin(), st.lin.baby_steps.end(),
                                        [](int b) { return b != 0; }) > 0;
      const double ks_in = babies ? key_switch(level) / scale_in : 0.0;
      const double T = static_cast<double>(st.lin.T);
      double giants_rot = 0;
      for (const auto& g : st.lin.giants) giants_rot += g.step ? 1 : 0;
      const double ks_out = key_switch(level - 1);
      double xb_max = 0;
      for (double v : xb) xb_max = std::max(xb_max, v);
      const double per_slot =
          (T * (static_cast<double>(st.lin.giants.size()) * round_c * round_c +
                giants_rot * ks_out * ks_out) +
           (T - 1) * ks_out * ks_out + encode_c * encode_c) /
              (scale_out * scale_out) +
          T * static_cast<double>(st.lin.diagonals) * std::pow(encode_c / W * 2 * xb_max, 2);
      nvar.assign(static_cast<std::size_t>(m.rows), per_slot);
      nworst.assign(static_cast<std::size_t>(m.rows), 0.0);
      nxb.assign(static_cast<std::size_t>(m.rows), 0.0);
      for (std::int64_t r = 0; r < m.rows; ++r)
        nxb[static_cast<std::size_t>(r)] = std::fabs(m.bias[static_cast<std::size_t>(r)]);
      for (const Entry& e : m.entries) {
        const std::size_t r = static_cast<std::size_t>(e.row), c = static_cast<std::size_t>(e.col);
        if (c >= var.size())
          throw Refusal(L.node, "internal: column out of range in the error budget");
        nvar[r] += e.w * e.w * (var[c] + ks_in * ks_in);
        nworst[r] += std::fabs(e.w) * worst[c];
        nxb[r] += std::fabs(e.w) * xb[c];
      }
      log_scale = ls_out;
      cur = st.lin.out;
    }
    var = std::move(nvar);
    worst = std::move(nworst);
    xb = std::move(nxb);
    st.bound_out = out_bound;
    st.err_out = summarise(var, worst);
    --level;
    st.level_out = level;
    plan.steps.push_back(std::move(st));
  }
  plan.galois_steps.assign(galois.begin(), galois.end());
  plan.output_error = summarise(var, worst);
  plan.output_bound = plan.bounds.back();
  double sd = 0, wc = 0;
  for (std::size_t i = 0; i < var.size(); ++i)
    sd = std::max(sd, std::sqrt(var[i])), wc = std::max(wc, worst[i]);
  plan.output_sigma = sd;
  plan.output_worst = wc;
  return plan;
}

// The smallest N (HE Standard, 128-bit) at which some scale fits the chain
// and meets the error budget; at that N the largest such scale (noise
// shrinks with the scale while the cost does not change). A scale whose
// magnitudes do not fit is retried one bit smaller; a plan over budget at
// the largest fitting scale moves on to the next N.
Plan make_plan(const Chain& chain, const ProgramOptions& options) {
  check_layers(chain);
  Plan base;
  base.depth = chain_depth(chain);
  base.input_bound = options.input_bound > 0 ? options.input_bound : 1.0;
  base.input_bound_assumed = !(options.input_bound > 0);
  base.bounds = chain_bounds(chain, base.input_bound);
  const int depth = base.depth;
  std::string why;
  std::string why_node = chain.layers.back().node;
  std::string skipped;
  // The output's magnitude (interval bound) in bits, with the margin: at
  // scale 2^s it needs out_need + s bits of modulus at the bottom.
  const double out_need = std::log2(2 * std::max(base.bounds.back(), 1e-300)) + 1 + kMarginBits;
  for (std::size_t n = 4096; n <= 32768; n *= 2) {
    const int max_bits = he::max_log_qp(n, he::SecurityLevel::k128);
    bool tried = false;
    for (int s = kMaxScaleBits; s >= kMinScaleBits; --s) {
      // A second bottom prime where q_0 cannot hold the output at 2^s (the
      // last layer's weights are otherwise encoded below q_l, which costs
      // their precision: see make_plan_at).
      const double bottom = out_need + s - kQ0Bits;
      const int out_bits =
          bottom <= 0 ? 0 : std::min(60, std::max(30, static_cast<int>(std::ceil(bottom))));
      const int total = kQ0Bits + out_bits + depth * s + kSpecialBits;
      if (total > max_bits) continue;
      tried = true;
      Plan plan;
      try {
        plan = make_plan_at(chain, base, n, s, out_bits);
      } catch (const MagnitudeRefusal& r) {
        why = r.reason();
        why_node = r.node();
        continue;
      } catch (const Refusal& r) {
        why = r.reason();
        why_node = r.node();
        break;
      }
      if (plan.output_error <= output_error_limit(plan.output_bound)) {
        plan.why_n =
            "depth " + std::to_string(depth) + ": log2(QP) = " + std::to_string(kQ0Bits) +
            (out_bits ? " + " + std::to_string(out_bits) : std::string()) + " + " +
            std::to_string(depth) + " x " + std::to_string(s) + " + " +
            std::to_string(kSpecialBits) + " = " + std::to_string(total) +
            " bits within the bound " + std::to_string(max_bits) + " of N = " + std::to_string(n) +
            " (HE Standard, 128-bit); scale 2^" + std::to_string(s) +
            (s == kMaxScaleBits ? " (the largest this mode uses)" : " (the largest that fits)");
        if (out_bits) {
          plan.why_n += "; a second bottom prime of " + std::to_string(out_bits) +
                        " bits holds outputs up to " + format_short(plan.output_bound) +
                        " at that scale";
        }
        if (!skipped.empty()) plan.why_n += "; " + skipped;
        return plan;
      }
      why = "expected output error " + format_short(plan.output_error) + " (6 sigma " +
            format_short(kSigmas * plan.output_sigma) + " + worst-case rounding " +
            format_short(plan.output_worst) + ") exceeds " +
            format_short(output_error_limit(plan.output_bound)) + " at N = " + std::to_string(n) +
            ", scale 2^" + std::to_string(s) +
            ": the arg max of outputs closer than 2^-9 could flip";
      why_node = chain.layers.back().node;
      break;
    }
    if (!tried) {
      skipped = "N = " + std::to_string(n) + " allows log2(QP) <= " + std::to_string(max_bits) +
                ", below " + std::to_string(kQ0Bits + depth * kMinScaleBits + kSpecialBits) +
                " for depth " + std::to_string(depth) + " at 2^" + std::to_string(kMinScaleBits);
    }
  }
  if (why.empty()) {
    throw_error(ErrorCategory::kInsecureParameters,
                "he latency mode: depth " + std::to_string(depth) +
                    " does not fit N = 32768 at 128-bit security (" + skipped + ")");
  }
  throw Refusal(why_node, why);
}

class LatencyProgram final : public Program {
 public:
  LatencyProgram(Plan plan, const Chain& chain, const ProgramOptions& options)
      : plan_(std::move(plan)), pool_(options.pool) {
    ctx_ = he::CkksContext::create(plan_.params);
    he::CkksEncoder enc(ctx_);
    double scale = std::exp2(plan_.scale_bits);
    spec_.mode = Mode::kLatency;
    spec_.params = plan_.params;
    spec_.log2_input_scale = plan_.scale_bits;
    input_scale_ = scale;
    for (Step& st : plan_.steps) {
      st.scale_in = scale;
      const int l = st.level_in;
      const double ql = static_cast<double>(ctx_->modulus(static_cast<std::size_t>(l)).value());
      if (st.kind == LayerKind::kPoly) {
        if (!st.poly.b_slots.empty()) st.poly.b = enc.encode(st.poly.b_slots, scale, l);
        st.poly.b_slots = {};
        scale = scale * scale / ql;
      } else {
        const double wscale = std::ldexp(ql, -st.lin.scale_shift);
        for (auto& g : st.lin.giants) {
          for (auto& [baby, vals] : g.terms) {
            g.plains.push_back(enc.encode(vals, wscale, l));
            vals = {};
            const he::Plaintext& pt = g.plains.back();
            std::vector<std::uint64_t> sh(pt.data().size());
            for (std::size_t i = 0; i < pt.primes(); ++i) {
              const he::Modulus& q = ctx_->modulus(i);
              const auto row = pt.row(i);
              for (std::size_t c = 0; c < row.size(); ++c) {
                sh[i * row.size() + c] = he::shoup(row[c], q);
              }
            }
            g.shoup.push_back(std::move(sh));
          }
        }
        scale = scale * wscale / ql;
        if (!st.lin.bias_slots.empty()) st.lin.bias = enc.encode(st.lin.bias_slots, scale, l - 1);
        st.lin.bias_slots = {};
      }
      st.scale_out = scale;
    }
    spec_.galois_steps = plan_.galois_steps;
    spec_.relin_keys = plan_.relin;
    spec_.input_level = -1;
    spec_.input_shape = chain.input_shape;
    spec_.output_shape = chain.output_shape;
    spec_.max_batch = 1;
    // 0 where none was declared: the client then accepts any input (the plan
    // assumed 1 and describe() says so).
    spec_.input_bound = plan_.input_bound_assumed ? 0.0 : plan_.input_bound;
    spec_.finish = chain.finish;
    spec_.softmax_axis = chain.softmax_axis;
    spec_.input_cts = 1;
    spec_.in_map = plan_.in_map;
    const Layout& out = plan_.steps.back().kind == LayerKind::kPoly ? last_layout(plan_)
                                                                    : plan_.steps.back().lin.out;
    spec_.out_ct.assign(out.pos.size(), 0);
    spec_.out_slot.resize(out.pos.size());
    for (std::size_t k = 0; k < out.pos.size(); ++k) {
      spec_.out_slot[k] = static_cast<std::int32_t>(out.pos[k]);
    }
    spec_.output_error = plan_.output_error;
    spec_.output_bound = plan_.output_bound;
    describe_ = make_description(chain);
  }

  const ClientSpec& spec() const override { return spec_; }
  std::shared_ptr<const he::CkksContext> context() const override { return ctx_; }
  std::string describe() const override { return describe_; }

  std::vector<he::Ciphertext> evaluate(const EvalKeys& keys,
                                       std::vector<he::Ciphertext> inputs) const override {
    if (inputs.size() != 1) {
      throw_error(
          ErrorCategory::kBadInput,
          "he latency program: expected 1 input ciphertext, got " + std::to_string(inputs.size()));
    }
    he::Ciphertext x = std::move(inputs[0]);
    if (x.context_id() != ctx_->id() || x.n() != ctx_->n()) {
      throw_error(ErrorCategory::kBadInput, "he latency program: a ciphertext of another context");
    }
    if (x.level() != ctx_->max_level() || x.size() != 2) {
      throw_error(ErrorCategory::kBadInput, "he latency program: input at level " +
                                                std::to_string(x.level()) + " (size " +
                                                std::to_string(x.size()) + "), expected level " +
                                                std::to_string(ctx_->max_level()) + " (size 2)");
    }
    if (std::fabs(x.scale() - input_scale_) > 1e-9 * input_scale_) {
      throw_error(ErrorCategory::kBadInput, "he latency program: input scale 2^" +
                                                format_short(std::log2(x.scale()), 6) +
                                                ", expected 2^" + std::to_string(plan_.scale_bits));
    }
    const he::Evaluator ev(ctx_, pool_);
    for (const Step& st : plan_.steps) {
      if (st.kind == LayerKind::kPoly) {
        x = poly(ev, keys, st, x);
      } else {
        x = linear(ev, keys, st.lin, x);
      }
    }
    std::vector<he::Ciphertext> out;
    out.push_back(std::move(x));
    return out;
  }

 private:
  static const Layout& last_layout(const Plan& plan) {
    for (auto it = plan.steps.rbegin(); it != plan.steps.rend(); ++it) {
      if (it->kind != LayerKind::kPoly) return it->lin.out;
    }
    return plan.input_layout;
  }

  static he::Ciphertext poly(const he::Evaluator& ev, const EvalKeys& keys, const Step& st,
                             const he::Ciphertext& x) {
    he::Ciphertext y = st.poly.b.n() ? ev.multiply(x, ev.add_plain(x, st.poly.b)) : ev.square(x);
    ev.relinearize_inplace(y, keys.relin);
    ev.rescale_inplace(y);
    return y;
  }

  // inner[g] = sum_t P[g][t] * babies[t], for every giant at once: one
  // pass per (giant, polynomial, prime) row over its terms, Shoup products
  // lazily reduced, no temporaries (instead of a multiply_plain and an add,
  // each a new ciphertext, per term).
  std::vector<he::Ciphertext> multiply_accumulate(
      const LinearPlan& p, const std::vector<const he::Ciphertext*>& babies) const {
    const he::CkksContext& ctx = *ctx_;
    const he::Ciphertext& x0 = *babies.front();
    const std::size_t n = ctx.n(), primes = x0.primes();
    std::vector<he::Ciphertext> inner;
    for (const auto& g : p.giants) {
      inner.emplace_back(ctx.id(), n, x0.level(), x0.scale() * g.plains.front().scale(), 2);
    }
    const std::int64_t tasks = static_cast<std::int64_t>(p.giants.size() * 2 * primes);
    auto body = [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t task = begin; task < end; ++task) {
        const std::size_t gi = static_cast<std::size_t>(task) / (2 * primes);
        const std::size_t k = (static_cast<std::size_t>(task) / primes) % 2;
        const std::size_t i = static_cast<std::size_t>(task) % primes;
        const auto& g = p.giants[gi];
        const he::Modulus& q = ctx.modulus(i);
        const std::uint64_t two_q = 2 * q.value();
        std::uint64_t* acc = inner[gi].mutable_row(k, i).data();
        for (std::size_t t = 0; t < g.terms.size(); ++t) {
          const std::uint64_t* xv =
              babies[static_cast<std::size_t>(g.terms[t].first)]->row(k, i).data();
          const std::uint64_t* w = g.plains[t].row(i).data();
          const std::uint64_t* ws = g.shoup[t].data() + i * n;
          for (std::size_t c = 0; c < n; ++c) {
            std::uint64_t v = acc[c] + he::mul_mod_shoup_lazy(xv[c], w[c], ws[c], q);
            v = v >= two_q ? v - two_q : v;
            acc[c] = v;
          }
        }
        for (std::size_t c = 0; c < n; ++c)
          acc[c] = acc[c] >= q.value() ? acc[c] - q.value() : acc[c];
      }
    };
    if (pool_) {
      pool_->parallel_for(tasks, body);
    } else {
      body(0, tasks);
    }
    return inner;
  }

  he::Ciphertext linear(const he::Evaluator& ev, const EvalKeys& keys, const LinearPlan& p,
                        const he::Ciphertext& x) const {
    std::vector<int> rot_steps;
    for (int s : p.baby_steps)
      if (s) rot_steps.push_back(s);
    std::vector<he::Ciphertext> rotated;
    if (!rot_steps.empty()) rotated = ev.rotate_hoisted(x, rot_steps, keys.galois);
    std::vector<const he::Ciphertext*> babies;
    std::size_t r = 0;
    for (int s : p.baby_steps) babies.push_back(s ? &rotated[r++] : &x);
    std::vector<he::Ciphertext> inner = multiply_accumulate(p, babies);
    // Each partial sum is rescaled first: its giant rotation then runs one
    // level lower (cheaper; its key-switch noise lands at the output scale).
    for (auto& c : inner) ev.rescale_inplace(c);
    he::Ciphertext total;
    for (std::size_t gi = 0; gi < p.giants.size(); ++gi) {
      he::Ciphertext c = p.giants[gi].step ? ev.rotate(inner[gi], p.giants[gi].step, keys.galois)
                                           : std::move(inner[gi]);
      if (gi == 0) {
        total = std::move(c);
      } else {
        ev.add_inplace(total, c);
      }
    }
    for (int s : p.sum_steps) ev.add_inplace(total, ev.rotate(total, s, keys.galois));
    if (p.bias.n()) total = ev.add_plain(total, p.bias);
    return total;
  }

  std::string make_description(const Chain& chain) const {
    std::ostringstream o;
    const auto& prm = plan_.params;
    o << "he program, mode latency: one sample per query, packed in the " << plan_.slots
      << " slots of 1 ciphertext\n";
    o << "parameters: " << prm.describe() << ", scale 2^" << plan_.scale_bits
      << ", 128-bit security (HE Standard)\n";
    o << "  why N = " << prm.n << ": " << plan_.why_n << "\n";
    o << "input: ";
    if (chain.layers.front().kind == LayerKind::kConv) {
      const Layer& c = chain.layers.front();
      const std::int64_t npos = c.out_shape[1] * c.out_shape[2];
      o << "im2col patches of " << c.node
        << " (LoLa): kernel offset k, output position p in slot k*" << pow2_at_least(npos)
        << " + p (" << c.in_shape[0] * c.kh * c.kw << " offsets x " << npos << " positions)";
    } else {
      o << "element e in slot e, repeated with period " << plan_.input_layout.period;
    }
    o << "; |input| <= " << format_short(plan_.input_bound)
      << (plan_.input_bound_assumed ? " (assumed: no bound declared)" : "") << "\n";
    o << "layers (level in -> out):\n";
    int hoisted = 0, full = 0;
    std::size_t plains = 0;
    for (const Step& st : plan_.steps) {
      o << "  " << kind_name(st.kind) << " '" << st.node << "': level " << st.level_in << " -> "
        << st.level_out << ", scale " << log2_str(st.scale_in) << " -> " << log2_str(st.scale_out);
      if (st.kind == LayerKind::kPoly) {
        o << "; x * (x + b): 1 product, relinearize, rescale; " << (st.poly.b.n() ? 1 : 0)
          << " plaintext";
        plains += st.poly.b.n() ? 1 : 0;
      } else {
        const LinearPlan& p = st.lin;
        std::size_t np = 0;
        for (const auto& g : p.giants) np += g.plains.size();
        const int nb = static_cast<int>(
            std::count_if(p.baby_steps.begin(), p.baby_steps.end(), [](int s) { return s != 0; }));
        const int ng = static_cast<int>(std::count_if(p.giants.begin(), p.giants.end(),
                                                      [](const auto& g) { return g.step != 0; }));
        const int ns = static_cast<int>(p.sum_steps.size());
        hoisted += nb;
        full += ng + ns;
        plains += np + (p.bias.n() ? 1 : 0);
        o << "; hybrid h = " << p.h << ", " << p.windows << " window(s), rotate-and-sum over "
          << p.T << "; " << p.diagonals << " diagonals = " << p.baby_steps.size() << " baby x "
          << p.giants.size() << " giant"
          << (p.scale_shift ? "; weights at q_l / 2^" + std::to_string(p.scale_shift)
                            : std::string())
          << "; rotations: " << nb << " hoisted baby {";
        bool first = true;
        for (int s : p.baby_steps)
          if (s) o << (first ? "" : ",") << s, first = false;
        o << "}, " << ng << " giant {";
        first = true;
        for (const auto& g : p.giants)
          if (g.step) o << (first ? "" : ",") << g.step, first = false;
        o << "}, " << ns << " sum {";
        first = true;
        for (int s : p.sum_steps) o << (first ? "" : ",") << s, first = false;
        o << "}; " << np << " weight plaintexts" << (p.bias.n() ? " + 1 bias" : "");
      }
      o << "; |out| <= " << format_short(st.bound_out) << ", error <= " << format_short(st.err_out)
        << "\n";
    }
    o << "total: " << hoisted << " hoisted + " << full << " full rotations, " << plains
      << " plaintexts (encoded once), " << (plan_.relin ? "relinearization key + " : "")
      << plan_.galois_steps.size() << " Galois keys: steps {";
    for (std::size_t i = 0; i < plan_.galois_steps.size(); ++i) {
      o << (i ? "," : "") << plan_.galois_steps[i];
    }
    o << "}\n";
    o << "output: " << spec_.out_slot.size() << " values in slots {";
    for (std::size_t i = 0; i < spec_.out_slot.size() && i < 16; ++i) {
      o << (i ? "," : "") << spec_.out_slot[i];
    }
    o << (spec_.out_slot.size() > 16 ? ",..." : "") << "} at level " << plan_.steps.back().level_out
      << "\n";
    o << "error budget: output error <= " << format_short(plan_.output_error) << " = 6 sigma ("
      << format_short(kSigmas * plan_.output_sigma) << ") + worst-case rounding ("
      << format_short(plan_.output_worst) << "), refused above "
      << format_short(output_error_limit(plan_.output_bound))
      << " (every sample whose two largest outputs differ by more than twice that keeps its arg "
         "max); output bound "
      << format_short(plan_.output_bound) << "\n";
    return o.str();
  }

  Plan plan_;
  ThreadPool* pool_;
  std::shared_ptr<const he::CkksContext> ctx_;
  ClientSpec spec_;
  double input_scale_ = 0;
  std::string describe_;
};

}  // namespace

std::unique_ptr<Program> build_latency(const Chain& chain, const ProgramOptions& options) {
  Plan plan = make_plan(chain, options);
  return std::make_unique<LatencyProgram>(std::move(plan), chain, options);
}

Support latency_support(const Chain& chain) {
  try {
    (void)make_plan(chain, ProgramOptions{});
    return Support::yes();
  } catch (const Refusal& r) {
    return Support::no(r.node(), r.reason());
  } catch (const Error& e) {
    return Support::no(chain.layers.empty() ? "(model)" : chain.layers.front().node, e.what());
  }
}

}  // namespace blindfold::backends::heplan
