// Latency mode (backends/he/latency.cc): the shipped models under CKKS
// against the plaintext engine, the plan's refusals, and the Galois keys it
// asks for. The client's side is done here with he/ directly (keys, the
// spec's in_map and out_slot), so these tests do not depend on program.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backends/he/layers.h"
#include "backends/he/modes.h"
#include "backends/test_util.h"
#include "core/error.h"
#include "core/npy.h"
#include "core/thread_pool.h"
#include "he/ckks.h"
#include "model/executor.h"
#include "model/onnx_import.h"

namespace blindfold::backends::heplan {
namespace {

using testutil::root;

double metadata_bound(const model::Graph& g) {
  auto it = g.metadata.find("blindfold.input_bound");
  return it == g.metadata.end() ? 0.0 : std::stod(it->second);
}

// The client's side of a latency program, with he/ directly.
class TestClient {
 public:
  explicit TestClient(const Program& program)
      : spec_(program.spec()),
        ctx_(program.context()),
        keygen_(ctx_),
        encoder_(ctx_),
        encryptor_(ctx_, keygen_.secret_key()),
        decryptor_(ctx_, keygen_.secret_key()) {
    keys_.relin = keygen_.create_relin_keys();
    keys_.galois = keygen_.create_galois_keys(spec_.galois_steps, false);
  }
  const EvalKeys& keys() const { return keys_; }
  EvalKeys& mutable_keys() { return keys_; }

  he::Ciphertext encrypt(const float* sample) {
    const std::size_t slots = ctx_->slots();
    std::vector<double> v(slots, 0.0);
    for (std::size_t s = 0; s < slots; ++s) {
      const std::int32_t e = spec_.in_map[s];
      if (e >= 0) v[s] = sample[e];
    }
    return encryptor_.encrypt(encoder_.encode(v, std::exp2(spec_.log2_input_scale)));
  }
  std::vector<double> decrypt(const std::vector<he::Ciphertext>& out) const {
    std::vector<std::vector<std::complex<double>>> dec;
    for (const auto& c : out) dec.push_back(encoder_.decode(decryptor_.decrypt(c)));
    std::vector<double> r(spec_.out_slot.size());
    for (std::size_t k = 0; k < r.size(); ++k) {
      r[k] = dec[static_cast<std::size_t>(spec_.out_ct[k])]
                [static_cast<std::size_t>(spec_.out_slot[k])]
                    .real();
    }
    return r;
  }
  /// One sample through `program` alone: encrypted, evaluated, decrypted.
  std::vector<double> query(const Program& program, const float* sample) {
    std::vector<he::Ciphertext> q;
    q.push_back(encrypt(sample));
    return decrypt(program.evaluate(keys_, std::move(q)));
  }

 private:
  ClientSpec spec_;
  std::shared_ptr<const he::CkksContext> ctx_;
  he::KeyGenerator keygen_;
  he::CkksEncoder encoder_;
  he::Encryptor encryptor_;
  he::Decryptor decryptor_;
  EvalKeys keys_;
};

int argmax(const std::vector<double>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Fashion-MNIST test images [limit, 1, 28, 28] as pixels / 255, read with
// gzip -dc (the backends' tests do not link zlib). Empty if unavailable.
std::vector<float> fmnist_images(std::int64_t limit) {
  const std::string path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  FILE* f = popen(("gzip -dc " + path + " 2>/dev/null").c_str(), "r");
  if (!f) return {};
  std::vector<unsigned char> bytes;
  unsigned char buf[1 << 16];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  pclose(f);
  if (bytes.size() < 16 + 784) return {};
  const std::int64_t count =
      std::min<std::int64_t>(limit, static_cast<std::int64_t>((bytes.size() - 16) / 784));
  std::vector<float> out(static_cast<std::size_t>(count * 784));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(bytes[16 + i]) / 255.0f;
  return out;
}

struct FmnistFixture {
  model::Graph graph;
  Chain chain;
  std::unique_ptr<Program> program;
};

FmnistFixture& fmnist(ThreadPool* pool) {
  static FmnistFixture* f = [] {
    auto* r = new FmnistFixture;
    r->graph = model::import_onnx_file(root() + "/models/fmnist-he.onnx");
    r->chain = lower_chain(r->graph);
    ProgramOptions o;
    o.input_bound = metadata_bound(r->graph);
    r->program = build_latency(r->chain, o);
    return r;
  }();
  (void)pool;
  return *f;
}

TEST(HeLatency, FmnistPlan) {
  auto& f = fmnist(nullptr);
  const ClientSpec& s = f.program->spec();
  std::printf("%s", f.program->describe().c_str());
  EXPECT_EQ(s.mode, Mode::kLatency);
  EXPECT_EQ(s.params.n, 16384u);  // depth 5 does not fit N = 8192 at 128 bits
  EXPECT_EQ(s.input_cts, 1);
  EXPECT_EQ(s.in_map.size(), 8192u);
  EXPECT_EQ(s.out_slot.size(), 10u);
  EXPECT_TRUE(s.relin_keys);
  EXPECT_GT(s.output_bound, 0);
  EXPECT_GT(s.output_error, 0);
  EXPECT_LE(s.output_error, 1e-3 * s.output_bound);
  EXPECT_TRUE(std::is_sorted(s.galois_steps.begin(), s.galois_steps.end()));
  EXPECT_EQ(std::adjacent_find(s.galois_steps.begin(), s.galois_steps.end()), s.galois_steps.end());
  EXPECT_TRUE(latency_support(f.chain).ok);
}

// Real images: the labels and values of the plaintext engine, within the
// spec's output_error. BLINDFOLD_HE_IMAGES sets how many dataset images
// (default 200) beyond the 8 fixtures, from index BLINDFOLD_HE_OFFSET
// (default 8: the fixtures are the first 8).
TEST(HeLatency, FmnistMatchesPlaintext) {
  ThreadPool pool(2);
  auto& f = fmnist(&pool);
  ProgramOptions o;
  o.input_bound = 1;
  o.pool = &pool;
  auto program = build_latency(f.chain, o);
  TestClient client(*program);
  model::Executor exec(f.graph);

  std::vector<float> images;
  {
    const Tensor x = read_npy(root() + "/models/fixtures/fmnist-test-first8.npy");
    images.assign(x.f32().begin(), x.f32().end());
  }
  std::int64_t extra = 200, offset = 8;
  if (const char* e = std::getenv("BLINDFOLD_HE_IMAGES")) extra = std::atoll(e);
  if (const char* e = std::getenv("BLINDFOLD_HE_OFFSET")) offset = std::max(8LL, std::atoll(e));
  const std::vector<float> more = fmnist_images(offset + extra);
  if (static_cast<std::int64_t>(more.size()) > offset * 784) {
    images.insert(images.end(), more.begin() + offset * 784, more.end());
  }
  const std::int64_t count = static_cast<std::int64_t>(images.size() / 784);

  int agree = 0;
  double worst = 0, worst_chain = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    const float* img = images.data() + i * 784;
    const Tensor in = Tensor::from_floats({1, 1, 28, 28}, std::vector<float>(img, img + 784));
    const auto ref_t = exec.run({in})[0];
    std::vector<double> ref(ref_t.f32().begin(), ref_t.f32().end());
    const auto exact = evaluate_chain(f.chain, std::span<const float>(img, 784));
    const auto got = client.query(*program, img);
    ASSERT_EQ(got.size(), ref.size());
    for (std::size_t k = 0; k < ref.size(); ++k) {
      worst = std::max(worst, std::fabs(got[k] - ref[k]));
      worst_chain = std::max(worst_chain, std::fabs(got[k] - exact[k]));
    }
    agree += argmax(got) == argmax(ref);
  }
  std::printf(
      "fmnist-he latency: %d / %lld labels agree, max |he - plain| = %.3g, max |he - chain in "
      "double| = %.3g "
      "(budget %.3g)\n",
      agree, static_cast<long long>(count), worst, worst_chain, program->spec().output_error);
  // The encrypted program against its own double-precision reference: within
  // the error budget. Against the float32 plaintext engine: 1e-4 more for the
  // engine's own rounding.
  EXPECT_LE(worst_chain, program->spec().output_error);
  EXPECT_LE(worst, program->spec().output_error + 1e-4);
  EXPECT_EQ(agree, count);
}

// Every Galois key is used and none is missing: the program runs with
// exactly spec.galois_steps and fails without any one of them.
TEST(HeLatency, GaloisStepsAreExactlyThoseUsed) {
  auto& f = fmnist(nullptr);
  TestClient client(*f.program);
  const auto& steps = f.program->spec().galois_steps;
  EXPECT_EQ(client.keys().galois.keys.size(), steps.size());
  const Tensor x = read_npy(root() + "/models/fixtures/fmnist-test-first8.npy");
  const he::Ciphertext ct = client.encrypt(x.f32().data());
  {
    std::vector<he::Ciphertext> q{ct};
    EXPECT_NO_THROW(f.program->evaluate(client.keys(), std::move(q)));
  }
  const std::size_t n = f.program->context()->n();
  for (int s : steps) {
    EvalKeys k = client.keys();
    k.galois.keys.erase(he::galois_element_for_rotation(s, n));
    std::vector<he::Ciphertext> q{ct};
    EXPECT_THROW(f.program->evaluate(k, std::move(q)), Error) << "step " << s << " unused";
  }
}

TEST(HeLatency, RefusesBadInputCiphertexts) {
  auto& f = fmnist(nullptr);
  TestClient client(*f.program);
  const Tensor x = read_npy(root() + "/models/fixtures/fmnist-test-first8.npy");
  he::Ciphertext ct = client.encrypt(x.f32().data());
  EXPECT_THROW(f.program->evaluate(client.keys(), {}), Error);
  EXPECT_THROW(f.program->evaluate(client.keys(), {ct, ct}), Error);
  he::Ciphertext low = ct;
  low.drop_to_level(1);
  EXPECT_THROW(f.program->evaluate(client.keys(), {low}), Error);
  he::Ciphertext scaled = ct;
  scaled.set_scale(std::exp2(30));
  EXPECT_THROW(f.program->evaluate(client.keys(), {scaled}), Error);
}

TEST(HeLatency, CancerLogregMatches) {
  const model::Graph g = model::import_onnx_file(root() + "/models/cancer-logreg.onnx");
  const Chain chain = lower_chain(g);
  ProgramOptions o;
  o.input_bound = 5000;  // raw features (the largest, worst area, is about 4,250)
  auto program = build_latency(chain, o);
  std::printf("%s", program->describe().c_str());
  const ClientSpec& s = program->spec();
  EXPECT_LE(s.params.n, 8192u);
  EXPECT_FALSE(s.relin_keys);
  EXPECT_EQ(s.finish, Finish::kSigmoid);
  TestClient client(*program);
  // Inputs around the model's own standardisation constants.
  std::vector<float> mean, sd;
  for (const auto& v : g.values) {
    if (v.name == "0.mean") mean.assign(v.constant->f32().begin(), v.constant->f32().end());
    if (v.name == "0.std") sd.assign(v.constant->f32().begin(), v.constant->f32().end());
  }
  ASSERT_EQ(mean.size(), 30u);
  ASSERT_EQ(sd.size(), 30u);
  std::mt19937 rng(7);
  std::normal_distribution<float> z(0.0f, 1.5f);
  for (int t = 0; t < 20; ++t) {
    std::vector<float> in(30);
    for (int k = 0; k < 30; ++k)
      in[static_cast<std::size_t>(k)] = std::max(
          0.0f, mean[static_cast<std::size_t>(k)] + z(rng) * sd[static_cast<std::size_t>(k)]);
    const std::vector<double> ref = evaluate_chain(chain, in);  // the logit, before the sigmoid
    const auto got = client.query(*program, in.data());
    ASSERT_EQ(got.size(), 1u);
    EXPECT_NEAR(got[0], ref[0], s.output_error + 1e-9) << "sample " << t;
    EXPECT_EQ(got[0] > 0, ref[0] > 0);
  }
}

TEST(HeLatency, RefusesWhatItCannotPack) {
  // The front end refuses ReLU/MaxPool (fmnist-lenet) naming the node.
  const model::Graph lenet = model::import_onnx_file(root() + "/models/fmnist-lenet.onnx");
  try {
    (void)lower_chain(lenet);
    ADD_FAILURE() << "fmnist-lenet lowered";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("Relu"), std::string::npos) << e.what();
  }
}

// Layers of the hand-built chains below; the tests draw the weights.
Layer layer(LayerKind kind, const std::string& node, Shape in, Shape out) {
  Layer l;
  l.kind = kind;
  l.node = node;
  l.in_shape = std::move(in);
  l.out_shape = std::move(out);
  return l;
}
// A k x k convolution, stride `stride`, `pad` on every side.
Layer conv_layer(const std::string& node, Shape in, Shape out, std::int64_t k,
                 std::int64_t stride = 1, std::int64_t pad = 0) {
  Layer l = layer(LayerKind::kConv, node, std::move(in), std::move(out));
  l.kh = l.kw = k;
  l.sh = l.sw = stride;
  l.pt = l.pl = l.pb = l.pr = pad;
  return l;
}
Layer poly_layer(const std::string& node, const Shape& shape, std::vector<double> b = {}) {
  Layer l = layer(LayerKind::kPoly, node, shape, shape);
  l.b = std::move(b);
  return l;
}
// k x k average pooling, stride k.
Layer pool_layer(const std::string& node, Shape in, Shape out, std::int64_t k) {
  Layer l = layer(LayerKind::kAvgPool, node, std::move(in), std::move(out));
  l.kh = l.kw = l.sh = l.sw = k;
  return l;
}
Layer dense_layer(const std::string& node, std::int64_t in, std::int64_t out) {
  return layer(LayerKind::kDense, node, {in}, {out});
}

// Builds c's latency program (|input| <= 1; printed) and checks 3 random
// samples of c's input in [0, 1), each queried alone, against evaluate_chain:
// every output within `tolerance`, and within the program's declared
// output_error too when `within_budget`.
void expect_matches_chain(const Chain& c, std::mt19937& rng, double tolerance, bool within_budget) {
  ProgramOptions o;
  o.input_bound = 1;
  auto program = build_latency(c, o);
  std::printf("%s", program->describe().c_str());
  TestClient client(*program);
  std::uniform_real_distribution<float> px(0.0f, 1.0f);
  std::size_t size = 1;
  for (std::int64_t d : c.input_shape) size *= static_cast<std::size_t>(d);
  std::size_t outputs = 1;
  for (std::int64_t d : c.output_shape) outputs *= static_cast<std::size_t>(d);
  for (int t = 0; t < 3; ++t) {
    std::vector<float> in(size);
    for (float& v : in) v = px(rng);
    const auto ref = evaluate_chain(c, in);
    const auto got = client.query(*program, in.data());
    ASSERT_EQ(got.size(), outputs);
    for (std::size_t k = 0; k < outputs; ++k) {
      if (within_budget) {
        EXPECT_NEAR(got[k], ref[k], program->spec().output_error);
      }
      EXPECT_NEAR(got[k], ref[k], tolerance);
    }
  }
}

// A chain the shipped models do not exercise: conv (stride 1, padding),
// poly with one b, average pooling (a public sparse matrix on the conv's
// repeated layout) and a dense layer, against evaluate_chain.
TEST(HeLatency, ConvPolyAvgPoolDense) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  Chain c;
  c.input_shape = {2, 6, 6};
  Layer conv = conv_layer("conv", {2, 6, 6}, {3, 6, 6}, 3, 1, 1);
  for (int i = 0; i < 3 * 2 * 9; ++i) conv.weight.push_back(u(rng));
  conv.bias = {0.1, -0.2, 0.05};
  const Layer poly = poly_layer("poly", {3, 6, 6}, {0.3});
  const Layer pool = pool_layer("pool", {3, 6, 6}, {3, 3, 3}, 2);
  Layer dense = dense_layer("dense", 27, 5);
  for (int i = 0; i < 5 * 27; ++i) dense.weight.push_back(u(rng));
  dense.bias = {0, 1, 2, 3, 4};
  c.layers = {conv, poly, pool, dense};
  c.output_shape = {5};
  expect_matches_chain(c, rng, 1e-5, /*within_budget=*/true);
}

// Convolutions after the first layer (multiplexed grid packing): a
// LeNet-like chain with a strided, padded second convolution, pooling and a
// dense layer; and a convolution after a dense layer (whose output is a
// grid too). Both against evaluate_chain and within the budget.
TEST(HeLatency, LaterConvolutionsOnTheGrid) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  Chain c;
  c.input_shape = {1, 8, 8};
  Layer conv1 = conv_layer("conv1", {1, 8, 8}, {4, 8, 8}, 3, 1, 1);
  for (int i = 0; i < 4 * 9; ++i) conv1.weight.push_back(u(rng));
  conv1.bias = {0.1, -0.1, 0.2, 0};
  const Layer act1 = poly_layer("act1", {4, 8, 8}, {0.5, -0.5, 0.25, 0});
  Layer conv2 = conv_layer("conv2", {4, 8, 8}, {6, 4, 4}, 3, 2, 1);
  for (int i = 0; i < 6 * 4 * 9; ++i) conv2.weight.push_back(u(rng) * 0.5);
  for (int i = 0; i < 6; ++i) conv2.bias.push_back(u(rng));
  const Layer act2 = poly_layer("act2", {6, 4, 4}, {0.1});
  const Layer pool = pool_layer("pool", {6, 4, 4}, {6, 2, 2}, 2);
  Layer dense = dense_layer("dense", 24, 5);
  for (int i = 0; i < 5 * 24; ++i) dense.weight.push_back(u(rng));
  dense.bias = {0, 1, 2, 3, 4};
  c.layers = {conv1, act1, conv2, act2, pool, dense};
  c.output_shape = {5};
  expect_matches_chain(c, rng, 1e-4, /*within_budget=*/true);

  Chain d;
  d.input_shape = {4};
  Layer d0 = dense_layer("dense0", 4, 16);
  for (int i = 0; i < 64; ++i) d0.weight.push_back(u(rng));
  Layer late = conv_layer("late_conv", {1, 4, 4}, {2, 2, 2}, 3);
  for (int i = 0; i < 18; ++i) late.weight.push_back(u(rng));
  d.layers = {d0, late};
  d.output_shape = {2, 2, 2};
  expect_matches_chain(d, rng, 1e-4, /*within_budget=*/true);
}

// More output channels than kernel offsets: the convolution's rows (8 x 16
// slots) outgrow the period of the patches (4 x 16), so each row reads its
// products from the repeated input directly (no rotate-and-sum).
TEST(HeLatency, ConvWiderThanItsPatches) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  Chain c;
  c.input_shape = {1, 5, 5};
  Layer conv = conv_layer("conv", {1, 5, 5}, {8, 4, 4}, 2);
  for (int i = 0; i < 8 * 4; ++i) conv.weight.push_back(u(rng));
  for (int i = 0; i < 8; ++i) conv.bias.push_back(u(rng));
  Layer poly = poly_layer("poly", {8, 4, 4});
  for (int i = 0; i < 8; ++i) poly.b.push_back(u(rng));
  Layer dense = dense_layer("dense", 128, 3);
  for (int i = 0; i < 3 * 128; ++i) dense.weight.push_back(u(rng) * 0.1);
  c.layers = {conv, poly, dense};
  c.output_shape = {3};
  expect_matches_chain(c, rng, 1e-3, /*within_budget=*/true);
}

// The error budget: a layer whose outputs are as small as the noise is
// refused (its arg max would be noise), naming the layer.
TEST(HeLatency, RefusesAnOutputLostInNoise) {
  Chain c;
  c.input_shape = {8};
  Layer d = dense_layer("tiny", 8, 2);
  d.weight.assign(16, 1e-15);
  c.layers = {d};
  c.output_shape = {2};
  const Support s = latency_support(c);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.node, "tiny");
  EXPECT_NE(s.reason.find("error"), std::string::npos) << s.reason;
  d.weight.assign(16, 0.5);
  c.layers = {d};
  EXPECT_TRUE(latency_support(c).ok) << latency_support(c).reason;
}

// End to end through program.cc: Program::build from the graph (the input
// bound from the model's metadata), the spec over the wire, the client's
// keys message, one query message up and one response down per image.
TEST(HeLatency, EndToEndClientServer) {
  ThreadPool pool(2);
  const model::Graph g = model::import_onnx_file(root() + "/models/fmnist-he.onnx");
  ProgramOptions o;
  o.mode = Mode::kLatency;
  o.pool = &pool;
  auto program = Program::build(g, o);
  EXPECT_EQ(program->spec().input_bound, 1.0);
  Client client(ClientSpec::parse(program->spec().serialize()));
  ServerSession session(*program, client.keys_message());
  model::Executor exec(g);
  const Tensor x = read_npy(root() + "/models/fixtures/fmnist-test-first8.npy");
  for (int i = 0; i < 8; ++i) {
    const float* img = x.f32().data() + i * 784;
    const Tensor in = Tensor::from_floats({1, 1, 28, 28}, std::vector<float>(img, img + 784));
    const Tensor ref = exec.run({in})[0];
    const Tensor got = client.decrypt(session.answer(client.encrypt(in)));
    ASSERT_EQ(got.numel(), 10);
    std::vector<double> r(ref.f32().begin(), ref.f32().end()),
        h(got.f32().begin(), got.f32().end());
    for (int k = 0; k < 10; ++k) EXPECT_NEAR(h[k], r[k], program->spec().output_error + 1e-4);
    EXPECT_EQ(argmax(h), argmax(r)) << "image " << i;
  }
  // cancer-logreg (raw features, no declared bound): the client applies the
  // sigmoid; with --input-bound 5000 as well.
  const model::Graph cg = model::import_onnx_file(root() + "/models/cancer-logreg.onnx");
  model::Executor cexec(cg);
  std::vector<float> mean;
  for (const auto& v : cg.values) {
    if (v.name == "0.mean") mean.assign(v.constant->f32().begin(), v.constant->f32().end());
  }
  ASSERT_EQ(mean.size(), 30u);
  for (double bound : {0.0, 5000.0}) {
    ProgramOptions co;
    co.input_bound = bound;
    auto cprog = Program::build(cg, co);
    // 0: the model's own declaration (blindfold.input_bound = 10000).
    EXPECT_EQ(cprog->spec().input_bound, bound == 0 ? 10000.0 : bound);
    Client cclient(ClientSpec::parse(cprog->spec().serialize()));
    ServerSession csession(*cprog, cclient.keys_message());
    for (float f : {0.5f, 1.0f, 1.5f}) {
      std::vector<float> x = mean;
      for (float& v : x) v *= f;
      const Tensor cin = Tensor::from_floats({1, 30}, x);
      const Tensor cref = cexec.run({cin})[0];
      const Tensor cgot = cclient.decrypt(csession.answer(cclient.encrypt(cin)));
      ASSERT_EQ(cgot.numel(), 1);
      EXPECT_NEAR(cgot.f32()[0], cref.f32()[0], 1e-4) << "bound " << bound << ", x" << f;
    }
  }
}

// Timing of one query end to end in process (client encrypt including the
// query message, server answer = parse + evaluate on 2 threads +
// response message, client decrypt), median of 9; run with
// --gtest_also_run_disabled_tests.
TEST(HeLatency, DISABLED_FmnistTiming) {
  ThreadPool pool(2);
  const model::Graph g = model::import_onnx_file(root() + "/models/fmnist-he.onnx");
  ProgramOptions o;
  o.pool = &pool;
  auto program = Program::build(g, o);
  Client client(program->spec(), &pool);
  ServerSession session(*program, client.keys_message());
  const Tensor x = read_npy(root() + "/models/fixtures/fmnist-test-first8.npy");
  using clk = std::chrono::steady_clock;
  auto ms = [](clk::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  std::vector<double> enc, ev, dec, tot;
  std::size_t up = 0, down = 0;
  for (int r = 0; r < 9; ++r) {
    const float* img = x.f32().data() + (r % 8) * 784;
    const Tensor in = Tensor::from_floats({1, 1, 28, 28}, std::vector<float>(img, img + 784));
    const auto t0 = clk::now();
    const auto q = client.encrypt(in);
    const auto t1 = clk::now();
    const auto resp = session.answer(q);
    const auto t2 = clk::now();
    (void)client.decrypt(resp);
    const auto t3 = clk::now();
    enc.push_back(ms(t1 - t0));
    ev.push_back(ms(t2 - t1));
    dec.push_back(ms(t3 - t2));
    tot.push_back(ms(t3 - t0));
    up = q.size();
    down = resp.size();
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  // The evaluation alone, on ciphertexts made with he/ directly.
  TestClient direct(*program);
  std::vector<double> eval_only;
  for (int r = 0; r < 9; ++r) {
    std::vector<he::Ciphertext> q;
    q.push_back(direct.encrypt(x.f32().data() + (r % 8) * 784));
    const auto t0 = clk::now();
    (void)program->evaluate(direct.keys(), std::move(q));
    eval_only.push_back(ms(clk::now() - t0));
  }
  std::printf(
      "fmnist-he latency, N=%zu, 2 threads: encrypt %.1f ms, server %.1f ms (evaluate alone %.1f "
      "ms), decrypt %.1f ms; end to end %.1f ms (medians of 9); query %zu B, response %zu B\n",
      program->context()->n(), median(enc), median(ev), median(eval_only), median(dec), median(tot),
      up, down);
}

}  // namespace
}  // namespace blindfold::backends::heplan
