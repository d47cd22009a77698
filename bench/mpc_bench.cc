// mpc/ benchmarks: ring_matmul on the shapes the MPC engine produces (conv
// layers lowered with im2col: (16, 25, 576*B) and (16, 400, 64*B); dense
// layers: (100, 256, B), (10, 100, B), (128, 784, B)), per kernel variant and
// single-threaded unless the name says "pool". Items are multiply-adds, so
// items_per_second is MAC/s.
// build-ring/bench/blindfold_mpc_bench --benchmark_filter=ring_matmul
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "mpc/ring.h"

namespace {

using namespace blindfold::mpc;
using detail::MatmulKernel;

std::vector<u64> random_u64(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<u64> v(n);
  for (auto& x : v) x = rng();
  return v;
}

// Args: {m, k, n}.
void ring_matmul_bench(benchmark::State& state, MatmulKernel kernel, bool pool) {
  if (!detail::matmul_kernel_supported(kernel)) {
    state.SkipWithError("kernel not supported by this CPU");
    return;
  }
  const auto m = static_cast<std::size_t>(state.range(0));
  const auto k = static_cast<std::size_t>(state.range(1));
  const auto n = static_cast<std::size_t>(state.range(2));
  const std::vector<u64> a = random_u64(m * k, 1), b = random_u64(k * n, 2);
  std::vector<u64> c(m * n);
  for (auto _ : state) {
    detail::ring_matmul_kernel(kernel, pool, a, b, c, m, k, n, false);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(m * k * n));
}

void matmul_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "k", "n"});
  for (std::int64_t batch : {1, 8, 64}) {
    b->Args({16, 25, 576 * batch});
    b->Args({16, 400, 64 * batch});
  }
  for (std::int64_t batch : {1, 4, 8, 12, 16, 64}) {
    b->Args({100, 256, batch});
    b->Args({10, 100, batch});
    b->Args({128, 784, batch});
  }
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(ring_matmul_bench, avx512, MatmulKernel::kAvx512, false)->Apply(matmul_shapes);
BENCHMARK_CAPTURE(ring_matmul_bench, vector, MatmulKernel::kVector, false)->Apply(matmul_shapes);
BENCHMARK_CAPTURE(ring_matmul_bench, portable, MatmulKernel::kPortable, false)->Apply(matmul_shapes);
BENCHMARK_CAPTURE(ring_matmul_bench, auto_pool, MatmulKernel::kAuto, true)->Apply(matmul_shapes);

}  // namespace
