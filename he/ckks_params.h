// Parameters of an RNS-CKKS scheme (Cheon, Han, Kim, Kim and Song 2018, "A
// full RNS variant of approximate homomorphic encryption", SAC 2018): the ring
// degree, the bit sizes of the ciphertext modulus chain q_0 .. q_L, the special
// primes P of hybrid key switching (Han and Ki 2020, "Better bootstrapping for
// approximate homomorphic encryption", CT-RSA 2020) and how many digits a
// key-switching input is split into, the default scale, and the security level
// the HE Standard table (he/security.h) must certify. A plain value type; the
// checks happen once, in CkksContext::create.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "he/security.h"

namespace blindfold::he {

struct CkksParameters {
  /// Ring degree N: a power of two, 2^12 .. 2^16 for secure sets (the HE
  /// Standard refuses N < 1024 at any modulus); tests may go down to 8.
  std::size_t n = 0;
  /// Bit sizes of the chain primes q_0, ..., q_L, each in [2, 60] (the NTT's
  /// lazy reduction needs 4q < 2^62). A ciphertext at level l is held modulo
  /// q_0 * ... * q_l; rescaling at level l divides by q_l, so the middle
  /// primes are usually the size of the scale and q_0 larger (room for the
  /// decrypted message).
  std::vector<int> chain_bits;
  /// Number of special primes (P = p_0 * ... * p_{k-1}), at least 1.
  int special_primes = 1;
  /// Bit size of each special prime. Key-switching noise is about
  /// (largest digit / P) times the fresh noise, so P should be at least as
  /// large as each digit: 60, the largest, by default.
  int special_bits = 60;
  /// Digits of hybrid key switching (dnum): the chain primes are split into
  /// dnum groups of alpha = ceil((L + 1) / dnum) consecutive primes. 0 picks
  /// alpha = special_primes (the largest digits P can absorb); dnum = L + 1
  /// with one special prime is SEAL's per-prime decomposition.
  int dnum = 0;
  /// log2 of the default scale Delta of encoded messages.
  double log2_scale = 40;
  /// Classical security the parameters must reach (HE Standard, ternary
  /// secret, sigma = 3.2).
  SecurityLevel security = SecurityLevel::k128;

  /// The set of the benchmarks and SEAL's examples: N = 8192,
  /// chain {60, 40, 40}, one 60-bit special prime (SEAL's {60, 40, 40, 60}).
  static CkksParameters n8192_default();
  /// N = 16384, chain {60, 40 x 6}, one 60-bit special prime
  /// (SEAL's {60, 40, 40, 40, 40, 40, 40, 60}).
  static CkksParameters n16384_default();

  /// "N=8192 {60,40,40|60} dnum=3": for messages and benchmark labels.
  std::string describe() const;
};

}  // namespace blindfold::he
