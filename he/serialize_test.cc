// Serialization: round trips of every object (ciphertexts full and seeded,
// size 3, plaintexts, public, relinearization, Galois and secret keys) that
// decrypt or evaluate exactly as the originals; sizes below SEAL's at
// N = 8192 {60,40,40,60}; and refusal of hostile bytes: every truncation,
// trailing bytes, header corruption, residues at or above their modulus,
// another context, bad Galois elements, random garbage.
#include "he/serialize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "core/error.h"
#include "he/encoder.h"
#include "he/encryptor.h"
#include "he/evaluator.h"
#include "he/sampling.h"

namespace blindfold::he {
namespace {

using Bytes = std::vector<std::uint8_t>;

ErrorCategory load_error(auto&& load) {
  try {
    load();
  } catch (const Error& e) {
    return e.category();
  }
  return ErrorCategory::kInternal;  // no error
}

bool same(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

struct World {
  explicit World(std::shared_ptr<const CkksContext> c)
      : ctx(std::move(c)), gen(ctx), encoder(ctx), eval(ctx) {}
  std::vector<std::complex<double>> values() const {
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> d(-1, 1);
    std::vector<std::complex<double>> v(encoder.slots());
    for (auto& x : v) x = {d(rng), d(rng)};
    return v;
  }
  std::shared_ptr<const CkksContext> ctx;
  KeyGenerator gen;
  CkksEncoder encoder;
  Evaluator eval;
};

TEST(Serialize, CiphertextRoundTripsAndSizes) {
  World s(CkksContext::create(CkksParameters::n8192_default()));
  const CkksContext& ctx = *s.ctx;
  Encryptor sym(s.ctx, s.gen.secret_key());
  Encryptor pub(s.ctx, s.gen.create_public_key());
  Decryptor dec(s.ctx, s.gen.secret_key());
  const Plaintext p = s.encoder.encode(s.values(), std::exp2(40));

  const Ciphertext seeded = sym.encrypt(p);
  const Bytes half = save(ctx, seeded);
  const Bytes full = save(ctx, seeded, false);
  const Ciphertext c_pub = pub.encrypt(p);
  const Bytes full_pub = save(ctx, c_pub);
  // {60, 40, 40}: 140 bits per coefficient and polynomial.
  EXPECT_EQ(full.size(), 20u + 16u + 2 * 8192 * 140 / 8);
  EXPECT_EQ(half.size(), 20u + 16u + 32u + 8192 * 140 / 8);
  EXPECT_EQ(full_pub.size(), full.size());
  EXPECT_LT(full.size(), 393329u);  // SEAL 4.4.3's full ciphertext here
  EXPECT_LT(half.size(), 196802u);  // and its seeded one
  std::printf("N=8192 {60,40,40}: ciphertext %zu bytes, seeded %zu bytes\n", full.size(),
              half.size());

  for (const Bytes* b : {&half, &full}) {
    const Ciphertext back = load_ciphertext(ctx, *b);
    EXPECT_TRUE(same(back.data(), seeded.data()));
    EXPECT_EQ(back.level(), seeded.level());
    EXPECT_EQ(back.scale(), seeded.scale());
    EXPECT_EQ(back.seed().has_value(), b == &half);
  }
  EXPECT_TRUE(same(load_ciphertext(ctx, full_pub).data(), c_pub.data()));
  // A size-3 product and a rescaled (lower-level) ciphertext.
  const Ciphertext m3 = s.eval.multiply(c_pub, c_pub);
  EXPECT_TRUE(same(load_ciphertext(ctx, save(ctx, m3)).data(), m3.data()));
  const Ciphertext low = s.eval.rescale(s.eval.multiply_plain(c_pub, p));
  const Ciphertext low_back = load_ciphertext(ctx, save(ctx, low));
  EXPECT_EQ(low_back.level(), 1);
  EXPECT_EQ(low_back.scale(), low.scale());
  EXPECT_TRUE(same(low_back.data(), low.data()));
  // Plaintexts.
  const Plaintext pb = load_plaintext(ctx, save(ctx, p));
  EXPECT_TRUE(same(pb.data(), p.data()));
  EXPECT_EQ(pb.scale(), p.scale());
}

TEST(Serialize, KeysRoundTrip) {
  World s(CkksContext::create(CkksParameters::n8192_default()));
  const CkksContext& ctx = *s.ctx;
  const PublicKey pk = s.gen.create_public_key();
  const RelinKeys rk = s.gen.create_relin_keys();
  const std::vector<int> steps = {1, -2};
  const GaloisKeys gk = s.gen.create_galois_keys(steps, true);

  const Bytes pk_bytes = save(ctx, pk), rk_bytes = save(ctx, rk), gk_bytes = save(ctx, gk);
  std::printf("N=8192 {60,40,40|60}: public key %zu, relin key %zu, Galois keys (3) %zu bytes\n",
              pk_bytes.size(), rk_bytes.size(), gk_bytes.size());
  const PublicKey pk2 = load_public_key(ctx, pk_bytes);
  EXPECT_EQ(pk2.a, pk.a);
  EXPECT_EQ(pk2.b, pk.b);
  const RelinKeys rk2 = load_relin_keys(ctx, rk_bytes);
  EXPECT_EQ(rk2.key.a, rk.key.a);
  EXPECT_EQ(rk2.key.b, rk.key.b);
  const GaloisKeys gk2 = load_galois_keys(ctx, gk_bytes);
  ASSERT_EQ(gk2.keys.size(), 3u);
  for (const auto& [g, e] : gk.keys) {
    ASSERT_TRUE(gk2.has(g));
    EXPECT_EQ(gk2.at(g).key.b, e.key.b);
    EXPECT_EQ(gk2.at(g).key.a, e.key.a);
    EXPECT_EQ(gk2.at(g).perm, e.perm);
  }
  const SecretKey sk2 = load_secret_key(ctx, save_secret_key(ctx, s.gen.secret_key()));
  EXPECT_TRUE(same(sk2.data(), s.gen.secret_key().data()));

  // Loaded keys work: encrypt with the loaded public key, decrypt with the
  // loaded secret key, relinearize and rotate with the loaded keys.
  Encryptor enc(s.ctx, pk2);
  Decryptor dec(s.ctx, sk2);
  const auto z = s.values();
  const Ciphertext c = enc.encrypt(s.encoder.encode(z, std::exp2(40)));
  const Ciphertext m = s.eval.relinearize(s.eval.multiply(c, c), rk2);
  EXPECT_TRUE(same(m.data(), s.eval.relinearize(s.eval.multiply(c, c), rk).data()));
  const Ciphertext r = s.eval.rotate(c, 1, gk2);
  const auto out = s.encoder.decode(dec.decrypt(r));
  for (std::size_t j = 0; j < z.size(); ++j) {
    ASSERT_LT(std::abs(out[j] - z[(j + 1) % z.size()]), 1e-6);
  }
}

class HostileBytes : public ::testing::Test {
 protected:
  HostileBytes() {
    CkksParameters p;
    p.n = 16;
    p.chain_bits = {50, 40};
    s_ = std::make_unique<World>(CkksContext::create_insecure_for_tests(p));
  }
  const CkksContext& ctx() { return *s_->ctx; }
  std::unique_ptr<World> s_;
};

TEST_F(HostileBytes, EveryTruncationAndTrailingByteIsRefused) {
  Encryptor sym(s_->ctx, s_->gen.secret_key());
  const Ciphertext c = sym.encrypt(s_->encoder.encode(s_->values(), std::exp2(30)));
  const std::vector<std::pair<Bytes, std::function<void(std::span<const std::uint8_t>)>>> objects =
      {
          {save(ctx(), c), [&](auto b) { load_ciphertext(ctx(), b); }},
          {save(ctx(), c, false), [&](auto b) { load_ciphertext(ctx(), b); }},
          {save(ctx(), s_->gen.create_public_key()), [&](auto b) { load_public_key(ctx(), b); }},
          {save(ctx(), s_->gen.create_relin_keys()), [&](auto b) { load_relin_keys(ctx(), b); }},
          {save(ctx(), s_->gen.create_galois_keys(std::vector<int>{1, 3}, true)),
           [&](auto b) { load_galois_keys(ctx(), b); }},
          {save_secret_key(ctx(), s_->gen.secret_key()),
           [&](auto b) { load_secret_key(ctx(), b); }},
          {save(ctx(), s_->encoder.encode(s_->values(), std::exp2(30))),
           [&](auto b) { load_plaintext(ctx(), b); }},
      };
  for (const auto& [bytes, load] : objects) {
    EXPECT_NO_THROW(load(bytes));
    for (std::size_t len = 0; len < bytes.size(); ++len) {
      ASSERT_EQ(load_error([&] { load(std::span(bytes).first(len)); }), ErrorCategory::kBadMessage)
          << "truncated to " << len;
    }
    Bytes longer = bytes;
    longer.push_back(0);
    EXPECT_EQ(load_error([&] { load(longer); }), ErrorCategory::kBadMessage);
    // Any change of the 20 header bytes is refused (magic, version, type,
    // flags, context id, N).
    for (std::size_t i = 0; i < 20; ++i) {
      Bytes corrupt = bytes;
      corrupt[i] ^= 0x10;
      EXPECT_EQ(load_error([&] { load(corrupt); }), ErrorCategory::kBadMessage) << "byte " << i;
    }
  }
}

TEST_F(HostileBytes, ResiduesAtOrAboveTheModulusAreRefused) {
  Encryptor sym(s_->ctx, s_->gen.secret_key());
  const Ciphertext c = sym.encrypt(s_->encoder.encode(s_->values(), std::exp2(30)));
  Bytes b = save(ctx(), c, false);
  // The first residue (50 bits) set to all ones: 2^50 - 1 >= q_0.
  const std::size_t body = 20 + 16;
  for (int i = 0; i < 6; ++i) b[body + static_cast<std::size_t>(i)] = 0xff;
  b[body + 6] |= 0x03;
  try {
    load_ciphertext(ctx(), b);
    FAIL() << "residue above the modulus accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
    EXPECT_NE(std::string(e.what()).find("below its modulus"), std::string::npos) << e.what();
  }
  // Scale NaN, level above the chain, size 4.
  Bytes nan_scale = save(ctx(), c, false);
  for (int i = 0; i < 8; ++i) nan_scale[20 + 8 + static_cast<std::size_t>(i)] = 0xff;
  EXPECT_EQ(load_error([&] { load_ciphertext(ctx(), nan_scale); }), ErrorCategory::kBadMessage);
  Bytes level = save(ctx(), c, false);
  level[20] = 5;
  EXPECT_EQ(load_error([&] { load_ciphertext(ctx(), level); }), ErrorCategory::kBadMessage);
  Bytes size = save(ctx(), c, false);
  size[24] = 4;
  EXPECT_EQ(load_error([&] { load_ciphertext(ctx(), size); }), ErrorCategory::kBadMessage);
}

TEST_F(HostileBytes, BadGaloisElementsAndOtherContextsAreRefused) {
  const GaloisKeys gk = s_->gen.create_galois_keys(std::vector<int>{1, 3}, false);
  Bytes b = save(ctx(), gk);
  // The first element (after the 20-byte header and the count) made even.
  Bytes even = b;
  even[24] ^= 1;
  EXPECT_EQ(load_error([&] { load_galois_keys(ctx(), even); }), ErrorCategory::kBadMessage);
  // A huge key count.
  Bytes count = b;
  count[23] = 0x7f;
  EXPECT_EQ(load_error([&] { load_galois_keys(ctx(), count); }), ErrorCategory::kBadMessage);
  // Objects of another context, and objects of the wrong type.
  auto params = ctx().parameters();
  params.chain_bits = {50, 40, 40};
  const auto other = CkksContext::create_insecure_for_tests(params);
  EXPECT_EQ(load_error([&] { load_galois_keys(*other, b); }), ErrorCategory::kBadMessage);
  EXPECT_EQ(load_error([&] { load_relin_keys(ctx(), b); }), ErrorCategory::kBadMessage);
  EXPECT_THROW(save(*other, gk), Error);
}

TEST_F(HostileBytes, RandomGarbageNeverCrashes) {
  std::mt19937_64 rng(3);
  const Bytes good = save(ctx(), s_->gen.create_relin_keys());
  for (int t = 0; t < 2000; ++t) {
    Bytes b = good;
    // Mutate a few random bytes after the header, or fully random input.
    if (t % 4 == 0) {
      b.resize(rng() % (good.size() + 8));
      for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    } else {
      for (int k = 0; k < 3; ++k)
        b[20 + rng() % (b.size() - 20)] = static_cast<std::uint8_t>(rng());
    }
    try {
      load_relin_keys(ctx(), b);
    } catch (const Error& e) {
      ASSERT_EQ(e.category(), ErrorCategory::kBadMessage);
    }
  }
}

}  // namespace
}  // namespace blindfold::he

namespace blindfold::he {
namespace {

// The word-level packing of every prime size the contexts allow, at N = 8
// (residues that end in the last bytes) and N = 1024: random residues and
// the extremes 0 and q - 1 round-trip; a residue of all ones (>= q) at the
// first, a middle or the last position is refused with kBadMessage.
TEST(Serialize, PackedRowsOfEveryPrimeSize) {
  std::mt19937_64 rng(9);
  for (const std::size_t n : {8u, 1024u}) {
    for (int bits = 20; bits <= 60; ++bits) {
      CkksParameters p;
      p.n = n;
      p.chain_bits = {bits};
      std::shared_ptr<const CkksContext> ctx;
      try {
        ctx = CkksContext::create_insecure_for_tests(p);
      } catch (const Error&) {
        continue;  // no NTT prime of this size for this N
      }
      const std::uint64_t q = ctx->modulus(0).value();
      Plaintext pt(ctx->id(), n, 0, 1.0);
      for (auto& v : pt.row(0)) v = rng() % q;
      pt.row(0)[0] = q - 1;
      pt.row(0)[1] = 0;
      pt.row(0)[n - 1] = q - 1;
      const Bytes b = save(*ctx, pt);
      ASSERT_EQ(b.size(), 32u + n * static_cast<std::size_t>(ctx->modulus(0).bits()) / 8);
      const Plaintext back = load_plaintext(*ctx, b);
      ASSERT_TRUE(same(back.data(), pt.data())) << "bits " << bits << " n " << n;
      const int qb = ctx->modulus(0).bits();
      for (const std::size_t j : {std::size_t{0}, n / 2 + 1, n - 1}) {
        Bytes bad = b;
        for (int k = 0; k < qb; ++k) {
          const std::size_t bit =
              32 * 8 + j * static_cast<std::size_t>(qb) + static_cast<std::size_t>(k);
          bad[bit / 8] = static_cast<std::uint8_t>(bad[bit / 8] | (1u << (bit % 8)));
        }
        EXPECT_EQ(load_error([&] { load_plaintext(*ctx, bad); }), ErrorCategory::kBadMessage)
            << "bits " << bits << " n " << n << " residue " << j;
      }
    }
  }
}

// The batch query's shape: N = 16384, {50, 48 x 5}, seeded ciphertexts of
// encrypt_coefficients round-trip exactly and re-expand c1 from the seed.
TEST(Serialize, SeededCiphertextOfBatchShape) {
  CkksParameters p;
  p.n = 16384;
  p.chain_bits = {50, 48, 48, 48, 48, 48};
  World s(CkksContext::create(p));
  Encryptor sym(s.ctx, s.gen.secret_key());
  std::vector<std::int64_t> coeffs(p.n);
  std::mt19937_64 rng(4);
  for (auto& c : coeffs) c = static_cast<std::int64_t>(rng() % (1u << 30)) - (1 << 29);
  const Ciphertext ct = sym.encrypt_coefficients(coeffs, 5, std::exp2(35));
  const Bytes b = save(*s.ctx, ct);
  EXPECT_EQ(b.size(), 20u + 16u + 32u + 16384u * 290u / 8u);
  const Ciphertext back = load_ciphertext(*s.ctx, b);
  EXPECT_TRUE(same(back.data(), ct.data()));
  EXPECT_TRUE(back.seed().has_value());
}

}  // namespace
}  // namespace blindfold::he
