#include "app/party.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "app/validators.h"
#include "backends/mpc/mpc_backend.h"
#include "backends/mpc/roles.h"
#include "core/error.h"
#include "core/npy.h"
#include "model/onnx_import.h"
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


// ---- --backend mpc2|mpc3 ---------------------------------------------------

namespace roles = backends::mpcroles;

// How long the server and the helper wait for the other parties of a
// session: a server waits for its next client as long as it takes.
constexpr auto kSessionWait = std::chrono::hours(24);

const char* role_name(int id) { return id == 0 ? "server" : id == 1 ? "client" : "helper"; }

// An error as one line: category and message, newlines folded.
std::string one_line(ErrorCategory c, const std::string& what) {
  std::string s = std::string(category_name(c)) + ": " + what;
  for (char& ch : s) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return s;
}

net::Mesh connect_session(const net::MeshConfig& config, const PartyOptions& o,
                          std::chrono::milliseconds wait) {
  net::MeshOptions mo;
  mo.timeout = std::max(wait, std::chrono::milliseconds(o.timeout_ms));
  mo.insecure_transport = o.insecure_transport;
  net::Mesh mesh = net::connect_mesh(config, o.id, mo);
  for (auto& c : mesh.peers) {
    if (c) c->set_timeout(std::chrono::milliseconds(o.timeout_ms));
  }
  return mesh;
}

// The input split into queries of `batch` samples (0: one query).
std::vector<Tensor> split_batches(const Tensor& x, std::int64_t batch) {
  if (x.rank() < 1 || x.dim(0) < 1) {
    throw Error(ErrorCategory::kBadInput, "--input needs a batch dimension and at least one sample");
  }
  if (x.dtype() != DType::kFloat32) throw Error(ErrorCategory::kBadInput, "--input must be float32");
  const std::int64_t n = x.dim(0);
  const std::int64_t b = batch == 0 ? n : batch;
  if (b < 1 || static_cast<std::uint64_t>(b) > roles::kMaxBatch) {
    throw Error(ErrorCategory::kBadInput,
                (batch == 0 ? std::string("the input has ") + std::to_string(n) + " samples: give --batch"
                            : "--batch " + std::to_string(batch)) +
                    "; a query holds 1 to " + std::to_string(roles::kMaxBatch) + " samples");
  }
  const std::int64_t per = x.numel() / n;
  std::vector<Tensor> out;
  for (std::int64_t at = 0; at < n; at += b) {
    const std::int64_t k = std::min(b, n - at);
    Shape shape = x.shape();
    shape[0] = k;
    const auto src = x.f32().subspan(static_cast<std::size_t>(at * per), static_cast<std::size_t>(k * per));
    out.push_back(Tensor::from_floats(shape, std::vector<float>(src.begin(), src.end())));
  }
  return out;
}

// Predicted labels: argmax over the last axis (one output: >= 0.5 after a
// sigmoid, >= 0 otherwise).
std::vector<std::int64_t> labels_of(const Tensor& y, backends::mpcplan::Finish finish) {
  const std::int64_t k = y.rank() > 1 ? y.shape().back() : 1;
  std::vector<std::int64_t> labels;
  const auto d = y.f32();
  for (std::int64_t r = 0; r < y.numel() / k; ++r) {
    const float* row = d.data() + r * k;
    if (k == 1) {
      const float t = finish == backends::mpcplan::Finish::kSigmoid ? 0.5f : 0.0f;
      labels.push_back(row[0] >= t ? 1 : 0);
    } else {
      labels.push_back(std::max_element(row, row + k) - row);
    }
  }
  return labels;
}

double round3(double x) { return std::round(x * 1000) / 1000; }

int run_mpc_client(const PartyOptions& o, const net::MeshConfig& config, roles::Kind kind) {
  if (o.input.empty()) throw Error(ErrorCategory::kBadInput, "the client (--id 1) needs --input X.npy");
  const std::vector<Tensor> batches = split_batches(read_npy(o.input), o.batch);
  net::Mesh mesh = connect_session(config, o, std::chrono::milliseconds(o.timeout_ms));
  const roles::ClientResult r = roles::client_session(mesh, kind, batches);
  mesh = {};

  // All outputs, concatenated along the batch axis.
  Shape shape = r.outputs.at(0).shape();
  std::vector<float> all;
  std::int64_t rows = 0;
  for (const Tensor& t : r.outputs) {
    rows += t.dim(0);
    all.insert(all.end(), t.f32().begin(), t.f32().end());
  }
  shape[0] = rows;
  const Tensor y = Tensor::from_floats(shape, std::move(all));
  if (!o.out.empty()) write_npy(o.out, y);

  nlohmann::json j;
  j["backend"] = roles::kind_name(kind);
  j["output"] = roles::output_name(r.output);
  j["samples"] = rows;
  j["labels"] = labels_of(y, r.plan.finish);
  nlohmann::json qs = nlohmann::json::array();
  double online_ms = 0, offline_ms = 0;
  std::int64_t online_bytes = 0, offline_bytes = 0, rounds = 0;
  for (const auto& q : r.queries) {
    qs.push_back({{"batch", q.batch},
                  {"offline_ms", round3(q.offline_ms)},
                  {"offline_bytes", q.offline_bytes},
                  {"online_ms", round3(q.online_ms)},
                  {"online_bytes", q.online_bytes},
                  {"rounds", q.rounds}});
    online_ms += q.online_ms;
    offline_ms += q.offline_ms;
    online_bytes += q.online_bytes;
    offline_bytes += q.offline_bytes;
    rounds = std::max(rounds, q.rounds);
  }
  j["queries"] = qs;
  j["total"] = {{"offline_ms", round3(offline_ms)},
                {"offline_bytes", offline_bytes},
                {"online_ms", round3(online_ms)},
                {"online_bytes", online_bytes},
                {"max_rounds", rounds}};
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
  return 0;
}

// Server (id 0) and helper (id 2): one session after another.
int run_mpc_service(const PartyOptions& o, const net::MeshConfig& config, roles::Kind kind) {
  const char* role = role_name(o.id);
  std::optional<roles::ServerModel> model;
  if (o.id == 0) {
    if (o.model.empty()) throw Error(ErrorCategory::kBadInput, "the server (--id 0) needs --model FILE");
    const model::Graph g = model::import_onnx_file(o.model);
    model = roles::prepare_server(g, kind, o.frac_bits, roles::parse_output(o.output), o.input_bound);
    char bound[96] = "no input bound (64-bit comparisons)";
    if (model->plan.input_bound > 0) {
      std::snprintf(bound, sizeof bound, "comparisons sized for |input| <= %g", model->plan.input_bound);
    }
    std::printf("server: %s with %s, output %s, %d fractional bits, %zu weight tensors, %s; %s\n",
                o.model.c_str(), roles::kind_name(kind), o.output.c_str(), model->plan.frac_bits,
                model->plan.weights.size(), bound,
                backends::mpc_trust_model(kind == roles::Kind::kMpc2 ? 2 : 3).summary.c_str());
    std::fflush(stdout);
  }
  std::int64_t failed = 0;
  for (std::int64_t s = 1; o.sessions == 0 || s <= o.sessions; ++s) {
    const auto t0 = Clock::now();
    try {
      net::Mesh mesh = connect_session(config, o, kSessionWait);
      std::printf("%s: session %lld: connected\n", role, static_cast<long long>(s));
      std::fflush(stdout);
      const roles::SessionSummary sum =
          o.id == 0 ? roles::serve_session(mesh, *model) : roles::helper_session(mesh, kind);
      std::printf("%s: session %lld: done, %lld queries, %lld samples, %.1f ms\n", role,
                  static_cast<long long>(s), static_cast<long long>(sum.queries),
                  static_cast<long long>(sum.samples),
                  std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      std::fflush(stdout);
      continue;
    } catch (const Error& e) {
      std::fprintf(stderr, "blindfold: %s: session %lld failed: %s\n", role, static_cast<long long>(s),
                   one_line(e.category(), e.what()).c_str());
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "blindfold: %s: session %lld failed: out of memory\n", role,
                   static_cast<long long>(s));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "blindfold: %s: session %lld failed: unexpected error: %s\n", role,
                   static_cast<long long>(s), one_line(ErrorCategory::kInternal, e.what()).c_str());
    }
    std::fflush(stderr);
    ++failed;
    // A session that failed at once (a port that cannot be bound, a peer
    // refusing us) must not turn into a busy loop.
    if (Clock::now() - t0 < std::chrono::seconds(1)) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::printf("%s: %lld sessions, %lld failed\n", role, static_cast<long long>(o.sessions),
              static_cast<long long>(failed));
  return 0;
}

int run_mpc_party(const PartyOptions& o) {
  const roles::Kind kind = roles::parse_kind(o.backend);
  if (o.probe) throw Error(ErrorCategory::kBadInput, "--probe and --backend do not go together");
  if (o.sessions < 0) throw Error(ErrorCategory::kBadInput, "--sessions must be 0 (forever) or more");
  if (o.batch < 0) throw Error(ErrorCategory::kBadInput, "--batch must be 0 (all) or more");
  const net::MeshConfig config = net::load_mesh_config(o.config);
  if (config.parties.size() != 3) {
    throw Error(ErrorCategory::kBadInput, "--backend " + o.backend + " needs a mesh of 3 parties (0 server, 1 client, 2 helper); " +
                                              config.source + " has " + std::to_string(config.parties.size()));
  }
  if (o.id < 0 || o.id > 2) throw Error(ErrorCategory::kBadInput, "--id must be 0 (server), 1 (client) or 2 (helper)");
  const bool server = o.id == 0, client = o.id == 1;
  auto only = [&](bool ok, const char* flag, const char* who) {
    if (!ok) throw Error(ErrorCategory::kBadInput, std::string(flag) + " is an option of the " + who + " only");
  };
  only(server || o.model.empty(), "--model", "server (--id 0)");
  only(server || o.output == "logits", "--output", "server (--id 0)");
  only(server || o.frac_bits == 12, "--frac-bits", "server (--id 0)");
  only(server || o.input_bound == 0, "--input-bound", "server (--id 0)");
  only(client || o.input.empty(), "--input", "client (--id 1)");
  only(client || o.out.empty(), "--out", "client (--id 1)");
  only(client || o.batch == 0, "--batch", "client (--id 1)");
  only(!client || o.sessions == 0, "--sessions", "server and the helper");
  if (client) return run_mpc_client(o, config, kind);
  return run_mpc_service(o, config, kind);
}
}  // namespace

int run_party(const PartyOptions& o) {
  if (o.timeout_ms < 1 || o.timeout_ms > 24LL * 3600 * 1000) {
    throw Error(ErrorCategory::kBadInput, "--timeout-ms must be 1 to 86400000");
  }
  if (!o.backend.empty()) return run_mpc_party(o);
  if (!o.model.empty() || !o.input.empty() || !o.out.empty() || o.batch != 0 || o.sessions != 0 ||
      o.output != "logits" || o.frac_bits != 12 || o.input_bound != 0) {
    throw Error(ErrorCategory::kBadInput,
                "--model, --input, --out, --batch, --output, --frac-bits, --input-bound and --sessions need "
                "--backend mpc2|mpc3");
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
    party_->add_option("--backend", party_opts_.backend,
                       "run secret-shared inference: mpc2 (server, client, dealer) or mpc3; "
                       "ids 0 server, 1 client, 2 helper");
    party_->add_option("--model", party_opts_.model, "server: the ONNX model to serve");
    party_->add_option("--output", party_opts_.output,
                       "server: what the client learns, logits or label")
        ->capture_default_str();
    party_->add_option("--frac-bits", party_opts_.frac_bits,
                       "server: fixed-point fractional bits (sent to the others in the plan)")
        ->capture_default_str();
    party_
        ->add_option("--input-bound", party_opts_.input_bound,
                     "server: |input| bound the comparisons are sized for (default: the model's "
                     "blindfold.input_bound metadata; none = full 64-bit comparisons; sent in the plan, "
                     "the client refuses inputs outside it)")
        ->check(positive_finite());
    party_->add_option("--input", party_opts_.input, "client: input tensor (.npy, [N, ...])");
    party_->add_option("--out", party_opts_.out, "client: write the outputs here (.npy)");
    party_->add_option("--batch", party_opts_.batch,
                       "client: samples per query (0: the whole input in one query)")
        ->capture_default_str();
    party_->add_option("--sessions", party_opts_.sessions,
                       "server, helper: serve this many sessions, then exit (0: forever)")
        ->capture_default_str();
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
