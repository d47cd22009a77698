// he/sampling: expand_uniform's output is exactly the word-by-word rejection
// over Prg(seed, stream) (it generates the AES-CTR key stream in large chunks
// itself), for several prime sizes and lengths, and over OpenSSL's
// AES-256-CTR key stream, pinned by a known answer; the signed-residue
// conversions against a plain reference; the fresh error's distribution
// (centred binomial, variance 10.5) from sample_cbd; secure_wipe zeroes.
#include "he/sampling.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "he/primes.h"

namespace blindfold::he {
namespace {

std::vector<std::uint64_t> reference_expand(const Seed& seed, std::uint64_t stream,
                                            const Modulus& q, std::size_t n) {
  Prg prg(seed, stream);
  const std::uint64_t mask = (std::uint64_t{1} << q.bits()) - 1;
  std::vector<std::uint64_t> out;
  while (out.size() < n) {
    const std::uint64_t v = prg.next_u64() & mask;
    if (v < q.value()) out.push_back(v);
  }
  return out;
}

TEST(Sampling, ExpandUniformIsTheWordByWordRejection) {
  Seed seed{};
  for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<std::uint8_t>(7 * i + 1);
  // 31 bits just above a power of two: about half the words are rejected.
  const std::vector<Modulus> moduli = {Modulus(ntt_primes(48, 1, 16384)[0]),
                                       Modulus(ntt_primes(60, 1, 16384)[0]),
                                       Modulus((std::uint64_t{1} << 30) + 3)};
  for (const Modulus& q : moduli) {
    for (const std::size_t n : {1u, 7u, 2048u, 16384u, 40000u}) {
      const auto want = reference_expand(seed, 5, q, n);
      std::vector<std::uint64_t> got(n);
      expand_uniform(seed, 5, q, got);
      EXPECT_EQ(got, want) << q.value() << " n " << n;
    }
  }
}

// AES-256-CTR key stream straight from OpenSSL's EVP (not through Prg):
// key = seed, initial counter block = (stream, 0) as big-endian 64-bit words.
std::vector<std::uint8_t> openssl_key_stream(const Seed& seed, std::uint64_t stream,
                                             std::size_t bytes) {
  std::uint8_t iv[16] = {};
  for (int i = 0; i < 8; ++i) iv[i] = static_cast<std::uint8_t>(stream >> (56 - 8 * i));
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  const std::vector<std::uint8_t> zeros(bytes);
  std::vector<std::uint8_t> out(bytes);
  int len = 0;
  const bool ok =
      ctx != nullptr && EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), nullptr, seed.data(), iv) == 1 &&
      EVP_EncryptUpdate(ctx, out.data(), &len, zeros.data(), static_cast<int>(bytes)) == 1 &&
      static_cast<std::size_t>(len) == bytes;
  EVP_CIPHER_CTX_free(ctx);
  EXPECT_TRUE(ok) << "EVP AES-256-CTR";
  return out;
}

TEST(Sampling, ExpandUniformIsOpenSslAes256CtrKeyStream) {
  Seed seed{};
  for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<std::uint8_t>(7 * i + 1);
  // Known answer: the first 32 bytes of AES-256-CTR with this key and
  // counter block 0000000000000005 0000000000000000 (`openssl enc
  // -aes-256-ctr` and Python's `cryptography` agree).
  const std::vector<std::uint8_t> kat = {0x94, 0x45, 0x80, 0x7b, 0x61, 0xf2, 0x37, 0x9b,
                                         0x7c, 0xf4, 0x56, 0xfb, 0x6a, 0x10, 0x12, 0x56,
                                         0x25, 0x08, 0xaa, 0xe8, 0x74, 0xf8, 0x75, 0xda,
                                         0x20, 0x9c, 0x20, 0x1b, 0x81, 0xe5, 0xe1, 0x78};
  const std::vector<std::uint8_t> head = openssl_key_stream(seed, 5, 64);
  ASSERT_EQ(std::vector<std::uint8_t>(head.begin(), head.begin() + 32), kat);
  // With q = 2^30 + 3 (31-bit mask), little-endian words 0..7 of that key
  // stream give 0x1b209c20 (word 3) and 0x171fdb5b (word 6); the others are
  // rejected.
  const Modulus q31((std::uint64_t{1} << 30) + 3);
  std::vector<std::uint64_t> first(2);
  expand_uniform(seed, 5, q31, first);
  EXPECT_EQ(first, (std::vector<std::uint64_t>{0x1b209c20, 0x171fdb5b}));

  // Longer outputs (several 16 KiB key-stream chunks, the 8-word filter and
  // its scalar tail): the rejection over OpenSSL's words, in order.
  const std::vector<Modulus> moduli = {q31, Modulus(ntt_primes(48, 1, 16384)[0]),
                                       Modulus(ntt_primes(60, 1, 16384)[0])};
  for (const Modulus& q : moduli) {
    const std::uint64_t mask = (std::uint64_t{1} << q.bits()) - 1;
    for (const std::size_t n : {3u, 8u, 9u, 2047u, 16384u, 40001u}) {
      // Enough words for n accepted ones with overwhelming probability
      // (acceptance > 1/2): 3n + 64.
      const std::size_t words = 3 * n + 64;
      const std::vector<std::uint8_t> ks = openssl_key_stream(seed, 9, 8 * words);
      std::vector<std::uint64_t> want;
      for (std::size_t k = 0; k < words && want.size() < n; ++k) {
        std::uint64_t w = 0;
        for (int b = 7; b >= 0; --b) w = (w << 8) | ks[8 * k + static_cast<std::size_t>(b)];
        if ((w & mask) < q.value()) want.push_back(w & mask);
      }
      ASSERT_EQ(want.size(), n);
      std::vector<std::uint64_t> got(n);
      expand_uniform(seed, 9, q, got);
      EXPECT_EQ(got, want) << q.value() << " n " << n;
    }
  }
}

TEST(Sampling, SignedResidues) {
  const Modulus q(ntt_primes(48, 1, 16384)[0]);
  const std::int64_t m = static_cast<std::int64_t>(q.value());
  std::vector<std::int64_t> v = {0,
                                 1,
                                 -1,
                                 m - 1,
                                 -(m - 1),
                                 m,
                                 -m,
                                 m + 5,
                                 -m - 5,
                                 3 * m,
                                 std::numeric_limits<std::int64_t>::max(),
                                 std::numeric_limits<std::int64_t>::min() + 1};
  std::vector<std::uint64_t> out(v.size());
  signed_to_residues(v, q, out);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::int64_t r = v[i] % m;
    EXPECT_EQ(out[i], static_cast<std::uint64_t>(r < 0 ? r + m : r)) << v[i];
  }
  std::vector<std::int64_t> small = {0, 1, -1, m - 1, -(m - 1), 21, -21};
  std::vector<std::uint64_t> out2(small.size());
  small_signed_to_residues(small, q, out2);
  for (std::size_t i = 0; i < small.size(); ++i) {
    EXPECT_EQ(out2[i], static_cast<std::uint64_t>(small[i] < 0 ? small[i] + m : small[i]));
  }
}

TEST(Sampling, CenteredBinomialError) {
  Prg prg(Seed{});
  std::vector<std::int8_t> e(1 << 18);
  sample_cbd(prg, e);
  double sum = 0, sq = 0;
  for (const std::int8_t x : e) {
    ASSERT_LE(std::abs(x), kCbdK);
    sum += x;
    sq += static_cast<double>(x) * x;
  }
  const double mean = sum / static_cast<double>(e.size());
  const double var = sq / static_cast<double>(e.size()) - mean * mean;
  EXPECT_LT(std::fabs(mean), 0.03);
  EXPECT_NEAR(var, kCbdK / 2.0, 0.15);
}

TEST(Sampling, SecureWipeZeroes) {
  std::vector<std::uint64_t> v(1000, 0xdeadbeef);
  secure_wipe(std::span<std::uint64_t>(v));
  for (const auto x : v) EXPECT_EQ(x, 0u);
}

}  // namespace
}  // namespace blindfold::he
