#include "backends/mpc/roles.h"

#include <chrono>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "mpc/mpc2.h"
#include "mpc/mpc3.h"

namespace blindfold::backends::mpcroles {

namespace {

using Clock = std::chrono::steady_clock;
using mpcplan::Output;
using mpcplan::Plan;

constexpr char kTagPlan[] = "mpc/plan";
constexpr char kTagQuery[] = "mpc/query";
constexpr char kTagStats[] = "mpc/stats";
constexpr char kTagEnd[] = "mpc/end";

constexpr int kServer = 0, kClient = 1, kHelper = 2;

[[noreturn]] void bad_message(const std::string& what) { throw_error(ErrorCategory::kBadMessage, what); }

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

net::Bytes u64s_bytes(std::initializer_list<std::uint64_t> vs) {
  net::Bytes b;
  b.reserve(vs.size() * 8);
  for (std::uint64_t v : vs) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  return b;
}

std::uint64_t u64_at(const net::Bytes& b, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(b[at + static_cast<std::size_t>(i)]) << (8 * i);
  return v;
}

void check_mesh(const net::Mesh& mesh, int self, const char* role) {
  if (mesh.size() != 3 || mesh.self != self) {
    throw_error(ErrorCategory::kBadInput, std::string(role) + " needs a mesh of 3 parties as party " +
                                              std::to_string(self) + " (got party " + std::to_string(mesh.self) +
                                              " of " + std::to_string(mesh.size()) + ")");
  }
}

// The plan message: {"backend", "output", "plan"}; exactly these keys.
std::string plan_message(const ServerModel& m) {
  nlohmann::json j;
  j["backend"] = kind_name(m.kind);
  j["output"] = output_name(m.output);
  j["plan"] = nlohmann::json::parse(m.plan.serialize());
  return j.dump();
}

struct Received {
  Plan plan;
  Output output = Output::kLogits;
};

Received parse_plan_message(const net::Bytes& bytes, Kind kind) {
  const nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) bad_message("the server's plan message is not a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (key != "backend" && key != "output" && key != "plan") bad_message("the server's plan message has an unknown key '" + key + "'");
  }
  if (!j.contains("backend") || !j["backend"].is_string() || !j.contains("output") || !j["output"].is_string() ||
      !j.contains("plan") || !j["plan"].is_object()) {
    bad_message("the server's plan message needs \"backend\", \"output\" (strings) and \"plan\" (an object)");
  }
  const std::string backend = j["backend"].get<std::string>();
  if (backend != kind_name(kind)) {
    bad_message("the server runs backend '" + backend.substr(0, 16) + "', this party was started with '" +
                kind_name(kind) + "'");
  }
  const std::string output = j["output"].get<std::string>();
  Received r;
  if (output == "logits") {
    r.output = Output::kLogits;
  } else if (output == "label") {
    r.output = Output::kLabel;
  } else {
    bad_message("the server's plan message has an unknown output policy '" + output.substr(0, 16) + "'");
  }
  r.plan = Plan::parse(j["plan"].dump());  // validates every field (kBadMessage)
  if (r.output == Output::kLabel && r.plan.output_shape.empty()) {
    bad_message("the server asks for labels of a model with a scalar output");
  }
  return r;
}

Received receive_plan(net::Channel& from_server, Kind kind) {
  const std::uint64_t max = from_server.max_message_bytes();
  from_server.set_max_message_bytes(std::min(max, kMaxPlanBytes));
  const net::Bytes b = from_server.recv(kTagPlan);
  from_server.set_max_message_bytes(max);
  return parse_plan_message(b, kind);
}

// The client's query header: the batch size, 0 at the end of the session.
std::uint64_t receive_query(net::Channel& from_client) {
  const net::Bytes b = from_client.recv(kTagQuery);
  if (b.size() != 8) {
    bad_message("the client's query header has " + std::to_string(b.size()) + " bytes, expected 8");
  }
  const std::uint64_t batch = u64_at(b, 0);
  if (batch > kMaxBatch) {
    bad_message("the client asks for a batch of " + std::to_string(batch) + ", at most " +
                std::to_string(kMaxBatch) + " are served");
  }
  return batch;
}

// Sends "mpc/stats" (offline and online bytes this party sent) to the client.
void send_stats(net::Mesh& mesh, std::int64_t offline, std::int64_t online) {
  mesh.to(kClient).send(kTagStats, u64s_bytes({static_cast<std::uint64_t>(offline), static_cast<std::uint64_t>(online)}));
  mesh.to(kClient).flush();
}

// Reads a peer's "mpc/stats" into (offline, online) bytes.
std::pair<std::int64_t, std::int64_t> receive_stats(net::Channel& from, const char* who) {
  const net::Bytes b = from.recv(kTagStats);
  if (b.size() != 16) bad_message(std::string("the ") + who + "'s stats message has " + std::to_string(b.size()) + " bytes, expected 16");
  const std::uint64_t off = u64_at(b, 0), on = u64_at(b, 8);
  constexpr std::uint64_t kMax = std::uint64_t{1} << 62;
  if (off > kMax || on > kMax) bad_message(std::string("the ") + who + "'s stats message is out of range");
  return {static_cast<std::int64_t>(off), static_cast<std::int64_t>(on)};
}

void send_end(net::Mesh& mesh) {
  mesh.to(kClient).send(kTagEnd, std::string_view());
  mesh.to(kClient).flush();
}

void receive_end(net::Channel& from, const char* who) {
  const net::Bytes b = from.recv(kTagEnd);
  if (!b.empty()) bad_message(std::string("the ") + who + "'s end message is not empty");
}

}  // namespace

const char* kind_name(Kind k) { return k == Kind::kMpc2 ? "mpc2" : "mpc3"; }

Kind parse_kind(const std::string& name) {
  if (name == "mpc2") return Kind::kMpc2;
  if (name == "mpc3") return Kind::kMpc3;
  throw_error(ErrorCategory::kBadInput, "unknown MPC backend '" + name + "' (mpc2 or mpc3)");
}

Output parse_output(const std::string& name) {
  if (name == "logits") return Output::kLogits;
  if (name == "label") return Output::kLabel;
  throw_error(ErrorCategory::kBadInput, "unknown output policy '" + name + "' (logits or label)");
}

const char* output_name(Output o) { return o == Output::kLogits ? "logits" : "label"; }

ServerModel prepare_server(const model::Graph& graph, Kind kind, int frac_bits, Output output,
                           double input_bound) {
  if (frac_bits < 1 || frac_bits > 30) throw_error(ErrorCategory::kBadInput, "--frac-bits must be 1 to 30");
  if (!std::isfinite(input_bound) || input_bound < 0) {
    throw_error(ErrorCategory::kBadInput, "--input-bound must be a positive finite number (0: the model's " +
                                              std::string(mpcplan::kInputBoundKey) + " metadata)");
  }
  ServerModel m;
  m.kind = kind;
  m.output = output;
  const double bound = input_bound > 0 ? input_bound : mpcplan::declared_input_bound(graph);
  m.plan = mpcplan::lower(graph, frac_bits, &m.weights, bound);
  if (output == Output::kLabel && m.plan.output_shape.empty()) {
    throw_error(ErrorCategory::kBadInput, "--output label needs a model whose output has a class dimension");
  }
  return m;
}

SessionSummary serve_session(net::Mesh& mesh, const ServerModel& m) {
  check_mesh(mesh, kServer, "the server");
  const std::string msg = plan_message(m);
  mesh.to(kClient).send(kTagPlan, msg);
  mesh.to(kHelper).send(kTagPlan, msg);
  mesh.flush();
  const int f = m.plan.frac_bits;
  std::unique_ptr<mpc::Mpc2Party> p2;
  std::unique_ptr<mpc::Mpc3Party> p3;
  mpc::Protocol* p = nullptr;
  if (m.kind == Kind::kMpc2) {
    p2 = std::make_unique<mpc::Mpc2Party>(kServer, mesh.to(kClient), mesh.to(kHelper), mpc::Mpc2Options{f});
    p = p2.get();
  } else {
    p3 = std::make_unique<mpc::Mpc3Party>(kServer, mesh.to(kClient), mesh.to(kHelper), mpc::Mpc3Options{f});
    p = p3.get();
  }
  const std::vector<int> handles = mpcplan::register_weights(*p, m.plan, &m.weights);
  mesh.flush();
  SessionSummary s;
  for (;;) {
    const std::uint64_t batch = receive_query(mesh.to(kClient));
    if (batch == 0) break;
    mesh.reset_stats();
    if (p2) p2->receive_preprocessing();
    const std::int64_t offline = mesh.sent_bytes();
    mesh.reset_stats();
    if (p2) p2->begin_query();
    mpcplan::run(*p, m.plan, handles, static_cast<std::int64_t>(batch), nullptr, m.output);
    if (p2) p2->end_query();
    mesh.flush();
    send_stats(mesh, offline, mesh.sent_bytes());
    s.queries += 1;
    s.samples += static_cast<std::int64_t>(batch);
  }
  send_end(mesh);
  return s;
}

SessionSummary helper_session(net::Mesh& mesh, Kind kind) {
  check_mesh(mesh, kHelper, "the helper");
  const Received r = receive_plan(mesh.to(kServer), kind);
  const int f = r.plan.frac_bits;
  std::unique_ptr<mpc::Mpc2Dealer> d2;
  std::unique_ptr<mpc::Mpc3Party> p3;
  mpc::Protocol* p = nullptr;
  if (kind == Kind::kMpc2) {
    d2 = std::make_unique<mpc::Mpc2Dealer>(mesh.to(kServer), mesh.to(kClient), mpc::Mpc2Options{f});
    p = d2.get();
  } else {
    p3 = std::make_unique<mpc::Mpc3Party>(kHelper, mesh.to(kServer), mesh.to(kClient), mpc::Mpc3Options{f});
    p = p3.get();
  }
  const std::vector<int> handles = mpcplan::register_weights(*p, r.plan, nullptr);
  mesh.flush();
  SessionSummary s;
  for (;;) {
    const std::uint64_t batch = receive_query(mesh.to(kClient));
    if (batch == 0) break;
    mesh.reset_stats();
    if (d2) {
      d2->begin_query();
      mpcplan::run(*d2, r.plan, handles, static_cast<std::int64_t>(batch), nullptr, r.output);
      d2->end_query();
      mesh.flush();
      send_stats(mesh, mesh.sent_bytes(), 0);
    } else {
      mpcplan::run(*p3, r.plan, handles, static_cast<std::int64_t>(batch), nullptr, r.output);
      mesh.flush();
      send_stats(mesh, 0, mesh.sent_bytes());
    }
    s.queries += 1;
    s.samples += static_cast<std::int64_t>(batch);
  }
  send_end(mesh);
  return s;
}

ClientResult client_session(net::Mesh& mesh, Kind kind, const std::vector<Tensor>& batches) {
  check_mesh(mesh, kClient, "the client");
  const Received r = receive_plan(mesh.to(kServer), kind);
  // Check every batch against the plan before any query runs.
  for (const Tensor& x : batches) {
    Shape want{x.rank() > 0 ? x.dim(0) : 0};
    want.insert(want.end(), r.plan.input_shape.begin(), r.plan.input_shape.end());
    if (x.rank() < 1 || x.shape() != want || x.dim(0) < 1 || static_cast<std::uint64_t>(x.dim(0)) > kMaxBatch) {
      std::string expected = "[B";
      for (std::int64_t d : r.plan.input_shape) expected += ", " + std::to_string(d);
      throw_error(ErrorCategory::kBadInput, "input batch of shape " + shape_to_string(x.shape()) +
                                                " does not fit the model: " + expected + "] with 1 <= B <= " +
                                                std::to_string(kMaxBatch) + " expected");
    }
    if (x.dtype() != DType::kFloat32) throw_error(ErrorCategory::kBadInput, "the input must be float32");
    mpcplan::check_input(r.plan, x.f32());  // the server's bound (mpcplan::run checks again)
  }
  const int f = r.plan.frac_bits;
  std::unique_ptr<mpc::Mpc2Party> p2;
  std::unique_ptr<mpc::Mpc3Party> p3;
  mpc::Protocol* p = nullptr;
  if (kind == Kind::kMpc2) {
    p2 = std::make_unique<mpc::Mpc2Party>(kClient, mesh.to(kServer), mesh.to(kHelper), mpc::Mpc2Options{f});
    p = p2.get();
  } else {
    // Party 1's next is the helper (2), its previous the server (0).
    p3 = std::make_unique<mpc::Mpc3Party>(kClient, mesh.to(kHelper), mesh.to(kServer), mpc::Mpc3Options{f});
    p = p3.get();
  }
  const std::vector<int> handles = mpcplan::register_weights(*p, r.plan, nullptr);
  mesh.flush();
  // Rounds over all of the client's channels (in mpc3's ring it sends on one
  // channel and receives on the other; per-channel counts would say 1).
  auto rounds = std::make_shared<net::RoundCounter>();
  mesh.set_round_counter(rounds);
  ClientResult res;
  res.output = r.output;
  res.plan = r.plan;
  for (const Tensor& x : batches) {
    const std::int64_t batch = x.dim(0);
    const net::Bytes header = u64s_bytes({static_cast<std::uint64_t>(batch)});
    mesh.to(kServer).send(kTagQuery, header);
    mesh.to(kHelper).send(kTagQuery, header);
    mesh.flush();
    QueryMetrics q;
    q.batch = batch;
    mesh.reset_stats();
    if (p2) {
      const auto t0 = Clock::now();
      p2->receive_preprocessing();
      q.offline_ms = ms_since(t0);
      q.offline_bytes = mesh.sent_bytes();
      mesh.reset_stats();
    }
    rounds->reset();
    const auto t1 = Clock::now();
    if (p2) p2->begin_query();
    std::optional<Tensor> out = mpcplan::run(*p, r.plan, handles, batch, &x, r.output);
    if (p2) p2->end_query();
    q.online_ms = ms_since(t1);
    q.online_bytes = mesh.sent_bytes();
    q.rounds = rounds->rounds.load();
    mesh.flush();
    if (!out) throw_error(ErrorCategory::kInternal, "the client got no output");
    const auto [s_off, s_on] = receive_stats(mesh.to(kServer), "server");
    const auto [h_off, h_on] = receive_stats(mesh.to(kHelper), "helper");
    q.offline_bytes += s_off + h_off;
    q.online_bytes += s_on + h_on;
    res.outputs.push_back(std::move(*out));
    res.queries.push_back(q);
  }
  const net::Bytes end = u64s_bytes({0});
  mesh.to(kServer).send(kTagQuery, end);
  mesh.to(kHelper).send(kTagQuery, end);
  mesh.flush();
  receive_end(mesh.to(kServer), "server");
  receive_end(mesh.to(kHelper), "helper");
  return res;
}

}  // namespace blindfold::backends::mpcroles
