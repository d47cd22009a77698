// Security of RLWE parameters: the HomomorphicEncryption.org standard's table
// of the largest modulus Q*P (in bits) for each ring degree N and classical
// security level, for ternary secrets and error of standard deviation 3.2
// (Albrecht et al., "Homomorphic Encryption Security Standard", v1.1, 2018,
// Table 1; the same values as SEAL's util/hestdparms.h). Every CKKS context is
// checked against it once, at construction, and refuses to build on failure.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace blindfold::he {

enum class SecurityLevel { k128 = 128, k192 = 192, k256 = 256 };

struct SecurityBound {
  std::size_t n;
  int max_log_qp[3];  // 128, 192, 256 bits
  bool in_standard;   // false: beyond the standard's table (see below)
};

/// Ternary secret, classical security. N = 1024 .. 32768 are the standard's
/// Table 1. The standard stops at 32768; the N = 65536 row (1772 / 1228 /
/// 956 bits) is OpenFHE's extension of the same table, computed by its
/// authors with the lattice estimator for the same distributions
/// (openfhe-development, src/core/lib/lattice/stdlatticeparms.cpp). It is
/// marked in_standard = false and is consistent with the standard's rows:
/// from N = 8192 up each doubling of N slightly more than doubles the bound
/// (218 -> 438 -> 881 -> 1772 at 128 bits).
inline constexpr std::array<SecurityBound, 7> kHeStandardTernary = {{
    {1024, {27, 19, 14}, true},
    {2048, {54, 37, 29}, true},
    {4096, {109, 75, 58}, true},
    {8192, {218, 152, 118}, true},
    {16384, {438, 305, 237}, true},
    {32768, {881, 611, 476}, true},
    {65536, {1772, 1228, 956}, false},
}};

/// Index of the table row for ring degree n, or -1 when there is none.
/// (Indices, not pointers: GCC's UBSan instrumentation makes pointer
/// comparisons non-constant.)
constexpr int security_row(std::size_t n) noexcept {
  for (std::size_t i = 0; i < kHeStandardTernary.size(); ++i) {
    if (kHeStandardTernary[i].n == n) return static_cast<int>(i);
  }
  return -1;
}

/// Whether n's bound is the HE Standard's own (false for 65536 and for
/// degrees not in the table).
constexpr bool in_he_standard(std::size_t n) noexcept {
  const int row = security_row(n);
  return row >= 0 && kHeStandardTernary[static_cast<std::size_t>(row)].in_standard;
}

constexpr int level_index(SecurityLevel level) noexcept {
  switch (level) {
    case SecurityLevel::k128: return 0;
    case SecurityLevel::k192: return 1;
    case SecurityLevel::k256: return 2;
  }
  return 0;
}

/// Largest log2(Q*P) allowed for ring degree n at `level`; 0 when n is not
/// in the table (every modulus is then refused).
constexpr int max_log_qp(std::size_t n, SecurityLevel level) noexcept {
  const int row = security_row(n);
  return row < 0 ? 0
                 : kHeStandardTernary[static_cast<std::size_t>(row)].max_log_qp[level_index(level)];
}

/// Why a parameter set is (in)secure, in the manner of SEAL's error_type.
enum class SecurityCheck {
  kOk,
  kDegreeNotPowerOfTwo,  // N is not a power of two
  kDegreeTooSmall,       // N < 1024: no modulus is secure
  kDegreeTooLarge,       // N > 65536: beyond the table
  kNoModulus,            // total_bits <= 0
  kModulusTooLarge,      // log2(Q*P) above the table's bound for N
};

/// Checks ring degree n and total_bits = the bit length of Q*P (all primes,
/// special primes included) against the table. Passing the sum of the
/// primes' bit lengths instead is conservative (it is never smaller).
constexpr SecurityCheck check_security(std::size_t n, int total_bits,
                                       SecurityLevel level) noexcept {
  if (n == 0 || (n & (n - 1)) != 0) return SecurityCheck::kDegreeNotPowerOfTwo;
  if (n < kHeStandardTernary.front().n) return SecurityCheck::kDegreeTooSmall;
  if (n > kHeStandardTernary.back().n) return SecurityCheck::kDegreeTooLarge;
  if (total_bits <= 0) return SecurityCheck::kNoModulus;
  if (total_bits > max_log_qp(n, level)) return SecurityCheck::kModulusTooLarge;
  return SecurityCheck::kOk;
}

/// One line for an error message.
constexpr std::string_view describe(SecurityCheck c) noexcept {
  switch (c) {
    case SecurityCheck::kOk: return "secure";
    case SecurityCheck::kDegreeNotPowerOfTwo: return "ring degree is not a power of two";
    case SecurityCheck::kDegreeTooSmall:
      return "ring degree below 1024: no modulus is secure (HE Standard)";
    case SecurityCheck::kDegreeTooLarge: return "ring degree above 65536 is not supported";
    case SecurityCheck::kNoModulus: return "no coefficient modulus";
    case SecurityCheck::kModulusTooLarge:
      return "log2(Q*P) exceeds the HE Standard's bound for this ring degree and security level";
  }
  return "unknown";
}

}  // namespace blindfold::he
