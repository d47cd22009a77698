// The random polynomials of RLWE, all drawn from core/random's Prg (AES-256-CTR
// keyed by a seed that production code takes from the OS CSPRNG):
//   - uniform ternary {-1, 0, 1}: secret keys and the encryption mask u
//     (the HE Standard's "ternary" secret distribution);
//   - errors from a centred binomial distribution with k = 21: the sum of
//     21 random bits minus the sum of 21 others, variance k/2 = 10.5, i.e.
//     sigma = 3.24. The HE Standard's table assumes a discrete Gaussian of
//     sigma ~ 3.2 (variance 10.24); the binomial has at least that variance,
//     so the security estimate carries over, and it is sampled in constant
//     time (two popcounts of random words, no table lookups or branches on
//     secret data) with support bounded by 21 (no rare large samples). Its
//     tails are lighter than a Gaussian's, which only helps correctness;
//   - uniform residues mod each prime, expanded from a 32-byte seed (the `a`
//     of public keys, key-switching keys and symmetric ciphertexts), so that
//     the polynomial can be stored as its seed. Row i of the expansion uses
//     Prg stream (`stream_base` + key-basis index of its prime), so a row
//     does not depend on how many other rows are expanded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/random.h"
#include "he/modarith.h"

namespace blindfold::he {

/// Error distribution parameter: centred binomial with k = 21.
inline constexpr int kCbdK = 21;

/// out[i] uniform in {-1, 0, 1} (rejection from bytes: b < 255, b mod 3).
void sample_ternary(Prg& prg, std::span<std::int8_t> out);

/// out[i] from the centred binomial distribution of parameter kCbdK, in
/// [-21, 21], variance 10.5.
void sample_cbd(Prg& prg, std::span<std::int8_t> out);

/// out[i] = small[i] mod q (small values in (-q, q)).
void small_to_residues(std::span<const std::int8_t> small, const Modulus& q,
                       std::span<std::uint64_t> out);

/// out[i] = v[i] mod q in [0, q), for any v[i] (Barrett reduction of |v[i]|
/// and a negation, branch-free).
void signed_to_residues(std::span<const std::int64_t> v, const Modulus& q,
                        std::span<std::uint64_t> out);
/// The same for |v[i]| < q (an encoded message plus error, usually): one
/// conditional add, vectorised.
void small_signed_to_residues(std::span<const std::int64_t> v, const Modulus& q,
                              std::span<std::uint64_t> out);

/// out uniform in [0, q) from Prg(seed, stream): 64-bit words masked to q's
/// bit length, rejected when >= q (acceptance > 1/2, in practice ~1 for NTT
/// primes just below a power of two).
/// The AES-256-CTR key stream is OpenSSL's (EVP, in large chunks), the only
/// AES here: symmetric crypto comes from OpenSSL or libsodium, never
/// home-made. Only the rejection filter has an AVX-512 path (vpcompressq),
/// chosen at run time; it selects the same words.
void expand_uniform(const Seed& seed, std::uint64_t stream, const Modulus& q,
                    std::span<std::uint64_t> out);

/// Overwrites memory in a way the compiler may not elide (secrets and their
/// temporaries are wiped before release).
void secure_wipe(void* data, std::size_t bytes) noexcept;
template <typename T>
void secure_wipe(std::span<T> s) noexcept {
  secure_wipe(static_cast<void*>(s.data()), s.size_bytes());
}

}  // namespace blindfold::he
