// TCP transport over POSIX sockets: a listener, connect-with-retry, and
// TcpChannel (buffered writes, poll()-based reads under the channel's
// deadline). The fd-level pieces (Socket, wait_fd, send/recv without SIGPIPE)
// are public because the TLS transport (net/tls.h) runs over them.
//
// Plain TCP has no confidentiality and no authentication: anyone on the path
// reads and alters every share and ciphertext. The party mesh (net/mesh.h)
// uses it only behind an explicit --insecure-transport.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "net/channel.h"

namespace blindfold::net {

/// Owns one file descriptor; closes it on destruction. Move-only.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() { reset(); }
  Socket(Socket&& o) noexcept : fd_(o.release()) {}
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  /// Gives up ownership; the caller closes the descriptor.
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }
  /// Closes the descriptor now (errors of close() are ignored: nothing
  /// useful can be done about them here).
  void reset();

 private:
  int fd_ = -1;
};

/// "host:port", with brackets around IPv6 literals.
std::string host_port(const std::string& host, std::uint16_t port);

/// Milliseconds left until `deadline` for poll(): 0 when past, rounded up so
/// a wait never ends before the deadline, clamped to int.
int poll_timeout_ms(Clock::time_point deadline);

/// Waits until `fd` is ready for `events` (POLLIN / POLLOUT) or the deadline
/// passes. Returns false on timeout; true when ready or when the socket has
/// an error or hang-up pending (the next send/recv reports it). Retries on
/// EINTR. @throws Error(kIo) when poll() itself fails.
bool wait_fd(int fd, short events, Clock::time_point deadline);

/// As wait_fd, returning poll()'s revents (0 on timeout).
short poll_events(int fd, short events, Clock::time_point deadline);

/// Puts `fd` into non-blocking mode. @throws Error(kIo).
void set_nonblocking(int fd);

/// One send() with MSG_NOSIGNAL (a vanished peer gives EPIPE, never
/// SIGPIPE). Returns bytes written, or -1 with errno set (EAGAIN included).
ssize_t send_some(int fd, std::span<const std::uint8_t> data);

/// One recv(). Returns bytes read, 0 at end of stream, or -1 with errno set.
ssize_t recv_some(int fd, std::span<std::uint8_t> out);

/// True for errno values that mean the peer went away (ECONNRESET, EPIPE, ...).
bool is_disconnect_errno(int err);

/// A listening TCP socket (SO_REUSEADDR, close-on-exec, non-blocking).
class TcpListener {
 public:
  /// Binds host:port and listens. host "" or "0.0.0.0" / "::" binds all
  /// interfaces; port 0 picks an ephemeral port (see port()).
  /// @throws Error(kBadInput) when the host does not resolve, Error(kIo) when
  /// no address can be bound (port in use, permission).
  TcpListener(const std::string& host, std::uint16_t port, int backlog = 64);

  /// The bound port (the kernel's choice when constructed with port 0).
  std::uint16_t port() const { return port_; }
  const std::string& host() const { return host_; }

  /// Waits for one connection until `deadline`. The returned socket is
  /// non-blocking with TCP_NODELAY set. @throws Error(kPeerFailure) "no
  /// connection on host:port within N s" on timeout, Error(kIo) when the
  /// listener fails.
  Socket accept(Clock::time_point deadline, std::string* remote = nullptr);

  /// Stops listening (later accepts throw). Idempotent.
  void close() { sock_.reset(); }

 private:
  Socket sock_;
  std::string host_;
  std::uint16_t port_ = 0;
};

/// Connects to host:port, retrying with a short backoff (10 ms doubling to
/// 250 ms) while the peer is not there yet (refused, unreachable, reset)
/// until `deadline`. The returned socket is non-blocking with TCP_NODELAY.
/// @throws Error(kPeerFailure) "could not connect to host:port within N s
/// (last error: ...)"; Error(kBadInput) when the host name does not resolve.
Socket tcp_connect(const std::string& host, std::uint16_t port, Clock::time_point deadline);

/// Finds the end of each message in the byte stream Channel::send writes
/// (one write_bytes() with the header: u8 tag length | tag | u64 LE payload
/// length, then the payload, if any, in one or more), so that a buffering
/// transport can deliver every message when send() returns.
class FrameTracker {
 public:
  /// Accounts for one write_bytes() call; true when it completes a message.
  bool on_write(std::span<const std::uint8_t> data);

 private:
  std::uint64_t payload_left_ = 0;  // of the message being written
};

/// What TcpChannel and TlsChannel share: a Channel over a stream socket with
/// a sending thread of its own.
///
/// Sending: send() copies the message into a queue and returns; the
/// channel's thread writes the queue to the socket. So send() does not wait
/// for the peer to read (until max_message_bytes() + 1 MiB are queued; then
/// it waits for room), and parties that all send before they receive -- two
/// exchanging shares, three passing shares around a ring -- cannot deadlock
/// over sockets, just as they cannot over memory channels. Each message is
/// handed to the thread when send() returns, header and payload in one
/// write; with set_batching(true) small messages collect until flush(),
/// recv() or 64 KiB. A failure of the thread (the peer went away, or no
/// progress for timeout(): the peer is not reading) is reported by the next
/// send(), flush() or recv(). The thread is only woken when the socket is
/// full: while it is idle, send() writes what the socket takes at once from
/// the caller's thread (a large payload without copying it), so a message on
/// an idle link costs one system call and no thread switch.
///
/// Receiving: reads fill a 64 KiB buffer, so a small message costs one read
/// rather than three; a large payload is read straight into its
/// destination. Waiting is poll() under the recv() deadline.
///
/// close() and the destructor let the thread write what is queued for as
/// long as it makes progress (giving up after 1 s without any), then shut
/// the socket down, which wakes a recv() blocked on another thread; the
/// descriptor is closed by the destructor. Subclasses must call close() in
/// their destructors (the thread calls their stream_write()).
class StreamChannel : public Channel {
 public:
  ~StreamChannel() override;

  /// Collect messages until flush()/recv()/64 KiB instead of handing each
  /// to the sending thread when send() returns. Call from the sending thread.
  void set_batching(bool on);
  /// Waits until every byte sent so far has been written to the socket (not
  /// necessarily read by the peer). False on timeout or a failed channel.
  bool wait_sent(Clock::time_point deadline);
  int native_handle() const { return sock_.fd(); }

 protected:
  explicit StreamChannel(Socket socket);
  /// Starts the sending thread (after any handshake on sock_).
  void start_writer();

  /// Result of one non-blocking stream operation: bytes moved, or what to
  /// wait for (POLLIN / POLLOUT), or the end of the stream, or an error.
  struct IoResult {
    std::size_t n = 0;
    short wait = 0;
    bool eof = false;
    std::string error;
  };
  /// Writes a prefix of the concatenation of `parts` (never blocks).
  virtual IoResult stream_write(std::span<const std::span<const std::uint8_t>> parts) = 0;
  /// Reads at most out.size() bytes (never blocks).
  virtual IoResult stream_read(std::span<std::uint8_t> out) = 0;
  /// Ends the stream cleanly before the socket is shut down (TLS:
  /// close_notify). Called only when everything queued was written.
  virtual void stream_close() {}

  void write_bytes(std::span<const std::uint8_t> data) override;
  void read_bytes(std::span<std::uint8_t> out, Clock::time_point deadline) override;
  void flush_bytes() override;
  void close_transport() override;

  Socket sock_;

 private:
  void writer_loop();
  // Writes `batch` (from `offset` in its first block) completely; returns
  // an error text or "".
  std::string write_batch(const std::vector<Bytes>& batch, std::size_t offset);
  // q_mu_ held, writer idle: writes the sealed blocks, then `tail`, as far as
  // the socket takes them without waiting. Returns the bytes of `tail` written.
  std::size_t write_now_locked(std::span<const std::uint8_t> tail);
  void seal_locked();  // q_mu_ held: the open block may be sent
  [[noreturn]] void throw_failure_locked() const;

  static constexpr std::size_t kBlockBytes = 64 * 1024;

  // Send queue: blocks_[0, sealed_) may be written; blocks_.back() collects
  // small writes while unsealed.
  mutable std::mutex q_mu_;
  std::condition_variable writer_cv_;  // work for the writer, or stop
  std::condition_variable sent_cv_;    // the writer made progress or failed
  std::deque<Bytes> blocks_;
  std::size_t sealed_ = 0;
  std::size_t front_offset_ = 0;            // bytes of blocks_.front() already written
  std::size_t queued_ = 0;                  // bytes in blocks_ and in the writer's hands
  std::atomic<std::uint64_t> progress_{0};  // bytes written to the socket, ever
  bool writing_ = false;                    // the writer holds a batch
  bool stop_ = false;
  std::string failure_;  // why the writer stopped; "" while healthy
  std::atomic<bool> stopping_{false};
  std::atomic<std::int64_t> write_timeout_ms_{kDefaultTimeout.count()};
  FrameTracker frames_;
  bool batching_ = false;
  std::thread writer_;

  // Receive buffer: [rpos_, rend_) received, not yet consumed.
  std::vector<std::uint8_t> rbuf_;
  std::size_t rpos_ = 0, rend_ = 0;
  std::atomic<bool> closed_{false};
};

/// A Channel over a connected TCP socket (StreamChannel's sending thread and
/// buffers; TCP_NODELAY, so a message leaves when it is handed over).
/// Plain TCP: see the caveat at the top of this file.
class TcpChannel final : public StreamChannel {
 public:
  /// Takes a connected socket (made non-blocking here). @throws Error(kIo).
  explicit TcpChannel(Socket socket);
  ~TcpChannel() override;

 protected:
  IoResult stream_write(std::span<const std::span<const std::uint8_t>> parts) override;
  IoResult stream_read(std::span<std::uint8_t> out) override;
};

}  // namespace blindfold::net
