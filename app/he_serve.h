// `blindfold serve --backend he` and `blindfold infer --backend he`: the he
// backend's server and client as two processes over TLS 1.3 (net/tls.h,
// mutual authentication against one CA; plain TCP only with
// --insecure-transport). The session protocol is backends/he/he_backend.h's
// (serve_session, RemoteSession); this file adds listening, connecting,
// certificates and what each side prints. docs/HE.md has the commands.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>

namespace blindfold::app {

/// Where the TLS files come from: --pki DIR gives DIR/ca.pem, DIR/NAME.pem
/// and DIR/NAME.key (as `blindfold certs` writes them); --ca/--cert/--key
/// override each.
struct HeTransportOptions {
  std::string pki, ca, cert, key;
  std::string name;  // certificate name in --pki; empty: "server" (serve), "client" (infer)
  bool insecure_transport = false;
  std::int64_t timeout_ms = 60'000;  // receive timeout; also the handshake's
};

struct HeServeOptions {
  std::string backend = "he";
  std::string model;
  std::string he_mode = "latency";
  std::string listen;  // HOST:PORT (port 0: an ephemeral port, printed)
  double input_bound = 0;
  unsigned threads = 0;
  std::int64_t sessions = 0;    // 0: forever
  std::int64_t concurrent = 4;  // sessions served at once
  HeTransportOptions transport;
};

struct HeInferOptions {
  std::string backend = "he";
  std::string server;                  // HOST:PORT
  std::string server_name = "server";  // the DNS name the server's certificate must carry
  std::string input, out;
  std::int64_t batch = 0;  // samples per query (0: the spec's max_batch)
  HeTransportOptions transport;
};

/// Serves options.sessions sessions (0: forever), up to options.concurrent at
/// once, each on its own thread. Prints
/// the plan and "serve: listening on HOST:PORT (tls|tcp)" on stdout first,
/// then a line per session; a failed session (the peer gone, timed out, a
/// frame refused by the channel) is one line on stderr and the next session
/// is served; each message the server refuses (and answers with its reason)
/// is one line on stderr too. @throws Error for what prevents serving at all
/// (the model, the certificates, the port).
int run_he_serve(const HeServeOptions& options);

/// Runs the input through a server in queries; prints one JSON line (labels,
/// per-query timings and bytes) and writes options.out if given.
/// @throws Error (kPeerFailure quoting the server's line when it refuses).
int run_he_infer(const HeInferOptions& options);

class HeCommands {
 public:
  virtual ~HeCommands() = default;
  virtual bool selected() const = 0;
  /// @throws Error (converted to an exit code by the caller).
  virtual int run() = 0;
};

/// Adds `serve` and `infer` to `app`.
std::unique_ptr<HeCommands> add_he_commands(CLI::App& app);

}  // namespace blindfold::app
