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
#include "core/error.h"
#include "he/ckks.h"

namespace blindfold::backends::heplan {
namespace {

// Fixed choices of the mode.
constexpr int kScaleBits = 40;    // Delta = 2^40: noise ~2^-28 of a unit per operation
constexpr int kQ0Bits = 60;       // the output's modulus: 2^20 of room above Delta
constexpr int kSpecialBits = 60;  // one special prime as large as any digit
// Magnitudes: a value v at scale D needs |v| D < q/2; we ask for 2^kMarginBits
// more, on top of interval bounds that are already worst case.
constexpr int kMarginBits = 4;
// Noise constants, absolute errors in message units at scale 2^40 (the
// largest per-slot errors docs/BENCHMARKS.md reports at N = 16384, rounded
// up): a fresh encryption 2^-27 (public key; secret-key encryption is
// smaller), a rescale or a key switch on a ciphertext at scale 2^40 2^-25
// (8x the median 2^-28.2 measured after multiply/relinearize/rescale), a
// plaintext's encoding error relative to its values 2^-32 (6 sigma of
// sqrt(N/12) / 2^40).
constexpr double kFreshError = 0x1p-27;
constexpr double kRescaleError = 0x1p-25;
constexpr double kKeySwitchError = 0x1p-25;
constexpr double kEncodeRelError = 0x1p-32;
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
// The plan refuses when the expected output error exceeds this fraction of
// the output bound (the criterion is explained at the end of make_plan).
constexpr double kMaxRelativeError = 1e-3;
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

std::int64_t numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

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
  if (place.block) {
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
    const std::int64_t windows = place.block ? 1 : (rows + h - 1) / h;
    std::vector<std::int64_t> o(static_cast<std::size_t>(rows));
    for (std::int64_t m = 0; m < rows; ++m) {
      o[static_cast<std::size_t>(m)] = place.block
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

Matrix avgpool_matrix(const Layer& L) {
  const std::int64_t C = L.in_shape[0], H = L.in_shape[1], W = L.in_shape[2];
  const std::int64_t OH = L.out_shape[1], OW = L.out_shape[2];
  Matrix m;
  m.rows = C * OH * OW;
  m.place.block = true;
  m.place.B = pow2_at_least(OH * OW);
  m.place.positions = OH * OW;
  m.place.channels = C;
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

std::string fmt(double v, int prec = 3) {
  std::ostringstream o;
  o.precision(prec);
  o << v;
  return o.str();
}

std::string log2_str(double v) {
  if (v <= 0) return "0";
  return "2^" + fmt(std::log2(v), 3);
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
  std::string why_n;
};

Plan make_plan(const Chain& chain, const ProgramOptions& options) {
  if (chain.layers.empty()) throw Refusal("(model)", "the chain has no layers");
  for (const Layer& L : chain.layers) {
    if (L.kind == LayerKind::kConv && &L != &chain.layers.front()) {
      throw Refusal(L.node,
                    "a convolution after the first layer is not packed in latency mode (only the "
                    "first convolution gets the client's im2col layout); use batch mode");
    }
    if ((L.kind == LayerKind::kConv || L.kind == LayerKind::kAvgPool) &&
        (L.in_shape.size() != 3 || L.out_shape.size() != 3)) {
      throw Refusal(L.node, std::string(kind_name(L.kind)) + " expects [C, H, W] per sample");
    }
    if (L.kind == LayerKind::kConv && static_cast<std::int64_t>(L.weight.size()) !=
                                          L.out_shape[0] * L.in_shape[0] * L.kh * L.kw) {
      throw Refusal(L.node, "weight is not [oc, ic, kh, kw] (groups must be 1)");
    }
  }
  Plan plan;
  plan.depth = chain_depth(chain);
  plan.input_bound = options.input_bound > 0 ? options.input_bound : 1.0;
  plan.input_bound_assumed = !(options.input_bound > 0);
  plan.bounds = chain_bounds(chain, plan.input_bound);
  plan.params = choose_parameters(plan.depth, kScaleBits, kQ0Bits, kSpecialBits);
  plan.params.log2_scale = kScaleBits;
  plan.slots = static_cast<std::int64_t>(plan.params.n / 2);
  const std::int64_t slots = plan.slots;
  {
    const int total = kQ0Bits + plan.depth * kScaleBits + kSpecialBits;
    plan.why_n = "depth " + std::to_string(plan.depth) + ": log2(QP) = " + std::to_string(kQ0Bits) +
                 " + " + std::to_string(plan.depth) + " x " + std::to_string(kScaleBits) + " + " +
                 std::to_string(kSpecialBits) + " = " + std::to_string(total) +
                 " bits; the smallest N whose 128-bit bound (HE Standard) holds it is " +
                 std::to_string(plan.params.n) + " (bound " +
                 std::to_string(he::max_log_qp(plan.params.n, he::SecurityLevel::k128)) + ")";
    if (plan.params.n > 4096) {
      plan.why_n += "; N = " + std::to_string(plan.params.n / 2) + " allows " +
                    std::to_string(he::max_log_qp(plan.params.n / 2, he::SecurityLevel::k128));
    }
  }

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

  // Layers. Scales in log2; noise constants are for scale 2^40 and grow
  // by 2^(40 - log2 scale) at a smaller one.
  std::vector<double> log_q(plan.params.chain_bits.size());
  {
    double acc = 0;
    for (std::size_t i = 0; i < log_q.size(); ++i) {
      acc += plan.params.chain_bits[i];
      log_q[i] = acc;
    }
  }
  Layout cur = plan.input_layout;
  int level = static_cast<int>(plan.params.chain_bits.size()) - 1;
  double log_scale = kScaleBits;
  auto noise = [&](double c, double ls) { return c * std::exp2(kScaleBits - ls); };
  double err = kFreshError;
  double bound = plan.input_bound;
  std::set<int> galois;
  for (std::size_t li = 0; li < chain.layers.size(); ++li) {
    const Layer& L = chain.layers[li];
    Step st;
    st.kind = L.kind;
    st.node = L.node;
    st.level_in = level;
    st.bound_in = bound;
    if (level < 1) throw Refusal(L.node, "no level left (internal: depth mismatch)");
    const double out_bound = plan.bounds[li];
    // Magnitudes: a value v at level l and scale D needs |v| D < Q_l / 2,
    // with 2^kMarginBits to spare; garbage slots (partial sums across two
    // windows, or their squares) are counted at twice the bound.
    const double need = std::log2(2 * std::max(out_bound, 1e-300)) + 1 + kMarginBits;
    const double room = log_q[static_cast<std::size_t>(level - 1)];
    if (L.kind == LayerKind::kPoly) {
      const std::int64_t n = numel(L.in_shape);
      if (static_cast<std::int64_t>(cur.pos.size()) != n) {
        throw Refusal(L.node, "input size does not match the previous layer's output");
      }
      const std::int64_t ch = L.in_shape.empty() ? 1 : L.in_shape[0];
      const std::int64_t per = std::max<std::int64_t>(n / std::max<std::int64_t>(ch, 1), 1);
      if (!(L.b.size() == 1 || static_cast<std::int64_t>(L.b.size()) == ch)) {
        throw Refusal(L.node, "b has " + std::to_string(L.b.size()) + " entries for " +
                                  std::to_string(ch) + " channels");
      }
      if (max_abs(L.b) != 0) {
        st.poly.b_slots.assign(static_cast<std::size_t>(slots), 0.0);
        for (std::int64_t e = 0; e < n; ++e) {
          const double b = L.b.size() == 1 ? L.b[0] : L.b[static_cast<std::size_t>(e / per)];
          for (std::int64_t s = cur.pos[static_cast<std::size_t>(e)]; s < slots; s += cur.period) {
            st.poly.b_slots[static_cast<std::size_t>(s)] = b;
          }
        }
      }
      plan.relin = true;
      log_scale = 2 * log_scale - plan.params.chain_bits[static_cast<std::size_t>(level)];
      if (need + log_scale > room) {
        throw Refusal(L.node, "values up to " + fmt(out_bound) +
                                  " (interval bound for |input| <= " + fmt(plan.input_bound) +
                                  ") at scale 2^" + fmt(log_scale) + " do not fit level " +
                                  std::to_string(level - 1) + " (" + fmt(room) + " bits) with " +
                                  std::to_string(kMarginBits) + " bits of margin");
      }
      // (x + e)(x + e + b) - x (x + b) = e (2x + b) + e^2; then the product's
      // rescale (relinearization noise is divided by q_l with it).
      st.gain = 2 * bound + max_abs(L.b);
      err = err * st.gain + err * err + noise(kRescaleError, log_scale);
    } else {
      Matrix m;
      if (L.kind == LayerKind::kConv) {
        m = conv_im2col_matrix(L);
      } else if (L.kind == LayerKind::kDense) {
        m = dense_matrix(L);
      } else {
        m = avgpool_matrix(L);
      }
      if (L.kind != LayerKind::kConv &&
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
                                    fmt(bytes / (1 << 30)) + " GiB of plaintexts");
        }
      }
      // Where the output would not fit at the input's scale (the last
      // layer, at q_0: interval bounds are loose), the weights are encoded
      // at q_l / 2^shift and the output scale drops by 2^shift.
      st.lin.scale_shift = std::max(0, static_cast<int>(std::ceil(need + log_scale - room)));
      const double ls_out = log_scale - st.lin.scale_shift;
      if (ls_out < 20) {
        throw Refusal(L.node, "values up to " + fmt(out_bound) +
                                  " (interval bound for |input| <= " + fmt(plan.input_bound) +
                                  ") leave a scale of 2^" + fmt(ls_out) + " at level " +
                                  std::to_string(level - 1) + " (" + fmt(room) + " bits)");
      }
      for (int s : st.lin.baby_steps)
        if (s) galois.insert(s);
      for (const auto& g : st.lin.giants)
        if (g.step) galois.insert(g.step);
      for (int s : st.lin.sum_steps) galois.insert(s);
      // Baby rotations add a key switch to x before the weights; the
      // weights' encoding error is relative to each product; the rescale
      // rounds every slot, and each rotate-and-add doubles what is there
      // and adds a key switch.
      const double T = static_cast<double>(st.lin.T);
      err =
          m.gain * (err + (st.lin.baby_steps.size() > 1 ? noise(kKeySwitchError, log_scale) : 0)) +
          m.gain * bound * noise(kEncodeRelError, ls_out + kScaleBits - log_scale) +
          T * noise(kRescaleError, ls_out) + (T - 1) * noise(kKeySwitchError, ls_out);
      log_scale = ls_out;
      cur = st.lin.out;
    }
    bound = out_bound;
    st.bound_out = bound;
    st.err_out = err;
    --level;
    st.level_out = level;
    plan.steps.push_back(std::move(st));
  }
  plan.galois_steps.assign(galois.begin(), galois.end());
  plan.output_error = err;
  plan.output_bound = plan.bounds.back();

  // Error budget. An arg max can only flip where the top two outputs are
  // closer than twice the error. Both numbers are worst cases: the error is
  // noise maxima times L1 gains (fmnist-he: 0.29 estimated, 1.2e-4
  // measured), the output bound an interval bound (7.9e5 against logits of
  // about 10-40). The criterion error <= 1e-3 x bound therefore refuses
  // what cannot work (outputs at the noise level: a refused parameter set
  // would need a larger scale than 2^40 allows at this depth) rather than
  // predicting flips; the measured agreement is in latency_test.cc and
  // `blindfold eval`.
  if (!(plan.output_error <= kMaxRelativeError * plan.output_bound)) {
    throw Refusal(chain.layers.back().node,
                  "expected output error " + fmt(plan.output_error) + " exceeds " +
                      fmt(kMaxRelativeError) + " of the output bound " + fmt(plan.output_bound) +
                      " at N = " + std::to_string(plan.params.n) + ": the arg max could flip");
  }
  return plan;
}

class LatencyProgram final : public Program {
 public:
  LatencyProgram(Plan plan, const Chain& chain, const ProgramOptions& options)
      : plan_(std::move(plan)), pool_(options.pool) {
    ctx_ = he::CkksContext::create(plan_.params);
    he::CkksEncoder enc(ctx_);
    double scale = std::exp2(kScaleBits);
    spec_.mode = Mode::kLatency;
    spec_.params = plan_.params;
    spec_.log2_input_scale = kScaleBits;
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
                                                fmt(std::log2(x.scale()), 6) + ", expected 2^" +
                                                std::to_string(kScaleBits));
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
    o << "parameters: " << prm.describe() << ", scale 2^" << kScaleBits
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
    o << "; |input| <= " << fmt(plan_.input_bound)
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
      o << "; |out| <= " << fmt(st.bound_out) << ", error <= " << fmt(st.err_out) << "\n";
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
    o << (spec_.out_slot.size() > 16 ? ",..." : "") << "} at level 0\n";
    o << "error budget: fresh encryption " << log2_str(kFreshError) << ", rescale and key switch "
      << log2_str(kRescaleError)
      << " per slot, propagated with the layers' L1 gains: output error <= "
      << fmt(plan_.output_error) << " against an output bound " << fmt(plan_.output_bound)
      << " (ratio " << fmt(plan_.output_error / plan_.output_bound) << ", refused above "
      << fmt(kMaxRelativeError) << ")\n";
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
