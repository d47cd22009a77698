// The party mesh: N processes, one per party, each with a channel to every
// other, established from one JSON configuration file over TLS 1.3 (mutual
// authentication against the configuration's CA) or, for loopback
// benchmarks only and when asked explicitly, plain TCP.
//
// Establishment: every party except the last listens on its port. For each
// pair i < j, party j connects to party i (retrying until the deadline, so
// the parties may start in any order), the TLS handshake runs (j checks that
// i's certificate names parties[i].name), and j sends a hello naming its id.
// Party i accepts the hello only if j's certificate names parties[j].name, so
// a party cannot claim another's id, and answers with its own hello (which
// also tells j, under TLS 1.3, that its certificate was accepted).
//
// Configuration (relative paths resolve against the file's directory):
//   {"ca": "ca.pem", "transport": "tls",
//    "parties": [{"id": 0, "name": "client", "host": "127.0.0.1", "port": 7100,
//                 "cert": "client.pem", "key": "client.key"}, ...]}
// "transport" is "tls" (default) or "tcp". Optional per party: "bind" and
// "bind_port", the address and port to listen on when they differ from
// "host" and "port" (behind NAT, or behind the test bed's latency proxy:
// docs/NETWORK.md). Unknown keys are errors, so a typo is not silently
// ignored.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "net/channel.h"
#include "net/memory.h"  // Mesh
#include "net/tcp.h"

namespace blindfold::net {

enum class Transport { kTls, kTcp };

struct PartyConfig {
  int id = 0;
  std::string name;             // [a-z0-9-]{1,63}: also the DNS name in its certificate
  std::string host;             // where the other parties connect to it
  std::uint16_t port = 0;       // 1..65535
  std::string bind;             // listen address; empty: host
  std::uint16_t bind_port = 0;  // listen port; 0: port
  std::string cert, key;        // absolute paths (TLS); only the own party's must exist
};

struct MeshConfig {
  Transport transport = Transport::kTls;
  std::string ca;                    // absolute path (TLS)
  std::vector<PartyConfig> parties;  // sorted: parties[i].id == i
  std::string source;                // where it was loaded from, for messages
};

/// Parses and validates a configuration: ids exactly 0..n-1 (2 <= n <= 64),
/// unique valid names, ports 1..65535, unique host:port pairs, "cert"/"key"
/// for every party and an existing "ca" file under TLS. Relative paths are
/// resolved against `base_dir`. @throws Error(kBadInput) naming the field.
MeshConfig parse_mesh_config(std::string_view json, const std::filesystem::path& base_dir,
                             const std::string& source = "mesh config");

/// Reads `file` and parses it with its directory as base.
/// @throws Error(kBadInput) when missing, unreadable or invalid.
MeshConfig load_mesh_config(const std::filesystem::path& file);

struct MeshOptions {
  /// Deadline for establishing the whole mesh, and the receive timeout of
  /// the resulting channels.
  std::chrono::milliseconds timeout = kDefaultTimeout;
  /// Allow "transport": "tcp" (no encryption, no authentication).
  bool insecure_transport = false;
  /// Receives warnings (plain TCP to a non-loopback host); default: one line
  /// on stderr.
  std::function<void(const std::string&)> warn;
  /// A listener already bound to this party's port, used instead of binding
  /// one (tests bind port 0 first; socket activation). Not owned.
  TcpListener* listener = nullptr;
};

/// Connects party `my_id` to every other party of `config`. The returned
/// mesh's channels are named "party J (NAME)" and use options.timeout.
///
/// Incoming connections that fail the handshake or the hello (wrong CA,
/// wrong name, an id already taken, garbage) are closed and counted; the
/// mesh keeps waiting for the real parties until the deadline, and the
/// timeout error then lists the rejections.
///
/// @throws Error(kInsecureParameters) for plain TCP without
/// insecure_transport; Error(kBadInput) for a bad id or unusable own
/// certificate/key; Error(kPeerFailure) when a party is unreachable, refuses
/// us, or does not connect before the deadline; Error(kIo) when the port
/// cannot be bound.
Mesh connect_mesh(const MeshConfig& config, int my_id, const MeshOptions& options = {});

/// True when every address `host` resolves to is a loopback address
/// (127.0.0.0/8, ::1).
bool is_loopback_host(const std::string& host);

}  // namespace blindfold::net
