#include "he/evaluator.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "he/encoder.h"
#include "he/keyswitch.h"
#include "he/ntt.h"

namespace blindfold::he {
namespace {

[[noreturn]] void bad(const std::string& what) {
  throw_error(ErrorCategory::kBadInput, "CKKS evaluator: " + what);
}

bool same_scale(double a, double b) {
  return std::fabs(a - b) <= std::exp2(-40) * std::max(std::fabs(a), std::fabs(b));
}

// x + s for every x, s in [0, q).
void add_scalar_mod(std::span<std::uint64_t> v, std::uint64_t s, const Modulus& q) {
  const std::uint64_t m = q.value();
  for (auto& x : v) {
    const std::uint64_t t = x + s;
    x = t >= m ? t - m : t;
  }
}

void check_switch_key(const CkksContext& ctx, const KeySwitchKey& k, const char* what) {
  const std::size_t words = ctx.dnum() * ctx.key_size() * ctx.n();
  if (k.context_id != ctx.id() || k.n != ctx.n() || k.key_size != ctx.key_size() ||
      k.dnum != ctx.dnum() || k.b.size() != words || k.a.size() != words) {
    bad(std::string(what) + " of another context or malformed");
  }
}

}  // namespace

Evaluator::Evaluator(std::shared_ptr<const CkksContext> context, ThreadPool* pool)
    : context_(std::move(context)), pool_(pool) {}

void Evaluator::check(const Ciphertext& a) const {
  const CkksContext& ctx = *context_;
  if (a.context_id() != ctx.id() || a.n() != ctx.n()) bad("ciphertext of another context");
  if (a.level() < 0 || a.level() > ctx.max_level() || a.size() < 2 ||
      a.data().size() != a.size() * a.primes() * ctx.n()) {
    bad("malformed ciphertext");
  }
}

void Evaluator::check(const Plaintext& p) const {
  const CkksContext& ctx = *context_;
  if (p.context_id() != ctx.id() || p.n() != ctx.n()) bad("plaintext of another context");
  if (p.level() < 0 || p.level() > ctx.max_level() || p.data().size() != p.primes() * ctx.n()) {
    bad("malformed plaintext");
  }
}

void Evaluator::check_same(const Ciphertext& a, const Ciphertext& b) const {
  check(a);
  check(b);
  if (a.level() != b.level()) {
    bad("operands at levels " + std::to_string(a.level()) + " and " + std::to_string(b.level()) +
        " (drop_to_level or rescale first)");
  }
}

void Evaluator::check_same(const Ciphertext& a, const Plaintext& p) const {
  check(a);
  check(p);
  if (a.level() != p.level()) {
    bad("ciphertext at level " + std::to_string(a.level()) + ", plaintext at level " +
        std::to_string(p.level()));
  }
}

// ---- additive --------------------------------------------------------------

void Evaluator::add_sub_inplace(Ciphertext& a, const Ciphertext& b, bool subtract) const {
  check_same(a, b);
  if (!same_scale(a.scale(), b.scale())) {
    bad("scales 2^" + std::to_string(std::log2(a.scale())) + " and 2^" +
        std::to_string(std::log2(b.scale())) + " differ");
  }
  if (b.size() > a.size()) a.resize(b.size());
  const CkksContext& ctx = *context_;
  for (std::size_t k = 0; k < b.size(); ++k) {
    for (std::size_t i = 0; i < a.primes(); ++i) {
      std::span<std::uint64_t> x = a.mutable_row(k, i);
      if (subtract) {
        sub_mod(x, b.row(k, i), ctx.modulus(i), x);
      } else {
        add_mod(x, b.row(k, i), ctx.modulus(i), x);
      }
    }
  }
}

void Evaluator::add_inplace(Ciphertext& a, const Ciphertext& b) const {
  add_sub_inplace(a, b, false);
}
void Evaluator::sub_inplace(Ciphertext& a, const Ciphertext& b) const {
  add_sub_inplace(a, b, true);
}

Ciphertext Evaluator::add(const Ciphertext& a, const Ciphertext& b) const {
  Ciphertext r = a;
  add_inplace(r, b);
  return r;
}

Ciphertext Evaluator::sub(const Ciphertext& a, const Ciphertext& b) const {
  Ciphertext r = a;
  sub_inplace(r, b);
  return r;
}

Ciphertext Evaluator::negate(const Ciphertext& a) const {
  check(a);
  Ciphertext r = a;
  for (std::size_t k = 0; k < r.size(); ++k) {
    for (std::size_t i = 0; i < r.primes(); ++i) {
      std::span<std::uint64_t> x = r.mutable_row(k, i);
      negate_mod(x, context_->modulus(i), x);
    }
  }
  return r;
}

Ciphertext Evaluator::add_plain(const Ciphertext& a, const Plaintext& p) const {
  check_same(a, p);
  if (!same_scale(a.scale(), p.scale())) bad("ciphertext and plaintext scales differ");
  Ciphertext r = a;
  for (std::size_t i = 0; i < r.primes(); ++i) {
    std::span<std::uint64_t> x = r.mutable_row(0, i);
    add_mod(x, p.row(i), context_->modulus(i), x);
  }
  if (a.seed()) r.set_seed(*a.seed());  // c1 untouched
  return r;
}

Ciphertext Evaluator::sub_plain(const Ciphertext& a, const Plaintext& p) const {
  check_same(a, p);
  if (!same_scale(a.scale(), p.scale())) bad("ciphertext and plaintext scales differ");
  Ciphertext r = a;
  for (std::size_t i = 0; i < r.primes(); ++i) {
    std::span<std::uint64_t> x = r.mutable_row(0, i);
    sub_mod(x, p.row(i), context_->modulus(i), x);
  }
  if (a.seed()) r.set_seed(*a.seed());
  return r;
}

Ciphertext Evaluator::add_scalar(const Ciphertext& a, double value) const {
  check(a);
  if (!std::isfinite(value)) bad("scalar is not finite");
  const double v = std::nearbyint(value * a.scale());
  if (std::log2(std::fabs(v) + 1) >= context_->chain_base(a.level()).product_bits() - 1) {
    bad("scalar too large for the ciphertext's level");
  }
  Ciphertext r = a;
  // The constant polynomial v has the value v at every root: in NTT form,
  // v in every entry.
  for (std::size_t i = 0; i < r.primes(); ++i) {
    add_scalar_mod(r.mutable_row(0, i), rounded_residue(v, context_->modulus(i)),
                   context_->modulus(i));
  }
  if (a.seed()) r.set_seed(*a.seed());
  return r;
}

// ---- multiplicative --------------------------------------------------------

void Evaluator::multiply_plain_inplace(Ciphertext& a, const Plaintext& p) const {
  check_same(a, p);
  if (std::log2(a.scale() * p.scale()) >= context_->chain_base(a.level()).product_bits() - 1) {
    bad("the product's scale does not fit the modulus at level " + std::to_string(a.level()));
  }
  for (std::size_t k = 0; k < a.size(); ++k) {
    for (std::size_t i = 0; i < a.primes(); ++i) {
      std::span<std::uint64_t> x = a.mutable_row(k, i);
      mul_mod(x, p.row(i), context_->modulus(i), x);
    }
  }
  a.set_scale(a.scale() * p.scale());
}

Ciphertext Evaluator::multiply_plain(const Ciphertext& a, const Plaintext& p) const {
  Ciphertext r = a;
  multiply_plain_inplace(r, p);
  return r;
}

Ciphertext Evaluator::multiply_scalar(const Ciphertext& a, double value, double scale) const {
  check(a);
  if (!std::isfinite(value) || !(scale > 0) || !std::isfinite(scale)) {
    bad("scalar and scale must be finite, the scale positive");
  }
  const double v = std::nearbyint(value * scale);
  const int log_q = context_->chain_base(a.level()).product_bits();
  if (std::log2(std::fabs(v) + 1) >= log_q - 1 || std::log2(a.scale() * scale) >= log_q - 1) {
    bad("scalar or scale too large for the modulus at level " + std::to_string(a.level()));
  }
  Ciphertext r = a;
  for (std::size_t i = 0; i < r.primes(); ++i) {
    const Modulus& q = context_->modulus(i);
    const std::uint64_t s = rounded_residue(v, q);
    for (std::size_t k = 0; k < r.size(); ++k) {
      std::span<std::uint64_t> x = r.mutable_row(k, i);
      mul_scalar_mod(x, s, q, x);
    }
  }
  r.set_scale(a.scale() * scale);
  return r;
}

Ciphertext Evaluator::multiply_scalar(const Ciphertext& a, double value) const {
  check(a);
  return multiply_scalar(
      a, value,
      static_cast<double>(context_->modulus(static_cast<std::size_t>(a.level())).value()));
}

Ciphertext Evaluator::multiply(const Ciphertext& a, const Ciphertext& b) const {
  check_same(a, b);
  if (a.size() != 2 || b.size() != 2) {
    bad("multiply takes two size-2 ciphertexts (relinearize first)");
  }
  const double scale = a.scale() * b.scale();
  if (std::log2(scale) >= context_->chain_base(a.level()).product_bits() - 1) {
    bad("the product's scale 2^" + std::to_string(std::log2(scale)) +
        " does not fit the modulus at level " + std::to_string(a.level()) + " (rescale first)");
  }
  const std::size_t n = context_->n();
  Ciphertext r(context_->id(), n, a.level(), scale, 3);
  std::span<std::uint64_t> out = r.mutable_data();
  const std::size_t primes = a.primes();
  for_each_task(pool_, primes, [&](std::size_t i) {
    const Modulus& q = context_->modulus(i);
    const auto a0 = a.row(0, i), a1 = a.row(1, i), b0 = b.row(0, i), b1 = b.row(1, i);
    std::span<std::uint64_t> d0 = out.subspan(i * n, n);
    std::span<std::uint64_t> d1 = out.subspan((primes + i) * n, n);
    std::span<std::uint64_t> d2 = out.subspan((2 * primes + i) * n, n);
    mul_mod(a0, b1, q, d1);
    mul_mod(a1, b0, q, d0);  // d0 as scratch for a1 b0
    add_mod(d1, d0, q, d1);
    mul_mod(a0, b0, q, d0);
    mul_mod(a1, b1, q, d2);
  });
  return r;
}

Ciphertext Evaluator::square(const Ciphertext& a) const {
  return multiply(a, a);
}

void Evaluator::relinearize_inplace(Ciphertext& a, const RelinKeys& keys) const {
  check(a);
  check_switch_key(*context_, keys.key, "relinearization key");
  if (a.size() == 2) return;
  if (a.size() != 3) bad("relinearize takes a size-3 ciphertext");
  const std::size_t len = a.primes() * context_->n();
  PolyVector k0(len), k1(len);
  switch_key(*context_, a.level(), a.poly(2), keys.key, k0, k1, pool_);
  for (std::size_t i = 0; i < a.primes(); ++i) {
    const Modulus& q = context_->modulus(i);
    const std::size_t off = i * context_->n();
    std::span<std::uint64_t> c0 = a.mutable_row(0, i);
    std::span<std::uint64_t> c1 = a.mutable_row(1, i);
    add_mod(c0, std::span<const std::uint64_t>(k0).subspan(off, c0.size()), q, c0);
    add_mod(c1, std::span<const std::uint64_t>(k1).subspan(off, c1.size()), q, c1);
  }
  a.resize(2);
}

Ciphertext Evaluator::relinearize(const Ciphertext& a, const RelinKeys& keys) const {
  Ciphertext r = a;
  relinearize_inplace(r, keys);
  return r;
}

// ---- modulus ---------------------------------------------------------------

void Evaluator::rescale_inplace(Ciphertext& a) const {
  check(a);
  const int l = a.level();
  if (l == 0) bad("cannot rescale at level 0");
  const CkksContext& ctx = *context_;
  const std::size_t n = ctx.n();
  const auto last = static_cast<std::size_t>(l);
  const Modulus& ql = ctx.modulus(last);
  const std::uint64_t half = ql.value() >> 1;
  // Per polynomial k: x = c_k mod q_l + floor(q_l/2), in coefficient form;
  // then (c - ([x]_{q_i} - floor(q_l/2))) / q_l = round(c / q_l) for i < l.
  std::vector<PolyVector> xs(a.size(), PolyVector(n));
  for_each_task(pool_, a.size(), [&](std::size_t k) {
    const auto src = a.row(k, last);
    std::copy(src.begin(), src.end(), xs[k].begin());
    ntt_inverse(xs[k], ctx.ntt(last));
    add_scalar_mod(xs[k], half, ql);
  });
  std::span<std::uint64_t> data = a.mutable_data();
  const std::size_t primes = a.primes();
  for_each_task(pool_, a.size() * last, [&](std::size_t task) {
    const std::size_t k = task / last, i = task % last;
    const std::uint64_t* x = xs[k].data();
    PolyVector t(n);
    const Modulus& q = ctx.modulus(i);
    const std::uint64_t half_i = barrett_reduce_64(half, q);
    const std::uint64_t qv = q.value();
    // t = [x]_{q_i} - floor(q_l/2) mod q_i.
    if (ql.value() < qv) {
      for (std::size_t c = 0; c < n; ++c) {
        const std::uint64_t d = x[c] + qv - half_i;
        t[c] = d >= qv ? d - qv : d;
      }
    } else {
      for (std::size_t c = 0; c < n; ++c) {
        const std::uint64_t d = barrett_reduce_64(x[c], q) + qv - half_i;
        t[c] = d >= qv ? d - qv : d;
      }
    }
    ntt_forward(t, ctx.ntt(i), NttOutput::kReduced);
    // (c - t) * q_l^-1: c - t + q in [1, 2q) < 2^62, any 64-bit input
    // suits the Shoup product.
    std::uint64_t* c = data.data() + (k * primes + i) * n;
    const std::uint64_t w = ctx.inv_last(l, i), ws = ctx.inv_last_shoup(l, i);
    for (std::size_t j = 0; j < n; ++j) c[j] = mul_mod_shoup(c[j] + qv - t[j], w, ws, q);
  });
  a.drop_to_level(l - 1);
  a.set_scale(a.scale() / static_cast<double>(ql.value()));
}

Ciphertext Evaluator::rescale(const Ciphertext& a) const {
  Ciphertext r = a;
  rescale_inplace(r);
  return r;
}

Ciphertext Evaluator::drop_to_level(const Ciphertext& a, int level) const {
  check(a);
  Ciphertext r = a;
  r.drop_to_level(level);
  return r;
}

Plaintext Evaluator::drop_to_level(const Plaintext& p, int level) const {
  check(p);
  Plaintext r = p;
  r.drop_to_level(level);
  return r;
}

// ---- rotations -------------------------------------------------------------

std::vector<Ciphertext> Evaluator::galois_hoisted(const Ciphertext& a,
                                                  std::span<const std::uint64_t> elements,
                                                  const GaloisKeys& keys) const {
  check(a);
  if (a.size() != 2) bad("rotations take a size-2 ciphertext (relinearize first)");
  if (keys.context_id != context_->id()) bad("Galois keys of another context");
  const CkksContext& ctx = *context_;
  const std::size_t n = ctx.n();
  const int l = a.level();
  const std::size_t rows = a.primes() + ctx.special_size();
  std::vector<const GaloisKeys::Entry*> entries;
  for (std::uint64_t g : elements) {
    entries.push_back(g == 1 ? nullptr : &keys.at(g));
    if (entries.back()) {
      check_switch_key(ctx, entries.back()->key, "Galois key");
      if (entries.back()->perm.size() != n) bad("Galois key without its permutation");
    }
  }

  PolyVector dec;
  for (const auto* e : entries) {
    if (e) {
      dec = decompose(ctx, l, a.poly(1), pool_);  // once for all rotations
      break;
    }
  }
  PolyVector acc0(rows * n), acc1(rows * n);
  std::vector<Ciphertext> out;
  out.reserve(elements.size());
  for (const auto* e : entries) {
    if (!e) {
      out.push_back(a);
      continue;
    }
    Ciphertext r(ctx.id(), n, l, a.scale(), 2);
    inner_product(ctx, l, dec, e->key, e->perm, acc0, acc1, pool_);
    const std::span<std::uint64_t> ins[2] = {acc0, acc1};
    const std::span<std::uint64_t> outs[2] = {r.mutable_poly(0), r.mutable_poly(1)};
    mod_down(ctx, l, ins, outs, pool_);
    // c0' = phi(c0) + (key-switched part).
    const std::uint32_t* perm = e->perm.data();
    for (std::size_t i = 0; i < a.primes(); ++i) {
      const Modulus& q = ctx.modulus(i);
      const std::uint64_t* src = a.row(0, i).data();
      std::uint64_t* dst = r.mutable_row(0, i).data();
      const std::uint64_t qv = q.value();
      for (std::size_t c = 0; c < n; ++c) {
        const std::uint64_t s = dst[c] + src[perm[c]];
        dst[c] = s >= qv ? s - qv : s;
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

Ciphertext Evaluator::apply_galois(const Ciphertext& a, std::uint64_t galois_element,
                                   const GaloisKeys& keys) const {
  const std::uint64_t g[1] = {galois_element};
  return std::move(galois_hoisted(a, g, keys)[0]);
}

Ciphertext Evaluator::rotate(const Ciphertext& a, int steps, const GaloisKeys& keys) const {
  return apply_galois(a, galois_element_for_rotation(steps, context_->n()), keys);
}

std::vector<Ciphertext> Evaluator::rotate_hoisted(const Ciphertext& a, std::span<const int> steps,
                                                  const GaloisKeys& keys) const {
  std::vector<std::uint64_t> elements;
  for (int s : steps) elements.push_back(galois_element_for_rotation(s, context_->n()));
  return galois_hoisted(a, elements, keys);
}

Ciphertext Evaluator::conjugate(const Ciphertext& a, const GaloisKeys& keys) const {
  return apply_galois(a, galois_element_for_conjugation(context_->n()), keys);
}

}  // namespace blindfold::he
