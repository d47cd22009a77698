#include "app/party.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "net/certs.h"
#include "net/mesh.h"

namespace blindfold::app {

namespace {

using net::Bytes;
using net::Channel;
using net::Clock;

// What party 0 asks of each peer. Sent first, so peers need no options.
struct ProbePlan {
  std::uint32_t pings = 50;
  std::uint32_t chunk_bytes = 1u << 20;
  std::uint32_t chunks = 64;
};

// Bounds a peer accepts (party 0 could be misconfigured or hostile).
constexpr std::uint32_t kMaxPings = 100'000;
constexpr std::uint32_t kMaxChunkBytes = 64u << 20;
constexpr std::uint32_t kMaxChunks = 1u << 16;
// How long a peer waits for party 0 to reach it: party 0 probes the peers
// one after another, and 64 MiB to each takes a while on a slow link.
constexpr auto kPlanWait = std::chrono::minutes(10);

void put_u32(Bytes& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
std::uint32_t get_u32(const Bytes& b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(b[at + i]) << (8 * i);
  return v;
}
Bytes u64_bytes(std::uint64_t v) {
  Bytes b(8);
  for (int i = 0; i < 8; ++i)
    b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
  return b;
}
std::uint64_t get_u64(const Bytes& b) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<std::uint64_t>(b[static_cast<std::size_t>(i)]) << (8 * i);
  return v;
}

double round1(double x) {
  return std::round(x * 10) / 10;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

nlohmann::json probe_peer(Channel& ch, int peer, const std::string& peer_name,
                          const std::string& transport) {
  const ProbePlan plan;
  ch.reset_stats();
  Bytes p;
  put_u32(p, plan.pings);
  put_u32(p, plan.chunk_bytes);
  put_u32(p, plan.chunks);
  ch.send("probe-plan", p);

  std::vector<double> rtt_us;
  for (std::uint32_t k = 0; k < plan.pings; ++k) {
    const Bytes ping = u64_bytes(k);
    const auto t0 = Clock::now();
    ch.send("probe-ping", ping);
    const Bytes pong = ch.recv("probe-pong");
    const auto t1 = Clock::now();
    if (pong != ping)
      throw Error(ErrorCategory::kBadMessage, "probe: wrong pong from " + peer_name);
    rtt_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }

  const Bytes chunk(plan.chunk_bytes, 0x5a);
  const std::uint64_t total = std::uint64_t{plan.chunk_bytes} * plan.chunks;
  const auto t0 = Clock::now();
  for (std::uint32_t c = 0; c < plan.chunks; ++c) ch.send("probe-data", chunk);
  const Bytes ack = ch.recv("probe-ack");
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (ack.size() != 8 || get_u64(ack) != total) {
    throw Error(ErrorCategory::kBadMessage, "probe: " + peer_name + " acknowledged the wrong size");
  }

  nlohmann::json j;
  j["peer"] = peer;
  j["peer_name"] = peer_name;
  j["transport"] = transport;
  j["rtt_us_median"] = round1(median(rtt_us));
  j["rtt_us_min"] = round1(*std::min_element(rtt_us.begin(), rtt_us.end()));
  j["throughput_mbit_s"] = round1(seconds > 0 ? static_cast<double>(total) * 8 / seconds / 1e6 : 0);
  j["payload_bytes"] = total;
  j["seconds"] = std::round(seconds * 1e6) / 1e6;
  j["bytes_sent"] = ch.stats().sent.bytes;
  j["bytes_received"] = ch.stats().received.bytes;
  j["rounds"] = ch.stats().rounds;
  return j;
}

void answer_probe(Channel& ch) {
  const auto timeout = ch.timeout();
  ch.set_timeout(std::max<std::chrono::milliseconds>(timeout, kPlanWait));
  const Bytes p = ch.recv("probe-plan");
  ch.set_timeout(timeout);
  if (p.size() != 12) throw Error(ErrorCategory::kBadMessage, "probe: malformed plan");
  ProbePlan plan{get_u32(p, 0), get_u32(p, 4), get_u32(p, 8)};
  if (plan.pings < 1 || plan.pings > kMaxPings || plan.chunk_bytes < 1 ||
      plan.chunk_bytes > kMaxChunkBytes || plan.chunks < 1 || plan.chunks > kMaxChunks) {
    throw Error(ErrorCategory::kBadMessage, "probe: plan out of bounds");
  }
  ch.set_max_message_bytes(std::min<std::uint64_t>(ch.max_message_bytes(), plan.chunk_bytes));
  for (std::uint32_t k = 0; k < plan.pings; ++k) {
    const Bytes ping = ch.recv("probe-ping");
    if (ping.size() != 8) throw Error(ErrorCategory::kBadMessage, "probe: malformed ping");
    ch.send("probe-pong", ping);
  }
  std::uint64_t total = 0;
  for (std::uint32_t c = 0; c < plan.chunks; ++c) total += ch.recv("probe-data").size();
  ch.send("probe-ack", u64_bytes(total));
  ch.flush();
}

}  // namespace

int run_party(const PartyOptions& o) {
  if (o.timeout_ms < 1 || o.timeout_ms > 24LL * 3600 * 1000) {
    throw Error(ErrorCategory::kBadInput, "--timeout-ms must be 1 to 86400000");
  }
  const net::MeshConfig config = net::load_mesh_config(o.config);
  net::MeshOptions mo;
  mo.timeout = std::chrono::milliseconds(o.timeout_ms);
  mo.insecure_transport = o.insecure_transport;
  net::Mesh mesh = net::connect_mesh(config, o.id, mo);
  const int peers = mesh.size() - 1;
  if (!o.probe) {
    std::printf("party %d: connected to %d peers\n", o.id, peers);
    return 0;
  }
  const std::string transport = config.transport == net::Transport::kTls ? "tls" : "tcp";
  if (o.id == 0) {
    for (int p = 1; p < mesh.size(); ++p) {
      const nlohmann::json j =
          probe_peer(mesh.to(p), p, config.parties[static_cast<std::size_t>(p)].name, transport);
      std::printf("%s\n", j.dump().c_str());
      std::fflush(stdout);
    }
  } else {
    answer_probe(mesh.to(0));
  }
  return 0;
}

int run_certs(const std::string& out_dir, const std::vector<std::string>& party_names) {
  net::make_test_pki(out_dir, party_names);
  std::printf("wrote a TEST PKI to %s: ca.pem, ca.key", out_dir.c_str());
  for (const auto& n : party_names) std::printf(", %s.pem, %s.key", n.c_str(), n.c_str());
  std::printf(
      "\nThe CA key is in the same directory: anyone who can read it can impersonate any party.\n"
      "Use it for tests and single-operator setups only.\n");
  return 0;
}

namespace {

class PartyCommandsImpl final : public PartyCommands {
 public:
  explicit PartyCommandsImpl(CLI::App& app) {
    certs_ = app.add_subcommand(
        "certs",
        "write a TEST CA and one certificate per party for `party` (the CA key is written "
        "next to them: tests and single-operator setups only)");
    certs_->add_option("--out,-o", certs_dir_, "directory to write (created if missing)")
        ->required();
    certs_->add_option("--parties", certs_names_, "party names, comma-separated (a-z, 0-9, -)")
        ->required()
        ->delimiter(',');

    party_ = app.add_subcommand(
        "party",
        "run one party of a mesh (TLS 1.3, mutual authentication); --probe measures links");
    party_->add_option("--config,-c", party_opts_.config, "mesh configuration (JSON)")->required();
    party_->add_option("--id", party_opts_.id, "this party's id in the configuration")->required();
    party_->add_flag("--insecure-transport", party_opts_.insecure_transport,
                     "allow \"transport\": \"tcp\" (no encryption, no authentication; "
                     "loopback benchmarks only)");
    party_
        ->add_option("--timeout-ms", party_opts_.timeout_ms,
                     "deadline for the mesh, and receive timeout")
        ->capture_default_str();
    party_->add_flag("--probe", party_opts_.probe,
                     "party 0 measures RTT and throughput to every peer and prints JSON lines");
  }

  bool selected() const override { return certs_->parsed() || party_->parsed(); }

  int run() override {
    if (certs_->parsed()) return run_certs(certs_dir_, certs_names_);
    return run_party(party_opts_);
  }

 private:
  CLI::App* certs_ = nullptr;
  CLI::App* party_ = nullptr;
  std::string certs_dir_;
  std::vector<std::string> certs_names_;
  PartyOptions party_opts_;
};

}  // namespace

std::unique_ptr<PartyCommands> add_party_commands(CLI::App& app) {
  return std::make_unique<PartyCommandsImpl>(app);
}

}  // namespace blindfold::app
