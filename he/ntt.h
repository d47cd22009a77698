// Negacyclic number-theoretic transform over Z_q[X]/(X^N + 1), N = 2^k with
// 1 <= k <= 17, for an NTT-friendly prime q = 1 (mod 2N) below 2^61: the map
// between a polynomial's coefficients and its values at the N primitive
// 2N-th roots of unity, under which negacyclic products become element-wise.
//
// Algorithms: the merged negacyclic transform of Longa and Naehrig 2016,
// "Speeding up the number theoretic transform for faster ideal lattice-based
// cryptography" (CANS 2016, Algorithms 1 and 2): Cooley-Tukey butterflies
// forward, Gentleman-Sande inverse, with powers of psi (a primitive 2N-th
// root) in bit-reversed order so no separate pre/post-multiplication by
// psi^i is needed; and Harvey 2014, "Faster arithmetic for number-theoretic
// transforms": Shoup multiplication by precomputed twiddles with lazy
// reduction (values kept in [0, 4q) forward, [0, 2q) inverse, corrected once
// at the end). The inverse merges the N^-1 scaling into its last stage.
//
// Ordering (the same convention as Microsoft SEAL): the forward transform
// takes coefficients in natural order and leaves the value at
// psi^(2*brv(i)+1) in slot i, where brv reverses the k low bits of i; the
// inverse takes that order back to natural coefficients.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "he/isa.h"
#include "he/modarith.h"

namespace blindfold::he {

/// Precomputed powers of psi for one (N, q). Immutable after construction, so
/// one table may be shared by any number of threads. Memory: 4N words.
class NttTables {
 public:
  static constexpr int kMaxLogN = 17;

  /// psi is the smallest primitive 2n-th root of unity mod q (deterministic;
  /// the same root SEAL picks). Throws Error(kBadInput) unless n = 2^k with
  /// 1 <= k <= 17, q is prime and q = 1 (mod 2n).
  NttTables(std::size_t n, const Modulus& q);

  std::size_t n() const noexcept { return n_; }
  int log_n() const noexcept { return log_n_; }
  const Modulus& modulus() const noexcept { return q_; }
  /// psi, the primitive 2n-th root of unity the transform evaluates at.
  std::uint64_t root() const noexcept { return root_; }

  /// [i] = psi^brv(i) for i in [0, n) (entry 0 is 1 and unused), and the
  /// Shoup constants of each.
  std::span<const std::uint64_t> root_powers() const noexcept { return root_powers_; }
  std::span<const std::uint64_t> root_powers_shoup() const noexcept { return root_powers_shoup_; }
  /// [i] = psi^-brv(i), the inverses of root_powers(), with Shoup constants.
  std::span<const std::uint64_t> inv_root_powers() const noexcept { return inv_root_powers_; }
  std::span<const std::uint64_t> inv_root_powers_shoup() const noexcept {
    return inv_root_powers_shoup_;
  }
  /// n^-1 mod q, and n^-1 * psi^-brv(1) mod q: the two factors of the
  /// inverse transform's merged last stage.
  std::uint64_t inv_n() const noexcept { return inv_n_; }
  std::uint64_t inv_n_shoup() const noexcept { return inv_n_shoup_; }
  std::uint64_t inv_n_root() const noexcept { return inv_n_root_; }
  std::uint64_t inv_n_root_shoup() const noexcept { return inv_n_root_shoup_; }

 private:
  std::size_t n_;
  int log_n_;
  Modulus q_;
  std::uint64_t root_;
  std::vector<std::uint64_t> root_powers_, root_powers_shoup_;
  std::vector<std::uint64_t> inv_root_powers_, inv_root_powers_shoup_;
  std::uint64_t inv_n_, inv_n_shoup_, inv_n_root_, inv_n_root_shoup_;
};

/// What range a transform leaves its output in.
enum class NttOutput {
  kReduced,  // [0, q)
  kLazy,     // forward: [0, 4q); inverse: [0, 2q) (saves the final pass when
             // the next operation accepts lazy inputs, e.g. another transform)
};

/// In place: coefficients in natural order, each in [0, 4q) -> values in
/// bit-reversed order (see the header comment). Throws Error(kBadInput) if
/// values.size() != tables.n(). Runs the fastest variant for this CPU and q.
void ntt_forward(std::span<std::uint64_t> values, const NttTables& tables,
                 NttOutput output = NttOutput::kReduced);

/// In place: values in bit-reversed order, each in [0, 2q) -> coefficients
/// in natural order, scaled by n^-1, so ntt_inverse(ntt_forward(a)) = a.
void ntt_inverse(std::span<std::uint64_t> values, const NttTables& tables,
                 NttOutput output = NttOutput::kReduced);

/// Whether `isa` can run these tables' transforms here: the CPU has it, and
/// for kAvx512Ifma also q < 2^50 (so 4q fits IFMA's 52-bit multiplier).
/// For n < 16 the vector variants run the scalar code.
bool ntt_isa_usable(Isa isa, const NttTables& tables) noexcept;

/// The variant ntt_forward/ntt_inverse choose: IFMA when usable (about twice
/// as fast), else AVX-512, else scalar.
Isa ntt_best_isa(const NttTables& tables) noexcept;

/// The transforms pinned to one variant, for tests and benchmarks. Throw
/// Error(kUnsupported) when !ntt_isa_usable(isa, tables).
void ntt_forward(std::span<std::uint64_t> values, const NttTables& tables, NttOutput output,
                 Isa isa);
void ntt_inverse(std::span<std::uint64_t> values, const NttTables& tables, NttOutput output,
                 Isa isa);

/// out = a * b in Z_q[X]/(X^n + 1), inputs and output coefficients in
/// [0, q), natural order: two forward transforms, an element-wise product,
/// one inverse. `out` may alias `a` or `b`. Throws Error(kBadInput) on sizes.
void negacyclic_multiply(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b,
                         const NttTables& tables, std::span<std::uint64_t> out);

/// i with its `bits` low bits reversed (bits in [0, 32]); the permutation of
/// the transform's output order.
std::uint32_t reverse_bits(std::uint32_t i, int bits) noexcept;

}  // namespace blindfold::he
