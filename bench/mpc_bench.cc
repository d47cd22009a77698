// mpc/ benchmarks: ring_matmul on the shapes the MPC engine produces (conv
// layers lowered with im2col: (16, 25, 576*B) and (16, 400, 64*B); dense
// layers: (100, 256, B), (10, 100, B), (128, 784, B)), per kernel variant and
// single-threaded unless the name says "pool". Items are multiply-adds, so
// items_per_second is MAC/s.
// The FSS ReLU gate (mpc/fss.h), at gate widths 20, 32 and 64 bits (the
// cost is proportional to width - 1): dealer generation of 10k gates, one
// party's evaluation of 10k and 600k gates, and the bare DCF evaluation on
// width - 1 bits; items are gates. The 600k-gate evaluation holds about
// 2.5 GB of keys (at 64 bits) while it is set up.
// The FSS code and the "pool" matmul use ThreadPool::global(), so those
// report wall-clock time (UseRealTime); the single-threaded kernels report
// CPU time, steadier on a shared machine.
// build-ring/bench/blindfold_mpc_bench --benchmark_filter=ring_matmul
#include <benchmark/benchmark.h>

#include <cstdint>
#include <optional>
#include <span>
#include <random>
#include <string>
#include <vector>

#include "core/random.h"
#include "mpc/fss.h"
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
BENCHMARK_CAPTURE(ring_matmul_bench, auto_pool, MatmulKernel::kAuto, true)->Apply(matmul_shapes)->UseRealTime();

// ---- FSS -------------------------------------------------------------------

blindfold::Seed seed_of(std::uint8_t tag) {
  blindfold::Seed s{};
  s.fill(tag);
  return s;
}

// Args: {gates, bits}.
void relu_gate_gen_bench(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const int bits = static_cast<int>(state.range(1));
  blindfold::Prg prg0(seed_of(1)), prg1(seed_of(2));
  for (auto _ : state) {
    fss::ReluGateDealt dealt = fss::relu_gate_gen(count, bits, prg0, prg1);
    benchmark::DoNotOptimize(dealt.to_both.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(count));
}
BENCHMARK(relu_gate_gen_bench)
    ->ArgNames({"gates", "bits"})
    ->ArgsProduct({{10000}, {20, 32, 64}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Args: {gates, party, bits}: one party's ReluGateKey::eval, DReLU and ReLU
// both.
void relu_gate_eval_bench(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const int party = static_cast<int>(state.range(1));
  const int bits = static_cast<int>(state.range(2));
  blindfold::Prg d0(seed_of(1)), d1(seed_of(2));
  std::optional<fss::ReluGateKey> key;
  {
    const fss::ReluGateDealt dealt = fss::relu_gate_gen(count, bits, d0, d1);
    blindfold::Prg p(seed_of(party == 0 ? 1 : 2));
    key.emplace(fss::ReluGateKey::load(party, count, bits, p, dealt.to_both,
                                       party == 0 ? std::span<const std::uint8_t>() : dealt.to_party1));
  }
  const std::vector<u64> xhat = random_u64(count, 3);
  std::vector<u64> drelu(count), relu(count);
  for (auto _ : state) {
    key->eval(xhat, drelu, relu);
    benchmark::DoNotOptimize(drelu.data());
    benchmark::DoNotOptimize(relu.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(count));
}
BENCHMARK(relu_gate_eval_bench)
    ->ArgNames({"gates", "party", "bits"})
    ->ArgsProduct({{10000}, {0, 1}, {20, 32, 64}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
// Set-up takes seconds: few, fixed iterations so that it runs once.
BENCHMARK(relu_gate_eval_bench)
    ->ArgNames({"gates", "party", "bits"})
    ->ArgsProduct({{600000}, {1}, {20, 64}})
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Args: {gates, bits}: dcf_eval on bits - 1 (the ReLU gate's DCF), party 0.
void dcf_eval_bench(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const int dcf_bits = static_cast<int>(state.range(1)) - 1;
  std::vector<u64> alpha = random_u64(count, 4), x = random_u64(count, 5);
  for (auto& v : alpha) v >>= 64 - dcf_bits;
  for (auto& v : x) v >>= 64 - dcf_bits;
  const std::vector<u64> words = random_u64(6 * count, 6);
  std::vector<fss::Block> beta(count), root0(count), root1(count);
  for (std::size_t i = 0; i < count; ++i) {
    beta[i] = {words[6 * i], words[6 * i + 1]};
    root0[i] = {words[6 * i + 2], words[6 * i + 3]};
    root1[i] = {words[6 * i + 4], words[6 * i + 5]};
  }
  const fss::DcfCorrections cw = fss::dcf_gen(dcf_bits, alpha, beta, root0, root1);
  std::vector<fss::Block> out(count);
  for (auto _ : state) {
    fss::dcf_eval(0, cw, root0, x, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(count));
}
BENCHMARK(dcf_eval_bench)
    ->ArgNames({"gates", "bits"})
    ->ArgsProduct({{10000}, {20, 32, 64}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
