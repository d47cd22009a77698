#include "backends/tee/host.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"

extern char** environ;

namespace blindfold::backends {

namespace fs = std::filesystem;

namespace {

std::string status_words(int st) {
  if (WIFEXITED(st)) return "exited with status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return "killed by signal " + std::to_string(WTERMSIG(st));
  return "ended (status " + std::to_string(st) + ")";
}

void set_blocking(int fd) {
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    throw_error(ErrorCategory::kIo, std::string("fcntl: ") + std::strerror(errno));
  }
}

}  // namespace

fs::path default_enclave_binary() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw_error(ErrorCategory::kIo, "cannot read /proc/self/exe: " + ec.message());
  return self.parent_path() / "blindfold-enclave";
}

fs::path default_platform_dir() {
  return fs::temp_directory_path() /
         ("blindfold-simulated-platform-" + std::to_string(static_cast<long>(::getuid())));
}

// ---- EnclaveProcess ----------------------------------------------------------

EnclaveProcess::EnclaveProcess(const EnclaveLaunch& launch, net::Socket socket) {
  std::error_code ec;
  if (!fs::is_regular_file(launch.binary, ec)) {
    throw_error(ErrorCategory::kUnsupported,
                "tee: the enclave binary " + launch.binary.string() +
                    " is missing (build the blindfold-enclave target; it must lie next to the "
                    "blindfold executable)");
  }
  // The socket becomes the child's fd 3. dup2 onto 3 clears close-on-exec;
  // first move it above 3 so that dup2 never maps a descriptor onto itself.
  const int high = ::fcntl(socket.fd(), F_DUPFD_CLOEXEC, 10);
  if (high < 0) throw_error(ErrorCategory::kIo, std::string("fcntl: ") + std::strerror(errno));
  net::Socket high_sock(high);
  socket.reset();

  std::vector<std::string> args = {launch.binary.string(),
                                   "--fd",
                                   "3",
                                   "--model",
                                   launch.model.string(),
                                   "--platform-dir",
                                   launch.platform_dir.string(),
                                   "--threads",
                                   std::to_string(launch.threads)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, high, 3);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, launch.binary.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    throw_error(ErrorCategory::kIo,
                "tee: cannot start " + launch.binary.string() + ": " + std::strerror(rc));
  }
  pid_ = pid;
}

EnclaveProcess::~EnclaveProcess() {
  stop(2000);
}

std::optional<std::string> EnclaveProcess::ended() {
  if (reaped_) return status_;
  if (pid_ <= 0) return std::string("not started");
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = status_words(st);
    return status_;
  }
  return std::nullopt;
}

void EnclaveProcess::stop(int ms) {
  if (pid_ <= 0 || reaped_) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!ended()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
      reaped_ = true;
      status_ = status_words(st);
      return;
    }
    ::usleep(5000);
  }
}

// ---- Relay -------------------------------------------------------------------

Relay::Relay(net::Socket client, net::Socket enclave, bool record)
    : client_(std::move(client)), enclave_(std::move(enclave)), record_(record) {
  set_blocking(client_.fd());
  set_blocking(enclave_.fd());
  up_ = std::thread([this] {
    pump(client_.fd(), enclave_.fd(), to_enclave_bytes_, record_ ? &rec_to_ : nullptr);
  });
  down_ = std::thread([this] {
    pump(enclave_.fd(), client_.fd(), from_enclave_bytes_, record_ ? &rec_from_ : nullptr);
  });
}

Relay::~Relay() {
  stop();
}

void Relay::pump(int from, int to, std::atomic<std::int64_t>& count,
                 std::vector<std::uint8_t>* rec) {
  // A whole batch per read where the sender was quick enough: one copy
  // and one wake-up of the other side per message.
  std::vector<std::uint8_t> buf(std::size_t{1} << 20);
  for (;;) {
    const ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // end of stream or an error: pass the end on
    if (rec) {
      std::lock_guard<std::mutex> lock(rec_mu_);
      rec->insert(rec->end(), buf.begin(), buf.begin() + n);
    }
    std::size_t off = 0;
    bool failed = false;
    while (off < static_cast<std::size_t>(n)) {
      const ssize_t w =
          ::send(to, buf.data() + off, static_cast<std::size_t>(n) - off, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        failed = true;
        break;
      }
      off += static_cast<std::size_t>(w);
    }
    count += n;
    if (failed) break;
  }
  (void)::shutdown(to, SHUT_WR);
  (void)::shutdown(from, SHUT_RD);
}

void Relay::join() {
  if (up_.joinable()) up_.join();
  if (down_.joinable()) down_.join();
}

void Relay::stop() {
  if (client_.valid()) (void)::shutdown(client_.fd(), SHUT_RDWR);
  if (enclave_.valid()) (void)::shutdown(enclave_.fd(), SHUT_RDWR);
  join();
}

std::vector<std::uint8_t> Relay::recorded_to_enclave() const {
  std::lock_guard<std::mutex> lock(rec_mu_);
  return rec_to_;
}

std::vector<std::uint8_t> Relay::recorded_from_enclave() const {
  std::lock_guard<std::mutex> lock(rec_mu_);
  return rec_from_;
}

}  // namespace blindfold::backends
