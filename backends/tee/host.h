// The untrusted host's part of a tee deployment: it starts the enclave
// process (blindfold-enclave, built next to blindfold) and relays bytes
// between a client and the enclave. It never holds a session key: everything
// it relays after the handshake is tee::SealedChannel records. The relay can
// record what crosses, so a test can check that the host saw only ciphertext.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "net/tcp.h"

namespace blindfold::backends {

/// DIR/blindfold-enclave where DIR holds the running executable.
std::filesystem::path default_enclave_binary();
/// Where the simulated platform's key and certificate live when no
/// directory is given: TMPDIR/blindfold-simulated-platform-UID.
std::filesystem::path default_platform_dir();

struct EnclaveLaunch {
  std::filesystem::path binary;  // blindfold-enclave
  std::filesystem::path model;   // the ONNX file it loads and measures
  std::filesystem::path platform_dir;
  unsigned threads = 0;  // 0: all cores
};

/// A running enclave process serving one session on an inherited socket.
/// The destructor waits briefly for it to end (it does once its socket
/// closes) and then kills it; either way it is reaped.
class EnclaveProcess {
 public:
  /// Starts `launch.binary` with `socket` as its fd 3. @throws Error(kUnsupported)
  /// when the binary is missing, Error(kIo) when it cannot be started.
  EnclaveProcess(const EnclaveLaunch& launch, net::Socket socket);
  ~EnclaveProcess();
  EnclaveProcess(const EnclaveProcess&) = delete;
  EnclaveProcess& operator=(const EnclaveProcess&) = delete;

  pid_t pid() const { return pid_; }
  /// The exit status in words ("exited with status 1", "killed by signal 9")
  /// once it ended, else nullopt. Reaps it.
  std::optional<std::string> ended();
  /// Waits up to `ms` for it to end, then kills it (SIGKILL) and reaps it.
  void stop(int ms);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string status_;
};

/// Copies bytes both ways between `client` and `enclave` (two connected
/// stream sockets), one thread per direction; an end of stream on one side
/// is passed on as a shutdown of the other. Optionally records every byte.
class Relay {
 public:
  Relay(net::Socket client, net::Socket enclave, bool record);
  /// Shuts both sockets down and joins the threads.
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  /// Waits until both directions ended (each side closed or failed).
  void join();
  /// Shuts both sockets down (wakes the threads), then joins.
  void stop();

  std::int64_t bytes_to_enclave() const { return to_enclave_bytes_; }
  std::int64_t bytes_from_enclave() const { return from_enclave_bytes_; }
  /// What crossed so far, when recording (copies).
  std::vector<std::uint8_t> recorded_to_enclave() const;
  std::vector<std::uint8_t> recorded_from_enclave() const;

 private:
  void pump(int from, int to, std::atomic<std::int64_t>& count, std::vector<std::uint8_t>* rec);

  net::Socket client_, enclave_;
  bool record_;
  mutable std::mutex rec_mu_;
  std::vector<std::uint8_t> rec_to_, rec_from_;
  std::atomic<std::int64_t> to_enclave_bytes_{0}, from_enclave_bytes_{0};
  std::thread up_, down_;
};

}  // namespace blindfold::backends
