#include "he/modarith.h"

#include <bit>
#include <string>

#include "core/error.h"
#include "he/avx512_internal.h"

namespace blindfold::he {

Modulus::Modulus(std::uint64_t value) : value_(value) {
  if (value < 2 || value >= (std::uint64_t{1} << kMaxBits)) {
    throw_error(ErrorCategory::kBadInput,
                "modulus " + std::to_string(value) + " outside [2, 2^61)");
  }
  bits_ = std::bit_width(value);
  // floor(2^128 / q) from floor((2^128 - 1) / q): the two differ only when q
  // divides 2^128, i.e. when the remainder of 2^128 - 1 is q - 1.
  const u128 all_ones = ~u128{0};
  u128 ratio = all_ones / value;
  if (all_ones % value == value - 1) ++ratio;
  ratio_ = {static_cast<std::uint64_t>(ratio), static_cast<std::uint64_t>(ratio >> 64)};
  // 2^(L+62) / q <= 2^(L+62) / 2^(L-1) = 2^63.
  mul_ratio_ = static_cast<std::uint64_t>((u128{1} << (bits_ + 62)) / value);
}

std::uint64_t pow_mod(std::uint64_t base, std::uint64_t exponent, const Modulus& q) noexcept {
  std::uint64_t result = 1 % q.value();
  std::uint64_t b = barrett_reduce_64(base, q);
  while (exponent != 0) {
    if (exponent & 1) result = mul_mod(result, b, q);
    exponent >>= 1;
    if (exponent != 0) b = mul_mod(b, b, q);
  }
  return result;
}

std::uint64_t inv_mod(std::uint64_t a, const Modulus& q) {
  // Extended Euclid on (q, a mod q). The Bezout coefficients stay below q in
  // absolute value, so int64 holds them (q < 2^61).
  std::int64_t r0 = static_cast<std::int64_t>(q.value());
  std::int64_t r1 = static_cast<std::int64_t>(barrett_reduce_64(a, q));
  std::int64_t t0 = 0;
  std::int64_t t1 = 1;
  while (r1 != 0) {
    const std::int64_t k = r0 / r1;
    const std::int64_t r2 = r0 - k * r1;
    const std::int64_t t2 = t0 - k * t1;
    r0 = r1;
    r1 = r2;
    t0 = t1;
    t1 = t2;
  }
  if (r0 != 1) {
    throw_error(ErrorCategory::kBadInput,
                std::to_string(a) + " is not invertible modulo " + std::to_string(q.value()));
  }
  return t0 < 0 ? static_cast<std::uint64_t>(t0 + static_cast<std::int64_t>(q.value()))
                : static_cast<std::uint64_t>(t0);
}

namespace {

void check_sizes(std::size_t a, std::size_t b, std::size_t out, const char* what) {
  if (a != out || b != out) {
    throw_error(ErrorCategory::kBadInput, std::string(what) + ": span sizes differ (" +
                                              std::to_string(a) + ", " + std::to_string(b) + ", " +
                                              std::to_string(out) + ")");
  }
}

// Resolves a pinned Isa for kernels whose variants are scalar and AVX-512.
bool use_avx512(Isa isa) {
  if (!isa_supported(isa)) {
    throw_error(ErrorCategory::kUnsupported,
                "this CPU cannot run the " + std::string(isa_name(isa)) + " kernels");
  }
  return isa != Isa::kScalar;
}

}  // namespace

void add_mod(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b, const Modulus& q,
             std::span<std::uint64_t> out) {
  check_sizes(a.size(), b.size(), out.size(), "add_mod");
  const std::uint64_t m = q.value();
  // Branch-free so the compiler vectorises it (AVX2 in the x86-64-v3 build).
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::uint64_t s = a[i] + b[i];
    out[i] = s >= m ? s - m : s;
  }
}

void sub_mod(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b, const Modulus& q,
             std::span<std::uint64_t> out) {
  check_sizes(a.size(), b.size(), out.size(), "sub_mod");
  const std::uint64_t m = q.value();
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::uint64_t d = a[i] + m - b[i];  // in [1, 2q)
    out[i] = d >= m ? d - m : d;
  }
}

void negate_mod(std::span<const std::uint64_t> a, const Modulus& q, std::span<std::uint64_t> out) {
  check_sizes(a.size(), out.size(), out.size(), "negate_mod");
  const std::uint64_t m = q.value();
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] == 0 ? 0 : m - a[i];
}

void reduce_mod(std::span<const std::uint64_t> a, const Modulus& q, std::span<std::uint64_t> out) {
  check_sizes(a.size(), out.size(), out.size(), "reduce_mod");
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = barrett_reduce_64(a[i], q);
}

void mul_mod(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b, const Modulus& q,
             std::span<std::uint64_t> out, Isa isa) {
  check_sizes(a.size(), b.size(), out.size(), "mul_mod");
  if (use_avx512(isa)) {
    detail::mul_mod_avx512(a.data(), b.data(), q, out.data(), out.size());
    return;
  }
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = mul_mod(a[i], b[i], q);
}

void mul_mod(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b, const Modulus& q,
             std::span<std::uint64_t> out) {
  mul_mod(a, b, q, out, isa_supported(Isa::kAvx512) ? Isa::kAvx512 : Isa::kScalar);
}

void mul_scalar_mod(std::span<const std::uint64_t> a, std::uint64_t s, const Modulus& q,
                    std::span<std::uint64_t> out, Isa isa) {
  check_sizes(a.size(), out.size(), out.size(), "mul_scalar_mod");
  const std::uint64_t w = barrett_reduce_64(s, q);
  const std::uint64_t w_shoup = shoup(w, q);
  if (use_avx512(isa)) {
    detail::mul_scalar_mod_avx512(a.data(), w, w_shoup, q, out.data(), out.size());
    return;
  }
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = mul_mod_shoup(a[i], w, w_shoup, q);
}

void mul_scalar_mod(std::span<const std::uint64_t> a, std::uint64_t s, const Modulus& q,
                    std::span<std::uint64_t> out) {
  mul_scalar_mod(a, s, q, out, isa_supported(Isa::kAvx512) ? Isa::kAvx512 : Isa::kScalar);
}

}  // namespace blindfold::he
