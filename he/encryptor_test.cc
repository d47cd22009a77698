// Encryption and decryption: encrypt -> decrypt -> decode at both benchmark
// parameter sets and every level, public-key and symmetric, within the stated
// bound for fresh ciphertexts (max slot error <= 2^-20 at scale 2^40; the
// measured error is near 2^-26), the seeded symmetric ciphertext (c1 is the
// seed's expansion), determinism only through the test seed, and refusal of
// objects of another context.
#include "he/encryptor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "he/encoder.h"
#include "he/ntt.h"
#include "he/sampling.h"

namespace blindfold::he {
namespace {

using cd = std::complex<double>;

Seed test_seed(std::uint8_t v) {
  Seed s{};
  s.fill(v);
  return s;
}

std::vector<cd> random_slots(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<cd> v(count);
  for (auto& x : v) x = cd(d(rng), d(rng));
  return v;
}

double max_error(const std::vector<cd>& a, const std::vector<cd>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

constexpr double kFreshBound = 1.0 / (1 << 20);  // 2^-20 at scale 2^40

class EncryptTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    ctx_ = CkksContext::create(GetParam() == 8192 ? CkksParameters::n8192_default()
                                                  : CkksParameters::n16384_default());
  }
  std::shared_ptr<const CkksContext> ctx_;
};

TEST_P(EncryptTest, PublicKeyRoundTripAtEveryLevel) {
  KeyGenerator gen(ctx_);
  const PublicKey pk = gen.create_public_key();
  Encryptor enc(ctx_, pk);
  Decryptor dec(ctx_, gen.secret_key());
  const CkksEncoder encoder(ctx_);
  const auto z = random_slots(encoder.slots(), 11);
  for (int level = 0; level <= ctx_->max_level(); ++level) {
    const Ciphertext ct = enc.encrypt(encoder.encode(z, std::exp2(40), level));
    EXPECT_EQ(ct.level(), level);
    EXPECT_EQ(ct.size(), 2u);
    EXPECT_FALSE(ct.seed().has_value());
    const double err = max_error(encoder.decode(dec.decrypt(ct)), z);
    EXPECT_LT(err, kFreshBound) << "level " << level;
    if (level == ctx_->max_level()) {
      std::printf("N=%zu public-key fresh max error 2^%.1f\n", ctx_->n(), std::log2(err));
    }
  }
}

TEST_P(EncryptTest, SymmetricRoundTripIsSeeded) {
  KeyGenerator gen(ctx_);
  Encryptor enc(ctx_, gen.secret_key());
  Decryptor dec(ctx_, gen.secret_key());
  const CkksEncoder encoder(ctx_);
  const auto z = random_slots(encoder.slots(), 12);
  for (int level = 0; level <= ctx_->max_level(); ++level) {
    const Ciphertext ct = enc.encrypt(encoder.encode(z, std::exp2(40), level));
    ASSERT_TRUE(ct.seed().has_value());
    for (std::size_t i = 0; i < ct.primes(); ++i) {
      std::vector<std::uint64_t> a(ctx_->n());
      expand_uniform(*ct.seed(), kCiphertextStream + i, ctx_->modulus(i), a);
      EXPECT_TRUE(std::equal(a.begin(), a.end(), ct.row(1, i).begin())) << "prime " << i;
    }
    EXPECT_LT(max_error(encoder.decode(dec.decrypt(ct)), z), kFreshBound) << "level " << level;
  }
}

INSTANTIATE_TEST_SUITE_P(Sets, EncryptTest, ::testing::Values(8192, 16384), [](const auto& info) {
  return std::string("N").append(std::to_string(info.param));
});

TEST(Encrypt, DeterministicOnlyThroughTheTestSeed) {
  const auto ctx = CkksContext::create(CkksParameters::n8192_default());
  KeyGenerator gen(ctx, test_seed(1));
  const PublicKey pk = gen.create_public_key();
  const CkksEncoder encoder(ctx);
  const std::vector<double> v = {1, 2, 3};
  const Plaintext p = encoder.encode(v, std::exp2(40));
  Encryptor e1(ctx, pk, test_seed(2)), e2(ctx, pk, test_seed(2)), e3(ctx, pk);
  const Ciphertext c1 = e1.encrypt(p), c2 = e2.encrypt(p), c3 = e3.encrypt(p);
  EXPECT_TRUE(std::equal(c1.data().begin(), c1.data().end(), c2.data().begin()));
  EXPECT_FALSE(std::equal(c1.data().begin(), c1.data().end(), c3.data().begin()));
  // Two encryptions by one encryptor differ.
  const Ciphertext c4 = e1.encrypt(p);
  EXPECT_FALSE(std::equal(c1.data().begin(), c1.data().end(), c4.data().begin()));
}

TEST(Encrypt, ZeroAndDroppedLevels) {
  const auto ctx = CkksContext::create(CkksParameters::n8192_default());
  KeyGenerator gen(ctx);
  Encryptor enc(ctx, gen.secret_key());
  Decryptor dec(ctx, gen.secret_key());
  const CkksEncoder encoder(ctx);
  const auto zero = encoder.decode(dec.decrypt(enc.encrypt_zero(1, std::exp2(40))));
  for (const cd& x : zero) ASSERT_LT(std::abs(x), kFreshBound);
  // Dropping primes keeps the message, and a symmetric ciphertext its seed.
  const auto z = random_slots(encoder.slots(), 13);
  Ciphertext ct = enc.encrypt(encoder.encode(z, std::exp2(40)));
  ct.drop_to_level(0);
  EXPECT_EQ(ct.level(), 0);
  EXPECT_TRUE(ct.seed().has_value());
  EXPECT_LT(max_error(encoder.decode(dec.decrypt(ct)), z), kFreshBound);
  EXPECT_THROW(ct.drop_to_level(1), Error);
}

TEST(Encrypt, RefusesObjectsOfAnotherContext) {
  const auto ctx = CkksContext::create(CkksParameters::n8192_default());
  auto p = CkksParameters::n8192_default();
  p.chain_bits = {60, 40};
  const auto other = CkksContext::create(p);
  KeyGenerator gen(ctx), gen2(other);
  EXPECT_THROW(Encryptor(ctx, gen2.create_public_key()), Error);
  EXPECT_THROW(Decryptor(ctx, gen2.secret_key()), Error);
  Encryptor enc(ctx, gen.secret_key());
  const std::vector<double> v = {1};
  const Plaintext foreign = CkksEncoder(other).encode(v, std::exp2(40));
  try {
    enc.encrypt(foreign);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
  }
  Decryptor dec2(other, gen2.secret_key());
  const Ciphertext ct = enc.encrypt(CkksEncoder(ctx).encode(v, std::exp2(40)));
  EXPECT_THROW(dec2.decrypt(ct), Error);
}

}  // namespace
}  // namespace blindfold::he

namespace blindfold::he {
namespace {

// The batch query's parameters: N = 16384, {50, 48 x 5}.
std::shared_ptr<const CkksContext> batch_context() {
  CkksParameters p;
  p.n = 16384;
  p.chain_bits = {50, 48, 48, 48, 48, 48};
  return CkksContext::create(p);
}

// The encoder's coefficients of `values` (what backends/he's Client computes
// before encrypt_coefficients): inverse special FFT, scaled and rounded.
std::vector<std::int64_t> coefficients_of(const CkksEncoder& encoder,
                                          const std::vector<double>& values, double scale) {
  std::vector<cd> u(encoder.slots());
  for (std::size_t k = 0; k < values.size(); ++k) u[k] = {values[k], 0};
  encoder.fft_special_inverse(u);
  std::vector<std::int64_t> c(2 * encoder.slots());
  for (std::size_t k = 0; k < encoder.slots(); ++k) {
    c[k] = static_cast<std::int64_t>(std::nearbyint(u[k].real() * scale));
    c[k + encoder.slots()] = static_cast<std::int64_t>(std::nearbyint(u[k].imag() * scale));
  }
  return c;
}

// decrypt(ct) - m in the coefficient domain, centred, modulo the first prime.
std::vector<std::int64_t> fresh_error(const CkksContext& ctx, const Decryptor& dec,
                                      const Ciphertext& ct, std::span<const std::int64_t> m) {
  Plaintext pt = dec.decrypt(ct);
  std::vector<std::uint64_t> row(pt.row(0).begin(), pt.row(0).end());
  ntt_inverse(row, ctx.ntt(0));
  const auto q = static_cast<std::int64_t>(ctx.modulus(0).value());
  std::vector<std::int64_t> e(row.size());
  for (std::size_t j = 0; j < row.size(); ++j) {
    std::int64_t v = static_cast<std::int64_t>(row[j]) - m[j] % q;
    v = ((v % q) + q) % q;
    e[j] = v > q / 2 ? v - q : v;
  }
  return e;
}

TEST(EncryptCoefficients, SameCiphertextAsEncryptOfTheEncodedPlaintext) {
  const auto ctx = batch_context();
  KeyGenerator gen(ctx);
  const CkksEncoder encoder(ctx);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> d(0, 1);
  std::vector<double> values(encoder.slots());
  for (auto& v : values) v = d(rng);
  const double scale = std::exp2(35);
  const auto coeffs = coefficients_of(encoder, values, scale);
  for (int level : {0, 3, 5}) {
    // The Client's coefficients are the encoder's: their NTT is encode()'s.
    const Plaintext pt = encoder.encode(values, scale, level);
    for (std::size_t i = 0; i <= static_cast<std::size_t>(level); ++i) {
      std::vector<std::uint64_t> row(ctx->n());
      signed_to_residues(coeffs, ctx->modulus(i), row);
      ntt_forward(row, ctx->ntt(i));
      ASSERT_TRUE(std::equal(row.begin(), row.end(), pt.row(i).begin())) << "prime " << i;
    }
    // The same Prg draws (seed, then error) in the same order: with one
    // test seed, the very same ciphertext as encrypt(encode(values)).
    Encryptor e1(ctx, gen.secret_key(), test_seed(7)), e2(ctx, gen.secret_key(), test_seed(7));
    const Ciphertext a = e1.encrypt(pt);
    const Ciphertext b = e2.encrypt_coefficients(coeffs, level, scale);
    EXPECT_TRUE(std::equal(a.data().begin(), a.data().end(), b.data().begin()));
    ASSERT_TRUE(b.seed().has_value());
    EXPECT_EQ(*a.seed(), *b.seed());
    EXPECT_EQ(b.level(), level);
    EXPECT_EQ(b.scale(), scale);
    Decryptor dec(ctx, gen.secret_key());
    const auto out = encoder.decode(dec.decrypt(b));
    double err = 0;
    for (std::size_t k = 0; k < values.size(); ++k)
      err = std::max(err, std::abs(out[k] - values[k]));
    EXPECT_LT(err, 1e-6);
  }
}

// The fresh error of a symmetric encryption, both ways: centred binomial
// (|e| <= 21, variance 10.5) on each coefficient, as before.
TEST(EncryptCoefficients, FreshErrorIsTheCenteredBinomial) {
  const auto ctx = batch_context();
  KeyGenerator gen(ctx);
  const CkksEncoder encoder(ctx);
  Encryptor enc(ctx, gen.secret_key());
  Decryptor dec(ctx, gen.secret_key());
  std::vector<std::int64_t> m(ctx->n());
  std::mt19937_64 rng(5);
  for (auto& c : m)
    c = static_cast<std::int64_t>(rng() % (std::uint64_t{1} << 36)) - (std::int64_t{1} << 35);
  Plaintext pt(ctx->id(), ctx->n(), 5, std::exp2(35));
  for (std::size_t i = 0; i < 6; ++i) {
    signed_to_residues(m, ctx->modulus(i), pt.row(i));
    ntt_forward(pt.row(i), ctx->ntt(i));
  }
  for (int way = 0; way < 2; ++way) {
    double sum = 0, sq = 0;
    std::size_t count = 0;
    for (int rep = 0; rep < 4; ++rep) {
      const Ciphertext ct =
          way == 0 ? enc.encrypt(pt) : enc.encrypt_coefficients(m, 5, std::exp2(35));
      for (const std::int64_t e : fresh_error(*ctx, dec, ct, m)) {
        ASSERT_LE(std::llabs(e), kCbdK);
        sum += static_cast<double>(e);
        sq += static_cast<double>(e) * static_cast<double>(e);
        ++count;
      }
    }
    const double mean = sum / static_cast<double>(count);
    const double var = sq / static_cast<double>(count) - mean * mean;
    std::printf("%s: fresh error mean %.4f, variance %.3f (centred binomial: 0, %.1f)\n",
                way == 0 ? "encrypt" : "encrypt_coefficients", mean, var, kCbdK / 2.0);
    EXPECT_LT(std::fabs(mean), 0.05);
    EXPECT_NEAR(var, kCbdK / 2.0, 0.3);
  }
}

TEST(EncryptCoefficients, LargeCoefficientsPublicKeyAndRefusals) {
  const auto ctx = batch_context();
  KeyGenerator gen(ctx);
  Decryptor dec(ctx, gen.secret_key());
  Encryptor sym(ctx, gen.secret_key());
  Encryptor pub(ctx, gen.create_public_key());
  // Coefficients above every prime (2^55): the Barrett path.
  std::vector<std::int64_t> m(ctx->n());
  std::mt19937_64 rng(6);
  for (auto& c : m)
    c = static_cast<std::int64_t>(rng() % (std::uint64_t{1} << 56)) - (std::int64_t{1} << 55);
  const Ciphertext s = sym.encrypt_coefficients(m, 5, 1.0);
  for (const std::int64_t e : fresh_error(*ctx, dec, s, m)) ASSERT_LE(std::llabs(e), kCbdK);
  const Ciphertext p = pub.encrypt_coefficients(m, 5, 1.0);
  EXPECT_FALSE(p.seed().has_value());
  for (const std::int64_t e : fresh_error(*ctx, dec, p, m)) ASSERT_LE(std::llabs(e), 1000);
  EXPECT_THROW(sym.encrypt_coefficients(std::span<const std::int64_t>(m).first(100), 5, 1.0),
               Error);
  EXPECT_THROW(sym.encrypt_coefficients(m, 6, 1.0), Error);
  EXPECT_THROW(sym.encrypt_coefficients(m, -1, 1.0), Error);
  // Level 0: Q_0 has 50 bits, so 2^55 does not fit.
  EXPECT_THROW(sym.encrypt_coefficients(m, 0, 1.0), Error);
  m[3] = std::numeric_limits<std::int64_t>::min();
  EXPECT_THROW(sym.encrypt_coefficients(m, 5, 1.0), Error);
}

}  // namespace
}  // namespace blindfold::he
