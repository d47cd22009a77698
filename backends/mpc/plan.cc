#include "backends/mpc/plan.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <string>
#include <type_traits>

#include "backends/lowering.h"
#include "core/error.h"
#include "model/op.h"
#include "model/window.h"

namespace blindfold::backends::mpcplan {

using model::Graph;
using model::Node;
using model::OpType;
using mpc::Shared;
using mpc::u64;

namespace {

using lowering::numel;
using lowering::per_sample;
using lowering::unsupported;

// Limits on a plan received from a peer (hostile input): far above any model
// this project ships, far below what could exhaust memory by itself.
constexpr std::int64_t kMaxDim = 1 << 16;
constexpr std::int64_t kMaxElements = std::int64_t{1} << 26;  // per sample, per value
constexpr int kMaxSlots = 1 << 14;
constexpr int kMaxSteps = 1 << 14;

// Broadcast index map: for each element of a per-sample tensor of shape `x`
// (the batch dimension excluded), the index into a constant of shape `w`,
// broadcast ONNX-style against [1, x...].
std::vector<std::uint32_t> broadcast_index(const Shape& x, const Shape& w) {
  Shape full{1};
  full.insert(full.end(), x.begin(), x.end());
  if (w.size() > full.size())
    throw_error(ErrorCategory::kBadMessage, "constant of higher rank than its operand");
  Shape wf(full.size() - w.size(), 1);
  wf.insert(wf.end(), w.begin(), w.end());
  for (std::size_t d = 0; d < full.size(); ++d) {
    if (wf[d] != 1 && wf[d] != full[d]) {
      throw_error(ErrorCategory::kBadMessage, "constant shape " + shape_to_string(w) +
                                                  " does not broadcast to " +
                                                  shape_to_string(full));
    }
  }
  const std::int64_t n = numel(full);
  std::vector<std::uint32_t> idx(static_cast<std::size_t>(n));
  std::vector<std::int64_t> wstride(full.size(), 0);
  std::int64_t s = 1;
  for (std::size_t d = full.size(); d-- > 0;) {
    wstride[d] = wf[d] == 1 ? 0 : s;
    s *= wf[d];
  }
  std::vector<std::int64_t> pos(full.size(), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t off = 0;
    for (std::size_t d = 0; d < full.size(); ++d) off += pos[d] * wstride[d];
    idx[static_cast<std::size_t>(i)] = static_cast<std::uint32_t>(off);
    for (std::size_t d = full.size(); d-- > 0;) {
      if (++pos[d] < full[d]) break;
      pos[d] = 0;
    }
  }
  return idx;
}

struct Lowering {
  const Graph& g;
  int frac_bits;
  Plan plan;
  std::vector<Tensor>* weights;
  std::map<int, int> slot;           // value id -> slot
  std::map<int, bool> pending_relu;  // value id whose Relu was deferred into a MaxPool
  std::vector<int> consumers;        // per value id

  int new_slot() { return plan.slots++; }

  bool is_shared(int v) const { return v >= 0 && slot.count(v) != 0; }
  bool is_const(int v) const { return v >= 0 && g.value(v).is_constant(); }

  int shared_in(const Node& n, std::size_t i) {
    if (i >= n.inputs.size() || !is_shared(n.inputs[i])) {
      unsupported(
          n, "input " + std::to_string(i) + " must be a value computed from the client's input");
    }
    const int v = n.inputs[i];
    if (pending_relu.count(v) && n.op != OpType::kMaxPool) {
      unsupported(n, "internal: deferred Relu consumed by a node other than MaxPool");
    }
    return slot.at(v);
  }

  const Tensor& constant(const Node& n, std::size_t i) {
    if (i >= n.inputs.size() || !is_const(n.inputs[i])) {
      unsupported(n, "input " + std::to_string(i) + " must be a constant (a weight)");
    }
    const Tensor& t = *g.value(n.inputs[i]).constant;
    if (t.dtype() != DType::kFloat32) unsupported(n, "weights must be float32");
    return t;
  }

  int add_weight(const Node& n, Tensor t, int scale_bits) {
    plan.weights.push_back({n.name, t.numel(), scale_bits});
    if (weights) weights->push_back(std::move(t));
    return static_cast<int>(plan.weights.size()) - 1;
  }

  void output_to(const Node& n, int out_slot) { slot[n.outputs.at(0)] = out_slot; }

  // The node's window attributes as the plaintext engine reads them
  // (model/window.h), with the sizes of the [C, H, W] input and output.
  Geometry window(const Node& n, const Shape& in, const Shape& out, std::int64_t kh,
                  std::int64_t kw, model::WindowOp op) {
    Geometry ge;
    if (in.size() != 3 || out.size() != 3)
      unsupported(n, "only 2-D windows over [C, H, W] are supported");
    ge.c = in[0];
    ge.h = in[1];
    ge.w = in[2];
    ge.oc = out[0];
    ge.oh = out[1];
    ge.ow = out[2];
    ge.kh = kh;
    ge.kw = kw;
    (void)lowering::set_window(ge, n, ge.h, ge.w, kh, kw, op);
    return ge;
  }

  void lower_node(const Node& n) {
    switch (n.op) {
      case OpType::kIdentity:
      case OpType::kFlatten:
      case OpType::kReshape:
      case OpType::kSqueeze:
      case OpType::kUnsqueeze: {
        // Row-major data is unchanged; only the shape changes. The batch
        // must stay the leading dimension.
        const int s = shared_in(n, 0);
        per_sample(g.value(n.outputs.at(0)), n);
        output_to(n, s);
        return;
      }
      case OpType::kConv: {
        const int in = shared_in(n, 0);
        const Tensor& w = constant(n, 1);
        if (n.attrs.get_int("group", 1) != 1) unsupported(n, "grouped convolution");
        const Shape xs = per_sample(g.value(n.inputs[0]), n);
        const Shape ys = per_sample(g.value(n.outputs.at(0)), n);
        if (w.rank() != 4) unsupported(n, "only 2-D convolution is supported");
        Step st;
        st.kind = StepKind::kConv;
        st.node = n.name;
        st.in0 = in;
        st.g = window(n, xs, ys, w.dim(2), w.dim(3), model::WindowOp::kConv);
        if (w.dim(0) != st.g.oc || w.dim(1) != st.g.c)
          unsupported(n, "weight shape does not match the input");
        st.weight = add_weight(n, w, frac_bits);
        if (n.inputs.size() > 2 && n.inputs[2] >= 0)
          st.bias = add_weight(n, constant(n, 2), 2 * frac_bits);
        st.out = new_slot();
        plan.steps.push_back(st);
        output_to(n, st.out);
        return;
      }
      case OpType::kGemm:
      case OpType::kMatMul: {
        const int in = shared_in(n, 0);
        const Tensor& b = constant(n, 1);
        const Shape xs = per_sample(g.value(n.inputs[0]), n);
        if (xs.size() != 1 || b.rank() != 2)
          unsupported(n, "only [N, K] x [K, M] products are supported");
        bool trans_b = false;
        float alpha = 1.0f, beta = 1.0f;
        if (n.op == OpType::kGemm) {
          if (n.attrs.get_int("transA", 0) != 0) unsupported(n, "transA");
          trans_b = n.attrs.get_int("transB", 0) != 0;
          alpha = n.attrs.get_float("alpha", 1.0f);
          beta = n.attrs.get_float("beta", 1.0f);
        }
        const std::int64_t k = xs[0];
        const std::int64_t m = trans_b ? b.dim(0) : b.dim(1);
        if ((trans_b ? b.dim(1) : b.dim(0)) != k)
          unsupported(n, "weight shape does not match the input");
        Tensor w(DType::kFloat32, {m, k});
        auto src = b.f32();
        auto dst = w.f32();
        for (std::int64_t i = 0; i < m; ++i) {
          for (std::int64_t j = 0; j < k; ++j) {
            dst[static_cast<std::size_t>(i * k + j)] =
                alpha * src[static_cast<std::size_t>(trans_b ? i * k + j : j * m + i)];
          }
        }
        Step st;
        st.kind = StepKind::kDense;
        st.node = n.name;
        st.in0 = in;
        st.k = k;
        st.m = m;
        st.weight = add_weight(n, std::move(w), frac_bits);
        if (n.op == OpType::kGemm && n.inputs.size() > 2 && n.inputs[2] >= 0) {
          const Tensor& c = constant(n, 2);
          if (c.numel() != m && c.numel() != 1)
            unsupported(n, "bias must have one value per output");
          Tensor bias(DType::kFloat32, {m});
          for (std::int64_t i = 0; i < m; ++i) {
            bias.f32()[static_cast<std::size_t>(i)] =
                beta * c.f32()[static_cast<std::size_t>(c.numel() == 1 ? 0 : i)];
          }
          st.bias = add_weight(n, std::move(bias), 2 * frac_bits);
        }
        st.out = new_slot();
        plan.steps.push_back(st);
        output_to(n, st.out);
        return;
      }
      case OpType::kRelu: {
        const int in = shared_in(n, 0);
        const int out_v = n.outputs.at(0);
        // Relu then MaxPool equals MaxPool then Relu (max is monotone), and
        // costs a quarter of the comparisons for 2x2 pooling.
        bool defer = consumers[static_cast<std::size_t>(out_v)] == 1 &&
                     std::find(g.outputs.begin(), g.outputs.end(), out_v) == g.outputs.end();
        if (defer) {
          defer = false;
          for (const Node& c : g.nodes) {
            if (std::find(c.inputs.begin(), c.inputs.end(), out_v) != c.inputs.end()) {
              defer = c.op == OpType::kMaxPool;
            }
          }
        }
        if (defer) {
          slot[out_v] = in;
          pending_relu[out_v] = true;
          return;
        }
        Step st;
        st.kind = StepKind::kRelu;
        st.node = n.name;
        st.in0 = in;
        st.out = new_slot();
        plan.steps.push_back(st);
        output_to(n, st.out);
        return;
      }
      case OpType::kMaxPool:
      case OpType::kAveragePool:
      case OpType::kGlobalAveragePool: {
        const int in = shared_in(n, 0);
        if (n.outputs.size() > 1 && n.outputs[1] >= 0) unsupported(n, "MaxPool Indices output");
        const Shape xs = per_sample(g.value(n.inputs[0]), n);
        const Shape ys = per_sample(g.value(n.outputs.at(0)), n);
        Step st;
        st.node = n.name;
        st.in0 = in;
        if (n.op == OpType::kGlobalAveragePool) {
          if (xs.size() != 3) unsupported(n, "only 2-D pooling over [C, H, W]");
          st.kind = StepKind::kAvgPool;
          st.g.c = st.g.oc = xs[0];
          st.g.h = st.g.kh = xs[1];
          st.g.w = st.g.kw = xs[2];
          st.g.oh = st.g.ow = 1;
        } else {
          const std::vector<std::int64_t> ks = n.attrs.get_ints("kernel_shape", {});
          if (ks.size() != 2) unsupported(n, "only 2-D pooling");
          st.kind = n.op == OpType::kMaxPool ? StepKind::kMaxPool : StepKind::kAvgPool;
          st.g = window(
              n, xs, ys, ks[0], ks[1],
              n.op == OpType::kMaxPool ? model::WindowOp::kMaxPool : model::WindowOp::kAveragePool);
          st.g.count_include_pad = n.attrs.get_int("count_include_pad", 0) != 0;
        }
        if (st.g.oc != st.g.c) unsupported(n, "pooling changes the channel count");
        if (pending_relu.count(n.inputs[0])) {
          st.relu_after = true;
          pending_relu.erase(n.inputs[0]);
        }
        st.out = new_slot();
        plan.steps.push_back(st);
        output_to(n, st.out);
        return;
      }
      case OpType::kAdd:
      case OpType::kSub:
      case OpType::kMul:
      case OpType::kDiv: {
        const int a = n.inputs.at(0), b = n.inputs.at(1);
        Step st;
        st.node = n.name;
        if (is_shared(a) && is_shared(b)) {
          const Shape as = per_sample(g.value(a), n), bs = per_sample(g.value(b), n);
          if (as != bs)
            unsupported(n, "operands of different shapes " + shape_to_string(as) + " and " +
                               shape_to_string(bs));
          if (n.op == OpType::kDiv) unsupported(n, "division by a secret value");
          st.kind = n.op == OpType::kAdd   ? StepKind::kAdd
                    : n.op == OpType::kSub ? StepKind::kSub
                                           : StepKind::kMul;
          st.in0 = shared_in(n, 0);
          st.in1 = shared_in(n, 1);
        } else if (is_shared(a) || is_shared(b)) {
          const bool shared_first = is_shared(a);
          const int sv = shared_first ? a : b;
          const std::size_t ci = shared_first ? 1 : 0;
          Tensor c = constant(n, ci);
          const Shape xs = per_sample(g.value(sv), n);
          const Shape ys = per_sample(g.value(n.outputs.at(0)), n);
          if (xs != ys) unsupported(n, "the constant would broadcast the shared operand");
          st.in0 = shared_in(n, shared_first ? 0 : 1);
          st.in_shape = xs;
          st.w_shape = c.shape();
          try {
            broadcast_index(xs, c.shape());
          } catch (const Error&) {
            unsupported(n, "constant shape does not broadcast");
          }
          auto v = c.f32();
          if (n.op == OpType::kSub && !shared_first)
            unsupported(n, "constant minus a secret value");
          if (n.op == OpType::kDiv && !shared_first) unsupported(n, "division by a secret value");
          if (n.op == OpType::kSub)
            for (float& x : v) x = -x;
          if (n.op == OpType::kDiv)
            for (float& x : v) x = 1.0f / x;
          if (n.op == OpType::kAdd || n.op == OpType::kSub) {
            st.kind = StepKind::kAddWeights;
            st.weight = add_weight(n, std::move(c), frac_bits);
          } else {
            st.kind = StepKind::kMulWeights;
            st.weight = add_weight(n, std::move(c), frac_bits);
          }
        } else {
          unsupported(n, "no operand depends on the input (should have been folded)");
        }
        st.out = new_slot();
        plan.steps.push_back(st);
        output_to(n, st.out);
        return;
      }
      case OpType::kBatchNormalization: {
        // y = x * scale + shift per channel (BN after a Conv is folded at import).
        const int in = shared_in(n, 0);
        const Shape xs = per_sample(g.value(n.inputs[0]), n);
        const Tensor &gamma = constant(n, 1), &beta = constant(n, 2), &mean = constant(n, 3),
                     &var = constant(n, 4);
        const float eps = n.attrs.get_float("epsilon", 1e-5f);
        const std::int64_t c = gamma.numel();
        if (xs.empty() || xs[0] != c) unsupported(n, "channel count mismatch");
        Shape ws{c};
        for (std::size_t d = 1; d < xs.size(); ++d) ws.push_back(1);
        Tensor scale(DType::kFloat32, ws), shift(DType::kFloat32, ws);
        for (std::int64_t i = 0; i < c; ++i) {
          const std::size_t u = static_cast<std::size_t>(i);
          const float s = gamma.f32()[u] / std::sqrt(var.f32()[u] + eps);
          scale.f32()[u] = s;
          shift.f32()[u] = beta.f32()[u] - mean.f32()[u] * s;
        }
        Step mul;
        mul.kind = StepKind::kMulWeights;
        mul.node = n.name;
        mul.in0 = in;
        mul.in_shape = xs;
        mul.w_shape = ws;
        mul.weight = add_weight(n, std::move(scale), frac_bits);
        mul.out = new_slot();
        plan.steps.push_back(mul);
        Step add = mul;
        add.kind = StepKind::kAddWeights;
        add.in0 = mul.out;
        add.weight = add_weight(n, std::move(shift), frac_bits);
        add.out = new_slot();
        plan.steps.push_back(add);
        output_to(n, add.out);
        return;
      }
      case OpType::kSigmoid:
      case OpType::kSoftmax: {
        const int out_v = n.outputs.at(0);
        if (g.outputs.size() != 1 || g.outputs[0] != out_v) {
          unsupported(
              n,
              "no MPC protocol for " + std::string(model::op_name(n.op)) +
                  " inside the network (supported only as the final op, which the client applies)");
        }
        output_to(n, shared_in(n, 0));
        plan.finish = n.op == OpType::kSigmoid ? Finish::kSigmoid : Finish::kSoftmax;
        if (n.op == OpType::kSoftmax) plan.softmax_axis = n.attrs.get_int("axis", -1);
        return;
      }
      default:
        unsupported(n,
                    "no MPC protocol for " + std::string(model::op_name(n.op)) +
                        " (supported: Conv, Gemm, MatMul, Relu, MaxPool, AveragePool, "
                        "GlobalAveragePool, Add, Sub, Mul, Div by a constant, BatchNormalization, "
                        "Flatten/Reshape, and Sigmoid/Softmax as the final op)");
    }
  }
};

void check_range(bool ok, const std::string& what) {
  if (!ok) throw_error(ErrorCategory::kBadMessage, "MPC plan: " + what);
}

// A field of a plan from a peer, its name in the error when it is missing or
// of the wrong type.
template <class T>
T field(const nlohmann::json& j, const char* name, const std::string& where = "") {
  try {
    return j.at(name).get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw_error(ErrorCategory::kBadMessage,
                "MPC plan: " + where + "field '" + name + "': " + e.what());
  }
}

// An integer field of a plan from a peer: a JSON integer (not 1e10, not
// 12.9) that fits T, else Error(kBadMessage) naming the field. nlohmann's
// get<int>() would convert a float out of int's range (undefined behaviour)
// and wrap a large integer silently before the range checks ran.
template <class T>
T integer(const nlohmann::json& v, const std::string& name) {
  static_assert(std::is_integral_v<T> && std::is_signed_v<T>);
  bool ok = v.is_number_integer();
  std::int64_t x = 0;
  if (ok && v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    ok = u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    x = static_cast<std::int64_t>(u);
  } else if (ok) {
    x = v.get<std::int64_t>();
  }
  ok = ok && x >= std::numeric_limits<T>::min() && x <= std::numeric_limits<T>::max();
  if (!ok)
    throw_error(ErrorCategory::kBadMessage,
                "MPC plan: field '" + name + "' is not an integer in range");
  return static_cast<T>(x);
}

int int_at(const nlohmann::json& j, const char* name) {
  return integer<int>(j.at(name), name);
}
std::int64_t i64_at(const nlohmann::json& j, const char* name) {
  return integer<std::int64_t>(j.at(name), name);
}

std::vector<std::int64_t> i64s_at(const nlohmann::json& j, const char* name) {
  const nlohmann::json& a = j.at(name);
  if (!a.is_array() || a.size() > 64) {
    throw_error(ErrorCategory::kBadMessage, std::string("MPC plan: field '") + name +
                                                "' is not an array of at most 64 integers");
  }
  std::vector<std::int64_t> out;
  out.reserve(a.size());
  for (const auto& v : a) out.push_back(integer<std::int64_t>(v, name));
  return out;
}

void check_input_bound(double b) {
  if (!std::isfinite(b) || b < 0) {
    throw_error(ErrorCategory::kBadInput,
                "the input bound must be a finite number >= 0 (0: none), is " + std::to_string(b));
  }
}

// A double as printed in messages and describe() (9 significant digits).
std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

// ---- comparison widths --------------------------------------------------------

int comparison_bits(double bound, int frac_bits) {
  if (!std::isfinite(bound) || bound < 0) return 64;
  const double x = std::ldexp(bound, frac_bits) + 1024.0;
  if (!(x < std::ldexp(1.0, 62))) return 64;
  // ceil(log2(x)), exactly: x = m * 2^e with m in [0.5, 1).
  int e = 0;
  const double m = std::frexp(x, &e);
  const int ceil_log2 = m == 0.5 ? e - 1 : e;
  return std::clamp(ceil_log2 + 2, 2, 64);
}

int onehot_count_bits(std::int64_t k) {
  if (k <= 1) return 2;
  return std::max(2, static_cast<int>(std::bit_width(static_cast<std::uint64_t>(k - 1))) + 1);
}

std::vector<double> slot_bounds(const Plan& plan, const std::vector<Tensor>& weights,
                                double input_bound) {
  if (weights.size() != plan.weights.size()) {
    throw_error(ErrorCategory::kInternal, "slot_bounds: " + std::to_string(weights.size()) +
                                              " weight tensors for a plan of " +
                                              std::to_string(plan.weights.size()));
  }
  const double u = std::ldexp(1.0, -plan.frac_bits);  // one unit in the last place
  auto w = [&](int h) {
    const Tensor& t = weights.at(static_cast<std::size_t>(h));
    if (t.numel() != plan.weights.at(static_cast<std::size_t>(h)).size) {
      throw_error(ErrorCategory::kInternal,
                  "slot_bounds: weight " + std::to_string(h) + " has the wrong size");
    }
    return t.f32();
  };
  auto max_abs = [](std::span<const float> v) {
    double m = 0;
    for (float f : v) m = std::max(m, std::fabs(static_cast<double>(f)));
    return m;
  };
  // max over rows of sum_j (|w_ij| + u/2) * x + |b_i| (+ the bias's own rounding).
  auto rows = [&](const Step& s, std::int64_t m, std::int64_t k, double x) {
    const auto wv = w(s.weight);
    std::span<const float> bv;
    if (s.bias >= 0) bv = w(s.bias);
    double worst = 0;
    for (std::int64_t i = 0; i < m; ++i) {
      double l1 = 0;
      for (std::int64_t j = 0; j < k; ++j)
        l1 += std::fabs(static_cast<double>(wv[static_cast<std::size_t>(i * k + j)]));
      double r = (l1 + static_cast<double>(k) * u / 2) * x;
      if (s.bias >= 0)
        r += std::fabs(static_cast<double>(bv[static_cast<std::size_t>(i)])) + u * u / 2;
      worst = std::max(worst, r);
    }
    return worst;
  };
  std::vector<double> b(static_cast<std::size_t>(plan.slots), 0.0);
  b.at(static_cast<std::size_t>(plan.input_slot)) =
      input_bound + u / 2;  // encoding rounds to nearest
  for (const Step& s : plan.steps) {
    const double x = b.at(static_cast<std::size_t>(s.in0));
    double y = x;
    const Geometry& g = s.g;
    switch (s.kind) {
      case StepKind::kConv: y = rows(s, g.oc, g.c * g.kh * g.kw, x) + u; break;  // + truncation
      case StepKind::kDense: y = rows(s, s.m, s.k, x) + u; break;
      case StepKind::kRelu:
      case StepKind::kMaxPool: y = x; break;
      case StepKind::kAvgPool:
        // sum of at most kh*kw values times round(2^f / count), truncated.
        y = x * (1 + static_cast<double>(g.kh * g.kw) * u / 2) + u;
        break;
      case StepKind::kAdd:
      case StepKind::kSub: y = x + b.at(static_cast<std::size_t>(s.in1)); break;
      case StepKind::kMul: y = x * b.at(static_cast<std::size_t>(s.in1)) + u; break;
      case StepKind::kMulWeights: y = (max_abs(w(s.weight)) + u / 2) * x + u; break;
      case StepKind::kAddWeights: y = x + max_abs(w(s.weight)) + u / 2; break;
    }
    b.at(static_cast<std::size_t>(s.out)) = y;
  }
  return b;
}

void size_comparisons(Plan& plan, const std::vector<Tensor>& weights, double input_bound) {
  check_input_bound(input_bound);
  plan.input_bound = input_bound;
  plan.argmax_bits = 64;
  for (Step& s : plan.steps) s.cmp_bits = 64;
  if (input_bound == 0) return;
  const std::vector<double> b = slot_bounds(plan, weights, input_bound);
  const int f = plan.frac_bits;
  for (Step& s : plan.steps) {
    const double x = b.at(static_cast<std::size_t>(s.in0));
    if (s.kind == StepKind::kRelu) s.cmp_bits = comparison_bits(x, f);
    // Differences of two window elements (the window maximum, for
    // relu_after, is bounded by x alone).
    if (s.kind == StepKind::kMaxPool) s.cmp_bits = comparison_bits(2 * x, f);
  }
  const std::int64_t k = plan.output_shape.empty() ? 1 : plan.output_shape.back();
  const double out = b.at(static_cast<std::size_t>(plan.output_slot));
  plan.argmax_bits = comparison_bits(k == 1 ? out : 2 * out, f);
}

double declared_input_bound(const Graph& graph) {
  const auto it = graph.metadata.find(kInputBoundKey);
  if (it == graph.metadata.end()) return 0;
  const std::string& v = it->second;
  double d = 0;
  const auto [end, ec] =
      std::from_chars(v.data(), v.data() + v.size(), d, std::chars_format::general);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || !std::isfinite(d) || d <= 0) {
    throw_error(ErrorCategory::kBadModel, std::string("model metadata '") + kInputBoundKey +
                                              "' is '" +
                                              (v.size() > 64 ? v.substr(0, 64) + "..." : v) +
                                              "': expected a positive finite decimal number");
  }
  return d;
}

void check_input(const Plan& plan, std::span<const float> x) {
  if (plan.input_bound <= 0) return;
  const std::int64_t per = std::max<std::int64_t>(1, numel(plan.input_shape));
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    if (std::isfinite(v) && std::fabs(v) <= plan.input_bound) continue;
    const std::int64_t at = static_cast<std::int64_t>(i);
    throw_error(
        ErrorCategory::kBadInput,
        "input value " + num(v) + " at index " + std::to_string(at) + " (sample " +
            std::to_string(at / per) + ", element " + std::to_string(at % per) +
            ") is outside |x| <= " + num(plan.input_bound) +
            ": the server sized its comparisons for inputs within that bound (the model's " +
            kInputBoundKey +
            " metadata or the server's --input-bound), so this input is not shared");
  }
}

Plan lower(const Graph& graph, int frac_bits, std::vector<Tensor>* weights, double input_bound) {
  if (graph.inputs.size() != 1 || graph.outputs.size() != 1) {
    throw_error(ErrorCategory::kUnsupported,
                "the MPC backends need a model with one input and one output");
  }
  check_input_bound(input_bound);
  // The bound analysis needs the float weights even when the caller does not.
  std::vector<Tensor> local;
  Lowering l{graph, frac_bits, {}, weights || input_bound > 0 ? &local : nullptr, {}, {}, {}};
  l.plan.frac_bits = frac_bits;
  l.consumers.assign(graph.values.size(), 0);
  for (const Node& n : graph.nodes) {
    for (int v : n.inputs) {
      if (v >= 0) ++l.consumers[static_cast<std::size_t>(v)];
    }
  }
  const int in_v = graph.inputs[0];
  if (graph.value(in_v).dtype != DType::kFloat32) {
    throw_error(ErrorCategory::kUnsupported, "the MPC backends need a float32 input");
  }
  Node pseudo;
  pseudo.name = graph.value(in_v).name;
  l.plan.input_shape = per_sample(graph.value(in_v), pseudo);
  l.plan.input_slot = l.new_slot();
  l.slot[in_v] = l.plan.input_slot;
  for (const Node& n : graph.nodes) {
    if (n.op == OpType::kConstant) continue;
    bool any_shared = false;
    for (int v : n.inputs) any_shared = any_shared || l.is_shared(v);
    if (!any_shared) continue;  // constant subgraph (folded at import)
    l.lower_node(n);
  }
  const int out_v = graph.outputs[0];
  if (!l.is_shared(out_v))
    throw_error(ErrorCategory::kUnsupported, "the model output does not depend on its input");
  Node out_node;
  out_node.name = graph.value(out_v).name;
  l.plan.output_slot = l.slot.at(out_v);
  l.plan.output_shape = per_sample(graph.value(out_v), out_node);
  if (input_bound > 0) size_comparisons(l.plan, local, input_bound);
  if (weights) {
    for (Tensor& t : local) weights->push_back(std::move(t));
  }
  return l.plan;
}

Support lowerable(const Graph& graph) {
  try {
    lower(graph, 12, nullptr, 0);
    return Support::yes();
  } catch (const Error& e) {
    std::string msg = e.what();
    std::string node;
    const auto p = msg.find("node '");
    if (p != std::string::npos) {
      const auto q = msg.find('\'', p + 6);
      if (q != std::string::npos) node = msg.substr(p + 6, q - p - 6);
    }
    return Support::no(node, msg);
  }
}

// ---- serialization ---------------------------------------------------------

namespace {

const char* kind_name(StepKind k) {
  switch (k) {
    case StepKind::kConv: return "conv";
    case StepKind::kDense: return "dense";
    case StepKind::kRelu: return "relu";
    case StepKind::kMaxPool: return "maxpool";
    case StepKind::kAvgPool: return "avgpool";
    case StepKind::kMul: return "mul";
    case StepKind::kAdd: return "add";
    case StepKind::kSub: return "sub";
    case StepKind::kMulWeights: return "mul_weights";
    case StepKind::kAddWeights: return "add_weights";
  }
  return "?";
}

StepKind kind_of(const std::string& s) {
  for (int i = 0; i <= static_cast<int>(StepKind::kAddWeights); ++i) {
    if (s == kind_name(static_cast<StepKind>(i))) return static_cast<StepKind>(i);
  }
  throw_error(ErrorCategory::kBadMessage, "MPC plan: unknown step kind '" + s + "'");
}

}  // namespace

std::string Plan::serialize() const {
  nlohmann::json j;
  j["version"] = 2;
  j["frac_bits"] = frac_bits;
  j["slots"] = slots;
  j["input_slot"] = input_slot;
  j["input_shape"] = input_shape;
  j["output_slot"] = output_slot;
  j["output_shape"] = output_shape;
  j["finish"] = finish == Finish::kNone      ? "none"
                : finish == Finish::kSigmoid ? "sigmoid"
                                             : "softmax";
  j["softmax_axis"] = softmax_axis;
  j["input_bound"] = input_bound;
  j["argmax_bits"] = argmax_bits;
  j["weights"] = nlohmann::json::array();
  for (const WeightSpec& w : weights)
    j["weights"].push_back({{"node", w.node}, {"size", w.size}, {"scale_bits", w.scale_bits}});
  j["steps"] = nlohmann::json::array();
  for (const Step& s : steps) {
    const Geometry& ge = s.g;
    j["steps"].push_back(
        {{"kind", kind_name(s.kind)},
         {"node", s.node},
         {"in0", s.in0},
         {"in1", s.in1},
         {"out", s.out},
         {"weight", s.weight},
         {"bias", s.bias},
         {"k", s.k},
         {"m", s.m},
         {"relu_after", s.relu_after},
         {"in_shape", s.in_shape},
         {"w_shape", s.w_shape},
         {"cmp_bits", s.cmp_bits},
         {"g",
          {ge.c, ge.h, ge.w, ge.oc, ge.oh, ge.ow, ge.kh, ge.kw, ge.sh, ge.sw, ge.dh, ge.dw, ge.pt,
           ge.pl, ge.pb, ge.pr, ge.count_include_pad ? 1 : 0}}});
  }
  return j.dump();
}

Plan Plan::parse(const std::string& text) {
  Plan p;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    check_range(int_at(j, "version") == 2, "unknown version");
    p.frac_bits = int_at(j, "frac_bits");
    check_range(p.frac_bits >= 1 && p.frac_bits <= 30, "frac_bits out of range");
    p.slots = int_at(j, "slots");
    check_range(p.slots >= 1 && p.slots <= kMaxSlots, "slot count out of range");
    auto slot_ok = [&](int s) { return s >= 0 && s < p.slots; };
    auto shape_ok = [](const Shape& s, std::size_t max_rank = 6) {
      if (s.size() > max_rank) return false;
      std::int64_t n = 1;
      for (std::int64_t d : s) {
        if (d < 1 || d > kMaxDim) return false;
        n *= d;
        if (n > kMaxElements) return false;
      }
      return true;
    };
    p.input_slot = int_at(j, "input_slot");
    p.output_slot = int_at(j, "output_slot");
    check_range(slot_ok(p.input_slot) && slot_ok(p.output_slot), "input/output slot out of range");
    p.input_shape = i64s_at(j, "input_shape");
    p.output_shape = i64s_at(j, "output_shape");
    check_range(shape_ok(p.input_shape) && shape_ok(p.output_shape),
                "input/output shape out of range");
    const std::string fin = j.at("finish").get<std::string>();
    check_range(fin == "none" || fin == "sigmoid" || fin == "softmax",
                "unknown finish '" + fin + "'");
    p.finish = fin == "none"      ? Finish::kNone
               : fin == "sigmoid" ? Finish::kSigmoid
                                  : Finish::kSoftmax;
    p.softmax_axis = i64_at(j, "softmax_axis");
    check_range(p.softmax_axis >= -7 && p.softmax_axis <= 7, "softmax axis out of range");
    p.input_bound = field<double>(j, "input_bound");
    check_range(std::isfinite(p.input_bound) && p.input_bound >= 0,
                "input_bound must be finite and >= 0");
    const std::int64_t argmax_bits = i64_at(j, "argmax_bits");
    check_range(argmax_bits >= 2 && argmax_bits <= 64,
                "argmax_bits " + std::to_string(argmax_bits) + " out of range (2..64)");
    p.argmax_bits = static_cast<int>(argmax_bits);
    for (const auto& w : j.at("weights")) {
      WeightSpec s{w.at("node").get<std::string>(), i64_at(w, "size"), int_at(w, "scale_bits")};
      check_range(s.size >= 1 && s.size <= kMaxElements, "weight size out of range");
      check_range(s.scale_bits >= 1 && s.scale_bits <= 60, "weight scale out of range");
      p.weights.push_back(std::move(s));
    }
    check_range(p.weights.size() <= static_cast<std::size_t>(kMaxSteps), "too many weights");
    std::vector<std::int64_t> slot_size(static_cast<std::size_t>(p.slots), -1);
    slot_size[static_cast<std::size_t>(p.input_slot)] = numel(p.input_shape);
    auto weight_ok = [&](int h, std::int64_t size) {
      return h >= 0 && h < static_cast<int>(p.weights.size()) &&
             p.weights[static_cast<std::size_t>(h)].size == size;
    };
    for (const auto& js : j.at("steps")) {
      check_range(p.steps.size() < static_cast<std::size_t>(kMaxSteps), "too many steps");
      Step s;
      s.kind = kind_of(js.at("kind").get<std::string>());
      s.node = js.at("node").get<std::string>();
      check_range(s.node.size() <= 256, "node name too long");
      s.in0 = int_at(js, "in0");
      s.in1 = int_at(js, "in1");
      s.out = int_at(js, "out");
      s.weight = int_at(js, "weight");
      s.bias = int_at(js, "bias");
      s.k = i64_at(js, "k");
      s.m = i64_at(js, "m");
      s.relu_after = js.at("relu_after").get<bool>();
      s.in_shape = i64s_at(js, "in_shape");
      s.w_shape = i64s_at(js, "w_shape");
      const auto gv = i64s_at(js, "g");
      check_range(gv.size() == 17, "step geometry has " + std::to_string(gv.size()) + " fields");
      for (std::int64_t v : gv) check_range(v >= 0 && v <= kMaxDim, "step geometry out of range");
      Geometry& ge = s.g;
      ge = {gv[0], gv[1],  gv[2],  gv[3],  gv[4],  gv[5],  gv[6],  gv[7],      gv[8],
            gv[9], gv[10], gv[11], gv[12], gv[13], gv[14], gv[15], gv[16] != 0};
      const std::string where = "step " + std::to_string(p.steps.size()) + " (" + s.node + "): ";
      const std::int64_t cmp_bits =
          integer<std::int64_t>(field<nlohmann::json>(js, "cmp_bits", where), where + "cmp_bits");
      check_range(cmp_bits >= 2 && cmp_bits <= 64,
                  where + "cmp_bits " + std::to_string(cmp_bits) + " out of range (2..64)");
      s.cmp_bits = static_cast<int>(cmp_bits);
      check_range(slot_ok(s.in0) && slot_ok(s.out), where + "slot out of range");
      const std::int64_t in_n = slot_size[static_cast<std::size_t>(s.in0)];
      check_range(in_n > 0, where + "reads a slot not yet written");
      std::int64_t out_n = in_n;
      switch (s.kind) {
        case StepKind::kConv:
        case StepKind::kMaxPool:
        case StepKind::kAvgPool: {
          check_range(ge.c >= 1 && ge.h >= 1 && ge.w >= 1 && ge.oc >= 1 && ge.oh >= 1 &&
                          ge.ow >= 1 && ge.kh >= 1 && ge.kw >= 1 && ge.sh >= 1 && ge.sw >= 1 &&
                          ge.dh >= 1 && ge.dw >= 1,
                      where + "geometry must be positive");
          check_range(in_n == ge.c * ge.h * ge.w, where + "input size does not match the geometry");
          check_range(ge.c * ge.kh * ge.kw <= kMaxElements && ge.oc * ge.oh * ge.ow <= kMaxElements,
                      where + "geometry too large");
          out_n = ge.oc * ge.oh * ge.ow;
          if (s.kind == StepKind::kConv) {
            check_range(weight_ok(s.weight, ge.oc * ge.c * ge.kh * ge.kw),
                        where + "weight handle/size");
            check_range(s.bias < 0 || weight_ok(s.bias, ge.oc), where + "bias handle/size");
          } else {
            check_range(ge.oc == ge.c, where + "pooling changes the channel count");
          }
          break;
        }
        case StepKind::kDense:
          check_range(s.k >= 1 && s.m >= 1 && s.k <= kMaxElements && s.m <= kMaxElements &&
                          s.k * s.m <= kMaxElements,
                      where + "dense size out of range");
          check_range(in_n == s.k, where + "input size does not match K");
          check_range(weight_ok(s.weight, s.k * s.m), where + "weight handle/size");
          check_range(s.bias < 0 || weight_ok(s.bias, s.m), where + "bias handle/size");
          out_n = s.m;
          break;
        case StepKind::kRelu: break;
        case StepKind::kMul:
        case StepKind::kAdd:
        case StepKind::kSub:
          check_range(slot_ok(s.in1) && slot_size[static_cast<std::size_t>(s.in1)] == in_n,
                      where + "second operand slot/size");
          break;
        case StepKind::kMulWeights:
        case StepKind::kAddWeights: {
          check_range(shape_ok(s.in_shape) && numel(s.in_shape) == in_n, where + "input shape");
          // A constant broadcasts against [1, in_shape...]: one rank more.
          check_range(shape_ok(s.w_shape, 7), where + "weight shape out of range");
          check_range(weight_ok(s.weight, numel(s.w_shape)), where + "weight handle/size");
          try {
            broadcast_index(s.in_shape, s.w_shape);
          } catch (const Error& e) {
            check_range(false, where + e.what());
          }
          break;
        }
      }
      slot_size[static_cast<std::size_t>(s.out)] = out_n;
      p.steps.push_back(std::move(s));
    }
    check_range(slot_size[static_cast<std::size_t>(p.output_slot)] == numel(p.output_shape),
                "output slot size does not match the output shape");
    // Narrow comparisons are correct only for inputs the client checks
    // against a bound: without one, every width is 64.
    if (p.input_bound == 0) {
      check_range(p.argmax_bits == 64, "argmax_bits below 64 without an input_bound");
      for (const Step& s : p.steps)
        check_range(s.cmp_bits == 64,
                    "cmp_bits below 64 without an input_bound (step " + s.node + ")");
    }
  } catch (const nlohmann::json::exception& e) {
    throw_error(ErrorCategory::kBadMessage, std::string("MPC plan: malformed JSON: ") + e.what());
  }
  return p;
}

std::string Plan::describe() const {
  std::ostringstream o;
  o << "fixed point: Z_2^64, " << frac_bits << " fractional bits; input "
    << shape_to_string(input_shape) << ", output " << shape_to_string(output_shape) << "\n";
  if (input_bound > 0) {
    o << "comparisons sized for |input| <= " << num(input_bound)
      << " (the client refuses larger inputs)\n";
  } else {
    o << "no input bound: every comparison at 64 bits\n";
  }
  for (const Step& s : steps) {
    o << "  " << kind_name(s.kind) << "  " << s.node;
    const Geometry& g = s.g;
    switch (s.kind) {
      case StepKind::kConv:
        o << "  [" << g.c << "," << g.h << "," << g.w << "] -> [" << g.oc << "," << g.oh << ","
          << g.ow << "], " << g.kh << "x" << g.kw << " kernel: secret-weight matmul " << g.oc << "x"
          << g.c * g.kh * g.kw << " by im2col, truncate";
        break;
      case StepKind::kDense:
        o << "  " << s.k << " -> " << s.m << ": secret-weight matmul, truncate";
        break;
      case StepKind::kMaxPool:
        o << "  " << g.kh << "x" << g.kw << " windows: " << (g.kh * g.kw - 1)
          << " comparisons each, tree of depth "
          << static_cast<int>(std::ceil(std::log2(static_cast<double>(g.kh * g.kw))))
          << (s.relu_after ? ", then ReLU (reordered from before the pool)" : "") << "; "
          << s.cmp_bits << "-bit comparisons";
        break;
      case StepKind::kAvgPool:
        o << "  " << g.kh << "x" << g.kw << ": local sum, public scale, truncate";
        break;
      case StepKind::kRelu: o << "  one comparison per element, " << s.cmp_bits << " bits"; break;
      case StepKind::kMul: o << "  secret x secret, truncate"; break;
      case StepKind::kMulWeights: o << "  by a secret constant, truncate"; break;
      default: break;
    }
    o << "\n";
  }
  if (finish != Finish::kNone)
    o << "  the client applies " << (finish == Finish::kSigmoid ? "Sigmoid" : "Softmax")
      << " to the revealed values\n";
  const std::int64_t k = output_shape.empty() ? 1 : output_shape.back();
  o << "  label output (arg max over " << k << "): " << (k == 1 ? "sign" : "pairwise")
    << " comparisons at " << argmax_bits << " bits";
  if (k > 1) o << ", then the one-hot count at " << onehot_count_bits(k) << " bits";
  o << "\n";
  return o.str();
}

// ---- execution ---------------------------------------------------------------

namespace {

// Local helpers on shares (linear, so the same for every protocol).
void mul_public_vec(Shared& x, std::span<const u64> c) {
  for (auto* v : {&x.s0, &x.s1}) {
    if (!v->empty()) mpc::ring_mul(*v, c, *v);
  }
}

Shared slice(const Shared& x, std::size_t off, std::size_t n) {
  Shared out;
  out.n = n;
  if (!x.s0.empty())
    out.s0.assign(x.s0.begin() + static_cast<std::ptrdiff_t>(off),
                  x.s0.begin() + static_cast<std::ptrdiff_t>(off + n));
  if (!x.s1.empty())
    out.s1.assign(x.s1.begin() + static_cast<std::ptrdiff_t>(off),
                  x.s1.begin() + static_cast<std::ptrdiff_t>(off + n));
  return out;
}

// x with one extra element holding the public value v.
Shared append_public(mpc::Protocol& p, const Shared& x, u64 v) {
  Shared one;
  one.n = 1;
  if (!x.s0.empty()) one.s0.assign(1, 0);
  if (!x.s1.empty()) one.s1.assign(1, 0);
  const u64 c[1] = {v};
  p.add_public(one, c);
  return mpc::concat({&x, &one});
}

std::vector<std::uint32_t> repeat_index(const std::vector<std::uint32_t>& per_sample,
                                        std::int64_t batch) {
  std::vector<std::uint32_t> idx;
  idx.reserve(per_sample.size() * static_cast<std::size_t>(batch));
  for (std::int64_t b = 0; b < batch; ++b)
    idx.insert(idx.end(), per_sample.begin(), per_sample.end());
  return idx;
}

// Index of input element (b, c, iy, ix) of a window, or `pad` outside.
std::vector<std::uint32_t> window_index(const Geometry& g, std::int64_t batch, std::int64_t ki,
                                        std::int64_t kj, std::uint32_t pad) {
  std::vector<std::uint32_t> idx(static_cast<std::size_t>(batch * g.c * g.oh * g.ow));
  std::size_t o = 0;
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t c = 0; c < g.c; ++c) {
      for (std::int64_t oy = 0; oy < g.oh; ++oy) {
        const std::int64_t iy = oy * g.sh - g.pt + ki * g.dh;
        for (std::int64_t ox = 0; ox < g.ow; ++ox) {
          const std::int64_t ix = ox * g.sw - g.pl + kj * g.dw;
          idx[o++] = (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w)
                         ? pad
                         : static_cast<std::uint32_t>(((b * g.c + c) * g.h + iy) * g.w + ix);
        }
      }
    }
  }
  return idx;
}

Shared run_conv(mpc::Protocol& p, const Step& s, const std::vector<int>& h, const Shared& x,
                std::int64_t batch) {
  const Geometry& g = s.g;
  const std::uint32_t zero = static_cast<std::uint32_t>(x.n);
  const Shared xz = append_public(p, x, 0);
  const std::int64_t k = g.c * g.kh * g.kw, ohw = g.oh * g.ow, n = batch * ohw;
  // im2col: rows (c, ki, kj), columns (b, oy, ox).
  std::vector<std::uint32_t> idx(static_cast<std::size_t>(k * n));
  std::size_t o = 0;
  for (std::int64_t c = 0; c < g.c; ++c) {
    for (std::int64_t ki = 0; ki < g.kh; ++ki) {
      for (std::int64_t kj = 0; kj < g.kw; ++kj) {
        for (std::int64_t b = 0; b < batch; ++b) {
          for (std::int64_t oy = 0; oy < g.oh; ++oy) {
            const std::int64_t iy = oy * g.sh - g.pt + ki * g.dh;
            for (std::int64_t ox = 0; ox < g.ow; ++ox) {
              const std::int64_t ix = ox * g.sw - g.pl + kj * g.dw;
              idx[o++] = (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w)
                             ? zero
                             : static_cast<std::uint32_t>(((b * g.c + c) * g.h + iy) * g.w + ix);
            }
          }
        }
      }
    }
  }
  const Shared cols = mpc::gather(xz, idx);
  Shared y = p.matmul(h[static_cast<std::size_t>(s.weight)], cols, static_cast<std::size_t>(g.oc),
                      static_cast<std::size_t>(k), static_cast<std::size_t>(n));
  // [oc][b][s] -> [b][oc][s]
  if (batch > 1) {
    std::vector<std::uint32_t> t(static_cast<std::size_t>(g.oc * n));
    o = 0;
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t oc = 0; oc < g.oc; ++oc)
        for (std::int64_t q = 0; q < ohw; ++q)
          t[o++] = static_cast<std::uint32_t>(oc * n + b * ohw + q);
    y = mpc::gather(y, t);
  }
  if (s.bias >= 0) {
    std::vector<std::uint32_t> bi(static_cast<std::size_t>(g.oc * n));
    o = 0;
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t oc = 0; oc < g.oc; ++oc)
        for (std::int64_t q = 0; q < ohw; ++q) bi[o++] = static_cast<std::uint32_t>(oc);
    y = p.add_weights(h[static_cast<std::size_t>(s.bias)], y, bi);
  }
  p.trunc(y, p.frac_bits());
  return y;
}

Shared run_dense(mpc::Protocol& p, const Step& s, const std::vector<int>& h, const Shared& x,
                 std::int64_t batch) {
  const std::size_t k = static_cast<std::size_t>(s.k), m = static_cast<std::size_t>(s.m),
                    b = static_cast<std::size_t>(batch);
  Shared xt = x;
  if (batch > 1) {  // [b][k] -> [k][b]
    std::vector<std::uint32_t> t(k * b);
    for (std::size_t i = 0; i < k; ++i)
      for (std::size_t j = 0; j < b; ++j) t[i * b + j] = static_cast<std::uint32_t>(j * k + i);
    xt = mpc::gather(x, t);
  }
  Shared y = p.matmul(h[static_cast<std::size_t>(s.weight)], xt, m, k, b);
  if (batch > 1) {  // [m][b] -> [b][m]
    std::vector<std::uint32_t> t(m * b);
    for (std::size_t j = 0; j < b; ++j)
      for (std::size_t i = 0; i < m; ++i) t[j * m + i] = static_cast<std::uint32_t>(i * b + j);
    y = mpc::gather(y, t);
  }
  if (s.bias >= 0) {
    std::vector<std::uint32_t> bi(m * b);
    for (std::size_t j = 0; j < b; ++j)
      for (std::size_t i = 0; i < m; ++i) bi[j * m + i] = static_cast<std::uint32_t>(i);
    y = p.add_weights(h[static_cast<std::size_t>(s.bias)], y, bi);
  }
  p.trunc(y, p.frac_bits());
  return y;
}

Shared relu_of(mpc::Protocol& p, const Shared& x, int bits) {
  Shared r;
  p.relu(x, nullptr, &r, bits);
  return r;
}

Shared run_maxpool(mpc::Protocol& p, const Step& s, const Shared& x, std::int64_t batch) {
  const Geometry& g = s.g;
  // Padding must never win: a public value far below any activation, and
  // within the comparison width. cmp_bits covers differences of two elements
  // bounded by M, so 2^(bits-2) >= 2M + 2^10: a pad of -2^(bits-2) is below
  // every element and its differences with one lie in (-2^(bits-1), 2^(bits-1)).
  // At 64 bits (no bound): -2^62.
  const int pad_log2 = s.cmp_bits >= 64 ? 62 : std::max(0, s.cmp_bits - 2);
  const u64 very_negative = static_cast<u64>(-(std::int64_t{1} << pad_log2));
  const bool padded = g.pt || g.pl || g.pb || g.pr ||
                      (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1 > g.h ||
                      (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1 > g.w;
  const Shared xp = padded ? append_public(p, x, very_negative) : x;
  std::vector<Shared> vals;
  for (std::int64_t ki = 0; ki < g.kh; ++ki)
    for (std::int64_t kj = 0; kj < g.kw; ++kj)
      vals.push_back(
          mpc::gather(xp, window_index(g, batch, ki, kj, static_cast<std::uint32_t>(x.n))));
  // Tournament: max(a, b) = b + ReLU(a - b), all pairs of a level in one call.
  while (vals.size() > 1) {
    const std::size_t pairs = vals.size() / 2, each = vals[0].n;
    std::vector<Shared> diffs;
    diffs.reserve(pairs);
    for (std::size_t i = 0; i < pairs; ++i) diffs.push_back(mpc::sub(vals[2 * i], vals[2 * i + 1]));
    std::vector<const Shared*> ptrs;
    for (const Shared& d : diffs) ptrs.push_back(&d);
    const Shared r = relu_of(p, mpc::concat(ptrs), s.cmp_bits);
    std::vector<Shared> next;
    for (std::size_t i = 0; i < pairs; ++i)
      next.push_back(mpc::add(vals[2 * i + 1], slice(r, i * each, each)));
    if (vals.size() % 2) next.push_back(std::move(vals.back()));
    vals = std::move(next);
  }
  return s.relu_after ? relu_of(p, vals[0], s.cmp_bits) : vals[0];
}

Shared run_avgpool(mpc::Protocol& p, const Step& s, const Shared& x, std::int64_t batch) {
  const Geometry& g = s.g;
  const Shared xz = append_public(p, x, 0);
  Shared sum;
  std::vector<std::int64_t> count(static_cast<std::size_t>(batch * g.c * g.oh * g.ow), 0);
  for (std::int64_t ki = 0; ki < g.kh; ++ki) {
    for (std::int64_t kj = 0; kj < g.kw; ++kj) {
      const auto idx = window_index(g, batch, ki, kj, static_cast<std::uint32_t>(x.n));
      for (std::size_t i = 0; i < idx.size(); ++i) count[i] += idx[i] != x.n;
      Shared v = mpc::gather(xz, idx);
      sum = (ki == 0 && kj == 0) ? std::move(v) : mpc::add(sum, v);
    }
  }
  std::vector<u64> scale(count.size());
  for (std::size_t i = 0; i < count.size(); ++i) {
    const double div = g.count_include_pad
                           ? static_cast<double>(g.kh * g.kw)
                           : static_cast<double>(std::max<std::int64_t>(1, count[i]));
    scale[i] = mpc::fxp_encode1(1.0 / div, p.frac_bits());
  }
  mul_public_vec(sum, scale);
  p.trunc(sum, p.frac_bits());
  return sum;
}

// One-hot of the arg max over the last axis (rows x k), revealing nothing
// but the one-hot vector: all pairwise comparisons in one round, then
// count_i = #{j : l_i wins against l_j} (ties go to the lower index, as
// numpy's argmax), and o_i = [count_i >= k-1] in a second round. `bits`:
// the width of the logit comparisons (Plan::argmax_bits); the count is an
// exact small integer, compared at onehot_count_bits(k).
Shared argmax_onehot(mpc::Protocol& p, const Shared& logits, std::size_t rows, std::size_t k,
                     int bits) {
  if (k == 1) {  // a single score (binary classifier): [score >= 0]
    Shared d;
    p.relu(logits, &d, nullptr, bits);
    return d;
  }
  const std::size_t pairs = k * (k - 1) / 2;
  std::vector<std::uint32_t> ia(rows * pairs), ib(rows * pairs), ga(rows * pairs), gb(rows * pairs);
  std::size_t o = 0;
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t i = 0; i < k; ++i)
      for (std::size_t j = i + 1; j < k; ++j, ++o) {
        ia[o] = static_cast<std::uint32_t>(r * k + i);
        ib[o] = static_cast<std::uint32_t>(r * k + j);
        ga[o] = static_cast<std::uint32_t>(r * k + i);  // d_ij counts for i
        gb[o] = static_cast<std::uint32_t>(r * k + j);  // 1 - d_ij counts for j
      }
  const Shared diff = mpc::sub(mpc::gather(logits, ia), mpc::gather(logits, ib));
  Shared d;
  p.relu(diff, &d, nullptr, bits);  // [l_i >= l_j] for i < j
  Shared not_d = mpc::neg(d);
  p.add_public(not_d, std::vector<u64>(not_d.n, 1));
  std::vector<std::uint32_t> groups = ga;
  groups.insert(groups.end(), gb.begin(), gb.end());
  Shared count = mpc::sum_groups(mpc::concat({&d, &not_d}), groups, rows * k);
  p.add_public(count,
               std::vector<u64>(count.n, static_cast<u64>(-static_cast<std::int64_t>(k - 1))));
  // count - (k-1) lies in [-(k-1), 0] whatever the input.
  Shared onehot;
  p.relu(count, &onehot, nullptr, onehot_count_bits(static_cast<std::int64_t>(k)));
  return onehot;
}

}  // namespace

std::vector<int> register_weights(mpc::Protocol& p, const Plan& plan,
                                  const std::vector<Tensor>* weights) {
  std::vector<int> handles;
  for (std::size_t i = 0; i < plan.weights.size(); ++i) {
    const WeightSpec& w = plan.weights[i];
    const std::size_t n = static_cast<std::size_t>(w.size);
    if (weights) {
      const Tensor& t = weights->at(i);
      if (t.numel() != w.size)
        throw_error(ErrorCategory::kInternal, "weight " + w.node + ": size mismatch");
      std::vector<u64> enc(n);
      mpc::fxp_encode(t.f32(), w.scale_bits, enc);
      handles.push_back(p.register_weights(enc, n));
    } else {
      handles.push_back(p.register_weights({}, n));
    }
  }
  return handles;
}

std::optional<Tensor> run(mpc::Protocol& p, const Plan& plan, const std::vector<int>& h,
                          std::int64_t batch, const Tensor* input, Output output) {
  if (batch < 1 || batch > (1 << 16))
    throw_error(ErrorCategory::kBadInput, "batch size out of range");
  const int f = p.frac_bits();
  if (f != plan.frac_bits)
    throw_error(ErrorCategory::kInternal, "plan and protocol disagree on frac_bits");
  const std::int64_t in_n = numel(plan.input_shape) * batch;
  if (in_n > (std::int64_t{1} << 31)) throw_error(ErrorCategory::kBadInput, "input too large");
  std::vector<Shared> slots(static_cast<std::size_t>(plan.slots));
  if (input) {
    if (input->numel() != in_n || input->dtype() != DType::kFloat32) {
      throw_error(ErrorCategory::kBadInput, "input has " + std::to_string(input->numel()) +
                                                " values, the model takes " + std::to_string(in_n) +
                                                " for batch " + std::to_string(batch));
    }
    check_input(plan, input->f32());  // before anything is shared
    std::vector<u64> enc(static_cast<std::size_t>(in_n));
    mpc::fxp_encode(input->f32(), f, enc);
    slots[static_cast<std::size_t>(plan.input_slot)] = p.input(enc, enc.size());
  } else {
    slots[static_cast<std::size_t>(plan.input_slot)] = p.input({}, static_cast<std::size_t>(in_n));
  }
  for (const Step& s : plan.steps) {
    const Shared& x = slots[static_cast<std::size_t>(s.in0)];
    Shared y;
    switch (s.kind) {
      case StepKind::kConv: y = run_conv(p, s, h, x, batch); break;
      case StepKind::kDense: y = run_dense(p, s, h, x, batch); break;
      case StepKind::kRelu: y = relu_of(p, x, s.cmp_bits); break;
      case StepKind::kMaxPool: y = run_maxpool(p, s, x, batch); break;
      case StepKind::kAvgPool: y = run_avgpool(p, s, x, batch); break;
      case StepKind::kAdd: y = mpc::add(x, slots[static_cast<std::size_t>(s.in1)]); break;
      case StepKind::kSub: y = mpc::sub(x, slots[static_cast<std::size_t>(s.in1)]); break;
      case StepKind::kMul:
        y = p.mul(x, slots[static_cast<std::size_t>(s.in1)]);
        p.trunc(y, f);
        break;
      case StepKind::kMulWeights:
      case StepKind::kAddWeights: {
        const auto idx = repeat_index(broadcast_index(s.in_shape, s.w_shape), batch);
        if (s.kind == StepKind::kMulWeights) {
          y = p.mul_weights(h[static_cast<std::size_t>(s.weight)], x, idx);
          p.trunc(y, f);
        } else {
          y = p.add_weights(h[static_cast<std::size_t>(s.weight)], x, idx);
        }
        break;
      }
    }
    slots[static_cast<std::size_t>(s.out)] = std::move(y);
  }
  const Shared& out = slots[static_cast<std::size_t>(plan.output_slot)];
  const std::int64_t per = numel(plan.output_shape);
  Shape shape{batch};
  shape.insert(shape.end(), plan.output_shape.begin(), plan.output_shape.end());
  if (output == Output::kLabel) {
    const std::size_t k =
        plan.output_shape.empty() ? 1 : static_cast<std::size_t>(plan.output_shape.back());
    const std::size_t rows = static_cast<std::size_t>(batch * per) / k;
    const Shared onehot = argmax_onehot(p, out, rows, k, plan.argmax_bits);
    const std::vector<u64> v = p.reveal_to_client(onehot);
    if (v.empty()) return std::nullopt;
    Tensor t(DType::kFloat32, shape);
    for (std::size_t i = 0; i < v.size(); ++i) t.f32()[i] = v[i] == 1 ? 1.0f : 0.0f;
    return t;
  }
  const std::vector<u64> v = p.reveal_to_client(out);
  if (v.empty()) return std::nullopt;
  Tensor t(DType::kFloat32, shape);
  mpc::fxp_decode(v, f, t.f32());
  if (plan.finish == Finish::kSigmoid) {
    for (float& x : t.f32()) x = 1.0f / (1.0f + std::exp(-x));
  } else if (plan.finish == Finish::kSoftmax) {
    const std::int64_t rank = static_cast<std::int64_t>(shape.size());
    const std::int64_t axis = plan.softmax_axis < 0 ? plan.softmax_axis + rank : plan.softmax_axis;
    if (axis != rank - 1)
      throw_error(ErrorCategory::kUnsupported, "Softmax over an axis other than the last");
    const std::int64_t k = shape.back();
    auto d = t.f32();
    for (std::int64_t r = 0; r < t.numel() / k; ++r) {
      float* row = d.data() + r * k;
      const float mx = *std::max_element(row, row + k);
      float sum = 0;
      for (std::int64_t i = 0; i < k; ++i) sum += row[i] = std::exp(row[i] - mx);
      for (std::int64_t i = 0; i < k; ++i) row[i] /= sum;
    }
  }
  return t;
}

}  // namespace blindfold::backends::mpcplan
