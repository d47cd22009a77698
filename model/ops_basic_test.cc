// Tests of the element-wise and data-movement ops (ops_basic.cc) through the
// public entry points infer_node and run_node, against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/kernels.h"
#include "model/shape_inference.h"

namespace blindfold::model {
namespace {

using I64 = std::vector<std::int64_t>;
using F32 = std::vector<float>;

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kInt64Min = std::numeric_limits<std::int64_t>::min();

Node make_node(OpType op, std::size_t inputs, int opset = 13) {
  Node n;
  n.name = std::string("n");  // not = "n": a false GCC 12 -Wrestrict at -O3
  n.op = op;
  n.opset = opset;
  for (std::size_t i = 0; i < inputs; ++i) n.inputs.push_back(static_cast<int>(i));
  n.outputs = {static_cast<int>(inputs)};
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
void set_floats(Node& n, const std::string& name, F32 v) {
  n.attrs.set(name, Attribute::of_floats(std::move(v)));
}
void set_string(Node& n, const std::string& name, const std::string& v) {
  n.attrs.set(name, Attribute::of_string(v));
}
void set_tensor(Node& n, const std::string& name, Tensor v) {
  n.attrs.set(name, Attribute::of_tensor(std::move(v)));
}

Tensor floats(Shape s, F32 v) {
  return Tensor::from_floats(std::move(s), std::move(v));
}
Tensor ints(Shape s, I64 v) {
  return Tensor::from_ints(std::move(s), std::move(v));
}
Tensor ints1(I64 v) {
  const auto n = static_cast<std::int64_t>(v.size());
  return Tensor::from_ints({n}, std::move(v));
}
// 0, 1, 2, ... as float.
Tensor iota(Shape s) {
  Tensor t(DType::kFloat32, s);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.f32()[static_cast<std::size_t>(i)] = float(i);
  return t;
}

// Inputs to an op under test: a tensor, whether inference may treat it as a
// constant, or an omitted optional input.
struct In {
  In(Tensor t, bool c = true) : tensor(std::move(t)), constant(c) {}
  static In omitted() {
    In i(Tensor{});
    i.present = false;
    return i;
  }
  Tensor tensor;
  bool constant = true;
  bool present = true;
};

std::vector<ValueInfo> infos_of(const std::vector<In>& ins) {
  std::vector<ValueInfo> infos;
  for (const In& in : ins) {
    ValueInfo vi;
    vi.present = in.present;
    vi.dtype = in.tensor.dtype();
    vi.shape = in.tensor.shape();
    vi.constant = in.present && in.constant ? &in.tensor : nullptr;
    infos.push_back(vi);
  }
  return infos;
}

TypedShape infer(const Node& node, const std::vector<In>& ins) {
  return infer_node(node, infos_of(ins)).at(0);
}

// Infers, then runs on outputs pre-shaped the way the executor does.
Tensor eval(const Node& node, const std::vector<In>& ins, ThreadPool& pool) {
  const std::vector<TypedShape> shapes = infer_node(node, infos_of(ins));
  Tensor out(shapes.at(0).dtype, shapes.at(0).shape);
  std::vector<const Tensor*> in_ptrs;
  for (const In& in : ins) in_ptrs.push_back(in.present ? &in.tensor : nullptr);
  Tensor* out_ptr = &out;
  run_node(node, in_ptrs, std::span<Tensor* const>(&out_ptr, 1), pool);
  return out;
}

Tensor eval(const Node& node, const std::vector<In>& ins) {
  ThreadPool pool(1);
  return eval(node, ins, pool);
}

// Asserts `fn` throws blindfold::Error of `category` whose message contains
// every one of `parts`.
template <class F>
void expect_error(F&& fn, ErrorCategory category, std::vector<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one containing '" << parts.at(0) << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), category) << e.what();
    for (const std::string& p : parts) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "'" << e.what() << "' lacks '" << p << "'";
    }
  }
}

void expect_floats(const Tensor& t, const Shape& shape, const F32& want) {
  ASSERT_EQ(t.dtype(), DType::kFloat32);
  ASSERT_EQ(t.shape(), shape);
  const F32 got = t.to_float_vector();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-5f * std::max(1.0f, std::fabs(want[i]))) << "at " << i;
  }
}

void expect_ints(const Tensor& t, const Shape& shape, const I64& want) {
  ASSERT_EQ(t.dtype(), DType::kInt64);
  ASSERT_EQ(t.shape(), shape);
  EXPECT_EQ(t.to_int_vector(), want);
}

// ---- broadcasting binary ops ------------------------------------------------

TEST(OpsBasicBinary, SameShape) {
  const Tensor a = floats({2, 2}, {1, 2, 3, 4}), b = floats({2, 2}, {10, 20, 30, 40});
  expect_floats(eval(make_node(OpType::kAdd, 2), {a, b}), {2, 2}, {11, 22, 33, 44});
  expect_floats(eval(make_node(OpType::kSub, 2), {a, b}), {2, 2}, {-9, -18, -27, -36});
  expect_floats(eval(make_node(OpType::kMul, 2), {a, b}), {2, 2}, {10, 40, 90, 160});
  expect_floats(eval(make_node(OpType::kDiv, 2), {b, a}), {2, 2}, {10, 10, 10, 10});
  expect_floats(eval(make_node(OpType::kPow, 2), {a, floats({2, 2}, {2, 3, 0.5f, 0})}), {2, 2},
                {1, 8, std::sqrt(3.0f), 1});
}

TEST(OpsBasicBinary, ScalarBothSides) {
  const Tensor a = floats({3}, {1, 2, 4});
  expect_floats(eval(make_node(OpType::kSub, 2), {a, Tensor::scalar(1)}), {3}, {0, 1, 3});
  expect_floats(eval(make_node(OpType::kDiv, 2), {Tensor::scalar(8), a}), {3}, {8, 4, 2});
  expect_floats(eval(make_node(OpType::kPow, 2), {a, Tensor::scalar(2)}), {3}, {1, 4, 16});
  expect_floats(eval(make_node(OpType::kMul, 2), {Tensor::scalar(3), Tensor::scalar(4)}), {}, {12});
}

TEST(OpsBasicBinary, RowBiasOverBatch) {
  const Tensor x = iota({2, 3}), bias = floats({3}, {100, 200, 300});
  expect_floats(eval(make_node(OpType::kAdd, 2), {x, bias}), {2, 3},
                {100, 201, 302, 103, 204, 305});
}

TEST(OpsBasicBinary, ChannelBiasOverNchw) {
  const Tensor x = iota({2, 2, 1, 2}), bias = floats({1, 2, 1, 1}, {10, 20});
  expect_floats(eval(make_node(OpType::kAdd, 2), {x, bias}), {2, 2, 1, 2},
                {10, 11, 22, 23, 14, 15, 26, 27});
}

TEST(OpsBasicBinary, BroadcastsBothInputs) {
  const Tensor col = floats({3, 1}, {1, 2, 3}), row = floats({1, 4}, {10, 20, 30, 40});
  expect_floats(eval(make_node(OpType::kMul, 2), {col, row}), {3, 4},
                {10, 20, 30, 40, 20, 40, 60, 80, 30, 60, 90, 120});
  // Rank extension on the left: [2] against [3, 1] gives [3, 2].
  expect_floats(eval(make_node(OpType::kSub, 2), {floats({2}, {5, 6}), col}), {3, 2},
                {4, 5, 3, 4, 2, 3});
}

TEST(OpsBasicBinary, ZeroSizedBroadcast) {
  const TypedShape t = infer(make_node(OpType::kAdd, 2),
                             {Tensor(DType::kFloat32, {0, 3}), floats({1, 3}, {1, 2, 3})});
  EXPECT_EQ(t.shape, (Shape{0, 3}));
  const Tensor out = eval(make_node(OpType::kAdd, 2),
                          {Tensor(DType::kFloat32, {0, 3}), floats({1, 3}, {1, 2, 3})});
  EXPECT_EQ(out.numel(), 0);
}

TEST(OpsBasicBinary, IncompatibleShapesThrow) {
  expect_error(
      [] {
        infer(make_node(OpType::kAdd, 2), {iota({2, 3}), iota({2})});
      },
      ErrorCategory::kBadModel, {"node 'n' (Add)", "cannot broadcast", "[2, 3]"});
}

TEST(OpsBasicBinary, Int64) {
  const Tensor a = ints({4}, {7, -7, 7, -7}), b = ints({4}, {2, 2, -2, -2});
  // Integer division truncates toward zero, as in C and ONNX.
  expect_ints(eval(make_node(OpType::kDiv, 2), {a, b}), {4}, {3, -3, -3, 3});
  expect_ints(eval(make_node(OpType::kAdd, 2), {a, ints({}, {1})}), {4}, {8, -6, 8, -6});
  expect_ints(eval(make_node(OpType::kMul, 2), {a, b}), {4}, {14, -14, -14, 14});
  expect_ints(eval(make_node(OpType::kSub, 2), {a, b}), {4}, {5, -9, 9, -5});
  // Overflow wraps instead of being undefined.
  expect_ints(eval(make_node(OpType::kDiv, 2), {ints({1}, {kInt64Min}), ints({1}, {-1})}), {1},
              {kInt64Min});
  expect_ints(eval(make_node(OpType::kAdd, 2), {ints({1}, {kInt64Max}), ints({1}, {1})}), {1},
              {kInt64Min});
}

TEST(OpsBasicBinary, IntegerDivisionByZeroIsBadInput) {
  expect_error(
      [] {
        eval(make_node(OpType::kDiv, 2), {ints({2}, {1, 2}), ints({2}, {1, 0})});
      },
      ErrorCategory::kBadInput, {"node 'n' (Div)", "division by zero"});
}

TEST(OpsBasicBinary, DtypeRules) {
  expect_error(
      [] {
        infer(make_node(OpType::kAdd, 2), {iota({2}), ints({2}, {1, 2})});
      },
      ErrorCategory::kBadModel, {"node 'n' (Add)", "int64"});
  expect_error(
      [] {
        infer(make_node(OpType::kPow, 2), {ints({1}, {2}), ints({1}, {2})});
      },
      ErrorCategory::kUnsupported, {"node 'n' (Pow)"});
  // A float base with an int64 exponent is valid ONNX (opset 12+).
  expect_floats(eval(make_node(OpType::kPow, 2), {floats({2}, {2, 3}), ints({2}, {3, 2})}), {2},
                {8, 9});
}

// Naive reference: index arithmetic per element.
F32 reference_add(const Tensor& a, const Tensor& b, const Shape& out) {
  const std::size_t r = out.size();
  const auto sa = strides_of(a.shape()), sb = strides_of(b.shape()), so = strides_of(out);
  F32 res(static_cast<std::size_t>(checked_numel(out)));
  for (std::int64_t i = 0; i < checked_numel(out); ++i) {
    std::int64_t ia = 0, ib = 0;
    for (std::size_t d = 0; d < r; ++d) {
      const std::int64_t c = i / so[d] % out[d];
      const std::size_t da = d + a.rank() - r, db = d + b.rank() - r;
      if (d + a.rank() >= r && a.dim(da) != 1) ia += c * sa[da];
      if (d + b.rank() >= r && b.dim(db) != 1) ib += c * sb[db];
    }
    res[static_cast<std::size_t>(i)] =
        a.f32()[static_cast<std::size_t>(ia)] + b.f32()[static_cast<std::size_t>(ib)];
  }
  return res;
}

TEST(OpsBasicBinary, RandomBroadcastsMatchReference) {
  std::mt19937 rng(7);
  ThreadPool pool(3);
  for (int iter = 0; iter < 300; ++iter) {
    const std::size_t rank = rng() % 5;
    Shape out(rank), a, b;
    for (std::int64_t& d : out) d = 1 + rng() % 4;
    // Each input drops some leading dims and sets some others to 1.
    const std::size_t ra = rng() % (rank + 1), rb = rng() % (rank + 1);
    for (std::size_t d = rank - ra; d < rank; ++d) a.push_back(rng() % 3 == 0 ? 1 : out[d]);
    for (std::size_t d = rank - rb; d < rank; ++d) b.push_back(rng() % 3 == 0 ? 1 : out[d]);
    const Tensor ta = iota(a);
    Tensor tb = iota(b);
    for (float& v : tb.f32()) v *= 1000.0f;
    const Tensor got = eval(make_node(OpType::kAdd, 2), {ta, tb}, pool);
    const Shape want_shape = got.shape();
    ASSERT_EQ(got.to_float_vector(), reference_add(ta, tb, want_shape))
        << shape_to_string(a) << " + " << shape_to_string(b);
  }
}

TEST(OpsBasicBinary, LargeParallelMatchesReference) {
  ThreadPool pool(4);
  // 2^19 elements: above the threshold for splitting over the pool.
  const Tensor x = iota({8, 64, 32, 32});
  Tensor bias(DType::kFloat32, {1, 64, 1, 1});
  for (std::int64_t c = 0; c < 64; ++c) bias.f32()[static_cast<std::size_t>(c)] = 0.5f * float(c);
  const Tensor got = eval(make_node(OpType::kAdd, 2), {x, bias}, pool);
  ASSERT_EQ(got.to_float_vector(), reference_add(x, bias, {8, 64, 32, 32}));
  const Tensor same = eval(make_node(OpType::kMul, 2), {x, x}, pool);
  for (std::int64_t i = 0; i < x.numel(); i += 4099) {
    EXPECT_EQ(same.f32()[static_cast<std::size_t>(i)], float(i) * float(i));
  }
  const Tensor relu = eval(make_node(OpType::kRelu, 1), {x}, pool);
  EXPECT_EQ(relu.to_float_vector(), x.to_float_vector());
}

// ---- unary ops ---------------------------------------------------------------------

TEST(OpsBasicUnary, Values) {
  const Tensor x = floats({4}, {-2, -0.5f, 0, 3});
  expect_floats(eval(make_node(OpType::kRelu, 1), {x}), {4}, {0, 0, 0, 3});
  expect_floats(
      eval(make_node(OpType::kSigmoid, 1), {x}), {4},
      {1 / (1 + std::exp(2.0f)), 1 / (1 + std::exp(0.5f)), 0.5f, 1 / (1 + std::exp(-3.0f))});
  expect_floats(eval(make_node(OpType::kTanh, 1), {x}), {4},
                {std::tanh(-2.0f), std::tanh(-0.5f), 0, std::tanh(3.0f)});
  expect_floats(eval(make_node(OpType::kErf, 1), {x}), {4},
                {std::erf(-2.0f), std::erf(-0.5f), 0, std::erf(3.0f)});
  expect_floats(eval(make_node(OpType::kSqrt, 1), {floats({2, 1}, {4, 2})}), {2, 1},
                {2, std::sqrt(2.0f)});
  // Sigmoid saturates without NaN.
  expect_floats(eval(make_node(OpType::kSigmoid, 1), {floats({2}, {-1000, 1000})}), {2}, {0, 1});
}

TEST(OpsBasicUnary, RejectsInt64) {
  expect_error([] { infer(make_node(OpType::kRelu, 1), {ints({1}, {1})}); },
               ErrorCategory::kBadModel, {"node 'n' (Relu)", "float32"});
}

// ---- Pad --------------------------------------------------------------------------------

TEST(OpsBasicPad, AttributeFormBeforeOpset11) {
  Node n = make_node(OpType::kPad, 1, 2);
  set_ints(n, "pads", {0, 1, 1, 0});
  set_float(n, "value", 9);
  // [2, 2] -> [3, 3]: one column in front, one row after.
  expect_floats(eval(n, {iota({2, 2})}), {3, 3}, {9, 0, 1, 9, 2, 3, 9, 9, 9});
}

TEST(OpsBasicPad, InputFormWithConstantValue) {
  Node n = make_node(OpType::kPad, 3, 11);
  expect_floats(eval(n, {iota({3}), ints1({2, 1}), Tensor::scalar(-1)}), {6},
                {-1, -1, 0, 1, 2, -1});
  // Omitted constant_value pads with zeros; the input may be a runtime value.
  Node m = make_node(OpType::kPad, 2, 13);
  expect_floats(eval(m, {iota({1, 2}), ints1({1, 0, 0, 1})}), {2, 3}, {0, 0, 0, 0, 1, 0});
  expect_floats(eval(n, {iota({2}), ints1({1, 0}), In(Tensor::scalar(5), false)}), {3}, {5, 0, 1});
}

TEST(OpsBasicPad, Reflect) {
  Node n = make_node(OpType::kPad, 2, 13);
  set_string(n, "mode", "reflect");
  // numpy.pad([0,1,2,3], (2,3), 'reflect') = [2,1,0,1,2,3,2,1,0]
  expect_floats(eval(n, {iota({4}), ints1({2, 3})}), {9}, {2, 1, 0, 1, 2, 3, 2, 1, 0});
  // 2-D: rows [0,1,2],[3,4,5]; pad one row before and one column after.
  expect_floats(eval(n, {iota({2, 3}), ints1({1, 0, 0, 1})}), {3, 4},
                {3, 4, 5, 4, 0, 1, 2, 1, 3, 4, 5, 4});
  expect_error(
      [&] {
        infer(n, {iota({3}), ints1({3, 0})});
      },
      ErrorCategory::kBadModel, {"node 'n' (Pad)", "reflect"});
}

TEST(OpsBasicPad, Edge) {
  Node n = make_node(OpType::kPad, 2, 13);
  set_string(n, "mode", "edge");
  expect_floats(eval(n, {iota({2, 2}), ints1({1, 2, 0, 1})}), {3, 5},
                {0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 2, 2, 2, 3, 3});
}

TEST(OpsBasicPad, NegativePadsCrop) {
  Node n = make_node(OpType::kPad, 2, 13);
  expect_floats(eval(n, {iota({5}), ints1({-1, -2})}), {2}, {1, 2});
  // Crop one side, grow the other.
  expect_floats(eval(n, {iota({2, 3}), ints1({0, -1, 0, 1})}), {2, 3}, {1, 2, 0, 4, 5, 0});
  // Edge padding after a crop repeats the new border element.
  Node e = make_node(OpType::kPad, 2, 13);
  set_string(e, "mode", "edge");
  expect_floats(eval(e, {iota({4}), ints1({-2, 2})}), {4}, {2, 3, 3, 3});
  expect_error(
      [&] {
        infer(n, {iota({3}), ints1({-2, -2})});
      },
      ErrorCategory::kBadModel, {"node 'n' (Pad)", "crop"});
}

TEST(OpsBasicPad, AxesInputOpset18) {
  Node n = make_node(OpType::kPad, 4, 18);
  expect_floats(eval(n, {iota({2, 2}), ints1({1, 0}), In::omitted(), ints1({-1})}), {2, 3},
                {0, 0, 1, 0, 2, 3});
}

TEST(OpsBasicPad, Validation) {
  Node n = make_node(OpType::kPad, 2, 13);
  expect_error(
      [&] {
        infer(n, {iota({2, 2}), In(ints1({1, 1, 1, 1}), false)});
      },
      ErrorCategory::kBadModel, {"pads of Pad must be a constant"});
  expect_error(
      [&] {
        infer(n, {iota({2, 2}), ints1({1, 1})});
      },
      ErrorCategory::kBadModel, {"node 'n' (Pad)", "pads"});
  expect_error(
      [&] {
        infer(n, {iota({2}), ints1({kInt64Max, 0})});
      },
      ErrorCategory::kBadModel, {"node 'n' (Pad)"});
  Node w = make_node(OpType::kPad, 2, 19);
  set_string(w, "mode", "wrap");
  expect_error([&] { infer(w, {iota({2}), ints1({1, 1})}); }, ErrorCategory::kBadModel, {"wrap"});
}

// ---- Flatten, Reshape, Squeeze, Unsqueeze, Identity ------------------------------------

TEST(OpsBasicShape, Flatten) {
  const Tensor x = iota({2, 3, 4});
  Node n = make_node(OpType::kFlatten, 1);
  const Tensor out = eval(n, {x});
  expect_floats(out, {2, 12}, x.to_float_vector());
  set_int(n, "axis", 0);
  EXPECT_EQ(infer(n, {x}).shape, (Shape{1, 24}));
  set_int(n, "axis", -1);
  EXPECT_EQ(infer(n, {x}).shape, (Shape{6, 4}));
  set_int(n, "axis", 3);
  EXPECT_EQ(infer(n, {x}).shape, (Shape{24, 1}));
  set_int(n, "axis", 4);
  expect_error([&] { infer(n, {x}); }, ErrorCategory::kBadModel, {"node 'n' (Flatten)", "axis"});
}

TEST(OpsBasicShape, Reshape) {
  const Tensor x = iota({2, 3, 4});
  Node n = make_node(OpType::kReshape, 2);
  expect_floats(eval(n, {x, ints1({0, -1})}), {2, 12}, x.to_float_vector());
  EXPECT_EQ(infer(n, {x, ints1({4, 0, 2})}).shape, (Shape{4, 3, 2}));
  EXPECT_EQ(infer(n, {x, ints1({-1})}).shape, (Shape{24}));
  // Without allowzero a 0 copies the input's dimension, even when that is 0.
  EXPECT_EQ(infer(n, {Tensor(DType::kFloat32, {0, 3}), ints1({0, 3})}).shape, (Shape{0, 3}));
  expect_error(
      [&] {
        infer(n, {Tensor(DType::kFloat32, {0, 3}), ints1({3, 0})});
      },
      ErrorCategory::kBadModel, {"cannot reshape"});
  expect_error(
      [&] {
        infer(n, {x, ints1({5, 5})});
      },
      ErrorCategory::kBadModel, {"node 'n' (Reshape)", "cannot reshape", "24"});
  expect_error(
      [&] {
        infer(n, {x, ints1({-1, 5})});
      },
      ErrorCategory::kBadModel, {"cannot reshape"});
  expect_error(
      [&] {
        infer(n, {x, ints1({-1, -1})});
      },
      ErrorCategory::kBadModel, {"more than one -1"});
  expect_error(
      [&] {
        infer(n, {x, ints1({-2, 12})});
      },
      ErrorCategory::kBadModel, {"invalid dimension"});
  expect_error(
      [&] {
        infer(n, {x, ints1({2, 3, 4, 0})});
      },
      ErrorCategory::kBadModel, {"does not have"});
  expect_error(
      [&] {
        infer(n, {x, ints1({kInt64Max, 2})});
      },
      ErrorCategory::kBadModel, {"too large"});
  expect_error(
      [&] {
        infer(n, {x, In(ints1({24}), false)});
      },
      ErrorCategory::kBadModel, {"shape of Reshape must be a constant"});
}

TEST(OpsBasicShape, ReshapeAllowZero) {
  Node n = make_node(OpType::kReshape, 2, 14);
  set_int(n, "allowzero", 1);
  EXPECT_EQ(infer(n, {Tensor(DType::kFloat32, {0, 3}), ints1({3, 0})}).shape, (Shape{3, 0}));
  expect_error(
      [&] {
        infer(n, {iota({2, 3}), ints1({0, 6})});
      },
      ErrorCategory::kBadModel, {"cannot reshape"});
  expect_error(
      [&] {
        infer(n, {Tensor(DType::kFloat32, {0, 3}), ints1({0, -1})});
      },
      ErrorCategory::kBadModel, {"-1"});
}

TEST(OpsBasicShape, SqueezeBothOpsets) {
  const Tensor x = iota({1, 3, 1, 2});
  Node old = make_node(OpType::kSqueeze, 1, 11);
  set_ints(old, "axes", {-2});
  expect_floats(eval(old, {x}), {1, 3, 2}, x.to_float_vector());
  Node all = make_node(OpType::kSqueeze, 1, 11);
  EXPECT_EQ(infer(all, {x}).shape, (Shape{3, 2}));
  Node n = make_node(OpType::kSqueeze, 2, 13);
  EXPECT_EQ(infer(n, {x, ints1({0, 2})}).shape, (Shape{3, 2}));
  EXPECT_EQ(infer(make_node(OpType::kSqueeze, 1, 13), {x}).shape, (Shape{3, 2}));
  expect_error(
      [&] {
        infer(n, {x, ints1({1})});
      },
      ErrorCategory::kBadModel, {"node 'n' (Squeeze)", "not 1"});
  expect_error([&] { infer(n, {x, ints1({4})}); }, ErrorCategory::kBadModel, {"out of range"});
  expect_error([&] { infer(n, {x, ints1({0, -4})}); }, ErrorCategory::kBadModel, {"repeats"});
  expect_error(
      [&] {
        infer(n, {x, In(ints1({0}), false)});
      },
      ErrorCategory::kBadModel, {"axes of Squeeze must be a constant"});
}

TEST(OpsBasicShape, UnsqueezeBothOpsets) {
  const Tensor x = iota({3, 4});
  Node old = make_node(OpType::kUnsqueeze, 1, 11);
  set_ints(old, "axes", {0});
  expect_floats(eval(old, {x}), {1, 3, 4}, x.to_float_vector());
  Node n = make_node(OpType::kUnsqueeze, 2, 13);
  // Negative, unsorted, relative to the output rank 4.
  EXPECT_EQ(infer(n, {x, ints1({-1, 0})}).shape, (Shape{1, 3, 4, 1}));
  EXPECT_EQ(infer(n, {x, ints1({3, 1})}).shape, (Shape{3, 1, 4, 1}));
  EXPECT_EQ(infer(n, {x, ints1({-4, -3})}).shape, (Shape{1, 1, 3, 4}));
  expect_floats(eval(n, {x, ints1({-1, 0})}), {1, 3, 4, 1}, x.to_float_vector());
  expect_error(
      [&] {
        infer(n, {x, ints1({1, -3})});
      },
      ErrorCategory::kBadModel, {"node 'n' (Unsqueeze)", "repeats"});
  expect_error([&] { infer(n, {x, ints1({4})}); }, ErrorCategory::kBadModel, {"out of range"});
  expect_error([&] { infer(n, {x, ints1(I64(7, 0))}); }, ErrorCategory::kBadModel, {"rank"});
}

TEST(OpsBasicShape, IdentityKeepsDtype) {
  expect_ints(eval(make_node(OpType::kIdentity, 1), {ints({2}, {4, -5})}), {2}, {4, -5});
}

// ---- Transpose ---------------------------------------------------------------------------

TEST(OpsBasicTranspose, DefaultReversesAxes) {
  expect_floats(eval(make_node(OpType::kTranspose, 1), {iota({2, 3})}), {3, 2}, {0, 3, 1, 4, 2, 5});
}

TEST(OpsBasicTranspose, Perm) {
  Node n = make_node(OpType::kTranspose, 1);
  set_ints(n, "perm", {1, 2, 0});
  // out[j][k][i] = x[i][j][k] for x = iota([2, 2, 3]).
  expect_floats(eval(n, {iota({2, 2, 3})}), {2, 3, 2}, {0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11});
  // Moving only size-1 axes keeps the data.
  set_ints(n, "perm", {1, 0, 2});
  expect_floats(eval(n, {iota({1, 2, 3})}), {2, 1, 3}, {0, 1, 2, 3, 4, 5});
  Node m = make_node(OpType::kTranspose, 1);
  set_ints(m, "perm", {0, 2, 1});
  expect_ints(eval(m, {ints({1, 2, 2}, {1, 2, 3, 4})}), {1, 2, 2}, {1, 3, 2, 4});
}

TEST(OpsBasicTranspose, BadPermThrows) {
  for (const I64& perm : {I64{0, 0, 1}, I64{0, 1}, I64{0, 1, 3}, I64{-1, 0, 1}}) {
    Node n = make_node(OpType::kTranspose, 1);
    set_ints(n, "perm", perm);
    expect_error(
        [&] {
          infer(n, {iota({2, 3, 4})});
        },
        ErrorCategory::kBadModel, {"node 'n' (Transpose)", "permutation"});
  }
}

// ---- Concat ---------------------------------------------------------------------------------

TEST(OpsBasicConcat, FloatAndInt) {
  Node n = make_node(OpType::kConcat, 3);
  set_int(n, "axis", 1);
  expect_floats(eval(n, {iota({2, 1}), floats({2, 2}, {10, 11, 12, 13}), floats({2, 0}, {})}),
                {2, 3}, {0, 10, 11, 1, 12, 13});
  Node m = make_node(OpType::kConcat, 2);
  set_int(m, "axis", -1);
  expect_ints(eval(m, {ints({1}, {7}), ints({2}, {8, 9})}), {3}, {7, 8, 9});
}

TEST(OpsBasicConcat, Validation) {
  Node n = make_node(OpType::kConcat, 2);
  set_int(n, "axis", 0);
  expect_error(
      [&] {
        infer(n, {iota({2, 2}), iota({2, 3})});
      },
      ErrorCategory::kBadModel, {"node 'n' (Concat)", "does not match"});
  expect_error(
      [&] {
        infer(n, {iota({2}), ints({1}, {1})});
      },
      ErrorCategory::kBadModel, {"does not match"});
  set_int(n, "axis", 2);
  expect_error(
      [&] {
        infer(n, {iota({2, 2}), iota({2, 2})});
      },
      ErrorCategory::kBadModel, {"out of range"});
  expect_error([] { infer(make_node(OpType::kConcat, 1), {iota({1})}); }, ErrorCategory::kBadModel,
               {"axis"});
}

// ---- Slice --------------------------------------------------------------------------------------

TEST(OpsBasicSlice, AttributeFormBeforeOpset10) {
  Node n = make_node(OpType::kSlice, 1, 9);
  set_ints(n, "starts", {1, 0});
  set_ints(n, "ends", {2, -1});
  expect_floats(eval(n, {iota({3, 4})}), {1, 3}, {4, 5, 6});
  set_ints(n, "axes", {1});
  set_ints(n, "starts", {2});
  set_ints(n, "ends", {kInt64Max});
  expect_floats(eval(n, {iota({2, 4})}), {2, 2}, {2, 3, 6, 7});
}

TEST(OpsBasicSlice, StepsAndAxes) {
  Node n = make_node(OpType::kSlice, 5);
  expect_floats(eval(n, {iota({2, 6}), ints1({1}), ints1({6}), ints1({-1}), ints1({2})}), {2, 3},
                {1, 3, 5, 7, 9, 11});
  Node three = make_node(OpType::kSlice, 3);
  expect_floats(eval(three, {iota({5}), ints1({-3}), ints1({100})}), {3}, {2, 3, 4});
  // Axes given, steps omitted.
  Node four = make_node(OpType::kSlice, 5);
  expect_floats(eval(four, {iota({2, 3}), ints1({1}), ints1({2}), ints1({0}), In::omitted()}),
                {1, 3}, {3, 4, 5});
}

TEST(OpsBasicSlice, NegativeSteps) {
  Node n = make_node(OpType::kSlice, 5);
  // Full reversal, the way exporters write x[::-1].
  expect_floats(eval(n, {iota({5}), ints1({-1}), ints1({kInt64Min}), ints1({0}), ints1({-1})}), {5},
                {4, 3, 2, 1, 0});
  expect_floats(eval(n, {iota({5}), ints1({kInt64Max}), ints1({0}), ints1({0}), ints1({-2})}), {2},
                {4, 2});
  expect_floats(eval(n, {iota({5}), ints1({3}), ints1({-6}), ints1({0}), ints1({-3})}), {2},
                {3, 0});
  // A step far beyond the dimension takes one element.
  expect_floats(
      eval(n, {iota({5}), ints1({-1}), ints1({kInt64Min}), ints1({0}), ints1({kInt64Min})}), {1},
      {4});
  // The spec (and ONNX Runtime) clamp a negative-step start into [0, dim-1],
  // so a start before the front still takes element 0; numpy would give [].
  expect_floats(eval(n, {iota({4}), ints1({-9}), ints1({-9}), ints1({0}), ints1({-1})}), {1}, {0});
  // Reversing the inner axis of a 2-D tensor.
  expect_floats(eval(n, {iota({2, 3}), ints1({-1}), ints1({kInt64Min}), ints1({1}), ints1({-1})}),
                {2, 3}, {2, 1, 0, 5, 4, 3});
}

TEST(OpsBasicSlice, Clamping) {
  Node n = make_node(OpType::kSlice, 5);
  EXPECT_EQ(infer(n, {iota({5}), ints1({-100}), ints1({100}), ints1({0}), ints1({1})}).shape,
            (Shape{5}));
  EXPECT_EQ(infer(n, {iota({5}), ints1({4}), ints1({1}), ints1({0}), ints1({1})}).shape,
            (Shape{0}));
  EXPECT_EQ(
      infer(n, {iota({5}), ints1({kInt64Max}), ints1({kInt64Max}), ints1({0}), ints1({1})}).shape,
      (Shape{0}));
  EXPECT_EQ(infer(n, {iota({5}), ints1({1}), ints1({3}), ints1({0}), ints1({kInt64Max})}).shape,
            (Shape{1}));
  EXPECT_EQ(infer(n, {iota({0}), ints1({0}), ints1({1}), ints1({0}), ints1({-1})}).shape,
            (Shape{0}));
  EXPECT_EQ(eval(n, {iota({5}), ints1({1}), ints1({1}), ints1({0}), ints1({-1})}).numel(), 0);
}

TEST(OpsBasicSlice, Validation) {
  Node n = make_node(OpType::kSlice, 5);
  expect_error(
      [&] {
        infer(n, {iota({5}), ints1({0}), ints1({2}), ints1({0}), ints1({0})});
      },
      ErrorCategory::kBadModel, {"node 'n' (Slice)", "step"});
  expect_error(
      [&] {
        infer(n, {iota({5}), ints1({0}), ints1({2, 3}), ints1({0}), ints1({1})});
      },
      ErrorCategory::kBadModel, {"length"});
  expect_error(
      [&] {
        infer(n, {iota({5, 2}), ints1({0, 0}), ints1({1, 1}), ints1({0, -2}), ints1({1, 1})});
      },
      ErrorCategory::kBadModel, {"repeats"});
  expect_error(
      [&] {
        infer(n, {iota({5}), ints1({0}), ints1({1}), ints1({1}), ints1({1})});
      },
      ErrorCategory::kBadModel, {"out of range"});
  expect_error(
      [&] {
        infer(n, {iota({5}), In(ints1({0}), false), ints1({1})});
      },
      ErrorCategory::kBadModel, {"starts of Slice must be a constant"});
}

// ---- Gather
// ----------------------------------------------------------------------------------------

TEST(OpsBasicGather, Axis0NegativeIndices) {
  const Tensor data = iota({3, 2});
  Node n = make_node(OpType::kGather, 2);
  expect_floats(eval(n, {data, ints({2}, {-1, 0})}), {2, 2}, {4, 5, 0, 1});
  // A scalar index drops the axis.
  expect_floats(eval(n, {data, ints({}, {1})}), {2}, {2, 3});
}

TEST(OpsBasicGather, Axis1MatrixIndicesRuntime) {
  Node n = make_node(OpType::kGather, 2);
  set_int(n, "axis", 1);
  // Output shape: data[:1] + indices.shape + data[2:] = [2] + [2, 2] + [].
  expect_floats(eval(n, {iota({2, 3}), In(ints({2, 2}, {0, 2, -1, 1}), false)}), {2, 2, 2},
                {0, 2, 2, 1, 3, 5, 5, 4});
  Node m = make_node(OpType::kGather, 2);
  expect_ints(eval(m, {ints({3}, {10, 20, 30}), ints({2}, {2, -3})}), {2}, {30, 10});
}

TEST(OpsBasicGather, OutOfRangeIndexIsBadInput) {
  Node n = make_node(OpType::kGather, 2);
  for (std::int64_t bad : {3, -4}) {
    expect_error(
        [&] {
          eval(n, {iota({3}), In(ints({2}, {0, bad}), false)});
        },
        ErrorCategory::kBadInput, {"node 'n' (Gather)", std::to_string(bad)});
  }
  expect_error(
      [&] {
        infer(n, {iota({3}), iota({1})});
      },
      ErrorCategory::kBadModel, {"indices must be int64"});
  expect_error(
      [&] {
        infer(n, {Tensor::scalar(1), ints({1}, {0})});
      },
      ErrorCategory::kBadModel, {"scalar"});
}

// ---- Constant, Cast
// -----------------------------------------------------------------------------------

TEST(OpsBasicConstant, AttributeKinds) {
  Node n = make_node(OpType::kConstant, 0);
  set_tensor(n, "value", floats({2}, {1.5f, 2.5f}));
  expect_floats(eval(n, {}), {2}, {1.5f, 2.5f});
  Node f = make_node(OpType::kConstant, 0);
  set_float(f, "value_float", 3);
  expect_floats(eval(f, {}), {}, {3});
  Node fs = make_node(OpType::kConstant, 0);
  set_floats(fs, "value_floats", {1, 2});
  expect_floats(eval(fs, {}), {2}, {1, 2});
  Node i = make_node(OpType::kConstant, 0);
  set_int(i, "value_int", -4);
  expect_ints(eval(i, {}), {}, {-4});
  Node is = make_node(OpType::kConstant, 0);
  set_ints(is, "value_ints", {5, 6, 7});
  expect_ints(eval(is, {}), {3}, {5, 6, 7});
  Node none = make_node(OpType::kConstant, 0);
  expect_error([&] { infer(none, {}); }, ErrorCategory::kBadModel, {"node 'n' (Constant)"});
  set_int(is, "value_int", 1);
  expect_error([&] { infer(is, {}); }, ErrorCategory::kBadModel, {"exactly one"});
}

TEST(OpsBasicCast, FloatAndInt64) {
  Node n = make_node(OpType::kCast, 1);
  set_int(n, "to", 7);
  expect_ints(eval(n, {floats({5}, {2.7f, -2.7f, 0.5f, -0.0f, 1e30f})}), {5},
              {2, -2, 0, 0, kInt64Max});
  set_int(n, "to", 1);
  expect_floats(eval(n, {ints({2}, {-3, 1 << 20})}), {2}, {-3, float(1 << 20)});
  expect_floats(eval(n, {floats({1}, {0.25f})}), {1}, {0.25f});
}

TEST(OpsBasicCast, UnsupportedTargetThrows) {
  Node n = make_node(OpType::kCast, 1);
  set_int(n, "to", 6);
  expect_error([&] { infer(n, {iota({1})}); }, ErrorCategory::kUnsupported,
               {"node 'n' (Cast)", "6"});
  Node none = make_node(OpType::kCast, 1);
  expect_error([&] { infer(none, {iota({1})}); }, ErrorCategory::kBadModel, {"to"});
}

// ---- kernels refuse inconsistent outputs
// -------------------------------------------------------------

TEST(OpsBasicKernels, MisShapedOutputIsInternalError) {
  ThreadPool pool(1);
  const Tensor a = iota({2, 3}), b = iota({3});
  Tensor out(DType::kFloat32, {3, 2});
  const Tensor* ins[] = {&a, &b};
  Tensor* outs[] = {&out};
  expect_error([&] { run_node(make_node(OpType::kAdd, 2), ins, outs, pool); },
               ErrorCategory::kInternal, {"node 'n' (Add)"});
  Tensor small(DType::kFloat32, {2});
  Tensor* small_outs[] = {&small};
  const Tensor* one[] = {&a};
  expect_error([&] { run_node(make_node(OpType::kTranspose, 1), one, small_outs, pool); },
               ErrorCategory::kInternal, {"Transpose"});
}

}  // namespace
}  // namespace blindfold::model
