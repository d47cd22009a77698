// `blindfold party --backend mpc2|mpc3` as three processes over loopback TLS:
// the labels equal the plaintext model's; a client killed mid-session makes
// the server and the helper report one clear line and serve the next client;
// a client sending malformed messages (a fake one, written here over
// net::connect_mesh) is refused with a bad-message line, and the next real
// session is served correctly.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/mpc/plan.h"
#include "core/error.h"
#include "core/npy.h"
#include "core/tensor.h"
#include "net/mesh.h"
#include "tests/process_util.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const std::string kBin = BLINDFOLD_BIN;
const std::string kRoot = BLINDFOLD_SOURCE_DIR;
const std::string kModel = kRoot + "/models/fmnist-lenet.onnx";
const std::string kInput = kRoot + "/models/fixtures/fmnist-test-first8.npy";

using blindfold::testutil::argmax_rows;
using blindfold::testutil::count_lines;
using blindfold::testutil::free_ports;
using blindfold::testutil::ProcessSuite;
using blindfold::testutil::Procs;
using blindfold::testutil::test_file_name;

class MpcParty : public ProcessSuite<MpcParty> {
 protected:
  static void SetUpTestSuite() {
    start_suite("bf_mpc_party", kBin);
    Procs p(kBin, suite_dir_);
    const pid_t c = p.start("certs", {"certs", "--out", (suite_dir_ / "pki").string(), "--parties",
                                      "server,client,helper"});
    ASSERT_EQ(p.wait(c, 60s), 0) << p.err("certs");
    const std::string plain = (suite_dir_ / "plain.npy").string();
    const pid_t r = p.start("plain", {"run", kModel, "--input", kInput, "--output", plain});
    ASSERT_EQ(p.wait(r, 60s), 0) << p.err("plain");
    plain_logits_ = blindfold::read_npy(plain);
    plain_labels_ = argmax_rows(plain_logits_);
  }

  void SetUp() override {
    ProcessSuite::SetUp();
    const std::string name = test_file_name();
    const std::vector<int> ports = free_ports(3);
    const std::string names[3] = {"server", "client", "helper"};
    nlohmann::json parties = nlohmann::json::array();
    for (int i = 0; i < 3; ++i) {
      parties.push_back({{"id", i},
                         {"name", names[i]},
                         {"host", "127.0.0.1"},
                         {"port", ports[static_cast<std::size_t>(i)]},
                         {"cert", "pki/" + names[i] + ".pem"},
                         {"key", "pki/" + names[i] + ".key"}});
    }
    const nlohmann::json config{{"ca", "pki/ca.pem"}, {"transport", "tls"}, {"parties", parties}};
    config_ = (suite_dir_ / (name + "-mesh.json")).string();
    std::ofstream(config_) << config.dump(2);
  }

  std::vector<std::string> party(int id, const std::string& backend,
                                 std::vector<std::string> more) {
    std::vector<std::string> a{"party",     "--config", config_,        "--id", std::to_string(id),
                               "--backend", backend,    "--timeout-ms", "3000"};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  pid_t server(const std::string& backend, int sessions, const std::string& output = "logits") {
    return procs_->start("server", party(0, backend,
                                         {"--model", kModel, "--sessions", std::to_string(sessions),
                                          "--output", output}));
  }
  pid_t helper(const std::string& backend, int sessions) {
    return procs_->start("helper", party(2, backend, {"--sessions", std::to_string(sessions)}));
  }
  pid_t client(const std::string& name, const std::string& backend, const std::string& input,
               int batch) {
    return procs_->start(name, party(1, backend,
                                     {"--input", input, "--batch", std::to_string(batch), "--out",
                                      (dir_ / (name + ".npy")).string()}));
  }
  // Runs a real client on the fixture and checks its labels against the
  // plaintext model's; returns its JSON line.
  nlohmann::json run_client_and_check(const std::string& name, const std::string& backend,
                                      int batch) {
    const pid_t c = client(name, backend, kInput, batch);
    const int rc = procs_->wait(c, 60s);
    EXPECT_EQ(rc, 0) << procs_->err(name);
    if (rc != 0) return {};
    const std::string out = procs_->out(name);
    EXPECT_EQ(count_lines(out), 1) << out;
    const nlohmann::json j = nlohmann::json::parse(out);
    EXPECT_EQ(j["labels"].get<std::vector<std::int64_t>>(), plain_labels_) << out;
    EXPECT_EQ(j["samples"], 8);
    const blindfold::Tensor y = blindfold::read_npy((dir_ / (name + ".npy")).string());
    EXPECT_EQ(y.shape(), (blindfold::Shape{8, 10}));
    return j;
  }

  static inline blindfold::Tensor plain_logits_;
  static inline std::vector<std::int64_t> plain_labels_;
  std::string config_;
};

void check_metrics(const nlohmann::json& j, const std::string& backend, std::size_t queries) {
  ASSERT_TRUE(j.contains("queries"));
  ASSERT_EQ(j["queries"].size(), queries);
  for (const auto& q : j["queries"]) {
    EXPECT_GT(q["online_ms"].get<double>(), 0.0);
    EXPECT_GT(q["online_bytes"].get<std::int64_t>(), 0);
    EXPECT_GE(q["rounds"].get<std::int64_t>(), 1);
    if (backend == "mpc2") {
      EXPECT_GT(q["offline_bytes"].get<std::int64_t>(), 0);
    } else {
      EXPECT_EQ(q["offline_bytes"].get<std::int64_t>(), 0);
    }
  }
}

TEST_F(MpcParty, Mpc2ProcessesGiveThePlaintextLabels) {
  const pid_t s = server("mpc2", 1), h = helper("mpc2", 1);
  const nlohmann::json j = run_client_and_check("client", "mpc2", 3);  // queries of 3, 3, 2
  EXPECT_EQ(j["output"], "logits");
  check_metrics(j, "mpc2", 3);
  // Logits close to the plaintext model's (fixed point, 12 bits).
  const blindfold::Tensor y = blindfold::read_npy((dir_ / "client.npy").string());
  float worst = 0;
  for (std::int64_t i = 0; i < y.numel(); ++i)
    worst = std::max(worst, std::abs(y.f32()[i] - plain_logits_.f32()[i]));
  EXPECT_LT(worst, 0.1f);
  EXPECT_EQ(procs_->wait(s, 20s), 0) << procs_->err("server");
  EXPECT_EQ(procs_->wait(h, 20s), 0) << procs_->err("helper");
  EXPECT_EQ(procs_->err("server"), "");
  EXPECT_EQ(procs_->err("helper"), "");
  EXPECT_NE(procs_->out("server").find("session 1: done, 3 queries, 8 samples"), std::string::npos)
      << procs_->out("server");
}

TEST_F(MpcParty, Mpc3ProcessesGiveThePlaintextLabelsUnderTheLabelPolicy) {
  const pid_t s = server("mpc3", 1, "label"), h = helper("mpc3", 1);
  const nlohmann::json j = run_client_and_check("client", "mpc3", 8);
  EXPECT_EQ(j["output"], "label");
  check_metrics(j, "mpc3", 1);
  // The client learnt one-hot rows only.
  const blindfold::Tensor y = blindfold::read_npy((dir_ / "client.npy").string());
  for (float v : y.f32()) EXPECT_TRUE(v == 0.0f || v == 1.0f);
  EXPECT_EQ(procs_->wait(s, 20s), 0) << procs_->err("server");
  EXPECT_EQ(procs_->wait(h, 20s), 0) << procs_->err("helper");
  EXPECT_EQ(procs_->err("server"), "");
  EXPECT_EQ(procs_->err("helper"), "");
}

// The client is SIGKILLed while it runs queries: the server and the helper
// report it (one line each, within the 3 s timeout) and serve a fresh client.
class MpcPartyFault : public MpcParty, public ::testing::WithParamInterface<std::string> {};

TEST_P(MpcPartyFault, KilledClientIsReportedAndTheNextSessionIsServed) {
  const std::string backend = GetParam();
  // 1024 samples, one query each: the client is busy for a while (64 were
  // done within the 300 ms below once mpc3's comparisons got narrower).
  const blindfold::Tensor x = blindfold::read_npy(kInput);
  blindfold::Shape shape = x.shape();
  shape[0] = 1024;
  std::vector<float> data;
  for (int r = 0; r < 128; ++r) data.insert(data.end(), x.f32().begin(), x.f32().end());
  const std::string many = (dir_ / "many.npy").string();
  blindfold::write_npy(many, blindfold::Tensor::from_floats(shape, data));

  const pid_t s = server(backend, 2), h = helper(backend, 2);
  const pid_t c = client("victim", backend, many, 1);
  ASSERT_TRUE(procs_->wait_for("server.out", "session 1: connected", 20s)) << procs_->err("server");
  std::this_thread::sleep_for(300ms);
  procs_->kill9(c);
  EXPECT_EQ(procs_->wait(c, 5s), 128 + SIGKILL)
      << "the client ended before it was killed: " << procs_->out("victim")
      << procs_->err("victim");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(procs_->wait_for("server.err", "session 1 failed", 6s)) << procs_->err("server");
  ASSERT_TRUE(procs_->wait_for("helper.err", "session 1 failed", 6s)) << procs_->err("helper");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 6s);
  for (const char* who : {"server", "helper"}) {
    const std::string err = procs_->err(who);
    EXPECT_EQ(count_lines(err), 1) << err;
    EXPECT_NE(err.find("peer failure"), std::string::npos) << err;
  }
  run_client_and_check("fresh", backend, 8);
  EXPECT_EQ(procs_->wait(s, 20s), 0) << procs_->err("server");
  EXPECT_EQ(procs_->wait(h, 20s), 0) << procs_->err("helper");
  EXPECT_NE(procs_->out("server").find("session 2: done, 1 queries, 8 samples"), std::string::npos)
      << procs_->out("server");
  EXPECT_EQ(count_lines(procs_->err("server")), 1) << procs_->err("server");
}

INSTANTIATE_TEST_SUITE_P(Backends, MpcPartyFault, ::testing::Values("mpc2", "mpc3"));

// The server sizes its comparisons for |input| <= 1 (--input-bound, as the
// model's metadata also says); a client whose input leaves the bound refuses
// to share it (bad input, exit 3), the server and the helper see the session
// fail, and the next client is served.
TEST_F(MpcParty, ClientRefusesAnInputOutsideTheServersBound) {
  blindfold::Tensor x = blindfold::read_npy(kInput);
  x.f32()[3 * 784 + 5] = 2.0f;
  const std::string bad = (dir_ / "bad.npy").string();
  blindfold::write_npy(bad, x);
  const pid_t s = procs_->start(
      "server", party(0, "mpc3", {"--model", kModel, "--sessions", "2", "--input-bound", "1"}));
  const pid_t h = helper("mpc3", 2);
  const pid_t c = client("bad", "mpc3", bad, 8);
  EXPECT_EQ(procs_->wait(c, 30s), 3) << procs_->err("bad");
  const std::string err = procs_->err("bad");
  EXPECT_NE(err.find("bad input: input value 2 at index 2357 (sample 3, element 5)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("sized its comparisons"), std::string::npos) << err;
  ASSERT_TRUE(procs_->wait_for("server.err", "session 1 failed", 6s)) << procs_->err("server");
  ASSERT_TRUE(procs_->wait_for("helper.err", "session 1 failed", 6s)) << procs_->err("helper");
  EXPECT_NE(procs_->out("server").find("comparisons sized for |input| <= 1"), std::string::npos)
      << procs_->out("server");
  run_client_and_check("good", "mpc3", 8);
  EXPECT_EQ(procs_->wait(s, 20s), 0) << procs_->err("server");
  EXPECT_EQ(procs_->wait(h, 20s), 0) << procs_->err("helper");
}

// A fake client (party 1 over net::connect_mesh) that follows the protocol up
// to the first query and then misbehaves.
enum class Misbehaviour { kHugeBatch, kWrongSizeShare };

void fake_mpc2_client(const std::string& config_file, Misbehaviour what) {
  const blindfold::net::MeshConfig config = blindfold::net::load_mesh_config(config_file);
  blindfold::net::MeshOptions mo;
  mo.timeout = 20s;
  blindfold::net::Mesh mesh = blindfold::net::connect_mesh(config, 1, mo);
  for (auto& ch : mesh.peers) {
    if (ch) ch->set_timeout(5s);
  }
  blindfold::net::Channel& server = mesh.to(0);
  blindfold::net::Channel& helper = mesh.to(2);
  const blindfold::net::Bytes plan_msg = server.recv("mpc/plan");
  const nlohmann::json j = nlohmann::json::parse(plan_msg.begin(), plan_msg.end());
  const auto plan = blindfold::backends::mpcplan::Plan::parse(j.at("plan").dump());
  helper.recv("mpc2/seed");
  for (std::size_t i = 0; i < plan.weights.size(); ++i) server.recv("mpc2/weights");
  auto header = [](std::uint64_t b) {
    blindfold::net::Bytes h(8);
    for (int i = 0; i < 8; ++i)
      h[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(b >> (8 * i));
    return h;
  };
  if (what == Misbehaviour::kHugeBatch) {
    server.send("mpc/query", header(std::uint64_t{1} << 40));
    helper.send("mpc/query", header(std::uint64_t{1} << 40));
  } else {
    server.send("mpc/query", header(1));
    helper.send("mpc/query", header(1));
    helper.flush();
    helper.recv("mpc2/pre");
    const std::string junk = "12345";  // not a whole number of ring elements
    server.send("mpc2/F", junk);
  }
  server.flush();
  helper.flush();
  // The server hangs up on us.
  EXPECT_THROW(server.recv("mpc/stats"), blindfold::Error);
}

TEST_F(MpcParty, MalformedClientMessagesAreRefusedAndTheNextSessionIsServed) {
  const pid_t s = server("mpc2", 3), h = helper("mpc2", 3);
  fake_mpc2_client(config_, Misbehaviour::kHugeBatch);
  ASSERT_TRUE(procs_->wait_for("server.err", "session 1 failed", 6s)) << procs_->err("server");
  fake_mpc2_client(config_, Misbehaviour::kWrongSizeShare);
  ASSERT_TRUE(procs_->wait_for("server.err", "session 2 failed", 6s)) << procs_->err("server");
  ASSERT_TRUE(procs_->wait_for("helper.err", "session 2 failed", 6s)) << procs_->err("helper");
  run_client_and_check("real", "mpc2", 8);
  EXPECT_EQ(procs_->wait(s, 20s), 0) << procs_->err("server");
  EXPECT_EQ(procs_->wait(h, 20s), 0) << procs_->err("helper");
  const std::string err = procs_->err("server");
  EXPECT_EQ(count_lines(err), 2) << err;
  std::istringstream lines(err);
  std::string line;
  std::getline(lines, line);
  EXPECT_NE(line.find("session 1 failed: bad message: "), std::string::npos) << line;
  EXPECT_NE(line.find("batch of 1099511627776"), std::string::npos) << line;
  std::getline(lines, line);
  EXPECT_NE(line.find("session 2 failed: bad message: "), std::string::npos) << line;
  EXPECT_NE(line.find("mpc2/F"), std::string::npos) << line;
  EXPECT_NE(procs_->out("server").find("session 3: done, 1 queries, 8 samples"), std::string::npos)
      << procs_->out("server");
  // The helper refused the huge batch itself.
  EXPECT_NE(procs_->err("helper").find("session 1 failed: bad message: "), std::string::npos)
      << procs_->err("helper");
}

}  // namespace
