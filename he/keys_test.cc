// Sampling and keys: the ternary and centred-binomial samplers' supports and
// moments, seeded uniform expansion, the secret key as one ternary integer
// polynomial under every prime, b + a s = small error for the public key and
// for every digit of a key-switching key (with the gadget P on its own
// primes), and the Galois permutation against the automorphism computed on
// coefficients.
#include "he/keys.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "he/ntt.h"
#include "he/primes.h"
#include "he/sampling.h"

namespace blindfold::he {
namespace {

Seed test_seed(std::uint8_t v) {
  Seed s{};
  s.fill(v);
  return s;
}

std::int64_t centred(std::uint64_t x, std::uint64_t q) {
  return x > q / 2 ? -static_cast<std::int64_t>(q - x) : static_cast<std::int64_t>(x);
}

// The centred coefficients of an NTT-form row.
std::vector<std::int64_t> coefficients(std::span<const std::uint64_t> row, const NttTables& t) {
  std::vector<std::uint64_t> v(row.begin(), row.end());
  ntt_inverse(v, t);
  std::vector<std::int64_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = centred(v[i], t.modulus().value());
  return out;
}

TEST(Sampling, TernaryIsUniformOnMinusOneZeroOne) {
  Prg prg(test_seed(1));
  std::vector<std::int8_t> v(300000);
  sample_ternary(prg, v);
  int counts[3] = {0, 0, 0};
  for (auto x : v) {
    ASSERT_GE(x, -1);
    ASSERT_LE(x, 1);
    ++counts[x + 1];
  }
  for (int c : counts) EXPECT_NEAR(c / 300000.0, 1.0 / 3, 0.005);
}

TEST(Sampling, CentredBinomialHasVariance10Point5) {
  Prg prg(test_seed(2));
  std::vector<std::int8_t> v(400000);
  sample_cbd(prg, v);
  double sum = 0, sq = 0;
  for (auto x : v) {
    ASSERT_GE(x, -kCbdK);
    ASSERT_LE(x, kCbdK);
    sum += x;
    sq += double(x) * x;
  }
  const double mean = sum / v.size();
  EXPECT_NEAR(mean, 0, 0.02);
  EXPECT_NEAR(sq / v.size() - mean * mean, 10.5, 0.15);
}

TEST(Sampling, SeededUniformExpansion) {
  const Modulus q(ntt_primes(40, 1, 1024)[0]);
  std::vector<std::uint64_t> a(4096), b(4096), c(4096);
  expand_uniform(test_seed(3), 7, q, a);
  expand_uniform(test_seed(3), 7, q, b);
  expand_uniform(test_seed(3), 8, q, c);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double mean = 0;
  for (auto x : a) {
    ASSERT_LT(x, q.value());
    mean += double(x) / q.value();
  }
  EXPECT_NEAR(mean / a.size(), 0.5, 0.02);
  std::vector<std::int8_t> small = {-3, -1, 0, 1, 5};
  std::vector<std::uint64_t> r(5);
  small_to_residues(small, q, r);
  EXPECT_EQ(r[0], q.value() - 3);
  EXPECT_EQ(r[1], q.value() - 1);
  EXPECT_EQ(r[2], 0u);
  EXPECT_EQ(r[4], 5u);
}

class KeysTest : public ::testing::Test {
 protected:
  KeysTest() {
    auto p = CkksParameters::n16384_default();
    p.n = 1024;
    p.special_primes = 2;  // two-prime digits: alpha = 2
    ctx_ = CkksContext::create_insecure_for_tests(p);
  }
  std::shared_ptr<const CkksContext> ctx_;
};

TEST_F(KeysTest, SecretKeyIsOneTernaryPolynomial) {
  KeyGenerator gen(ctx_, test_seed(4));
  const SecretKey& sk = gen.secret_key();
  const auto s0 = coefficients(sk.row(0), ctx_->ntt(0));
  int counts[3] = {0, 0, 0};
  for (auto x : s0) {
    ASSERT_TRUE(x >= -1 && x <= 1);
    ++counts[x + 1];
  }
  for (int c : counts) EXPECT_GT(c, 250);  // about 341 each
  for (std::size_t i = 1; i < ctx_->key_size(); ++i) {
    EXPECT_EQ(coefficients(sk.row(i), ctx_->ntt(i)), s0) << "prime " << i;
  }
  // Deterministic only through the seed.
  KeyGenerator same(ctx_, test_seed(4));
  KeyGenerator other(ctx_, test_seed(5));
  EXPECT_TRUE(std::equal(sk.data().begin(), sk.data().end(), same.secret_key().data().begin()));
  EXPECT_FALSE(std::equal(sk.data().begin(), sk.data().end(), other.secret_key().data().begin()));
}

TEST_F(KeysTest, PublicKeyIsAnRlweSample) {
  KeyGenerator gen(ctx_, test_seed(6));
  const PublicKey pk = gen.create_public_key();
  const std::size_t n = ctx_->n();
  ASSERT_EQ(pk.a.size(), ctx_->key_size() * n);
  std::vector<std::int64_t> e0;
  for (std::size_t i = 0; i < ctx_->key_size(); ++i) {
    const Modulus& q = ctx_->modulus(i);
    std::vector<std::uint64_t> a(n), t(n);
    expand_uniform(pk.a_seed, kPublicKeyStream + i, q, a);
    EXPECT_TRUE(std::equal(a.begin(), a.end(), pk.a.begin() + i * n));
    mul_mod(a, gen.secret_key().row(i), q, t);
    add_mod(t, {pk.b.data() + i * n, n}, q, t);  // b + a s = e
    const auto e = coefficients(t, ctx_->ntt(i));
    for (auto x : e) ASSERT_LE(std::abs(x), kCbdK);
    if (i == 0) e0 = e;
    EXPECT_EQ(e, e0);  // one integer error polynomial
  }
}

TEST_F(KeysTest, SwitchKeyDigitsCarryTheGadget) {
  KeyGenerator gen(ctx_, test_seed(7));
  const RelinKeys rk = gen.create_relin_keys();
  const KeySwitchKey& k = rk.key;
  const std::size_t n = ctx_->n();
  ASSERT_EQ(k.dnum, ctx_->dnum());
  ASSERT_EQ(k.dnum, 4u);  // 7 chain primes in digits of 2
  for (std::size_t j = 0; j < k.dnum; ++j) {
    for (std::size_t i = 0; i < ctx_->key_size(); ++i) {
      const Modulus& q = ctx_->modulus(i);
      std::vector<std::uint64_t> t(n), s2(n);
      mul_mod(k.a_row(j, i), gen.secret_key().row(i), q, t);
      add_mod(t, k.b_row(j, i), q, t);  // b + a s = e + g_j s^2
      if (i < ctx_->chain_size() && i / ctx_->alpha() == j) {
        mul_mod(gen.secret_key().row(i), gen.secret_key().row(i), q, s2);
        mul_scalar_mod(s2, ctx_->p_mod(i), q, s2);
        sub_mod(t, s2, q, t);
      }
      for (auto x : coefficients(t, ctx_->ntt(i))) {
        ASSERT_LE(std::abs(x), kCbdK) << "digit " << j << " prime " << i;
      }
    }
  }
}

TEST(Galois, PermutationIsTheAutomorphismInNttForm) {
  const std::size_t n = 64;
  const Modulus q(ntt_primes(40, 1, n)[0]);
  const NttTables t(n, q);
  std::mt19937_64 rng(1);
  std::vector<std::uint64_t> m(n);
  for (auto& x : m) x = rng() % q.value();
  for (std::uint64_t g : {galois_element_for_rotation(1, n), galois_element_for_rotation(-3, n),
                          galois_element_for_conjugation(n), std::uint64_t{1}}) {
    // m(X^g): X^i -> X^(i g mod 2N), with X^N = -1.
    std::vector<std::uint64_t> phi(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t e = i * g % (2 * n);
      if (e < n) {
        phi[e] = m[i];
      } else {
        phi[e - n] = negate_mod(m[i], q);
      }
    }
    std::vector<std::uint64_t> fm = m, fphi = phi;
    ntt_forward(fm, t);
    ntt_forward(fphi, t);
    const auto perm = galois_permutation(g, n);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(fphi[i], fm[perm[i]]) << "g " << g;
  }
  EXPECT_EQ(galois_element_for_rotation(0, n), 1u);
  EXPECT_EQ(galois_element_for_rotation(2, n), 25u);
  EXPECT_EQ(galois_element_for_rotation(-1, n), galois_element_for_rotation(31, n));
  EXPECT_THROW(galois_permutation(4, n), Error);
}

TEST_F(KeysTest, GaloisKeysForRequestedSteps) {
  KeyGenerator gen(ctx_, test_seed(8));
  const std::vector<int> steps = {1, -1, 5, 0, 512};  // 512 = N/2: identity, skipped
  const GaloisKeys gk = gen.create_galois_keys(steps, true);
  EXPECT_EQ(gk.keys.size(), 4u);
  EXPECT_TRUE(gk.has(galois_element_for_rotation(5, ctx_->n())));
  EXPECT_TRUE(gk.has(galois_element_for_conjugation(ctx_->n())));
  EXPECT_THROW(gk.at(galois_element_for_rotation(2, ctx_->n())), Error);
}

}  // namespace
}  // namespace blindfold::he
