// The channel between the tee client (the host in line) and the enclave
// process: a connected AF_UNIX socket pair. No confidentiality of its own:
// what runs over it is a tee::SealedChannel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "net/tcp.h"

namespace blindfold::backends {

/// A net::Channel over a connected AF_UNIX stream socket, synchronous: a
/// message's header and payload go to the kernel in one writev on the
/// caller's thread (no sending thread to wake), and reads poll on the
/// caller's thread until their deadline. For the request/response traffic
/// between the tee client (or host) and the enclave, where each side waits
/// for the other anyway. With `record`, keeps every byte written and read
/// (what crosses the enclave's boundary, for tests).
class SyncLocalChannel final : public net::Channel {
 public:
  /// Takes a connected stream socket (set to blocking here). @throws Error(kIo).
  explicit SyncLocalChannel(net::Socket socket, bool record = false);
  ~SyncLocalChannel() override;

  std::vector<std::uint8_t> recorded_written() const;
  std::vector<std::uint8_t> recorded_read() const;

 protected:
  void write_bytes(std::span<const std::uint8_t> data) override;
  void write_frame(std::span<const std::uint8_t> header,
                   std::span<const std::uint8_t> payload) override;
  void read_bytes(std::span<std::uint8_t> out, net::Clock::time_point deadline) override;
  void close_transport() override;

 private:
  void write_all(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);
  net::Socket sock_;
  const bool record_;
  mutable std::mutex record_mu_;
  std::vector<std::uint8_t> written_, read_;
};

/// Socket buffer size asked for on each end of a local_socket_pair().
inline constexpr std::size_t kLocalSocketBufferBytes = std::size_t{4} << 20;

/// A connected AF_UNIX stream socket pair, both ends close-on-exec, with
/// kLocalSocketBufferBytes buffers where the kernel allows.
/// @throws Error(kIo).
std::pair<net::Socket, net::Socket> local_socket_pair();

}  // namespace blindfold::backends
