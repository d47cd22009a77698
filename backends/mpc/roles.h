// The three roles of mpc2 / mpc3 as separate processes: one party's session
// over a net::Mesh (ids 0 = server, 1 = client, 2 = helper). `blindfold
// party --backend mpc2|mpc3` runs these; backends/mpc/mpc_backend.cc drives
// the same Protocol calls in-process.
//
// A session, in messages (tags in quotes; all from the party named first):
//   server -> client, helper  "mpc/plan": JSON {"backend": "mpc2"|"mpc3",
//                              "output": "logits"|"label", "plan": {...}}
//                              (Plan::serialize(): no weights, only sizes)
//   the protocol's set-up (seeds; register_weights in plan order)
//   per query:
//     client -> server, helper "mpc/query": u64 little-endian batch size
//                              (1..kMaxBatch; 0 ends the session)
//     mpc2 only, offline: the helper generates the query's preprocessing
//                              (begin_query / run / end_query on the dealer);
//                              server and client receive_preprocessing()
//     online: every party runs the plan (mpc2: server and client only)
//     server, helper -> client "mpc/stats": two u64, the bytes this party
//                              sent in the offline and in the online phase
//                              (metrics only; sent after the output)
// The output policy (logits or the label alone) is the server's: it comes
// with the plan and the client obeys it.
//
// Every message from a peer is validated; a malformed one throws
// Error(kBadMessage), a peer that goes away or times out Error(kPeerFailure).
// The caller decides what a failed session means (the server and the helper
// of `blindfold party` report it and serve the next one).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/mpc/plan.h"
#include "core/tensor.h"
#include "model/graph.h"
#include "net/memory.h"

namespace blindfold::backends::mpcroles {

/// Largest batch a query header may announce.
inline constexpr std::uint64_t kMaxBatch = 4096;
/// Largest "mpc/plan" message a client or helper accepts.
inline constexpr std::uint64_t kMaxPlanBytes = 16u << 20;

/// "mpc2" (2 parties and a dealer) or "mpc3" (3 computing parties).
enum class Kind { kMpc2, kMpc3 };
const char* kind_name(Kind k);
/// "mpc2" / "mpc3"; throws Error(kBadInput) otherwise.
Kind parse_kind(const std::string& name);
/// "logits" / "label"; throws Error(kBadInput) otherwise.
mpcplan::Output parse_output(const std::string& name);
const char* output_name(mpcplan::Output o);

/// What the server serves, prepared once for all sessions.
struct ServerModel {
  Kind kind = Kind::kMpc2;
  mpcplan::Output output = mpcplan::Output::kLogits;
  mpcplan::Plan plan;
  std::vector<Tensor> weights;  // float, registration order
};

/// Lowers `graph` (throws Error(kUnsupported) naming a node it cannot).
/// `input_bound` > 0: the comparisons are sized for |input| <= input_bound;
/// 0: the model's "blindfold.input_bound" metadata (mpcplan::
/// declared_input_bound), and without it full 64-bit comparisons. The bound
/// travels in the plan and the client enforces it.
ServerModel prepare_server(const model::Graph& graph, Kind kind, int frac_bits,
                           mpcplan::Output output, double input_bound = 0);

/// One query as the client measured it. Bytes are the sum over all parties
/// (the client's own counters plus the server's and helper's "mpc/stats");
/// rounds are the client's (max over its channels, online phase).
struct QueryMetrics {
  std::int64_t batch = 0;
  double offline_ms = 0;  // mpc2: the helper's generation and the transfer
  std::int64_t offline_bytes = 0;
  double online_ms = 0;
  std::int64_t online_bytes = 0;
  std::int64_t rounds = 0;
};

/// How a session went, for the server's and helper's log line.
struct SessionSummary {
  std::int64_t queries = 0;
  std::int64_t samples = 0;
};

struct ClientResult {
  mpcplan::Output output = mpcplan::Output::kLogits;  // the server's policy
  mpcplan::Plan plan;                                 // as the server sent it
  std::vector<Tensor> outputs;                        // one per query
  std::vector<QueryMetrics> queries;
};

/// Party 0: sends the plan, registers the weights, serves queries until the
/// client sends batch 0.
SessionSummary serve_session(net::Mesh& mesh, const ServerModel& model);

/// Party 1: runs one query per tensor of `batches` (each [B, ...input shape],
/// float32, 1 <= B <= kMaxBatch), then ends the session. `kind` must match
/// the server's (Error(kBadMessage) otherwise).
ClientResult client_session(net::Mesh& mesh, Kind kind, const std::vector<Tensor>& batches);

/// Party 2: the dealer (mpc2) or the third computing party (mpc3), following
/// the client's query headers.
SessionSummary helper_session(net::Mesh& mesh, Kind kind);

}  // namespace blindfold::backends::mpcroles
