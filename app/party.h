// `blindfold party` and `blindfold certs`: one party of a multi-process mesh
// (net/mesh.h), with a built-in probe of every link (round-trip time and
// throughput) that is useful before any protocol runs over the mesh; and the
// test PKI the mesh's TLS needs (net/certs.h). With --backend mpc2|mpc3 the
// mesh runs secret-shared inference (backends/mpc/roles.h): party 0 serves a
// model, party 1 is the client with the input, party 2 the helper.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace blindfold::app {

struct PartyOptions {
  std::string config;  // mesh JSON (net/mesh.h)
  int id = -1;
  bool insecure_transport = false;
  std::int64_t timeout_ms = 30'000;
  bool probe = false;
  // --backend mpc2|mpc3 (empty: connect, or --probe, as without MPC).
  std::string backend;
  std::string model;      // server: the ONNX model
  std::string output = "logits";  // server: what the client learns (logits | label)
  int frac_bits = 12;     // server: fixed-point fractional bits, sent in the plan
  double input_bound = 0; // server: |input| bound for the comparisons (0: the model's metadata)
  std::string input;      // client: .npy input [N, ...]
  std::string out;        // client: .npy to write the outputs to (optional)
  std::int64_t batch = 0; // client: samples per query (0: all in one)
  std::int64_t sessions = 0;  // server, helper: sessions to serve (0: forever)
};

/// Joins the mesh as options.id. Without probe: prints "party I: connected
/// to N peers". With probe: party 0 measures every peer in turn (50
/// ping-pongs of 8 bytes; 64 MiB in 1 MiB messages timed until the
/// receiver's acknowledgement) and prints one JSON object per peer on
/// stdout; the other parties answer. Returns 0; @throws Error.
///
/// With options.backend (mpc2 | mpc3): party 0 (server) and party 2 (helper)
/// serve options.sessions sessions (0: forever), each over a fresh mesh; a
/// failed session (peer gone, timed out, malformed message) is reported as
/// one line on stderr and the next one is served. Party 1 (client) runs its
/// input in queries of options.batch samples, prints the labels and the
/// per-query metrics as one JSON line, writes options.out if given, and
/// throws Error on failure.
int run_party(const PartyOptions& options);

/// Writes a test PKI (net::make_test_pki) and says what it wrote.
int run_certs(const std::string& out_dir, const std::vector<std::string>& party_names);

/// The options of `certs` and `party`, filled in by CLI11.
class PartyCommands {
 public:
  virtual ~PartyCommands() = default;
  /// Whether the parsed command line selected one of these subcommands.
  virtual bool selected() const = 0;
  /// Runs the selected subcommand; returns the exit code.
  /// @throws Error (converted to an exit code by the caller).
  virtual int run() = 0;
};

/// Adds `certs --out DIR --parties a,b[,c]` and `party --config F --id I
/// [--insecure-transport] [--timeout-ms T] [--probe]` (with the MPC options
/// --backend, --model, --output, --frac-bits, --input-bound, --input, --out,
/// --batch, --sessions) to `app`.
std::unique_ptr<PartyCommands> add_party_commands(CLI::App& app);

}  // namespace blindfold::app
