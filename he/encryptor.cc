#include "he/encryptor.h"

#include <cmath>
#include <string>

#include "core/error.h"
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

}  // namespace

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
