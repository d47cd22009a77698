// The party mesh: configuration validation, a 3-party TLS mesh in one process
// (a thread per party), impostors, plain TCP only when asked; and the
// `blindfold certs` / `blindfold party --probe` commands end to end.
#include "net/mesh.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "net/certs.h"
#include "net/proxy.h"
#include "net/test_util.h"

using namespace blindfold;
using namespace blindfold::net;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using testing_util::contains;
using testing_util::error_of;

const std::vector<std::string> kNames = {"client", "server", "helper"};

class MeshTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("bf_mesh_test_" + std::to_string(getpid())));
    make_test_pki(*dir_, kNames);
    make_test_pki(*dir_ / "other", kNames);  // a second, unrelated CA
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    dir_ = nullptr;
  }

  // Listeners on ephemeral ports, bound before any party starts, so parallel
  // test runs cannot collide.
  void bind_listeners(int n) {
    listeners_.clear();
    for (int i = 0; i < n; ++i) listeners_.push_back(std::make_unique<TcpListener>("127.0.0.1", 0));
  }

  json config_json(int n, const std::string& transport = "tls") const {
    json parties = json::array();
    for (int i = 0; i < n; ++i) {
      const std::string& name = kNames[static_cast<std::size_t>(i)];
      parties.push_back({{"id", i},
                         {"name", name},
                         {"host", "127.0.0.1"},
                         {"port", listeners_.empty() ? 7100 + i : listeners_[i]->port()},
                         {"cert", name + ".pem"},
                         {"key", name + ".key"}});
    }
    return {{"ca", "ca.pem"}, {"transport", transport}, {"parties", parties}};
  }

  static MeshConfig parse(const json& j) { return parse_mesh_config(j.dump(), *dir_, "test.json"); }

  // Runs connect_mesh for each config/id on its own thread.
  struct Run {
    std::vector<std::optional<Mesh>> meshes;
    std::vector<std::optional<Error>> errors;
  };
  Run run_parties(const std::vector<std::pair<MeshConfig, int>>& who, MeshOptions opt,
                  const std::vector<int>& listener_of) {
    Run r;
    r.meshes.resize(who.size());
    r.errors.resize(who.size());
    std::vector<std::thread> threads;
    for (std::size_t k = 0; k < who.size(); ++k) {
      threads.emplace_back([&, k] {
        MeshOptions o = opt;
        o.listener = listener_of[k] >= 0
                         ? listeners_[static_cast<std::size_t>(listener_of[k])].get()
                         : nullptr;
        try {
          r.meshes[k] = connect_mesh(who[k].first, who[k].second, o);
        } catch (const Error& e) {
          r.errors[k] = e;
        }
      });
    }
    for (auto& t : threads) t.join();
    return r;
  }

  static fs::path* dir_;
  std::vector<std::unique_ptr<TcpListener>> listeners_;
};

fs::path* MeshTest::dir_ = nullptr;

}  // namespace

// ---- configuration ------------------------------------------------------------------

TEST_F(MeshTest, ConfigResolvesPathsAgainstItsDirectory) {
  const MeshConfig c = parse(config_json(3));
  ASSERT_EQ(c.parties.size(), 3u);
  EXPECT_EQ(c.transport, Transport::kTls);
  EXPECT_EQ(c.ca, (*dir_ / "ca.pem").string());
  EXPECT_EQ(c.parties[1].name, "server");
  EXPECT_EQ(c.parties[1].cert, (*dir_ / "server.pem").string());
  EXPECT_EQ(c.parties[2].port, 7102);

  // Order in the file does not matter; ids do.
  json j = config_json(3);
  std::swap(j["parties"][0], j["parties"][2]);
  EXPECT_EQ(parse(j).parties[0].name, "client");

  // From a file: relative to the file's directory, not the working directory.
  const fs::path file = *dir_ / "mesh.json";
  std::ofstream(file) << config_json(2).dump();
  EXPECT_EQ(load_mesh_config(file).parties[0].key, (*dir_ / "client.key").string());
}

TEST_F(MeshTest, ConfigIsValidatedStrictly) {
  struct Case {
    std::function<void(json&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j["parties"][1]["id"] = 0; }, "id 0 appears twice"},
      {[](json& j) { j["parties"][1]["id"] = 3; }, "\"id\" must be 0 to 2, got 3"},
      {[](json& j) { j["parties"][1]["id"] = "1"; }, "\"id\" must be an integer"},
      {[](json& j) { j["parties"][0]["port"] = 0; }, "\"port\" must be 1 to 65535, got 0"},
      {[](json& j) { j["parties"][0]["port"] = 65536; }, "must be 1 to 65535, got 65536"},
      {[](json& j) { j["parties"][0]["bind_port"] = 0; }, "\"bind_port\" must be 1 to 65535"},
      {[](json& j) { j["parties"][0]["name"] = "Client"; }, "name 'Client' must be"},
      {[](json& j) { j["parties"][0]["name"] = "a_b"; }, "name 'a_b' must be"},
      {[](json& j) { j["parties"][1]["name"] = "client"; }, "name 'client' appears twice"},
      {[](json& j) { j["parties"][1]["port"] = 7100; }, "127.0.0.1:7100 is used by another"},
      {[](json& j) { j["ca"] = "missing.pem"; }, "missing.pem' does not exist"},
      {[](json& j) { j.erase("ca"); }, "missing \"ca\""},
      {[](json& j) { j["parties"][2].erase("cert"); }, "parties[2] (helper): missing \"cert\""},
      {[](json& j) { j["parties"][2]["host"] = "a b"; }, "is not a host name or address"},
      {[](json& j) { j["transport"] = "udp"; }, "\"transport\" must be \"tls\" or \"tcp\""},
      {[](json& j) { j["parties"][0]["prot"] = 1; }, "parties[0]: unknown key 'prot'"},
      {[](json& j) { j["extra"] = 1; }, "top level: unknown key 'extra'"},
      {[](json& j) { j["parties"] = json::array({j["parties"][0]}); }, "2 to 64 parties, got 1"},
      {[](json& j) { j["parties"] = 5; }, "\"parties\" must be an array"},
  };
  for (const Case& c : cases) {
    json j = config_json(3);
    c.edit(j);
    const Error e = error_of([&] { parse(j); });
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput) << c.message;
    EXPECT_TRUE(contains(e.what(), c.message)) << "want: " << c.message << "\ngot:  " << e.what();
  }
  const Error e = error_of([] { parse_mesh_config("{not json", *dir_, "x.json"); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
  EXPECT_TRUE(contains(e.what(), "x.json: invalid JSON")) << e.what();
  const Error e2 = error_of([] { load_mesh_config(*dir_ / "absent.json"); });
  EXPECT_EQ(e2.category(), ErrorCategory::kBadInput);

  // Under plain TCP no certificates are needed.
  json tcp = config_json(2, "tcp");
  tcp.erase("ca");
  for (auto& p : tcp["parties"]) {
    p.erase("cert");
    p.erase("key");
  }
  EXPECT_EQ(parse(tcp).transport, Transport::kTcp);
}

// ---- establishment -------------------------------------------------------------------

TEST_F(MeshTest, ThreePartiesOverTlsTalkToEveryPeer) {
  bind_listeners(3);
  const MeshConfig c = parse(config_json(3));
  MeshOptions opt;
  opt.timeout = 10s;
  std::vector<std::optional<Error>> errors(3);
  std::vector<std::thread> threads;
  for (int id = 0; id < 3; ++id) {
    threads.emplace_back([&, id] {
      try {
        MeshOptions o = opt;
        o.listener = listeners_[static_cast<std::size_t>(id)].get();
        Mesh m = connect_mesh(c, id, o);
        EXPECT_EQ(m.self, id);
        EXPECT_EQ(m.size(), 3);
        // Everyone sends to everyone, then receives from everyone.
        for (int j = 0; j < 3; ++j) {
          if (j != id) m.to(j).send("greet", std::to_string(id) + "->" + std::to_string(j));
        }
        for (int j = 0; j < 3; ++j) {
          if (j == id) continue;
          const Bytes b = m.to(j).recv("greet");
          EXPECT_EQ(std::string(b.begin(), b.end()), std::to_string(j) + "->" + std::to_string(id));
          EXPECT_EQ(m.to(j).peer_name(), "party " + std::to_string(j) + " (" +
                                             kNames[static_cast<std::size_t>(j)] + ")");
        }
        // A 4 MiB message around the ring.
        const Bytes big(4 << 20, static_cast<std::uint8_t>(id));
        m.to((id + 1) % 3).send("big", big);
        const Bytes got = m.to((id + 2) % 3).recv("big");
        EXPECT_EQ(got, Bytes(4 << 20, static_cast<std::uint8_t>((id + 2) % 3)));
      } catch (const Error& e) {
        errors[static_cast<std::size_t>(id)] = e;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_FALSE(e) << e->what();
}

TEST_F(MeshTest, PartiesMayStartInAnyOrder) {
  bind_listeners(2);
  const MeshConfig c = parse(config_json(2));
  MeshOptions opt;
  opt.timeout = 10s;
  std::optional<Error> err;
  // Party 1 starts first and retries until party 0 listens (party 1 binds
  // nothing: the last party only connects).
  const std::uint16_t port0 = listeners_[0]->port();
  listeners_[0].reset();
  std::thread t1([&] {
    try {
      Mesh m = connect_mesh(c, 1, opt);
      m.to(0).send("x", "late");
    } catch (const Error& e) {
      err = e;
    }
  });
  std::this_thread::sleep_for(300ms);
  TcpListener late("127.0.0.1", port0);
  MeshOptions o0 = opt;
  o0.listener = &late;
  Mesh m0 = connect_mesh(c, 0, o0);
  EXPECT_EQ(m0.to(1).recv("x").size(), 4u);
  t1.join();
  EXPECT_FALSE(err) << err->what();
}

TEST_F(MeshTest, APartyCannotClaimAnotherPartysId) {
  // The impostor holds a genuine certificate, for "helper", and claims to be
  // party 1 ("server"): its configuration points party 1 at helper's files.
  bind_listeners(2);
  const MeshConfig real = parse(config_json(2));
  MeshConfig forged = real;
  forged.parties[1].cert = (*dir_ / "helper.pem").string();
  forged.parties[1].key = (*dir_ / "helper.key").string();
  MeshOptions opt;
  opt.timeout = 1500ms;
  const Run r = run_parties({{real, 0}, {forged, 1}}, opt, {0, -1});
  ASSERT_TRUE(r.errors[1]);
  EXPECT_EQ(r.errors[1]->category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(r.errors[1]->what(),
                       "refused our connection: it claims to be party 1 (server) but its "
                       "certificate is for 'helper'"))
      << r.errors[1]->what();
  // Party 0 kept waiting for the real party 1, and says what it rejected.
  ASSERT_TRUE(r.errors[0]);
  EXPECT_EQ(r.errors[0]->category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(r.errors[0]->what(),
                       "waiting for party 1 (server) to connect; 1 "
                       "connection(s) rejected"))
      << r.errors[0]->what();
  EXPECT_TRUE(contains(r.errors[0]->what(), "certificate is for 'helper'")) << r.errors[0]->what();
}

TEST_F(MeshTest, AnImpostorDoesNotStopTheRealParty) {
  bind_listeners(2);
  const MeshConfig real = parse(config_json(2));
  MeshConfig forged = real;
  forged.parties[1].cert = (*dir_ / "helper.pem").string();
  forged.parties[1].key = (*dir_ / "helper.key").string();
  MeshOptions opt;
  opt.timeout = 10s;
  std::optional<Error> impostor_error, real_error;
  std::thread impostor([&] {
    try {
      connect_mesh(forged, 1, opt);
    } catch (const Error& e) {
      impostor_error = e;
    }
  });
  std::thread party1([&] {
    impostor.join();  // the real one comes second
    try {
      Mesh m = connect_mesh(real, 1, opt);
      m.to(0).send("ok", "");
    } catch (const Error& e) {
      real_error = e;
    }
  });
  MeshOptions o0 = opt;
  o0.listener = listeners_[0].get();
  Mesh m0 = connect_mesh(real, 0, o0);
  EXPECT_EQ(m0.to(1).recv("ok").size(), 0u);
  party1.join();
  EXPECT_TRUE(impostor_error);
  EXPECT_FALSE(real_error) << real_error->what();
}

TEST_F(MeshTest, APartyFromAnotherCaIsRefused) {
  bind_listeners(2);
  const MeshConfig real = parse(config_json(2));
  MeshConfig stranger = real;
  stranger.ca = (*dir_ / "other" / "ca.pem").string();
  stranger.parties[1].cert = (*dir_ / "other" / "server.pem").string();
  stranger.parties[1].key = (*dir_ / "other" / "server.key").string();
  MeshOptions opt;
  opt.timeout = 1500ms;
  const Run r = run_parties({{real, 0}, {stranger, 1}}, opt, {0, -1});
  ASSERT_TRUE(r.errors[1]);
  EXPECT_EQ(r.errors[1]->category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(r.errors[1]->what(), "certificate verify failed")) << r.errors[1]->what();
  ASSERT_TRUE(r.errors[0]);
  EXPECT_TRUE(contains(r.errors[0]->what(), "1 connection(s) rejected")) << r.errors[0]->what();
}

TEST_F(MeshTest, PlainTcpOnlyWithTheInsecureFlag) {
  bind_listeners(2);
  const MeshConfig c = parse(config_json(2, "tcp"));
  const Error e = error_of([&] { connect_mesh(c, 0, {}); });
  EXPECT_EQ(e.category(), ErrorCategory::kInsecureParameters);
  EXPECT_STREQ(e.what(), "plain TCP refused: pass --insecure-transport (loopback benchmarks only)");

  MeshOptions opt;
  opt.timeout = 5s;
  opt.insecure_transport = true;
  std::vector<std::string> warnings;
  opt.warn = [&](const std::string& w) { warnings.push_back(w); };
  Run r = run_parties({{c, 0}, {c, 1}}, opt, {0, 1});
  ASSERT_FALSE(r.errors[0]) << r.errors[0]->what();
  ASSERT_FALSE(r.errors[1]) << r.errors[1]->what();
  r.meshes[1]->to(0).send("t", "cp");
  EXPECT_EQ(r.meshes[0]->to(1).recv("t").size(), 2u);
  EXPECT_TRUE(warnings.empty());  // loopback only: nothing to warn about
}

TEST_F(MeshTest, BindAddressBehindTheTestBedsDelayingProxy) {
  // Party 0 listens on bind:bind_port; the others reach it through a proxy
  // adding 5 ms each way (net/proxy.h), as in the test bed (docs/NETWORK.md).
  const std::uint16_t service = TcpListener("127.0.0.1", 0).port();
  ProxyOptions po;
  po.listen = {"127.0.0.1", 0};
  po.connect = {"127.0.0.1", service};
  po.delay = std::chrono::milliseconds(5);
  Proxy proxy(po);
  proxy.start();
  json j = config_json(2);
  j["parties"][0]["port"] = proxy.port();
  j["parties"][0]["bind"] = "127.0.0.1";
  j["parties"][0]["bind_port"] = service;
  j["parties"][1]["port"] = TcpListener("127.0.0.1", 0).port();
  const MeshConfig c = parse(j);
  MeshOptions opt;
  opt.timeout = 10s;
  Run r = run_parties({{c, 0}, {c, 1}}, opt, {-1, -1});
  ASSERT_FALSE(r.errors[0]) << r.errors[0]->what();
  ASSERT_FALSE(r.errors[1]) << r.errors[1]->what();
  std::thread echo([&] { r.meshes[0]->to(1).send("pong", r.meshes[0]->to(1).recv("ping")); });
  const auto t0 = Clock::now();
  r.meshes[1]->to(0).send("ping", "x");
  EXPECT_EQ(r.meshes[1]->to(0).recv("pong").size(), 1u);
  EXPECT_GE(Clock::now() - t0, 10ms);
  echo.join();
  r.meshes.clear();
  proxy.stop();
}

TEST_F(MeshTest, LoopbackDetection) {
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("127.3.2.1"));
  EXPECT_TRUE(is_loopback_host("::1"));
  EXPECT_TRUE(is_loopback_host("localhost"));
  EXPECT_FALSE(is_loopback_host("10.0.0.1"));
  EXPECT_FALSE(is_loopback_host("0.0.0.0"));
  EXPECT_FALSE(is_loopback_host("no-such-host.invalid"));
}

TEST_F(MeshTest, BadIdAndUnreachablePeer) {
  const MeshConfig c = parse(config_json(2));
  EXPECT_EQ(error_of([&] { connect_mesh(c, 2, {}); }).category(), ErrorCategory::kBadInput);
  EXPECT_EQ(error_of([&] { connect_mesh(c, -1, {}); }).category(), ErrorCategory::kBadInput);
  bind_listeners(1);
  const std::uint16_t dead = listeners_[0]->port();
  listeners_.clear();
  json j = config_json(2);
  j["parties"][0]["port"] = dead;
  MeshOptions opt;
  opt.timeout = 500ms;
  const Error e = error_of([&] { connect_mesh(parse(j), 1, opt); });
  EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(e.what(), "party 1 (server): connecting to party 0 (client) at 127.0.0.1:" +
                                     std::to_string(dead) + ": could not connect"))
      << e.what();
}

// ---- the blindfold binary --------------------------------------------------------------

namespace {

// The blindfold binary sits next to this test in the build directory.
fs::path blindfold_binary() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path() / "blindfold";
}

struct Proc {
  pid_t pid = -1;
  fs::path out, err;
};

Proc spawn(const std::vector<std::string>& args, const fs::path& out, const fs::path& err) {
  Proc p{-1, out, err};
  p.pid = fork();
  if (p.pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(126);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return p;
}

int wait_exit(const Proc& p) {
  int status = 0;
  if (waitpid(p.pid, &status, 0) != p.pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A port that was free a moment ago (the processes bind it themselves).
std::uint16_t free_port() {
  return TcpListener("127.0.0.1", 0).port();
}

}  // namespace

TEST(PartyCli, CertsThenTwoProbingPartiesOverTls) {
  const fs::path bin = blindfold_binary();
  if (!fs::exists(bin)) GTEST_SKIP() << "build the blindfold target for this test";
  const fs::path dir = fs::temp_directory_path() / ("bf_party_cli_" + std::to_string(getpid()));
  fs::create_directories(dir);
  Proc certs =
      spawn({bin.string(), "certs", "--out", (dir / "pki").string(), "--parties", "client,server"},
            dir / "certs.out", dir / "certs.err");
  ASSERT_EQ(wait_exit(certs), 0) << slurp(dir / "certs.err");
  EXPECT_TRUE(contains(slurp(dir / "certs.out"), "TEST PKI"));

  json cfg = {{"ca", "pki/ca.pem"}, {"transport", "tls"}, {"parties", json::array()}};
  const std::vector<std::string> names = {"client", "server"};
  for (int i = 0; i < 2; ++i) {
    cfg["parties"].push_back({{"id", i},
                              {"name", names[static_cast<std::size_t>(i)]},
                              {"host", "127.0.0.1"},
                              {"port", free_port()},
                              {"cert", "pki/" + names[static_cast<std::size_t>(i)] + ".pem"},
                              {"key", "pki/" + names[static_cast<std::size_t>(i)] + ".key"}});
  }
  std::ofstream(dir / "mesh.json") << cfg.dump(2);
  const std::string conf = (dir / "mesh.json").string();
  Proc p1 = spawn(
      {bin.string(), "party", "--config", conf, "--id", "1", "--probe", "--timeout-ms", "20000"},
      dir / "p1.out", dir / "p1.err");
  Proc p0 = spawn(
      {bin.string(), "party", "--config", conf, "--id", "0", "--probe", "--timeout-ms", "20000"},
      dir / "p0.out", dir / "p0.err");
  const int rc0 = wait_exit(p0), rc1 = wait_exit(p1);
  ASSERT_EQ(rc0, 0) << slurp(dir / "p0.err");
  ASSERT_EQ(rc1, 0) << slurp(dir / "p1.err");
  const std::string out = slurp(dir / "p0.out");
  const json r = json::parse(out.substr(0, out.find('\n')));
  EXPECT_EQ(r["peer"], 1);
  EXPECT_EQ(r["peer_name"], "server");
  EXPECT_EQ(r["transport"], "tls");
  EXPECT_GT(r["rtt_us_median"].get<double>(), 0);
  EXPECT_LE(r["rtt_us_min"].get<double>(), r["rtt_us_median"].get<double>());
  EXPECT_GT(r["throughput_mbit_s"].get<double>(), 0);
  EXPECT_EQ(r["payload_bytes"], 64 << 20);
  EXPECT_GT(r["bytes_sent"].get<std::int64_t>(), 64 << 20);
  EXPECT_GE(r["rounds"].get<std::int64_t>(), 50);
  EXPECT_EQ(slurp(dir / "p1.out"), "");

  // Without --probe: connect, report, exit 0.
  Proc q1 = spawn({bin.string(), "party", "-c", conf, "--id", "1"}, dir / "q1.out", dir / "q1.err");
  Proc q0 = spawn({bin.string(), "party", "-c", conf, "--id", "0"}, dir / "q0.out", dir / "q0.err");
  EXPECT_EQ(wait_exit(q0), 0) << slurp(dir / "q0.err");
  EXPECT_EQ(wait_exit(q1), 0) << slurp(dir / "q1.err");
  EXPECT_EQ(slurp(dir / "q0.out"), "party 0: connected to 1 peers\n");

  // Plain TCP without the flag: one line on stderr, exit code of kInsecureParameters.
  cfg["transport"] = "tcp";
  std::ofstream(dir / "tcp.json") << cfg.dump(2);
  Proc t0 = spawn({bin.string(), "party", "-c", (dir / "tcp.json").string(), "--id", "0"},
                  dir / "t0.out", dir / "t0.err");
  EXPECT_EQ(wait_exit(t0), 5);
  EXPECT_EQ(slurp(dir / "t0.err"),
            "blindfold: insecure parameters: plain TCP refused: pass --insecure-transport "
            "(loopback benchmarks only)\n");
  std::error_code ec;
  fs::remove_all(dir, ec);
}
