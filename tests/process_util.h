// Child processes of the multi-process tests (tests/he_serve_test.cc,
// tests/mpc_party_test.cc): the `blindfold` binary spawned with its output in
// files, waited for with a deadline, killed by its own pid; free loopback
// ports, per-suite and per-test directories; and the small helpers both tests
// read that output with.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace blindfold::testutil {

/// The whole file (empty when it cannot be read).
std::string slurp(const std::string& path);

/// The number of '\n' in `s`.
int count_lines(const std::string& s);

/// The arg max of each row of `y` (rows along its last dimension).
std::vector<std::int64_t> argmax_rows(const Tensor& y);

/// What a command printed and how it ended.
struct CommandResult {
  int code = -1;  // the exit status; 128 when it did not exit normally
  std::string out, err;
};

/// Runs `bin args` through the shell, its stdout and stderr in DIR/stdout and
/// DIR/stderr (DIR created), and waits for it.
CommandResult run_command(const std::string& bin, const std::string& args,
                          const std::filesystem::path& dir);

/// A fresh directory for one test suite's files: TMP/PREFIX_PID, created.
std::filesystem::path make_suite_dir(const std::string& prefix);

/// The running test's name with '/' replaced by '_' (parameterised tests are
/// "Name/0"), to name its files and directories by.
std::string test_file_name();

/// `n` distinct free loopback ports (each bound to port 0, read back, and
/// released only after all are read, so they differ).
std::vector<int> free_ports(int n);

/// The child processes of one test. Each runs `bin` with its stdout and
/// stderr in DIR/NAME.out and DIR/NAME.err; whatever is still running when
/// this ends is killed (by its own pid) and reaped. Not thread-safe.
class Procs {
 public:
  Procs(std::string bin, std::filesystem::path dir);
  ~Procs();
  Procs(const Procs&) = delete;
  Procs& operator=(const Procs&) = delete;

  /// Starts the binary with `args`; throws std::runtime_error if it cannot.
  pid_t start(const std::string& name, const std::vector<std::string>& args);
  /// Exit code, or -1 when it has not ended within `timeout` (it is then
  /// killed), or 128 + signal.
  int wait(pid_t pid, std::chrono::milliseconds timeout);
  /// SIGKILL, without reaping (wait() does).
  void kill9(pid_t pid);
  std::string out(const std::string& name) const;
  std::string err(const std::string& name) const;
  /// Waits until DIR/FILE contains `needle`; false after `timeout`.
  bool wait_for(const std::string& file, const std::string& needle,
                std::chrono::milliseconds timeout) const;

 private:
  void forget(pid_t pid);
  std::string bin_;
  std::filesystem::path dir_;
  std::vector<pid_t> pids_;
};

/// The fixture of a multi-process test suite, instantiated with the suite's
/// own class so that each suite keeps its own directory. The suite's
/// SetUpTestSuite calls start_suite(); the directory is removed when the
/// suite ends. Each test gets DIR/<test name> (dir_) and a Procs running the
/// suite's binary there (procs_).
template <typename Suite>
class ProcessSuite : public ::testing::Test {
 protected:
  static void start_suite(const std::string& prefix, const std::string& bin) {
    suite_dir_ = make_suite_dir(prefix);
    bin_ = bin;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    std::filesystem::remove_all(suite_dir_, ec);
  }
  void SetUp() override {
    dir_ = suite_dir_ / test_file_name();
    std::filesystem::create_directories(dir_);
    procs_ = std::make_unique<Procs>(bin_, dir_);
  }
  void TearDown() override { procs_.reset(); }

  static inline std::filesystem::path suite_dir_;
  static inline std::string bin_;
  std::filesystem::path dir_;
  std::unique_ptr<Procs> procs_;
};

}  // namespace blindfold::testutil
