// The "he" backend in-process (both roles, every byte through the serialized
// messages): labels equal the plaintext engine's on the shipped models in
// both modes, metrics filled; and the session protocol of `blindfold serve`
// / `infer` over memory channels, with every refusal the server answers.
#include "backends/he/he_backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "backends/test_util.h"
#include "core/error.h"
#include "core/npy.h"
#include "model/executor.h"
#include "model/onnx_import.h"
#include "net/memory.h"

namespace blindfold::backends {
namespace {

using testutil::root;

model::Graph load(const std::string& name) {
  return model::import_onnx_file(root() + "/models/" + name + ".onnx");
}

Tensor fmnist8() {
  return read_npy(root() + "/models/fixtures/fmnist-test-first8.npy");
}

// The first `n` rows of the breast-cancer table (30 raw features).
Tensor cancer_rows(int n) {
  std::ifstream f("/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv");
  if (!f) return Tensor();
  std::string line;
  std::getline(f, line);  // header
  std::vector<float> v;
  for (int r = 0; r < n && std::getline(f, line); ++r) {
    std::stringstream s(line);
    std::string cell;
    for (int c = 0; c < 30 && std::getline(s, cell, ','); ++c) v.push_back(std::stof(cell));
  }
  return Tensor::from_floats({n, 30}, std::move(v));
}

std::vector<int> labels(const Tensor& y) {
  const std::int64_t n = y.dim(0), k = y.numel() / n;
  std::vector<int> out;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* r = y.f32().data() + i * k;
    out.push_back(k == 1 ? (r[0] > 0.5f ? 1 : 0)
                         : static_cast<int>(std::max_element(r, r + k) - r));
  }
  return out;
}

double detail(const RunMetrics& m, const std::string& name) {
  for (const auto& [n, v] : m.detail) {
    if (n == name) return v;
  }
  ADD_FAILURE() << "no detail " << name;
  return -1;
}

struct Case {
  const char* model;
  const char* mode;
};

class HeBackendModels : public ::testing::TestWithParam<Case> {};

TEST_P(HeBackendModels, LabelsEqualPlaintextAndMetricsAreFilled) {
  const Case c = GetParam();
  const model::Graph g = load(c.model);
  const Tensor x = std::string(c.model) == "cancer-logreg" ? cancer_rows(16) : fmnist8();
  if (x.numel() == 0) GTEST_SKIP() << "no breast-cancer table on this machine";
  const Tensor want = model::Executor(g).run({x}).at(0);

  HeBackend he;
  BackendOptions bo;
  bo.he_mode = c.mode;
  // cancer-logreg declares its raw features' bound (10000) in its metadata.
  ASSERT_TRUE(he.supports_with(g, bo).ok) << he.supports_with(g, bo).reason;
  he.setup(g, bo);
  EXPECT_GT(he.setup_cost().ms, 0.0);
  EXPECT_GT(he.key_bytes(), 0);
  EXPECT_GT(he.setup_cost().bytes, he.key_bytes());  // the spec and the keys
  EXPECT_EQ(heplan::mode_name(he.spec().mode), std::string(c.mode));
  EXPECT_FALSE(he.program().describe().empty());

  RunMetrics m;
  const Tensor got = he.infer({x}, &m).at(0);
  ASSERT_EQ(got.shape(), want.shape());
  EXPECT_EQ(labels(got), labels(want));
  // Within the plan's error budget (plus float32 rounding of the output).
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    EXPECT_NEAR(got.f32()[i], want.f32()[i],
                std::max(1e-3, 2 * he.spec().output_error) + 1e-4 * std::fabs(want.f32()[i]))
        << "element " << i;
  }

  const std::int64_t n = x.dim(0), max_batch = he.spec().max_batch;
  const std::int64_t queries = (n + max_batch - 1) / max_batch;
  EXPECT_GT(m.online.ms, 0.0);
  EXPECT_EQ(m.rounds, queries);
  EXPECT_EQ(m.offline.bytes, 0);
  ASSERT_EQ(m.detail.size(), 8u);
  const char* names[] = {"encrypt_ms",  "evaluate_ms",    "decrypt_ms", "key_bytes",
                         "query_bytes", "response_bytes", "queries",    "max_batch"};
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(m.detail[i].first, names[i]);
  EXPECT_GT(detail(m, "encrypt_ms"), 0.0);
  EXPECT_GT(detail(m, "evaluate_ms"), 0.0);
  EXPECT_GT(detail(m, "decrypt_ms"), 0.0);
  EXPECT_LE(detail(m, "encrypt_ms") + detail(m, "evaluate_ms") + detail(m, "decrypt_ms"),
            m.online.ms + 1e-6);
  EXPECT_EQ(detail(m, "key_bytes"), static_cast<double>(he.key_bytes()));
  EXPECT_GT(detail(m, "query_bytes"), 0.0);
  EXPECT_GT(detail(m, "response_bytes"), 0.0);
  EXPECT_EQ(detail(m, "query_bytes") + detail(m, "response_bytes"),
            static_cast<double>(m.online.bytes));
  EXPECT_EQ(detail(m, "queries"), static_cast<double>(queries));
  EXPECT_EQ(detail(m, "max_batch"), static_cast<double>(max_batch));
}

INSTANTIATE_TEST_SUITE_P(Shipped, HeBackendModels,
                         ::testing::Values(Case{"fmnist-he", "latency"}, Case{"fmnist-he", "batch"},
                                           Case{"cancer-logreg", "latency"},
                                           Case{"cancer-logreg", "batch"}),
                         [](const auto& info) {
                           std::string n = std::string(info.param.model) + "_" + info.param.mode;
                           for (char& ch : n) ch = ch == '-' ? '_' : ch;
                           return n;
                         });

TEST(HeBackend, RegisteredAndRefusesNonPolynomialModels) {
  const auto names = backend_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "he"), names.end());
  auto b = make_backend("he");
  EXPECT_EQ(b->name(), "he");
  EXPECT_EQ(b->trust_model().security_bits, 128);
  const model::Graph lenet = load("fmnist-lenet");
  for (const char* mode : {"latency", "batch"}) {
    BackendOptions bo;
    bo.he_mode = mode;
    const Support s = b->supports_with(lenet, bo);
    EXPECT_FALSE(s.ok) << mode;
    EXPECT_FALSE(s.node.empty()) << mode;
    EXPECT_NE(s.reason.find("polynomial"), std::string::npos) << s.reason;
    try {
      b->setup(lenet, bo);
      ADD_FAILURE() << "setup of fmnist-lenet succeeded in " << mode << " mode";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kUnsupported) << e.what();
    }
  }
  BackendOptions bad;
  bad.he_mode = "fast";
  EXPECT_FALSE(b->supports_with(load("fmnist-he"), bad).ok);
  try {
    b->setup(load("fmnist-he"), bad);
    ADD_FAILURE() << "an unknown mode was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
    EXPECT_NE(std::string(e.what()).find("latency"), std::string::npos) << e.what();
  }
}

TEST(HeBackend, LatencyModeSplitsABatchIntoQueries) {
  const model::Graph g = load("fmnist-he");
  HeBackend he;
  he.setup(g, {});
  const Tensor x = fmnist8();
  const std::int64_t max_batch = he.spec().max_batch;
  RunMetrics m;
  const Tensor got = he.infer({x}, &m).at(0);
  EXPECT_EQ(got.dim(0), 8);
  EXPECT_EQ(m.rounds, (8 + max_batch - 1) / max_batch);
  EXPECT_EQ(labels(got), labels(model::Executor(g).run({x}).at(0)));
}

// ---- the session protocol over memory channels ------------------------------

net::Bytes as_bytes(const std::string& s) {
  return net::Bytes(s.begin(), s.end());
}

// A server thread serving one session on `ch`, collecting the refusals.
struct ServerThread {
  std::vector<std::string> refused;
  ServedSession result;
  std::string error;
  std::thread t;
  ServerThread(net::Channel& ch, const heplan::Program& program) {
    t = std::thread([this, c = &ch, p = &program] {
      try {
        result = serve_session(*c, *p, [this](const std::string& l) { refused.push_back(l); });
      } catch (const Error& e) {
        error = e.what();
      }
    });
  }
  ~ServerThread() {
    if (t.joinable()) t.join();
  }
};

// Sends a raw client message and returns the reply's status and text.
std::pair<int, std::string> send_raw(net::Channel& ch, const net::Bytes& msg) {
  ch.send("he/msg", msg);
  const net::Bytes r = ch.recv("he/reply");
  EXPECT_GE(r.size(), 9u);
  if (r.size() < 9) return {-1, ""};
  return {r[0], std::string(r.begin() + 9, r.end())};
}

TEST(HeSession, QueriesOverAChannelGiveThePlaintextLabels) {
  const model::Graph g = load("fmnist-he");
  heplan::ProgramOptions po;
  const auto program = heplan::Program::build(g, po);
  auto [server_ch, client_ch] = net::memory_pair();
  ServerThread server(*server_ch, *program);
  RemoteSession session(*client_ch);
  EXPECT_EQ(session.spec_bytes(), static_cast<std::int64_t>(program->spec().serialize().size()));
  EXPECT_GT(session.key_bytes(), 0);
  const Tensor x = fmnist8();
  std::vector<Tensor> outs;
  for (const Tensor& q : split_queries(x, session.spec().max_batch)) {
    RemoteSession::Query m;
    outs.push_back(session.run(q, &m));
    EXPECT_GT(m.query_bytes, 0);
    EXPECT_GT(m.response_bytes, 0);
    EXPECT_GT(m.server_ms, 0.0);
    EXPECT_GE(m.round_trip_ms, m.server_ms);
  }
  session.finish();
  server.t.join();
  EXPECT_EQ(server.error, "");
  EXPECT_EQ(server.result.samples, 8);
  EXPECT_EQ(server.result.refused, 0);
  EXPECT_EQ(labels(concat_rows(outs)), labels(model::Executor(g).run({x}).at(0)));
}

// Every bad message is answered with a refusal naming the problem, and the
// session goes on: a good query afterwards is answered correctly.
TEST(HeSession, BadMessagesAreRefusedAndTheSessionGoesOn) {
  const model::Graph g = load("fmnist-he");
  const auto program = heplan::Program::build(g, {});
  // A second program whose parameters or shapes differ: cancer-logreg.
  const auto other = heplan::Program::build(load("cancer-logreg"), {});
  heplan::Client other_client(other->spec());
  heplan::Client client(heplan::ClientSpec::parse(program->spec().serialize()));
  const Tensor x = fmnist8();
  const Tensor one = split_queries(x, 1).at(0);
  const std::vector<std::uint8_t> good_query = client.encrypt(one);
  const std::vector<std::uint8_t> other_query =
      other_client.encrypt(Tensor::from_floats({1, 30}, std::vector<float>(30, 1.0f)));

  auto [server_ch, client_ch] = net::memory_pair();
  ServerThread server(*server_ch, *program);
  net::Channel& ch = *client_ch;
  ch.set_max_message_bytes(std::uint64_t{1} << 30);
  ch.recv("he/spec");

  // A query before the keys.
  auto r = send_raw(ch, good_query);
  EXPECT_EQ(r.first, 1);
  EXPECT_NE(r.second.find("query before the keys"), std::string::npos) << r.second;
  // Keys of another program.
  r = send_raw(ch, other_client.keys_message());
  EXPECT_EQ(r.first, 1);
  EXPECT_NE(r.second.find("keys message refused"), std::string::npos) << r.second;
  // A truncated keys message.
  std::vector<std::uint8_t> keys = client.keys_message();
  r = send_raw(
      ch, net::Bytes(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(keys.size() / 2)));
  EXPECT_EQ(r.first, 1);
  EXPECT_NE(r.second.find("bad message"), std::string::npos) << r.second;
  // Still no keys.
  r = send_raw(ch, good_query);
  EXPECT_NE(r.second.find("query before the keys"), std::string::npos) << r.second;
  // The real keys.
  r = send_raw(ch, keys);
  EXPECT_EQ(r.first, 0) << r.second;
  EXPECT_EQ(r.second, "");
  // Garbage, an empty message, a truncated query, a ciphertext for other
  // parameters, a query with a flipped header byte.
  for (const net::Bytes& bad :
       {as_bytes("hello"), net::Bytes{}, net::Bytes(good_query.begin(), good_query.begin() + 20),
        net::Bytes(good_query.begin(), good_query.end() - 1),
        net::Bytes(other_query.begin(), other_query.end())}) {
    r = send_raw(ch, bad);
    EXPECT_EQ(r.first, 1) << bad.size() << " bytes";
    EXPECT_FALSE(r.second.empty());
  }
  net::Bytes flipped(good_query.begin(), good_query.end());
  flipped[8] ^= 0x40;  // the sample count
  r = send_raw(ch, flipped);
  EXPECT_EQ(r.first, 1);
  EXPECT_NE(r.second.find("bad message"), std::string::npos) << r.second;
  // A good query is still answered, and decrypts to the plaintext label.
  r = send_raw(ch, good_query);
  ASSERT_EQ(r.first, 0) << r.second;
  const Tensor y = client.decrypt(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(r.second.data()), r.second.size()));
  EXPECT_EQ(labels(y), labels(model::Executor(g).run({one}).at(0)));
  ch.send("he/msg", as_bytes("BFHB"));
  server.t.join();
  EXPECT_EQ(server.error, "");
  EXPECT_EQ(server.result.queries, 1);
  EXPECT_EQ(server.result.refused, 10);
  EXPECT_EQ(server.refused.size(), 10u);
}

// The client refuses a batch larger than the spec allows before sending it;
// the session goes on.
TEST(HeSession, ClientRefusesAnOversizeBatch) {
  const model::Graph g = load("fmnist-he");
  const auto program = heplan::Program::build(g, {});
  auto [server_ch, client_ch] = net::memory_pair();
  ServerThread server(*server_ch, *program);
  RemoteSession session(*client_ch);
  // A batch the spec does not allow.
  Shape shape = fmnist8().shape();
  shape[0] = session.spec().max_batch + 1;
  const Tensor too_many(DType::kFloat32, shape);
  EXPECT_THROW(session.run(too_many, nullptr), Error);
  EXPECT_EQ(session.run(split_queries(fmnist8(), 1).at(0), nullptr).dim(0), 1);
  session.finish();
  server.t.join();
  EXPECT_EQ(server.error, "");
  EXPECT_EQ(server.result.queries, 1);
}

}  // namespace
}  // namespace blindfold::backends
