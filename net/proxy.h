// The test bed's latency emulator and measurement probe. This kernel has no
// netem qdisc, so one-way delay is added in user space: a TCP proxy holds each
// chunk of bytes for `delay` after it arrives before forwarding it (and can
// pace each direction to a rate). scripts/netbed puts one in front of every
// party's service; docs/NETWORK.md ("Test bed") has the numbers.
//
// The probe measures what a party sees over a path: ping-pong RTT of 8-byte
// messages and one-way bulk throughput, over plain POSIX TCP sockets (the
// bed must not depend on the transports it is used to measure).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace blindfold::net {

/// A TCP endpoint as given on the command line: "host:port", "[v6]:port".
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
  std::string str() const;
};

/// Parses "HOST:PORT" (HOST may be a name, an IPv4 address or "[IPv6]").
/// @throws Error(kBadInput) naming the text when it is malformed.
HostPort parse_host_port(std::string_view text);

struct ProxyOptions {
  HostPort listen;   // port 0: any free port (see Proxy::port())
  HostPort connect;  // where each accepted connection is forwarded
  /// One-way delay added to each direction: the RTT through the proxy grows
  /// by 2 * delay. Applies to data and to the close (FIN) that follows it.
  std::chrono::microseconds delay{0};
  /// Pacing per direction of each connection in Mbit/s (10^6 bit/s); 0: none.
  double rate_mbit = 0;
  /// Bytes a direction may hold (data plus 64 bytes per chunk) before the
  /// proxy stops reading from its source (TCP backpressure then reaches the
  /// sender). A direction holds at most this plus one 64 KiB chunk.
  std::size_t max_queue_bytes = std::size_t{64} << 20;
  /// Connections served at once; later ones are closed on accept.
  int max_connections = 1024;
  std::chrono::milliseconds connect_timeout{10'000};
  /// Prints one line per connection event to stderr.
  bool verbose = false;
};

struct ProxyStats {
  std::int64_t accepted = 0;     // connections accepted
  std::int64_t refused = 0;      // closed on accept (over max_connections)
  std::int64_t failed = 0;       // target unreachable, or reset by a side
  std::int64_t active = 0;       // being served now
  std::int64_t bytes = 0;        // forwarded, both directions
  std::int64_t peak_queued = 0;  // most one direction ever held (see max_queue_bytes)
};

/// A delaying TCP proxy. One thread accepts; each connection gets a thread
/// that polls both sockets (ppoll, microsecond timeouts) and forwards chunks
/// in order once their release time has come.
///
/// Thread safety: run() on one thread; stop() and stats() from any thread.
/// stop() only write()s to a pipe, so a signal handler may call it.
class Proxy {
 public:
  /// Binds and listens. @throws Error(kBadInput) for a bad option,
  /// Error(kIo) when the address cannot be bound.
  explicit Proxy(ProxyOptions options);
  /// Stops and joins every thread.
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  /// The bound port (useful with port 0).
  std::uint16_t port() const { return port_; }
  /// Serves until stop(); returns after every connection thread ended.
  void run();
  /// run() on a background thread (tests).
  void start();
  /// Asks run() to end; connections are closed. Async-signal-safe.
  void stop() noexcept;
  ProxyStats stats() const;

 private:
  struct Conn;
  void serve(Conn* c);
  void reap(bool all);

  ProxyOptions opt_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::thread runner_;
  std::mutex mu_;
  std::list<std::unique_ptr<Conn>> conns_;
  std::atomic<std::int64_t> accepted_{0}, refused_{0}, failed_{0}, active_{0}, bytes_{0},
      peak_queued_{0};
};

// ---- probe -----------------------------------------------------------------

struct ProbeOptions {
  int pings = 50;                                 // 8-byte ping-pongs
  std::uint64_t bytes = std::uint64_t{64} << 20;  // bulk transfer, client to server
  std::chrono::milliseconds timeout{60'000};      // the whole session
};

struct ProbeResult {
  int pings = 0;
  double rtt_median_us = 0, rtt_min_us = 0, rtt_max_us = 0;
  std::uint64_t bytes = 0;
  double seconds = 0;  // first bulk byte sent to the server's ack received
  double mbit_s = 0;   // bytes * 8 / seconds / 1e6
  /// One line of JSON: {"target":...,"pings":..,"rtt_us":{...},...}.
  std::string to_json(const std::string& target) const;
};

/// The server side of a probe: binds on construction (so a caller knows the
/// port before a client comes), then answers exactly one probe session;
/// connections that are not a probe are dropped and it goes on waiting.
class ProbeServer {
 public:
  /// @throws Error(kBadInput) for a bad host, Error(kIo) when it cannot bind.
  explicit ProbeServer(const HostPort& listen);
  ~ProbeServer();
  ProbeServer(const ProbeServer&) = delete;
  ProbeServer& operator=(const ProbeServer&) = delete;

  std::uint16_t port() const { return port_; }
  /// Accepts one client and answers its session. The client's header is
  /// checked against kMaxProbePings / kMaxProbeBytes before anything else.
  /// @throws Error(kPeerFailure) when no session completed within `max_time`,
  /// Error(kBadMessage) when the client is not a probe.
  void serve_one(std::chrono::milliseconds max_time);

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

/// Connects to a probe server and measures: `pings` ping-pongs of 8 bytes
/// (TCP_NODELAY), then `bytes` to the server, timed until its 8-byte ack.
/// @throws Error(kPeerFailure) on connect failure, reset or timeout.
ProbeResult probe_measure(const HostPort& to, const ProbeOptions& options);

inline constexpr std::uint64_t kMaxProbeBytes = std::uint64_t{16} << 30;
inline constexpr int kMaxProbePings = 100'000;

/// Parses a byte count: "1048576", "64MiB", "1.5GB", "512k" (k/M/G are
/// powers of 1024 with or without "iB"; "B" alone is accepted).
/// @throws Error(kBadInput).
std::uint64_t parse_byte_count(std::string_view text);

}  // namespace blindfold::net
