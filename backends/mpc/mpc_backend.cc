#include "backends/mpc/mpc_backend.h"

#include <chrono>
#include <cmath>
#include <functional>

#include "core/error.h"
#include "mpc/mpc2.h"
#include "mpc/mpc3.h"

namespace blindfold::backends {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Runs fns[i] as party i (net::run_meshes: each on its own thread; a failing
// party's channels are closed and its own error is rethrown).
void run_parties(std::vector<net::Mesh>& meshes, const std::vector<std::function<void()>>& fns) {
  net::run_meshes(meshes, [&](net::Mesh& m) { fns[static_cast<std::size_t>(m.self)](); });
}

std::int64_t sent_bytes(const std::vector<net::Mesh>& meshes) {
  std::int64_t b = 0;
  for (const auto& m : meshes) b += m.sent_bytes();
  return b;
}

void reset_stats(std::vector<net::Mesh>& meshes, std::vector<std::shared_ptr<net::RoundCounter>>& rounds) {
  for (auto& r : rounds) r->reset();
  for (auto& m : meshes) m.reset_stats();
}

}  // namespace

TrustModel mpc_trust_model(int parties) {
  TrustModel t;
  t.adversary = "semi-honest";
  t.security_bits = 128;
  if (parties == 2) {
    t.summary = "2PC, semi-honest; the dealer (helper) must not collude with server or client";
    t.input = "only the client; the server sees values masked by the dealer's randomness";
    t.weights = "only the server; the client sees W - A once, A known to server and dealer";
    t.output = "only the client (logits, or the label alone per the server's policy)";
    t.trusted = "no collusion of the helper with either party; the architecture (shapes) is public";
  } else {
    t.summary = "3PC replicated sharing, semi-honest, honest majority (no two parties collude)";
    t.input = "only the client; each other party holds 2 of 3 shares";
    t.weights = "only the server; each other party holds 2 of 3 shares";
    t.output = "only the client (logits, or the label alone per the server's policy)";
    t.trusted = "no two of server, client and helper collude; the architecture (shapes) is public";
  }
  return t;
}

struct MpcBackend::Parties {
  std::unique_ptr<mpc::Mpc2Party> server2, client2;
  std::unique_ptr<mpc::Mpc2Dealer> dealer2;
  std::vector<std::unique_ptr<mpc::Mpc3Party>> p3;
  std::vector<int> handles[3];
  mpc::Protocol& proto(int i) {
    if (!p3.empty()) return *p3[static_cast<std::size_t>(i)];
    if (i == 0) return *server2;
    if (i == 1) return *client2;
    return *dealer2;
  }
};

MpcBackend::MpcBackend(int parties, MpcSettings settings) : parties_(parties), settings_(settings) {
  if (parties != 2 && parties != 3) throw_error(ErrorCategory::kInternal, "MpcBackend: 2 or 3 parties");
}

MpcBackend::~MpcBackend() {
  // Close channels first so no party object blocks in its destructor.
  for (auto& m : meshes_) {
    for (auto& c : m.peers) {
      if (c) c->close();
    }
  }
  p_.reset();
}

TrustModel MpcBackend::trust_model() const { return mpc_trust_model(parties_); }

Support MpcBackend::supports(const model::Graph& graph) const { return mpcplan::lowerable(graph); }

void MpcBackend::setup(const model::Graph& graph, const BackendOptions& options) {
  const auto t0 = Clock::now();
  if (options.frac_bits != 0) {
    if (options.frac_bits < 4 || options.frac_bits > 24) {
      throw_error(ErrorCategory::kBadInput, "--frac-bits must be between 4 and 24, is " + std::to_string(options.frac_bits));
    }
    settings_.frac_bits = options.frac_bits;
  }
  if (options.output == "label") {
    settings_.output = mpcplan::Output::kLabel;
  } else if (options.output == "logits") {
    settings_.output = mpcplan::Output::kLogits;
  } else if (!options.output.empty()) {
    throw_error(ErrorCategory::kBadInput, "--output must be 'logits' or 'label', is '" + options.output + "'");
  }
  if (!std::isfinite(options.input_bound) || options.input_bound < 0) {
    throw_error(ErrorCategory::kBadInput, "--input-bound must be a positive finite number (0: the model's " +
                                              std::string(mpcplan::kInputBoundKey) + " metadata)");
  }
  const double bound = options.input_bound > 0 ? options.input_bound : mpcplan::declared_input_bound(graph);
  weights_.clear();
  plan_ = mpcplan::lower(graph, settings_.frac_bits, &weights_, bound);
  // The client and the helper get the plan as the server would send it.
  const mpcplan::Plan remote = mpcplan::Plan::parse(plan_.serialize());
  meshes_ = net::memory_meshes(3);
  for (auto& m : meshes_) {
    for (std::size_t j = 0; j < m.peers.size(); ++j) {
      if (m.peers[j]) {
        m.peers[j]->set_peer_name("party " + std::to_string(j) + " (" + mpc::party_name(static_cast<int>(j)) + ")");
      }
    }
  }
  rounds_.clear();
  for (auto& m : meshes_) {
    rounds_.push_back(std::make_shared<net::RoundCounter>());
    m.set_round_counter(rounds_.back());
  }
  p_ = std::make_unique<Parties>();
  Parties& P = *p_;
  const int f = settings_.frac_bits;
  if (parties_ == 2) {
    run_parties(meshes_, {[&] { P.server2 = std::make_unique<mpc::Mpc2Party>(0, meshes_[0].to(1), meshes_[0].to(2), mpc::Mpc2Options{f}); },
                          [&] { P.client2 = std::make_unique<mpc::Mpc2Party>(1, meshes_[1].to(0), meshes_[1].to(2), mpc::Mpc2Options{f}); },
                          [&] { P.dealer2 = std::make_unique<mpc::Mpc2Dealer>(meshes_[2].to(0), meshes_[2].to(1), mpc::Mpc2Options{f}); }});
  } else {
    P.p3.resize(3);
    std::vector<std::function<void()>> fns;
    for (int i = 0; i < 3; ++i) {
      fns.push_back([&, i] {
        P.p3[static_cast<std::size_t>(i)] = std::make_unique<mpc::Mpc3Party>(
            i, meshes_[static_cast<std::size_t>(i)].to((i + 1) % 3), meshes_[static_cast<std::size_t>(i)].to((i + 2) % 3),
            mpc::Mpc3Options{f});
      });
    }
    run_parties(meshes_, fns);
  }
  reset_stats(meshes_, rounds_);
  run_parties(meshes_, {[&] { P.handles[0] = mpcplan::register_weights(P.proto(0), plan_, &weights_); },
                        [&] { P.handles[1] = mpcplan::register_weights(P.proto(1), remote, nullptr); },
                        [&] { P.handles[2] = mpcplan::register_weights(P.proto(2), remote, nullptr); }});
  setup_cost_.ms = ms_since(t0);
  setup_cost_.bytes = sent_bytes(meshes_) +
                      static_cast<std::int64_t>(2 * remote.serialize().size());
}

std::vector<Tensor> MpcBackend::infer(const std::vector<Tensor>& inputs, RunMetrics* metrics) {
  if (!p_) throw_error(ErrorCategory::kInternal, name() + ": infer before setup");
  if (inputs.size() != 1) throw_error(ErrorCategory::kBadInput, name() + ": the model takes one input");
  const Tensor& x = inputs[0];
  if (x.rank() < 1) throw_error(ErrorCategory::kBadInput, name() + ": input needs a batch dimension");
  const std::int64_t batch = x.dim(0);
  // The client's check of its input against the plan's bound, before any
  // party starts (mpcplan::run checks again where it shares the input).
  if (x.dtype() == DType::kFloat32) mpcplan::check_input(plan_, x.f32());
  Parties& P = *p_;
  RunMetrics m;
  if (parties_ == 2) {
    reset_stats(meshes_, rounds_);
    const auto t0 = Clock::now();
    run_parties(meshes_, {[&] { P.server2->receive_preprocessing(); },
                          [&] { P.client2->receive_preprocessing(); },
                          [&] {
                            P.dealer2->begin_query();
                            mpcplan::run(*P.dealer2, plan_, P.handles[2], batch, nullptr, settings_.output);
                            P.dealer2->end_query();
                          }});
    m.offline.ms = ms_since(t0);
    m.offline.bytes = meshes_[2].sent_bytes();
  }
  reset_stats(meshes_, rounds_);
  std::optional<Tensor> out;
  const auto t1 = Clock::now();
  if (parties_ == 2) {
    run_parties(meshes_, {[&] {
                            P.server2->begin_query();
                            mpcplan::run(*P.server2, plan_, P.handles[0], batch, nullptr, settings_.output);
                            P.server2->end_query();
                          },
                          [&] {
                            P.client2->begin_query();
                            out = mpcplan::run(*P.client2, plan_, P.handles[1], batch, &x, settings_.output);
                            P.client2->end_query();
                          },
                          [] {}});
  } else {
    run_parties(meshes_, {[&] { mpcplan::run(*P.p3[0], plan_, P.handles[0], batch, nullptr, settings_.output); },
                          [&] { out = mpcplan::run(*P.p3[1], plan_, P.handles[1], batch, &x, settings_.output); },
                          [&] { mpcplan::run(*P.p3[2], plan_, P.handles[2], batch, nullptr, settings_.output); }});
  }
  m.online.ms = ms_since(t1);
  m.online.bytes = sent_bytes(meshes_);
  // Rounds on the critical path: the most any party waited and answered.
  std::int64_t rounds = 0;
  for (const auto& r : rounds_) rounds = std::max(rounds, r->rounds.load());
  m.rounds = rounds;
  if (!out) throw_error(ErrorCategory::kInternal, name() + ": the client got no output");
  if (metrics) *metrics = m;
  return {std::move(*out)};
}

}  // namespace blindfold::backends
