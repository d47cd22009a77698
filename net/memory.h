// In-memory transport for in-process tests, and simulate(n, fn), which runs
// n parties as threads over a full mesh of memory channels (the shape of
// SPU's mpc/utils/simulate.h). The same role code then runs over TCP/TLS.
#pragma once

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "net/channel.h"

namespace blindfold::net {

/// Two connected channels. Destroying or closing one makes the other's recv
/// fail with kPeerFailure once the buffered bytes are consumed.
std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> memory_pair();

/// Channels of one party in a mesh: peers[j] talks to party j (nullptr at
/// the party's own index).
struct Mesh {
  int self = 0;
  std::vector<std::unique_ptr<Channel>> peers;
  Channel& to(int j) const;
  int size() const { return static_cast<int>(peers.size()); }
  /// Bytes sent on all channels since their stats were last reset.
  std::int64_t sent_bytes() const;
  /// Resets every channel's stats (not concurrent with their use).
  void reset_stats();
  /// Flushes every channel.
  void flush();
  /// Counts the rounds of all channels into `c` (Channel::set_round_counter).
  void set_round_counter(const std::shared_ptr<RoundCounter>& c);
};

/// A full mesh of memory channels for parties 0..n-1 (peers named "party J"),
/// for callers that keep the parties' channels across several runs.
std::vector<Mesh> memory_meshes(int n);

/// Runs fn(meshes[i]) for every party on its own thread, with simulate()'s
/// failure handling (below). The meshes stay usable afterwards if no party
/// failed.
void run_meshes(std::vector<Mesh>& meshes, const std::function<void(Mesh&)>& fn);

/// Runs fn(mesh) for parties 0..n-1, each on its own thread, over memory
/// channels. When a party throws, its channels are closed so the others fail
/// fast instead of waiting for their timeout; the first exception (by party
/// index among those that threw an error of their own) is rethrown after all
/// threads end.
void simulate(int n, const std::function<void(Mesh&)>& fn);

}  // namespace blindfold::net
