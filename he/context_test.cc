// CkksContext: deterministic primes of the right shapes, the HE Standard
// check (refusal with the reason, the named insecure way around it),
// malformed parameters refused, and the rescale and key-switching constants
// checked against their definitions (fast base conversion against GMP-free
// exact CRT through RnsBase::compose).
#include "he/context.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "core/error.h"
#include "he/primes.h"

namespace blindfold::he {
namespace {

ErrorCategory category_of(const CkksParameters& p, bool secure = true) {
  try {
    if (secure) {
      CkksContext::create(p);
    } else {
      CkksContext::create_insecure_for_tests(p);
    }
  } catch (const Error& e) {
    return e.category();
  }
  return ErrorCategory::kInternal;  // "no error"
}

TEST(CkksContext, DefaultSetsAreSecureAndWellFormed) {
  for (const CkksParameters& p :
       {CkksParameters::n8192_default(), CkksParameters::n16384_default()}) {
    const auto ctx = CkksContext::create(p);
    EXPECT_TRUE(ctx->secure());
    EXPECT_LE(ctx->log_qp(), max_log_qp(p.n, SecurityLevel::k128));
    EXPECT_EQ(ctx->chain_size(), p.chain_bits.size());
    EXPECT_EQ(ctx->special_size(), 1u);
    EXPECT_EQ(ctx->key_size(), p.chain_bits.size() + 1);
    EXPECT_EQ(ctx->alpha(), 1u);
    EXPECT_EQ(ctx->dnum(), p.chain_bits.size());
    EXPECT_EQ(ctx->slots(), p.n / 2);
    EXPECT_EQ(ctx->default_scale(), std::exp2(40));
    std::set<std::uint64_t> seen;
    for (std::size_t i = 0; i < ctx->key_size(); ++i) {
      const Modulus& q = ctx->modulus(i);
      const int want = i < ctx->chain_size() ? p.chain_bits[i] : p.special_bits;
      EXPECT_EQ(q.bits(), want) << i;
      EXPECT_TRUE(is_prime(q.value()));
      EXPECT_EQ(q.value() % (2 * p.n), 1u);
      EXPECT_TRUE(seen.insert(q.value()).second) << "duplicate prime";
      EXPECT_EQ(ctx->ntt(i).modulus(), q);
    }
  }
  // {60, 40, 40 | 60}: 200 bits at N = 8192 (SEAL's default 128-bit set).
  EXPECT_EQ(CkksContext::create(CkksParameters::n8192_default())->log_qp(), 200);
}

TEST(CkksContext, Deterministic) {
  const auto a = CkksContext::create(CkksParameters::n8192_default());
  const auto b = CkksContext::create(CkksParameters::n8192_default());
  EXPECT_EQ(a->id(), b->id());
  for (std::size_t i = 0; i < a->key_size(); ++i) EXPECT_EQ(a->modulus(i), b->modulus(i));
  // The chain's first prime and the special prime are the two largest
  // 60-bit primes = 1 mod 2N, in that order (as SEAL's CoeffModulus::Create).
  const auto top = ntt_primes(60, 2, 8192);
  EXPECT_EQ(a->modulus(0).value(), top[0]);
  EXPECT_EQ(a->modulus(a->special_index(0)).value(), top[1]);
  auto p = CkksParameters::n8192_default();
  p.chain_bits = {60, 40};
  EXPECT_NE(CkksContext::create(p)->id(), a->id());
}

TEST(CkksContext, RefusesInsecureParametersWithTheReason) {
  auto p = CkksParameters::n8192_default();
  p.chain_bits = {60, 40, 40, 40, 40};  // 260 bits with P > 218
  try {
    CkksContext::create(p);
    FAIL() << "insecure parameters accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInsecureParameters);
    const std::string what = e.what();
    EXPECT_NE(what.find("exceeds the HE Standard"), std::string::npos) << what;
    EXPECT_NE(what.find("bound 218"), std::string::npos) << what;
  }
  const auto ctx = CkksContext::create_insecure_for_tests(p);
  EXPECT_FALSE(ctx->secure());

  // 192-bit security: 200 bits at N = 8192 is above 152.
  auto q = CkksParameters::n8192_default();
  q.security = SecurityLevel::k192;
  EXPECT_EQ(category_of(q), ErrorCategory::kInsecureParameters);
  // Toy degrees are never secure, but the test context builds.
  auto t = CkksParameters::n8192_default();
  t.n = 32;
  EXPECT_EQ(category_of(t), ErrorCategory::kInsecureParameters);
  EXPECT_NO_THROW(CkksContext::create_insecure_for_tests(t));
  // 2^16 with a long chain is fine.
  CkksParameters big;
  big.n = 65536;
  big.chain_bits.assign(20, 50);
  EXPECT_NO_THROW(CkksContext::create(big));
}

TEST(CkksContext, RefusesMalformedParameters) {
  const auto base = CkksParameters::n8192_default();
  CkksParameters p = base;
  p.n = 0;
  EXPECT_EQ(category_of(p), ErrorCategory::kBadInput);  // the default-constructed set
  EXPECT_EQ(category_of(CkksParameters{}), ErrorCategory::kBadInput);
  p = base;
  p.n = 12288;
  EXPECT_EQ(category_of(p, false), ErrorCategory::kBadInput);
  p = base;
  p.n = 131072;
  EXPECT_EQ(category_of(p, false), ErrorCategory::kBadInput);
  p = base;
  p.chain_bits = {};
  EXPECT_EQ(category_of(p, false), ErrorCategory::kBadInput);
  p = base;
  p.chain_bits = {61, 40};
  EXPECT_EQ(category_of(p, false), ErrorCategory::kBadInput);
  p = base;
  p.special_primes = 0;
  EXPECT_EQ(category_of(p, false), ErrorCategory::kBadInput);
  p = base;
  p.dnum = 4;
  EXPECT_EQ(category_of(p, false), ErrorCategory::kBadInput);
  p = base;
  p.log2_scale = 0;
  EXPECT_EQ(category_of(p, false), ErrorCategory::kBadInput);
  // One digit of 140 bits cannot be absorbed by a 60-bit P.
  p = base;
  p.dnum = 1;
  EXPECT_EQ(category_of(p, false), ErrorCategory::kBadInput);
  // ... but two special primes absorb digits of two 40-bit primes.
  p = CkksParameters::n16384_default();
  p.special_primes = 2;
  const auto ctx = CkksContext::create(p);
  EXPECT_EQ(ctx->alpha(), 2u);
  EXPECT_EQ(ctx->dnum(), 4u);
  EXPECT_EQ(ctx->digits_at(0), 1u);
  EXPECT_EQ(ctx->digits_at(1), 1u);
  EXPECT_EQ(ctx->digits_at(2), 2u);
  EXPECT_EQ(ctx->digits_at(6), 4u);
}

TEST(CkksContext, RescaleAndKeySwitchingConstants) {
  auto p = CkksParameters::n16384_default();
  p.special_primes = 2;
  const auto ctx = CkksContext::create(p);
  const std::size_t chain = ctx->chain_size();
  for (int l = 1; l <= ctx->max_level(); ++l) {
    for (std::size_t i = 0; i < static_cast<std::size_t>(l); ++i) {
      const Modulus& q = ctx->modulus(i);
      EXPECT_EQ(mul_mod(barrett_reduce_64(ctx->modulus(static_cast<std::size_t>(l)).value(), q),
                        ctx->inv_last(l, i), q),
                1u);
      EXPECT_EQ(ctx->inv_last_shoup(l, i), shoup(ctx->inv_last(l, i), q));
    }
  }
  const std::uint64_t p0 = ctx->modulus(chain).value(), p1 = ctx->modulus(chain + 1).value();
  const u128 big_p = u128{p0} * p1;
  for (std::size_t i = 0; i < chain; ++i) {
    const Modulus& q = ctx->modulus(i);
    EXPECT_EQ(ctx->p_mod(i), static_cast<std::uint64_t>(big_p % q.value()));
    EXPECT_EQ(mul_mod(ctx->p_mod(i), ctx->inv_p(i), q), 1u);
  }
}

// fast_convert(x) = x + e * S (mod t) with 0 <= e < |S|, for x in [0, S)
// given by its residues: checked with exact CRT through RnsBase.
TEST(CkksContext, FastConversionMatchesDefinition) {
  auto p = CkksParameters::n16384_default();
  p.n = 16;
  p.special_primes = 3;
  const auto ctx = CkksContext::create_insecure_for_tests(p);
  const auto moduli = ctx->key_moduli();
  std::mt19937_64 rng(5);
  for (std::size_t count : {1u, 2u, 3u}) {
    const ConversionTable& table = ctx->mod_up_table(1, count);
    ASSERT_EQ(table.from.size(), count);
    std::vector<Modulus> src;
    for (std::size_t i : table.from) src.push_back(moduli[i]);
    const RnsBase sbase(src);
    const std::size_t n = 16;
    std::vector<std::vector<std::uint64_t>> rows(count, std::vector<std::uint64_t>(n));
    std::vector<const std::uint64_t*> in;
    for (std::size_t i = 0; i < count; ++i) {
      for (auto& x : rows[i]) x = rng() % src[i].value();
      in.push_back(rows[i].data());
    }
    std::vector<std::size_t> to;
    for (std::size_t t = 0; t < moduli.size(); ++t) {
      if (std::find(table.from.begin(), table.from.end(), t) == table.from.end()) to.push_back(t);
    }
    std::vector<std::vector<std::uint64_t>> outs(to.size(), std::vector<std::uint64_t>(n));
    std::vector<std::uint64_t*> out;
    for (auto& o : outs) out.push_back(o.data());
    std::vector<std::uint64_t> scratch((count + 1) * n);
    fast_convert(table, moduli, in, to, out, n, scratch, false);
    for (std::size_t c = 0; c < n; ++c) {
      std::vector<std::uint64_t> res(count), x(count);
      for (std::size_t i = 0; i < count; ++i) res[i] = rows[i][c];
      sbase.compose(res, x);
      for (std::size_t r = 0; r < to.size(); ++r) {
        const Modulus& t = moduli[to[r]];
        std::vector<std::uint64_t> words(x);
        bool found = false;
        for (std::size_t e = 0; e < count && !found; ++e) {
          RnsBase one({t});
          std::uint64_t v[1];
          one.decompose(words, v);
          found = v[0] == outs[r][c];
          // words += S
          std::uint64_t carry = 0;
          const auto prod = sbase.product();
          words.push_back(0);
          for (std::size_t w = 0; w < words.size(); ++w) {
            const u128 s = u128{words[w]} + (w < prod.size() ? prod[w] : 0) + carry;
            words[w] = static_cast<std::uint64_t>(s);
            carry = static_cast<std::uint64_t>(s >> 64);
          }
        }
        EXPECT_TRUE(found) << "count " << count << " coefficient " << c << " target " << to[r];
      }
    }
  }
}

// The centred conversion gives exactly x' = x or x - S, whichever lies in
// (-S/2, S/2], for one-, two- and three-prime sources (checked on values
// built from known integers, including both ends of the range).
TEST(CkksContext, CentredConversionIsExact) {
  auto p = CkksParameters::n16384_default();
  p.n = 16;
  p.special_primes = 3;
  const auto ctx = CkksContext::create_insecure_for_tests(p);
  const auto moduli = ctx->key_moduli();
  std::mt19937_64 rng(6);
  for (std::size_t count : {1u, 2u, 3u}) {
    const ConversionTable& table = ctx->mod_up_table(1, count);
    std::vector<Modulus> src;
    for (std::size_t i : table.from) src.push_back(moduli[i]);
    const RnsBase sbase(src);
    const std::size_t n = 16;
    // Signed integers v with |v| < S/2 held as little-endian magnitude words.
    std::vector<std::vector<std::uint64_t>> rows(count, std::vector<std::uint64_t>(n));
    std::vector<std::vector<std::uint64_t>> mags(n);
    std::vector<bool> neg(n);
    for (std::size_t c = 0; c < n; ++c) {
      std::vector<std::uint64_t> mag(count, 0);
      for (auto& w : mag) w = rng();
      // Below S/2: halve S's words, then take a random fraction (or the edge).
      std::vector<std::uint64_t> half(sbase.product().begin(), sbase.product().end());
      for (std::size_t w = 0; w < count; ++w) {
        half[w] = (half[w] >> 1) | (w + 1 < count ? half[w + 1] << 63 : 0);
      }
      auto greater = [&](const std::vector<std::uint64_t>& a) {
        for (std::size_t w = count; w-- > 0;) {
          if (a[w] != half[w]) return a[w] > half[w];
        }
        return false;
      };
      if (c < 2) {
        mag = half;  // floor(S/2): the largest magnitude
      } else {
        while (greater(mag)) {  // halve until below floor(S/2)
          for (std::size_t w = 0; w < count; ++w) {
            mag[w] = (mag[w] >> 1) | (w + 1 < count ? mag[w + 1] << 63 : 0);
          }
        }
      }
      neg[c] = c % 2 == 1;
      mags[c] = mag;
      std::vector<std::uint64_t> res(count);
      sbase.decompose(mag, res);
      for (std::size_t i = 0; i < count; ++i) {
        rows[i][c] = neg[c] ? negate_mod(res[i], src[i]) : res[i];
      }
    }
    std::vector<const std::uint64_t*> in;
    for (auto& r : rows) in.push_back(r.data());
    std::vector<std::size_t> to;
    for (std::size_t t = 0; t < moduli.size(); ++t) {
      if (std::find(table.from.begin(), table.from.end(), t) == table.from.end()) to.push_back(t);
    }
    std::vector<std::vector<std::uint64_t>> outs(to.size(), std::vector<std::uint64_t>(n));
    std::vector<std::uint64_t*> out;
    for (auto& o : outs) out.push_back(o.data());
    std::vector<std::uint64_t> scratch((count + 1) * n);
    fast_convert(table, moduli, in, to, out, n, scratch, true);
    for (std::size_t c = 0; c < n; ++c) {
      for (std::size_t r = 0; r < to.size(); ++r) {
        const Modulus& t = moduli[to[r]];
        std::uint64_t v[1];
        RnsBase({t}).decompose(mags[c], v);
        const std::uint64_t want = neg[c] ? negate_mod(v[0], t) : v[0];
        if (c == 0 && outs[r][c] != want) {
          // x = floor(S/2) sits on the edge: x - S = -ceil(S/2) is the other
          // valid lift.
          std::uint64_t s_mod[1];
          RnsBase({t}).decompose(sbase.product(), s_mod);
          EXPECT_EQ(outs[r][c], sub_mod(want, s_mod[0], t)) << "count " << count << " edge";
          continue;
        }
        EXPECT_EQ(outs[r][c], want) << "count " << count << " coefficient " << c;
      }
    }
  }
}

}  // namespace
}  // namespace blindfold::he
