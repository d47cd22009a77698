// Conformance: every op the MPC plan lowers, on both protocols (mpc2, mpc3),
// against the plaintext engine within a fixed-point tolerance; then the
// shipped models on real images, and the plan's handling of bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backends/mpc/mpc_backend.h"
#include "backends/mpc/plan.h"
#include "core/error.h"
#include "core/npy.h"
#include "model/executor.h"
#include "model/onnx_import.h"
#include "model/shape_inference.h"

namespace blindfold::backends {
namespace {

using model::Attribute;
using model::Graph;
using model::Node;
using model::OpType;
using model::Value;

Tensor random_tensor(std::mt19937& rng, Shape shape, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& f : v) f = dist(rng);
  return Tensor::from_floats(std::move(shape), std::move(v));
}

// Builds small graphs: one input [N, ...], nodes appended in order.
class Builder {
 public:
  explicit Builder(Shape input_per_sample) {
    Value v;
    v.name = "x";
    v.shape = {1};
    v.shape.insert(v.shape.end(), input_per_sample.begin(), input_per_sample.end());
    v.batch_dims.assign(v.shape.size(), false);
    v.batch_dims[0] = true;
    v.shape_known = true;
    g.inputs.push_back(g.add_value(v));
  }
  int input() const { return g.inputs[0]; }
  int constant(const Tensor& t) {
    Value v;
    v.name = "c" + std::to_string(g.values.size());
    v.constant = t;
    v.shape = t.shape();
    v.batch_dims.assign(t.shape().size(), false);
    v.shape_known = true;
    return g.add_value(v);
  }
  int node(OpType op, std::vector<int> inputs, std::map<std::string, Attribute> attrs = {}) {
    Value out;
    out.name = "v" + std::to_string(g.values.size());
    const int o = g.add_value(out);
    Node n;
    n.name = std::string(model::op_name(op)) + "_" + std::to_string(g.nodes.size());
    n.op = op;
    n.inputs = std::move(inputs);
    n.outputs = {o};
    for (auto& [k, a] : attrs) n.attrs.set(k, a);
    n.attrs.owner = n.label();
    g.add_node(n);
    return o;
  }
  Graph finish(int output) {
    g.outputs = {output};
    model::annotate_shapes(g);
    return g;
  }
  Graph g;
};

Attribute ints(std::vector<std::int64_t> v) { return Attribute::of_ints(std::move(v)); }

struct Case {
  std::string name;
  std::function<Graph(std::mt19937&)> build;
  Shape input;          // per sample
  float tolerance = 0;  // absolute, on outputs of magnitude ~1
  float input_range = 1.0f;
};

std::vector<Case> cases() {
  std::vector<Case> c;
  c.push_back({"ConvBiasStride2Pad1", [](std::mt19937& r) {
                 Builder b({3, 9, 9});
                 const int w = b.constant(random_tensor(r, {4, 3, 3, 3}, -0.5f, 0.5f));
                 const int bias = b.constant(random_tensor(r, {4}));
                 return b.finish(b.node(OpType::kConv, {b.input(), w, bias},
                                        {{"strides", ints({2, 2})}, {"pads", ints({1, 1, 1, 1})}}));
               }, {3, 9, 9}, 0.02f});
  c.push_back({"ConvDilatedNoBias", [](std::mt19937& r) {
                 Builder b({2, 8, 8});
                 const int w = b.constant(random_tensor(r, {3, 2, 2, 2}));
                 return b.finish(b.node(OpType::kConv, {b.input(), w}, {{"dilations", ints({2, 2})}}));
               }, {2, 8, 8}, 0.02f});
  c.push_back({"GemmTransB", [](std::mt19937& r) {
                 Builder b({20});
                 const int w = b.constant(random_tensor(r, {7, 20}));
                 const int bias = b.constant(random_tensor(r, {7}));
                 return b.finish(b.node(OpType::kGemm, {b.input(), w, bias},
                                        {{"transB", Attribute::of_int(1)}, {"alpha", Attribute::of_float(0.5f)},
                                         {"beta", Attribute::of_float(2.0f)}}));
               }, {20}, 0.02f});
  c.push_back({"MatMul", [](std::mt19937& r) {
                 Builder b({12});
                 const int w = b.constant(random_tensor(r, {12, 5}));
                 return b.finish(b.node(OpType::kMatMul, {b.input(), w}));
               }, {12}, 0.02f});
  c.push_back({"Relu", [](std::mt19937&) {
                 Builder b({50});
                 return b.finish(b.node(OpType::kRelu, {b.input()}));
               }, {50}, 0.002f, 4.0f});
  c.push_back({"MaxPool2x2", [](std::mt19937&) {
                 Builder b({2, 6, 6});
                 return b.finish(b.node(OpType::kMaxPool, {b.input()},
                                        {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}}));
               }, {2, 6, 6}, 0.002f});
  c.push_back({"MaxPool3x3Pad1", [](std::mt19937&) {
                 Builder b({2, 5, 5});
                 return b.finish(b.node(OpType::kMaxPool, {b.input()},
                                        {{"kernel_shape", ints({3, 3})}, {"pads", ints({1, 1, 1, 1})}}));
               }, {2, 5, 5}, 0.002f});
  c.push_back({"ReluThenMaxPool", [](std::mt19937&) {
                 Builder b({2, 4, 4});
                 const int r = b.node(OpType::kRelu, {b.input()});
                 return b.finish(b.node(OpType::kMaxPool, {r},
                                        {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}}));
               }, {2, 4, 4}, 0.002f});
  c.push_back({"AveragePoolPad", [](std::mt19937&) {
                 Builder b({2, 5, 5});
                 return b.finish(b.node(OpType::kAveragePool, {b.input()},
                                        {{"kernel_shape", ints({3, 3})}, {"pads", ints({1, 1, 1, 1})}}));
               }, {2, 5, 5}, 0.005f});
  c.push_back({"GlobalAveragePool", [](std::mt19937&) {
                 Builder b({3, 4, 4});
                 return b.finish(b.node(OpType::kGlobalAveragePool, {b.input()}));
               }, {3, 4, 4}, 0.005f});
  c.push_back({"AddSubMulShared", [](std::mt19937&) {
                 Builder b({16});
                 const int sq = b.node(OpType::kMul, {b.input(), b.input()});
                 const int s = b.node(OpType::kAdd, {sq, b.input()});
                 return b.finish(b.node(OpType::kSub, {s, b.input()}));
               }, {16}, 0.005f, 2.0f});
  c.push_back({"ConstantsBroadcast", [](std::mt19937& r) {
                 Builder b({3, 4, 4});
                 const int scale = b.constant(random_tensor(r, {3, 1, 1}, 0.5f, 2.0f));
                 const int shift = b.constant(random_tensor(r, {1, 3, 1, 1}));
                 const int div = b.constant(random_tensor(r, {4}, 1.0f, 3.0f));
                 const int sub = b.constant(random_tensor(r, {3, 4, 4}));
                 const int m = b.node(OpType::kMul, {scale, b.input()});
                 const int a = b.node(OpType::kAdd, {m, shift});
                 const int d = b.node(OpType::kDiv, {a, div});
                 return b.finish(b.node(OpType::kSub, {d, sub}));
               }, {3, 4, 4}, 0.005f});
  c.push_back({"BatchNormalization", [](std::mt19937& r) {
                 Builder b({3, 4, 4});
                 const int gm = b.constant(random_tensor(r, {3}, 0.5f, 1.5f));
                 const int bt = b.constant(random_tensor(r, {3}));
                 const int mu = b.constant(random_tensor(r, {3}));
                 const int var = b.constant(random_tensor(r, {3}, 0.5f, 2.0f));
                 return b.finish(b.node(OpType::kBatchNormalization, {b.input(), gm, bt, mu, var}));
               }, {3, 4, 4}, 0.005f});
  c.push_back({"FlattenGemmSigmoid", [](std::mt19937& r) {
                 Builder b({2, 3, 3});
                 const int f = b.node(OpType::kFlatten, {b.input()});
                 const int w = b.constant(random_tensor(r, {1, 18}));
                 const int gm = b.node(OpType::kGemm, {f, w}, {{"transB", Attribute::of_int(1)}});
                 return b.finish(b.node(OpType::kSigmoid, {gm}));
               }, {2, 3, 3}, 0.005f});
  c.push_back({"GemmSoftmax", [](std::mt19937& r) {
                 Builder b({10});
                 const int w = b.constant(random_tensor(r, {10, 6}));
                 const int gm = b.node(OpType::kMatMul, {b.input(), w});
                 return b.finish(b.node(OpType::kSoftmax, {gm}, {{"axis", Attribute::of_int(-1)}}));
               }, {10}, 0.005f});
  return c;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  float m = 0;
  for (std::int64_t i = 0; i < std::min(a.numel(), b.numel()); ++i) {
    m = std::max(m, std::fabs(a.f32()[static_cast<std::size_t>(i)] - b.f32()[static_cast<std::size_t>(i)]));
  }
  return m;
}

class Conformance : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(Conformance, OpMatchesPlaintext) {
  const auto [parties, index] = GetParam();
  const Case cs = cases().at(static_cast<std::size_t>(index));
  std::mt19937 rng(1234 + static_cast<unsigned>(index));
  const Graph g = cs.build(rng);
  MpcBackend backend(parties);
  ASSERT_TRUE(backend.supports(g).ok) << backend.supports(g).reason;
  backend.setup(g, {});
  model::Executor reference(g);
  for (std::int64_t batch : {1, 3}) {
    Shape s{batch};
    s.insert(s.end(), cs.input.begin(), cs.input.end());
    const Tensor x = random_tensor(rng, s, -cs.input_range, cs.input_range);
    RunMetrics m;
    const Tensor got = backend.infer({x}, &m).at(0);
    const Tensor want = reference.run({x}).at(0);
    EXPECT_LE(max_abs_diff(got, want), cs.tolerance) << cs.name << " batch " << batch;
    EXPECT_GT(m.online.bytes, 0);
  }
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<int, int>>& info) {
  return "mpc" + std::to_string(std::get<0>(info.param)) + "_" +
         cases().at(static_cast<std::size_t>(std::get<1>(info.param))).name;
}

INSTANTIATE_TEST_SUITE_P(AllOps, Conformance,
                         ::testing::Combine(::testing::Values(2, 3),
                                            ::testing::Range(0, static_cast<int>(cases().size()))),
                         case_name);

std::string root() {
  const char* r = std::getenv("BLINDFOLD_ROOT");
  return r ? r : ".";
}

// The shipped models on the first 8 Fashion-MNIST test images: the same
// labels as plaintext, logits within the fixed-point tolerance, for both
// output policies.
class ShippedModels : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(ShippedModels, AgreeWithPlaintext) {
  const auto [parties, name] = GetParam();
  const Graph g = model::import_onnx_file(root() + "/models/" + name + ".onnx");
  const Tensor x = read_npy(root() + "/models/fixtures/fmnist-test-first8.npy");
  model::Executor reference(g);
  const Tensor want = reference.run({x}).at(0);
  MpcBackend logits(parties);
  logits.setup(g, {});
  const Tensor got = logits.infer({x}, nullptr).at(0);
  // Fixed point with 12 fractional bits: within 1% of the largest logit.
  float scale = 1.0f;
  for (float v : want.f32()) scale = std::max(scale, std::fabs(v));
  EXPECT_LE(max_abs_diff(got, want), 0.01f * scale);
  MpcSettings label_only;
  label_only.output = mpcplan::Output::kLabel;
  MpcBackend labels(parties, label_only);
  labels.setup(g, {});
  const Tensor onehot = labels.infer({x}, nullptr).at(0);
  for (std::int64_t i = 0; i < 8; ++i) {
    const float* w = want.f32().data() + i * 10;
    const float* o = onehot.f32().data() + i * 10;
    float ones = 0;
    for (int k = 0; k < 10; ++k) ones += o[k];
    EXPECT_EQ(ones, 1.0f) << "image " << i;
    EXPECT_EQ(std::max_element(o, o + 10) - o, std::max_element(w, w + 10) - w) << "image " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fmnist, ShippedModels,
                         ::testing::Combine(::testing::Values(2, 3),
                                            ::testing::Values("fmnist-mlp", "fmnist-lenet", "fmnist-he")),
                         [](const auto& info) {
                           std::string n = std::get<1>(info.param);
                           for (char& ch : n) ch = ch == '-' ? '_' : ch;
                           return "mpc" + std::to_string(std::get<0>(info.param)) + "_" + n;
                         });

TEST(MpcPlan, UnsupportedNodeIsNamed) {
  Builder b({4});
  const int t = b.node(OpType::kTanh, {b.input()});
  const int r = b.node(OpType::kRelu, {t});
  const Graph g = b.finish(r);
  const Support s = mpcplan::lowerable(g);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.node, "Tanh_0");
  EXPECT_NE(s.reason.find("no MPC protocol for Tanh"), std::string::npos) << s.reason;
  MpcBackend backend(2);
  try {
    backend.setup(g, {});
    ADD_FAILURE() << "setup accepted an unsupported node";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUnsupported);
  }
}

TEST(MpcPlan, SerializationRoundTripsAndRejectsTampering) {
  const Graph g = model::import_onnx_file(root() + "/models/fmnist-lenet.onnx");
  const mpcplan::Plan p = mpcplan::lower(g, 12, nullptr);
  const std::string s = p.serialize();
  EXPECT_EQ(mpcplan::Plan::parse(s).serialize(), s);
  EXPECT_EQ(s.find("0.0"), std::string::npos) << "the plan must carry no weights";
  auto expect_bad = [](const std::string& text) {
    try {
      mpcplan::Plan::parse(text);
      ADD_FAILURE() << "accepted: " << text.substr(0, 80);
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
    }
  };
  expect_bad("");
  expect_bad("{}");
  expect_bad(s.substr(0, s.size() / 2));
  std::string t = s;
  t.replace(t.find("\"frac_bits\":12"), 14, "\"frac_bits\":99");
  expect_bad(t);
  t = s;
  t.replace(t.find("\"size\":400"), 10, "\"size\":401");
  expect_bad(t);
  t = s;
  t.replace(t.find("\"in0\":0"), 7, "\"in0\":9");
  expect_bad(t);
  // A constant's shape whose element count overflows int64 (7 dims of 65536).
  const std::string he = mpcplan::lower(model::import_onnx_file(root() + "/models/fmnist-he.onnx"), 12, nullptr).serialize();
  const auto at = he.find("\"w_shape\":[", he.find("\"kind\":\"mul_weights\""));
  ASSERT_NE(at, std::string::npos);
  t = he;
  t.replace(at, t.find(']', at) - at + 1, "\"w_shape\":[65536,65536,65536,65536,65536,65536,65536]");
  expect_bad(t);
}

}  // namespace
}  // namespace blindfold::backends
