#include "he/encryptor.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "he/avx512_ops.h"
#include "he/keyswitch.h"
#include "he/ntt.h"
#include "he/sampling.h"

namespace blindfold::he {
namespace {

void check_context(const CkksContext& ctx, std::uint64_t id, const char* what) {
  if (id != ctx.id()) {
    throw_error(ErrorCategory::kBadInput, std::string(what) + " of another CKKS context");
  }
}

// c0[j] = c0[j] - a[j] s[j] mod q for q < 2^50, all inputs in [0, q), with
// w[j] = floor(s[j] 2^52 / q): Shoup's product on IFMA52 (as Intel HEXL):
// qhat = floor(a w / 2^52) is at most one below floor(a s / q), so
// r = a s - qhat q, computed modulo 2^52, lies in [0, 2q); one conditional
// subtraction, then the modular difference (both as unsigned minima).
// Only whole groups of 8, returning how many it did; the caller does the
// rest (no generic code under the target attribute: he/avx512_ops.h).
BF_AVX512_IFMA std::size_t sub_mul_shoup_ifma(std::uint64_t* c0, const std::uint64_t* a,
                                              const std::uint64_t* s, const std::uint64_t* w,
                                              std::uint64_t q, std::size_t n) {
  const __m512i vq = _mm512_set1_epi64(static_cast<long long>(q));
  const __m512i mask52 = _mm512_set1_epi64((1ll << 52) - 1);
  const __m512i zero = _mm512_setzero_si512();
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m512i va = _mm512_loadu_si512(a + j);
    const __m512i qhat = _mm512_madd52hi_epu64(zero, va, _mm512_loadu_si512(w + j));
    const __m512i lo = _mm512_madd52lo_epu64(zero, va, _mm512_loadu_si512(s + j));
    const __m512i ql = _mm512_madd52lo_epu64(zero, qhat, vq);
    const __m512i r = detail::cond_sub(_mm512_and_si512(_mm512_sub_epi64(lo, ql), mask52), vq);
    const __m512i d = _mm512_sub_epi64(_mm512_loadu_si512(c0 + j), r);
    _mm512_storeu_si512(c0 + j, _mm512_min_epu64(d, _mm512_add_epi64(d, vq)));
  }
  return j;
}

}  // namespace

Encryptor::SecretWords& Encryptor::SecretWords::operator=(SecretWords&& o) noexcept {
  if (this != &o) {
    secure_wipe(std::span<std::uint64_t>(v));
    v = std::move(o.v);
    rows = o.rows;
    o.rows = 0;
  }
  return *this;
}

Encryptor::SecretWords::~SecretWords() {
  secure_wipe(std::span<std::uint64_t>(v));
}

std::span<const std::uint64_t> Encryptor::secret_shoup52(std::size_t rows) {
  const std::size_t n = context_->n();
  if (s_shoup52_.rows < rows) {
    if (s_shoup52_.v.size() < rows * n) {
      // Grown once to the whole chain (no reallocation leaves a copy).
      SecretWords grown;
      grown.v.resize(context_->chain_size() * n);
      std::copy(s_shoup52_.v.begin(),
                s_shoup52_.v.begin() + static_cast<std::ptrdiff_t>(s_shoup52_.rows * n),
                grown.v.begin());
      grown.rows = s_shoup52_.rows;
      s_shoup52_ = std::move(grown);
    }
    for (std::size_t i = s_shoup52_.rows; i < rows; ++i) {
      const std::uint64_t q = context_->modulus(i).value();
      const double ratio = 0x1p52 / static_cast<double>(q);
      const std::span<const std::uint64_t> srow = secret_key_->row(i);
      std::uint64_t* out = s_shoup52_.v.data() + i * n;
      for (std::size_t j = 0; j < n; ++j) {
        // A double estimate of floor(s 2^52 / q) (off by a few units at
        // most), corrected with the exact remainder s 2^52 - est q, which
        // is small enough to be exact modulo 2^64 as a signed word.
        const std::uint64_t sv = srow[j];
        auto est = static_cast<std::uint64_t>(static_cast<double>(sv) * ratio);
        auto rem = static_cast<std::int64_t>((sv << 52) - est * q);
        while (rem < 0) {
          --est;
          rem += static_cast<std::int64_t>(q);
        }
        while (rem >= static_cast<std::int64_t>(q)) {
          ++est;
          rem -= static_cast<std::int64_t>(q);
        }
        out[j] = est;
      }
    }
    s_shoup52_.rows = rows;
  }
  return {s_shoup52_.v.data(), rows * n};
}

Encryptor::Encryptor(std::shared_ptr<const CkksContext> context, const PublicKey& public_key)
    : context_(std::move(context)), public_key_(public_key), prg_(Prg::from_os()) {
  check_key();
}

Encryptor::Encryptor(std::shared_ptr<const CkksContext> context, const SecretKey& secret_key)
    : context_(std::move(context)), secret_key_(secret_key), prg_(Prg::from_os()) {
  check_key();
}

Encryptor::Encryptor(std::shared_ptr<const CkksContext> context, const PublicKey& public_key,
                     const Seed& test_seed)
    : context_(std::move(context)), public_key_(public_key), prg_(test_seed) {
  check_key();
}

Encryptor::Encryptor(std::shared_ptr<const CkksContext> context, const SecretKey& secret_key,
                     const Seed& test_seed)
    : context_(std::move(context)), secret_key_(secret_key), prg_(test_seed) {
  check_key();
}

void Encryptor::check_key() const {
  const CkksContext& ctx = *context_;
  if (public_key_) {
    check_context(ctx, public_key_->context_id, "public key");
    if (public_key_->a.size() != ctx.key_size() * ctx.n() ||
        public_key_->b.size() != public_key_->a.size()) {
      throw_error(ErrorCategory::kBadInput, "public key of the wrong size");
    }
  } else {
    check_context(ctx, secret_key_->context_id(), "secret key");
    if (secret_key_->data().size() != ctx.key_size() * ctx.n()) {
      throw_error(ErrorCategory::kBadInput, "secret key of the wrong size");
    }
  }
}

Ciphertext Encryptor::encrypt(const Plaintext& plain) {
  check_context(*context_, plain.context_id(), "plaintext");
  if (plain.level() < 0 || plain.level() > context_->max_level() ||
      plain.data().size() != plain.primes() * context_->n()) {
    throw_error(ErrorCategory::kBadInput, "malformed plaintext");
  }
  return encrypt_impl(&plain, plain.level(), plain.scale());
}

Ciphertext Encryptor::encrypt_zero(int level, double scale) {
  if (level < 0 || level > context_->max_level()) {
    throw_error(ErrorCategory::kBadInput, "level " + std::to_string(level) + " out of range");
  }
  return encrypt_impl(nullptr, level, scale);
}

Ciphertext Encryptor::encrypt_coefficients(std::span<const std::int64_t> coefficients, int level,
                                           double scale) {
  const CkksContext& ctx = *context_;
  const std::size_t n = ctx.n();
  if (coefficients.size() != n) {
    throw_error(ErrorCategory::kBadInput,
                "encrypt_coefficients: " + std::to_string(coefficients.size()) +
                    " coefficients for N = " + std::to_string(n));
  }
  if (level < 0 || level > ctx.max_level()) {
    throw_error(ErrorCategory::kBadInput, "level " + std::to_string(level) + " out of range");
  }
  // The largest magnitude, without overflow for INT64_MIN.
  std::uint64_t max_abs = 0;
  for (const std::int64_t c : coefficients) {
    const auto u = static_cast<std::uint64_t>(c);
    max_abs = std::max(max_abs, c < 0 ? std::uint64_t{0} - u : u);
  }
  const int log_q = ctx.chain_base(level).product_bits();
  if (max_abs >= (std::uint64_t{1} << 62) ||
      std::log2(static_cast<double>(max_abs) + 1) >= log_q - 1) {
    throw_error(ErrorCategory::kBadInput,
                "encrypt_coefficients: coefficients of about 2^" +
                    std::to_string(std::log2(static_cast<double>(max_abs) + 1)) +
                    " do not fit the modulus of level " + std::to_string(level));
  }
  const std::size_t rows = static_cast<std::size_t>(level + 1);
  if (public_key_) {
    // No error to share the transform with: the plaintext, then encrypt.
    Plaintext plain(ctx.id(), n, level, scale);
    for (std::size_t i = 0; i < rows; ++i) {
      signed_to_residues(coefficients, ctx.modulus(i), plain.row(i));
      ntt_forward(plain.row(i), ctx.ntt(i));
    }
    Ciphertext ct = encrypt_impl(&plain, level, scale);
    secure_wipe(plain.data());
    return ct;
  }
  // c1 = a (seeded, uniform: sampled directly in NTT form), and
  // c0 = NTT(m + e) - a s: the error e is drawn exactly as encrypt()'s.
  // Built field by field (Encryptor is a friend of Ciphertext): every
  // residue is written below, so no zero fill first.
  Ciphertext ct;
  ct.context_id_ = ctx.id();
  ct.n_ = n;
  ct.level_ = level;
  ct.scale_ = scale;
  ct.size_ = 2;
  ct.data_.resize(2 * rows * n);
  Seed seed;
  prg_.fill(seed);
  std::vector<std::int8_t> small(n);
  sample_cbd(prg_, small);
  // m + e as integers: |m| < 2^62 and |e| <= 21, so no overflow.
  std::vector<std::int64_t> sum(n);
  for (std::size_t j = 0; j < n; ++j) sum[j] = coefficients[j] + small[j];
  secure_wipe(std::span<std::int8_t>(small));
  // IFMA52 for a s when every prime of the level is below 2^50.
  bool ifma = isa_supported(Isa::kAvx512Ifma);
  for (std::size_t i = 0; i < rows; ++i) {
    ifma = ifma && ctx.modulus(i).value() < (std::uint64_t{1} << 50);
  }
  const std::span<const std::uint64_t> s_shoup52 =
      ifma ? secret_shoup52(rows) : std::span<const std::uint64_t>();
  PolyVector tmp(ifma ? 0 : n);
  for (std::size_t i = 0; i < rows; ++i) {
    const Modulus& q = ctx.modulus(i);
    std::span<std::uint64_t> c0 = ct.mutable_row(0, i);
    std::span<std::uint64_t> c1 = ct.mutable_row(1, i);
    if (max_abs + kCbdK < q.value()) {
      small_signed_to_residues(sum, q, c0);
    } else {
      signed_to_residues(sum, q, c0);
    }
    ntt_forward(c0, ctx.ntt(i));
    expand_uniform(seed, kCiphertextStream + i, q, c1);
    if (ifma) {
      const std::span<const std::uint64_t> srow = secret_key_->row(i);
      std::size_t j = sub_mul_shoup_ifma(c0.data(), c1.data(), srow.data(),
                                         s_shoup52.data() + i * n, q.value(), n);
      for (; j < n; ++j) c0[j] = sub_mod(c0[j], mul_mod(c1[j], srow[j], q), q);
    } else {
      mul_mod(c1, secret_key_->row(i), q, tmp);
      sub_mod(c0, tmp, q, c0);
    }
  }
  secure_wipe(std::span<std::int64_t>(sum));
  secure_wipe(std::span<std::uint64_t>(tmp));
  ct.set_seed(seed);
  return ct;
}

Ciphertext Encryptor::encrypt_impl(const Plaintext* plain, int level, double scale) {
  const CkksContext& ctx = *context_;
  const std::size_t n = ctx.n();
  const std::size_t rows = static_cast<std::size_t>(level + 1);
  Ciphertext ct(ctx.id(), n, level, scale, 2);
  std::vector<std::int8_t> small(n);
  PolyVector tmp(n);
  std::optional<Seed> seed;
  if (public_key_) {
    // Over Q_l * P: (u b + e0, u a + e1), then divided by P with rounding
    // (he/keyswitch.h, mod_down), as SEAL does: the noise u e + e0 + e1 s
    // shrinks by P and what remains is the rounding, about sqrt(N/18).
    const std::size_t ext_rows = rows + ctx.special_size();
    PolyVector ext0(ext_rows * n), ext1(ext_rows * n);
    std::vector<std::int8_t> u(n);
    sample_ternary(prg_, u);
    for (std::size_t r = 0; r < ext_rows; ++r) {
      const std::size_t ki = extended_key_index(ctx, level, r);
      const Modulus& q = ctx.modulus(ki);
      small_to_residues(u, q, tmp);
      ntt_forward(tmp, ctx.ntt(ki));
      mul_mod(tmp, {public_key_->b.data() + ki * n, n}, q, {ext0.data() + r * n, n});
      mul_mod(tmp, {public_key_->a.data() + ki * n, n}, q, {ext1.data() + r * n, n});
    }
    secure_wipe(std::span<std::int8_t>(u));
    for (PolyVector* ext : {&ext0, &ext1}) {
      sample_cbd(prg_, small);
      for (std::size_t r = 0; r < ext_rows; ++r) {
        const std::size_t ki = extended_key_index(ctx, level, r);
        const Modulus& q = ctx.modulus(ki);
        small_to_residues(small, q, tmp);
        ntt_forward(tmp, ctx.ntt(ki));
        std::span<std::uint64_t> c(ext->data() + r * n, n);
        add_mod(c, tmp, q, c);
      }
    }
    mod_down(ctx, level, ext0, ct.mutable_poly(0));
    mod_down(ctx, level, ext1, ct.mutable_poly(1));
    secure_wipe(std::span<std::uint64_t>(ext0));
    secure_wipe(std::span<std::uint64_t>(ext1));
  } else {
    // c1 = a (seeded), c0 = -a s + e.
    seed.emplace();
    prg_.fill(*seed);
    sample_cbd(prg_, small);
    for (std::size_t i = 0; i < rows; ++i) {
      const Modulus& q = ctx.modulus(i);
      std::span<std::uint64_t> c0 = ct.mutable_row(0, i);
      std::span<std::uint64_t> c1 = ct.mutable_row(1, i);
      expand_uniform(*seed, kCiphertextStream + i, q, c1);
      small_to_residues(small, q, tmp);
      ntt_forward(tmp, ctx.ntt(i));
      mul_mod(c1, secret_key_->row(i), q, c0);
      sub_mod(tmp, c0, q, c0);
    }
  }
  if (plain) {
    for (std::size_t i = 0; i < rows; ++i) {
      std::span<std::uint64_t> c0 = ct.mutable_row(0, i);
      add_mod(c0, plain->row(i), ctx.modulus(i), c0);
    }
  }
  // Last: mutable_row() forgets the seed, and adding m left c1 untouched.
  if (seed) ct.set_seed(*seed);
  secure_wipe(std::span<std::int8_t>(small));
  secure_wipe(std::span<std::uint64_t>(tmp));
  return ct;
}

Decryptor::Decryptor(std::shared_ptr<const CkksContext> context, const SecretKey& secret_key)
    : context_(std::move(context)), secret_key_(secret_key) {
  check_context(*context_, secret_key_.context_id(), "secret key");
}

Plaintext Decryptor::decrypt(const Ciphertext& ct) const {
  const CkksContext& ctx = *context_;
  check_context(ctx, ct.context_id(), "ciphertext");
  if (ct.size() < 2 || ct.size() > 3) {
    throw_error(ErrorCategory::kBadInput,
                "decrypt: ciphertext of size " + std::to_string(ct.size()) + " (2 or 3 expected)");
  }
  if (ct.level() < 0 || ct.level() > ctx.max_level() ||
      ct.data().size() != ct.size() * ct.primes() * ctx.n()) {
    throw_error(ErrorCategory::kBadInput, "malformed ciphertext");
  }
  const std::size_t n = ctx.n();
  Plaintext out(ctx.id(), n, ct.level(), ct.scale());
  PolyVector tmp(n);
  for (std::size_t i = 0; i < ct.primes(); ++i) {
    const Modulus& q = ctx.modulus(i);
    const std::span<const std::uint64_t> s = secret_key_.row(i);
    std::span<std::uint64_t> m = out.row(i);
    if (ct.size() == 3) {
      // Horner: (c2 s + c1) s + c0.
      mul_mod(ct.row(2, i), s, q, tmp);
      add_mod(tmp, ct.row(1, i), q, tmp);
      mul_mod(tmp, s, q, m);
    } else {
      mul_mod(ct.row(1, i), s, q, m);
    }
    add_mod(m, ct.row(0, i), q, m);
  }
  return out;
}

}  // namespace blindfold::he
