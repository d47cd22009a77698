// The importer against hand-built ONNX protos: good graphs, every kind of
// malformed one, and the passes (constant and BatchNorm folding).
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "model/executor.h"
#include "model/onnx_import.h"

using namespace blindfold;
using blindfold::model::Graph;

namespace {

struct Builder {
  onnx::ModelProto m;
  onnx::GraphProto* g;
  Builder(int opset = 13) {
    m.set_ir_version(8);
    m.set_producer_name("test");
    auto* os = m.add_opset_import();
    os->set_domain("");
    os->set_version(opset);
    g = m.mutable_graph();
    g->set_name("g");
  }
  void input(const std::string& name, std::vector<std::int64_t> dims, bool batch = true,
             int type = onnx::TensorProto_DataType_FLOAT) {
    auto* vi = g->add_input();
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(type);
    auto* sh = tt->mutable_shape();
    for (std::size_t i = 0; i < dims.size(); ++i) {
      auto* d = sh->add_dim();
      if (i == 0 && batch) {
        d->set_dim_param("N");
      } else {
        d->set_dim_value(dims[i]);
      }
    }
  }
  void output(const std::string& name) { g->add_output()->set_name(name); }
  void init(const std::string& name, std::vector<std::int64_t> dims, std::vector<float> v) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto_DataType_FLOAT);
    for (auto d : dims) t->add_dims(d);
    for (float f : v) t->add_float_data(f);
  }
  onnx::NodeProto* node(const std::string& op, std::vector<std::string> in,
                        std::vector<std::string> out, const std::string& name = "") {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + std::to_string(g->node_size()) : name);
    for (auto& s : in) n->add_input(s);
    for (auto& s : out) n->add_output(s);
    return n;
  }
  std::string bytes() const { return m.SerializeAsString(); }
};

void expect_error(const std::string& bytes, ErrorCategory cat, const std::string& needle) {
  try {
    model::import_onnx(bytes);
    FAIL() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), cat) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Import, GemmReluRunsWithSymbolicBatch) {
  Builder b;
  b.input("x", {1, 3});
  b.init("w", {3, 2}, {1, 2, 3, 4, 5, 6});
  b.init("c", {2}, {0.5f, -100});
  b.node("MatMul", {"x", "w"}, {"y"});
  b.node("Add", {"y", "c"}, {"z"});
  b.node("Relu", {"z"}, {"out"});
  b.output("out");
  const Graph g = model::import_onnx(b.bytes());
  EXPECT_EQ(g.value(g.outputs[0]).shape_string(), "[N, 2]");
  model::Executor ex(g);
  const auto out = ex.run({Tensor::from_floats({2, 3}, {1, 0, 0, 0, 1, 1})});
  ASSERT_EQ(out[0].shape(), (Shape{2, 2}));
  EXPECT_FLOAT_EQ(out[0].f32()[0], 1.5f);
  EXPECT_FLOAT_EQ(out[0].f32()[1], 0.0f);  // 2 - 100 clipped
  EXPECT_FLOAT_EQ(out[0].f32()[2], 8.5f);
}

TEST(Import, MetadataPropsImportedAndBounded) {
  auto model = [] {
    Builder b;
    b.input("x", {1, 3});
    b.node("Relu", {"x"}, {"y"});
    b.output("y");
    return b;
  };
  auto add = [](Builder& b, const std::string& k, const std::string& v) {
    auto* e = b.m.add_metadata_props();
    e->set_key(k);
    e->set_value(v);
  };
  Builder b = model();
  EXPECT_TRUE(model::import_onnx(b.bytes()).metadata.empty());
  add(b, "blindfold.input_bound", "1");
  add(b, "author", "test");
  const Graph g = model::import_onnx(b.bytes());
  EXPECT_EQ(g.metadata.size(), 2u);
  EXPECT_EQ(g.metadata.at("blindfold.input_bound"), "1");
  EXPECT_EQ(g.metadata.at("author"), "test");
  // At most 256 entries.
  for (int i = 2; i < 256; ++i) add(b, "key" + std::to_string(i), "v");
  EXPECT_EQ(model::import_onnx(b.bytes()).metadata.size(), 256u);
  add(b, "one-too-many", "v");
  expect_error(b.bytes(), ErrorCategory::kBadModel, "more than 256 metadata entries");
  // A key given twice.
  Builder twice = model();
  add(twice, "blindfold.input_bound", "1");
  add(twice, "blindfold.input_bound", "2");
  expect_error(twice.bytes(), ErrorCategory::kBadModel, "'blindfold.input_bound' appears twice");
}

TEST(Import, WrongInputShapeAndDtypeAreBadInput) {
  Builder b;
  b.input("x", {1, 3});
  b.node("Relu", {"x"}, {"y"});
  b.output("y");
  const Graph g = model::import_onnx(b.bytes());
  model::Executor ex(g);
  try {
    ex.run({Tensor::from_floats({2, 4}, std::vector<float>(8))});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
    EXPECT_NE(std::string(e.what()).find("[N, 3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ex.run({Tensor::from_ints({1, 3}, {1, 2, 3})}), Error);
  EXPECT_THROW(ex.run({}), Error);
}

TEST(Import, UnsupportedOpNamesNodeOpAndOpset) {
  Builder b(15);
  b.input("x", {1, 3});
  b.node("HardSwish", {"x"}, {"y"}, "act7");
  b.output("y");
  expect_error(b.bytes(), ErrorCategory::kUnsupported,
               "unsupported op 'HardSwish' at node 'act7' (opset 15)");
}

TEST(Import, ForeignDomainRefused) {
  Builder b;
  b.input("x", {1, 3});
  auto* n = b.node("Relu", {"x"}, {"y"}, "r");
  n->set_domain("com.microsoft");
  b.output("y");
  expect_error(b.bytes(), ErrorCategory::kUnsupported, "com.microsoft.Relu");
}

TEST(Import, TruncatedAndGarbageBytes) {
  Builder b;
  b.input("x", {1, 3});
  b.init("w", {3, 2}, {1, 2, 3, 4, 5, 6});
  b.node("MatMul", {"x", "w"}, {"y"});
  b.output("y");
  const std::string good = b.bytes();
  for (std::size_t cut : {good.size() / 2, good.size() - 3, std::size_t{5}}) {
    EXPECT_THROW(model::import_onnx(good.substr(0, cut)), Error);
  }
  EXPECT_THROW(model::import_onnx("this is not a model at all"), Error);
  EXPECT_THROW(model::import_onnx(""), Error);
}

TEST(Import, AbsurdInitializerDimsRefusedBeforeAllocation) {
  Builder b;
  b.input("x", {1, 3});
  auto* t = b.g->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto_DataType_FLOAT);
  t->add_dims(1 << 30);
  t->add_dims(1 << 30);
  b.node("MatMul", {"x", "w"}, {"y"});
  b.output("y");
  expect_error(b.bytes(), ErrorCategory::kBadModel, "more than 2^31 elements");
}

TEST(Import, RawDataLengthChecked) {
  Builder b;
  b.input("x", {1, 2});
  auto* t = b.g->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto_DataType_FLOAT);
  t->add_dims(2);
  t->add_dims(2);
  t->set_raw_data(std::string(15, '\0'));  // needs 16
  b.node("MatMul", {"x", "w"}, {"y"});
  b.output("y");
  expect_error(b.bytes(), ErrorCategory::kBadModel, "15 bytes of raw data");
}

TEST(Import, UndefinedInputAndCycleRefused) {
  Builder b;
  b.input("x", {1, 2});
  b.node("Relu", {"nowhere"}, {"y"}, "r1");
  b.output("y");
  expect_error(b.bytes(), ErrorCategory::kBadModel, "'nowhere'");
}

TEST(Import, DynamicNonBatchDimRefused) {
  Builder b;
  auto* vi = b.g->add_input();
  vi->set_name("x");
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto_DataType_FLOAT);
  tt->mutable_shape()->add_dim()->set_dim_param("N");
  tt->mutable_shape()->add_dim()->set_dim_param("T");
  b.node("Relu", {"x"}, {"y"});
  b.output("y");
  expect_error(b.bytes(), ErrorCategory::kUnsupported, "only the first (batch) dimension");
}

TEST(Import, ShapeMismatchNamesNode) {
  Builder b;
  b.input("x", {1, 3});
  b.init("w", {4, 2}, std::vector<float>(8, 1.0f));
  b.node("MatMul", {"x", "w"}, {"y"}, "fc1");
  b.output("y");
  expect_error(b.bytes(), ErrorCategory::kBadModel, "fc1");
}

TEST(Import, ConstantFoldingAndBatchNormFolding) {
  Builder b;
  b.input("x", {1, 2, 4, 4});
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> w(3 * 2 * 3 * 3), bias(3);
  for (auto& v : w) v = nd(rng);
  for (auto& v : bias) v = nd(rng);
  b.init("w", {3, 2, 3, 3}, w);
  b.init("b", {3}, bias);
  b.init("s", {3}, {1.5f, 0.5f, 2.0f});
  b.init("sh", {3}, {0.1f, -0.2f, 0.3f});
  b.init("mu", {3}, {0.05f, 0.1f, -0.1f});
  b.init("var", {3}, {1.0f, 0.25f, 4.0f});
  // A constant subgraph: two = one + one, folded away.
  b.init("one", {1}, {1.0f});
  b.node("Add", {"one", "one"}, {"two"}, "const_add");
  auto* conv = b.node("Conv", {"x", "w", "b"}, {"c"}, "conv");
  auto* pads = conv->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto_AttributeType_INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  b.node("BatchNormalization", {"c", "s", "sh", "mu", "var"}, {"bn"}, "bn");
  b.node("Mul", {"bn", "two"}, {"out"}, "double");
  b.output("out");
  model::ImportOptions raw;
  raw.optimize = false;
  const Graph plain = model::import_onnx(b.bytes(), raw);
  const Graph opt = model::import_onnx(b.bytes());
  EXPECT_EQ(plain.nodes.size(), 3u);  // the constant Add is always folded
  ASSERT_EQ(opt.nodes.size(), 2u);    // Conv (BN folded in) and Mul
  EXPECT_EQ(opt.nodes[0].op, model::OpType::kConv);
  std::vector<float> xin(2 * 2 * 4 * 4);
  for (auto& v : xin) v = nd(rng);
  const Tensor x = Tensor::from_floats({2, 2, 4, 4}, xin);
  model::Executor e1(plain), e2(opt);
  const std::vector<Tensor> ra = e1.run({x}), rc = e2.run({x});
  const auto a = ra[0].f32();
  const auto c = rc[0].f32();
  ASSERT_EQ(a.size(), c.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], c[i], 1e-4f);
}

TEST(Import, MissingFileIsIoError) {
  try {
    model::import_onnx_file("/nonexistent/model.onnx");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIo);
  }
}
