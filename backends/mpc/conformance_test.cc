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
#include "backends/test_util.h"
#include "core/error.h"
#include "core/npy.h"
#include "model/executor.h"
#include "model/onnx_import.h"
#include "model/shape_inference.h"
#include "mpc/protocol.h"

namespace blindfold::backends {
namespace {

using model::Attribute;
using model::Graph;
using model::OpType;

using testutil::Builder;
using testutil::ints;
using testutil::random_tensor;
using testutil::root;

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
  model::Executor reference(g);
  // Full-width comparisons, then comparisons sized for the input range.
  for (const double bound : {0.0, static_cast<double>(cs.input_range)}) {
    MpcBackend backend(parties);
    ASSERT_TRUE(backend.supports(g).ok) << backend.supports(g).reason;
    BackendOptions o;
    o.input_bound = bound;
    backend.setup(g, o);
    for (const mpcplan::Step& s : backend.plan().steps) {
      if (s.kind == mpcplan::StepKind::kRelu || s.kind == mpcplan::StepKind::kMaxPool) {
        EXPECT_EQ(s.cmp_bits < 64, bound > 0) << s.node;
      }
    }
    for (std::int64_t batch : {1, 3}) {
      Shape s{batch};
      s.insert(s.end(), cs.input.begin(), cs.input.end());
      const Tensor x = random_tensor(rng, s, -cs.input_range, cs.input_range);
      RunMetrics m;
      const Tensor got = backend.infer({x}, &m).at(0);
      const Tensor want = reference.run({x}).at(0);
      EXPECT_LE(max_abs_diff(got, want), cs.tolerance) << cs.name << " batch " << batch << " bound " << bound;
      EXPECT_GT(m.online.bytes, 0);
    }
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
  // The model declares |input| <= 1: every comparison runs below 64 bits.
  EXPECT_EQ(logits.plan().input_bound, 1.0);
  for (const mpcplan::Step& s : logits.plan().steps) {
    if (s.kind == mpcplan::StepKind::kRelu || s.kind == mpcplan::StepKind::kMaxPool) { EXPECT_LT(s.cmp_bits, 64) << s.node; }
  }
  EXPECT_LT(logits.plan().argmax_bits, 64);
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
  const mpcplan::Plan p = mpcplan::lower(g, 12, nullptr, mpcplan::declared_input_bound(g));
  ASSERT_EQ(p.input_bound, 1.0);
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
  const std::string he = mpcplan::lower(model::import_onnx_file(root() + "/models/fmnist-he.onnx"), 12, nullptr, 0).serialize();
  const auto at = he.find("\"w_shape\":[", he.find("\"kind\":\"mul_weights\""));
  ASSERT_NE(at, std::string::npos);
  t = he;
  t.replace(at, t.find(']', at) - at + 1, "\"w_shape\":[65536,65536,65536,65536,65536,65536,65536]");
  expect_bad(t);
}


// ---- comparison widths from the input bound ----------------------------------

void expect_error(const std::function<void()>& f, ErrorCategory cat, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no error; expected " << category_name(cat);
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), cat) << e.what();
    for (const std::string& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << n << " in: " << e.what();
  }
}

bool is_comparison(const mpcplan::Step& s) {
  return s.kind == mpcplan::StepKind::kRelu || s.kind == mpcplan::StepKind::kMaxPool;
}

TEST(MpcWidths, ComparisonBitsFormula) {
  // ceil(log2(V * 2^f + 2^10)) + 2
  EXPECT_EQ(mpcplan::comparison_bits(0, 12), 12);
  EXPECT_EQ(mpcplan::comparison_bits(1, 12), 15);         // 5120 -> 13, + 2
  EXPECT_EQ(mpcplan::comparison_bits(0.75, 12), 14);      // 4096 exactly -> 12, + 2
  EXPECT_EQ(mpcplan::comparison_bits(1000, 12), 24);      // 4097024 -> 22, + 2
  EXPECT_EQ(mpcplan::comparison_bits(std::ldexp(1.0, 49), 12), 64);
  EXPECT_EQ(mpcplan::comparison_bits(std::ldexp(1.0, 60), 12), 64);
  EXPECT_EQ(mpcplan::comparison_bits(INFINITY, 12), 64);
  EXPECT_EQ(mpcplan::comparison_bits(NAN, 12), 64);
  EXPECT_EQ(mpcplan::comparison_bits(-1, 12), 64);
  EXPECT_EQ(mpcplan::onehot_count_bits(1), 2);
  EXPECT_EQ(mpcplan::onehot_count_bits(2), 2);   // [-1, 0]
  EXPECT_EQ(mpcplan::onehot_count_bits(3), 3);   // [-2, 0]
  EXPECT_EQ(mpcplan::onehot_count_bits(10), 5);  // [-9, 0]
  EXPECT_EQ(mpcplan::onehot_count_bits(17), 6);  // [-16, 0]
}

TEST(MpcWidths, DeclaredInputBound) {
  Builder b({4});
  Graph g = b.finish(b.node(OpType::kRelu, {b.input()}));
  EXPECT_EQ(mpcplan::declared_input_bound(g), 0.0);
  g.metadata["blindfold.input_bound"] = "1";
  EXPECT_EQ(mpcplan::declared_input_bound(g), 1.0);
  g.metadata["blindfold.input_bound"] = "0.25";
  EXPECT_EQ(mpcplan::declared_input_bound(g), 0.25);
  g.metadata["blindfold.input_bound"] = "2.5e3";
  EXPECT_EQ(mpcplan::declared_input_bound(g), 2500.0);
  for (const std::string bad : {"", "0", "-1", "abc", "1x", " 1", "inf", "nan", "1e999", "0x10"}) {
    g.metadata["blindfold.input_bound"] = bad;
    expect_error([&] { mpcplan::declared_input_bound(g); }, ErrorCategory::kBadModel,
                 {"blindfold.input_bound", "'" + bad + "'"});
  }
}

// The shipped models: the widths their declared bound gives (printed), all
// below 64; the agreement tests above (ShippedModels) run with them.
TEST(MpcWidths, ShippedModels) {
  for (const char* name : {"fmnist-lenet", "fmnist-mlp", "fmnist-he"}) {
    const Graph g = model::import_onnx_file(root() + "/models/" + name + ".onnx");
    ASSERT_EQ(mpcplan::declared_input_bound(g), 1.0) << name;
    std::vector<Tensor> weights;
    const mpcplan::Plan p = mpcplan::lower(g, 12, &weights, 1.0);
    const std::vector<double> bounds = mpcplan::slot_bounds(p, weights, 1.0);
    std::string line = std::string(name) + ":";
    for (const mpcplan::Step& s : p.steps) {
      if (!is_comparison(s)) continue;
      EXPECT_LT(s.cmp_bits, 64) << name << " " << s.node;
      EXPECT_GE(s.cmp_bits, 12) << name << " " << s.node;
      line += " " + s.node + "=" + std::to_string(s.cmp_bits) + " (|x| <= " +
              std::to_string(bounds.at(static_cast<std::size_t>(s.in0))) + ")";
    }
    EXPECT_LT(p.argmax_bits, 64) << name;
    line += " argmax=" + std::to_string(p.argmax_bits) + " (|logit| <= " +
            std::to_string(bounds.at(static_cast<std::size_t>(p.output_slot))) + ")";
    std::printf("%s\n", line.c_str());
    // The description names every width.
    const std::string d = p.describe();
    EXPECT_NE(d.find("|input| <= 1"), std::string::npos) << d;
    EXPECT_NE(d.find(std::to_string(p.argmax_bits) + " bits"), std::string::npos) << d;
  }
}

TEST(MpcWidths, NoBoundMeansFullWidth) {
  const Graph g = model::import_onnx_file(root() + "/models/fmnist-lenet.onnx");
  const mpcplan::Plan p = mpcplan::lower(g, 12, nullptr, 0);
  EXPECT_EQ(p.input_bound, 0.0);
  EXPECT_EQ(p.argmax_bits, 64);
  for (const mpcplan::Step& s : p.steps) EXPECT_EQ(s.cmp_bits, 64) << s.node;
  EXPECT_NE(p.describe().find("every comparison at 64 bits"), std::string::npos);
  // No bound: the client shares any finite input.
  std::vector<float> big(static_cast<std::size_t>(28 * 28), 1000.0f);
  EXPECT_NO_THROW(mpcplan::check_input(p, big));
  // The option overrides the model's metadata.
  MpcBackend backend(3);
  BackendOptions o;
  o.input_bound = 4;
  backend.setup(g, o);
  EXPECT_EQ(backend.plan().input_bound, 4.0);
  const mpcplan::Plan one = mpcplan::lower(g, 12, nullptr, 1);
  int wider = 0;
  for (std::size_t i = 0; i < one.steps.size(); ++i) {
    EXPECT_GE(backend.plan().steps[i].cmp_bits, one.steps[i].cmp_bits);
    wider += backend.plan().steps[i].cmp_bits > one.steps[i].cmp_bits;
  }
  EXPECT_GT(wider, 0);
  o.input_bound = -1;
  expect_error([&] { backend.setup(g, o); }, ErrorCategory::kBadInput, {"--input-bound"});
  expect_error([&] { mpcplan::lower(g, 12, nullptr, NAN); }, ErrorCategory::kBadInput, {"input bound"});
}

TEST(MpcWidths, PlanCarriesWidthsAndRefusesBadOnes) {
  const Graph g = model::import_onnx_file(root() + "/models/fmnist-lenet.onnx");
  const mpcplan::Plan p = mpcplan::lower(g, 12, nullptr, 1.0);
  const std::string s = p.serialize();
  const mpcplan::Plan q = mpcplan::Plan::parse(s);
  EXPECT_EQ(q.serialize(), s);
  EXPECT_EQ(q.input_bound, 1.0);
  EXPECT_EQ(q.argmax_bits, p.argmax_bits);
  ASSERT_EQ(q.steps.size(), p.steps.size());
  for (std::size_t i = 0; i < p.steps.size(); ++i) EXPECT_EQ(q.steps[i].cmp_bits, p.steps[i].cmp_bits);
  // A step's width, tampered: 0, 65, missing.
  const auto relu = s.find("\"kind\":\"relu\"");
  ASSERT_NE(relu, std::string::npos);
  // Keys are dumped in order: a step's "cmp_bits" comes before its "kind".
  const auto at = s.rfind("\"cmp_bits\":", relu);
  ASSERT_NE(at, std::string::npos);
  ASSERT_GT(s.find_first_of("{}", at), relu) << "the width found is not the ReLU step's";
  const auto end = s.find_first_of(",}", at);
  auto with = [&](const std::string& field) { return s.substr(0, at) + field + s.substr(end); };
  auto refused = [](const std::string& text, const std::string& needle) {
    expect_error([&] { mpcplan::Plan::parse(text); }, ErrorCategory::kBadMessage, {needle});
  };
  refused(with("\"cmp_bits\":0"), "cmp_bits");
  refused(with("\"cmp_bits\":65"), "cmp_bits");
  refused(with("\"cmp_bits\":-3"), "cmp_bits");
  refused(with("\"cmp_bits\":\"x\""), "cmp_bits");
  std::string missing = with("");
  if (missing[at] == ',') missing.erase(at, 1);
  refused(missing, "cmp_bits");
  // The plan-wide fields.
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string t = s;
    const auto pos = t.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    if (pos != std::string::npos) t.replace(pos, from.size(), to);
    return t;
  };
  const std::string argmax = "\"argmax_bits\":" + std::to_string(p.argmax_bits);
  refused(replaced(argmax, "\"argmax_bits\":1"), "argmax_bits");
  refused(replaced(argmax, "\"argmax_bits\":65"), "argmax_bits");
  refused(replaced(argmax + ",", ""), "argmax_bits");
  refused(replaced("\"input_bound\":1.0", "\"input_bound\":-1.0"), "input_bound");
  refused(replaced("\"input_bound\":1.0", "\"input_bound\":null"), "input_bound");
  refused(replaced("\"input_bound\":1.0,", ""), "input_bound");
  // Narrow widths without a bound the client would enforce.
  refused(replaced("\"input_bound\":1.0", "\"input_bound\":0.0"), "without an input_bound");
  // Integers must be JSON integers in range: a float out of int's range was
  // undefined behaviour in the conversion and 2^32 + 12 wrapped to 12 (both
  // found by fuzz/mpc_plan_fuzz).
  refused(replaced("\"version\":2", "\"version\":1e10"), "version");
  refused(replaced("\"frac_bits\":12", "\"frac_bits\":4294967308"), "frac_bits");
  refused(replaced("\"frac_bits\":12", "\"frac_bits\":12.9"), "frac_bits");
  refused(replaced("\"frac_bits\":12", "\"frac_bits\":18446744073709551615"), "frac_bits");
  refused(replaced(argmax, "\"argmax_bits\":33.0"), "argmax_bits");
  refused(with("\"cmp_bits\":1e300"), "cmp_bits");
}

TEST(MpcWidths, ClientRefusesInputAboveBound) {
  const Graph g = model::import_onnx_file(root() + "/models/fmnist-lenet.onnx");
  Tensor x = read_npy(root() + "/models/fixtures/fmnist-test-first8.npy");
  x.f32()[1 * 784 + 100] = 1.5f;  // sample 1, element 100
  for (int parties : {2, 3}) {
    MpcBackend backend(parties);
    backend.setup(g, {});
    expect_error([&] { backend.infer({x}, nullptr); }, ErrorCategory::kBadInput,
                 {"1.5", "index 884", "sample 1, element 100", "|x| <= 1", "sized its comparisons"});
    // The backend still serves a good input afterwards (nothing was shared).
    Tensor ok = read_npy(root() + "/models/fixtures/fmnist-test-first8.npy");
    EXPECT_NO_THROW(backend.infer({ok}, nullptr));
  }
  const mpcplan::Plan p = mpcplan::lower(g, 12, nullptr, 1.0);
  std::vector<float> v(784, 0.5f);
  v[7] = -1.0f;
  EXPECT_NO_THROW(mpcplan::check_input(p, v));  // the bound itself is allowed
  v[7] = std::nanf("");
  expect_error([&] { mpcplan::check_input(p, v); }, ErrorCategory::kBadInput, {"nan", "index 7"});
  v[7] = -1.0001f;
  expect_error([&] { mpcplan::check_input(p, v); }, ErrorCategory::kBadInput, {"-1.0001", "index 7"});
}

// A Protocol in the clear for one process: the "share" is the value. It
// keeps the relu contract literally (the sign of x mod 2^bits, as the real
// protocols compute it) and records whether every compared value lay in
// [-2^(bits-1), 2^(bits-1)).
class ClearProtocol final : public mpc::Protocol {
 public:
  explicit ClearProtocol(int f) : f_(f) {}
  std::string name() const override { return "clear"; }
  int party() const override { return 1; }
  int frac_bits() const override { return f_; }
  int register_weights(std::span<const mpc::u64> w, std::size_t n) override {
    EXPECT_EQ(w.size(), n);
    w_.emplace_back(w.begin(), w.end());
    return static_cast<int>(w_.size()) - 1;
  }
  mpc::Shared input(std::span<const mpc::u64> x, std::size_t n) override { return {n, {x.begin(), x.end()}, {}}; }
  void add_public(mpc::Shared& x, std::span<const mpc::u64> c) override {
    for (std::size_t i = 0; i < x.n; ++i) x.s0[i] += c[i];
  }
  mpc::Shared add_weights(int w, const mpc::Shared& x, std::span<const std::uint32_t> idx) override {
    mpc::Shared y = x;
    for (std::size_t i = 0; i < x.n; ++i) y.s0[i] += w_.at(static_cast<std::size_t>(w)).at(idx[i]);
    return y;
  }
  mpc::Shared mul_weights(int w, const mpc::Shared& x, std::span<const std::uint32_t> idx) override {
    mpc::Shared y = x;
    for (std::size_t i = 0; i < x.n; ++i) y.s0[i] *= w_.at(static_cast<std::size_t>(w)).at(idx[i]);
    return y;
  }
  mpc::Shared matmul(int w, const mpc::Shared& x, std::size_t m, std::size_t k, std::size_t n) override {
    const auto& W = w_.at(static_cast<std::size_t>(w));
    mpc::Shared y{m * n, std::vector<mpc::u64>(m * n, 0), {}};
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t p = 0; p < k; ++p)
        for (std::size_t j = 0; j < n; ++j) y.s0[i * n + j] += W[i * k + p] * x.s0[p * n + j];
    return y;
  }
  mpc::Shared mul(const mpc::Shared& x, const mpc::Shared& y) override {
    mpc::Shared z = x;
    for (std::size_t i = 0; i < x.n; ++i) z.s0[i] *= y.s0[i];
    return z;
  }
  void trunc(mpc::Shared& x, int bits) override {
    for (auto& v : x.s0) v = static_cast<mpc::u64>(static_cast<std::int64_t>(v) >> bits);
  }
  void relu(const mpc::Shared& x, mpc::Shared* drelu, mpc::Shared* relu, int bits) override {
    mpc::check_relu_bits(bits);
    if (drelu) *drelu = {x.n, std::vector<mpc::u64>(x.n), {}};
    if (relu) *relu = {x.n, std::vector<mpc::u64>(x.n), {}};
    ++calls;
    if (bits < 64) ++narrow_calls;
    for (std::size_t i = 0; i < x.n; ++i) {
      const std::int64_t v = static_cast<std::int64_t>(x.s0[i]);
      const bool in_range = bits == 64 || (v >= -(std::int64_t{1} << (bits - 1)) && v < (std::int64_t{1} << (bits - 1)));
      if (!in_range) {
        if (++violations <= 5) ADD_FAILURE() << "value " << v << " outside its " << bits << "-bit width";
      }
      if (bits < 64) {
        worst_fraction = std::max(worst_fraction, std::fabs(static_cast<double>(v)) / std::ldexp(1.0, bits - 1));
      }
      // The sign of x mod 2^bits (sign-extended from bit bits-1).
      const std::int64_t low = bits == 64 ? v : static_cast<std::int64_t>(x.s0[i] << (64 - bits)) >> (64 - bits);
      const bool pos = low >= 0;
      if (drelu) drelu->s0[i] = pos ? 1 : 0;
      if (relu) relu->s0[i] = pos ? x.s0[i] : 0;
    }
  }
  std::vector<mpc::u64> reveal_to_client(const mpc::Shared& x) override { return revealed = x.s0; }

  std::int64_t calls = 0, narrow_calls = 0, violations = 0;
  double worst_fraction = 0;  // max |x| / 2^(bits-1) over narrow comparisons
  std::vector<mpc::u64> revealed;

 private:
  int f_;
  std::vector<std::vector<mpc::u64>> w_;
};

// Random small models of every lowered op that moves a bound, with weights of
// random scale.
Graph random_model(std::mt19937& r, int kind) {
  std::uniform_real_distribution<float> unit(0, 1);
  const float ws = std::pow(10.0f, unit(r) * 2 - 1.3f);  // weight scale 0.05 .. 5
  auto w = [&](Shape s, float scale) { return random_tensor(r, std::move(s), -scale, scale); };
  if (kind == 0) {  // Conv -> Relu -> MaxPool (padded or not) -> Flatten -> Gemm -> Relu -> Gemm
    const std::int64_t c = 1 + r() % 3, oc = 2 + r() % 3, hw = 6 + r() % 4;
    Builder b({c, hw, hw});
    const int cw = b.constant(w({oc, c, 3, 3}, ws));
    const int cb = b.constant(w({oc}, ws));
    const bool pad_pool = r() % 2;
    const int conv = b.node(OpType::kConv, {b.input(), cw, cb}, {{"pads", ints({1, 1, 1, 1})}});
    const int relu = b.node(OpType::kRelu, {conv});
    const int pool = pad_pool ? b.node(OpType::kMaxPool, {relu}, {{"kernel_shape", ints({3, 3})}, {"pads", ints({1, 1, 1, 1})},
                                                                   {"strides", ints({2, 2})}})
                              : b.node(OpType::kMaxPool, {relu}, {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}});
    const int flat = b.node(OpType::kFlatten, {pool});
    const std::int64_t ph = pad_pool ? (hw - 1) / 2 + 1 : hw / 2;
    const std::int64_t k = oc * ph * ph;
    const int g1 = b.node(OpType::kGemm, {flat, b.constant(w({k, 8}, ws)), b.constant(w({8}, ws))});
    const int r1 = b.node(OpType::kRelu, {g1});
    return b.finish(b.node(OpType::kGemm, {r1, b.constant(w({8, 5}, ws)), b.constant(w({5}, ws))}));
  }
  if (kind == 1) {  // Gemm -> MaxPool without Relu (negative values) -> Mul shared x shared -> Add -> Relu -> Gemm
    Builder b({2, 4, 4});
    const int cw = b.constant(w({3, 2, 1, 1}, ws));
    const int conv = b.node(OpType::kConv, {b.input(), cw});
    const int pool = b.node(OpType::kMaxPool, {conv}, {{"kernel_shape", ints({2, 2})}, {"strides", ints({1, 1})}});
    const int sq = b.node(OpType::kMul, {pool, pool});
    const int sum = b.node(OpType::kAdd, {sq, pool});
    const int diff = b.node(OpType::kSub, {sum, pool});
    const int relu = b.node(OpType::kRelu, {diff});
    const int flat = b.node(OpType::kFlatten, {relu});
    return b.finish(b.node(OpType::kGemm, {flat, b.constant(w({27, 4}, ws))}));
  }
  if (kind == 2) {  // constants, BatchNormalization, AveragePool, Relu, Gemm, arg max over 6
    Builder b({3, 5, 5});
    const int scale = b.node(OpType::kMul, {b.input(), b.constant(w({3, 1, 1}, ws))});
    const int shift = b.node(OpType::kAdd, {scale, b.constant(w({3, 1, 1}, ws))});
    const int div = b.node(OpType::kDiv, {shift, b.constant(random_tensor(r, {5}, 0.5f, 2.0f))});
    const int bn = b.node(OpType::kBatchNormalization,
                          {div, b.constant(w({3}, ws)), b.constant(w({3}, ws)), b.constant(w({3}, ws)),
                           b.constant(random_tensor(r, {3}, 0.5f, 2.0f))});
    const int avg = b.node(OpType::kAveragePool, {bn}, {{"kernel_shape", ints({3, 3})}, {"pads", ints({1, 1, 1, 1})}});
    const int relu = b.node(OpType::kRelu, {avg});
    const int flat = b.node(OpType::kFlatten, {relu});
    return b.finish(b.node(OpType::kGemm, {flat, b.constant(w({75, 6}, ws)), b.constant(w({6}, ws))}));
  }
  // kind 3: a single score (binary classifier) after Relu: the label policy compares the score itself.
  Builder b({12});
  const int g1 = b.node(OpType::kGemm, {b.input(), b.constant(w({12, 6}, ws)), b.constant(w({6}, ws))});
  const int r1 = b.node(OpType::kRelu, {g1});
  return b.finish(b.node(OpType::kGemm, {r1, b.constant(w({6, 1}, ws)), b.constant(w({1}, ws))}));
}

// For random models, weights and bounds, and inputs within the bound (random,
// and the corners +-B that maximise the first layer): every value the plan
// compares lies within its width, the logits within their bound, and the
// result agrees with the plaintext engine.
TEST(MpcWidths, PropertyComparedValuesFitTheirWidths) {
  std::mt19937 r(20240611);
  std::int64_t narrow = 0, calls = 0;
  double worst = 0;
  for (int trial = 0; trial < 100; ++trial) {
    const int kind = trial % 4;
    const Graph g = random_model(r, kind);
    const double bound = std::vector<double>{0.5, 1, 3, 100}[static_cast<std::size_t>(r() % 4)];
    std::vector<Tensor> weights;
    const mpcplan::Plan plan = mpcplan::lower(g, 12, &weights, bound);
    const std::vector<double> bounds = mpcplan::slot_bounds(plan, weights, bound);
    for (const mpcplan::Step& s : plan.steps) {
      if (is_comparison(s)) { EXPECT_LT(s.cmp_bits, 64) << "trial " << trial; }
    }
    model::Executor reference(g);
    for (int q = 0; q < 6; ++q) {
      const std::int64_t batch = 1 + q % 3;
      Shape shape{batch};
      shape.insert(shape.end(), plan.input_shape.begin(), plan.input_shape.end());
      Tensor x = random_tensor(r, shape, static_cast<float>(-bound), static_cast<float>(bound));
      for (float& v : x.f32()) {
        if (q == 3) v = static_cast<float>(bound);
        if (q == 4) v = static_cast<float>(-bound);
        if (q == 5) v = r() % 2 ? static_cast<float>(bound) : static_cast<float>(-bound);
      }
      const mpcplan::Step& first = plan.steps.front();
      if (q == 2 && first.kind == mpcplan::StepKind::kDense) {
        // The input that attains the first layer's bound: B * sign of the
        // row with the largest L1 norm (the worst case of the analysis).
        const auto w = weights.at(static_cast<std::size_t>(first.weight)).f32();
        std::int64_t best = 0;
        double best_l1 = -1;
        for (std::int64_t i = 0; i < first.m; ++i) {
          double l1 = 0;
          for (std::int64_t j = 0; j < first.k; ++j) l1 += std::fabs(w[static_cast<std::size_t>(i * first.k + j)]);
          if (l1 > best_l1) best_l1 = l1, best = i;
        }
        for (std::int64_t j = 0; j < x.numel(); ++j) {
          const float wj = w[static_cast<std::size_t>(best * first.k + j % first.k)];
          x.f32()[static_cast<std::size_t>(j)] = static_cast<float>(wj >= 0 ? bound : -bound);
        }
      }
      for (mpcplan::Output output : {mpcplan::Output::kLogits, mpcplan::Output::kLabel}) {
        ClearProtocol p(12);
        const std::vector<int> h = mpcplan::register_weights(p, plan, &weights);
        const std::optional<Tensor> y = mpcplan::run(p, plan, h, batch, &x, output);
        ASSERT_TRUE(y.has_value());
        EXPECT_EQ(p.violations, 0) << "trial " << trial << " query " << q;
        calls += p.calls;
        narrow += p.narrow_calls;
        worst = std::max(worst, p.worst_fraction);
        if (output == mpcplan::Output::kLogits) {
          const double out_bound = bounds.at(static_cast<std::size_t>(plan.output_slot));
          for (mpc::u64 v : p.revealed) {
            EXPECT_LE(std::fabs(std::ldexp(static_cast<double>(static_cast<std::int64_t>(v)), -12)), out_bound)
                << "trial " << trial;
          }
          const Tensor want = reference.run({x}).at(0);
          float scale = 1.0f;
          for (float v : want.f32()) scale = std::max(scale, std::fabs(v));
          EXPECT_LE(max_abs_diff(*y, want), 0.01f * scale) << "trial " << trial << " query " << q;
        } else {
          // Exactly one winner per row.
          const std::int64_t k = plan.output_shape.back();
          for (std::int64_t row = 0; row < y->numel() / k; ++row) {
            float ones = 0;
            for (std::int64_t i = 0; i < k; ++i) ones += y->f32()[static_cast<std::size_t>(row * k + i)];
            if (k > 1) { EXPECT_EQ(ones, 1.0f) << "trial " << trial; }
          }
        }
      }
    }
  }
  std::printf("%lld comparison calls, %lld narrow; largest |x| / 2^(bits-1): %.3g\n", static_cast<long long>(calls),
              static_cast<long long>(narrow), worst);
  EXPECT_GT(narrow, 0);
  EXPECT_LT(worst, 1.0);
}

// The client's own check in mpcplan::run, before it shares anything.
TEST(MpcWidths, RunRefusesInputAboveBound) {
  std::mt19937 r(5);
  const Graph g = random_model(r, 3);
  std::vector<Tensor> weights;
  const mpcplan::Plan plan = mpcplan::lower(g, 12, &weights, 2.0);
  ClearProtocol p(12);
  const std::vector<int> h = mpcplan::register_weights(p, plan, &weights);
  const Tensor x = Tensor::from_floats({1, 12}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -2.5f});
  expect_error([&] { mpcplan::run(p, plan, h, 1, &x, mpcplan::Output::kLogits); }, ErrorCategory::kBadInput,
               {"-2.5", "index 11", "|x| <= 2"});
  EXPECT_EQ(p.calls, 0);
}

}  // namespace
}  // namespace blindfold::backends
