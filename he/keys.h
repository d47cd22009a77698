// CKKS keys and their generation (Cheon, Kim, Kim and Song 2017, section 3.4;
// RNS form of Cheon, Han, Kim, Kim and Song 2018):
//   - SecretKey: s uniform ternary, in NTT form modulo every prime of Q * P;
//     wiped on destruction and never printed;
//   - PublicKey: (b, a) = (-a s + e, a) modulo Q * P (as SEAL: encryption
//     then divides by P, which divides the encryption noise u e + e1 s by P
//     and leaves only rounding noise), a expanded from a 32-byte seed (so
//     the key serializes at half size);
//   - key-switching keys of hybrid key switching (Han and Ki 2020, "Better
//     bootstrapping for approximate homomorphic encryption", CT-RSA 2020;
//     as in SEAL's RNS form): for each digit j of alpha chain primes,
//     (b_j, a_j) = (-a_j s + e_j + g_j s', a_j) modulo Q * P, where the gadget
//     g_j is P on the primes of digit j and 0 on every other prime. Switching
//     a polynomial d from s' to s is then sum_j ModUp([d]_{D_j}) * (b_j, a_j)
//     followed by ModDown (division by P). RelinKeys take s' = s^2;
//     GaloisKeys take s' = s(X^g) for each Galois element g.
// Errors come from the centred binomial distribution of he/sampling.h.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "core/random.h"
#include "he/context.h"

namespace blindfold::he {

class SecretKey {
 public:
  SecretKey() = default;
  SecretKey(std::uint64_t context_id, std::size_t n, std::size_t rows)
      : context_id_(context_id), n_(n), data_(rows * n, 0) {}
  ~SecretKey();
  SecretKey(const SecretKey&) = default;
  SecretKey& operator=(const SecretKey& other);
  SecretKey(SecretKey&&) noexcept = default;
  SecretKey& operator=(SecretKey&& other) noexcept;

  std::uint64_t context_id() const noexcept { return context_id_; }
  std::size_t n() const noexcept { return n_; }
  /// s mod the key-basis modulus `key_index`, NTT form.
  std::span<const std::uint64_t> row(std::size_t key_index) const noexcept {
    return {data_.data() + key_index * n_, n_};
  }
  std::span<std::uint64_t> row(std::size_t key_index) noexcept {
    return {data_.data() + key_index * n_, n_};
  }
  std::span<const std::uint64_t> data() const noexcept { return data_; }

 private:
  void wipe() noexcept;
  std::uint64_t context_id_ = 0;
  std::size_t n_ = 0;
  std::vector<std::uint64_t> data_;
};

class PublicKey {
 public:
  std::uint64_t context_id = 0;
  /// b and a modulo every key-basis prime (chain and special), NTT form:
  /// key_size() rows each.
  std::vector<std::uint64_t> b, a;
  /// a = expand_uniform(a_seed, stream = kPublicKeyStream + prime index).
  Seed a_seed{};
};

/// One key-switching key: dnum digits of (b_j, a_j), each over every
/// key-basis modulus, NTT form. a_j row i = expand_uniform(a_seed,
/// kKeySwitchStream + j * key_size + i).
class KeySwitchKey {
 public:
  std::uint64_t context_id = 0;
  std::size_t n = 0;
  std::size_t key_size = 0;
  std::size_t dnum = 0;
  std::vector<std::uint64_t> b, a;  // [(j * key_size + i) * n + c]
  Seed a_seed{};

  std::span<const std::uint64_t> b_row(std::size_t digit, std::size_t key_index) const noexcept {
    return {b.data() + (digit * key_size + key_index) * n, n};
  }
  std::span<const std::uint64_t> a_row(std::size_t digit, std::size_t key_index) const noexcept {
    return {a.data() + (digit * key_size + key_index) * n, n};
  }
};

struct RelinKeys {
  KeySwitchKey key;  // s^2 -> s
};

/// Galois element of a rotation of the slots left by `steps` (negative:
/// right): 5^steps mod 2N (he/encoder.h explains the slot order).
std::uint64_t galois_element_for_rotation(int steps, std::size_t n);
/// Galois element of complex conjugation: 2N - 1.
inline std::uint64_t galois_element_for_conjugation(std::size_t n) {
  return 2 * n - 1;
}

/// The automorphism X -> X^g on NTT-form values (the transform's
/// bit-reversed order, he/ntt.h): out[i] = in[perm[i]]. g odd, in [1, 2N).
std::vector<std::uint32_t> galois_permutation(std::uint64_t galois_element, std::size_t n);

class GaloisKeys {
 public:
  std::uint64_t context_id = 0;
  struct Entry {
    KeySwitchKey key;                 // s(X^g) -> s
    std::vector<std::uint32_t> perm;  // galois_permutation(g, n)
  };
  std::map<std::uint64_t, Entry> keys;  // by Galois element

  bool has(std::uint64_t galois_element) const { return keys.count(galois_element) != 0; }
  /// Throws Error(kBadInput) when there is no key for the element.
  const Entry& at(std::uint64_t galois_element) const;
};

/// Prg stream bases of the seeded expansions (disjoint ranges).
inline constexpr std::uint64_t kPublicKeyStream = 0;
inline constexpr std::uint64_t kCiphertextStream = 1ull << 32;
inline constexpr std::uint64_t kKeySwitchStream = 1ull << 40;

class KeyGenerator {
 public:
  /// A fresh secret key from the OS CSPRNG.
  explicit KeyGenerator(std::shared_ptr<const CkksContext> context);
  /// Deterministic from `seed` (tests and known-answer checks only: a fixed
  /// seed is a fixed secret key).
  KeyGenerator(std::shared_ptr<const CkksContext> context, const Seed& seed);
  /// Reuses an existing secret key (to make more evaluation keys for it).
  KeyGenerator(std::shared_ptr<const CkksContext> context, const SecretKey& secret_key);

  const SecretKey& secret_key() const noexcept { return secret_; }
  PublicKey create_public_key();
  RelinKeys create_relin_keys();
  /// Keys for rotations by each of `steps` (any integers; reduced mod N/2,
  /// 0 skipped) and, if `conjugation`, for complex conjugation.
  GaloisKeys create_galois_keys(std::span<const int> steps, bool conjugation = false);
  /// Rotations by +-2^i for every i (any rotation is then a product of at
  /// most log2(N/2) of them), and conjugation.
  GaloisKeys create_galois_keys();

 private:
  void sample_secret();
  /// The key switching s' -> s; s_prime: s' mod each chain prime, NTT form.
  KeySwitchKey make_switch_key(std::span<const std::uint64_t> s_prime);

  std::shared_ptr<const CkksContext> context_;
  Prg prg_;
  SecretKey secret_;
};

}  // namespace blindfold::he
