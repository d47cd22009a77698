// The tee backend end to end with the real enclave process
// (blindfold-enclave): agreement with the plaintext engine on every shipped
// model; the host relay sees only ciphertext (no 16-byte window of the input
// or the output crosses it); a wrong MODEL or CODE measurement is refused
// before anything of the input crosses; no trust in the simulated platform
// -> refused before an enclave starts; malformed requests get an error and
// the enclave serves the next one; a killed enclave is a clear kPeerFailure.
// Also the wire format's parser on truncated and oversized messages.
#include "backends/tee/tee_backend.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <unordered_set>

#include "backends/plain/plain.h"
#include "backends/tee/wire.h"
#include "backends/test_util.h"
#include "core/error.h"
#include "model/executor.h"
#include "model/onnx_import.h"
#include "tee/crypto.h"
#include "tee/simulated.h"

namespace blindfold::backends {
namespace {

namespace fs = std::filesystem;
using testutil::root;

const std::string kEnclave = BLINDFOLD_ENCLAVE_BIN;

std::string platform_dir() {
  static const std::string d =
      (fs::temp_directory_path() / ("bf_tee_backend_test_" + std::to_string(::getpid()))).string();
  return d;
}

// Removes the suite's platform directory (a key file) at the end.
class PlatformDirCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(platform_dir(), ec);
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new PlatformDirCleanup);

std::string model_file(const std::string& name) {
  return root() + "/models/" + name;
}

BackendOptions trusted_options(const std::string& model) {
  BackendOptions o;
  o.trust_simulated_platform = true;
  o.model_path = model;
  o.tee_platform_dir = platform_dir();
  o.threads = 2;
  return o;
}

std::unique_ptr<TeeBackend> make_tee() {
  auto b = std::make_unique<TeeBackend>();
  b->set_enclave_binary(kEnclave);
  return b;
}

// Inputs of batch `n` for every graph input, uniform in (0.05, 1): no run of
// equal bytes, so a 16-byte window of it is as good as unique.
std::vector<Tensor> random_inputs(const model::Graph& g, std::int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<Tensor> ins;
  for (int id : g.inputs) {
    const model::Value& v = g.value(id);
    ins.push_back(testutil::random_tensor(rng, v.shape_at(n), 0.05f, 1.0f));
  }
  return ins;
}

// Every 16-byte window of `haystack`.
std::unordered_set<std::string> windows(const std::vector<std::uint8_t>& haystack) {
  std::unordered_set<std::string> w;
  for (std::size_t i = 0; i + 16 <= haystack.size(); ++i) {
    w.emplace(reinterpret_cast<const char*>(haystack.data() + i), 16);
  }
  return w;
}

// The number of 16-byte windows of `needle` found in `seen`.
int windows_found(const std::unordered_set<std::string>& seen,
                  std::span<const std::uint8_t> needle) {
  int found = 0;
  for (std::size_t i = 0; i + 16 <= needle.size(); ++i) {
    found += seen.count(std::string(reinterpret_cast<const char*>(needle.data() + i), 16)) != 0;
  }
  return found;
}

TEST(TeeBackend, AgreesWithPlainOnEveryShippedModel) {
  int models = 0;
  for (const auto& entry : fs::directory_iterator(root() + "/models")) {
    if (entry.path().extension() != ".onnx") continue;
    ++models;
    SCOPED_TRACE(entry.path().filename().string());
    const model::Graph g = model::import_onnx_file(entry.path().string());
    const std::vector<Tensor> in = random_inputs(g, 5, 7);
    PlainBackend plain;
    plain.setup(g, trusted_options(entry.path().string()));
    const std::vector<Tensor> want = plain.infer(in, nullptr);
    auto tee = make_tee();
    ASSERT_TRUE(tee->supports(g).ok);
    tee->setup(g, trusted_options(entry.path().string()));
    RunMetrics m;
    const std::vector<Tensor> got = tee->infer(in, &m);
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t k = 0; k < got.size(); ++k) {
      ASSERT_EQ(got[k].shape(), want[k].shape());
      const auto a = got[k].f32(), b = want[k].f32();
      // The same engine with the same thread count: the same floats.
      for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "element " << i;
    }
    // The common metrics, and the handshake reported apart from them.
    EXPECT_GT(tee->setup_cost().ms, 0);
    EXPECT_GT(tee->setup_cost().bytes, 0);
    EXPECT_EQ(m.rounds, 1);
    EXPECT_GT(m.online.bytes, static_cast<std::int64_t>(in[0].bytes().size()));
    ASSERT_EQ(m.detail.size(), 6u);
    EXPECT_EQ(m.detail[0].first, "enclave_compute_ms");
    EXPECT_EQ(m.detail[4].first, "handshake_ms");
    EXPECT_GT(m.detail[4].second, 0);
    EXPECT_EQ(m.detail[5].first, "evidence_bytes");
    EXPECT_GT(m.detail[5].second, 288);
    // What the client learned about the enclave.
    EXPECT_EQ(tee->claims().platform, tee::Platform::kSimulated);
    ASSERT_NE(tee->claims().measurement("MODEL"), nullptr);
    EXPECT_EQ(*tee->claims().measurement("MODEL"), tee::measure_file(entry.path()));
    EXPECT_EQ(*tee->claims().measurement("CODE"), tee::measure_file(kEnclave));
  }
  EXPECT_GE(models, 4);
}

TEST(TeeBackend, HostRelaysOnlyCiphertext) {
  const std::string path = model_file("fmnist-lenet.onnx");
  const model::Graph g = model::import_onnx_file(path);
  auto tee = make_tee();
  tee->set_record_boundary(true);
  tee->setup(g, trusted_options(path));
  const std::vector<Tensor> in = random_inputs(g, 4, 11);
  const std::vector<Tensor> out = tee->infer(in, nullptr);
  const std::vector<Tensor> out2 = tee->infer(in, nullptr);
  const auto up = tee->crossed_to_enclave();
  const auto down = tee->crossed_from_enclave();
  ASSERT_GT(up.size(), 2 * in[0].bytes().size());  // both requests crossed, sealed
  ASSERT_GT(down.size(), 2 * out[0].bytes().size());
  const auto seen_up = windows(up), seen_down = windows(down);
  // The check can see plaintext: the evidence (measurements in the clear) crossed.
  EXPECT_GT(windows_found(seen_down, *tee->claims().measurement("CODE")), 0);
  // Neither the input nor the output, nor any 16-byte window of them.
  for (const auto* seen : {&seen_up, &seen_down}) {
    EXPECT_EQ(windows_found(*seen, in[0].bytes()), 0);
    EXPECT_EQ(windows_found(*seen, out[0].bytes()), 0);
    // Nor the plaintext request as it is serialised inside the sealed record.
    EXPECT_EQ(windows_found(*seen, teewire::encode_request(in)), 0);
  }
}

TEST(TeeBackend, WrongModelMeasurementIsRefusedBeforeTheInputCrosses) {
  const std::string path = model_file("fmnist-lenet.onnx");
  const model::Graph g = model::import_onnx_file(path);
  auto tee = make_tee();
  tee->set_record_boundary(true);
  // The client expects another model (as if the host swapped the file).
  tee->set_expected_measurements(tee::measure_file(kEnclave),
                                 tee::measure_file(model_file("fmnist-mlp.onnx")));
  try {
    tee->setup(g, trusted_options(path));
    FAIL() << "a wrong MODEL measurement was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
    EXPECT_NE(std::string(e.what()).find("MODEL"), std::string::npos) << e.what();
  }
  // Only the client's hello crossed towards the enclave (1 + 32 + 32 bytes
  // and the frame): no key confirmation, no request.
  const auto up = tee->crossed_to_enclave();
  EXPECT_GT(up.size(), 65u);
  EXPECT_LT(up.size(), 65u + 64u);
  EXPECT_THROW(tee->infer(random_inputs(g, 1, 1), nullptr), Error);
}

TEST(TeeBackend, WrongCodeMeasurementIsRefused) {
  const std::string path = model_file("fmnist-mlp.onnx");
  const model::Graph g = model::import_onnx_file(path);
  auto tee = make_tee();
  tee::Bytes code = tee::measure_file(kEnclave);
  code[0] ^= 1;
  tee->set_expected_measurements(code, tee::measure_file(path));
  try {
    tee->setup(g, trusted_options(path));
    FAIL() << "a wrong CODE measurement was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
    EXPECT_NE(std::string(e.what()).find("CODE"), std::string::npos) << e.what();
  }
}

TEST(TeeBackend, RefusesWithoutTrustInTheSimulatedPlatform) {
  const std::string path = model_file("fmnist-mlp.onnx");
  const model::Graph g = model::import_onnx_file(path);
  auto tee = make_tee();
  BackendOptions o = trusted_options(path);
  o.trust_simulated_platform = false;
  try {
    tee->setup(g, o);
    FAIL() << "the simulated platform was trusted without being asked to";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
    EXPECT_NE(std::string(e.what()).find("SIMULATED"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("no hardware protects"), std::string::npos);
  }
  EXPECT_EQ(tee->enclave_pid(), -1);  // no enclave was started
  // And the policy itself refuses simulated evidence without the flag.
  const tee::Policy p = tee_policy(false, tee::Bytes(48), tee::Bytes(48));
  EXPECT_FALSE(p.trust_simulated_platform);
  // The trust model says so, naming the vendor.
  const TrustModel t = tee->trust_model();
  EXPECT_NE(t.summary.find("simulated: no hardware protects this run"), std::string::npos);
  EXPECT_NE(t.summary.find("vendor"), std::string::npos);
  EXPECT_NE(t.trusted.find("NONE"), std::string::npos);
}

TEST(TeeBackend, MissingEnclaveBinaryIsNamed) {
  const std::string path = model_file("fmnist-mlp.onnx");
  const model::Graph g = model::import_onnx_file(path);
  TeeBackend tee;
  tee.set_enclave_binary(platform_dir() + "/no-such-enclave");
  try {
    tee.setup(g, trusted_options(path));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("no-such-enclave"), std::string::npos);
  }
}

TEST(TeeBackend, MalformedRequestsGetAnErrorAndTheEnclaveServesTheNext) {
  const std::string path = model_file("fmnist-lenet.onnx");
  const model::Graph g = model::import_onnx_file(path);
  auto tee = make_tee();
  tee->setup(g, trusted_options(path));
  const std::vector<Tensor> in = random_inputs(g, 2, 3);
  const tee::Bytes good = teewire::encode_request(in);

  const std::vector<std::uint8_t> garbage = {'n', 'o', 'p', 'e', 1, 2, 3};
  teewire::Response r = tee->call(garbage);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.category, ErrorCategory::kBadMessage);
  EXPECT_NE(r.error.find("not a request"), std::string::npos) << r.error;

  r = tee->call(std::span(good).first(good.size() - 1));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("truncated"), std::string::npos) << r.error;

  tee::Bytes trailing = good;
  trailing.push_back(0);
  r = tee->call(trailing);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("trailing"), std::string::npos) << r.error;

  // A well-formed request the model cannot take: the executor's error.
  r = tee->call(teewire::encode_request({Tensor(DType::kFloat32, {2, 3})}));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.category, ErrorCategory::kBadInput);
  EXPECT_THROW(tee->infer({Tensor(DType::kFloat32, {2, 3})}, nullptr), Error);

  // The session goes on.
  const std::vector<Tensor> want = model::Executor(g).run(in);
  const std::vector<Tensor> got = tee->infer(in, nullptr);
  ASSERT_EQ(got.size(), 1u);
  for (std::size_t i = 0; i < got[0].f32().size(); ++i)
    EXPECT_NEAR(got[0].f32()[i], want[0].f32()[i], 1e-5);
}

TEST(TeeBackend, KilledEnclaveIsAPeerFailure) {
  const std::string path = model_file("fmnist-mlp.onnx");
  const model::Graph g = model::import_onnx_file(path);
  auto tee = make_tee();
  tee->setup(g, trusted_options(path));
  const std::vector<Tensor> in = random_inputs(g, 1, 5);
  ASSERT_NO_THROW(tee->infer(in, nullptr));
  ASSERT_GT(tee->enclave_pid(), 0);
  ASSERT_EQ(::kill(tee->enclave_pid(), SIGKILL), 0);
  try {
    tee->infer(in, nullptr);
    FAIL() << "an inference succeeded after the enclave was killed";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
    EXPECT_NE(std::string(e.what()).find("enclave process"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("signal 9"), std::string::npos) << e.what();
  }
}

// ---- The wire format ----------------------------------------------------

TEST(TeeWire, RoundTripsTensorsAndErrors) {
  const Tensor a = Tensor::from_floats({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = Tensor::from_ints({2}, {-7, 1LL << 40});
  const Tensor c(DType::kFloat32, {0, 4});
  const std::vector<Tensor> got = teewire::decode_request(teewire::encode_request({a, b, c}));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].shape(), a.shape());
  EXPECT_EQ(got[0].to_float_vector(), a.to_float_vector());
  EXPECT_EQ(got[1].dtype(), DType::kInt64);
  EXPECT_EQ(got[1].i64()[1], 1LL << 40);
  EXPECT_EQ(got[2].shape(), c.shape());

  const teewire::Response ok = teewire::decode_response(teewire::encode_ok({a}, 1.5));
  EXPECT_TRUE(ok.ok);
  EXPECT_EQ(ok.enclave_compute_ms, 1.5);
  ASSERT_EQ(ok.outputs.size(), 1u);
  EXPECT_EQ(ok.outputs[0].to_float_vector(), a.to_float_vector());

  const teewire::Response err =
      teewire::decode_response(teewire::encode_error(ErrorCategory::kBadInput, "wrong shape"));
  EXPECT_FALSE(err.ok);
  EXPECT_EQ(err.category, ErrorCategory::kBadInput);
  EXPECT_EQ(err.error, "wrong shape");
}

TEST(TeeWire, EveryTruncationAndExtensionIsRefused) {
  const tee::Bytes req =
      teewire::encode_request({Tensor::from_floats({1, 2}, {1, 2}), Tensor::from_ints({1}, {3})});
  const tee::Bytes resp = teewire::encode_ok({Tensor::from_floats({2}, {1, 2})}, 0.5);
  for (std::size_t n = 0; n < req.size(); ++n) {
    EXPECT_THROW(teewire::decode_request(std::span(req).first(n)), Error) << n;
  }
  for (std::size_t n = 0; n < resp.size(); ++n) {
    EXPECT_THROW(teewire::decode_response(std::span(resp).first(n)), Error) << n;
  }
  tee::Bytes longer = req;
  longer.push_back(0);
  EXPECT_THROW(teewire::decode_request(longer), Error);
  try {
    teewire::decode_request(std::span(req).first(req.size() - 1));
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
  }
}

TEST(TeeWire, HostileSizesAreRefusedBeforeAllocation) {
  // One float32 tensor of rank 2 claiming 2^31 x 2^31 elements.
  tee::Bytes m = {'B', 'F', 'T', 'Q', 1, 1, 0, 0, 0, 0, 2};
  for (int d = 0; d < 2; ++d) {
    for (int i = 0; i < 8; ++i) m.push_back(i == 3 ? 0x80 : 0);
  }
  EXPECT_THROW(teewire::decode_request(m), Error);
  // A large but legal element count with no data behind it: truncated.
  tee::Bytes t = {'B', 'F', 'T', 'Q', 1, 1, 0, 0, 0, 0, 1};
  for (int i = 0; i < 8; ++i) t.push_back(i == 3 ? 0x10 : 0);  // 2^28 elements
  try {
    teewire::decode_request(t);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  // Too many tensors, a rank above the maximum, an unknown dtype, status, category.
  EXPECT_THROW(teewire::decode_request(tee::Bytes{'B', 'F', 'T', 'Q', 1, 0xff, 0xff, 0, 0}), Error);
  EXPECT_THROW(teewire::decode_request(tee::Bytes{'B', 'F', 'T', 'Q', 1, 1, 0, 0, 0, 0, 9}), Error);
  EXPECT_THROW(teewire::decode_request(tee::Bytes{'B', 'F', 'T', 'Q', 1, 1, 0, 0, 0, 7, 0}), Error);
  EXPECT_THROW(teewire::decode_request(tee::Bytes{'B', 'F', 'T', 'Q', 2, 0, 0, 0, 0}), Error);
  EXPECT_THROW(teewire::decode_response(tee::Bytes{'B', 'F', 'T', 'R', 1, 2}), Error);
  EXPECT_THROW(teewire::decode_response(tee::Bytes{'B', 'F', 'T', 'R', 1, 1, 200, 0, 0, 0, 0}),
               Error);
  EXPECT_THROW(teewire::decode_response(tee::Bytes{'B', 'F', 'T', 'R', 1, 1, 1, 0xff, 0xff, 0, 0}),
               Error);
}

}  // namespace
}  // namespace blindfold::backends
