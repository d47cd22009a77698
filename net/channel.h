// net::Channel: the only way Blindfold's parties talk. Framed, tagged
// messages with byte and round counters, a receive timeout, and a maximum
// message size checked before any allocation. The public methods are
// non-virtual and do the counting and framing; transports implement three
// small virtual hooks (the shape of emp-toolkit's io_channel.h).
//
// Wire frame: u8 tag length (1..32) | tag bytes | u64 little-endian payload
// length | payload. A receiver names the tag it expects, so a desynchronised
// protocol fails with both tags named instead of hanging or misparsing.
//
// Thread safety: one thread sends and one thread receives at a time (they
// may be different threads); counters are read after the exchange.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace blindfold::net {

using Bytes = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

/// Bytes and messages of one direction, for one tag or in total.
struct Traffic {
  std::int64_t bytes = 0;  // payload plus framing
  std::int64_t messages = 0;
};

struct ChannelStats {
  Traffic sent, received;
  std::map<std::string, Traffic> sent_by_tag, received_by_tag;
  /// Rounds: the number of times this side started sending after having
  /// received (the first send counts as one). In a ping-pong of k exchanges
  /// each side counts k rounds; a one-way stream counts 1.
  std::int64_t rounds = 0;
};

/// Rounds of one party over all of its channels: the number of times it
/// started sending after having received on any of them. In a protocol where
/// a party sends on one channel and receives on another (a ring of three),
/// the per-channel count says 1 while the party really waited k times;
/// this counter says k. Shared by the channels of one party
/// (Channel::set_round_counter); atomic, so a channel's sends and receives
/// may come from different threads.
struct RoundCounter {
  std::atomic<std::int64_t> rounds{0};
  std::atomic<bool> last_was_send{false};
  void reset() {
    rounds = 0;
    last_was_send = false;
  }
};

inline constexpr std::size_t kMaxTagBytes = 32;
/// Default cap on one message's payload (256 MiB).
inline constexpr std::uint64_t kDefaultMaxMessageBytes = std::uint64_t{256} << 20;
/// Default receive timeout.
inline constexpr std::chrono::milliseconds kDefaultTimeout{30'000};

class Channel {
 public:
  virtual ~Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  /// Sends one message. Throws Error(kPeerFailure) when the peer is gone,
  /// kBadInput for an empty or over-long tag or an over-size payload.
  void send(std::string_view tag, std::span<const std::uint8_t> payload);
  void send(std::string_view tag, std::string_view payload);

  /// Receives one message, which must carry `tag`. Throws
  /// Error(kBadMessage) naming both tags on a mismatch, or when the announced
  /// length exceeds max_message_bytes() (before allocating it);
  /// Error(kPeerFailure) on timeout or when the peer disconnects. After any
  /// error the channel is broken and further use throws.
  Bytes recv(std::string_view tag);
  /// recv() into `payload`, whose capacity is reused (no allocation or
  /// zero-filling when it is already large enough: for repeated large
  /// messages). `payload` is resized to the message; on error its contents
  /// are unspecified.
  void recv_into(std::string_view tag, Bytes& payload);

  /// Pushes buffered bytes to the peer (transports may batch small writes).
  void flush();

  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_max_message_bytes(std::uint64_t n) { max_message_ = n; }
  std::uint64_t max_message_bytes() const { return max_message_; }

  const ChannelStats& stats() const { return stats_; }
  /// Not concurrent with send/recv.
  void reset_stats() {
    stats_ = {};
    last_was_send_ = false;
  }
  /// Called with the tag and payload of every message this channel receives,
  /// after its checks passed, on the receiving thread: a party's view of the
  /// protocol, for tracing and for tests that inspect what a party learns.
  using ReceiveObserver =
      std::function<void(std::string_view tag, std::span<const std::uint8_t> payload)>;
  void set_receive_observer(ReceiveObserver f) { on_receive_ = std::move(f); }

  /// Counts this channel's sends and receives into a party-wide counter too.
  void set_round_counter(std::shared_ptr<RoundCounter> c) { party_rounds_ = std::move(c); }

  /// Names the peer in error messages ("party 1 (server)").
  void set_peer_name(std::string name) { peer_ = std::move(name); }
  const std::string& peer_name() const { return peer_; }

  /// Closes the transport; a blocked or later recv on the peer's side then
  /// fails with kPeerFailure. Idempotent.
  void close() { close_transport(); }

 protected:
  Channel() = default;
  /// Writes all of `data` or throws Error(kPeerFailure).
  virtual void write_bytes(std::span<const std::uint8_t> data) = 0;
  /// Writes one frame's header and payload. The default is two write_bytes
  /// calls; a transport that can hand both to the kernel at once (writev)
  /// overrides it, so a reader wakes once per message.
  virtual void write_frame(std::span<const std::uint8_t> header,
                           std::span<const std::uint8_t> payload) {
    write_bytes(header);
    if (!payload.empty()) write_bytes(payload);
  }
  /// Reads exactly `out.size()` bytes before `deadline` or throws
  /// Error(kPeerFailure) ("timed out" / "peer closed the connection").
  virtual void read_bytes(std::span<std::uint8_t> out, Clock::time_point deadline) = 0;
  virtual void flush_bytes() {}
  virtual void close_transport() {}

 private:
  [[noreturn]] void fail(int category, const std::string& msg);
  void check_usable() const;

  ChannelStats stats_;
  std::chrono::milliseconds timeout_ = kDefaultTimeout;
  std::uint64_t max_message_ = kDefaultMaxMessageBytes;
  std::string peer_ = "peer";
  // Written by the sending and the receiving thread: atomic.
  std::atomic<bool> last_was_send_{false};
  std::atomic<bool> broken_{false};
  std::shared_ptr<RoundCounter> party_rounds_;
  ReceiveObserver on_receive_;
};

}  // namespace blindfold::net
