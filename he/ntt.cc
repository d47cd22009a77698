#include "he/ntt.h"

#include <bit>
#include <string>

#include "core/error.h"
#include "he/avx512_internal.h"
#include "he/primes.h"

namespace blindfold::he {

std::uint32_t reverse_bits(std::uint32_t i, int bits) noexcept {
  if (bits == 0) return 0;
  std::uint32_t r = 0;
  for (int b = 0; b < 32; ++b) r |= ((i >> b) & 1u) << (31 - b);
  return r >> (32 - bits);
}

NttTables::NttTables(std::size_t n, const Modulus& q) : n_(n), q_(q) {
  if (n < 2 || (n & (n - 1)) != 0 || n > (std::size_t{1} << kMaxLogN)) {
    throw_error(ErrorCategory::kBadInput,
                "NTT size " + std::to_string(n) + " is not a power of two in [2, 2^17]");
  }
  log_n_ = std::countr_zero(n);
  if ((q.value() - 1) % (2 * n) != 0) {
    throw_error(ErrorCategory::kBadInput, "modulus " + std::to_string(q.value()) +
                                              " is not 1 mod 2n = " + std::to_string(2 * n));
  }
  root_ = minimal_primitive_root(2 * n, q);  // throws if q is not prime
  const std::uint64_t inv_root = inv_mod(root_, q);

  root_powers_.resize(n);
  root_powers_shoup_.resize(n);
  inv_root_powers_.resize(n);
  inv_root_powers_shoup_.resize(n);
  std::uint64_t power = 1;
  std::uint64_t inv_power = 1;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t j = reverse_bits(static_cast<std::uint32_t>(i), log_n_);
    root_powers_[j] = power;
    inv_root_powers_[j] = inv_power;
    power = mul_mod(power, root_, q);
    inv_power = mul_mod(inv_power, inv_root, q);
  }
  for (std::size_t i = 0; i < n; ++i) {
    root_powers_shoup_[i] = shoup(root_powers_[i], q);
    inv_root_powers_shoup_[i] = shoup(inv_root_powers_[i], q);
  }
  inv_n_ = inv_mod(n, q);
  inv_n_shoup_ = shoup(inv_n_, q);
  inv_n_root_ = mul_mod(inv_n_, inv_root_powers_[1], q);
  inv_n_root_shoup_ = shoup(inv_n_root_, q);
}

namespace {

// Harvey's lazy Cooley-Tukey butterfly (Harvey 2014): x, y in
// [0, 4q) -> x + w*y, x - w*y, both in [0, 4q).
inline void ct_butterfly(std::uint64_t& x, std::uint64_t& y, std::uint64_t w, std::uint64_t ws,
                         const Modulus& q, std::uint64_t two_q) {
  std::uint64_t a = x;
  a = a >= two_q ? a - two_q : a;                           // [0, 2q)
  const std::uint64_t t = mul_mod_shoup_lazy(y, w, ws, q);  // [0, 2q)
  x = a + t;
  y = a - t + two_q;
}

// Gentleman-Sande butterfly with lazy reduction: x, y in [0, 2q) ->
// x + y, (x - y) * w, both in [0, 2q).
inline void gs_butterfly(std::uint64_t& x, std::uint64_t& y, std::uint64_t w, std::uint64_t ws,
                         const Modulus& q, std::uint64_t two_q) {
  const std::uint64_t a = x;
  const std::uint64_t b = y;
  const std::uint64_t s = a + b;
  x = s >= two_q ? s - two_q : s;
  y = mul_mod_shoup_lazy(a - b + two_q, w, ws, q);
}

// [0, 4q) -> [0, q).
inline std::uint64_t reduce_4q(std::uint64_t v, std::uint64_t q, std::uint64_t two_q) {
  v = v >= two_q ? v - two_q : v;
  return v >= q ? v - q : v;
}

void forward_scalar(std::uint64_t* a, const NttTables& t, bool full) {
  const Modulus& q = t.modulus();
  const std::uint64_t two_q = 2 * q.value();
  const std::uint64_t* w = t.root_powers().data();
  const std::uint64_t* ws = t.root_powers_shoup().data();
  const std::size_t n = t.n();
  std::size_t m = 1;
  for (std::size_t gap = n >> 1; gap > 1; m <<= 1, gap >>= 1) {
    for (std::size_t i = 0; i < m; ++i) {
      const std::uint64_t wi = w[m + i];
      const std::uint64_t wsi = ws[m + i];
      std::uint64_t* x = a + 2 * i * gap;
      std::uint64_t* y = x + gap;
      for (std::size_t j = 0; j < gap; ++j) ct_butterfly(x[j], y[j], wi, wsi, q, two_q);
    }
  }
  // Last stage (gap 1, m = n/2) on its own: no inner loop, and the final
  // correction to [0, q) is merged in.
  for (std::size_t i = 0; i < m; ++i) {
    ct_butterfly(a[2 * i], a[2 * i + 1], w[m + i], ws[m + i], q, two_q);
    if (full) {
      a[2 * i] = reduce_4q(a[2 * i], q.value(), two_q);
      a[2 * i + 1] = reduce_4q(a[2 * i + 1], q.value(), two_q);
    }
  }
}

void inverse_scalar(std::uint64_t* a, const NttTables& t, bool full) {
  const Modulus& q = t.modulus();
  const std::uint64_t two_q = 2 * q.value();
  const std::uint64_t* w = t.inv_root_powers().data();
  const std::uint64_t* ws = t.inv_root_powers_shoup().data();
  const std::size_t n = t.n();
  std::size_t gap = 1;
  for (std::size_t m = n >> 1; m > 1; m >>= 1, gap <<= 1) {
    for (std::size_t i = 0; i < m; ++i) {
      const std::uint64_t wi = w[m + i];
      const std::uint64_t wsi = ws[m + i];
      std::uint64_t* x = a + 2 * i * gap;
      std::uint64_t* y = x + gap;
      for (std::size_t j = 0; j < gap; ++j) gs_butterfly(x[j], y[j], wi, wsi, q, two_q);
    }
  }
  // Last stage (m = 1, gap = n/2) with n^-1 merged in: x' = (x + y) / n,
  // y' = (x - y) * psi^-brv(1) / n, each one Shoup product.
  const std::uint64_t ni = t.inv_n(), nis = t.inv_n_shoup();
  const std::uint64_t nw = t.inv_n_root(), nws = t.inv_n_root_shoup();
  for (std::size_t j = 0; j < gap; ++j) {
    const std::uint64_t x = a[j];
    const std::uint64_t y = a[j + gap];
    std::uint64_t u = mul_mod_shoup_lazy(x + y, ni, nis, q);
    std::uint64_t v = mul_mod_shoup_lazy(x - y + two_q, nw, nws, q);
    if (full) {
      u = u >= q.value() ? u - q.value() : u;
      v = v >= q.value() ? v - q.value() : v;
    }
    a[j] = u;
    a[j + gap] = v;
  }
}

void check_size(std::size_t size, const NttTables& t) {
  if (size != t.n()) {
    throw_error(
        ErrorCategory::kBadInput,
        "NTT of " + std::to_string(size) + " values with tables for n = " + std::to_string(t.n()));
  }
}

constexpr std::size_t kMinVectorN = 16;  // the AVX-512 code needs two vectors

void forward_with(std::uint64_t* a, const NttTables& t, bool full, Isa isa) {
  if (t.n() >= kMinVectorN) {
    if (isa == Isa::kAvx512Ifma) return detail::ntt_forward_ifma(a, t, full);
    if (isa == Isa::kAvx512) return detail::ntt_forward_avx512(a, t, full);
  }
  forward_scalar(a, t, full);
}

void inverse_with(std::uint64_t* a, const NttTables& t, bool full, Isa isa) {
  if (t.n() >= kMinVectorN) {
    if (isa == Isa::kAvx512Ifma) return detail::ntt_inverse_ifma(a, t, full);
    if (isa == Isa::kAvx512) return detail::ntt_inverse_avx512(a, t, full);
  }
  inverse_scalar(a, t, full);
}

void require_usable(Isa isa, const NttTables& t) {
  if (!ntt_isa_usable(isa, t)) {
    throw_error(ErrorCategory::kUnsupported,
                "the " + std::string(isa_name(isa)) +
                    " NTT cannot run here for q = " + std::to_string(t.modulus().value()));
  }
}

}  // namespace

bool ntt_isa_usable(Isa isa, const NttTables& tables) noexcept {
  if (!isa_supported(isa)) return false;
  if (isa == Isa::kAvx512Ifma) return tables.modulus().value() < (std::uint64_t{1} << 50);
  return true;
}

Isa ntt_best_isa(const NttTables& tables) noexcept {
  if (ntt_isa_usable(Isa::kAvx512Ifma, tables)) return Isa::kAvx512Ifma;
  if (ntt_isa_usable(Isa::kAvx512, tables)) return Isa::kAvx512;
  return Isa::kScalar;
}

void ntt_forward(std::span<std::uint64_t> values, const NttTables& tables, NttOutput output) {
  check_size(values.size(), tables);
  forward_with(values.data(), tables, output == NttOutput::kReduced, ntt_best_isa(tables));
}

void ntt_inverse(std::span<std::uint64_t> values, const NttTables& tables, NttOutput output) {
  check_size(values.size(), tables);
  inverse_with(values.data(), tables, output == NttOutput::kReduced, ntt_best_isa(tables));
}

void ntt_forward(std::span<std::uint64_t> values, const NttTables& tables, NttOutput output,
                 Isa isa) {
  check_size(values.size(), tables);
  require_usable(isa, tables);
  forward_with(values.data(), tables, output == NttOutput::kReduced, isa);
}

void ntt_inverse(std::span<std::uint64_t> values, const NttTables& tables, NttOutput output,
                 Isa isa) {
  check_size(values.size(), tables);
  require_usable(isa, tables);
  inverse_with(values.data(), tables, output == NttOutput::kReduced, isa);
}

void negacyclic_multiply(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b,
                         const NttTables& tables, std::span<std::uint64_t> out) {
  check_size(a.size(), tables);
  check_size(b.size(), tables);
  check_size(out.size(), tables);
  std::vector<std::uint64_t> fa(a.begin(), a.end());
  std::vector<std::uint64_t> fb(b.begin(), b.end());
  ntt_forward(fa, tables);
  ntt_forward(fb, tables);
  mul_mod(fa, fb, tables.modulus(), out);
  ntt_inverse(out, tables);
}

}  // namespace blindfold::he
