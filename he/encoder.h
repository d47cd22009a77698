// The CKKS encoder: N/2 complex numbers (slots) <-> a real polynomial of
// degree < N scaled by Delta and rounded (Cheon, Kim, Kim and Song 2017,
// "Homomorphic encryption for arithmetic of approximate numbers", ASIACRYPT
// 2017, section 3.2: the inverse of the canonical embedding).
//
// Slot j is the polynomial's value at zeta^(5^j), zeta = exp(2 pi i / 2N),
// j = 0 .. N/2 - 1; the other N/2 roots zeta^(-5^j) carry the conjugates,
// which makes the polynomial real. With this ordering the Galois map
// X -> X^(5^k) rotates the slots left by k (slot j receives slot j + k) and
// X -> X^(2N-1) conjugates them. Both directions use the O(N log N) "special
// FFT" of the HEAAN library (Cheon et al.), a radix-2 FFT over the 5^j-ordered
// roots, instead of the O(N^2) Vandermonde product.
#pragma once

#include <complex>
#include <memory>
#include <span>
#include <vector>

#include "he/ciphertext.h"
#include "he/context.h"

namespace blindfold::he {

/// round(value) mod q for a double of any magnitude: below 2^63 through an
/// int64, above through its 53-bit mantissa times a power of two. Used for
/// scalars as well as coefficients. value must be finite.
std::uint64_t rounded_residue(double value, const Modulus& q);

class CkksEncoder {
 public:
  explicit CkksEncoder(std::shared_ptr<const CkksContext> context);

  const CkksContext& context() const noexcept { return *context_; }
  std::size_t slots() const noexcept { return slots_; }

  /// Encodes up to slots() values (the rest are zero) at `scale` into a
  /// plaintext at `level` (0 .. max_level), in NTT form. Each coefficient is
  /// round(Delta * m_k) reduced modulo every prime. Throws Error(kBadInput)
  /// for too many values, a level out of range, a non-finite or non-positive
  /// scale, non-finite values, or coefficients too large for the level's
  /// modulus (|coefficient| must stay below Q_level / 4: room for the noise).
  Plaintext encode(std::span<const std::complex<double>> values, double scale, int level) const;
  Plaintext encode(std::span<const double> values, double scale, int level) const;
  /// At the top level.
  Plaintext encode(std::span<const std::complex<double>> values, double scale) const;
  Plaintext encode(std::span<const double> values, double scale) const;

  /// The slots() values of a plaintext. The coefficients are composed
  /// exactly from all level + 1 residues (big-integer CRT), centred in
  /// (-Q/2, Q/2], then converted to double: the result is exact up to
  /// double rounding whatever the level. Throws Error(kBadInput) for a
  /// plaintext of another context.
  std::vector<std::complex<double>> decode(const Plaintext& plain) const;

  /// The special FFT itself, in place, on slots() values (exposed for
  /// tests): decode direction (coefficients -> slots) and its inverse.
  void fft_special(std::span<std::complex<double>> values) const;
  void fft_special_inverse(std::span<std::complex<double>> values) const;

 private:
  std::shared_ptr<const CkksContext> context_;
  std::size_t slots_;
  std::vector<std::complex<double>> twiddles_;  // [lenh + j]: stage with half-length lenh
  std::vector<std::uint32_t> bit_reverse_;
};

}  // namespace blindfold::he
