#include "backends/tee/local_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.h"

namespace blindfold::backends {

namespace {
std::string errno_text(int err) {
  return std::strerror(err);
}
}  // namespace

SyncLocalChannel::SyncLocalChannel(net::Socket socket, bool record)
    : sock_(std::move(socket)), record_(record) {
  const int flags = ::fcntl(sock_.fd(), F_GETFL, 0);
  if (flags < 0 || ::fcntl(sock_.fd(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    throw_error(ErrorCategory::kIo, "fcntl: " + errno_text(errno));
  }
}

SyncLocalChannel::~SyncLocalChannel() {
  close_transport();
}

std::vector<std::uint8_t> SyncLocalChannel::recorded_written() const {
  std::lock_guard<std::mutex> lock(record_mu_);
  return written_;
}

std::vector<std::uint8_t> SyncLocalChannel::recorded_read() const {
  std::lock_guard<std::mutex> lock(record_mu_);
  return read_;
}

void SyncLocalChannel::write_all(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  if (record_) {
    std::lock_guard<std::mutex> lock(record_mu_);
    written_.insert(written_.end(), a.begin(), a.end());
    written_.insert(written_.end(), b.begin(), b.end());
  }
  // Blocking writes: a peer that stops reading fills the socket buffer
  // (4 MiB) and then blocks us; the peer's own timeout or death (EPIPE)
  // ends that.
  while (!a.empty() || !b.empty()) {
    iovec iov[2];
    int n_iov = 0;
    if (!a.empty()) iov[n_iov++] = {const_cast<std::uint8_t*>(a.data()), a.size()};
    if (!b.empty()) iov[n_iov++] = {const_cast<std::uint8_t*>(b.data()), b.size()};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(n_iov);
    const ssize_t n = ::sendmsg(sock_.fd(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw_error(ErrorCategory::kPeerFailure,
                  net::is_disconnect_errno(err)
                      ? "peer closed the connection (" + errno_text(err) + ")"
                      : "send: " + errno_text(err));
    }
    std::size_t done = static_cast<std::size_t>(n);
    const std::size_t from_a = std::min(done, a.size());
    a = a.subspan(from_a);
    done -= from_a;
    b = b.subspan(std::min(done, b.size()));
  }
}

void SyncLocalChannel::write_bytes(std::span<const std::uint8_t> data) {
  write_all(data, {});
}

void SyncLocalChannel::write_frame(std::span<const std::uint8_t> header,
                                   std::span<const std::uint8_t> payload) {
  write_all(header, payload);
}

void SyncLocalChannel::read_bytes(std::span<std::uint8_t> out, net::Clock::time_point deadline) {
  std::size_t got = 0;
  while (got < out.size()) {
    // Read first and poll only when nothing is there: the bytes asked for
    // have usually arrived already (the rest of a message whose first bytes
    // woke us), and a poll is a system call each.
    const ssize_t n = ::recv(sock_.fd(), out.data() + got, out.size() - got, MSG_DONTWAIT);
    if (n > 0) {
      if (record_) {
        std::lock_guard<std::mutex> lock(record_mu_);
        read_.insert(read_.end(), out.data() + got, out.data() + got + n);
      }
      got += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) throw_error(ErrorCategory::kPeerFailure, "peer closed the connection");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      const int err = errno;
      throw_error(ErrorCategory::kPeerFailure,
                  net::is_disconnect_errno(err)
                      ? "peer closed the connection (" + errno_text(err) + ")"
                      : "recv: " + errno_text(err));
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - net::Clock::now());
    if (left.count() <= 0) throw_error(ErrorCategory::kPeerFailure, "timed out");
    pollfd p{sock_.fd(), POLLIN, 0};
    const int r =
        ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count() + 1, 1 << 30)));
    if (r < 0 && errno != EINTR) {
      throw_error(ErrorCategory::kPeerFailure, "poll: " + errno_text(errno));
    }
  }
}

void SyncLocalChannel::close_transport() {
  if (sock_.fd() >= 0) ::shutdown(sock_.fd(), SHUT_RDWR);
}

std::pair<net::Socket, net::Socket> local_socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw_error(ErrorCategory::kIo, "socketpair: " + errno_text(errno));
  }
  net::Socket a(fds[0]), b(fds[1]);
  // Room for a whole batch in the socket: a sender then hands a request over
  // in one call, without waiting for the reader (or waking its channel's
  // sending thread). SO_SNDBUFFORCE goes past net.core.wmem_max where
  // permitted; otherwise the kernel's cap applies (a performance matter only).
  const int bytes = static_cast<int>(kLocalSocketBufferBytes);
  for (const int fd : {a.fd(), b.fd()}) {
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0) {
      (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    }
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) {
      (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
    }
  }
  return {std::move(a), std::move(b)};
}

}  // namespace blindfold::backends
