// Ring kernels over Z_2^64: see ring.h.
#include "mpc/ring.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace blindfold::mpc {

namespace {

[[noreturn]] void size_error(const char* fn, const std::string& detail) {
  throw Error(ErrorCategory::kInternal, std::string("mpc ") + fn + ": " + detail);
}

void check_same(const char* fn, std::size_t a, std::size_t b, std::size_t out) {
  if (a != b || a != out) {
    size_error(fn, "span sizes differ (" + std::to_string(a) + ", " + std::to_string(b) + ", out " +
                       std::to_string(out) + ")");
  }
}

void check_same(const char* fn, std::size_t a, std::size_t out) {
  if (a != out) {
    size_error(fn, "span sizes differ (" + std::to_string(a) + ", out " + std::to_string(out) + ")");
  }
}

void check_frac_bits(const char* fn, int frac_bits) {
  if (frac_bits < 0 || frac_bits > 62) {
    size_error(fn, "frac_bits " + std::to_string(frac_bits) + " outside [0, 62]");
  }
}

}  // namespace

void ring_add(std::span<const u64> a, std::span<const u64> b, std::span<u64> out) {
  check_same("ring_add", a.size(), b.size(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] + b[i];
}

void ring_sub(std::span<const u64> a, std::span<const u64> b, std::span<u64> out) {
  check_same("ring_sub", a.size(), b.size(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] - b[i];
}

void ring_neg(std::span<const u64> a, std::span<u64> out) {
  check_same("ring_neg", a.size(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = u64{0} - a[i];
}

void ring_mul(std::span<const u64> a, std::span<const u64> b, std::span<u64> out) {
  check_same("ring_mul", a.size(), b.size(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] * b[i];
}

void ring_mul_scalar(std::span<const u64> a, u64 c, std::span<u64> out) {
  check_same("ring_mul_scalar", a.size(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] * c;
}

void ring_mul_acc(std::span<const u64> a, std::span<const u64> b, std::span<u64> acc) {
  check_same("ring_mul_acc", a.size(), b.size(), acc.size());
  for (std::size_t i = 0; i < acc.size(); ++i) acc[i] += a[i] * b[i];
}

void ring_gather(std::span<const u64> a, std::span<const std::uint32_t> idx, std::span<u64> out) {
  check_same("ring_gather", idx.size(), out.size());
  const std::size_t n = a.size();
  for (std::size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] >= n) {
      size_error("ring_gather", "index " + std::to_string(idx[i]) + " at position " + std::to_string(i) +
                                    " out of range for a source of " + std::to_string(n) + " elements");
    }
  }
  for (std::size_t i = 0; i < idx.size(); ++i) out[i] = a[idx[i]];
}

void ring_sar(std::span<const u64> a, int bits, std::span<u64> out) {
  check_same("ring_sar", a.size(), out.size());
  if (bits < 0 || bits > 63) size_error("ring_sar", "shift " + std::to_string(bits) + " outside [0, 63]");
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<u64>(static_cast<std::int64_t>(a[i]) >> bits);
  }
}

void ring_matmul(std::span<const u64> a, std::span<const u64> b, std::span<u64> c, std::size_t m,
                 std::size_t k, std::size_t n, bool accumulate) {
  if (a.size() != m * k || b.size() != k * n || c.size() != m * n) {
    size_error("ring_matmul", "spans of " + std::to_string(a.size()) + ", " + std::to_string(b.size()) + ", " +
                                  std::to_string(c.size()) + " elements for m=" + std::to_string(m) +
                                  " k=" + std::to_string(k) + " n=" + std::to_string(n));
  }
  for (std::size_t i = 0; i < m; ++i) {
    u64* crow = c.data() + i * n;
    if (!accumulate) {
      for (std::size_t j = 0; j < n; ++j) crow[j] = 0;
    }
    for (std::size_t p = 0; p < k; ++p) {
      const u64 av = a[i * k + p];
      const u64* brow = b.data() + p * n;
      for (std::size_t j = 0; j < n; ++j) crow[j] += av * brow[j];
    }
  }
}

namespace {

// 2^63 as a double, exactly: encodings must lie in [-2^63, 2^63).
constexpr double kTwo63 = 9223372036854775808.0;

// Encodes one value or returns false when its encoding does not fit.
bool encode_one(double v, int frac_bits, u64& out) {
  if (!std::isfinite(v)) return false;
  const double scaled = std::round(std::ldexp(v, frac_bits));
  if (!(scaled >= -kTwo63 && scaled < kTwo63)) return false;
  out = static_cast<u64>(static_cast<std::int64_t>(scaled));
  return true;
}

}  // namespace

void fxp_encode(std::span<const float> v, int frac_bits, std::span<u64> out) {
  check_same("fxp_encode", v.size(), out.size());
  check_frac_bits("fxp_encode", frac_bits);
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!encode_one(static_cast<double>(v[i]), frac_bits, out[i])) {
      throw Error(ErrorCategory::kBadInput,
                  "fixed-point encoding: value " + std::to_string(v[i]) + " at index " + std::to_string(i) +
                      " is not finite or does not fit in 64 bits with " + std::to_string(frac_bits) +
                      " fractional bits");
    }
  }
}

void fxp_decode(std::span<const u64> a, int frac_bits, std::span<float> out) {
  check_same("fxp_decode", a.size(), out.size());
  check_frac_bits("fxp_decode", frac_bits);
  for (std::size_t i = 0; i < a.size(); ++i) {
    out[i] = static_cast<float>(std::ldexp(static_cast<double>(static_cast<std::int64_t>(a[i])), -frac_bits));
  }
}

u64 fxp_encode1(double v, int frac_bits) {
  check_frac_bits("fxp_encode1", frac_bits);
  u64 out = 0;
  if (!encode_one(v, frac_bits, out)) {
    throw Error(ErrorCategory::kBadInput, "fixed-point encoding: value " + std::to_string(v) +
                                              " is not finite or does not fit in 64 bits with " +
                                              std::to_string(frac_bits) + " fractional bits");
  }
  return out;
}

double fxp_decode1(u64 a, int frac_bits) {
  check_frac_bits("fxp_decode1", frac_bits);
  return std::ldexp(static_cast<double>(static_cast<std::int64_t>(a)), -frac_bits);
}

}  // namespace blindfold::mpc
