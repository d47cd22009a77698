// The data objects of RNS-CKKS: a Plaintext (one polynomial) and a Ciphertext
// (two or more), each held modulo the chain primes q_0 .. q_level of its level,
// in NTT form (every operation but rescaling and key switching is then
// element-wise), with its scale Delta: the encoded message is
// polynomial / Delta. They carry the id of the context that made them, so that
// evaluators refuse objects of another context. Plain values: copyable,
// movable, no reference to the context itself.
//
// Layout: polynomial k, prime i, coefficient c at
// data()[(k * (level + 1) + i) * n + c].
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/random.h"
#include "he/memory.h"

namespace blindfold::he {

class CkksContext;
class Ciphertext;
Ciphertext load_ciphertext(const CkksContext& ctx, std::span<const std::uint8_t> bytes);

class Plaintext {
 public:
  Plaintext() = default;
  Plaintext(std::uint64_t context_id, std::size_t n, int level, double scale)
      : context_id_(context_id),
        n_(n),
        level_(level),
        scale_(scale),
        data_(static_cast<std::size_t>(level + 1) * n, 0) {}

  std::uint64_t context_id() const noexcept { return context_id_; }
  std::size_t n() const noexcept { return n_; }
  int level() const noexcept { return level_; }
  /// Number of primes: level + 1.
  std::size_t primes() const noexcept { return static_cast<std::size_t>(level_ + 1); }
  double scale() const noexcept { return scale_; }
  void set_scale(double scale) noexcept { scale_ = scale; }

  std::span<const std::uint64_t> data() const noexcept { return data_; }
  std::span<std::uint64_t> data() noexcept { return data_; }
  std::span<const std::uint64_t> row(std::size_t i) const noexcept {
    return {data_.data() + i * n_, n_};
  }
  std::span<std::uint64_t> row(std::size_t i) noexcept { return {data_.data() + i * n_, n_}; }

  /// Drops the top primes, down to `level` (no division: the value is
  /// unchanged, only its modulus shrinks).
  void drop_to_level(int level);

 private:
  std::uint64_t context_id_ = 0;
  std::size_t n_ = 0;
  int level_ = -1;
  double scale_ = 0;
  PolyVector data_;
};

class Ciphertext {
 public:
  Ciphertext() = default;
  Ciphertext(std::uint64_t context_id, std::size_t n, int level, double scale, std::size_t size)
      : context_id_(context_id),
        n_(n),
        level_(level),
        scale_(scale),
        size_(size),
        data_(size * static_cast<std::size_t>(level + 1) * n, 0) {}

  std::uint64_t context_id() const noexcept { return context_id_; }
  std::size_t n() const noexcept { return n_; }
  int level() const noexcept { return level_; }
  std::size_t primes() const noexcept { return static_cast<std::size_t>(level_ + 1); }
  double scale() const noexcept { return scale_; }
  void set_scale(double scale) noexcept { scale_ = scale; }
  /// Number of polynomials: 2 for a fresh ciphertext, 3 after a product
  /// before relinearization.
  std::size_t size() const noexcept { return size_; }

  std::span<const std::uint64_t> data() const noexcept { return data_; }
  /// Writable access; forgets the seed (the data may no longer match it).
  std::span<std::uint64_t> mutable_data() noexcept {
    seed_.reset();
    return data_;
  }
  std::span<const std::uint64_t> poly(std::size_t k) const noexcept {
    return {data_.data() + k * primes() * n_, primes() * n_};
  }
  std::span<std::uint64_t> mutable_poly(std::size_t k) noexcept {
    seed_.reset();
    return {data_.data() + k * primes() * n_, primes() * n_};
  }
  std::span<const std::uint64_t> row(std::size_t k, std::size_t i) const noexcept {
    return {data_.data() + (k * primes() + i) * n_, n_};
  }
  std::span<std::uint64_t> mutable_row(std::size_t k, std::size_t i) noexcept {
    seed_.reset();
    return {data_.data() + (k * primes() + i) * n_, n_};
  }

  /// A symmetric encryption's c1 is uniform, expanded from a seed
  /// (he/sampling.h, expand_uniform): while c1 is untouched, the seed may be
  /// stored instead of c1 (a half-size ciphertext). Only the encryptor, the
  /// evaluator (for operations that leave c1 alone) and the loader set it,
  /// so a seed always matches its c1.
  const std::optional<Seed>& seed() const noexcept { return seed_; }

  /// Drops the top primes of every polynomial, down to `level`.
  void drop_to_level(int level);
  /// Resizes to `size` polynomials (new ones zero). Forgets the seed.
  void resize(std::size_t size);

 private:
  friend class Encryptor;
  friend class Evaluator;
  friend Ciphertext load_ciphertext(const CkksContext& ctx, std::span<const std::uint8_t> bytes);
  void set_seed(const Seed& seed) { seed_ = seed; }

  std::uint64_t context_id_ = 0;
  std::size_t n_ = 0;
  int level_ = -1;
  double scale_ = 0;
  std::size_t size_ = 0;
  PolyVector data_;
  std::optional<Seed> seed_;
};

}  // namespace blindfold::he
