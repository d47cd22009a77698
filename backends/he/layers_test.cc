// The he front end: the shipped models lowered and compared with the
// plaintext engine, every fold checked on small graphs, refusals named, and
// the parameter choice.
#include "backends/he/layers.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backends/test_util.h"
#include "core/error.h"
#include "core/npy.h"
#include "he/ckks.h"
#include "model/executor.h"
#include "model/onnx_import.h"
#include "model/shape_inference.h"

namespace blindfold::backends::heplan {
namespace {

using model::Attribute;
using model::Graph;
using model::Node;
using model::OpType;

using testutil::Builder;
using testutil::ints;
using testutil::random_tensor;
using testutil::root;

// Every sample of `x` through the chain (and its finish) vs the executor:
// the largest error relative to the largest reference magnitude.
double chain_vs_plaintext(const Graph& g, const Chain& chain, const Tensor& x) {
  model::Executor reference(g);
  const Tensor want = reference.run({x}).at(0);
  const std::int64_t batch = x.dim(0);
  const std::size_t in_per = static_cast<std::size_t>(x.numel() / batch);
  const std::size_t out_per = static_cast<std::size_t>(want.numel() / batch);
  double scale = 0, err = 0;
  for (std::int64_t b = 0; b < batch; ++b) {
    std::vector<double> got =
        evaluate_chain(chain, x.f32().subspan(static_cast<std::size_t>(b) * in_per, in_per));
    apply_finish(chain.finish, chain.softmax_axis, chain.output_shape, got);
    EXPECT_EQ(got.size(), out_per);
    for (std::size_t i = 0; i < out_per && i < got.size(); ++i) {
      const double w = want.f32()[static_cast<std::size_t>(b) * out_per + i];
      scale = std::max(scale, std::fabs(w));
      err = std::max(err, std::fabs(got[i] - w));
    }
  }
  return err / std::max(scale, 1e-30);
}

TEST(HeLayers, FmnistHeFoldsToFiveLayersAndMatchesPlaintext) {
  const Graph g = model::import_onnx_file(root() + "/models/fmnist-he.onnx");
  const Chain chain = lower_chain(g);
  ASSERT_EQ(chain.layers.size(), 5u);
  EXPECT_EQ(chain.layers[0].kind, LayerKind::kConv);
  EXPECT_EQ(chain.layers[1].kind, LayerKind::kPoly);
  EXPECT_EQ(chain.layers[2].kind, LayerKind::kDense);
  EXPECT_EQ(chain.layers[3].kind, LayerKind::kPoly);
  EXPECT_EQ(chain.layers[4].kind, LayerKind::kDense);
  // The conv activation is per channel on [8, 13, 13]; the dense one per element.
  EXPECT_EQ(chain.layers[1].in_shape, (Shape{8, 13, 13}));
  EXPECT_EQ(chain.layers[1].b.size(), 8u);
  EXPECT_EQ(chain.layers[3].in_shape, (Shape{100}));
  EXPECT_EQ(chain.layers[3].b.size(), 100u);
  EXPECT_EQ(chain.layers[2].in_shape, (Shape{1352}));
  EXPECT_EQ(chain.input_shape, (Shape{1, 28, 28}));
  EXPECT_EQ(chain.output_shape, (Shape{10}));
  EXPECT_EQ(chain.finish, Finish::kNone);
  EXPECT_EQ(chain_depth(chain), 5);
  EXPECT_TRUE(chain_support(g).ok);

  const Tensor x = read_npy(root() + "/models/fixtures/fmnist-test-first8.npy");
  EXPECT_LE(chain_vs_plaintext(g, chain, x), 1e-4);

  // The bounds hold for the real images (|x| <= 1).
  const std::vector<double> bounds = chain_bounds(chain, 1.0);
  ASSERT_EQ(bounds.size(), 5u);
  std::vector<double> v = evaluate_chain(chain, x.f32().subspan(0, 784));
  for (double o : v) EXPECT_LE(std::fabs(o), bounds[4]);
}

// The 30 raw features of some rows of the breast-cancer table when the
// Debian package is installed, else values drawn around the model's own
// standardisation constants (mean + sd * u, |u| <= 3).
Tensor cancer_inputs(const Graph& g) {
  std::vector<float> data;
  std::ifstream csv("/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv");
  std::string line;
  int rows = 0;
  if (csv && std::getline(csv, line)) {
    while (rows < 32 && std::getline(csv, line)) {
      std::stringstream ss(line);
      std::string cell;
      for (int i = 0; i < 30 && std::getline(ss, cell, ','); ++i) data.push_back(std::stof(cell));
      ++rows;
    }
  }
  if (rows == 0 || data.size() != static_cast<std::size_t>(rows) * 30) {
    data.clear();
    rows = 16;
    std::vector<float> mean(30, 0.0f), sd(30, 1.0f);
    for (const Node& n : g.nodes) {
      for (int v : n.inputs) {
        if (v < 0 || !g.value(v).is_constant() || g.value(v).constant->numel() != 30) continue;
        const std::vector<float> c = g.value(v).constant->to_float_vector();
        if (n.op == OpType::kSub) mean = c;
        if (n.op == OpType::kDiv) sd = c;
      }
    }
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-3.0f, 3.0f);
    for (int r = 0; r < rows; ++r) {
      for (int i = 0; i < 30; ++i)
        data.push_back(mean[static_cast<std::size_t>(i)] +
                       sd[static_cast<std::size_t>(i)] * u(rng));
    }
  }
  return Tensor::from_floats({rows, 30}, std::move(data));
}

TEST(HeLayers, CancerLogregFoldsStandardisationAndFinishesWithSigmoid) {
  const Graph g = model::import_onnx_file(root() + "/models/cancer-logreg.onnx");
  const Chain chain = lower_chain(g);
  ASSERT_EQ(chain.layers.size(), 1u);
  EXPECT_EQ(chain.layers[0].kind, LayerKind::kDense);
  EXPECT_EQ(chain.layers[0].in_shape, (Shape{30}));
  EXPECT_EQ(chain.layers[0].out_shape, (Shape{1}));
  EXPECT_EQ(chain.finish, Finish::kSigmoid);
  EXPECT_EQ(chain_depth(chain), 1);
  EXPECT_LE(chain_vs_plaintext(g, chain, cancer_inputs(g)), 1e-4);
}

TEST(HeLayers, RefusesReluAndMaxPoolNamingTheNodeWithTheHint) {
  const Graph g = model::import_onnx_file(root() + "/models/fmnist-lenet.onnx");
  try {
    lower_chain(g);
    FAIL() << "lenet lowered";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUnsupported);
    const std::string m = e.what();
    EXPECT_NE(m.find("node '"), std::string::npos) << m;
    EXPECT_NE(
        m.find("CKKS evaluates polynomials only: use a model with polynomial activations (e.g. "
               "models/fmnist-he.onnx)"),
        std::string::npos)
        << m;
  }
  const Support s = chain_support(g);
  EXPECT_FALSE(s.ok);
  EXPECT_FALSE(s.node.empty());

  for (OpType op : {OpType::kRelu, OpType::kTanh}) {
    Builder b({6});
    const int w = b.constant(Tensor::from_floats({6, 4}, std::vector<float>(24, 0.5f)));
    const Graph g2 = b.finish(b.node(OpType::kMatMul, {b.node(op, {b.input()}), w}));
    const Support s2 = chain_support(g2);
    EXPECT_FALSE(s2.ok);
    EXPECT_EQ(s2.node, std::string(model::op_name(op)) + "_0");
    EXPECT_NE(s2.reason.find("polynomials only"), std::string::npos) << s2.reason;
  }
  {
    Builder b({2, 4, 4});
    const Graph g2 =
        b.finish(b.node(OpType::kMaxPool, {b.input()}, {{"kernel_shape", ints({2, 2})}}));
    EXPECT_EQ(chain_support(g2).node, "MaxPool_0");
  }
}

TEST(HeLayers, RefusesSigmoidInsideTheNetwork) {
  Builder b({6});
  const int w = b.constant(Tensor::from_floats({6, 4}, std::vector<float>(24, 0.5f)));
  const Graph g = b.finish(b.node(OpType::kMatMul, {b.node(OpType::kSigmoid, {b.input()}), w}));
  const Support s = chain_support(g);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.node, "Sigmoid_0");
  EXPECT_NE(s.reason.find("final op"), std::string::npos) << s.reason;
}

TEST(HeLayers, RefusesActivationConstantsWithNothingToAbsorbThem) {
  {  // 2 x^2 at the end: a = 2 has no linear layer after it.
    Builder b({5});
    const int w = b.constant(Tensor::from_floats({5, 5}, std::vector<float>(25, 0.1f)));
    const int y = b.node(OpType::kMatMul, {b.input(), w});
    const int sq = b.node(OpType::kMul, {y, y});
    const Graph g = b.finish(b.node(OpType::kMul, {sq, b.constant(Tensor::scalar(2.0f))}));
    const Support s = chain_support(g);
    EXPECT_FALSE(s.ok);
    EXPECT_NE(s.reason.find("no linear layer"), std::string::npos) << s.reason;
  }
  {  // x^2 at the end is fine (a = 1, c = 0).
    Builder b({5});
    const int w = b.constant(Tensor::from_floats({5, 5}, std::vector<float>(25, 0.1f)));
    const int y = b.node(OpType::kMatMul, {b.input(), w});
    const Graph g = b.finish(b.node(OpType::kMul, {y, y}));
    const Chain c = lower_chain(g);
    ASSERT_EQ(c.layers.size(), 2u);
    EXPECT_EQ(c.layers[1].kind, LayerKind::kPoly);
    EXPECT_EQ(c.layers[1].b, std::vector<double>(5, 0.0));
  }
  {  // a cubic is not one activation.
    Builder b({5});
    const int sq = b.node(OpType::kMul, {b.input(), b.input()});
    const Graph g = b.finish(b.node(OpType::kMul, {sq, b.input()}));
    EXPECT_FALSE(chain_support(g).ok);
  }
  {  // a residual connection across a layer.
    Builder b({5});
    const int w = b.constant(Tensor::from_floats({5, 5}, std::vector<float>(25, 0.1f)));
    const int y = b.node(OpType::kMatMul, {b.input(), w});
    const Graph g = b.finish(b.node(OpType::kAdd, {y, b.input()}));
    const Support s = chain_support(g);
    EXPECT_FALSE(s.ok);
    EXPECT_NE(s.reason.find("chain"), std::string::npos) << s.reason;
  }
}

// Every fold on one graph: input standardisation before a conv (per
// channel, no padding), BatchNormalization, a x^2 + b x + c per channel in
// an odd association, average pooling, Flatten, a dense layer, Pow 2, a
// scale and offset after the last layer, and Softmax.
TEST(HeLayers, FoldsMatchThePlaintextEngine) {
  std::mt19937 r(11);
  Builder b({2, 8, 8});
  int v = b.node(OpType::kSub, {b.input(), b.constant(random_tensor(r, {2, 1, 1}, -0.3f, 0.3f))});
  v = b.node(OpType::kDiv, {v, b.constant(random_tensor(r, {2, 1, 1}, 0.5f, 2.0f))});
  v = b.node(OpType::kConv, {v, b.constant(random_tensor(r, {3, 2, 3, 3}, -0.5f, 0.5f)),
                             b.constant(random_tensor(r, {3}))});
  v = b.node(OpType::kBatchNormalization,
             {v, b.constant(random_tensor(r, {3}, 0.5f, 1.5f)), b.constant(random_tensor(r, {3})),
              b.constant(random_tensor(r, {3})), b.constant(random_tensor(r, {3}, 0.5f, 1.5f))});
  // (a * x) * x + (c + b * x), a, b, c per channel.
  const int a = b.constant(random_tensor(r, {3, 1, 1}, 0.2f, 0.8f));
  const int bb = b.constant(random_tensor(r, {3, 1, 1}));
  const int c = b.constant(random_tensor(r, {3, 1, 1}));
  const int quad = b.node(OpType::kMul, {b.node(OpType::kMul, {a, v}), v});
  v = b.node(OpType::kAdd, {quad, b.node(OpType::kAdd, {c, b.node(OpType::kMul, {v, bb})})});
  v = b.node(OpType::kAveragePool, {v},
             {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}});
  v = b.node(OpType::kFlatten, {v}, {{"axis", Attribute::of_int(1)}});
  v = b.node(OpType::kGemm,
             {v, b.constant(random_tensor(r, {7, 27})), b.constant(random_tensor(r, {7}))},
             {{"transB", Attribute::of_int(1)}});
  v = b.node(OpType::kPow, {v, b.constant(Tensor::scalar(2.0f))});
  v = b.node(OpType::kSub, {b.constant(random_tensor(r, {7})), v});  // c - x^2: a = -1 per element
  v = b.node(OpType::kMatMul, {v, b.constant(random_tensor(r, {7, 4}))});
  v = b.node(OpType::kMul, {v, b.constant(random_tensor(r, {4}, 0.5f, 2.0f))});
  v = b.node(OpType::kAdd, {v, b.constant(random_tensor(r, {4}))});
  const Graph g = b.finish(b.node(OpType::kSoftmax, {v}, {{"axis", Attribute::of_int(-1)}}));
  const Chain chain = lower_chain(g);
  ASSERT_EQ(chain.layers.size(), 6u);
  const LayerKind want[] = {LayerKind::kConv,  LayerKind::kPoly, LayerKind::kAvgPool,
                            LayerKind::kDense, LayerKind::kPoly, LayerKind::kDense};
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(chain.layers[i].kind, want[i]) << i;
  EXPECT_EQ(chain.layers[1].b.size(), 3u);
  EXPECT_EQ(chain.finish, Finish::kSoftmax);
  EXPECT_EQ(chain.softmax_axis, 0);
  const Tensor x = random_tensor(r, {5, 2, 8, 8});
  EXPECT_LE(chain_vs_plaintext(g, chain, x), 1e-5);
}

TEST(HeLayers, OffsetBeforePaddedConvIsRefusedScaleIsFolded) {
  std::mt19937 r(3);
  for (bool offset : {false, true}) {
    Builder b({1, 6, 6});
    int v =
        b.node(offset ? OpType::kAdd : OpType::kMul, {b.input(), b.constant(Tensor::scalar(0.5f))});
    v = b.node(OpType::kConv, {v, b.constant(random_tensor(r, {2, 1, 3, 3}))},
               {{"pads", ints({1, 1, 1, 1})}});
    const Graph g = b.finish(v);
    if (offset) {
      EXPECT_FALSE(chain_support(g).ok);
    } else {
      const Chain chain = lower_chain(g);
      EXPECT_LE(chain_vs_plaintext(g, chain, random_tensor(r, {3, 1, 6, 6})), 1e-6);
    }
  }
}

TEST(HeLayers, ChainBoundsFromRowNorms) {
  Chain c;
  Layer d;
  d.kind = LayerKind::kDense;
  d.in_shape = {2};
  d.out_shape = {2};
  d.weight = {1, -2, 0.5, 0.5};
  d.bias = {0.25, -3};
  Layer p;
  p.kind = LayerKind::kPoly;
  p.in_shape = p.out_shape = {2};
  p.b = {1, -2};
  c.layers = {d, p};
  c.input_shape = {2};
  const std::vector<double> b = chain_bounds(c, 2.0);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_DOUBLE_EQ(b[0], 6.25);  // max(3 * 2 + 0.25, 1 * 2 + 3)
  EXPECT_DOUBLE_EQ(b[1], 6.25 * 6.25 + 2 * 6.25);
}

TEST(HeLayers, ChooseParametersSmallestSecureDegree) {
  const he::CkksParameters p = choose_parameters(5, 40, 60, 60);
  EXPECT_EQ(p.n, 16384u);
  EXPECT_EQ(p.chain_bits, (std::vector<int>{60, 40, 40, 40, 40, 40}));
  EXPECT_EQ(p.special_primes, 1);
  EXPECT_EQ(p.special_bits, 60);
  EXPECT_EQ(p.log2_scale, 40);
  auto ctx = he::CkksContext::create(p);
  EXPECT_TRUE(ctx->secure());
  EXPECT_EQ(ctx->max_level(), 5);

  EXPECT_EQ(choose_parameters(1, 40, 60, 60).n, 8192u);   // cancer-logreg: 160 bits > 109
  EXPECT_EQ(choose_parameters(1, 25, 30, 30).n, 4096u);   // 85 bits
  EXPECT_EQ(choose_parameters(4, 40, 60, 60).n, 16384u);  // 280 bits > 218
  for (int depth = 0; depth <= 19; ++depth) {
    const he::CkksParameters q = choose_parameters(depth, 40, 60, 60);
    const int total = 120 + 40 * depth;
    EXPECT_LE(total, he::max_log_qp(q.n, he::SecurityLevel::k128)) << depth;
    if (q.n > 4096) {
      EXPECT_GT(total, he::max_log_qp(q.n / 2, he::SecurityLevel::k128)) << depth;
    }
    EXPECT_NO_THROW(he::CkksContext::create(q)) << q.describe();
  }
  try {
    choose_parameters(20, 40, 60, 60);  // 920 bits > 881
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInsecureParameters);
    EXPECT_NE(std::string(e.what()).find("881"), std::string::npos) << e.what();
  }
  EXPECT_THROW(choose_parameters(-1, 40, 60, 60), Error);
  EXPECT_THROW(choose_parameters(2, 61, 60, 60), Error);
}

TEST(HeLayers, EvaluateChainRefusesAWrongSize) {
  Chain c;
  c.input_shape = {3};
  std::vector<float> x(4, 0.0f);
  EXPECT_THROW(evaluate_chain(c, x), Error);
}

}  // namespace
}  // namespace blindfold::backends::heplan
