// NTT-friendly primes and roots of unity, generated deterministically so that
// two parties (or two runs) given the same parameters derive the same chain:
// primes q = 1 (mod 2N) of a given bit size searched downward from 2^bits (as
// SEAL's CoeffModulus::Create does), primality by a Miller-Rabin test that is
// deterministic for every 64-bit integer, and the smallest primitive 2N-th
// root of unity (the root SEAL's NTT tables use).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "he/modarith.h"

namespace blindfold::he {

/// Largest bit size of a generated prime: 60 bits leaves headroom for lazy
/// reduction (4q < 2^62) and matches SEAL's limit.
inline constexpr int kMaxPrimeBits = 60;

/// Whether n is prime, for every 64-bit n. Miller-Rabin with the first
/// twelve prime bases 2, 3, ..., 37, which has no strong pseudoprime below
/// 3.18 * 10^23 > 2^64 (Jiang and Deng 2014, "Strong pseudoprimes to twelve
/// prime bases", Math. Comp. 83), so the answer is exact, not probabilistic.
bool is_prime(std::uint64_t n) noexcept;

/// The `count` largest primes q with 2^(bits-1) < q < 2^bits and
/// q = 1 (mod 2n), in decreasing order. n must be a power of two >= 1 and
/// bits in [2, 60]. Throws Error(kBadInput) on other arguments or when fewer
/// than `count` such primes exist.
std::vector<std::uint64_t> ntt_primes(int bits, std::size_t count, std::size_t n);

/// A chain of distinct NTT-friendly primes for degree n, one per entry of
/// `bit_sizes`, in the order given; equal sizes take successive primes of
/// ntt_primes (SEAL's CoeffModulus::Create). Throws as ntt_primes.
std::vector<Modulus> ntt_prime_chain(std::size_t n, std::span<const int> bit_sizes);

/// Whether root^degree = 1 and root^(degree/2) = -1 mod q, i.e. root has
/// multiplicative order exactly `degree`, for `degree` a power of two >= 2.
bool is_primitive_root(std::uint64_t root, std::uint64_t degree, const Modulus& q) noexcept;

/// The smallest primitive `degree`-th root of unity mod the prime q, for
/// `degree` a power of two >= 2 dividing q - 1. Deterministic: it takes
/// x^((q-1)/degree) for x = 2, 3, ... until one has order `degree`, then the
/// least of that root's odd powers (which are all the primitive roots).
/// Throws Error(kBadInput) if q is not prime or degree does not divide q - 1.
std::uint64_t minimal_primitive_root(std::uint64_t degree, const Modulus& q);

}  // namespace blindfold::he
