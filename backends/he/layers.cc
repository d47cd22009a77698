// The he backend's front end (layers.h): a Graph lowered to a chain of
// linear layers and x * (x + b) activations, with every constant folded
// where it costs no level.
//
// How the folding works: every value computed from the input is held
// symbolically as a polynomial of degree <= 2, per element, in the "base":
// the output of the last layer emitted (or the input):
//     value[e] = q2[e] * base[e]^2 + q1[e] * base[e] + q0[e].
// Add/Sub/Mul/Div by constants, BatchNormalization and products of two such
// values only change the coefficients. A linear layer consumes an affine
// value (q2 = 0) by folding q1 into its weights column-wise and q0 into its
// bias; a degree-2 value is first materialised as one Poly layer
// y = base * (base + q1/q2), leaving the affine q2 * y + q0 for the next
// linear layer to absorb. Whatever affine map is left at the output folds
// back into the last linear layer's rows.
#include "backends/he/layers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>
#include <string>

#include "backends/lowering.h"
#include "core/error.h"
#include "he/security.h"
#include "model/op.h"
#include "model/window.h"

namespace blindfold::backends::heplan {

using model::Graph;
using model::Node;
using model::OpType;

namespace {

using lowering::numel;
using lowering::per_sample;
using lowering::unsupported;

constexpr const char* kPolyHint =
    "CKKS evaluates polynomials only: use a model with polynomial activations (e.g. "
    "models/fmnist-he.onnx)";

std::size_t sz(std::int64_t v) {
  return static_cast<std::size_t>(v);
}

bool close(double a, double b) {
  return std::fabs(a - b) <= 1e-9 * std::max({std::fabs(a), std::fabs(b), 1e-300});
}

// Whether v (per element of `shape`) is constant over each channel (axis 0).
bool per_channel(const std::vector<double>& v, const Shape& shape) {
  if (shape.empty()) return true;
  const std::int64_t c = shape[0], per = c == 0 ? 0 : numel(shape) / c;
  for (std::int64_t ch = 0; ch < c; ++ch) {
    for (std::int64_t i = 1; i < per; ++i) {
      if (!close(v[sz(ch * per + i)], v[sz(ch * per)])) return false;
    }
  }
  return true;
}

// A constant broadcast (ONNX rules) against [1, x...] per element of x.
// Returns false when it does not broadcast into x's shape.
bool broadcast(const Tensor& t, const Shape& x, std::vector<double>* out) {
  Shape full{1};
  full.insert(full.end(), x.begin(), x.end());
  const Shape& w = t.shape();
  if (w.size() > full.size()) return false;
  Shape wf(full.size() - w.size(), 1);
  wf.insert(wf.end(), w.begin(), w.end());
  for (std::size_t d = 0; d < full.size(); ++d) {
    if (wf[d] != 1 && wf[d] != full[d]) return false;
  }
  std::vector<std::int64_t> wstride(full.size(), 0);
  std::int64_t s = 1;
  for (std::size_t d = full.size(); d-- > 0;) {
    wstride[d] = wf[d] == 1 ? 0 : s;
    s *= wf[d];
  }
  const std::vector<float> src = t.to_float_vector();
  const std::int64_t n = numel(full);
  out->assign(sz(n), 0.0);
  std::vector<std::int64_t> pos(full.size(), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t off = 0;
    for (std::size_t d = 0; d < full.size(); ++d) off += pos[d] * wstride[d];
    (*out)[sz(i)] = src[sz(off)];
    for (std::size_t d = full.size(); d-- > 0;) {
      if (++pos[d] < full[d]) break;
      pos[d] = 0;
    }
  }
  return true;
}

// A value computed from the input: q2 base^2 + q1 base + q0 per element.
struct Sym {
  int base = 0;  // which materialised value (0: the input, k: layer k-1's output)
  int deg = 1;
  Shape shape;  // per sample, as the graph has it here
  std::vector<double> q0, q1, q2;
  std::string node;  // the node that made it quadratic
};

Sym identity(int base, const Shape& shape) {
  Sym s;
  s.base = base;
  s.shape = shape;
  s.q1.assign(sz(numel(shape)), 1.0);
  s.q0.assign(s.q1.size(), 0.0);
  return s;
}

bool is_identity(const Sym& s) {
  if (s.deg != 1) return false;
  for (std::size_t i = 0; i < s.q1.size(); ++i) {
    if (s.q1[i] != 1.0 || s.q0[i] != 0.0) return false;
  }
  return true;
}

struct Lowering {
  const Graph& g;
  Chain chain;
  std::map<int, Sym> sym;
  int base = 0;      // the current materialised value
  Shape base_shape;  // its shape

  bool is_shared(int v) const { return v >= 0 && sym.count(v) != 0; }
  bool is_const(int v) const { return v >= 0 && g.value(v).is_constant(); }

  Sym shared(const Node& n, std::size_t i) {
    if (i >= n.inputs.size() || !is_shared(n.inputs[i])) {
      unsupported(n, "input " + std::to_string(i) + " must be computed from the model's input");
    }
    const Sym& s = sym.at(n.inputs[i]);
    if (s.base != base) {
      unsupported(
          n, "value '" + g.value(n.inputs[i]).name +
                 "' is used after a later layer: the he backend evaluates a chain (no branches or "
                 "residual connections)");
    }
    return s;
  }

  const Tensor& constant(const Node& n, std::size_t i) {
    if (i >= n.inputs.size() || !is_const(n.inputs[i])) {
      unsupported(n, "input " + std::to_string(i) + " must be a constant (a weight)");
    }
    const Tensor& t = *g.value(n.inputs[i]).constant;
    if (t.dtype() != DType::kFloat32) unsupported(n, "weights must be float32");
    for (float v : t.f32()) {
      if (!std::isfinite(v)) unsupported(n, "a weight is not finite");
    }
    return t;
  }

  void set_output(const Node& n, Sym s) {
    s.shape = per_sample(g.value(n.outputs.at(0)), n);
    if (numel(s.shape) != static_cast<std::int64_t>(s.q1.size()))
      unsupported(n, "changes the element count");
    sym[n.outputs.at(0)] = std::move(s);
  }

  // Emits `layer` as the new base.
  void emit(Layer layer) {
    base_shape = layer.out_shape;
    chain.layers.push_back(std::move(layer));
    base = static_cast<int>(chain.layers.size());
  }

  // A degree-2 value becomes one Poly layer plus an affine map on its output.
  void materialise(Sym& s, const Node& n) {
    if (s.deg != 2) return;
    std::size_t zeros = 0;
    for (double a : s.q2) zeros += a == 0.0;
    if (zeros == s.q2.size()) {
      s.deg = 1;
      s.q2.clear();
      return;
    }
    if (zeros != 0) {
      unsupported(n,
                  "the activation's x^2 coefficient is zero for some elements only (it must be a "
                  "polynomial of "
                  "degree 2 everywhere or nowhere)");
    }
    std::vector<double> b(s.q2.size());
    for (std::size_t i = 0; i < b.size(); ++i) {
      b[i] = s.q1[i] / s.q2[i];
      if (!std::isfinite(b[i]))
        unsupported(n, "the activation's coefficients overflow when normalised");
    }
    Layer l;
    l.kind = LayerKind::kPoly;
    l.node = s.node.empty() ? n.name : s.node;
    if (!base_shape.empty() && per_channel(b, base_shape)) {
      l.in_shape = base_shape;
      const std::int64_t c = base_shape[0], per = c == 0 ? 0 : numel(base_shape) / c;
      for (std::int64_t ch = 0; ch < c; ++ch) l.b.push_back(b[sz(ch * per)]);
    } else {
      l.in_shape = {numel(base_shape)};
      l.b = b;
    }
    l.out_shape = l.in_shape;
    emit(std::move(l));
    Sym r;
    r.base = base;
    r.deg = 1;
    r.shape = s.shape;
    r.q1 = std::move(s.q2);
    r.q0 = std::move(s.q0);
    s = std::move(r);
  }

  bool nonzero(const std::vector<double>& v) const {
    return std::any_of(v.begin(), v.end(), [](double x) { return x != 0.0; });
  }

  // Folds the affine input map of `s` into a linear layer and emits it.
  void absorb_and_emit(Sym s, Layer l, const Node& n) {
    materialise(s, n);
    if (l.kind == LayerKind::kDense) {
      const std::int64_t m = l.out_shape[0], k = l.in_shape[0];
      if (l.bias.empty()) l.bias.assign(sz(m), 0.0);
      for (std::int64_t i = 0; i < m; ++i) {
        double add = 0;
        for (std::int64_t j = 0; j < k; ++j) {
          double& w = l.weight[sz(i * k + j)];
          add += w * s.q0[sz(j)];
          w *= s.q1[sz(j)];
        }
        l.bias[sz(i)] += add;
      }
    } else if (l.kind == LayerKind::kConv) {
      if (!per_channel(s.q1, l.in_shape) || !per_channel(s.q0, l.in_shape)) {
        unsupported(n,
                    "a scale or offset that varies within a channel before a convolution cannot be "
                    "folded into "
                    "it (only per-channel constants can)");
      }
      const bool offset = nonzero(s.q0);
      if (offset && (l.pt || l.pl || l.pb || l.pr)) {
        unsupported(n,
                    "an offset before a padded convolution cannot be folded into its bias (the "
                    "padding would "
                    "not be offset)");
      }
      const std::int64_t oc = l.out_shape[0], ic = l.in_shape[0], kk = l.kh * l.kw;
      const std::int64_t per = numel(l.in_shape) / ic;
      if (l.bias.empty()) l.bias.assign(sz(oc), 0.0);
      for (std::int64_t o = 0; o < oc; ++o) {
        double add = 0;
        for (std::int64_t c = 0; c < ic; ++c) {
          const double sc = s.q1[sz(c * per)], off = s.q0[sz(c * per)];
          for (std::int64_t k = 0; k < kk; ++k) {
            double& w = l.weight[sz((o * ic + c) * kk + k)];
            add += w * off;
            w *= sc;
          }
        }
        l.bias[sz(o)] += add;
      }
    }
    emit(std::move(l));
  }

  // The node's window attributes as the plaintext engine reads them
  // (model/window.h) into l's strides, dilations and pads (l.kh, l.kw set).
  void window(const Node& n, const Shape& in, const Shape& out, Layer& l, model::WindowOp op) {
    if (in.size() != 3 || out.size() != 3)
      unsupported(n, "only 2-D windows over [C, H, W] are supported");
    const model::Window w = lowering::set_window(l, n, in[1], in[2], l.kh, l.kw, op);
    if (w.out[0] != out[1] || w.out[1] != out[2])
      unsupported(n, "output shape does not match the window geometry");
  }

  void elementwise_const(const Node& n) {
    const int a = n.inputs.at(0), b = n.inputs.at(1);
    const bool first = is_shared(a);
    Sym s = shared(n, first ? 0 : 1);
    const Tensor& t = constant(n, first ? 1 : 0);
    const Shape ys = per_sample(g.value(n.outputs.at(0)), n);
    (void)b;
    std::vector<double> c;
    if (ys != s.shape || !broadcast(t, s.shape, &c)) {
      unsupported(n, "the constant " + shape_to_string(t.shape()) +
                         " would broadcast the encrypted operand " + shape_to_string(s.shape));
    }
    auto scale = [&](const std::vector<double>& f, bool inverse) {
      for (std::size_t i = 0; i < f.size(); ++i) {
        const double m = inverse ? 1.0 / f[i] : f[i];
        if (!std::isfinite(m)) unsupported(n, "division by zero");
        s.q0[i] *= m;
        s.q1[i] *= m;
        if (s.deg == 2) s.q2[i] *= m;
      }
    };
    switch (n.op) {
      case OpType::kAdd:
        for (std::size_t i = 0; i < c.size(); ++i) s.q0[i] += c[i];
        break;
      case OpType::kSub:
        if (!first) scale(std::vector<double>(c.size(), -1.0), false);
        for (std::size_t i = 0; i < c.size(); ++i) s.q0[i] += first ? -c[i] : c[i];
        break;
      case OpType::kMul: scale(c, false); break;
      case OpType::kDiv:
        if (!first) unsupported(n, "division by an encrypted value: " + std::string(kPolyHint));
        scale(c, true);
        break;
      default: unsupported(n, "internal: not an elementwise op");
    }
    set_output(n, std::move(s));
  }

  void elementwise_shared(const Node& n) {
    Sym a = shared(n, 0), b = shared(n, 1);
    if (a.shape != b.shape) {
      unsupported(n, "operands of different shapes " + shape_to_string(a.shape) + " and " +
                         shape_to_string(b.shape));
    }
    const std::size_t e = a.q1.size();
    auto q2 = [](const Sym& s, std::size_t i) { return s.deg == 2 ? s.q2[i] : 0.0; };
    Sym r;
    r.base = base;
    r.shape = a.shape;
    r.node = a.deg == 2 ? a.node : b.node;
    if (n.op == OpType::kAdd || n.op == OpType::kSub) {
      const double sign = n.op == OpType::kAdd ? 1.0 : -1.0;
      r.deg = std::max(a.deg, b.deg);
      r.q0.resize(e);
      r.q1.resize(e);
      if (r.deg == 2) r.q2.resize(e);
      for (std::size_t i = 0; i < e; ++i) {
        r.q0[i] = a.q0[i] + sign * b.q0[i];
        r.q1[i] = a.q1[i] + sign * b.q1[i];
        if (r.deg == 2) r.q2[i] = q2(a, i) + sign * q2(b, i);
      }
    } else if (n.op == OpType::kMul) {
      if (a.deg + b.deg > 2) {
        // (x^2)^2 and the like: materialise the quadratic operand when both
        // are the same value, so the product is again x * x.
        if (n.inputs[0] == n.inputs[1]) {
          materialise(a, n);
          b = a;
        } else {
          unsupported(n,
                      "a polynomial of degree above 2 in one activation (the he backend evaluates "
                      "x * (x + b) per "
                      "layer, or a value squared)");
        }
      }
      r.deg = 2;
      r.base = base;
      r.node = n.name;
      r.q0.resize(e);
      r.q1.resize(e);
      r.q2.resize(e);
      for (std::size_t i = 0; i < e; ++i) {
        r.q2[i] = a.q1[i] * b.q1[i];
        r.q1[i] = a.q1[i] * b.q0[i] + a.q0[i] * b.q1[i];
        r.q0[i] = a.q0[i] * b.q0[i];
      }
    } else {
      unsupported(n, "division by an encrypted value: " + std::string(kPolyHint));
    }
    set_output(n, std::move(r));
  }

  void lower_node(const Node& n) {
    switch (n.op) {
      case OpType::kIdentity:
      case OpType::kFlatten:
      case OpType::kReshape:
      case OpType::kSqueeze:
      case OpType::kUnsqueeze: set_output(n, shared(n, 0)); return;
      case OpType::kConv: {
        Sym s = shared(n, 0);
        const Tensor& w = constant(n, 1);
        if (n.attrs.get_int("group", 1) != 1) unsupported(n, "grouped convolution");
        if (w.rank() != 4) unsupported(n, "only 2-D convolution is supported");
        Layer l;
        l.kind = LayerKind::kConv;
        l.node = n.name;
        l.in_shape = s.shape;
        l.out_shape = per_sample(g.value(n.outputs.at(0)), n);
        l.kh = w.dim(2);
        l.kw = w.dim(3);
        window(n, l.in_shape, l.out_shape, l, model::WindowOp::kConv);
        if (w.dim(0) != l.out_shape[0] || w.dim(1) != l.in_shape[0])
          unsupported(n, "weight shape does not match the input");
        const std::vector<float> wv = w.to_float_vector();
        l.weight.assign(wv.begin(), wv.end());
        if (n.inputs.size() > 2 && n.inputs[2] >= 0) {
          const Tensor& b = constant(n, 2);
          if (b.numel() != l.out_shape[0])
            unsupported(n, "bias must have one value per output channel");
          const std::vector<float> bv = b.to_float_vector();
          l.bias.assign(bv.begin(), bv.end());
        }
        absorb_and_emit(std::move(s), std::move(l), n);
        sym[n.outputs.at(0)] = identity(base, base_shape);
        return;
      }
      case OpType::kGemm:
      case OpType::kMatMul: {
        Sym s = shared(n, 0);
        const Tensor& b = constant(n, 1);
        if (s.shape.size() != 1 || b.rank() != 2)
          unsupported(n, "only [N, K] x [K, M] products are supported");
        bool trans_b = false;
        double alpha = 1.0, beta = 1.0;
        if (n.op == OpType::kGemm) {
          if (n.attrs.get_int("transA", 0) != 0) unsupported(n, "transA");
          trans_b = n.attrs.get_int("transB", 0) != 0;
          alpha = n.attrs.get_float("alpha", 1.0f);
          beta = n.attrs.get_float("beta", 1.0f);
        }
        const std::int64_t k = s.shape[0];
        const std::int64_t m = trans_b ? b.dim(0) : b.dim(1);
        if ((trans_b ? b.dim(1) : b.dim(0)) != k)
          unsupported(n, "weight shape does not match the input");
        Layer l;
        l.kind = LayerKind::kDense;
        l.node = n.name;
        l.in_shape = {k};
        l.out_shape = {m};
        if (per_sample(g.value(n.outputs.at(0)), n) != l.out_shape)
          unsupported(n, "unexpected output shape");
        const std::vector<float> src = b.to_float_vector();
        l.weight.resize(sz(m * k));
        for (std::int64_t i = 0; i < m; ++i) {
          for (std::int64_t j = 0; j < k; ++j) {
            l.weight[sz(i * k + j)] = alpha * src[sz(trans_b ? i * k + j : j * m + i)];
          }
        }
        if (n.op == OpType::kGemm && n.inputs.size() > 2 && n.inputs[2] >= 0) {
          const Tensor& c = constant(n, 2);
          if (c.numel() != m && c.numel() != 1)
            unsupported(n, "bias must have one value per output");
          const std::vector<float> cv = c.to_float_vector();
          l.bias.resize(sz(m));
          for (std::int64_t i = 0; i < m; ++i)
            l.bias[sz(i)] = beta * cv[sz(c.numel() == 1 ? 0 : i)];
        }
        absorb_and_emit(std::move(s), std::move(l), n);
        sym[n.outputs.at(0)] = identity(base, base_shape);
        return;
      }
      case OpType::kAveragePool:
      case OpType::kGlobalAveragePool: {
        Sym s = shared(n, 0);
        materialise(s, n);
        Layer l;
        l.kind = LayerKind::kAvgPool;
        l.node = n.name;
        l.in_shape = s.shape;
        l.out_shape = per_sample(g.value(n.outputs.at(0)), n);
        if (l.in_shape.size() != 3 || l.out_shape.size() != 3)
          unsupported(n, "only 2-D pooling over [C, H, W]");
        if (n.op == OpType::kGlobalAveragePool) {
          l.kh = l.in_shape[1];
          l.kw = l.in_shape[2];
          if (l.out_shape != Shape{l.in_shape[0], 1, 1}) unsupported(n, "unexpected output shape");
        } else {
          const std::vector<std::int64_t> ks = n.attrs.get_ints("kernel_shape", {});
          if (ks.size() != 2) unsupported(n, "only 2-D pooling");
          if (n.attrs.get_int("ceil_mode", 0) != 0) unsupported(n, "ceil_mode");
          l.kh = ks[0];
          l.kw = ks[1];
          window(n, l.in_shape, l.out_shape, l, model::WindowOp::kAveragePool);
          if (l.dh != 1 || l.dw != 1) unsupported(n, "dilated pooling");
          l.count_include_pad = n.attrs.get_int("count_include_pad", 0) != 0;
        }
        if (l.out_shape[0] != l.in_shape[0]) unsupported(n, "pooling changes the channel count");
        // An affine map per channel commutes with averaging (the average of
        // a constant is the constant, except padding counted as zeros).
        if (!per_channel(s.q1, l.in_shape) || !per_channel(s.q0, l.in_shape)) {
          unsupported(n,
                      "a scale or offset that varies within a channel before average pooling "
                      "cannot be folded");
        }
        const bool padded = l.pt || l.pl || l.pb || l.pr;
        if (nonzero(s.q0) && padded && l.count_include_pad) {
          unsupported(n,
                      "an offset before average pooling that counts its padding cannot be folded");
        }
        const std::int64_t c = l.in_shape[0], per_in = numel(l.in_shape) / c;
        const std::int64_t per_out = numel(l.out_shape) / c;
        Sym r;
        r.base = 0;
        r.deg = 1;
        for (std::int64_t ch = 0; ch < c; ++ch) {
          for (std::int64_t i = 0; i < per_out; ++i) {
            r.q1.push_back(s.q1[sz(ch * per_in)]);
            r.q0.push_back(s.q0[sz(ch * per_in)]);
          }
        }
        emit(std::move(l));
        r.base = base;
        set_output(n, std::move(r));
        return;
      }
      case OpType::kAdd:
      case OpType::kSub:
      case OpType::kMul:
      case OpType::kDiv: {
        if (n.inputs.size() != 2) unsupported(n, "expected two inputs");
        if (is_shared(n.inputs[0]) && is_shared(n.inputs[1])) {
          elementwise_shared(n);
        } else {
          elementwise_const(n);
        }
        return;
      }
      case OpType::kPow: {
        Sym s = shared(n, 0);
        const Tensor& e = constant(n, 1);
        if (e.numel() != 1) unsupported(n, "only a scalar exponent");
        const double p = e.to_float_vector()[0];
        if (p == 1.0) {
          set_output(n, std::move(s));
          return;
        }
        if (p != 2.0) unsupported(n, "only the exponents 1 and 2: " + std::string(kPolyHint));
        if (s.deg == 2) materialise(s, n);
        Sym r = s;
        r.deg = 2;
        r.node = n.name;
        r.q2.resize(s.q1.size());
        for (std::size_t i = 0; i < s.q1.size(); ++i) {
          r.q2[i] = s.q1[i] * s.q1[i];
          r.q1[i] = 2 * s.q1[i] * s.q0[i];
          r.q0[i] = s.q0[i] * s.q0[i];
        }
        set_output(n, std::move(r));
        return;
      }
      case OpType::kBatchNormalization: {
        Sym s = shared(n, 0);
        const Tensor &gamma = constant(n, 1), &beta = constant(n, 2), &mean = constant(n, 3),
                     &var = constant(n, 4);
        const double eps = n.attrs.get_float("epsilon", 1e-5f);
        const std::int64_t c = gamma.numel();
        if (s.shape.empty() || s.shape[0] != c || beta.numel() != c || mean.numel() != c ||
            var.numel() != c) {
          unsupported(n, "channel count mismatch");
        }
        const std::int64_t per = numel(s.shape) / c;
        for (std::int64_t ch = 0; ch < c; ++ch) {
          const std::size_t u = sz(ch);
          const double sc = gamma.f32()[u] / std::sqrt(static_cast<double>(var.f32()[u]) + eps);
          const double sh = beta.f32()[u] - mean.f32()[u] * sc;
          if (!std::isfinite(sc) || !std::isfinite(sh))
            unsupported(n, "non-finite normalisation constants");
          for (std::int64_t i = 0; i < per; ++i) {
            const std::size_t k = sz(ch * per + i);
            s.q1[k] *= sc;
            if (s.deg == 2) s.q2[k] *= sc;
            s.q0[k] = s.q0[k] * sc + sh;
          }
        }
        set_output(n, std::move(s));
        return;
      }
      case OpType::kSigmoid:
      case OpType::kSoftmax: {
        const int out_v = n.outputs.at(0);
        if (g.outputs.size() != 1 || g.outputs[0] != out_v) {
          unsupported(n, std::string(model::op_name(n.op)) + " inside the network: " + kPolyHint +
                             " (Sigmoid/Softmax are supported only as the final op, which the "
                             "client applies)");
        }
        Sym s = shared(n, 0);
        chain.finish = n.op == OpType::kSigmoid ? Finish::kSigmoid : Finish::kSoftmax;
        if (n.op == OpType::kSoftmax) {
          const std::int64_t rank = static_cast<std::int64_t>(s.shape.size()) + 1;
          std::int64_t axis = n.attrs.get_int("axis", n.opset < 13 ? 1 : -1);
          if (axis < 0) axis += rank;
          if (axis < 1 || axis >= rank) unsupported(n, "Softmax over the batch dimension");
          if (n.opset < 13 && axis != rank - 1)
            unsupported(n, "Softmax (before opset 13) over a non-final axis");
          chain.softmax_axis = axis - 1;
        }
        set_output(n, std::move(s));
        return;
      }
      case OpType::kRelu:
      case OpType::kMaxPool:
      case OpType::kTanh:
      case OpType::kErf:
      case OpType::kSqrt:
      case OpType::kLayerNormalization:
        unsupported(
            n, "no CKKS evaluation of " + std::string(model::op_name(n.op)) + ": " + kPolyHint);
      default:
        unsupported(
            n, "no CKKS lowering for " + std::string(model::op_name(n.op)) +
                   " (supported: Conv, Gemm, MatMul, Add, Sub, Mul, Div by a constant, polynomial "
                   "activations, Pow 2, BatchNormalization, AveragePool, GlobalAveragePool, "
                   "Flatten/Reshape, and Sigmoid/Softmax as the final op): " +
                   kPolyHint);
    }
  }

  // What is left at the output folds back into the last linear layer.
  void finish_output(const Node& out_node) {
    const int out_v = g.outputs[0];
    if (!is_shared(out_v))
      throw_error(ErrorCategory::kUnsupported, "the model output does not depend on its input");
    Sym s = sym.at(out_v);
    if (s.base != base) unsupported(out_node, "the output is not computed by the last layer");
    materialise(s, out_node);
    chain.output_shape = s.shape;
    if (chain.layers.empty()) {
      throw_error(ErrorCategory::kUnsupported,
                  "the model computes no layer under encryption (nothing to evaluate)");
    }
    if (is_identity(s)) return;
    Layer& l = chain.layers.back();
    if (l.kind == LayerKind::kDense) {
      const std::int64_t m = l.out_shape[0], k = l.in_shape[0];
      if (l.bias.empty()) l.bias.assign(sz(m), 0.0);
      for (std::int64_t i = 0; i < m; ++i) {
        for (std::int64_t j = 0; j < k; ++j) l.weight[sz(i * k + j)] *= s.q1[sz(i)];
        l.bias[sz(i)] = l.bias[sz(i)] * s.q1[sz(i)] + s.q0[sz(i)];
      }
      return;
    }
    if (l.kind == LayerKind::kConv && per_channel(s.q1, l.out_shape) &&
        per_channel(s.q0, l.out_shape)) {
      const std::int64_t oc = l.out_shape[0], per_w = numel(Shape{l.in_shape[0], l.kh, l.kw});
      const std::int64_t per = numel(l.out_shape) / oc;
      if (l.bias.empty()) l.bias.assign(sz(oc), 0.0);
      for (std::int64_t o = 0; o < oc; ++o) {
        const double sc = s.q1[sz(o * per)];
        for (std::int64_t k = 0; k < per_w; ++k) l.weight[sz(o * per_w + k)] *= sc;
        l.bias[sz(o)] = l.bias[sz(o)] * sc + s.q0[sz(o * per)];
      }
      return;
    }
    unsupported(out_node, l.kind == LayerKind::kPoly
                              ? "an activation with constants (a x^2 + b x + c with a != 1 or c != "
                                "0) and no linear layer "
                                "after it to absorb them"
                              : "constants after the last layer that cannot be folded into it");
  }
};

}  // namespace

Chain lower_chain(const Graph& graph) {
  if (graph.inputs.size() != 1 || graph.outputs.size() != 1) {
    throw_error(ErrorCategory::kUnsupported,
                "the he backend needs a model with one input and one output");
  }
  const int in_v = graph.inputs[0];
  if (graph.value(in_v).dtype != DType::kFloat32) {
    throw_error(ErrorCategory::kUnsupported, "the he backend needs a float32 input");
  }
  Lowering l{graph, {}, {}, 0, {}};
  Node pseudo;
  pseudo.name = graph.value(in_v).name;
  pseudo.op = OpType::kIdentity;
  l.chain.input_shape = per_sample(graph.value(in_v), pseudo);
  l.base_shape = l.chain.input_shape;
  l.sym[in_v] = identity(0, l.chain.input_shape);
  const Node* last = nullptr;
  for (const Node& n : graph.nodes) {
    if (n.op == OpType::kConstant) continue;
    bool any_shared = false;
    for (int v : n.inputs) any_shared = any_shared || l.is_shared(v);
    if (!any_shared) continue;  // constant subgraph (folded at import)
    l.lower_node(n);
    last = &n;
  }
  Node out_node;
  if (last) {
    out_node = *last;
  } else {
    out_node.name = graph.value(graph.outputs[0]).name;
    out_node.op = OpType::kIdentity;
  }
  l.finish_output(out_node);
  for (const Layer& layer : l.chain.layers) {
    for (double v : layer.weight) {
      if (!std::isfinite(v)) unsupported(out_node, "a folded weight is not finite");
    }
    for (double v : layer.bias) {
      if (!std::isfinite(v)) unsupported(out_node, "a folded bias is not finite");
    }
  }
  return std::move(l.chain);
}

Support chain_support(const Graph& graph) {
  try {
    lower_chain(graph);
    return Support::yes();
  } catch (const Error& e) {
    const std::string msg = e.what();
    std::string node;
    const auto p = msg.find("node '");
    if (p != std::string::npos) {
      const auto q = msg.find('\'', p + 6);
      if (q != std::string::npos) node = msg.substr(p + 6, q - p - 6);
    }
    return Support::no(node, msg);
  } catch (const std::exception& e) {
    return Support::no("", e.what());
  }
}

int chain_depth(const Chain& chain) {
  return static_cast<int>(chain.layers.size());
}

std::vector<double> chain_bounds(const Chain& chain, double input_bound) {
  std::vector<double> out;
  double b = input_bound;
  for (const Layer& l : chain.layers) {
    switch (l.kind) {
      case LayerKind::kDense:
      case LayerKind::kConv: {
        const std::int64_t rows = l.kind == LayerKind::kDense ? l.out_shape[0] : l.out_shape[0];
        const std::size_t per = rows == 0 ? 0 : l.weight.size() / sz(rows);
        double worst = 0;
        for (std::int64_t r = 0; r < rows; ++r) {
          double s = 0;
          for (std::size_t j = 0; j < per; ++j) s += std::fabs(l.weight[sz(r) * per + j]);
          s = s * b + (l.bias.empty() ? 0.0 : std::fabs(l.bias[sz(r)]));
          worst = std::max(worst, s);
        }
        b = worst;
        break;
      }
      case LayerKind::kAvgPool: break;
      case LayerKind::kPoly: {
        double mb = 0;
        for (double v : l.b) mb = std::max(mb, std::fabs(v));
        b = b * b + mb * b;
        break;
      }
    }
    out.push_back(b);
  }
  return out;
}

he::CkksParameters choose_parameters(int depth, int scale_bits, int q0_bits, int special_bits) {
  if (depth < 0 || depth > 64 || scale_bits < 2 || scale_bits > 60 || q0_bits < 2 || q0_bits > 60 ||
      special_bits < 2 || special_bits > 60) {
    throw_error(ErrorCategory::kBadInput,
                "parameter choice: depth " + std::to_string(depth) + ", scale " +
                    std::to_string(scale_bits) + ", q0 " + std::to_string(q0_bits) + ", special " +
                    std::to_string(special_bits) + " bits: out of range (depth 0..64, bits 2..60)");
  }
  const int total = q0_bits + depth * scale_bits + special_bits;
  for (std::size_t n = 4096; n <= 32768; n *= 2) {
    if (he::check_security(n, total, he::SecurityLevel::k128) != he::SecurityCheck::kOk) continue;
    he::CkksParameters p;
    p.n = n;
    p.chain_bits.assign(1, q0_bits);
    p.chain_bits.insert(p.chain_bits.end(), sz(depth), scale_bits);
    p.special_primes = 1;
    p.special_bits = special_bits;
    p.dnum = 0;
    p.log2_scale = scale_bits;
    p.security = he::SecurityLevel::k128;
    return p;
  }
  throw_error(ErrorCategory::kInsecureParameters,
              "depth " + std::to_string(depth) + " needs log2(Q*P) = " + std::to_string(total) +
                  " bits (q0 " + std::to_string(q0_bits) + " + " + std::to_string(depth) + " x " +
                  std::to_string(scale_bits) + " + special " + std::to_string(special_bits) +
                  "); the largest allowed at 128-bit security is " +
                  std::to_string(he::max_log_qp(32768, he::SecurityLevel::k128)) +
                  " (N = 32768, HE Standard)");
}

std::string format_short(double v, int precision) {
  std::ostringstream o;
  o.precision(precision);
  o << v;
  return o.str();
}

double output_error_limit(double output_bound) {
  return std::ldexp(std::min(1.0, std::max(output_bound, 0.0)), -10);
}

std::vector<double> evaluate_chain(const Chain& chain, std::span<const float> sample) {
  if (static_cast<std::int64_t>(sample.size()) != numel(chain.input_shape)) {
    throw_error(ErrorCategory::kBadInput, "evaluate_chain: " + std::to_string(sample.size()) +
                                              " values for an input of shape " +
                                              shape_to_string(chain.input_shape));
  }
  std::vector<double> x(sample.begin(), sample.end());
  for (const Layer& l : chain.layers) {
    if (static_cast<std::int64_t>(x.size()) != numel(l.in_shape)) {
      throw_error(ErrorCategory::kInternal, "evaluate_chain: layer '" + l.node + "' reads " +
                                                shape_to_string(l.in_shape) + " after " +
                                                std::to_string(x.size()) + " values");
    }
    std::vector<double> y(sz(numel(l.out_shape)), 0.0);
    switch (l.kind) {
      case LayerKind::kDense: {
        const std::int64_t m = l.out_shape[0], k = l.in_shape[0];
        for (std::int64_t i = 0; i < m; ++i) {
          double s = l.bias.empty() ? 0.0 : l.bias[sz(i)];
          for (std::int64_t j = 0; j < k; ++j) s += l.weight[sz(i * k + j)] * x[sz(j)];
          y[sz(i)] = s;
        }
        break;
      }
      case LayerKind::kConv:
      case LayerKind::kAvgPool: {
        const std::int64_t ic = l.in_shape[0], h = l.in_shape[1], w = l.in_shape[2];
        const std::int64_t oc = l.out_shape[0], oh = l.out_shape[1], ow = l.out_shape[2];
        const bool conv = l.kind == LayerKind::kConv;
        for (std::int64_t o = 0; o < oc; ++o) {
          for (std::int64_t r = 0; r < oh; ++r) {
            for (std::int64_t c = 0; c < ow; ++c) {
              double s = 0;
              std::int64_t count = 0;
              for (std::int64_t ci = conv ? 0 : o; ci < (conv ? ic : o + 1); ++ci) {
                for (std::int64_t a = 0; a < l.kh; ++a) {
                  for (std::int64_t b = 0; b < l.kw; ++b) {
                    const std::int64_t yy = r * l.sh - l.pt + a * l.dh,
                                       xx = c * l.sw - l.pl + b * l.dw;
                    if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                    ++count;
                    const double v = x[sz((ci * h + yy) * w + xx)];
                    s += conv ? l.weight[sz(((o * ic + ci) * l.kh + a) * l.kw + b)] * v : v;
                  }
                }
              }
              if (conv) {
                s += l.bias.empty() ? 0.0 : l.bias[sz(o)];
              } else {
                const std::int64_t div = l.count_include_pad ? l.kh * l.kw : count;
                s = div == 0 ? 0.0 : s / static_cast<double>(div);
              }
              y[sz((o * oh + r) * ow + c)] = s;
            }
          }
        }
        break;
      }
      case LayerKind::kPoly: {
        const std::int64_t c = l.in_shape.empty() ? 1 : l.in_shape[0];
        const std::int64_t per = c == 0 ? 0 : numel(l.in_shape) / c;
        for (std::size_t i = 0; i < x.size(); ++i) {
          const double b = l.b.size() == 1 ? l.b[0] : l.b[i / sz(per)];
          y[i] = x[i] * (x[i] + b);
        }
        break;
      }
    }
    x = std::move(y);
  }
  return x;
}

void apply_finish(Finish finish, std::int64_t softmax_axis, const Shape& shape,
                  std::span<double> values) {
  if (finish == Finish::kNone) return;
  if (finish == Finish::kSigmoid) {
    for (double& v : values) v = 1.0 / (1.0 + std::exp(-v));
    return;
  }
  const std::int64_t rank = static_cast<std::int64_t>(shape.size());
  std::int64_t axis = softmax_axis < 0 ? softmax_axis + rank : softmax_axis;
  if (rank == 0) {
    for (double& v : values) v = 1.0;
    return;
  }
  if (axis < 0 || axis >= rank || static_cast<std::int64_t>(values.size()) != numel(shape)) {
    throw_error(ErrorCategory::kBadInput, "softmax axis " + std::to_string(softmax_axis) +
                                              " for shape " + shape_to_string(shape));
  }
  std::int64_t inner = 1;
  for (std::int64_t d = axis + 1; d < rank; ++d) inner *= shape[sz(d)];
  const std::int64_t len = shape[sz(axis)],
                     outer = numel(shape) / std::max<std::int64_t>(1, len * inner);
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < inner; ++i) {
      double mx = -std::numeric_limits<double>::infinity();
      for (std::int64_t k = 0; k < len; ++k)
        mx = std::max(mx, values[sz((o * len + k) * inner + i)]);
      double sum = 0;
      for (std::int64_t k = 0; k < len; ++k) {
        double& v = values[sz((o * len + k) * inner + i)];
        v = std::exp(v - mx);
        sum += v;
      }
      for (std::int64_t k = 0; k < len; ++k) values[sz((o * len + k) * inner + i)] /= sum;
    }
  }
}

}  // namespace blindfold::backends::heplan
