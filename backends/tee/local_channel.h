// A net::Channel over a connected AF_UNIX stream socket (a socketpair between
// the tee client, the host relay and the enclave process): net's
// StreamChannel framing, sending thread and buffers, without TCP's socket
// options. No confidentiality of its own: what runs over it between client
// and enclave is a tee::SealedChannel.
#pragma once

#include <cstddef>
#include <utility>

#include "net/tcp.h"

namespace blindfold::backends {

class LocalStreamChannel final : public net::StreamChannel {
 public:
  /// Takes a connected stream socket (made non-blocking here). @throws Error(kIo).
  explicit LocalStreamChannel(net::Socket socket);
  ~LocalStreamChannel() override;

 protected:
  IoResult stream_write(std::span<const std::span<const std::uint8_t>> parts) override;
  IoResult stream_read(std::span<std::uint8_t> out) override;
};

/// Socket buffer size asked for on each end of a local_socket_pair().
inline constexpr std::size_t kLocalSocketBufferBytes = std::size_t{4} << 20;

/// A connected AF_UNIX stream socket pair, both ends close-on-exec, with
/// kLocalSocketBufferBytes buffers where the kernel allows.
/// @throws Error(kIo).
std::pair<net::Socket, net::Socket> local_socket_pair();

}  // namespace blindfold::backends
