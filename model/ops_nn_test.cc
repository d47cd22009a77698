// Tests of the neural-network ops (ops_nn.cc) through infer_node and run_node,
// against naive reference loops written here from the ONNX definitions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/kernels.h"
#include "model/ops_internal.h"
#include "model/shape_inference.h"

namespace blindfold::model {
namespace {

using I64 = std::vector<std::int64_t>;
using F32 = std::vector<float>;

Node make_node(OpType op, std::size_t inputs, std::size_t outputs = 1, int opset = 13) {
  Node n;
  n.name = "t";
  n.op = op;
  n.opset = opset;
  for (std::size_t i = 0; i < inputs; ++i) n.inputs.push_back(static_cast<int>(i));
  for (std::size_t i = 0; i < outputs; ++i) n.outputs.push_back(static_cast<int>(inputs + i));
  n.attrs.owner = n.label();
  return n;
}

void set_int(Node& n, const std::string& name, std::int64_t v) {
  n.attrs.set(name, Attribute::of_int(v));
}
void set_ints(Node& n, const std::string& name, I64 v) {
  n.attrs.set(name, Attribute::of_ints(std::move(v)));
}
void set_float(Node& n, const std::string& name, float v) {
  n.attrs.set(name, Attribute::of_float(v));
}
void set_string(Node& n, const std::string& name, const std::string& v) {
  n.attrs.set(name, Attribute::of_string(v));
}

std::int64_t numel(const Shape& s) {
  std::int64_t n = 1;
  for (std::int64_t d : s) n *= d;
  return n;
}

Tensor random_tensor(std::mt19937& rng, Shape shape, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  F32 v(static_cast<std::size_t>(numel(shape)));
  for (float& f : v) f = dist(rng);
  return Tensor::from_floats(std::move(shape), std::move(v));
}

std::vector<ValueInfo> infos_of(const std::vector<const Tensor*>& inputs) {
  std::vector<ValueInfo> infos;
  for (const Tensor* t : inputs) {
    ValueInfo vi;
    if (t == nullptr) {
      vi.present = false;
    } else {
      vi.dtype = t->dtype();
      vi.shape = t->shape();
      vi.constant = t;
    }
    infos.push_back(vi);
  }
  return infos;
}

// Shape inference, then the kernel into buffers of the inferred shapes.
std::vector<Tensor> run(const Node& node, const std::vector<const Tensor*>& inputs,
                        ThreadPool& pool = ThreadPool::global()) {
  const std::vector<TypedShape> shapes = infer_node(node, infos_of(inputs));
  std::vector<Tensor> outs(shapes.size());
  std::vector<Tensor*> ptrs;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    outs[i].reset(shapes[i].dtype, shapes[i].shape);
    ptrs.push_back(&outs[i]);
  }
  run_node(node, inputs, ptrs, pool);
  return outs;
}

Shape infer1(const Node& node, const std::vector<const Tensor*>& inputs) {
  return infer_node(node, infos_of(inputs)).at(0).shape;
}

void expect_close(const Tensor& got, const F32& want, float tol = 1e-4f) {
  ASSERT_EQ(got.numel(), static_cast<std::int64_t>(want.size()));
  const auto g = got.f32();
  for (std::size_t i = 0; i < want.size(); ++i) {
    const float t = tol * (1.0f + std::fabs(want[i]));
    if (!(std::fabs(g[i] - want[i]) <= t)) {
      FAIL() << "element " << i << ": got " << g[i] << ", want " << want[i];
    }
  }
}

// Expects an error of `category` whose message names the node and contains
// `fragment`.
template <typename F>
void expect_error(F&& f, const std::string& fragment, ErrorCategory category) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), category) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("node 't'"), std::string::npos) << e.what();
  }
}
// A malformed model.
template <typename F>
void expect_bad_model(F&& f, const std::string& fragment) {
  expect_error(f, fragment, ErrorCategory::kBadModel);
}
// Valid ONNX that the engine does not implement.
template <typename F>
void expect_unsupported(F&& f, const std::string& fragment) {
  expect_error(f, fragment, ErrorCategory::kUnsupported);
}

// ---- Conv ---------------------------------------------------------------------

struct ConvCase {
  std::int64_t n, c, h, w, m, kh, kw;
  std::int64_t sh = 1, sw = 1, dh = 1, dw = 1;
  std::int64_t pt = 0, pl = 0, pb = 0, pr = 0;
  std::int64_t group = 1;
  bool bias = true;
  std::int64_t oh() const { return (h + pt + pb - ((kh - 1) * dh + 1)) / sh + 1; }
  std::int64_t ow() const { return (w + pl + pr - ((kw - 1) * dw + 1)) / sw + 1; }
};

F32 ref_conv(const ConvCase& k, const Tensor& xt, const Tensor& wt, const Tensor* bt) {
  const auto x = xt.f32();
  const auto w = wt.f32();
  const std::int64_t oh = k.oh(), ow = k.ow(), cg = k.c / k.group, mg = k.m / k.group;
  F32 y(static_cast<std::size_t>(k.n * k.m * oh * ow));
  for (std::int64_t n = 0; n < k.n; ++n)
    for (std::int64_t m = 0; m < k.m; ++m)
      for (std::int64_t oy = 0; oy < oh; ++oy)
        for (std::int64_t ox = 0; ox < ow; ++ox) {
          double acc = bt ? bt->f32()[static_cast<std::size_t>(m)] : 0.0;
          for (std::int64_t ci = 0; ci < cg; ++ci) {
            const std::int64_t c = (m / mg) * cg + ci;
            for (std::int64_t i = 0; i < k.kh; ++i)
              for (std::int64_t j = 0; j < k.kw; ++j) {
                const std::int64_t iy = oy * k.sh - k.pt + i * k.dh;
                const std::int64_t ix = ox * k.sw - k.pl + j * k.dw;
                if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
                acc += double(x[static_cast<std::size_t>(((n * k.c + c) * k.h + iy) * k.w + ix)]) *
                       w[static_cast<std::size_t>(((m * cg + ci) * k.kh + i) * k.kw + j)];
              }
          }
          y[static_cast<std::size_t>(((n * k.m + m) * oh + oy) * ow + ox)] = float(acc);
        }
  return y;
}

Node conv_node(const ConvCase& k) {
  Node node = make_node(OpType::kConv, k.bias ? 3 : 2);
  set_ints(node, "strides", {k.sh, k.sw});
  set_ints(node, "dilations", {k.dh, k.dw});
  set_ints(node, "pads", {k.pt, k.pl, k.pb, k.pr});
  set_int(node, "group", k.group);
  return node;
}

void check_conv(const ConvCase& k, std::mt19937& rng, ThreadPool& pool) {
  SCOPED_TRACE(::testing::Message()
               << "n=" << k.n << " c=" << k.c << " h=" << k.h << " w=" << k.w << " m=" << k.m
               << " k=" << k.kh << "x" << k.kw << " s=" << k.sh << "," << k.sw << " d=" << k.dh
               << "," << k.dw << " pads=" << k.pt << "," << k.pl << "," << k.pb << "," << k.pr
               << " group=" << k.group << " bias=" << k.bias);
  const Tensor x = random_tensor(rng, {k.n, k.c, k.h, k.w});
  const Tensor w = random_tensor(rng, {k.m, k.c / k.group, k.kh, k.kw});
  const Tensor b = random_tensor(rng, {k.m});
  const Node node = conv_node(k);
  std::vector<const Tensor*> in = {&x, &w};
  if (k.bias) in.push_back(&b);
  const std::vector<Tensor> out = run(node, in, pool);
  ASSERT_EQ(out[0].shape(), (Shape{k.n, k.m, k.oh(), k.ow()}));
  expect_close(out[0], ref_conv(k, x, w, k.bias ? &b : nullptr));
}

TEST(OpsNnConv, IsNnOp) {
  for (OpType op :
       {OpType::kConv, OpType::kMaxPool, OpType::kAveragePool, OpType::kGlobalAveragePool,
        OpType::kGemm, OpType::kMatMul, OpType::kBatchNormalization, OpType::kLayerNormalization,
        OpType::kSoftmax, OpType::kReduceMean}) {
    EXPECT_TRUE(detail::is_nn_op(op)) << op_name(op);
  }
  for (OpType op : {OpType::kAdd, OpType::kRelu, OpType::kReshape, OpType::kFlatten}) {
    EXPECT_FALSE(detail::is_nn_op(op)) << op_name(op);
  }
}

TEST(OpsNnConv, FixedCases) {
  std::mt19937 rng(1);
  ThreadPool pool(2);
  // LeNet-style layers, 1x1 (pointwise path), grouped, strided and padded.
  check_conv({1, 1, 28, 28, 16, 5, 5}, rng, pool);
  check_conv({2, 16, 12, 12, 16, 5, 5}, rng, pool);
  check_conv({2, 8, 7, 9, 12, 1, 1}, rng, pool);
  check_conv({1, 8, 7, 9, 12, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2}, rng, pool);
  check_conv({1, 3, 9, 11, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, rng, pool);
  check_conv({2, 6, 10, 10, 6, 3, 3, 1, 2, 2, 1, 2, 1, 0, 2, 3, false}, rng, pool);
  // Asymmetric padding larger than the kernel reach.
  check_conv({1, 2, 4, 5, 3, 2, 3, 1, 1, 1, 1, 3, 0, 1, 4}, rng, pool);
  // 1x1 with stride / padding is not the pointwise fast path.
  check_conv({1, 4, 6, 6, 5, 1, 1, 2, 2, 1, 1, 1, 1, 0, 0}, rng, pool);
}

TEST(OpsNnConv, ChannelVectorisedPath) {
  // Stride 1, 8k output channels per group, narrow rows: the kernel that
  // vectorises over output channels, with rows and columns that do not fill
  // its tiles, padding, dilation and groups.
  std::mt19937 rng(9);
  ThreadPool pool(2);
  check_conv({2, 3, 9, 13, 16, 3, 3, 1, 1, 1, 2, 1, 2, 0, 1}, rng, pool);
  check_conv({1, 8, 7, 10, 32, 5, 4, 1, 1, 1, 1, 2, 0, 2, 0}, rng, pool);
  check_conv({1, 4, 6, 6, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2}, rng, pool);
  check_conv({3, 16, 5, 5, 48, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 1, false}, rng, pool);
  check_conv({1, 2, 1, 9, 8, 1, 3}, rng, pool);
}

TEST(OpsNnConv, Depthwise) {
  std::mt19937 rng(2);
  ThreadPool pool(2);
  check_conv({2, 4, 9, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4}, rng, pool);
  // Channel multiplier 2, stride 2, dilation 2, uneven pads.
  check_conv({1, 4, 11, 10, 8, 3, 3, 2, 2, 2, 2, 2, 0, 1, 3, 4}, rng, pool);
  check_conv({3, 6, 5, 5, 6, 5, 5, 1, 3, 1, 1, 2, 2, 2, 2, 6, false}, rng, pool);
}

TEST(OpsNnConv, RandomCases) {
  std::mt19937 rng(3);
  ThreadPool pool(2);
  std::uniform_int_distribution<std::int64_t> d(0, 1000);
  int checked = 0;
  while (checked < 60) {
    ConvCase k{};
    k.group = 1 + d(rng) % 3;
    k.n = 1 + d(rng) % 3;
    k.c = k.group * (1 + d(rng) % 4);
    k.m = k.group * (1 + d(rng) % 4);
    k.h = 1 + d(rng) % 12;
    k.w = 1 + d(rng) % 12;
    k.kh = 1 + d(rng) % 4;
    k.kw = 1 + d(rng) % 4;
    k.sh = 1 + d(rng) % 3;
    k.sw = 1 + d(rng) % 3;
    k.dh = 1 + d(rng) % 2;
    k.dw = 1 + d(rng) % 2;
    k.pt = d(rng) % 3;
    k.pl = d(rng) % 3;
    k.pb = d(rng) % 3;
    k.pr = d(rng) % 3;
    k.bias = d(rng) % 2 == 0;
    if (k.h + k.pt + k.pb < (k.kh - 1) * k.dh + 1) continue;
    if (k.w + k.pl + k.pr < (k.kw - 1) * k.dw + 1) continue;
    check_conv(k, rng, pool);
    ++checked;
  }
}

TEST(OpsNnConv, LargeRunsInParallel) {
  std::mt19937 rng(4);
  ThreadPool pool(2);
  // Batch 3: the split between the two threads falls inside an image.
  check_conv({3, 8, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, rng, pool);
  // Batch 1, large enough to split one image by rows.
  check_conv({1, 16, 40, 40, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, rng, pool);
  // Depthwise over many planes.
  check_conv({2, 64, 32, 32, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 64}, rng, pool);
  // Pointwise.
  check_conv({2, 64, 24, 24, 64, 1, 1}, rng, pool);
}

TEST(OpsNnConv, KernelShapeFromWeightsAndOptionalAttributes) {
  std::mt19937 rng(5);
  const Tensor x = random_tensor(rng, {1, 2, 6, 6});
  const Tensor w = random_tensor(rng, {3, 2, 3, 3});
  Node node = make_node(OpType::kConv, 2);
  EXPECT_EQ(infer1(node, {&x, &w}), (Shape{1, 3, 4, 4}));
  set_ints(node, "kernel_shape", {3, 3});
  const std::vector<Tensor> out = run(node, {&x, &w});
  ConvCase k{1, 2, 6, 6, 3, 3, 3};
  k.bias = false;
  expect_close(out[0], ref_conv(k, x, w, nullptr));
  // An omitted optional bias (present = false) is the same as none.
  const std::vector<Tensor> out2 = run(make_node(OpType::kConv, 3), {&x, &w, nullptr});
  expect_close(out2[0], ref_conv(k, x, w, nullptr));
}

TEST(OpsNnConv, AutoPad) {
  std::mt19937 rng(6);
  const Tensor x = random_tensor(rng, {1, 2, 6, 7});
  const Tensor w = random_tensor(rng, {2, 2, 3, 3});
  // Height 6, stride 2: output 3, total padding 1 (odd); width 7: output 4, total 2.
  struct Mode {
    const char* name;
    ConvCase k;
  } modes[] = {
      {"SAME_UPPER", {1, 2, 6, 7, 2, 3, 3, 2, 2, 1, 1, 0, 1, 1, 1, 1, false}},
      {"SAME_LOWER", {1, 2, 6, 7, 2, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1, 1, false}},
      {"VALID", {1, 2, 6, 7, 2, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, 1, false}},
  };
  for (const Mode& mode : modes) {
    SCOPED_TRACE(mode.name);
    Node node = make_node(OpType::kConv, 2);
    set_string(node, "auto_pad", mode.name);
    set_ints(node, "strides", {2, 2});
    const std::vector<Tensor> out = run(node, {&x, &w});
    ASSERT_EQ(out[0].shape(), (Shape{1, 2, mode.k.oh(), mode.k.ow()}));
    expect_close(out[0], ref_conv(mode.k, x, w, nullptr));
  }
}

TEST(OpsNnConv, BadAttributesAndShapes) {
  std::mt19937 rng(7);
  const Tensor x = random_tensor(rng, {1, 4, 5, 5});
  const Tensor w = random_tensor(rng, {4, 4, 3, 3});
  const Tensor w2 = random_tensor(rng, {4, 2, 3, 3});
  auto conv = [&](auto&& set) {
    Node node = make_node(OpType::kConv, 2);
    set(node);
    return node;
  };
  expect_bad_model(
      [&] {
        infer1(conv([](Node& n) { set_ints(n, "strides", {0, 1}); }), {&x, &w});
      },
      "must be positive");
  expect_bad_model(
      [&] {
        infer1(conv([](Node& n) { set_ints(n, "dilations", {1, 0}); }), {&x, &w});
      },
      "must be positive");
  expect_bad_model(
      [&] {
        infer1(conv([](Node& n) { set_ints(n, "pads", {0, -1, 0, 0}); }), {&x, &w});
      },
      "non-negative");
  expect_bad_model(
      [&] {
        infer1(conv([](Node& n) { set_ints(n, "pads", {1, 1}); }), {&x, &w});
      },
      "expected 4");
  expect_bad_model(
      [&] {
        infer1(conv([](Node& n) { set_int(n, "group", 3); }), {&x, &w2});
      },
      "does not divide");
  expect_bad_model(
      [&] {
        infer1(conv([](Node& n) { set_int(n, "group", 0); }), {&x, &w});
      },
      "'group'");
  expect_bad_model(
      [&] {
        infer1(conv([](Node& n) { set_int(n, "group", 2); }), {&x, &w});
      },
      "input channels per group");
  expect_bad_model(
      [&] {
        infer1(conv([](Node& n) { set_ints(n, "dilations", {3, 3}); }), {&x, &w});
      },
      "exceeds the padded input");
  expect_bad_model(
      [&] {
        infer1(conv([](Node& n) { set_ints(n, "kernel_shape", {2, 2}); }), {&x, &w});
      },
      "kernel_shape");
  expect_bad_model(
      [&] {
        infer1(conv([](Node& n) { set_string(n, "auto_pad", "SAME"); }), {&x, &w});
      },
      "auto_pad");
  const Tensor big = random_tensor(rng, {4, 4, 7, 7});
  expect_bad_model(
      [&] {
        infer1(make_node(OpType::kConv, 2), {&x, &big});
      },
      "exceeds the padded input");
  const Tensor x1d = random_tensor(rng, {1, 4, 5});
  const Tensor w1d = random_tensor(rng, {4, 4, 3});
  expect_unsupported(
      [&] {
        infer1(make_node(OpType::kConv, 2), {&x1d, &w1d});
      },
      "only 2-D Conv supported");
  const Tensor b = random_tensor(rng, {3});
  expect_bad_model([&] { infer1(make_node(OpType::kConv, 3), {&x, &w, &b}); }, "bias");
  const Tensor xi = Tensor::from_ints({1, 4, 5, 5}, I64(100, 1));
  expect_unsupported([&] { infer1(make_node(OpType::kConv, 2), {&xi, &w}); }, "float32");
  expect_bad_model([&] { infer1(make_node(OpType::kConv, 1), {&x}); }, "inputs");
}

TEST(OpsNnConv, WrongOutputBufferIsRefused) {
  std::mt19937 rng(8);
  const Tensor x = random_tensor(rng, {1, 1, 5, 5});
  const Tensor w = random_tensor(rng, {1, 1, 3, 3});
  Tensor y(DType::kFloat32, {1, 1, 5, 5});  // should be 3x3
  std::vector<const Tensor*> in = {&x, &w};
  std::vector<Tensor*> out = {&y};
  try {
    run_node(make_node(OpType::kConv, 2), in, out, ThreadPool::global());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInternal);
  }
}

// ---- MaxPool / AveragePool ----------------------------------------------------

struct PoolCase {
  std::int64_t n, c, h, w, kh, kw;
  std::int64_t sh = 1, sw = 1, dh = 1, dw = 1;
  std::int64_t pt = 0, pl = 0, pb = 0, pr = 0;
  bool ceil = false;
  bool count_include_pad = false;
  static std::int64_t out(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t d,
                          std::int64_t p0, std::int64_t p1, bool ceil) {
    const std::int64_t room = in + p0 + p1 - ((k - 1) * d + 1);
    std::int64_t o = (ceil ? (room + s - 1) / s : room / s) + 1;
    if (ceil && (o - 1) * s >= in + p0) --o;  // window would start in the right padding
    return o;
  }
  std::int64_t oh() const { return out(h, kh, sh, dh, pt, pb, ceil); }
  std::int64_t ow() const { return out(w, kw, sw, dw, pl, pr, ceil); }
};

F32 ref_pool(const PoolCase& k, bool is_max, const Tensor& xt) {
  const auto x = xt.f32();
  const std::int64_t oh = k.oh(), ow = k.ow();
  F32 y;
  for (std::int64_t p = 0; p < k.n * k.c; ++p)
    for (std::int64_t oy = 0; oy < oh; ++oy)
      for (std::int64_t ox = 0; ox < ow; ++ox) {
        double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
        std::int64_t valid = 0, padded = 0;
        for (std::int64_t i = 0; i < k.kh; ++i)
          for (std::int64_t j = 0; j < k.kw; ++j) {
            const std::int64_t iy = oy * k.sh - k.pt + i * k.dh;
            const std::int64_t ix = ox * k.sw - k.pl + j * k.dw;
            if (iy < k.h + k.pb && ix < k.w + k.pr) ++padded;  // inside the padded input
            if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
            ++valid;
            const double v = x[static_cast<std::size_t>((p * k.h + iy) * k.w + ix)];
            acc = is_max ? std::max(acc, v) : acc + v;
          }
        if (!is_max) acc /= double(k.count_include_pad ? padded : valid);
        y.push_back(float(acc));
      }
  return y;
}

Node pool_node(OpType op, const PoolCase& k) {
  Node node = make_node(op, 1);
  set_ints(node, "kernel_shape", {k.kh, k.kw});
  set_ints(node, "strides", {k.sh, k.sw});
  set_ints(node, "pads", {k.pt, k.pl, k.pb, k.pr});
  if (k.dh != 1 || k.dw != 1) set_ints(node, "dilations", {k.dh, k.dw});
  set_int(node, "ceil_mode", k.ceil ? 1 : 0);
  if (op == OpType::kAveragePool) set_int(node, "count_include_pad", k.count_include_pad);
  return node;
}

void check_pool(const PoolCase& k, std::mt19937& rng, ThreadPool& pool) {
  SCOPED_TRACE(::testing::Message()
               << "n=" << k.n << " c=" << k.c << " h=" << k.h << " w=" << k.w << " k=" << k.kh
               << "x" << k.kw << " s=" << k.sh << "," << k.sw << " d=" << k.dh << "," << k.dw
               << " pads=" << k.pt << "," << k.pl << "," << k.pb << "," << k.pr
               << " ceil=" << k.ceil << " cip=" << k.count_include_pad);
  const Tensor x = random_tensor(rng, {k.n, k.c, k.h, k.w});
  for (OpType op : {OpType::kMaxPool, OpType::kAveragePool}) {
    const std::vector<Tensor> out = run(pool_node(op, k), {&x}, pool);
    ASSERT_EQ(out[0].shape(), (Shape{k.n, k.c, k.oh(), k.ow()}));
    expect_close(out[0], ref_pool(k, op == OpType::kMaxPool, x), 1e-5f);
  }
}

TEST(OpsNnPool, OnnxCeilModeExamples) {
  // ONNX's maxpool_2d_ceil / averagepool_2d_ceil node tests: 4x4 input 1..16,
  // kernel 3, stride 2, ceil_mode.
  F32 v(16);
  for (int i = 0; i < 16; ++i) v[static_cast<std::size_t>(i)] = float(i + 1);
  const Tensor x = Tensor::from_floats({1, 1, 4, 4}, v);
  PoolCase k{1, 1, 4, 4, 3, 3, 2, 2};
  k.ceil = true;
  expect_close(run(pool_node(OpType::kMaxPool, k), {&x})[0], {11, 12, 15, 16});
  expect_close(run(pool_node(OpType::kAveragePool, k), {&x})[0], {6, 7.5, 12, 13.5});
  // With pads 1 and count_include_pad, the last window reaches past the
  // padded edge; that part is not counted: corner = 16 / (2*2).
  k.pt = k.pl = k.pb = k.pr = 1;
  k.count_include_pad = true;
  const std::vector<Tensor> out = run(pool_node(OpType::kAveragePool, k), {&x});
  ASSERT_EQ(out[0].shape(), (Shape{1, 1, 3, 3}));
  EXPECT_FLOAT_EQ(out[0].f32()[8], 4.0f);
  EXPECT_FLOAT_EQ(out[0].f32()[0], (1 + 2 + 5 + 6) / 9.0f);
  // A ceil_mode window that would start inside the right padding is dropped:
  // input 5, kernel 2, stride 2, pads 1: ceil((5+2-2)/2)+1 = 4, but the 4th
  // window would start at 5 (in the padding), so 3.
  const Tensor x5 = Tensor::from_floats({1, 1, 5, 5}, F32(25, 1.0f));
  PoolCase k5{1, 1, 5, 5, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, true};
  EXPECT_EQ(run(pool_node(OpType::kMaxPool, k5), {&x5})[0].shape(), (Shape{1, 1, 3, 3}));
}

TEST(OpsNnPool, FixedCases) {
  std::mt19937 rng(11);
  ThreadPool pool(2);
  check_pool({1, 16, 24, 24, 2, 2, 2, 2}, rng, pool);  // LeNet
  check_pool({2, 3, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, rng, pool);
  check_pool({2, 3, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, true}, rng, pool);
  check_pool({2, 3, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true, true}, rng, pool);
  check_pool({1, 2, 8, 8, 3, 2, 3, 1, 1, 1, 2, 0, 1, 1, true, false}, rng, pool);
  check_pool({1, 2, 9, 8, 2, 3, 1, 2, 2, 2, 1, 0, 0, 2, true, true}, rng, pool);  // dilated
  check_pool({1, 1, 1, 1, 1, 1}, rng, pool);
  check_pool({8, 32, 40, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, rng, pool);  // parallel
}

TEST(OpsNnPool, RandomCases) {
  std::mt19937 rng(12);
  ThreadPool pool(2);
  std::uniform_int_distribution<std::int64_t> d(0, 1000);
  int checked = 0;
  while (checked < 80) {
    PoolCase k{};
    k.n = 1 + d(rng) % 2;
    k.c = 1 + d(rng) % 3;
    k.h = 1 + d(rng) % 10;
    k.w = 1 + d(rng) % 10;
    k.kh = 1 + d(rng) % 4;
    k.kw = 1 + d(rng) % 4;
    k.sh = 1 + d(rng) % 3;
    k.sw = 1 + d(rng) % 3;
    k.dh = 1 + d(rng) % 2;
    k.dw = 1 + d(rng) % 2;
    k.pt = d(rng) % k.kh;
    k.pl = d(rng) % k.kw;
    k.pb = d(rng) % k.kh;
    k.pr = d(rng) % k.kw;
    k.ceil = d(rng) % 2 == 0;
    k.count_include_pad = d(rng) % 2 == 0;
    if (k.h + k.pt + k.pb < (k.kh - 1) * k.dh + 1) continue;
    if (k.w + k.pl + k.pr < (k.kw - 1) * k.dw + 1) continue;
    if (k.dh > 1 || k.dw > 1) {
      // Keep windows that see at least one input element (the reference
      // maximum of nothing is -inf, the kernel's is float lowest).
      bool empty = false;
      for (std::int64_t oy = 0; oy < k.oh(); ++oy) {
        bool any = false;
        for (std::int64_t i = 0; i < k.kh; ++i) {
          const std::int64_t iy = oy * k.sh - k.pt + i * k.dh;
          any = any || (iy >= 0 && iy < k.h);
        }
        empty = empty || !any;
      }
      for (std::int64_t ox = 0; ox < k.ow(); ++ox) {
        bool any = false;
        for (std::int64_t j = 0; j < k.kw; ++j) {
          const std::int64_t ix = ox * k.sw - k.pl + j * k.dw;
          any = any || (ix >= 0 && ix < k.w);
        }
        empty = empty || !any;
      }
      if (empty) continue;
    }
    check_pool(k, rng, pool);
    ++checked;
  }
}

TEST(OpsNnPool, AutoPad) {
  std::mt19937 rng(13);
  const Tensor x = random_tensor(rng, {1, 2, 6, 7});
  struct Mode {
    const char* name;
    PoolCase k;
  } modes[] = {
      {"SAME_UPPER", {1, 2, 6, 7, 3, 3, 2, 2, 1, 1, 0, 1, 1, 1}},
      {"SAME_LOWER", {1, 2, 6, 7, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1}},
      {"VALID", {1, 2, 6, 7, 3, 3, 2, 2}},
  };
  for (const Mode& mode : modes) {
    SCOPED_TRACE(mode.name);
    for (OpType op : {OpType::kMaxPool, OpType::kAveragePool}) {
      Node node = make_node(op, 1);
      set_string(node, "auto_pad", mode.name);
      set_ints(node, "kernel_shape", {3, 3});
      set_ints(node, "strides", {2, 2});
      const std::vector<Tensor> out = run(node, {&x});
      ASSERT_EQ(out[0].shape(), (Shape{1, 2, mode.k.oh(), mode.k.ow()}));
      expect_close(out[0], ref_pool(mode.k, op == OpType::kMaxPool, x), 1e-5f);
    }
  }
}

TEST(OpsNnPool, BadAttributes) {
  std::mt19937 rng(14);
  const Tensor x = random_tensor(rng, {1, 2, 5, 5});
  auto pool = [&](OpType op, auto&& set) {
    Node node = make_node(op, 1);
    set_ints(node, "kernel_shape", {2, 2});
    set(node);
    return node;
  };
  for (OpType op : {OpType::kMaxPool, OpType::kAveragePool}) {
    SCOPED_TRACE(std::string(op_name(op)));
    expect_bad_model(
        [&] {
          infer1(pool(op, [](Node& n) { set_ints(n, "strides", {1, 0}); }), {&x});
        },
        "must be positive");
    expect_bad_model(
        [&] {
          infer1(pool(op, [](Node& n) { set_ints(n, "pads", {-1, 0, 0, 0}); }), {&x});
        },
        "non-negative");
    expect_unsupported(
        [&] {
          infer1(pool(op, [](Node& n) { set_ints(n, "pads", {2, 0, 0, 0}); }), {&x});
        },
        "smaller than the kernel");
    expect_bad_model(
        [&] {
          infer1(pool(op, [](Node& n) { set_ints(n, "kernel_shape", {6, 2}); }), {&x});
        },
        "exceeds the padded input");
    expect_bad_model(
        [&] {
          infer1(pool(op, [](Node& n) { set_ints(n, "kernel_shape", {0, 2}); }), {&x});
        },
        "kernel size");
    expect_bad_model(
        [&] { infer1(pool(op, [](Node& n) { set_ints(n, "kernel_shape", {2}); }), {&x}); },
        "kernel_shape");
    expect_bad_model([&] { infer1(pool(op, [](Node& n) { set_int(n, "ceil_mode", 2); }), {&x}); },
                     "ceil_mode");
    expect_bad_model([&] { infer1(make_node(op, 1), {&x}); }, "kernel_shape");
    const Tensor x3 = random_tensor(rng, {1, 2, 5});
    expect_unsupported([&] { infer1(pool(op, [](Node&) {}), {&x3}); }, "only 2-D");
  }
  Node two = pool(OpType::kMaxPool, [](Node&) {});
  two.outputs.push_back(2);
  expect_unsupported([&] { infer1(two, {&x}); }, "MaxPool Indices output not supported");
}

TEST(OpsNnPool, GlobalAveragePool) {
  std::mt19937 rng(15);
  for (const Shape& s : {Shape{2, 3, 4, 5}, Shape{1, 2, 7}, Shape{2, 2, 2, 3, 2}}) {
    const Tensor x = random_tensor(rng, s);
    const std::vector<Tensor> out = run(make_node(OpType::kGlobalAveragePool, 1), {&x});
    Shape want(s.size(), 1);
    want[0] = s[0];
    want[1] = s[1];
    ASSERT_EQ(out[0].shape(), want);
    const std::int64_t size = numel(s) / (s[0] * s[1]);
    F32 ref;
    for (std::int64_t p = 0; p < s[0] * s[1]; ++p) {
      double acc = 0;
      for (std::int64_t i = 0; i < size; ++i)
        acc += x.f32()[static_cast<std::size_t>(p * size + i)];
      ref.push_back(float(acc / double(size)));
    }
    expect_close(out[0], ref, 1e-5f);
  }
  const Tensor x2 = random_tensor(rng, {2, 3});
  expect_bad_model([&] { infer1(make_node(OpType::kGlobalAveragePool, 1), {&x2}); }, "rank");
}

// ---- Gemm / MatMul -------------------------------------------------------------

TEST(OpsNnGemm, AllTransposesAndCBroadcasts) {
  std::mt19937 rng(21);
  const std::int64_t m = 5, k = 7, n = 6;
  const std::vector<Shape> c_shapes = {{}, {n}, {1}, {m, 1}, {1, n}, {m, n}, {1, 1}};
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int ci = -1; ci < int(c_shapes.size()); ++ci) {
        SCOPED_TRACE(::testing::Message() << "transA=" << ta << " transB=" << tb << " c=" << ci);
        const Tensor a = random_tensor(rng, ta ? Shape{k, m} : Shape{m, k});
        const Tensor b = random_tensor(rng, tb ? Shape{n, k} : Shape{k, n});
        const Tensor c =
            random_tensor(rng, ci < 0 ? Shape{1} : c_shapes[static_cast<std::size_t>(ci)]);
        Node node = make_node(OpType::kGemm, ci < 0 ? 2 : 3);
        set_int(node, "transA", ta);
        set_int(node, "transB", tb);
        set_float(node, "alpha", 0.75f);
        set_float(node, "beta", -1.5f);
        std::vector<const Tensor*> in = {&a, &b};
        if (ci >= 0) in.push_back(&c);
        const std::vector<Tensor> out = run(node, in);
        ASSERT_EQ(out[0].shape(), (Shape{m, n}));
        F32 ref;
        const Shape& cs = c.shape();
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j) {
            double acc = 0;
            for (std::int64_t l = 0; l < k; ++l) {
              const float av = a.f32()[static_cast<std::size_t>(ta ? l * m + i : i * k + l)];
              const float bv = b.f32()[static_cast<std::size_t>(tb ? j * k + l : l * n + j)];
              acc += double(av) * bv;
            }
            acc *= 0.75;
            if (ci >= 0) {
              const std::int64_t ri = cs.size() == 2 && cs[0] != 1 ? i : 0;
              const std::int64_t rj = !cs.empty() && cs.back() != 1 ? j : 0;
              const std::int64_t cols = cs.empty() ? 1 : cs.back();
              acc += -1.5 * c.f32()[static_cast<std::size_t>(ri * cols + rj)];
            }
            ref.push_back(float(acc));
          }
        expect_close(out[0], ref);
      }
}

F32 ref_matmul(const F32& a, const F32& b, std::int64_t m, std::int64_t k, std::int64_t n) {
  F32 y(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (std::int64_t l = 0; l < k; ++l) {
        acc +=
            double(a[static_cast<std::size_t>(i * k + l)]) * b[static_cast<std::size_t>(l * n + j)];
      }
      y[static_cast<std::size_t>(i * n + j)] = float(acc);
    }
  return y;
}

TEST(OpsNnGemm, LargeRunsInParallel) {
  std::mt19937 rng(22);
  ThreadPool pool(2);
  // Tall (row split) and wide (column split, batch-1 FC) products.
  for (const auto& [m, k, n] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{256, 256, 64},
                                {1, 1024, 1024},
                                {3, 512, 777}}) {
    for (int tb = 0; tb < 2; ++tb) {
      const Tensor a = random_tensor(rng, {m, k});
      const Tensor b = random_tensor(rng, tb ? Shape{n, k} : Shape{k, n});
      const Tensor c = random_tensor(rng, {n});
      Node node = make_node(OpType::kGemm, 3);
      set_int(node, "transB", tb);
      const std::vector<Tensor> out = run(node, {&a, &b, &c}, pool);
      F32 bb(static_cast<std::size_t>(k * n));
      for (std::int64_t l = 0; l < k; ++l)
        for (std::int64_t j = 0; j < n; ++j)
          bb[static_cast<std::size_t>(l * n + j)] =
              b.f32()[static_cast<std::size_t>(tb ? j * k + l : l * n + j)];
      F32 ref = ref_matmul(a.to_float_vector(), bb, m, k, n);
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j)
          ref[static_cast<std::size_t>(i * n + j)] += c.f32()[static_cast<std::size_t>(j)];
      expect_close(out[0], ref, 2e-4f);
    }
  }
}

TEST(OpsNnGemm, Errors) {
  std::mt19937 rng(23);
  const Tensor a = random_tensor(rng, {3, 4});
  const Tensor b = random_tensor(rng, {5, 6});
  expect_bad_model([&] { infer1(make_node(OpType::kGemm, 2), {&a, &b}); }, "inner dimensions");
  const Tensor b2 = random_tensor(rng, {4, 6});
  const Tensor c = random_tensor(rng, {2, 6});
  expect_bad_model([&] { infer1(make_node(OpType::kGemm, 3), {&a, &b2, &c}); }, "broadcast");
  const Tensor a3 = random_tensor(rng, {1, 3, 4});
  expect_bad_model([&] { infer1(make_node(OpType::kGemm, 2), {&a3, &b2}); }, "2-D");
}

void check_matmul(const Shape& as, const Shape& bs, const Shape& want, std::mt19937& rng,
                  ThreadPool& pool) {
  SCOPED_TRACE(shape_to_string(as) + " x " + shape_to_string(bs));
  const Tensor a = random_tensor(rng, as);
  const Tensor b = random_tensor(rng, bs);
  const std::vector<Tensor> out = run(make_node(OpType::kMatMul, 2), {&a, &b}, pool);
  ASSERT_EQ(out[0].shape(), want);
  // Reference: promote to >= 2-D, broadcast batch dims by index arithmetic.
  Shape a2 = as, b2 = bs;
  if (a2.size() == 1) a2.insert(a2.begin(), 1);
  if (b2.size() == 1) b2.push_back(1);
  const std::int64_t m = a2[a2.size() - 2], k = a2.back(), n = b2.back();
  const std::size_t nb = std::max(a2.size(), b2.size()) - 2;
  Shape batch(nb, 1);
  for (std::size_t i = 0; i < nb; ++i) {
    const std::int64_t da = i + 2 < a2.size() ? a2[a2.size() - 3 - i] : 1;
    const std::int64_t db = i + 2 < b2.size() ? b2[b2.size() - 3 - i] : 1;
    batch[nb - 1 - i] = da == 1 ? db : da;
  }
  F32 ref;
  const std::int64_t count = numel(batch);
  const F32 av = a.to_float_vector(), bv = b.to_float_vector();
  for (std::int64_t t = 0; t < count; ++t) {
    std::int64_t ao = 0, bo = 0, rest = t, sa = m * k, sb = k * n;
    for (std::size_t i = 0; i < nb; ++i) {
      const std::int64_t idx = rest % batch[nb - 1 - i];
      rest /= batch[nb - 1 - i];
      const std::int64_t da = i + 2 < a2.size() ? a2[a2.size() - 3 - i] : 1;
      const std::int64_t db = i + 2 < b2.size() ? b2[b2.size() - 3 - i] : 1;
      if (da != 1) ao += idx * sa;
      if (db != 1) bo += idx * sb;
      sa *= da;
      sb *= db;
    }
    const F32 part = ref_matmul(F32(av.begin() + ao, av.begin() + ao + m * k),
                                F32(bv.begin() + bo, bv.begin() + bo + k * n), m, k, n);
    ref.insert(ref.end(), part.begin(), part.end());
  }
  expect_close(out[0], ref, 2e-4f);
}

TEST(OpsNnMatMul, BroadcastingAndVectors) {
  std::mt19937 rng(24);
  ThreadPool pool(2);
  check_matmul({4, 5}, {5, 6}, {4, 6}, rng, pool);
  check_matmul({2, 3, 4, 5}, {5, 6}, {2, 3, 4, 6}, rng, pool);
  check_matmul({5, 6}, {2, 6, 3}, {2, 5, 3}, rng, pool);
  check_matmul({3, 1, 4, 5}, {2, 5, 6}, {3, 2, 4, 6}, rng, pool);
  check_matmul({1, 4, 5}, {3, 5, 2}, {3, 4, 2}, rng, pool);
  check_matmul({2, 1, 3, 4}, {1, 5, 4, 2}, {2, 5, 3, 2}, rng, pool);
  check_matmul({5}, {5, 6}, {6}, rng, pool);
  check_matmul({5}, {3, 5, 6}, {3, 6}, rng, pool);
  check_matmul({2, 4, 5}, {5}, {2, 4}, rng, pool);
  check_matmul({5}, {5}, {}, rng, pool);
  check_matmul({3, 0}, {0, 4}, {3, 4}, rng, pool);  // empty inner dim: zeros
  check_matmul({0, 4, 5}, {5, 2}, {0, 4, 2}, rng, pool);
  // Large enough for the parallel paths.
  check_matmul({8, 64, 128}, {8, 128, 64}, {8, 64, 64}, rng, pool);
  check_matmul({512, 256}, {256, 64}, {512, 64}, rng, pool);
  check_matmul({1, 600, 300}, {1, 300, 200}, {1, 600, 200}, rng, pool);
}

TEST(OpsNnMatMul, Errors) {
  std::mt19937 rng(25);
  const Tensor a = random_tensor(rng, {2, 3, 4});
  const Tensor b = random_tensor(rng, {3, 5, 6});
  expect_bad_model([&] { infer1(make_node(OpType::kMatMul, 2), {&a, &b}); }, "inner dimensions");
  const Tensor b2 = random_tensor(rng, {3, 4, 6});
  expect_bad_model([&] { infer1(make_node(OpType::kMatMul, 2), {&a, &b2}); }, "broadcast");
  const Tensor s = Tensor::scalar(1.0f);
  expect_bad_model([&] { infer1(make_node(OpType::kMatMul, 2), {&s, &b2}); }, "rank");
}

// ---- normalisations -------------------------------------------------------------

TEST(OpsNnNorm, BatchNormalization) {
  std::mt19937 rng(31);
  for (const Shape& s : {Shape{2, 3, 4, 5}, Shape{4, 3}, Shape{2, 3, 7}}) {
    const Tensor x = random_tensor(rng, s);
    const Tensor scale = random_tensor(rng, {3});
    const Tensor bias = random_tensor(rng, {3});
    const Tensor mean = random_tensor(rng, {3});
    const Tensor var = random_tensor(rng, {3}, 0.1f, 2.0f);
    Node node = make_node(OpType::kBatchNormalization, 5);
    set_float(node, "epsilon", 1e-3f);
    const std::vector<Tensor> out = run(node, {&x, &scale, &bias, &mean, &var});
    ASSERT_EQ(out[0].shape(), s);
    const std::int64_t size = numel(s) / (s[0] * 3);
    F32 ref;
    for (std::int64_t i = 0; i < numel(s); ++i) {
      const std::size_t c = static_cast<std::size_t>((i / size) % 3);
      const double v = x.f32()[static_cast<std::size_t>(i)];
      ref.push_back(
          float((v - mean.f32()[c]) / std::sqrt(double(var.f32()[c]) + 1e-3) * scale.f32()[c] +
                bias.f32()[c]));
    }
    expect_close(out[0], ref, 1e-5f);
  }
  const Tensor x = random_tensor(rng, {2, 3, 4});
  const Tensor p = random_tensor(rng, {3});
  const Tensor p4 = random_tensor(rng, {4});
  Node training = make_node(OpType::kBatchNormalization, 5);
  set_int(training, "training_mode", 1);
  expect_unsupported([&] { infer1(training, {&x, &p, &p, &p, &p}); }, "training_mode");
  expect_bad_model(
      [&] {
        infer1(make_node(OpType::kBatchNormalization, 5), {&x, &p, &p4, &p, &p});
      },
      "B");
  expect_unsupported(
      [&] {
        infer1(make_node(OpType::kBatchNormalization, 5, 3), {&x, &p, &p, &p, &p});
      },
      "only output Y");
}

void check_layernorm(const Shape& s, std::int64_t axis, const Shape& scale_shape, bool with_bias,
                     std::mt19937& rng) {
  SCOPED_TRACE(shape_to_string(s) + " axis " + std::to_string(axis));
  const Tensor x = random_tensor(rng, s, -3.0f, 5.0f);
  const Tensor scale = random_tensor(rng, scale_shape);
  const Tensor bias = random_tensor(rng, scale_shape);
  Node node = make_node(OpType::kLayerNormalization, with_bias ? 3 : 2, 3, 17);
  set_int(node, "axis", axis);
  set_float(node, "epsilon", 1e-4f);
  std::vector<const Tensor*> in = {&x, &scale};
  if (with_bias) in.push_back(&bias);
  const std::vector<Tensor> out = run(node, in);
  ASSERT_EQ(out.size(), 3u);
  const std::size_t ax = static_cast<std::size_t>(axis < 0 ? axis + std::int64_t(s.size()) : axis);
  Shape stat = s;
  for (std::size_t d = ax; d < s.size(); ++d) stat[d] = 1;
  ASSERT_EQ(out[0].shape(), s);
  ASSERT_EQ(out[1].shape(), stat);
  ASSERT_EQ(out[2].shape(), stat);
  std::int64_t inner = 1;
  for (std::size_t d = ax; d < s.size(); ++d) inner *= s[d];
  const std::int64_t outer = numel(s) / inner;
  // Scale/B broadcast right-aligned within the normalised dims.
  const std::int64_t pn = numel(scale_shape);
  F32 y, mean_ref, inv_ref;
  for (std::int64_t r = 0; r < outer; ++r) {
    double sum = 0, sq = 0;
    for (std::int64_t i = 0; i < inner; ++i)
      sum += x.f32()[static_cast<std::size_t>(r * inner + i)];
    const double mean = sum / double(inner);
    for (std::int64_t i = 0; i < inner; ++i) {
      const double d = x.f32()[static_cast<std::size_t>(r * inner + i)] - mean;
      sq += d * d;
    }
    const double inv = 1.0 / std::sqrt(sq / double(inner) + 1e-4);
    mean_ref.push_back(float(mean));
    inv_ref.push_back(float(inv));
    for (std::int64_t i = 0; i < inner; ++i) {
      const std::size_t pi = static_cast<std::size_t>(i % pn);  // trailing broadcast only
      double v = (x.f32()[static_cast<std::size_t>(r * inner + i)] - mean) * inv * scale.f32()[pi];
      if (with_bias) v += bias.f32()[pi];
      y.push_back(float(v));
    }
  }
  expect_close(out[0], y, 1e-5f);
  expect_close(out[1], mean_ref, 1e-5f);
  expect_close(out[2], inv_ref, 1e-5f);
}

TEST(OpsNnNorm, LayerNormalizationThreeOutputs) {
  std::mt19937 rng(32);
  check_layernorm({4, 768}, -1, {768}, true, rng);
  check_layernorm({2, 3, 5}, 1, {3, 5}, true, rng);
  check_layernorm({2, 3, 5}, 1, {5}, false, rng);  // Scale broadcast over dim 1
  check_layernorm({2, 3, 5}, 0, {2, 3, 5}, true, rng);
  check_layernorm({3, 1, 4}, -2, {1, 4}, true, rng);
  check_layernorm({64, 256}, -1, {256}, true, rng);
  // Only Y requested.
  const Tensor x = random_tensor(rng, {2, 4});
  const Tensor s = random_tensor(rng, {4});
  EXPECT_EQ(run(make_node(OpType::kLayerNormalization, 2, 1, 17), {&x, &s}).size(), 1u);
  // Scale over more than the normalised dims is refused.
  const Tensor s2 = random_tensor(rng, {2, 4});
  Node node = make_node(OpType::kLayerNormalization, 2, 1, 17);
  expect_bad_model([&] { infer1(node, {&x, &s2}); }, "Scale");
  set_int(node, "axis", 2);
  expect_bad_model([&] { infer1(node, {&x, &s}); }, "axis");
}

// ---- Softmax -----------------------------------------------------------------------

F32 ref_softmax(const F32& x, std::int64_t outer, std::int64_t len, std::int64_t inner) {
  F32 y(x.size());
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t i = 0; i < inner; ++i) {
      auto at = [&](std::int64_t l) { return static_cast<std::size_t>((o * len + l) * inner + i); };
      double mx = -1e300, sum = 0;
      for (std::int64_t l = 0; l < len; ++l) mx = std::max(mx, double(x[at(l)]));
      for (std::int64_t l = 0; l < len; ++l) sum += std::exp(double(x[at(l)]) - mx);
      for (std::int64_t l = 0; l < len; ++l)
        y[at(l)] = float(std::exp(double(x[at(l)]) - mx) / sum);
    }
  return y;
}

TEST(OpsNnSoftmax, Opset11FlattensOpset13DoesNot) {
  std::mt19937 rng(41);
  const Tensor x = random_tensor(rng, {2, 3, 4}, -20.0f, 20.0f);
  const F32 xv = x.to_float_vector();
  {
    Node node = make_node(OpType::kSoftmax, 1, 1, 11);  // default axis 1: rows of 12
    expect_close(run(node, {&x})[0], ref_softmax(xv, 2, 12, 1), 1e-5f);
    set_int(node, "axis", -1);
    expect_close(run(node, {&x})[0], ref_softmax(xv, 6, 4, 1), 1e-5f);
    set_int(node, "axis", 0);
    expect_close(run(node, {&x})[0], ref_softmax(xv, 1, 24, 1), 1e-5f);
  }
  {
    Node node = make_node(OpType::kSoftmax, 1, 1, 13);  // default axis -1
    expect_close(run(node, {&x})[0], ref_softmax(xv, 6, 4, 1), 1e-5f);
    set_int(node, "axis", 1);  // a strided axis
    expect_close(run(node, {&x})[0], ref_softmax(xv, 2, 3, 4), 1e-5f);
    set_int(node, "axis", 0);
    expect_close(run(node, {&x})[0], ref_softmax(xv, 1, 2, 12), 1e-5f);
    set_int(node, "axis", 3);
    expect_bad_model([&] { infer1(node, {&x}); }, "axis");
  }
  // Large inputs do not overflow exp.
  const Tensor big = Tensor::from_floats({1, 3}, {1000.0f, 1001.0f, 1002.0f});
  expect_close(run(make_node(OpType::kSoftmax, 1), {&big})[0],
               ref_softmax(big.to_float_vector(), 1, 3, 1), 1e-6f);
  ThreadPool pool(2);
  const Tensor many = random_tensor(rng, {512, 100});
  expect_close(run(make_node(OpType::kSoftmax, 1), {&many}, pool)[0],
               ref_softmax(many.to_float_vector(), 512, 100, 1), 1e-5f);
}

// ---- ReduceMean ----------------------------------------------------------------------

F32 ref_reduce_mean(const Tensor& x, const std::vector<bool>& red) {
  const Shape& s = x.shape();
  Shape out_dims;
  for (std::size_t d = 0; d < s.size(); ++d) out_dims.push_back(red[d] ? 1 : s[d]);
  std::vector<double> acc(static_cast<std::size_t>(numel(out_dims)), 0.0);
  std::int64_t count = 1;
  for (std::size_t d = 0; d < s.size(); ++d)
    if (red[d]) count *= s[d];
  const std::vector<std::int64_t> st = strides_of(s), ost = strides_of(out_dims);
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    std::int64_t o = 0;
    for (std::size_t d = 0; d < s.size(); ++d) {
      const std::int64_t idx = (i / st[d]) % s[d];
      if (!red[d]) o += idx * ost[d];
    }
    acc[static_cast<std::size_t>(o)] += x.f32()[static_cast<std::size_t>(i)];
  }
  F32 y;
  for (double v : acc) y.push_back(float(v / double(count)));
  return y;
}

TEST(OpsNnReduceMean, AxesKeepdimsAndOpsets) {
  std::mt19937 rng(51);
  const Tensor x = random_tensor(rng, {2, 3, 4, 5});
  struct Case {
    I64 axes;
    std::vector<bool> red;
  } cases[] = {
      {{3}, {false, false, false, true}},     {{-1, -2}, {false, false, true, true}},
      {{0}, {true, false, false, false}},     {{0, 2}, {true, false, true, false}},
      {{1, 3}, {false, true, false, true}},   {{0, 1, 2, 3}, {true, true, true, true}},
      {{2, 0, 3}, {true, false, true, true}},
  };
  for (const Case& c : cases) {
    for (int keep = 0; keep < 2; ++keep) {
      SCOPED_TRACE(::testing::Message()
                   << "axes " << c.axes.size() << " first " << c.axes[0] << " keepdims " << keep);
      Shape want;
      for (std::size_t d = 0; d < 4; ++d) {
        if (!c.red[d])
          want.push_back(x.dim(d));
        else if (keep)
          want.push_back(1);
      }
      const F32 ref = ref_reduce_mean(x, c.red);
      // Opset 13: attribute.
      Node n13 = make_node(OpType::kReduceMean, 1, 1, 13);
      set_ints(n13, "axes", c.axes);
      set_int(n13, "keepdims", keep);
      const std::vector<Tensor> o13 = run(n13, {&x});
      ASSERT_EQ(o13[0].shape(), want);
      expect_close(o13[0], ref, 1e-5f);
      // Opset 18: constant input.
      const Tensor axes = Tensor::from_ints({std::int64_t(c.axes.size())}, c.axes);
      Node n18 = make_node(OpType::kReduceMean, 2, 1, 18);
      set_int(n18, "keepdims", keep);
      const std::vector<Tensor> o18 = run(n18, {&x, &axes});
      ASSERT_EQ(o18[0].shape(), want);
      expect_close(o18[0], ref, 1e-5f);
    }
  }
  // No axes: everything, or nothing with noop_with_empty_axes (opset 18).
  const F32 all = ref_reduce_mean(x, {true, true, true, true});
  const std::vector<Tensor> o = run(make_node(OpType::kReduceMean, 1), {&x});
  EXPECT_EQ(o[0].shape(), (Shape{1, 1, 1, 1}));
  expect_close(o[0], all, 1e-5f);
  Node noop = make_node(OpType::kReduceMean, 1, 1, 18);
  set_int(noop, "noop_with_empty_axes", 1);
  const std::vector<Tensor> on = run(noop, {&x});
  EXPECT_EQ(on[0].shape(), x.shape());
  expect_close(on[0], x.to_float_vector(), 0.0f);
  const Tensor empty_axes = Tensor::from_ints({0}, {});
  Node n18 = make_node(OpType::kReduceMean, 2, 1, 18);
  set_int(n18, "keepdims", 0);
  const std::vector<Tensor> oe = run(n18, {&x, &empty_axes});
  EXPECT_EQ(oe[0].shape(), Shape{});
  expect_close(oe[0], all, 1e-5f);
}

TEST(OpsNnReduceMean, Errors) {
  std::mt19937 rng(52);
  const Tensor x = random_tensor(rng, {2, 3});
  Node dup = make_node(OpType::kReduceMean, 1);
  set_ints(dup, "axes", {1, -1});
  expect_bad_model([&] { infer1(dup, {&x}); }, "twice");
  Node range = make_node(OpType::kReduceMean, 1);
  set_ints(range, "axes", {2});
  expect_bad_model([&] { infer1(range, {&x}); }, "out of range");
  // Opset 18 axes must be constant.
  const Tensor axes = Tensor::from_ints({1}, {0});
  std::vector<ValueInfo> infos = infos_of({&x, &axes});
  infos[1].constant = nullptr;
  expect_unsupported([&] { infer_node(make_node(OpType::kReduceMean, 2, 1, 18), infos); },
                     "constant");
  // Opset 13 takes no second input.
  expect_bad_model(
      [&] {
        infer1(make_node(OpType::kReduceMean, 2, 1, 13), {&x, &axes});
      },
      "inputs");
}

// The conv / Gemm / MatMul tests again on the narrower kernel variants (the
// machine may pick AVX-512 for the tests above).
class OpsNnSimdLevel : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { detail::set_nn_simd_cap_for_testing(GetParam()); }
  void TearDown() override { detail::set_nn_simd_cap_for_testing(2); }
};

TEST_P(OpsNnSimdLevel, ConvGemmMatMul) {
  std::mt19937 rng(61);
  ThreadPool pool(2);
  check_conv({1, 1, 28, 28, 16, 5, 5}, rng, pool);
  check_conv({2, 16, 12, 12, 16, 5, 5}, rng, pool);
  check_conv({2, 8, 7, 9, 12, 1, 1}, rng, pool);
  check_conv({1, 3, 9, 11, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, rng, pool);
  check_conv({2, 6, 10, 10, 6, 3, 3, 1, 2, 2, 1, 2, 1, 0, 2, 3, false}, rng, pool);
  check_conv({1, 5, 13, 17, 7, 3, 2, 1, 1, 2, 1, 1, 2, 0, 1}, rng, pool);
  check_conv({2, 3, 9, 13, 16, 3, 3, 1, 1, 1, 2, 1, 2, 0, 1}, rng, pool);
  check_conv({1, 4, 6, 6, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2}, rng, pool);
  check_matmul({2, 3, 4, 5}, {5, 6}, {2, 3, 4, 6}, rng, pool);
  check_matmul({3, 1, 4, 5}, {2, 5, 6}, {3, 2, 4, 6}, rng, pool);
  check_matmul({5}, {5, 6}, {6}, rng, pool);
  check_matmul({37, 29}, {29, 53}, {37, 53}, rng, pool);
  for (int tb = 0; tb < 2; ++tb) {
    for (const auto& [m, k, n] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{1, 33, 7},
                                  {5, 17, 9},
                                  {19, 40, 21},
                                  {64, 100, 35}}) {
      const Tensor a = random_tensor(rng, {m, k});
      const Tensor b = random_tensor(rng, tb ? Shape{n, k} : Shape{k, n});
      Node node = make_node(OpType::kGemm, 2);
      set_int(node, "transB", tb);
      F32 bb(static_cast<std::size_t>(k * n));
      for (std::int64_t l = 0; l < k; ++l)
        for (std::int64_t j = 0; j < n; ++j)
          bb[static_cast<std::size_t>(l * n + j)] =
              b.f32()[static_cast<std::size_t>(tb ? j * k + l : l * n + j)];
      expect_close(run(node, {&a, &b}, pool)[0], ref_matmul(a.to_float_vector(), bb, m, k, n));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, OpsNnSimdLevel, ::testing::Values(0, 1));

}  // namespace
}  // namespace blindfold::model
