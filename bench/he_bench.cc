// he/ benchmarks, single thread: the kernels (negacyclic NTT of one prime in
// each instruction-set variant, element-wise modular products, fast RNS base
// conversion; names carry isa, N and the prime's bit size) and the CKKS
// operations at the two parameter sets (names carry N and the chain).
// build-he/bench/blindfold_he_bench --benchmark_filter=ntt_forward
#include <benchmark/benchmark.h>

#include <cmath>
#include <complex>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "he/encoder.h"
#include "he/encryptor.h"
#include "he/evaluator.h"
#include "he/keys.h"
#include "he/lincomb.h"
#include "he/modarith.h"
#include "he/ntt.h"
#include "he/primes.h"
#include "he/rns.h"
#include "he/sampling.h"
#include "he/serialize.h"

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

// lincomb (he/lincomb.h): m outputs from k inputs of n residues, the batch
// mode's per-limb matrix product. Items: scalar products (m k n).
// Args: {m, k, n, bits}; {100, 209, 4096, 48}: one task of fmnist-he's dense
// layer (a chunk of 208 inputs + the bias row, a quarter of N = 16384);
// {8, 26, 16384, 48}: one conv position.
void BM_lincomb(benchmark::State& state, Isa isa) {
  const auto m = static_cast<std::size_t>(state.range(0));
  const auto k = static_cast<std::size_t>(state.range(1));
  const auto n = static_cast<std::size_t>(state.range(2));
  const Modulus q(ntt_primes(static_cast<int>(state.range(3)), 1, 16384)[0]);
  if (!isa_supported(isa)) {
    state.SkipWithError("ISA not supported here");
    return;
  }
  std::vector<std::vector<std::uint64_t>> in(k), out(m, std::vector<std::uint64_t>(n));
  for (std::size_t j = 0; j < k; ++j) in[j] = random_values(n, q.value(), 10 + j);
  const auto w = random_values(m * k, q.value(), 7);
  std::vector<const std::uint64_t*> ip;
  for (auto& r : in) ip.push_back(r.data());
  std::vector<std::uint64_t*> op;
  for (auto& r : out) op.push_back(r.data());
  for (auto _ : state) {
    lincomb(ip, w, q, op, n, false, isa);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(m * k * n));
}
BENCHMARK_CAPTURE(BM_lincomb, scalar, Isa::kScalar)
    ->ArgNames({"m", "k", "n", "bits"})
    ->Args({100, 209, 4096, 48})
    ->Args({8, 26, 16384, 48});
BENCHMARK_CAPTURE(BM_lincomb, avx512ifma, Isa::kAvx512Ifma)
    ->ArgNames({"m", "k", "n", "bits"})
    ->Args({100, 209, 4096, 48})
    ->Args({8, 26, 16384, 48});

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

// ---- CKKS operations ------------------------------------------------------
// At the parameter sets, scale 2^40, top level, single thread:
// N=8192 {60,40,40|60} and N=16384 {60,40x6|60} (SEAL's {60,40,40,60} and
// {60,40,40,40,40,40,40,60}). The name's suffix carries the set.
namespace ckks {

struct Bench {
  explicit Bench(const CkksParameters& p)
      : ctx(CkksContext::create(p)),
        gen(ctx),
        pk(gen.create_public_key()),
        rk(gen.create_relin_keys()),
        gk(gen.create_galois_keys(std::vector<int>{1, 2, 3, 4}, false)),
        encoder(ctx),
        enc_pk(ctx, pk),
        enc_sk(ctx, gen.secret_key()),
        dec(ctx, gen.secret_key()),
        eval(ctx) {
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> d(-1, 1);
    values.resize(encoder.slots());
    for (auto& v : values) v = {d(rng), d(rng)};
    plain = encoder.encode(values, std::exp2(40));
    a = enc_pk.encrypt(plain);
    b = enc_pk.encrypt(plain);
  }
  std::shared_ptr<const CkksContext> ctx;
  KeyGenerator gen;
  PublicKey pk;
  RelinKeys rk;
  GaloisKeys gk;
  CkksEncoder encoder;
  Encryptor enc_pk, enc_sk;
  Decryptor dec;
  Evaluator eval;
  std::vector<std::complex<double>> values;
  Plaintext plain;
  Ciphertext a, b;
};

// The set by id: 8192 and 16384 are the sets; kHybrid16384 is
// N=16384 {60,40x6} with two special primes (digits of two primes, dnum=4:
// hybrid key switching proper, 420 bits <= 438).
constexpr int kHybrid16384 = 16385;

Bench& bench(int id) {
  static std::map<int, std::unique_ptr<Bench>> all;
  auto& b = all[id];
  if (!b) {
    CkksParameters p =
        id == 8192 ? CkksParameters::n8192_default() : CkksParameters::n16384_default();
    if (id == kHybrid16384) p.special_primes = 2;
    b = std::make_unique<Bench>(p);
  }
  return *b;
}

template <typename F>
void run(benchmark::State& state, int n, F&& f) {
  Bench& b = bench(n);
  for (auto _ : state) {
    auto r = f(b);
    benchmark::DoNotOptimize(r);
  }
}

void BM_ckks_encode(benchmark::State& s, int n) {
  run(s, n, [](Bench& b) { return b.encoder.encode(b.values, std::exp2(40)); });
}
void BM_ckks_decode(benchmark::State& s, int n) {
  run(s, n, [](Bench& b) { return b.encoder.decode(b.plain); });
}
void BM_ckks_encrypt_pk(benchmark::State& s, int n) {
  run(s, n, [](Bench& b) { return b.enc_pk.encrypt(b.plain); });
}
void BM_ckks_encrypt_sk(benchmark::State& s, int n) {
  run(s, n, [](Bench& b) { return b.enc_sk.encrypt(b.plain); });
}
void BM_ckks_decrypt(benchmark::State& s, int n) {
  run(s, n, [](Bench& b) { return b.dec.decrypt(b.a); });
}
void BM_ckks_add(benchmark::State& s, int n) {
  run(s, n, [](Bench& b) { return b.eval.add(b.a, b.b); });
}
void BM_ckks_multiply_plain(benchmark::State& s, int n) {
  run(s, n, [](Bench& b) { return b.eval.multiply_plain(b.a, b.plain); });
}
void BM_ckks_multiply(benchmark::State& s, int n) {
  run(s, n, [](Bench& b) { return b.eval.multiply(b.a, b.b); });
}
void BM_ckks_relinearize(benchmark::State& s, int n) {
  const Ciphertext m = bench(n).eval.multiply(bench(n).a, bench(n).b);
  run(s, n, [&](Bench& b) { return b.eval.relinearize(m, b.rk); });
}
void BM_ckks_rescale(benchmark::State& s, int n) {
  const Ciphertext m = bench(n).eval.multiply_plain(bench(n).a, bench(n).plain);
  run(s, n, [&](Bench& b) { return b.eval.rescale(m); });
}
void BM_ckks_mul_relin_rescale(benchmark::State& s, int n) {
  run(s, n,
      [](Bench& b) { return b.eval.rescale(b.eval.relinearize(b.eval.multiply(b.a, b.b), b.rk)); });
}
void BM_ckks_rotate_1(benchmark::State& s, int n) {
  run(s, n, [](Bench& b) { return b.eval.rotate(b.a, 1, b.gk); });
}
// Four rotations (1, 2, 3, 4) sharing one ModUp.
void BM_ckks_rotate_hoisted_x4(benchmark::State& s, int n) {
  const std::vector<int> steps = {1, 2, 3, 4};
  run(s, n, [&](Bench& b) { return b.eval.rotate_hoisted(b.a, steps, b.gk); });
}
void BM_ckks_keygen_secret_public(benchmark::State& s, int n) {
  run(s, n, [](Bench& b) {
    KeyGenerator g(b.ctx);
    return g.create_public_key();
  });
}
void BM_ckks_keygen_relin(benchmark::State& s, int n) {
  run(s, n, [](Bench& b) { return b.gen.create_relin_keys(); });
}
void BM_ckks_keygen_galois_1(benchmark::State& s, int n) {
  const std::vector<int> one = {1};
  run(s, n, [&](Bench& b) { return b.gen.create_galois_keys(one, false); });
}

// Serialized sizes (bytes), as counters: a full and a seeded (symmetric)
// ciphertext at the top level, the relinearization key, one Galois key.
void BM_ckks_serialized_sizes(benchmark::State& state, int n) {
  Bench& b = bench(n);
  const Ciphertext seeded = b.enc_sk.encrypt(b.plain);
  const std::vector<int> one = {1};
  const GaloisKeys g1 = b.gen.create_galois_keys(one, false);
  std::size_t total = 0;
  for (auto _ : state) {
    total = save(*b.ctx, b.a).size();
    benchmark::DoNotOptimize(total);
  }
  state.counters["ciphertext_full"] = static_cast<double>(save(*b.ctx, b.a).size());
  state.counters["ciphertext_seeded"] = static_cast<double>(save(*b.ctx, seeded).size());
  state.counters["relin_key"] = static_cast<double>(save(*b.ctx, b.rk).size());
  state.counters["galois_key"] = static_cast<double>(save(*b.ctx, g1).size());
}

// The same with both cores: the evaluator splits RNS limbs over a pool of 2.
blindfold::ThreadPool& pool2() {
  static blindfold::ThreadPool pool(2);
  return pool;
}
template <typename F>
void run2(benchmark::State& state, int n, F&& f) {
  Bench& b = bench(n);
  const Evaluator par(b.ctx, &pool2());
  for (auto _ : state) {
    auto r = f(b, par);
    benchmark::DoNotOptimize(r);
  }
}
void BM_ckks_2threads_multiply(benchmark::State& s, int n) {
  run2(s, n, [](Bench& b, const Evaluator& e) { return e.multiply(b.a, b.b); });
}
void BM_ckks_2threads_relinearize(benchmark::State& s, int n) {
  const Ciphertext m = bench(n).eval.multiply(bench(n).a, bench(n).b);
  run2(s, n, [&](Bench& b, const Evaluator& e) { return e.relinearize(m, b.rk); });
}
void BM_ckks_2threads_rescale(benchmark::State& s, int n) {
  const Ciphertext m = bench(n).eval.multiply_plain(bench(n).a, bench(n).plain);
  run2(s, n, [&](Bench&, const Evaluator& e) { return e.rescale(m); });
}
void BM_ckks_2threads_mul_relin_rescale(benchmark::State& s, int n) {
  run2(s, n, [](Bench& b, const Evaluator& e) {
    return e.rescale(e.relinearize(e.multiply(b.a, b.b), b.rk));
  });
}
void BM_ckks_2threads_rotate_1(benchmark::State& s, int n) {
  run2(s, n, [](Bench& b, const Evaluator& e) { return e.rotate(b.a, 1, b.gk); });
}

#define BF_CKKS(fn)                                                               \
  BENCHMARK_CAPTURE(fn, N8192_60_40_40_p60, 8192)->Unit(benchmark::kMicrosecond); \
  BENCHMARK_CAPTURE(fn, N16384_60_40x6_p60, 16384)->Unit(benchmark::kMicrosecond)
// Key switching with two special primes (hybrid, dnum = 4).
#define BF_CKKS_HYBRID(fn) \
  BENCHMARK_CAPTURE(fn, N16384_60_40x6_p60x2, kHybrid16384)->Unit(benchmark::kMicrosecond)

BF_CKKS(BM_ckks_encode);
BF_CKKS(BM_ckks_decode);
BF_CKKS(BM_ckks_encrypt_pk);
BF_CKKS(BM_ckks_encrypt_sk);
BF_CKKS(BM_ckks_decrypt);
BF_CKKS(BM_ckks_add);
BF_CKKS(BM_ckks_multiply_plain);
BF_CKKS(BM_ckks_multiply);
BF_CKKS(BM_ckks_relinearize);
BF_CKKS(BM_ckks_rescale);
BF_CKKS(BM_ckks_mul_relin_rescale);
BF_CKKS(BM_ckks_rotate_1);
BF_CKKS(BM_ckks_rotate_hoisted_x4);
BF_CKKS(BM_ckks_keygen_secret_public);
BF_CKKS(BM_ckks_keygen_relin);
BF_CKKS(BM_ckks_keygen_galois_1);
BF_CKKS(BM_ckks_serialized_sizes);
BF_CKKS_HYBRID(BM_ckks_encrypt_pk);
BF_CKKS_HYBRID(BM_ckks_relinearize);
BF_CKKS_HYBRID(BM_ckks_mul_relin_rescale);
BF_CKKS_HYBRID(BM_ckks_rotate_1);
BF_CKKS_HYBRID(BM_ckks_keygen_relin);
BF_CKKS_HYBRID(BM_ckks_serialized_sizes);
// Wall-clock time: the CPU time of the calling thread alone would flatter.
#define BF_CKKS_MT(fn)                                                                           \
  BENCHMARK_CAPTURE(fn, N8192_60_40_40_p60, 8192)->Unit(benchmark::kMicrosecond)->UseRealTime(); \
  BENCHMARK_CAPTURE(fn, N16384_60_40x6_p60, 16384)->Unit(benchmark::kMicrosecond)->UseRealTime()
BF_CKKS_MT(BM_ckks_2threads_multiply);
BF_CKKS_MT(BM_ckks_2threads_relinearize);
BF_CKKS_MT(BM_ckks_2threads_rescale);
BF_CKKS_MT(BM_ckks_2threads_mul_relin_rescale);
BF_CKKS_MT(BM_ckks_2threads_rotate_1);

// ---- batch mode's client and server I/O -------------------------------------
// fmnist-he's batch query: N = 16384, chain {50, 48 x 5} (one 60-bit special
// prime), input ciphertexts at the top level (6 limbs), scale 2^35, one real
// value per sample in 8192 slots. Per ciphertext, single thread: the client's
// encode, symmetric encrypt and seeded save, and the server's load (unpack,
// range check, re-expansion of c1 from the seed). A full query is 784 of each.
struct BatchIo {
  BatchIo()
      : ctx(CkksContext::create([] {
          CkksParameters p;
          p.n = 16384;
          p.chain_bits = {50, 48, 48, 48, 48, 48};
          return p;
        }())),
        gen(ctx),
        encoder(ctx),
        enc(ctx, gen.secret_key()) {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> d(0, 1);
    values.resize(encoder.slots());
    for (auto& v : values) v = d(rng);
    plain = encoder.encode(std::span<const double>(values), std::exp2(35), ctx->max_level());
    bytes = save(*ctx, enc.encrypt(plain));
  }
  std::shared_ptr<const CkksContext> ctx;
  KeyGenerator gen;
  CkksEncoder encoder;
  Encryptor enc;
  std::vector<double> values;
  Plaintext plain;
  std::vector<std::uint8_t> bytes;
};
BatchIo& batch_io() {
  static BatchIo b;
  return b;
}
void BM_batch_io_encode(benchmark::State& s) {
  BatchIo& b = batch_io();
  for (auto _ : s) {
    auto r = b.encoder.encode(std::span<const double>(b.values), std::exp2(35), b.ctx->max_level());
    benchmark::DoNotOptimize(r);
  }
}
void BM_batch_io_encrypt_sk(benchmark::State& s) {
  BatchIo& b = batch_io();
  for (auto _ : s) {
    auto r = b.enc.encrypt(b.plain);
    benchmark::DoNotOptimize(r);
  }
}
void BM_batch_io_save_seeded(benchmark::State& s) {
  BatchIo& b = batch_io();
  const Ciphertext ct = b.enc.encrypt(b.plain);
  for (auto _ : s) {
    auto r = save(*b.ctx, ct);
    benchmark::DoNotOptimize(r);
  }
  s.counters["bytes"] = static_cast<double>(b.bytes.size());
}
// What Client::encrypt does per ciphertext: encode + encrypt + save.
void BM_batch_io_client_ct(benchmark::State& s) {
  BatchIo& b = batch_io();
  for (auto _ : s) {
    const Plaintext pt =
        b.encoder.encode(std::span<const double>(b.values), std::exp2(35), b.ctx->max_level());
    auto r = save(*b.ctx, b.enc.encrypt(pt));
    benchmark::DoNotOptimize(r);
  }
}
// What Client::encrypt does since encrypt_coefficients: the encoder's FFT
// and rounding, then encrypt_coefficients (one NTT per prime) + save.
void BM_batch_io_client_ct_coefficients(benchmark::State& s) {
  BatchIo& b = batch_io();
  const std::size_t slots = b.encoder.slots();
  std::vector<std::complex<double>> u(slots);
  std::vector<std::int64_t> coeffs(b.ctx->n());
  for (auto _ : s) {
    for (std::size_t k = 0; k < slots; ++k) u[k] = {b.values[k], 0.0};
    b.encoder.fft_special_inverse(u);
    for (std::size_t k = 0; k < slots; ++k) {
      coeffs[k] = static_cast<std::int64_t>(std::nearbyint(u[k].real() * std::exp2(35)));
      coeffs[k + slots] = static_cast<std::int64_t>(std::nearbyint(u[k].imag() * std::exp2(35)));
    }
    auto r = save(*b.ctx, b.enc.encrypt_coefficients(coeffs, b.ctx->max_level(), std::exp2(35)));
    benchmark::DoNotOptimize(r);
  }
}
void BM_batch_io_encrypt_coefficients(benchmark::State& s) {
  BatchIo& b = batch_io();
  std::vector<std::int64_t> coeffs(b.ctx->n(), 12345);
  for (auto _ : s) {
    auto r = b.enc.encrypt_coefficients(coeffs, b.ctx->max_level(), std::exp2(35));
    benchmark::DoNotOptimize(r);
  }
}
void BM_batch_io_load_seeded(benchmark::State& s) {
  BatchIo& b = batch_io();
  for (auto _ : s) {
    auto r = load_ciphertext(*b.ctx, b.bytes);
    benchmark::DoNotOptimize(r);
  }
  s.SetBytesProcessed(s.iterations() * static_cast<std::int64_t>(b.bytes.size()));
}
// One limb of c1's re-expansion (OpenSSL's AES-256-CTR key stream and the
// rejection filter), 48-bit prime.
void BM_batch_io_expand_uniform(benchmark::State& s) {
  BatchIo& b = batch_io();
  std::vector<std::uint64_t> out(b.ctx->n());
  const blindfold::Seed seed{};
  for (auto _ : s) {
    expand_uniform(seed, kCiphertextStream + 1, b.ctx->modulus(1), out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_batch_io_encode)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_batch_io_encrypt_sk)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_batch_io_save_seeded)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_batch_io_client_ct)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_batch_io_client_ct_coefficients)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_batch_io_encrypt_coefficients)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_batch_io_load_seeded)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_batch_io_expand_uniform)->Unit(benchmark::kMicrosecond);

}  // namespace ckks
}  // namespace
