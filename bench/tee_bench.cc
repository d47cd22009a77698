// tee/ benchmarks: the attested channel's sealed records (tee/channel.h) at
// the sizes the tee backend moves -- 200,783 bytes is a batch of 64
// Fashion-MNIST images as teewire frames them -- sealed by one SealedChannel
// and opened by its peer over an in-memory channel (net/memory.h, one memcpy
// per record), on the calling thread (threads:1) or on a pool of two
// (threads:2, wall-clock time). BM_Memcpy is the in-memory hand-off alone.
// This is the floor under the tee backend's per-query overhead: the request
// must be sealed by the client and opened by the enclave (docs/BENCHMARKS.md,
// "tee").
// build/bench/blindfold_tee_bench --benchmark_filter=Sealed
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "net/memory.h"
#include "tee/channel.h"

namespace {

using blindfold::ThreadPool;
using blindfold::tee::Bytes;
using blindfold::tee::SealedChannel;

// Args: {plaintext bytes, threads}.
void BM_SealedRecordSendAndOpen(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto threads = static_cast<unsigned>(state.range(1));
  auto [a, b] = blindfold::net::memory_pair();
  std::array<std::uint8_t, 32> k1{}, k2{};
  k1[0] = 1;
  k2[0] = 2;
  SealedChannel sender(*a, true, k1, k2), receiver(*b, false, k2, k1);
  std::unique_ptr<ThreadPool> pool;
  if (threads > 1) {
    pool = std::make_unique<ThreadPool>(threads, std::chrono::microseconds(2000));
    sender.set_pool(pool.get());
    receiver.set_pool(pool.get());
  }
  const Bytes plain(n, 0x5a);
  Bytes out;
  for (auto _ : state) {
    sender.send("req", plain);
    receiver.recv_into("req", out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(n));
}
BENCHMARK(BM_SealedRecordSendAndOpen)
    ->ArgNames({"bytes", "threads"})
    ->Args({200'783, 1})
    ->Args({200'783, 2})
    ->Args({2'633, 1})
    ->UseRealTime();

void BM_Memcpy(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint8_t> src(n, 1), dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(n));
}
BENCHMARK(BM_Memcpy)->ArgNames({"bytes"})->Arg(200'783);

}  // namespace
