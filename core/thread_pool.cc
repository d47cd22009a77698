#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BLINDFOLD_PAUSE() _mm_pause()
#else
#define BLINDFOLD_PAUSE() std::this_thread::yield()
#endif

namespace blindfold {

namespace {
thread_local bool t_in_task = false;
// How long the caller polls for workers to finish before yielding its core.
constexpr auto kSpin = ThreadPool::kDefaultSpin;
}  // namespace

ThreadPool::ThreadPool(unsigned threads, std::chrono::microseconds spin) : spin_(spin) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  size_ = threads;
  for (unsigned i = 1; i < size_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  for (auto& t : workers_) t.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool;
  return pool;
}

void ThreadPool::run_chunk(unsigned index) {
  const std::int64_t begin = job_n_ * index / job_chunks_;
  const std::int64_t end = job_n_ * (index + 1) / job_chunks_;
  t_in_task = true;
  try {
    (*job_)(begin, end);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = std::current_exception();
  }
  t_in_task = false;
}

void ThreadPool::worker_loop(unsigned index) {
  std::uint64_t seen = 0;
  for (;;) {
    // Poll first, then sleep. sleepers_ and generation_ are both sequentially
    // consistent, so either the caller sees this worker asleep and notifies,
    // or this worker sees the new generation before waiting.
    auto t0 = std::chrono::steady_clock::now();
    int polls = 0;
    while (generation_.load() == seen && !stop_.load()) {
      BLINDFOLD_PAUSE();
      if (++polls % 64 == 0 && std::chrono::steady_clock::now() - t0 > spin_) {
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1);
        cv_.wait(lock, [&] { return generation_.load() != seen || stop_.load(); });
        sleepers_.fetch_sub(1);
        break;
      }
    }
    if (stop_.load()) return;
    seen = generation_.load();
    if (index < job_chunks_) run_chunk(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(std::int64_t n,
                              const std::function<void(std::int64_t, std::int64_t)>& fn,
                              std::int64_t grain) {
  if (n <= 0) return;
  const std::int64_t max_chunks = std::max<std::int64_t>(1, n / std::max<std::int64_t>(1, grain));
  const unsigned chunks = static_cast<unsigned>(std::min<std::int64_t>(size_, max_chunks));
  if (chunks <= 1 || t_in_task) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mu_);
  job_ = &fn;
  job_n_ = n;
  job_chunks_ = chunks;
  error_ = nullptr;
  // Every worker sees the new generation; those with index >= chunks skip it.
  pending_.store(static_cast<unsigned>(workers_.size()));
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  run_chunk(0);
  const auto t0 = std::chrono::steady_clock::now();
  int polls = 0;
  while (pending_.load(std::memory_order_acquire) != 0) {
    BLINDFOLD_PAUSE();
    if (++polls % 64 == 0 && std::chrono::steady_clock::now() - t0 > kSpin) {
      std::this_thread::yield();
    }
  }
  job_ = nullptr;
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

}  // namespace blindfold
