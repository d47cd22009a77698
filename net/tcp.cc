#include "net/tcp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "core/error.h"

namespace blindfold::net {

namespace {

std::string errno_string(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be buf.
  const char* s = strerror_r(err, buf, sizeof buf);
  return s ? std::string(s) : "error " + std::to_string(err);
}

std::string seconds_string(std::chrono::nanoseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", std::chrono::duration<double>(d).count());
  return buf;
}

struct AddrInfoFree {
  void operator()(addrinfo* a) const { freeaddrinfo(a); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoFree>;

// Resolves host:port for a stream socket. Returns nullptr with *gai_err set
// on failure.
AddrInfoPtr resolve(const std::string& host, std::uint16_t port, bool passive, int* gai_err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const bool any = host.empty();
  *gai_err = getaddrinfo(any ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (*gai_err != 0) return nullptr;
  return AddrInfoPtr(res);
}

std::string gai_message(int gai_err) {
  if (gai_err == EAI_SYSTEM) return errno_string(errno);
  return gai_strerror(gai_err);
}

void set_nodelay(int fd) {
  const int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    throw Error(ErrorCategory::kIo, "setsockopt(TCP_NODELAY): " + errno_string(errno));
  }
}

std::string sockaddr_string(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    if (!inet_ntop(AF_INET, &a->sin_addr, host, sizeof host)) std::strcpy(host, "?");
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (!inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host)) std::strcpy(host, "?");
    port = ntohs(a->sin6_port);
  }
  return host_port(host, port);
}

// Errors worth another connect attempt: the peer is not listening yet, or
// the network path is not up yet.
bool is_retryable_connect_errno(int err) {
  switch (err) {
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
    case EAGAIN:
    case EINTR: return true;
    default: return false;
  }
}

// One non-blocking connect attempt to one address. Returns a connected
// socket, or an invalid one with *err set.
Socket try_connect(const addrinfo& ai, Clock::time_point deadline, int* err) {
  Socket s(::socket(ai.ai_family, ai.ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai.ai_protocol));
  if (!s.valid()) {
    *err = errno;
    return Socket();
  }
  if (::connect(s.fd(), ai.ai_addr, ai.ai_addrlen) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      *err = errno;
      return Socket();
    }
    if (!wait_fd(s.fd(), POLLOUT, deadline)) {
      *err = ETIMEDOUT;
      return Socket();
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
      *err = errno;
      return Socket();
    }
    if (so_error != 0) {
      *err = so_error;
      return Socket();
    }
  }
  return s;
}

}  // namespace

// ---- fd-level pieces -----------------------------------------------------

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}

void Socket::reset() {
  if (fd_ >= 0) {
    // On Linux the descriptor is released even when close() reports EINTR;
    // retrying could close a descriptor another thread just opened.
    (void)::close(fd_);
    fd_ = -1;
  }
}

std::string host_port(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

int poll_timeout_ms(Clock::time_point deadline) {
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<std::int64_t>(ms, 1'000'000'000));
}

short poll_events(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, poll_timeout_ms(deadline));
    if (r > 0 && p.revents != 0) return p.revents;
    if (r == 0) {
      if (Clock::now() >= deadline) return 0;
      continue;  // woke early (timer granularity): wait for the rest
    }
    if (r < 0 && errno != EINTR) throw Error(ErrorCategory::kIo, "poll: " + errno_string(errno));
  }
}

bool wait_fd(int fd, short events, Clock::time_point deadline) {
  return poll_events(fd, events, deadline) != 0;
}

void set_nonblocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    throw Error(ErrorCategory::kIo, "fcntl(O_NONBLOCK): " + errno_string(errno));
  }
}

ssize_t send_some(int fd, std::span<const std::uint8_t> data) {
  for (;;) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

ssize_t recv_some(int fd, std::span<std::uint8_t> out) {
  for (;;) {
    const ssize_t n = ::recv(fd, out.data(), out.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

bool is_disconnect_errno(int err) {
  return err == ECONNRESET || err == EPIPE || err == ENOTCONN || err == ECONNABORTED ||
         err == ESHUTDOWN || err == ETIMEDOUT || err == EHOSTUNREACH || err == ENETUNREACH;
}

// ---- listener and connect --------------------------------------------------

TcpListener::TcpListener(const std::string& host, std::uint16_t port, int backlog) : host_(host) {
  int gai_err = 0;
  AddrInfoPtr res = resolve(host, port, /*passive=*/true, &gai_err);
  if (!res) {
    throw Error(ErrorCategory::kBadInput,
                "cannot resolve listen address '" + host + "': " + gai_message(gai_err));
  }
  int last_err = 0;
  for (const addrinfo* ai = res.get(); ai; ai = ai->ai_next) {
    Socket s(
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!s.valid()) {
      last_err = errno;
      continue;
    }
    const int one = 1;
    if (setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(s.fd(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(s.fd(), backlog) != 0) {
      last_err = errno;
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(s.fd(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      last_err = errno;
      continue;
    }
    port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    sock_ = std::move(s);
    return;
  }
  throw Error(ErrorCategory::kIo,
              "cannot listen on " + host_port(host, port) + ": " + errno_string(last_err));
}

Socket TcpListener::accept(Clock::time_point deadline, std::string* remote) {
  const auto start = Clock::now();
  for (;;) {
    if (!sock_.valid()) {
      throw Error(ErrorCategory::kIo, "listener on " + host_port(host_, port_) + " is closed");
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const int fd =
        ::accept4(sock_.fd(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      Socket s(fd);
      set_nodelay(s.fd());
      if (remote) *remote = sockaddr_string(ss);
      return s;
    }
    const int err = errno;
    // A connection that was reset before we took it, or a transient resource
    // shortage, is no reason to give up listening.
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED ||
        err == EPROTO || err == ENETDOWN || err == ENOPROTOOPT || err == EHOSTDOWN ||
        err == EHOSTUNREACH || err == ENETUNREACH || err == EOPNOTSUPP) {
      if (!wait_fd(sock_.fd(), POLLIN, deadline)) {
        throw Error(ErrorCategory::kPeerFailure, "no connection on " + host_port(host_, port_) +
                                                     " within " +
                                                     seconds_string(Clock::now() - start) + " s");
      }
      continue;
    }
    throw Error(ErrorCategory::kIo,
                "accept on " + host_port(host_, port_) + ": " + errno_string(err));
  }
}

Socket tcp_connect(const std::string& host, std::uint16_t port, Clock::time_point deadline) {
  const auto start = Clock::now();
  auto backoff = std::chrono::milliseconds(10);
  std::string last_error = "no attempt was made";
  for (;;) {
    int gai_err = 0;
    AddrInfoPtr res = resolve(host, port, /*passive=*/false, &gai_err);
    if (!res) {
      // A name server that is temporarily unreachable is worth waiting for;
      // a name that does not exist is a configuration error.
      if (gai_err != EAI_AGAIN) {
        throw Error(ErrorCategory::kBadInput,
                    "cannot resolve host '" + host + "': " + gai_message(gai_err));
      }
      last_error = gai_message(gai_err);
    } else {
      for (const addrinfo* ai = res.get(); ai; ai = ai->ai_next) {
        int err = 0;
        Socket s = try_connect(*ai, deadline, &err);
        if (s.valid()) {
          set_nodelay(s.fd());
          return s;
        }
        last_error = errno_string(err);
        if (!is_retryable_connect_errno(err)) {
          throw Error(ErrorCategory::kPeerFailure,
                      "could not connect to " + host_port(host, port) + ": " + last_error);
        }
      }
    }
    const auto now = Clock::now();
    if (now >= deadline) break;
    std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(250));
    if (Clock::now() >= deadline) break;
  }
  throw Error(ErrorCategory::kPeerFailure, "could not connect to " + host_port(host, port) +
                                               " within " + seconds_string(Clock::now() - start) +
                                               " s (last error: " + last_error + ")");
}

// ---- FrameTracker ----------------------------------------------------------

bool FrameTracker::on_write(std::span<const std::uint8_t> data) {
  if (payload_left_ == 0) {
    // A header, always written whole by Channel::send.
    if (data.size() < 10 || data.size() != std::size_t{data[0]} + 9) return false;
    std::uint64_t len = 0;
    for (int i = 0; i < 8; ++i) len |= std::uint64_t{data[data.size() - 8 + i]} << (8 * i);
    payload_left_ = len;
    return len == 0;
  }
  payload_left_ -= std::min<std::uint64_t>(payload_left_, data.size());
  return payload_left_ == 0;
}

// ---- StreamChannel ---------------------------------------------------------

StreamChannel::StreamChannel(Socket socket) : sock_(std::move(socket)) {
  if (!sock_.valid()) throw Error(ErrorCategory::kInternal, "a channel needs a connected socket");
  set_nonblocking(sock_.fd());
  rbuf_.resize(kBlockBytes);
}

StreamChannel::~StreamChannel() {
  // Subclasses stop the writer in their destructors; this is the fallback
  // for one that never started (a failed handshake) or forgot.
  if (writer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(q_mu_);
      stop_ = true;
    }
    stopping_ = true;
    writer_cv_.notify_all();
    (void)::shutdown(sock_.fd(), SHUT_RDWR);
    writer_.join();
  }
}

void StreamChannel::start_writer() {
  writer_ = std::thread([this] { writer_loop(); });
}

void StreamChannel::set_batching(bool on) {
  std::lock_guard<std::mutex> lock(q_mu_);
  batching_ = on;
  if (!on) seal_locked();
}

void StreamChannel::seal_locked() {
  if (sealed_ < blocks_.size()) {
    sealed_ = blocks_.size();
    writer_cv_.notify_one();
  }
}

void StreamChannel::throw_failure_locked() const {
  if (!failure_.empty()) throw Error(ErrorCategory::kPeerFailure, failure_);
  throw Error(ErrorCategory::kPeerFailure, "the channel is closed");
}

void StreamChannel::write_bytes(std::span<const std::uint8_t> data) {
  std::unique_lock<std::mutex> lock(q_mu_);
  if (closed_ || !failure_.empty()) throw_failure_locked();
  write_timeout_ms_ = timeout().count();
  const bool deliver = frames_.on_write(data) && !batching_;
  // Backpressure: wait while the queue is full and the writer progresses.
  const std::size_t cap =
      static_cast<std::size_t>(std::min<std::uint64_t>(max_message_bytes(), SIZE_MAX / 4)) +
      (std::size_t{1} << 20);
  Clock::time_point deadline = Clock::now() + timeout();
  std::uint64_t seen = progress_;
  while (queued_ > 0 && queued_ + data.size() > cap) {
    seal_locked();
    if (sent_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      if (progress_ == seen) {
        throw Error(ErrorCategory::kPeerFailure, "timed out after " +
                                                     std::to_string(timeout().count()) +
                                                     " ms: the peer is not reading");
      }
      seen = progress_;
      deadline = Clock::now() + timeout();
    }
    if (closed_ || !failure_.empty()) throw_failure_locked();
  }
  std::span<const std::uint8_t> rest = data;
  if (rest.size() >= kBlockBytes) {
    // A large payload: whatever the socket takes now goes straight from the
    // caller's memory, behind the queued bytes; only the rest is copied.
    sealed_ = blocks_.size();
    rest = rest.subspan(write_now_locked(rest));
    if (!failure_.empty()) throw_failure_locked();
  }
  if (!rest.empty()) {
    const bool open = sealed_ < blocks_.size();
    if (open && blocks_.back().size() + rest.size() <= kBlockBytes) {
      blocks_.back().insert(blocks_.back().end(), rest.begin(), rest.end());
    } else {
      sealed_ = blocks_.size();  // the open block, if any, goes before this one
      Bytes block;
      block.reserve(std::max(rest.size(), std::min<std::size_t>(kBlockBytes, 4096)));
      block.assign(rest.begin(), rest.end());
      blocks_.push_back(std::move(block));
    }
    queued_ += rest.size();
  }
  if (deliver || (!blocks_.empty() && blocks_.back().size() >= kBlockBytes)) {
    sealed_ = blocks_.size();
    write_now_locked({});
    if (!failure_.empty()) throw_failure_locked();
  }
  if (sealed_ > 0) writer_cv_.notify_one();
}

std::size_t StreamChannel::write_now_locked(std::span<const std::uint8_t> tail) {
  // Only while the writer is idle: it alone may then touch the stream, and
  // bytes must leave in queue order.
  if (writing_ || !failure_.empty() || !writer_.joinable()) return 0;
  std::size_t tail_done = 0;
  std::vector<std::span<const std::uint8_t>> parts;
  for (;;) {
    parts.clear();
    for (std::size_t k = 0; k < sealed_ && parts.size() < 64; ++k) {
      const std::size_t skip = k == 0 ? front_offset_ : 0;
      parts.emplace_back(blocks_[k].data() + skip, blocks_[k].size() - skip);
    }
    if (parts.size() == sealed_ && tail_done < tail.size())
      parts.push_back(tail.subspan(tail_done));
    if (parts.empty()) break;
    const IoResult r = stream_write(parts);
    if (r.n == 0) {
      if (!r.error.empty()) failure_ = r.error;
      if (r.eof) failure_ = "peer closed the connection";
      break;  // the socket is full: the writer takes over
    }
    std::size_t left = r.n;
    progress_ += r.n;
    while (left > 0 && sealed_ > 0) {
      const std::size_t here = std::min(left, blocks_.front().size() - front_offset_);
      front_offset_ += here;
      left -= here;
      queued_ -= here;
      if (front_offset_ == blocks_.front().size()) {
        blocks_.pop_front();
        --sealed_;
        front_offset_ = 0;
      }
    }
    tail_done += left;
  }
  return tail_done;
}

void StreamChannel::flush_bytes() {
  std::lock_guard<std::mutex> lock(q_mu_);
  if (closed_) throw_failure_locked();
  if (!failure_.empty()) {
    // Nothing queued is lost: let recv() read what the peer sent before it went.
    if (!blocks_.empty()) throw_failure_locked();
    return;
  }
  sealed_ = blocks_.size();
  write_now_locked({});
  if (sealed_ > 0) writer_cv_.notify_one();
}

bool StreamChannel::wait_sent(Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(q_mu_);
  seal_locked();
  return sent_cv_.wait_until(
             lock, deadline,
             [&] { return (blocks_.empty() && !writing_) || !failure_.empty() || stop_; }) &&
         failure_.empty() && blocks_.empty() && !writing_;
}

void StreamChannel::writer_loop() {
  std::vector<Bytes> batch;
  for (;;) {
    std::size_t bytes = 0, offset = 0;
    {
      std::unique_lock<std::mutex> lock(q_mu_);
      writer_cv_.wait(lock, [&] { return sealed_ > 0 || stop_; });
      if (stop_) return;
      // Take sealed blocks, up to 1 MiB or 64 of them, for one gathered write.
      batch.clear();
      offset = front_offset_;
      front_offset_ = 0;
      while (sealed_ > 0 && batch.size() < 64 && (batch.empty() || bytes < (1u << 20))) {
        bytes += blocks_.front().size() - (batch.empty() ? offset : 0);
        batch.push_back(std::move(blocks_.front()));
        blocks_.pop_front();
        --sealed_;
      }
      writing_ = true;
    }
    const std::string error = write_batch(batch, offset);
    {
      std::lock_guard<std::mutex> lock(q_mu_);
      writing_ = false;
      queued_ -= bytes;
      if (!error.empty() && failure_.empty()) failure_ = error;
    }
    sent_cv_.notify_all();
    // The reader finds out by itself (end of stream, reset or its timeout)
    // and then reports this reason; bytes that arrived before stay readable.
    if (!error.empty()) return;
  }
}

std::string StreamChannel::write_batch(const std::vector<Bytes>& batch, std::size_t offset) {
  const auto idle = std::chrono::milliseconds(write_timeout_ms_.load());
  Clock::time_point deadline = Clock::now() + idle;
  std::size_t part = 0;
  std::vector<std::span<const std::uint8_t>> parts;
  while (part < batch.size()) {
    parts.clear();
    parts.emplace_back(batch[part].data() + offset, batch[part].size() - offset);
    for (std::size_t k = part + 1; k < batch.size(); ++k) parts.emplace_back(batch[k]);
    const IoResult r = stream_write(parts);
    if (stopping_) return "the channel is closed";
    if (r.n > 0) {
      progress_ += r.n;
      std::size_t left = r.n;
      while (left > 0 && part < batch.size()) {
        const std::size_t here = std::min(left, batch[part].size() - offset);
        offset += here;
        left -= here;
        if (offset == batch[part].size()) {
          ++part;
          offset = 0;
        }
      }
      deadline = Clock::now() + idle;  // progress: restart the idle clock
      continue;
    }
    if (!r.error.empty()) return r.error;
    if (r.eof) return "peer closed the connection";
    if (poll_events(sock_.fd(), r.wait ? r.wait : POLLOUT, deadline) == 0) {
      return "timed out after " + std::to_string(idle.count()) + " ms: the peer is not reading";
    }
  }
  return "";
}

void StreamChannel::read_bytes(std::span<std::uint8_t> out, Clock::time_point deadline) {
  if (closed_) throw Error(ErrorCategory::kPeerFailure, "the channel is closed");
  auto fail = [&](std::string what) {
    if (closed_) what = "the channel was closed";
    {
      // The sending thread's reason (e.g. a reset it saw first) is the better one.
      std::lock_guard<std::mutex> lock(q_mu_);
      if (!failure_.empty()) what = failure_;
    }
    throw Error(ErrorCategory::kPeerFailure, what);
  };
  std::size_t got = 0;
  while (got < out.size()) {
    if (rpos_ < rend_) {
      const std::size_t n = std::min(out.size() - got, rend_ - rpos_);
      std::memcpy(out.data() + got, rbuf_.data() + rpos_, n);
      rpos_ += n;
      got += n;
      continue;
    }
    // Large reads go straight to the destination; small ones through the
    // buffer, which also picks up whatever follows them.
    const bool direct = out.size() - got >= rbuf_.size();
    const IoResult r = direct ? stream_read(out.subspan(got)) : stream_read(rbuf_);
    if (r.n > 0) {
      if (direct) {
        got += r.n;
      } else {
        rpos_ = 0;
        rend_ = r.n;
      }
      continue;
    }
    if (r.eof) fail("peer closed the connection");
    if (!r.error.empty()) fail(r.error);
    if (poll_events(sock_.fd(), r.wait ? r.wait : POLLIN, deadline) == 0) {
      throw Error(ErrorCategory::kPeerFailure,
                  "timed out after " + std::to_string(timeout().count()) + " ms");
    }
  }
}

void StreamChannel::close_transport() {
  if (closed_.exchange(true) || !writer_.joinable()) return;
  bool drained = false;
  {
    // Let the writer finish the queue while it makes progress.
    std::unique_lock<std::mutex> lock(q_mu_);
    seal_locked();
    const auto grace = std::chrono::seconds(1);
    Clock::time_point deadline = Clock::now() + grace;
    std::uint64_t seen = progress_;
    for (;;) {
      drained = blocks_.empty() && !writing_;
      if (drained || !failure_.empty()) break;
      if (sent_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
        if (progress_ == seen) break;
        seen = progress_;
        deadline = Clock::now() + grace;
      }
    }
    drained = drained && failure_.empty();
    stop_ = true;
  }
  stopping_ = true;
  writer_cv_.notify_all();
  sent_cv_.notify_all();
  if (drained) {
    writer_.join();  // idle: it sees stop_ at once
    stream_close();
    (void)::shutdown(sock_.fd(), SHUT_RDWR);
  } else {
    // Wakes the writer (and a recv() on another thread) out of poll().
    (void)::shutdown(sock_.fd(), SHUT_RDWR);
    writer_.join();
  }
}

// ---- TcpChannel ------------------------------------------------------------

TcpChannel::TcpChannel(Socket socket) : StreamChannel(std::move(socket)) {
  set_nodelay(sock_.fd());
  start_writer();
}

TcpChannel::~TcpChannel() {
  close_transport();
}

StreamChannel::IoResult TcpChannel::stream_write(
    std::span<const std::span<const std::uint8_t>> parts) {
  iovec iov[64];
  std::size_t n_iov = 0;
  for (const auto& p : parts) {
    if (n_iov == 64) break;
    iov[n_iov++] = {const_cast<std::uint8_t*>(p.data()), p.size()};
  }
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = n_iov;
  IoResult r;
  for (;;) {
    const ssize_t n = ::sendmsg(sock_.fd(), &msg, MSG_NOSIGNAL);
    if (n >= 0) {
      r.n = static_cast<std::size_t>(n);
      if (n == 0) r.wait = POLLOUT;
      return r;
    }
    if (errno == EINTR) continue;
    break;
  }
  const int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK) {
    r.wait = POLLOUT;
  } else if (is_disconnect_errno(err)) {
    r.error = "peer closed the connection (" + errno_string(err) + ")";
  } else {
    r.error = "send: " + errno_string(err);
  }
  return r;
}

StreamChannel::IoResult TcpChannel::stream_read(std::span<std::uint8_t> out) {
  IoResult r;
  const ssize_t n = recv_some(sock_.fd(), out);
  if (n > 0) {
    r.n = static_cast<std::size_t>(n);
  } else if (n == 0) {
    r.eof = true;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
    r.wait = POLLIN;
  } else if (is_disconnect_errno(errno)) {
    r.error = "peer closed the connection (" + errno_string(errno) + ")";
  } else {
    r.error = "recv: " + errno_string(errno);
  }
  return r;
}

}  // namespace blindfold::net
