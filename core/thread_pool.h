// One small thread pool for the whole process: parallel loops over batch rows,
// RNS limbs or independent channels. Sized to the machine's cores by default.
// Thread-safe: parallel_for may be called from any thread, but calls from
// inside a running task run inline (no nested parallelism, no deadlock).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace blindfold {

class ThreadPool {
 public:
  /// `threads` = total workers including the caller; 0 means hardware cores.
  explicit ThreadPool(unsigned threads = 0);
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

  unsigned size_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_work_;
  std::condition_variable cv_done_;
  std::mutex call_mu_;  // serialises parallel_for calls from different threads
  const std::function<void(std::int64_t, std::int64_t)>* job_ = nullptr;
  std::int64_t job_n_ = 0;
  unsigned job_chunks_ = 0;
  std::uint64_t generation_ = 0;
  unsigned pending_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace blindfold
