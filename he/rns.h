// Residue number system (RNS) arithmetic: an integer modulo Q = q_0 * ... *
// q_{k-1} (pairwise coprime words) is held as its k residues, so big-integer
// products become k independent word-sized ones. This file holds the base
// (with its CRT constants), exact composition and decomposition of big
// integers (used by decoders and tests), and the fast approximate base
// conversion of Bajard, Eynard, Hasan and Zucca 2016, "A full RNS variant of
// FV like somewhat homomorphic encryption schemes" (SAC 2016), also used by
// Halevi, Polyakov and Shoup 2019, "An improved RNS variant of the BFV
// homomorphic encryption scheme" (CT-RSA 2019). Hybrid key switching applies
// it to extend a digit of a ciphertext to the special primes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "he/isa.h"
#include "he/modarith.h"

namespace blindfold::he {

/// An RNS base {q_0, ..., q_{k-1}} with its CRT constants. Immutable; safe to
/// share between threads. Big integers here are little-endian arrays of
/// 64-bit words.
class RnsBase {
 public:
  /// Most moduli in one base: FastBConv sums k products below 2^122 in
  /// 128 bits, so k <= 64 keeps the sum exact.
  static constexpr std::size_t kMaxSize = 64;

  /// Throws Error(kBadInput) if `moduli` is empty, longer than kMaxSize, or
  /// not pairwise coprime.
  explicit RnsBase(std::vector<Modulus> moduli);

  std::size_t size() const noexcept { return moduli_.size(); }
  const Modulus& operator[](std::size_t i) const noexcept { return moduli_[i]; }
  std::span<const Modulus> moduli() const noexcept { return moduli_; }

  /// Q, size() words.
  std::span<const std::uint64_t> product() const noexcept { return product_; }
  /// Bit length of Q (what check_security wants for a full chain).
  int product_bits() const noexcept;
  /// Q / q_i, size() words.
  std::span<const std::uint64_t> punctured_product(std::size_t i) const noexcept {
    return {punctured_.data() + i * size(), size()};
  }
  /// (Q / q_i)^-1 mod q_i, and its Shoup constant.
  std::uint64_t inv_punctured(std::size_t i) const noexcept { return inv_punctured_[i]; }
  std::uint64_t inv_punctured_shoup(std::size_t i) const noexcept {
    return inv_punctured_shoup_[i];
  }

  /// residues[i] = value mod q_i, for a value of any number of words.
  /// Throws Error(kBadInput) unless residues.size() == size().
  void decompose(std::span<const std::uint64_t> value, std::span<std::uint64_t> residues) const;

  /// The x in [0, Q) with x = residues[i] mod q_i (residues in [0, q_i)), by
  /// CRT: x = sum_i [r_i * (Q/q_i)^-1]_{q_i} * (Q/q_i) mod Q. Writes size()
  /// words; throws Error(kBadInput) unless both spans have size() entries.
  void compose(std::span<const std::uint64_t> residues, std::span<std::uint64_t> value) const;

 private:
  std::vector<Modulus> moduli_;
  std::vector<std::uint64_t> product_;
  std::vector<std::uint64_t> punctured_;  // size() x size() words
  std::vector<std::uint64_t> inv_punctured_, inv_punctured_shoup_;
};

/// Fast base conversion from base Q = {q_i} to base P = {p_j} ("FastBConv"
/// of Bajard et al. 2016, also used by Halevi et al. 2019; the "ModUp" of
/// hybrid key switching, Han and Ki 2020, "Better bootstrapping for
/// approximate homomorphic encryption", CT-RSA 2020):
///     y_i = [x_i * (Q/q_i)^-1]_{q_i}
///     x'_j = sum_i y_i * [(Q/q_i) mod p_j]  mod p_j.
/// It skips the reduction mod Q: the result is x + alpha * Q mod p_j for one
/// integer alpha in [0, k) per coefficient (k = |Q|), the same alpha for
/// every p_j, where x in [0, Q) is the value the residues represent. Callers
/// either tolerate that (its effect is small next to the noise of key
/// switching) or correct it. Immutable; safe to share between threads.
class BaseConverter {
 public:
  BaseConverter(RnsBase from, RnsBase to);

  const RnsBase& from() const noexcept { return from_; }
  const RnsBase& to() const noexcept { return to_; }

  /// `in` holds from().size() rows of n coefficients (row i reduced mod q_i,
  /// values in [0, q_i)); `out` receives to().size() rows of n coefficients
  /// in [0, p_j). Throws Error(kBadInput) on sizes. `in` and `out` must not
  /// overlap.
  void fast_convert(std::span<const std::uint64_t> in, std::span<std::uint64_t> out,
                    std::size_t n) const;

 private:
  RnsBase from_;
  RnsBase to_;
  std::vector<std::uint64_t> matrix_;  // [j * |Q| + i] = (Q/q_i) mod p_j
};

}  // namespace blindfold::he
