// `blindfold serve --backend he` and `blindfold infer --backend he` as two
// processes over loopback TLS: the labels equal the plaintext model's in both
// modes; an idle client does not block the next (sessions run concurrently);
// every bad input the issue names (a query before keys, keys that do
// not match, truncated or malformed messages, a ciphertext for other
// parameters, a client that breaks the channel or vanishes, a client without
// TLS) is refused with a clear line, and the server serves the next session.
// The misbehaving clients are written here over net/ (TLS as `infer` does).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "backends/he/he_backend.h"
#include "core/error.h"
#include "core/npy.h"
#include "core/tensor.h"
#include "model/executor.h"
#include "model/onnx_import.h"
#include "net/tcp.h"
#include "net/tls.h"
#include "tests/process_util.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
namespace heplan = blindfold::backends::heplan;

namespace {

const std::string kBin = BLINDFOLD_BIN;
const std::string kRoot = BLINDFOLD_SOURCE_DIR;
const std::string kModel = kRoot + "/models/fmnist-he.onnx";
const std::string kOtherModel = kRoot + "/models/cancer-logreg.onnx";
const std::string kInput = kRoot + "/models/fixtures/fmnist-test-first8.npy";

using blindfold::testutil::argmax_rows;
using blindfold::testutil::count_lines;
using blindfold::testutil::ProcessSuite;
using blindfold::testutil::Procs;

class HeServe : public ProcessSuite<HeServe> {
 protected:
  static void SetUpTestSuite() {
    start_suite("bf_he_serve", kBin);
    Procs p(kBin, suite_dir_);
    const pid_t c = p.start(
        "certs", {"certs", "--out", (suite_dir_ / "pki").string(), "--parties", "server,client"});
    ASSERT_EQ(p.wait(c, 60s), 0) << p.err("certs");
    const blindfold::model::Graph g = blindfold::model::import_onnx_file(kModel);
    plain_labels_ =
        argmax_rows(blindfold::model::Executor(g).run({blindfold::read_npy(kInput)}).at(0));
  }

  std::string pki() const { return (suite_dir_ / "pki").string(); }

  // Starts a server on an ephemeral loopback port; returns its port.
  int serve(const std::string& mode, int sessions) {
    server_ =
        procs_->start("server", {"serve", "--backend", "he", "--model", kModel, "--he-mode", mode,
                                 "--listen", "127.0.0.1:0", "--pki", pki(), "--sessions",
                                 std::to_string(sessions), "--timeout-ms", "20000"});
    EXPECT_TRUE(procs_->wait_for("server.out", "serve: listening on", 120s))
        << procs_->err("server");
    std::smatch m;
    const std::string out = procs_->out("server");
    const std::regex re("listening on 127\\.0\\.0\\.1:([0-9]+) \\(tls\\)");
    if (!std::regex_search(out, m, re)) {
      ADD_FAILURE() << out;
      return 0;
    }
    return std::stoi(m[1]);
  }

  // Runs `blindfold infer` on the fixture; checks the labels; returns its JSON.
  nlohmann::json infer_and_check(const std::string& name, int port,
                                 std::vector<std::string> more = {}) {
    std::vector<std::string> args{
        "infer", "--backend", "he",   "--server", "127.0.0.1:" + std::to_string(port), "--pki",
        pki(),   "--input",   kInput, "--out",    (dir_ / (name + ".npy")).string()};
    args.insert(args.end(), more.begin(), more.end());
    const pid_t c = procs_->start(name, args);
    const int rc = procs_->wait(c, 120s);
    EXPECT_EQ(rc, 0) << procs_->err(name);
    if (rc != 0) return {};
    const std::string out = procs_->out(name);
    EXPECT_EQ(count_lines(out), 1) << out;
    const nlohmann::json j = nlohmann::json::parse(out);
    EXPECT_EQ(j["labels"].get<std::vector<std::int64_t>>(), plain_labels_) << out;
    EXPECT_EQ(j["samples"], 8);
    const blindfold::Tensor y = blindfold::read_npy((dir_ / (name + ".npy")).string());
    EXPECT_EQ(y.shape(), (blindfold::Shape{8, 10}));
    EXPECT_EQ(argmax_rows(y), plain_labels_);
    return j;
  }

  static inline std::vector<std::int64_t> plain_labels_;
  pid_t server_ = -1;
};

void check_queries(const nlohmann::json& j, std::size_t queries, const std::string& mode) {
  EXPECT_EQ(j["backend"], "he");
  EXPECT_EQ(j["mode"], mode);
  EXPECT_EQ(j["transport"], "tls");
  EXPECT_GT(j["setup"]["key_bytes"].get<std::int64_t>(), 0);
  ASSERT_EQ(j["queries"].size(), queries);
  std::int64_t samples = 0;
  for (const auto& q : j["queries"]) {
    for (const char* f : {"encrypt_ms", "round_trip_ms", "server_ms", "decrypt_ms", "total_ms"}) {
      EXPECT_GT(q[f].get<double>(), 0.0) << f;
    }
    EXPECT_GE(q["round_trip_ms"].get<double>(), q["server_ms"].get<double>());
    EXPECT_GT(q["query_bytes"].get<std::int64_t>(), 0);
    EXPECT_GT(q["response_bytes"].get<std::int64_t>(), 0);
    samples += q["samples"].get<std::int64_t>();
  }
  EXPECT_EQ(samples, 8);
}

TEST_F(HeServe, LatencyModeProcessesGiveThePlaintextLabels) {
  const int port = serve("latency", 1);
  const nlohmann::json j = infer_and_check("client", port);
  ASSERT_FALSE(j.is_null());
  const std::int64_t per_query = j["queries"][0]["samples"].get<std::int64_t>();
  check_queries(j, static_cast<std::size_t>((8 + per_query - 1) / per_query), "latency");
  EXPECT_EQ(procs_->wait(server_, 30s), 0) << procs_->err("server");
  EXPECT_EQ(procs_->err("server"), "");
  EXPECT_NE(procs_->out("server").find("session 1: done, " + std::to_string(j["queries"].size()) +
                                       " queries, 8 samples, 0 refused"),
            std::string::npos)
      << procs_->out("server");
}

TEST_F(HeServe, BatchModeProcessesGiveThePlaintextLabelsInOneQuery) {
  const int port = serve("batch", 1);
  const nlohmann::json j = infer_and_check("client", port);
  ASSERT_FALSE(j.is_null());
  check_queries(j, 1, "batch");
  EXPECT_EQ(procs_->wait(server_, 30s), 0) << procs_->err("server");
  EXPECT_EQ(procs_->err("server"), "");
  EXPECT_NE(procs_->out("server").find("session 1: done, 1 queries, 8 samples, 0 refused"),
            std::string::npos)
      << procs_->out("server");
}

// A client over TLS as `infer` connects, speaking raw protocol messages.
class FakeClient {
 public:
  FakeClient(const std::string& pki, int port) {
    blindfold::net::TlsConfig c;
    c.ca_file = pki + "/ca.pem";
    c.cert_file = pki + "/client.pem";
    c.key_file = pki + "/client.key";
    c.expected_peer_name = "server";
    ctx_ = std::make_unique<blindfold::net::TlsContext>(c);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    ch_ = std::make_unique<blindfold::net::TlsChannel>(
        *ctx_, blindfold::net::tcp_connect("127.0.0.1", static_cast<std::uint16_t>(port), deadline),
        blindfold::net::TlsRole::kClient, deadline, "server", "server");
    ch_->set_timeout(60s);
    ch_->set_max_message_bytes(std::uint64_t{1} << 30);
    spec_ = heplan::ClientSpec::parse(ch_->recv("he/spec"));
  }
  const heplan::ClientSpec& spec() const { return spec_; }
  blindfold::net::Channel& ch() { return *ch_; }
  // Sends `msg`; returns the reply's status (0 ok, 1 refused) and body.
  std::pair<int, std::string> exchange(std::span<const std::uint8_t> msg) {
    ch_->send("he/msg", msg);
    const blindfold::net::Bytes r = ch_->recv("he/reply");
    if (r.size() < 9) return {-1, ""};
    return {r[0], std::string(r.begin() + 9, r.end())};
  }
  void bye() {
    const std::uint8_t b[4] = {'B', 'F', 'H', 'B'};
    ch_->send("he/msg", b);
    ch_->flush();
  }

 private:
  std::unique_ptr<blindfold::net::TlsContext> ctx_;
  std::unique_ptr<blindfold::net::Channel> ch_;
  heplan::ClientSpec spec_;
};

TEST_F(HeServe, BadInputIsRefusedAndTheServerGoesOn) {
  const int port = serve("latency", 5);
  const blindfold::Tensor x = blindfold::read_npy(kInput);
  const blindfold::Tensor one = blindfold::backends::split_queries(x, 1).at(0);
  // Keys and ciphertexts of another program (cancer-logreg).
  const auto other = heplan::Program::build(blindfold::model::import_onnx_file(kOtherModel), {});
  const heplan::Client other_client(other->spec());
  const std::vector<std::uint8_t> other_keys = other_client.keys_message();
  const std::vector<std::uint8_t> other_query =
      other_client.encrypt(blindfold::Tensor::from_floats({1, 30}, std::vector<float>(30, 1.0f)));

  {  // Session 1: refusals within one session, then a good query.
    FakeClient fc(pki(), port);
    const heplan::Client client(fc.spec());
    const std::vector<std::uint8_t> query = client.encrypt(one);
    const std::vector<std::uint8_t> keys = client.keys_message();
    auto r = fc.exchange(query);
    EXPECT_EQ(r.first, 1);
    EXPECT_NE(r.second.find("a query before the keys message"), std::string::npos) << r.second;
    r = fc.exchange(other_keys);
    EXPECT_EQ(r.first, 1);
    EXPECT_NE(r.second.find("bad message: keys message refused"), std::string::npos) << r.second;
    r = fc.exchange(std::span<const std::uint8_t>(keys).first(keys.size() - 100));
    EXPECT_EQ(r.first, 1);
    EXPECT_NE(r.second.find("bad message: keys message refused"), std::string::npos) << r.second;
    r = fc.exchange(keys);
    EXPECT_EQ(r.first, 0) << r.second;
    r = fc.exchange(std::span<const std::uint8_t>(query).first(query.size() / 2));  // truncated
    EXPECT_EQ(r.first, 1);
    EXPECT_NE(r.second.find("bad message: query refused"), std::string::npos) << r.second;
    r = fc.exchange(other_query);  // a ciphertext for other parameters
    EXPECT_EQ(r.first, 1);
    EXPECT_NE(r.second.find("bad message: query refused"), std::string::npos) << r.second;
    std::vector<std::uint8_t> garbage(query);
    std::fill(garbage.begin() + 24, garbage.end(), 0xff);  // every residue out of range
    r = fc.exchange(garbage);
    EXPECT_EQ(r.first, 1);
    EXPECT_NE(r.second.find("bad message"), std::string::npos) << r.second;
    const std::string junk = "hello, server";
    r = fc.exchange(std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(junk.data()), junk.size()));
    EXPECT_EQ(r.first, 1);
    EXPECT_NE(r.second.find("unknown message"), std::string::npos) << r.second;
    r = fc.exchange(query);
    ASSERT_EQ(r.first, 0) << r.second;
    const blindfold::Tensor y = client.decrypt(std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(r.second.data()), r.second.size()));
    EXPECT_EQ(argmax_rows(y)[0], plain_labels_[0]);
    fc.bye();
  }
  ASSERT_TRUE(
      procs_->wait_for("server.out", "session 1: done, 1 queries, 1 samples, 7 refused", 30s))
      << procs_->out("server") << procs_->err("server");

  {  // Session 2: a frame with the wrong tag breaks the channel: the session ends.
    FakeClient fc(pki(), port);
    fc.ch().send("mpc/query", std::string("12345678"));
    fc.ch().flush();
    EXPECT_THROW(fc.ch().recv("he/reply"), blindfold::Error);
  }
  ASSERT_TRUE(procs_->wait_for("server.err", "session 2 failed", 30s)) << procs_->err("server");

  {  // Session 3: the client vanishes after its keys.
    FakeClient fc(pki(), port);
    const heplan::Client client(fc.spec());
    EXPECT_EQ(fc.exchange(client.keys_message()).first, 0);
  }
  ASSERT_TRUE(procs_->wait_for("server.err", "session 3 failed", 30s)) << procs_->err("server");

  // Session 4: a client without TLS fails the handshake.
  const pid_t plain = procs_->start(
      "plain", {"infer", "--backend", "he", "--server", "127.0.0.1:" + std::to_string(port),
                "--insecure-transport", "--input", kInput, "--timeout-ms", "3000"});
  EXPECT_NE(procs_->wait(plain, 30s), 0);
  ASSERT_TRUE(procs_->wait_for("server.err", "session 4 failed", 30s)) << procs_->err("server");

  // Session 5: a real client gets the plaintext labels.
  infer_and_check("real", port);
  EXPECT_EQ(procs_->wait(server_, 30s), 0) << procs_->err("server");
  EXPECT_NE(procs_->out("server").find("session 5: done, 8 queries, 8 samples, 0 refused"),
            std::string::npos)
      << procs_->out("server");

  const std::string err = procs_->err("server");
  EXPECT_EQ(count_lines(err), 7 + 3) << err;  // 7 refusals, 3 failed sessions
  EXPECT_NE(err.find("session 2 failed: bad message: "), std::string::npos) << err;
  EXPECT_NE(err.find("mpc/query"), std::string::npos) << err;
  EXPECT_NE(err.find("session 3 failed: peer failure: "), std::string::npos) << err;
  EXPECT_NE(err.find("session 4 failed: peer failure: TLS handshake"), std::string::npos) << err;
  std::istringstream lines(err);
  std::string line;
  int refused = 0;
  while (std::getline(lines, line))
    refused += line.find("session 1: refused: ") != std::string::npos;
  EXPECT_EQ(refused, 7) << err;
}

// Sessions run concurrently: a client that holds its session open without
// sending anything does not keep the next client waiting.
TEST_F(HeServe, AnIdleClientDoesNotBlockTheNext) {
  const int port = serve("latency", 2);
  FakeClient idle(pki(), port);  // session 1: has the spec, sends nothing
  ASSERT_TRUE(procs_->wait_for("server.out", "session 1: connected", 30s)) << procs_->out("server");
  infer_and_check("busy", port);  // session 2
  EXPECT_TRUE(
      procs_->wait_for("server.out", "session 2: done, 8 queries, 8 samples, 0 refused", 30s))
      << procs_->out("server");
  EXPECT_EQ(procs_->out("server").find("session 1: done"), std::string::npos)
      << procs_->out("server");
  idle.bye();
  EXPECT_EQ(procs_->wait(server_, 30s), 0) << procs_->err("server");
  EXPECT_NE(procs_->out("server").find("session 1: done, 0 queries"), std::string::npos)
      << procs_->out("server");
  EXPECT_EQ(procs_->err("server"), "");
}

// infer refuses an input of the wrong shape, ends its session cleanly, and
// the server goes on.
TEST_F(HeServe, InferRefusesAnInputOfTheWrongShape) {
  const int port = serve("latency", 2);
  const std::string bad = (dir_ / "bad.npy").string();
  blindfold::write_npy(bad, blindfold::Tensor::from_floats({2, 30}, std::vector<float>(60, 0.5f)));
  const pid_t c =
      procs_->start("bad", {"infer", "--backend", "he", "--server",
                            "127.0.0.1:" + std::to_string(port), "--pki", pki(), "--input", bad});
  EXPECT_EQ(procs_->wait(c, 60s), 3) << procs_->err("bad");
  EXPECT_NE(procs_->err("bad").find("bad input: --input has shape [2, 30]"), std::string::npos)
      << procs_->err("bad");
  ASSERT_TRUE(procs_->wait_for("server.out", "session 1: done, 0 queries", 30s))
      << procs_->out("server");
  infer_and_check("good", port, {"--batch", "1"});
  EXPECT_EQ(procs_->wait(server_, 30s), 0) << procs_->err("server");
  EXPECT_EQ(procs_->err("server"), "");
}

}  // namespace
