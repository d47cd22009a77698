// One small thread pool for the whole process: parallel loops over batch rows,
// RNS limbs or independent channels. Sized to the machine's cores by default.
// Thread-safe: parallel_for may be called from any thread (calls are
// serialised), and calls from inside a running task run inline (no nested
// parallelism, no deadlock).
//
// Workers spin briefly for new work before sleeping on a condition variable:
// on the VMs this project runs on, a condition-variable wake-up costs 70-90 µs,
// more than many of the kernels it would parallelise.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace blindfold {

class ThreadPool {
 public:
  /// How long idle workers poll for new work before sleeping, by default.
  static constexpr std::chrono::microseconds kDefaultSpin{100};

  /// `threads` = total workers including the caller; 0 means hardware cores.
  /// `spin`: how long an idle worker polls before it sleeps (longer keeps
  /// workers awake across the gaps between a server's back-to-back requests,
  /// at the price of that much CPU after the last one).
  explicit ThreadPool(unsigned threads = 0, std::chrono::microseconds spin = kDefaultSpin);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const noexcept { return size_; }

  /// Splits [0, n) into at most size() contiguous chunks and runs
  /// fn(begin, end) on each, the caller taking one. Runs inline when n is
  /// below `grain` or from inside a task. Rethrows the first exception.
  void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn,
                    std::int64_t grain = 1);

  /// The process-wide pool.
  static ThreadPool& global();

 private:
  void worker_loop(unsigned index);
  void run_chunk(unsigned index);

  unsigned size_;
  std::chrono::microseconds spin_;
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serialises parallel_for calls from different threads

  // Job description, written by the caller before generation_ is bumped.
  const std::function<void(std::int64_t, std::int64_t)>* job_ = nullptr;
  std::int64_t job_n_ = 0;
  unsigned job_chunks_ = 0;

  std::atomic<std::uint64_t> generation_{0};
  std::atomic<unsigned> pending_{0};
  std::atomic<unsigned> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;  // guards sleeping and error_
  std::condition_variable cv_;
  std::exception_ptr error_;
};

}  // namespace blindfold
