#include "he/context.h"

#include <bit>
#include <cmath>
#include <string>

#include "core/error.h"
#include "he/primes.h"

namespace blindfold::he {
namespace {

void bad(const std::string& what) {
  throw_error(ErrorCategory::kBadInput, "CKKS parameters: " + what);
}

void validate(const CkksParameters& p) {
  if (p.n < 8 || p.n > 65536 || !std::has_single_bit(p.n)) {
    bad("ring degree N = " + std::to_string(p.n) + " is not a power of two in [8, 65536]");
  }
  if (p.chain_bits.empty()) bad("the chain has no primes");
  for (int b : p.chain_bits) {
    if (b < 2 || b > kMaxPrimeBits) {
      bad("chain prime of " + std::to_string(b) + " bits (allowed: 2 .. 60)");
    }
  }
  if (p.special_primes < 1) bad("at least one special prime is needed for key switching");
  if (p.special_bits < 2 || p.special_bits > kMaxPrimeBits) {
    bad("special primes of " + std::to_string(p.special_bits) + " bits (allowed: 2 .. 60)");
  }
  const std::size_t total = p.chain_bits.size() + static_cast<std::size_t>(p.special_primes);
  if (total > RnsBase::kMaxSize) {
    bad(std::to_string(total) + " primes in all; at most " + std::to_string(RnsBase::kMaxSize));
  }
  if (p.dnum < 0 || static_cast<std::size_t>(p.dnum) > p.chain_bits.size()) {
    bad("dnum = " + std::to_string(p.dnum) + " outside [0, number of chain primes]");
  }
  if (!(p.log2_scale > 0 && p.log2_scale < 120)) {
    bad("log2(scale) = " + std::to_string(p.log2_scale) + " outside (0, 120)");
  }
}

// FNV-1a over 64-bit words.
std::uint64_t fnv1a(std::span<const std::uint64_t> words) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::uint64_t w : words) {
    for (int b = 0; b < 8; ++b) {
      h ^= (w >> (8 * b)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  }
  return h;
}

// x (little-endian words) mod q.
std::uint64_t words_mod(std::span<const std::uint64_t> x, const Modulus& q) {
  std::uint64_t r = 0;
  for (std::size_t w = x.size(); w-- > 0;) r = barrett_reduce_128((u128{r} << 64) | x[w], q);
  return r;
}

}  // namespace

ConversionTable make_conversion_table(std::span<const Modulus> moduli,
                                      std::vector<std::size_t> from) {
  ConversionTable t;
  std::vector<Modulus> src;
  for (std::size_t i : from) src.push_back(moduli[i]);
  const RnsBase base(src);
  const std::size_t k = from.size();
  t.inv_punctured.resize(k);
  t.inv_punctured_shoup.resize(k);
  for (std::size_t i = 0; i < k; ++i) {
    t.inv_punctured[i] = base.inv_punctured(i);
    t.inv_punctured_shoup[i] = base.inv_punctured_shoup(i);
  }
  t.matrix.assign(moduli.size() * k, 0);
  t.neg_product.assign(moduli.size(), 0);
  for (std::size_t i = 0; i < k; ++i)
    t.inv_from.push_back(1.0 / static_cast<double>(src[i].value()));
  for (std::size_t to = 0; to < moduli.size(); ++to) {
    bool in_from = false;
    for (std::size_t f : from) in_from = in_from || f == to;
    if (in_from) continue;
    for (std::size_t i = 0; i < k; ++i) {
      t.matrix[to * k + i] = words_mod(base.punctured_product(i), moduli[to]);
    }
    t.neg_product[to] = negate_mod(words_mod(base.product(), moduli[to]), moduli[to]);
  }
  t.from = std::move(from);
  return t;
}

void fast_convert_prepare(const ConversionTable& table, std::span<const Modulus> moduli,
                          std::span<const std::uint64_t* const> in, std::size_t n,
                          std::span<std::uint64_t> scratch, bool centred) {
  const std::size_t k = table.from.size();
  if (in.size() != k || scratch.size() < (k + 1) * n) {
    throw_error(ErrorCategory::kInternal, "fast_convert_prepare: inconsistent sizes");
  }
  if (k == 1) return;  // nothing to prepare: (S/s_0) = 1
  // y_i = [x_i * (S/s_i)^-1]_{s_i}, one Shoup product per coefficient.
  for (std::size_t i = 0; i < k; ++i) {
    mul_scalar_mod({in[i], n}, table.inv_punctured[i], moduli[table.from[i]],
                   scratch.subspan(i * n, n));
  }
  // e = round(sum_i y_i / s_i): sum_i y_i (S/s_i) = x + floor(sum_i y_i / s_i) S
  // exactly, so subtracting round(.) S leaves the centred x'.
  if (centred) {
    std::uint64_t* e = scratch.data() + k * n;
    for (std::size_t c = 0; c < n; ++c) {
      double v = 0;
      for (std::size_t i = 0; i < k; ++i) {
        v += static_cast<double>(scratch[i * n + c]) * table.inv_from[i];
      }
      e[c] = static_cast<std::uint64_t>(v + 0.5);
    }
  }
}

void fast_convert_finish(const ConversionTable& table, std::span<const Modulus> moduli,
                         std::span<const std::uint64_t* const> in, std::span<const std::size_t> to,
                         std::span<std::uint64_t* const> out, std::size_t n,
                         std::span<const std::uint64_t> scratch, bool centred) {
  const std::size_t k = table.from.size();
  if (in.size() != k || out.size() != to.size() || scratch.size() < (k + 1) * n) {
    throw_error(ErrorCategory::kInternal, "fast_convert_finish: inconsistent sizes");
  }
  if (k == 1) {
    // One source prime s: (S/s) = 1, so the conversion is x mod t, or for
    // the centred lift x - s when x > s/2.
    const Modulus& s = moduli[table.from[0]];
    const std::uint64_t half = centred ? s.value() >> 1 : ~std::uint64_t{0};
    for (std::size_t r = 0; r < to.size(); ++r) {
      const Modulus& t = moduli[to[r]];
      const std::uint64_t neg_s = table.neg_product[to[r]];
      const std::uint64_t tv = t.value();
      const std::uint64_t* x = in[0];
      std::uint64_t* o = out[r];
      // x mod t (vectorised Shoup product by 1), then the centring
      // correction in a branch-free pass the compiler vectorises.
      if (s.value() < tv) {
        std::copy(x, x + n, o);
      } else {
        mul_scalar_mod({x, n}, 1, t, {o, n});
      }
      for (std::size_t c = 0; c < n; ++c) {
        const std::uint64_t y = o[c] + (x[c] > half ? neg_s : 0);
        o[c] = y >= tv ? y - tv : y;
      }
    }
    return;
  }
  // x'_t = sum_i y_i * [(S/s_i) mod t] (+ e * (-S mod t)), exactly in 128
  // bits (at most 65 products below 2^122) and reduced once.
  const std::uint64_t* e = scratch.data() + k * n;
  for (std::size_t r = 0; r < to.size(); ++r) {
    const Modulus& t = moduli[to[r]];
    const std::uint64_t* row = table.matrix.data() + to[r] * k;
    const std::uint64_t neg_s = table.neg_product[to[r]];
    std::uint64_t* dst = out[r];
    for (std::size_t c = 0; c < n; ++c) {
      u128 acc = centred ? u128{e[c]} * neg_s : 0;
      for (std::size_t i = 0; i < k; ++i) acc += u128{scratch[i * n + c]} * row[i];
      dst[c] = barrett_reduce_128(acc, t);
    }
  }
}

void fast_convert(const ConversionTable& table, std::span<const Modulus> moduli,
                  std::span<const std::uint64_t* const> in, std::span<const std::size_t> to,
                  std::span<std::uint64_t* const> out, std::size_t n,
                  std::span<std::uint64_t> scratch, bool centred) {
  fast_convert_prepare(table, moduli, in, n, scratch, centred);
  fast_convert_finish(table, moduli, in, to, out, n, scratch, centred);
}

std::shared_ptr<const CkksContext> CkksContext::create(const CkksParameters& params) {
  return std::shared_ptr<const CkksContext>(new CkksContext(params, true));
}

std::shared_ptr<const CkksContext> CkksContext::create_insecure_for_tests(
    const CkksParameters& params) {
  return std::shared_ptr<const CkksContext>(new CkksContext(params, false));
}

CkksContext::CkksContext(const CkksParameters& params, bool check) : params_(params) {
  validate(params_);
  const std::size_t n = params_.n;
  log_n_ = std::countr_zero(n);
  k_ = params_.special_primes;
  const std::size_t chain = params_.chain_bits.size();

  // Primes: chain then special, deterministic (SEAL's CoeffModulus::Create
  // order: equal sizes take successive primes downward from 2^bits).
  std::vector<int> bits = params_.chain_bits;
  bits.insert(bits.end(), static_cast<std::size_t>(k_), params_.special_bits);
  moduli_ = ntt_prime_chain(n, bits);
  log_qp_ = RnsBase(moduli_).product_bits();

  if (check) {
    const SecurityCheck c = check_security(n, log_qp_, params_.security);
    if (c != SecurityCheck::kOk) {
      throw_error(ErrorCategory::kInsecureParameters,
                  "CKKS parameters " + params_.describe() + " refused: " +
                      std::string(describe(c)) + " (log2(Q*P) = " + std::to_string(log_qp_) +
                      ", bound " + std::to_string(max_log_qp(n, params_.security)) + " at " +
                      std::to_string(static_cast<int>(params_.security)) + "-bit security)");
    }
    secure_ = true;
  }

  // Digits of hybrid key switching, and the rule that keeps its noise small:
  // each digit's modulus must not exceed P.
  alpha_ = params_.dnum == 0 ? static_cast<std::size_t>(k_)
                             : (chain + static_cast<std::size_t>(params_.dnum) - 1) /
                                   static_cast<std::size_t>(params_.dnum);
  if (alpha_ > chain) alpha_ = chain;
  dnum_ = (chain + alpha_ - 1) / alpha_;
  {
    std::vector<Modulus> special(moduli_.begin() + static_cast<std::ptrdiff_t>(chain),
                                 moduli_.end());
    const int p_bits = RnsBase(special).product_bits();
    for (std::size_t d = 0; d < dnum_; ++d) {
      const std::size_t lo = d * alpha_, hi = std::min(chain, lo + alpha_);
      const int d_bits = RnsBase({moduli_.begin() + static_cast<std::ptrdiff_t>(lo),
                                  moduli_.begin() + static_cast<std::ptrdiff_t>(hi)})
                             .product_bits();
      if (d_bits > p_bits) {
        bad(params_.describe() + ": key-switching digit " + std::to_string(d) + " has " +
            std::to_string(d_bits) + " bits, more than P's " + std::to_string(p_bits) +
            " (add special primes or digits)");
      }
    }
  }

  std::vector<std::uint64_t> fp = {n, alpha_};
  for (const Modulus& q : moduli_) fp.push_back(q.value());
  id_ = fnv1a(fp);
  default_scale_ = std::exp2(params_.log2_scale);

  ntt_.reserve(moduli_.size());
  for (const Modulus& q : moduli_) ntt_.emplace_back(n, q);
  chain_bases_.reserve(chain);
  for (std::size_t l = 0; l < chain; ++l) {
    chain_bases_.emplace_back(std::vector<Modulus>(
        moduli_.begin(), moduli_.begin() + static_cast<std::ptrdiff_t>(l + 1)));
  }

  // Rescale at level l: q_l^-1 mod q_i for i < l.
  inv_last_.resize(chain * (chain - 1) / 2);
  inv_last_shoup_.resize(inv_last_.size());
  for (std::size_t l = 1; l < chain; ++l) {
    for (std::size_t i = 0; i < l; ++i) {
      const std::uint64_t v = inv_mod(moduli_[l].value(), moduli_[i]);
      inv_last_[tri(static_cast<int>(l)) + i] = v;
      inv_last_shoup_[tri(static_cast<int>(l)) + i] = shoup(v, moduli_[i]);
    }
  }

  // Key switching. P mod q_i and P^-1 mod q_i.
  p_mod_q_.resize(chain);
  inv_p_mod_q_.resize(chain);
  inv_p_mod_q_shoup_.resize(chain);
  for (std::size_t i = 0; i < chain; ++i) {
    std::uint64_t p = 1;
    for (int j = 0; j < k_; ++j) {
      p = mul_mod(p,
                  barrett_reduce_64(moduli_[special_index(static_cast<std::size_t>(j))].value(),
                                    moduli_[i]),
                  moduli_[i]);
    }
    p_mod_q_[i] = p;
    inv_p_mod_q_[i] = inv_mod(p, moduli_[i]);
    inv_p_mod_q_shoup_[i] = shoup(inv_p_mod_q_[i], moduli_[i]);
  }
  // ModUp tables: digit d restricted to its first `count` primes.
  mod_up_.resize(dnum_ * alpha_);
  for (std::size_t d = 0; d < dnum_; ++d) {
    for (std::size_t count = 1; count <= alpha_ && d * alpha_ + count <= chain; ++count) {
      std::vector<std::size_t> from;
      for (std::size_t i = 0; i < count; ++i) from.push_back(d * alpha_ + i);
      mod_up_[d * alpha_ + count - 1] = make_conversion_table(moduli_, std::move(from));
    }
  }
  {
    std::vector<std::size_t> from;
    for (int j = 0; j < k_; ++j) from.push_back(special_index(static_cast<std::size_t>(j)));
    mod_down_ = make_conversion_table(moduli_, std::move(from));
  }
}

}  // namespace blindfold::he
