// Backend "he": non-interactive encrypted inference with CKKS. The client
// encrypts, the server evaluates the model's program (backends/he/program.h)
// on ciphertexts with the client's evaluation keys, the client decrypts: one
// message up and one down per query, the secret key never leaves the client.
//
// HeBackend runs both roles in one process (tests, `run`, `eval`, `bench`),
// every byte going through the real serialized messages (the spec, the keys
// message, queries and responses) exactly as `blindfold serve` / `infer` send
// them over a channel. The session protocol over a net::Channel is here too
// (serve_session, RemoteSession), so the CLI only adds listening and TLS.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/he/program.h"
#include "net/channel.h"

namespace blindfold::backends {

/// The trust model of "he" (also printed by `blindfold serve`).
TrustModel he_trust_model();

class HeBackend final : public Backend {
 public:
  HeBackend();
  ~HeBackend() override;

  std::string name() const override { return "he"; }
  TrustModel trust_model() const override { return he_trust_model(); }
  /// Program::supports in the default mode (latency).
  Support supports(const model::Graph& graph) const override;
  /// Program::supports in options.he_mode.
  Support supports_with(const model::Graph& graph, const BackendOptions& options) const override;
  /// Builds the program (mode options.he_mode, threads, input bound), then
  /// the client from the serialized spec, its keys message and the server's
  /// session from that message. setup_cost: the time of all of it; bytes: the
  /// spec plus the keys message. @throws Error(kUnsupported) naming the node,
  /// Error(kBadInput) for an unknown mode.
  void setup(const model::Graph& graph, const BackendOptions& options) override;
  PhaseCost setup_cost() const override { return setup_cost_; }
  /// Splits the batch into queries of at most spec().max_batch samples; per
  /// query: encrypt -> answer -> decrypt. Metrics: online = all queries (ms,
  /// query + response bytes), rounds = the number of queries (1 when the
  /// batch fits in one), detail = encrypt_ms, evaluate_ms, decrypt_ms,
  /// key_bytes, query_bytes, response_bytes, queries, max_batch (samples a
  /// query holds: a batch-mode query costs the same for 1 or max_batch).
  std::vector<Tensor> infer(const std::vector<Tensor>& inputs, RunMetrics* metrics) override;

  /// After setup.
  const heplan::Program& program() const;
  const heplan::ClientSpec& spec() const;
  std::int64_t key_bytes() const { return key_bytes_; }

 private:
  std::unique_ptr<ThreadPool> own_pool_;
  std::unique_ptr<heplan::Program> program_;
  std::unique_ptr<heplan::Client> client_;
  std::unique_ptr<heplan::ServerSession> session_;
  std::int64_t key_bytes_ = 0;
  PhaseCost setup_cost_;
};

/// The input [N, ...] split into queries of at most `max_batch` samples.
/// @throws Error(kBadInput) for a non-float32 input or one without samples.
std::vector<Tensor> split_queries(const Tensor& x, std::int64_t max_batch);
/// Tensors [n_i, ...] concatenated along axis 0.
Tensor concat_rows(const std::vector<Tensor>& parts);

// ---- The session protocol over a net::Channel (`blindfold serve`/`infer`) --
//
//  server -> client  "he/spec"   ClientSpec::serialize()
//  client -> server  "he/msg"    the keys message ("BFHK...", program.h), once
//  server -> client  "he/reply"  reply (below), empty body
//  client -> server  "he/msg"    a query ("BFHQ...")             } any number
//  server -> client  "he/reply"  reply, body = the response      } of times
//  client -> server  "he/msg"    "BFHB": end of the session
//
// A reply is u8 status | u64 LE server microseconds | body; status 0: ok,
// body as above; status 1: refused, body = one line of UTF-8 saying why
// ("bad message: ..."). Every client message has the same tag so that a
// message out of order (a query before keys) is refused with a reply and the
// session goes on instead of breaking the channel on a tag mismatch. The
// server answers a refused keys message or query and keeps the session: the
// client may send keys again or the next query. A broken channel (the peer
// gone, a frame over the size cap, the receive timeout) ends the session.

inline constexpr char kHeEndOfSession[4] = {'B', 'F', 'H', 'B'};

struct ServedSession {
  std::int64_t queries = 0;  // answered
  std::int64_t samples = 0;
  std::int64_t refused = 0;  // messages answered with an error
};

/// Serves one session on `ch`. `on_refused` gets the line sent to the client
/// for each refused message (the server prints it); `pool` (not owned, may
/// be nullptr) loads queries and saves responses in parallel. Returns when
/// the client ends the session. @throws Error when the channel breaks
/// (kPeerFailure, kBadMessage for a frame the channel refuses).
ServedSession serve_session(net::Channel& ch, const heplan::Program& program,
                            const std::function<void(const std::string&)>& on_refused = {},
                            ThreadPool* pool = nullptr);

/// The client's side of a session: receives the spec, generates keys and
/// sends them, then runs queries.
class RemoteSession {
 public:
  struct Query {
    std::int64_t samples = 0;
    double encrypt_ms = 0, round_trip_ms = 0, server_ms = 0, decrypt_ms = 0;
    std::int64_t query_bytes = 0, response_bytes = 0;
  };
  /// Receives and validates the spec, makes the keys and sends them.
  /// `pool` (not owned, may be nullptr) encrypts and decrypts in parallel.
  /// @throws Error(kBadMessage) for a malformed spec, Error(kPeerFailure)
  /// when the server refuses the keys (its line quoted) or goes away.
  explicit RemoteSession(net::Channel& ch, ThreadPool* pool = nullptr);
  ~RemoteSession();
  const heplan::ClientSpec& spec() const;
  double setup_ms() const { return setup_ms_; }  // spec received -> keys accepted
  std::int64_t spec_bytes() const { return spec_bytes_; }
  std::int64_t key_bytes() const { return key_bytes_; }
  /// One query of at most spec().max_batch samples; fills `q`.
  /// @throws Error(kPeerFailure) quoting the server's line when it refuses.
  Tensor run(const Tensor& batch, Query* q);
  /// Sends the end-of-session message.
  void finish();

 private:
  net::Channel& ch_;
  std::unique_ptr<heplan::Client> client_;
  double setup_ms_ = 0;
  std::int64_t spec_bytes_ = 0, key_bytes_ = 0;
};

}  // namespace blindfold::backends
