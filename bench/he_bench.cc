// he/ kernel benchmarks, single thread: negacyclic NTT (one prime) in each
// instruction-set variant, element-wise modular products, and fast RNS base
// conversion. Names carry the parameters: isa, N and the prime's bit size.
// build-he/bench/blindfold_he_bench --benchmark_filter=ntt_forward
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "he/modarith.h"
#include "he/ntt.h"
#include "he/primes.h"
#include "he/rns.h"

namespace {

using namespace blindfold::he;

std::vector<std::uint64_t> random_values(std::size_t n, std::uint64_t q, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> v(n);
  for (auto& x : v) x = rng() % q;
  return v;
}

// Args: {N, prime bits}.
void ntt(benchmark::State& state, Isa isa, bool forward) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto bits = static_cast<int>(state.range(1));
  const NttTables tables(n, Modulus(ntt_primes(bits, 1, n)[0]));
  if (!ntt_isa_usable(isa, tables)) {
    state.SkipWithError((std::string(isa_name(isa)) + " cannot run this modulus here").c_str());
    return;
  }
  std::vector<std::uint64_t> v = random_values(n, tables.modulus().value(), 1);
  for (auto _ : state) {
    if (forward) {
      ntt_forward(v, tables, NttOutput::kReduced, isa);
    } else {
      ntt_inverse(v, tables, NttOutput::kReduced, isa);
    }
    benchmark::DoNotOptimize(v.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

void BM_ntt_forward(benchmark::State& s, Isa isa) {
  ntt(s, isa, true);
}
void BM_ntt_inverse(benchmark::State& s, Isa isa) {
  ntt(s, isa, false);
}

#define BF_NTT_ARGS \
  ArgNames({"N", "bits"})->Args({8192, 60})->Args({16384, 60})->Args({8192, 40})->Args({16384, 40})
BENCHMARK_CAPTURE(BM_ntt_forward, scalar, Isa::kScalar)->BF_NTT_ARGS;
BENCHMARK_CAPTURE(BM_ntt_forward, avx512, Isa::kAvx512)->BF_NTT_ARGS;
BENCHMARK_CAPTURE(BM_ntt_forward, avx512ifma, Isa::kAvx512Ifma)
    ->ArgNames({"N", "bits"})
    ->Args({8192, 40})
    ->Args({16384, 40});
BENCHMARK_CAPTURE(BM_ntt_inverse, scalar, Isa::kScalar)->BF_NTT_ARGS;
BENCHMARK_CAPTURE(BM_ntt_inverse, avx512, Isa::kAvx512)->BF_NTT_ARGS;
BENCHMARK_CAPTURE(BM_ntt_inverse, avx512ifma, Isa::kAvx512Ifma)
    ->ArgNames({"N", "bits"})
    ->Args({8192, 40})
    ->Args({16384, 40});

// Element-wise a * b mod q (Barrett). Args: {N, prime bits}.
void BM_mul_mod(benchmark::State& state, Isa isa) {
  if (!isa_supported(isa)) {
    state.SkipWithError("unsupported here");
    return;
  }
  const auto n = static_cast<std::size_t>(state.range(0));
  const Modulus q(ntt_primes(static_cast<int>(state.range(1)), 1, n)[0]);
  const auto a = random_values(n, q.value(), 2);
  const auto b = random_values(n, q.value(), 3);
  std::vector<std::uint64_t> out(n);
  for (auto _ : state) {
    mul_mod(a, b, q, out, isa);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK_CAPTURE(BM_mul_mod, scalar, Isa::kScalar)->ArgNames({"N", "bits"})->Args({8192, 60});
BENCHMARK_CAPTURE(BM_mul_mod, avx512, Isa::kAvx512)->ArgNames({"N", "bits"})->Args({8192, 60});

// a * s mod q for a fixed s (Shoup). Args: {N, prime bits}.
void BM_mul_scalar_mod(benchmark::State& state, Isa isa) {
  if (!isa_supported(isa)) {
    state.SkipWithError("unsupported here");
    return;
  }
  const auto n = static_cast<std::size_t>(state.range(0));
  const Modulus q(ntt_primes(static_cast<int>(state.range(1)), 1, n)[0]);
  const auto a = random_values(n, q.value(), 4);
  std::vector<std::uint64_t> out(n);
  for (auto _ : state) {
    mul_scalar_mod(a, 0x123456789abcdefULL, q, out, isa);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK_CAPTURE(BM_mul_scalar_mod, scalar, Isa::kScalar)
    ->ArgNames({"N", "bits"})
    ->Args({8192, 60});
BENCHMARK_CAPTURE(BM_mul_scalar_mod, avx512, Isa::kAvx512)
    ->ArgNames({"N", "bits"})
    ->Args({8192, 60});

// a + b mod q (no Isa variants: the compiler vectorises it). Args: {N, bits}.
void BM_add_mod(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const Modulus q(ntt_primes(static_cast<int>(state.range(1)), 1, n)[0]);
  const auto a = random_values(n, q.value(), 5);
  const auto b = random_values(n, q.value(), 6);
  std::vector<std::uint64_t> out(n);
  for (auto _ : state) {
    add_mod(a, b, q, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_add_mod)->ArgNames({"N", "bits"})->Args({8192, 60});

// Fast base conversion of one polynomial from the {60, 40, 40} base to one
// 60-bit special prime (the ModUp of hybrid key switching at N = 8192).
// Args: {N, |Q|, |P|}.
void BM_fast_base_conversion(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto k = static_cast<std::size_t>(state.range(1));
  const auto l = static_cast<std::size_t>(state.range(2));
  std::vector<int> q_bits(k, 40), p_bits(l, 60);
  q_bits[0] = 60;
  std::vector<int> all = q_bits;
  all.insert(all.end(), p_bits.begin(), p_bits.end());
  const auto chain = ntt_prime_chain(n, all);
  const RnsBase from({chain.begin(), chain.begin() + static_cast<std::ptrdiff_t>(k)});
  const RnsBase to({chain.begin() + static_cast<std::ptrdiff_t>(k), chain.end()});
  const BaseConverter conv(from, to);
  std::vector<std::uint64_t> in(k * n), out(l * n);
  for (std::size_t i = 0; i < k; ++i) {
    const auto r = random_values(n, from[i].value(), 7 + i);
    std::copy(r.begin(), r.end(), in.begin() + static_cast<std::ptrdiff_t>(i * n));
  }
  for (auto _ : state) {
    conv.fast_convert(in, out, n);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_fast_base_conversion)
    ->ArgNames({"N", "Q", "P"})
    ->Args({8192, 3, 1})
    ->Args({16384, 7, 1});

}  // namespace
