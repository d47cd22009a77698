// CKKS encryption and decryption (Cheon, Kim, Kim and Song 2017, section 3.4,
// in the RNS form of Cheon, Han, Kim, Kim and Song 2018):
//   - public key:  (c0, c1) = (round((u b + e0) / P) + m, round((u a + e1) / P))
//     computed modulo Q_l * P and divided by the special primes P (as SEAL
//     does), u uniform ternary, e0, e1 centred binomial (he/sampling.h);
//   - secret key:  (c0, c1) = (-a s + e + m, a), a expanded from a fresh seed,
//     so the ciphertext can be stored as (c0, seed): half size;
//   - decryption:  m' = c0 + c1 s (+ c2 s^2 for an unrelinearized product).
// Fresh-ciphertext error: decrypt(encrypt(m)) - m has coefficients of
// standard deviation about sqrt((1 + 2N/3) / 12) (public key: the rounding of
// the division by P; ~ 21 at N = 8192) or sqrt(10.5) (secret key); a slot
// sums N coefficients, so at N = 8192 and scale 2^40 its error has standard
// deviation near 2^-29 (public key) and 2^-32 (secret key). The tests assert
// max error <= 2^-20 and report the measured one.
//
// Randomness comes from a Prg held by the encryptor: from the OS CSPRNG, or
// from a seed passed to the constructor (tests only). Not thread-safe: one
// encryptor per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "he/ciphertext.h"
#include "he/context.h"
#include "he/keys.h"

namespace blindfold::he {

class Encryptor {
 public:
  /// Public-key encryptor.
  Encryptor(std::shared_ptr<const CkksContext> context, const PublicKey& public_key);
  /// Secret-key (symmetric) encryptor: seeded, half-size ciphertexts.
  Encryptor(std::shared_ptr<const CkksContext> context, const SecretKey& secret_key);
  /// As above with a deterministic Prg (tests only).
  Encryptor(std::shared_ptr<const CkksContext> context, const PublicKey& public_key,
            const Seed& test_seed);
  Encryptor(std::shared_ptr<const CkksContext> context, const SecretKey& secret_key,
            const Seed& test_seed);

  /// Encrypts at the plaintext's level and scale. Throws Error(kBadInput)
  /// for a plaintext of another context.
  Ciphertext encrypt(const Plaintext& plain);
  /// An encryption of zero at `level` with scale `scale`.
  Ciphertext encrypt_zero(int level, double scale);

  /// Encrypts, at `level` with `scale`, the plaintext whose coefficients
  /// (natural order, before the NTT: what the encoder rounds, as integers)
  /// are `coefficients` (n of them): the same distribution as encrypt() of
  /// that plaintext, but a secret-key encryptor adds the message to the
  /// fresh error as integers and transforms their sum, one NTT per prime
  /// instead of two (the encoder's and the error's). Throws Error(kBadInput)
  /// for a size other than n, a level out of range, or a coefficient of
  /// 2^62 or more in absolute value or with log2(|c| + 1) >= log2(Q_level) - 1
  /// (the encoder's bound).
  Ciphertext encrypt_coefficients(std::span<const std::int64_t> coefficients, int level,
                                  double scale);

 private:
  void check_key() const;
  Ciphertext encrypt_impl(const Plaintext* plain, int level, double scale);
  /// Shoup constants floor(s 2^52 / q) of the secret key's rows 0..rows-1,
  /// computed on first use (for the IFMA product of encrypt_coefficients).
  std::span<const std::uint64_t> secret_shoup52(std::size_t rows);

  // Words derived from the secret key: wiped when released.
  struct SecretWords {
    std::vector<std::uint64_t> v;
    std::size_t rows = 0;
    SecretWords() = default;
    SecretWords(SecretWords&& o) noexcept : v(std::move(o.v)), rows(o.rows) { o.rows = 0; }
    SecretWords& operator=(SecretWords&& o) noexcept;
    ~SecretWords();
  };

  std::shared_ptr<const CkksContext> context_;
  std::optional<PublicKey> public_key_;
  std::optional<SecretKey> secret_key_;
  Prg prg_;
  SecretWords s_shoup52_;
};

class Decryptor {
 public:
  Decryptor(std::shared_ptr<const CkksContext> context, const SecretKey& secret_key);

  /// c0 + c1 s (+ c2 s^2 for size 3) at the ciphertext's level and scale.
  /// Throws Error(kBadInput) for another context's ciphertext or a size
  /// other than 2 or 3.
  Plaintext decrypt(const Ciphertext& cipher) const;

 private:
  std::shared_ptr<const CkksContext> context_;
  SecretKey secret_key_;
};

}  // namespace blindfold::he
