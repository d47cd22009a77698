// Ring kernels over Z_2^64 (mpc/ layer 1 of 3: kernels -> protocols ->
// engine). Spans in, spans out; no parties, no network, no randomness.
// Every operation wraps modulo 2^64 (unsigned arithmetic), which is exactly
// the ring of the additive and replicated secret sharings built on top.
//
// Fixed point: a real v is encoded as round(v * 2^f) in two's complement,
// i.e. the signed integer reinterpreted as uint64. Decoding reinterprets as
// int64 and divides by 2^f. f is the protocol's `frac_bits` (default 12, see
// docs/MPC.md for the accuracy measurements behind it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace blindfold::mpc {

using u64 = std::uint64_t;

/// out[i] = a[i] + b[i]   (out may alias a or b)
void ring_add(std::span<const u64> a, std::span<const u64> b, std::span<u64> out);
/// out[i] = a[i] - b[i]
void ring_sub(std::span<const u64> a, std::span<const u64> b, std::span<u64> out);
/// out[i] = -a[i]
void ring_neg(std::span<const u64> a, std::span<u64> out);
/// out[i] = a[i] * b[i]
void ring_mul(std::span<const u64> a, std::span<const u64> b, std::span<u64> out);
/// out[i] = a[i] * c
void ring_mul_scalar(std::span<const u64> a, u64 c, std::span<u64> out);
/// acc[i] += a[i] * b[i]
void ring_mul_acc(std::span<const u64> a, std::span<const u64> b, std::span<u64> acc);
/// out[i] = a[idx[i]]; every idx[i] < a.size() (checked; throws kInternal).
void ring_gather(std::span<const u64> a, std::span<const std::uint32_t> idx, std::span<u64> out);

/// Arithmetic (sign-preserving) right shift of each element read as int64:
/// out[i] = (u64)((int64)a[i] >> bits).
void ring_sar(std::span<const u64> a, int bits, std::span<u64> out);

/// C (m x n) = A (m x k) * B (k x n), all row-major, modulo 2^64. C must not
/// alias A or B. `accumulate`: C += A*B instead of C = A*B. Cache-blocked and
/// vectorised (AVX-512 vpmullq when the CPU has it, chosen at run time;
/// AVX2 / portable otherwise); parallel over rows of C through
/// ThreadPool::global() when large enough.
void ring_matmul(std::span<const u64> a, std::span<const u64> b, std::span<u64> c, std::size_t m,
                 std::size_t k, std::size_t n, bool accumulate = false);

/// Fixed-point encode: out[i] = round(v[i] * 2^frac_bits) as two's complement.
/// Values whose encoding does not fit in int64 throw Error(kBadInput) naming
/// the index (NaN and infinities too).
void fxp_encode(std::span<const float> v, int frac_bits, std::span<u64> out);
/// Fixed-point decode: out[i] = (int64)a[i] / 2^frac_bits.
void fxp_decode(std::span<const u64> a, int frac_bits, std::span<float> out);
/// One value.
u64 fxp_encode1(double v, int frac_bits);
double fxp_decode1(u64 a, int frac_bits);

namespace detail {

/// The kernels behind ring_matmul, exposed so that tests and benchmarks can
/// run each one on any machine that supports it.
///  - kPortable: the plain i-p-j loop (whatever the compiler makes of it).
///  - kVector: register-blocked GCC vector code for the build's target ISA
///    (AVX2 with the default -march=x86-64-v3).
///  - kAvx512: the same blocking with 512-bit vectors and vpmullq, compiled
///    for AVX-512 F+DQ+VL and used only where the CPU has them.
/// kAuto is what ring_matmul uses: kAvx512 where supported, else kVector.
enum class MatmulKernel { kAuto, kPortable, kVector, kAvx512 };

/// Whether this CPU can run `kernel` (kAuto, kPortable, kVector: always).
bool matmul_kernel_supported(MatmulKernel kernel) noexcept;
/// "auto", "portable", "vector", "avx512".
const char* matmul_kernel_name(MatmulKernel kernel) noexcept;

/// ring_matmul with a chosen kernel; `parallel` false keeps it on the
/// calling thread. Throws Error(kUnsupported) for a kernel this CPU lacks.
void ring_matmul_kernel(MatmulKernel kernel, bool parallel, std::span<const u64> a,
                        std::span<const u64> b, std::span<u64> c, std::size_t m, std::size_t k,
                        std::size_t n, bool accumulate);

}  // namespace detail

}  // namespace blindfold::mpc
