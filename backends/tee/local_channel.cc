#include "backends/tee/local_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

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

LocalStreamChannel::LocalStreamChannel(net::Socket socket) : StreamChannel(std::move(socket)) {
  start_writer();
}

LocalStreamChannel::~LocalStreamChannel() {
  close_transport();
}

net::StreamChannel::IoResult LocalStreamChannel::stream_write(
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
    if (errno != EINTR) break;
  }
  const int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK) {
    r.wait = POLLOUT;
  } else if (net::is_disconnect_errno(err)) {
    r.error = "peer closed the connection (" + errno_text(err) + ")";
  } else {
    r.error = "send: " + errno_text(err);
  }
  return r;
}

net::StreamChannel::IoResult LocalStreamChannel::stream_read(std::span<std::uint8_t> out) {
  IoResult r;
  const ssize_t n = net::recv_some(sock_.fd(), out);
  if (n > 0) {
    r.n = static_cast<std::size_t>(n);
  } else if (n == 0) {
    r.eof = true;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
    r.wait = POLLIN;
  } else if (net::is_disconnect_errno(errno)) {
    r.error = "peer closed the connection (" + errno_text(errno) + ")";
  } else {
    r.error = "recv: " + errno_text(errno);
  }
  return r;
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
