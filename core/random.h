// Randomness for all of Blindfold. Two sources only:
//   - os_random(): OpenSSL's CSPRNG (RAND_bytes), for keys and seeds;
//   - Prg: a seed expanded with AES-256-CTR (OpenSSL EVP), for the large
//     streams of protocols (masks, correlated randomness, error polynomials).
// A Prg is deterministic only through its constructor argument: production
// code seeds it from os_random() (Prg::from_os), tests may pass a fixed seed.
// Nothing here reads the environment. Seeds and key streams are wiped on
// destruction (OPENSSL_cleanse).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

namespace blindfold {

using Seed = std::array<std::uint8_t, 32>;

/// Fills `out` from OpenSSL's CSPRNG. Throws Error(kInternal) if it fails.
void os_random(std::span<std::uint8_t> out);
/// A fresh 256-bit seed from os_random().
Seed random_seed();

class Prg {
 public:
  /// Deterministic stream from `seed` (AES-256-CTR keyed with the seed,
  /// counter from zero). `stream` selects one of 2^64 independent streams
  /// of the same seed (it forms the high half of the initial counter).
  explicit Prg(const Seed& seed, std::uint64_t stream = 0);
  /// A Prg seeded from the OS CSPRNG.
  static Prg from_os();
  ~Prg();
  Prg(Prg&&) noexcept;
  Prg& operator=(Prg&&) noexcept;
  Prg(const Prg&) = delete;
  Prg& operator=(const Prg&) = delete;

  void fill(std::span<std::uint8_t> out);
  std::uint64_t next_u64();
  /// Uniform in [0, bound) by rejection sampling (no modulo bias); bound > 0.
  std::uint64_t uniform(std::uint64_t bound);
  /// Fills `out` with values uniform in [0, bound).
  void uniform(std::span<std::uint64_t> out, std::uint64_t bound);

 private:
  void refill();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace blindfold
