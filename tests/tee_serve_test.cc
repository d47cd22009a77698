// `blindfold serve --backend tee` and `blindfold infer --backend tee` as two
// processes over loopback TCP (the host spawns one blindfold-enclave per
// connection and relays it): the labels equal the plaintext model's, the
// client prints the verdict, claims and trust model; without
// --trust-simulated-platform the client refuses before connecting; a wrong
// --expect-model is refused after attestation with nothing of the input sent,
// and the server goes on. Also `blindfold bench --backend tee` with and
// without the flag.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/npy.h"
#include "model/executor.h"
#include "model/onnx_import.h"
#include "tests/process_util.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const std::string kBin = BLINDFOLD_BIN;
const std::string kRoot = BLINDFOLD_SOURCE_DIR;
const std::string kModel = kRoot + "/models/fmnist-lenet.onnx";
const std::string kInput = kRoot + "/models/fixtures/fmnist-test-first8.npy";

using blindfold::ErrorCategory;
using blindfold::exit_code;
using blindfold::testutil::argmax_rows;
using blindfold::testutil::ProcessSuite;
using blindfold::testutil::Procs;

std::string labels_text(const std::vector<std::int64_t>& v) {
  std::string s = "labels: [";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

class TeeServe : public ProcessSuite<TeeServe> {
 protected:
  static void SetUpTestSuite() {
    start_suite("bf_tee_serve", kBin);
    const blindfold::model::Graph g = blindfold::model::import_onnx_file(kModel);
    plain_labels_ =
        argmax_rows(blindfold::model::Executor(g).run({blindfold::read_npy(kInput)}).at(0));
  }

  std::string platform() const { return (dir_ / "platform").string(); }
  std::string cert() const { return (dir_ / "platform" / "simulated-platform.pem").string(); }

  // Starts a server on an ephemeral loopback port; returns its port.
  int serve(int sessions) {
    server_ = procs_->start(
        "server", {"serve", "--backend", "tee", "--model", kModel, "--listen", "127.0.0.1:0",
                   "--platform-dir", platform(), "--sessions", std::to_string(sessions)});
    EXPECT_TRUE(procs_->wait_for("server.out", "serve: listening on", 60s))
        << procs_->err("server");
    std::smatch m;
    const std::string out = procs_->out("server");
    const std::regex re("listening on 127\\.0\\.0\\.1:([0-9]+) ");
    if (!std::regex_search(out, m, re)) {
      ADD_FAILURE() << out;
      return 0;
    }
    return std::stoi(m[1]);
  }

  int infer(const std::string& name, int port, std::vector<std::string> more) {
    std::vector<std::string> args{"infer",
                                  "--backend",
                                  "tee",
                                  "--server",
                                  "127.0.0.1:" + std::to_string(port),
                                  "--input",
                                  kInput,
                                  "--out",
                                  (dir_ / (name + ".npy")).string(),
                                  "--platform-cert",
                                  cert()};
    args.insert(args.end(), more.begin(), more.end());
    return procs_->wait(procs_->start(name, args), 60s);
  }

  static inline std::vector<std::int64_t> plain_labels_;
  pid_t server_ = -1;
};

TEST_F(TeeServe, LabelsEqualPlainAndTheClientPrintsVerdictClaimsAndTrust) {
  const int port = serve(2);
  ASSERT_GT(port, 0);
  ASSERT_EQ(infer("c1", port, {"--trust-simulated-platform"}), 0) << procs_->err("c1");
  const std::string out = procs_->out("c1");
  EXPECT_NE(out.find("verdict: ACCEPTED"), std::string::npos) << out;
  EXPECT_NE(out.find("CODE "), std::string::npos) << out;
  EXPECT_NE(out.find("MODEL "), std::string::npos) << out;
  EXPECT_NE(out.find("simulated: no hardware protects this run"), std::string::npos) << out;
  EXPECT_NE(out.find(labels_text(plain_labels_)), std::string::npos) << out;
  EXPECT_EQ(argmax_rows(blindfold::read_npy((dir_ / "c1.npy").string())), plain_labels_);

  // Pinning the measurements the server printed works too.
  const std::string sout = procs_->out("server");
  std::smatch code, model;
  ASSERT_TRUE(std::regex_search(sout, code, std::regex("enclave CODE ([0-9a-f]{96})")));
  ASSERT_TRUE(std::regex_search(sout, model, std::regex("enclave MODEL ([0-9a-f]{96})")));
  ASSERT_EQ(
      infer("c2", port,
            {"--trust-simulated-platform", "--expect-code", code[1], "--expect-model", model[1]}),
      0)
      << procs_->err("c2");
  EXPECT_NE(procs_->out("c2").find(labels_text(plain_labels_)), std::string::npos);
  EXPECT_EQ(procs_->wait(server_, 30s), 0) << procs_->err("server");
}

TEST_F(TeeServe, WithoutTrustTheClientRefusesAndAWrongModelIsRefusedAfterAttestation) {
  const int port = serve(3);
  ASSERT_GT(port, 0);
  // No --trust-simulated-platform: refused before connecting (the server
  // still waits for its two sessions).
  EXPECT_EQ(infer("untrusted", port, {}), exit_code(ErrorCategory::kBadInput));
  EXPECT_NE(procs_->err("untrusted").find("SIMULATED"), std::string::npos)
      << procs_->err("untrusted");

  // A model measurement the enclave does not have: attestation verifies,
  // the policy refuses, and nothing of the input is sent.
  const std::string wrong(96, 'a');
  EXPECT_EQ(infer("wrong", port, {"--trust-simulated-platform", "--expect-model", wrong}),
            exit_code(ErrorCategory::kBadMessage));
  EXPECT_NE(procs_->out("wrong").find("verdict: REFUSED"), std::string::npos)
      << procs_->out("wrong");
  EXPECT_NE(procs_->err("wrong").find("MODEL"), std::string::npos) << procs_->err("wrong");
  EXPECT_FALSE(fs::exists(dir_ / "wrong.npy"));
  std::smatch m;

  // A policy file for hardware platforms only refuses the simulated one,
  // flag or not.
  const std::string policy = (dir_ / "sgx-only.json").string();
  blindfold::write_file_bytes(policy, R"({"platforms": ["Intel SGX"]})");
  EXPECT_EQ(infer("hw", port, {"--trust-simulated-platform", "--policy", policy}),
            exit_code(ErrorCategory::kBadMessage));
  EXPECT_NE(procs_->out("hw").find("verdict: REFUSED"), std::string::npos) << procs_->out("hw");

  // The server serves the next session.
  ASSERT_EQ(infer("ok", port, {"--trust-simulated-platform"}), 0) << procs_->err("ok");
  EXPECT_NE(procs_->out("ok").find(labels_text(plain_labels_)), std::string::npos);
  EXPECT_EQ(procs_->wait(server_, 30s), 0) << procs_->err("server");
  // The refused session carried only the hello towards the enclave.
  const std::string sout = procs_->out("server");
  ASSERT_TRUE(
      std::regex_search(sout, m, std::regex("session 1: done, ([0-9]+) bytes to the enclave")))
      << sout;
  EXPECT_LT(std::stoi(m[1]), 200);
}

TEST_F(TeeServe, BenchNeedsTrustAndReportsTheCommonMetrics) {
  const std::vector<std::string> common{"bench", kModel,   "--backend", "tee",   "--batch",
                                        "2",     "--runs", "2",         "--json"};
  const pid_t refused = procs_->start("refused", common);
  EXPECT_EQ(procs_->wait(refused, 60s), exit_code(ErrorCategory::kBadInput));
  EXPECT_NE(procs_->err("refused").find("no hardware protects"), std::string::npos);

  std::vector<std::string> args = common;
  args.push_back("--trust-simulated-platform");
  const pid_t b = procs_->start("bench", args);
  ASSERT_EQ(procs_->wait(b, 60s), 0) << procs_->err("bench");
  const nlohmann::json j = nlohmann::json::parse(procs_->out("bench"));
  EXPECT_EQ(j["backend"], "tee");
  EXPECT_GT(j["phases_ms"]["setup"].get<double>(), 0);
  EXPECT_GT(j["bytes"]["online"].get<std::int64_t>(), 2 * 784 * 4);
  EXPECT_EQ(j["rounds"]["online"], 1);
  EXPECT_GT(j["detail"]["handshake_ms"].get<double>(), 0);
  EXPECT_GT(j["detail"]["evidence_bytes"].get<std::int64_t>(), 0);
  EXPECT_NE(j["trust"].get<std::string>().find("simulated"), std::string::npos);
}

}  // namespace
