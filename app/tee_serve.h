// `blindfold serve --backend tee` and `blindfold infer --backend tee`: the tee
// backend over TCP. The serving host spawns one enclave process
// (blindfold-enclave) per client connection and relays the connection's bytes
// to it; it never holds a session key (the client and the enclave run the
// attested handshake of tee/channel.h through it). The client verifies the
// SIMULATED platform's evidence (only with --trust-simulated-platform),
// appraises it with a policy, prints the verdict, the claims and the trust
// model, and only then sends its input, sealed.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>

namespace blindfold::app {

struct TeeServeOptions {
  std::string model;
  std::string listen;         // HOST:PORT (port 0: an ephemeral port, printed)
  std::string platform_dir;   // the simulated platform's key and certificate
  unsigned threads = 0;       // the enclave's inference threads (0: all cores)
  std::int64_t sessions = 0;  // 0: forever
};

struct TeeInferOptions {
  std::string server;  // HOST:PORT
  std::string input, out;
  std::string platform_cert;  // DIR/simulated-platform.pem
  bool trust_simulated_platform = false;
  std::string policy;                     // a Policy JSON file (tee/policy.h)
  std::string expect_code, expect_model;  // hex SHA-384 measurements
  std::int64_t timeout_ms = 600'000;
};

/// Serves options.sessions connections (0: forever), each with its own enclave
/// process, concurrently. Prints the expected measurements and "serve:
/// listening on HOST:PORT" first, then a line per session.
int run_tee_serve(const TeeServeOptions& options);

/// Attests the server's enclave, prints the verdict, claims and trust model,
/// then runs the input and prints the labels (and writes --out).
/// @throws Error(kBadInput) without --trust-simulated-platform;
/// Error(kBadMessage) when attestation or the policy refuses.
int run_tee_infer(const TeeInferOptions& options);

class TeeCommands {
 public:
  virtual ~TeeCommands() = default;
  /// `serve` or `infer` was given with --backend tee.
  virtual bool selected() const = 0;
  virtual int run() = 0;
};

/// Adds the tee options to the `serve` and `infer` subcommands, which
/// add_he_commands (app/he_serve.h) must have added first.
std::unique_ptr<TeeCommands> add_tee_commands(CLI::App& app);

}  // namespace blindfold::app
