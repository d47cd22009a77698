#include "he/encoder.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>
#include <string>

#include "core/error.h"
#include "he/ntt.h"

namespace blindfold::he {
namespace {

using cd = std::complex<double>;

// Plain complex product: std::complex's operator* checks for NaN and
// infinities (a libgcc call per product) unless -ffast-math is on.
inline cd cmul(cd a, cd b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}

void bad(const std::string& what) {
  throw_error(ErrorCategory::kBadInput, "CKKS encoder: " + what);
}

}  // namespace

std::uint64_t rounded_residue(double value, const Modulus& q) {
  const bool negative = value < 0;
  const double a = std::fabs(std::nearbyint(value));
  std::uint64_t r;
  if (a < 9.2e18) {
    r = barrett_reduce_64(static_cast<std::uint64_t>(a), q);
  } else {
    int e = 0;
    const double m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    const auto mant = static_cast<std::uint64_t>(std::ldexp(m, 53));
    r = mul_mod(barrett_reduce_64(mant, q), pow_mod(2, static_cast<std::uint64_t>(e - 53), q), q);
  }
  return negative ? negate_mod(r, q) : r;
}

CkksEncoder::CkksEncoder(std::shared_ptr<const CkksContext> context)
    : context_(std::move(context)), slots_(context_->slots()) {
  const std::size_t m = 2 * context_->n();  // M = 2N: zeta is a primitive M-th root
  // rot[j] = 5^j mod M.
  std::vector<std::uint64_t> rot(slots_);
  std::uint64_t g = 1;
  for (std::size_t j = 0; j < slots_; ++j) {
    rot[j] = g;
    g = g * 5 % m;
  }
  // Stage with half-length lenh (len = 2 lenh, lenq = 4 len): twiddle j is
  // zeta^((5^j mod lenq) * (M / lenq)), an lenq-th root of unity.
  twiddles_.assign(slots_ < 1 ? 1 : slots_, cd(1, 0));
  for (std::size_t lenh = 1; lenh < slots_; lenh <<= 1) {
    const std::size_t lenq = 8 * lenh;
    for (std::size_t j = 0; j < lenh; ++j) {
      const double angle =
          2 * std::numbers::pi * static_cast<double>(rot[j] % lenq) / static_cast<double>(lenq);
      twiddles_[lenh + j] = cd(std::cos(angle), std::sin(angle));
    }
  }
  const int bits = std::countr_zero(slots_);
  bit_reverse_.resize(slots_);
  for (std::size_t i = 0; i < slots_; ++i) {
    bit_reverse_[i] = reverse_bits(static_cast<std::uint32_t>(i), bits);
  }
}

void CkksEncoder::fft_special(std::span<cd> v) const {
  if (v.size() != slots_) bad("FFT of " + std::to_string(v.size()) + " values");
  for (std::size_t i = 0; i < slots_; ++i) {
    if (i < bit_reverse_[i]) std::swap(v[i], v[bit_reverse_[i]]);
  }
  for (std::size_t lenh = 1; lenh < slots_; lenh <<= 1) {
    const cd* w = twiddles_.data() + lenh;
    for (std::size_t i = 0; i < slots_; i += 2 * lenh) {
      cd* x = v.data() + i;
      cd* y = x + lenh;
      for (std::size_t j = 0; j < lenh; ++j) {
        const cd u = x[j];
        const cd t = cmul(y[j], w[j]);
        x[j] = u + t;
        y[j] = u - t;
      }
    }
  }
}

void CkksEncoder::fft_special_inverse(std::span<cd> v) const {
  if (v.size() != slots_) bad("FFT of " + std::to_string(v.size()) + " values");
  for (std::size_t lenh = slots_ >> 1; lenh >= 1; lenh >>= 1) {
    const cd* w = twiddles_.data() + lenh;
    for (std::size_t i = 0; i < slots_; i += 2 * lenh) {
      cd* x = v.data() + i;
      cd* y = x + lenh;
      for (std::size_t j = 0; j < lenh; ++j) {
        const cd a = x[j];
        const cd b = y[j];
        x[j] = a + b;
        y[j] = cmul(a - b, std::conj(w[j]));
      }
    }
  }
  for (std::size_t i = 0; i < slots_; ++i) {
    if (i < bit_reverse_[i]) std::swap(v[i], v[bit_reverse_[i]]);
  }
  const double inv = 1.0 / static_cast<double>(slots_);
  for (cd& x : v) x *= inv;
}

Plaintext CkksEncoder::encode(std::span<const cd> values, double scale, int level) const {
  const CkksContext& ctx = *context_;
  if (values.size() > slots_) {
    bad(std::to_string(values.size()) + " values for " + std::to_string(slots_) + " slots");
  }
  if (level < 0 || level > ctx.max_level()) {
    bad("level " + std::to_string(level) + " outside [0, " + std::to_string(ctx.max_level()) + "]");
  }
  if (!(scale > 0) || !std::isfinite(scale)) bad("scale must be positive and finite");
  std::vector<cd> u(slots_, cd(0, 0));
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i].real()) || !std::isfinite(values[i].imag())) {
      bad("value " + std::to_string(i) + " is not finite");
    }
    u[i] = values[i];
  }
  fft_special_inverse(u);

  // Coefficients: m_i = Re u_i, m_{i + N/2} = Im u_i (HEAAN's layout), scaled
  // and rounded to integers held in doubles.
  const std::size_t n = ctx.n();
  std::vector<double> coeffs(n);
  double max_abs = 0;
  for (std::size_t i = 0; i < slots_; ++i) {
    coeffs[i] = std::nearbyint(u[i].real() * scale);
    coeffs[i + slots_] = std::nearbyint(u[i].imag() * scale);
    max_abs = std::max({max_abs, std::fabs(coeffs[i]), std::fabs(coeffs[i + slots_])});
  }
  // |m| < Q_level / 2 so that the residues determine m.
  const int log_q = ctx.chain_base(level).product_bits();
  if (!std::isfinite(max_abs) || std::log2(max_abs + 1) >= log_q - 1) {
    bad("encoded coefficients of about 2^" + std::to_string(std::log2(max_abs + 1)) +
        " do not fit the modulus of level " + std::to_string(level) + " (" + std::to_string(log_q) +
        " bits)");
  }

  Plaintext plain(ctx.id(), n, level, scale);
  const bool small = max_abs < 9.2e18;
  std::vector<std::int64_t> ints;
  if (small) {
    ints.resize(n);
    for (std::size_t c = 0; c < n; ++c) ints[c] = static_cast<std::int64_t>(coeffs[c]);
  }
  for (std::size_t i = 0; i < plain.primes(); ++i) {
    const Modulus& q = ctx.modulus(i);
    std::span<std::uint64_t> row = plain.row(i);
    if (small) {
      for (std::size_t c = 0; c < n; ++c) {
        const std::int64_t v = ints[c];
        // Branch-free sign handling: |v| mod q, negated when v < 0.
        const std::uint64_t mag = barrett_reduce_64(
            static_cast<std::uint64_t>(v < 0 ? -static_cast<std::uint64_t>(v) : v), q);
        const std::uint64_t neg = mag == 0 ? 0 : q.value() - mag;
        row[c] = v < 0 ? neg : mag;
      }
    } else {
      for (std::size_t c = 0; c < n; ++c) row[c] = rounded_residue(coeffs[c], q);
    }
    ntt_forward(row, ctx.ntt(i));
  }
  return plain;
}

Plaintext CkksEncoder::encode(std::span<const double> values, double scale, int level) const {
  std::vector<cd> c(values.begin(), values.end());
  return encode(std::span<const cd>(c), scale, level);
}

Plaintext CkksEncoder::encode(std::span<const cd> values, double scale) const {
  return encode(values, scale, context_->max_level());
}

Plaintext CkksEncoder::encode(std::span<const double> values, double scale) const {
  return encode(values, scale, context_->max_level());
}

std::vector<cd> CkksEncoder::decode(const Plaintext& plain) const {
  const CkksContext& ctx = *context_;
  if (plain.context_id() != ctx.id() || plain.n() != ctx.n()) {
    bad("plaintext of another context");
  }
  if (plain.level() < 0 || plain.level() > ctx.max_level()) bad("plaintext level out of range");
  if (!(plain.scale() > 0)) bad("plaintext scale must be positive");
  const std::size_t n = ctx.n();
  const std::size_t k = plain.primes();
  std::vector<std::uint64_t> rows(plain.data().begin(), plain.data().end());
  for (std::size_t i = 0; i < k; ++i) {
    ntt_inverse(std::span<std::uint64_t>(rows.data() + i * n, n), ctx.ntt(i));
  }

  // Exact CRT: x = sum_i [r_i (Q/q_i)^-1]_{q_i} (Q/q_i) mod Q, centred.
  const RnsBase& base = ctx.chain_base(plain.level());
  const std::span<const std::uint64_t> big_q = base.product();
  std::vector<std::uint64_t> half_q(k);
  for (std::size_t w = 0; w < k; ++w) {
    half_q[w] = (big_q[w] >> 1) | (w + 1 < k ? big_q[w + 1] << 63 : 0);
  }
  const double inv_scale = 1.0 / plain.scale();
  std::vector<double> coeffs(n);
  std::vector<std::uint64_t> acc(k + 1);
  for (std::size_t c = 0; c < n; ++c) {
    if (k == 1) {
      const std::uint64_t r = rows[c];
      const std::uint64_t q = big_q[0];
      coeffs[c] = r > q / 2 ? -static_cast<double>(q - r) : static_cast<double>(r);
      continue;
    }
    std::fill(acc.begin(), acc.end(), 0);
    for (std::size_t i = 0; i < k; ++i) {
      const std::uint64_t y = mul_mod_shoup(rows[i * n + c], base.inv_punctured(i),
                                            base.inv_punctured_shoup(i), base[i]);
      const std::span<const std::uint64_t> p = base.punctured_product(i);
      std::uint64_t carry = 0;
      for (std::size_t w = 0; w < k; ++w) {
        const u128 t = u128{p[w]} * y + acc[w] + carry;
        acc[w] = static_cast<std::uint64_t>(t);
        carry = static_cast<std::uint64_t>(t >> 64);
      }
      acc[k] += carry;
    }
    // acc < k * Q: subtract Q while acc >= Q.
    auto geq = [&](std::span<const std::uint64_t> b) {
      if (acc[k] != 0 && b.size() == k) return true;
      for (std::size_t w = b.size(); w-- > 0;) {
        if (acc[w] != b[w]) return acc[w] > b[w];
      }
      return true;
    };
    auto sub = [&](std::span<const std::uint64_t> b) {
      std::uint64_t borrow = 0;
      for (std::size_t w = 0; w <= k; ++w) {
        const std::uint64_t bw = w < b.size() ? b[w] : 0;
        const u128 d = u128{acc[w]} - bw - borrow;
        acc[w] = static_cast<std::uint64_t>(d);
        borrow = static_cast<std::uint64_t>(d >> 64) & 1;
      }
    };
    while (geq(big_q)) sub(big_q);
    bool negative = false;
    if (geq(half_q) && !(std::equal(half_q.begin(), half_q.end(), acc.begin()))) {
      // x > Q/2: the value is x - Q = -(Q - x).
      std::vector<std::uint64_t> neg(big_q.begin(), big_q.end());
      std::uint64_t borrow = 0;
      for (std::size_t w = 0; w < k; ++w) {
        const u128 d = u128{neg[w]} - acc[w] - borrow;
        neg[w] = static_cast<std::uint64_t>(d);
        borrow = static_cast<std::uint64_t>(d >> 64) & 1;
      }
      std::copy(neg.begin(), neg.end(), acc.begin());
      negative = true;
    }
    double v = 0;
    for (std::size_t w = k; w-- > 0;) v = v * 18446744073709551616.0 + static_cast<double>(acc[w]);
    coeffs[c] = negative ? -v : v;
  }

  std::vector<cd> u(slots_);
  for (std::size_t i = 0; i < slots_; ++i) {
    u[i] = cd(coeffs[i] * inv_scale, coeffs[i + slots_] * inv_scale);
  }
  fft_special(u);
  return u;
}

}  // namespace blindfold::he
