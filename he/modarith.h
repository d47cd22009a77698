// Word-sized modular arithmetic for moduli q < 2^61: the Modulus type with its
// precomputed Barrett ratios, scalar add/sub/negate/mul/pow/inverse, Shoup's
// multiplication by a fixed operand, and the element-wise vector kernels
// (free functions on spans) that every RNS-CKKS layer above is built from.
//
// Ranges are part of each contract: every function states the range its
// inputs must lie in and the range of its result. Nothing here checks the
// values (a hot loop cannot afford it); vector kernels check only sizes.
// Shoup's method is analysed for NTTs in Harvey 2014, "Faster arithmetic for
// number-theoretic transforms" (J. Symbolic Computation 60).
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "he/isa.h"

namespace blindfold::he {

__extension__ typedef unsigned __int128 u128;  // __extension__: -Wpedantic-clean

/// A modulus 2 <= q < 2^61 with the constants its reductions need. Cheap to
/// copy (32 bytes). Every residue mod q is an uint64_t in [0, q) unless a
/// function says otherwise ("lazy" results live in [0, 2q) or [0, 4q)).
class Modulus {
 public:
  static constexpr int kMaxBits = 61;

  /// Throws Error(kBadInput) unless 2 <= value < 2^61.
  explicit Modulus(std::uint64_t value);

  std::uint64_t value() const noexcept { return value_; }
  /// Bit length L of q: 2^(L-1) <= q < 2^L.
  int bits() const noexcept { return bits_; }
  /// floor(2^128 / q) as {low word, high word}. The high word is
  /// floor(2^64 / q), the ratio barrett_reduce_64 uses.
  const std::array<std::uint64_t, 2>& barrett_ratio() const noexcept { return ratio_; }
  /// floor(2^(L+62) / q) < 2^63, the ratio of mul_mod's Barrett step: with
  /// the product pre-shifted right by L-2 bits, the estimated quotient is the
  /// high word of one 64x64-bit product, so mul_mod costs three
  /// multiplications instead of the five of a full 128-bit reduction.
  std::uint64_t mul_ratio() const noexcept { return mul_ratio_; }
  int mul_shift() const noexcept { return bits_ - 2; }

  friend bool operator==(const Modulus& a, const Modulus& b) noexcept {
    return a.value_ == b.value_;
  }

 private:
  std::uint64_t value_;
  int bits_;
  std::array<std::uint64_t, 2> ratio_;
  std::uint64_t mul_ratio_;
};

// ---- scalar ------------------------------------------------------------

/// a, b in [0, q) -> a + b mod q in [0, q).
inline std::uint64_t add_mod(std::uint64_t a, std::uint64_t b, const Modulus& q) noexcept {
  const std::uint64_t s = a + b;  // < 2^62: no overflow
  return s >= q.value() ? s - q.value() : s;
}

/// a, b in [0, q) -> a - b mod q in [0, q).
inline std::uint64_t sub_mod(std::uint64_t a, std::uint64_t b, const Modulus& q) noexcept {
  const std::uint64_t d = a - b;
  return a < b ? d + q.value() : d;
}

/// a in [0, q) -> -a mod q in [0, q) (0 stays 0).
inline std::uint64_t negate_mod(std::uint64_t a, const Modulus& q) noexcept {
  return a == 0 ? 0 : q.value() - a;
}

/// Any 64-bit x -> x mod q in [0, q). Barrett with floor(2^64/q): the
/// estimated quotient is at most one below the true one, so one conditional
/// subtraction finishes.
inline std::uint64_t barrett_reduce_64(std::uint64_t x, const Modulus& q) noexcept {
  const auto qhat = static_cast<std::uint64_t>((u128{x} * q.barrett_ratio()[1]) >> 64);
  const std::uint64_t r = x - qhat * q.value();  // [0, 2q)
  return r >= q.value() ? r - q.value() : r;
}

/// Any 128-bit x -> x mod q in [0, q). The quotient estimate is the top 128
/// bits of x * floor(2^128/q), computed exactly (four partial products);
/// it is at most one below floor(x/q), and only its low word is needed
/// because the remainder is below 2q < 2^62.
inline std::uint64_t barrett_reduce_128(u128 x, const Modulus& q) noexcept {
  const auto x0 = static_cast<std::uint64_t>(x);
  const auto x1 = static_cast<std::uint64_t>(x >> 64);
  const std::uint64_t r0 = q.barrett_ratio()[0];
  const std::uint64_t r1 = q.barrett_ratio()[1];
  const u128 p00 = u128{x0} * r0;
  const u128 p01 = u128{x0} * r1;
  const u128 p10 = u128{x1} * r0;
  const u128 mid = (p00 >> 64) + static_cast<std::uint64_t>(p01) + static_cast<std::uint64_t>(p10);
  const std::uint64_t qhat = x1 * r1 + static_cast<std::uint64_t>(p01 >> 64) +
                             static_cast<std::uint64_t>(p10 >> 64) +
                             static_cast<std::uint64_t>(mid >> 64);
  const std::uint64_t r = x0 - qhat * q.value();  // [0, 2q)
  return r >= q.value() ? r - q.value() : r;
}

/// a * b mod q in [0, q), for a * b < 2^(L+61) where L = q.bits(): in
/// particular for a, b in [0, q), or a < 2^61 and b in [0, q).
/// Barrett: x = a*b; qhat = floor(floor(x / 2^(L-2)) * mul_ratio / 2^64).
/// Both factors are below 2^63, so the estimate is at most one below
/// floor(x/q) and one conditional subtraction finishes.
inline std::uint64_t mul_mod(std::uint64_t a, std::uint64_t b, const Modulus& q) noexcept {
  const u128 x = u128{a} * b;
  const auto xs = static_cast<std::uint64_t>(x >> q.mul_shift());
  const auto qhat = static_cast<std::uint64_t>((u128{xs} * q.mul_ratio()) >> 64);
  const std::uint64_t r = static_cast<std::uint64_t>(x) - qhat * q.value();  // [0, 2q)
  return r >= q.value() ? r - q.value() : r;
}

/// Shoup's precomputation for multiplying by a fixed w in [0, q):
/// floor(w * 2^64 / q), a 64-bit word.
inline std::uint64_t shoup(std::uint64_t w, const Modulus& q) noexcept {
  return static_cast<std::uint64_t>((u128{w} << 64) / q.value());
}

/// Any 64-bit x, w in [0, q), w_shoup = shoup(w, q) -> x * w mod q, lazily
/// reduced to [0, 2q). One high and two low products, no division: the
/// quotient estimate floor(x * w_shoup / 2^64) is at most one below
/// floor(x * w / q) (Shoup's method, as analysed in Harvey 2014, without
/// its final correction).
inline std::uint64_t mul_mod_shoup_lazy(std::uint64_t x, std::uint64_t w, std::uint64_t w_shoup,
                                        const Modulus& q) noexcept {
  const auto qhat = static_cast<std::uint64_t>((u128{x} * w_shoup) >> 64);
  return x * w - qhat * q.value();
}

/// As mul_mod_shoup_lazy, fully reduced to [0, q).
inline std::uint64_t mul_mod_shoup(std::uint64_t x, std::uint64_t w, std::uint64_t w_shoup,
                                   const Modulus& q) noexcept {
  const std::uint64_t r = mul_mod_shoup_lazy(x, w, w_shoup, q);
  return r >= q.value() ? r - q.value() : r;
}

/// Any 64-bit base and exponent -> base^exponent mod q in [0, q)
/// (0^0 = 1, as for integers).
std::uint64_t pow_mod(std::uint64_t base, std::uint64_t exponent, const Modulus& q) noexcept;

/// Any 64-bit a -> a^-1 mod q in [1, q). Throws Error(kBadInput) when a is
/// not invertible mod q (gcd(a, q) != 1, which includes a = 0 mod q).
std::uint64_t inv_mod(std::uint64_t a, const Modulus& q);

// ---- vectors, element-wise ---------------------------------------------
// Every span must have the same size, or Error(kBadInput) is thrown. `out` may
// be the same span as an input (in place); other overlaps are undefined.
// Each kernel without an Isa argument runs the fastest variant this CPU has;
// the Isa overloads pin one (for tests and benchmarks) and throw
// Error(kUnsupported) if the CPU lacks it. These kernels have no IFMA variant:
// kAvx512Ifma runs the kAvx512 code.

/// a, b in [0, q) -> out = a + b mod q in [0, q).
void add_mod(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b, const Modulus& q,
             std::span<std::uint64_t> out);

/// a, b in [0, q) -> out = a - b mod q in [0, q).
void sub_mod(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b, const Modulus& q,
             std::span<std::uint64_t> out);

/// a in [0, q) -> out = -a mod q in [0, q).
void negate_mod(std::span<const std::uint64_t> a, const Modulus& q, std::span<std::uint64_t> out);

/// Any 64-bit a -> out = a mod q in [0, q).
void reduce_mod(std::span<const std::uint64_t> a, const Modulus& q, std::span<std::uint64_t> out);

/// a, b in [0, q) -> out = a * b mod q in [0, q) (Barrett, as scalar mul_mod).
void mul_mod(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b, const Modulus& q,
             std::span<std::uint64_t> out);
void mul_mod(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b, const Modulus& q,
             std::span<std::uint64_t> out, Isa isa);

/// Any 64-bit a, scalar s (any 64-bit: reduced first) -> out = a * s mod q
/// in [0, q) (Shoup, one precomputation for the whole vector).
void mul_scalar_mod(std::span<const std::uint64_t> a, std::uint64_t s, const Modulus& q,
                    std::span<std::uint64_t> out);
void mul_scalar_mod(std::span<const std::uint64_t> a, std::uint64_t s, const Modulus& q,
                    std::span<std::uint64_t> out, Isa isa);

}  // namespace blindfold::he
