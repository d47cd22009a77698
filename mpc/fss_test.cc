#include "mpc/fss.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <bit>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace blindfold::mpc::fss {
namespace {

Seed seed_of(std::uint8_t tag) {
  Seed s{};
  s[0] = tag;
  s[31] = 0x5a;
  return s;
}

std::vector<Block> random_blocks(Prg& prg, std::size_t n) {
  std::vector<Block> v(n);
  prg.fill({reinterpret_cast<std::uint8_t*>(v.data()), n * sizeof(Block)});
  return v;
}

Block add(Block a, Block b) { return {a.lo + b.lo, a.hi + b.hi}; }

std::string hex(Block b) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "(%016llx,%016llx)", static_cast<unsigned long long>(b.lo),
                static_cast<unsigned long long>(b.hi));
  return buf;
}

// A batch of n copies of key `i` of `cw` (to evaluate one key at many points).
DcfCorrections replicate(const DcfCorrections& cw, std::size_t i, std::size_t n) {
  DcfCorrections r;
  r.bits = cw.bits;
  r.count = n;
  for (int l = 0; l < cw.bits; ++l) {
    const std::size_t k = static_cast<std::size_t>(l) * cw.count + i;
    for (std::size_t c = 0; c < n; ++c) {
      r.seed_cw.push_back(cw.seed_cw[k]);
      r.value_cw.push_back(cw.value_cw[k]);
      r.t_cw.push_back(cw.t_cw[k]);
    }
  }
  r.final_cw.assign(n, cw.final_cw[i]);
  return r;
}

template <class F>
ErrorCategory category_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.category();
  }
  ADD_FAILURE() << "no Error thrown";
  return ErrorCategory::kInternal;
}

// ---- DCF -------------------------------------------------------------------

// Every alpha and every x of the domain, for each domain size 1..8 bits: one
// key per alpha, evaluated by both parties at every x.
TEST(DcfTest, ExhaustiveSmallDomains) {
  Prg prg(seed_of(1));
  for (int bits = 1; bits <= 8; ++bits) {
    const std::size_t domain = std::size_t{1} << bits;
    std::vector<u64> alpha(domain);
    for (std::size_t a = 0; a < domain; ++a) alpha[a] = a;
    const auto beta = random_blocks(prg, domain);
    const auto root0 = random_blocks(prg, domain);
    const auto root1 = random_blocks(prg, domain);
    const DcfCorrections cw = dcf_gen(bits, alpha, beta, root0, root1);
    ASSERT_EQ(cw.count, domain);
    std::vector<u64> xs(domain);
    for (std::size_t x = 0; x < domain; ++x) xs[x] = x;
    for (std::size_t a = 0; a < domain; ++a) {
      const DcfCorrections one = replicate(cw, a, domain);
      const std::vector<Block> r0(domain, root0[a]), r1(domain, root1[a]);
      std::vector<Block> y0(domain), y1(domain);
      dcf_eval(0, one, r0, xs, y0);
      dcf_eval(1, one, r1, xs, y1);
      for (std::size_t x = 0; x < domain; ++x) {
        const Block want = x < a ? beta[a] : Block{};
        ASSERT_EQ(add(y0[x], y1[x]), want)
            << "bits " << bits << " alpha " << a << " x " << x << ": got "
            << hex(add(y0[x], y1[x])) << " want " << hex(want);
      }
    }
  }
}

// The same with one key per (alpha, x) pair in a single batch: exercises the
// batch layout and the pool (65,536 keys at 8 bits).
TEST(DcfTest, ExhaustiveAsOneBatch) {
  Prg prg(seed_of(2));
  for (int bits : {1, 3, 8}) {
    const std::size_t domain = std::size_t{1} << bits, n = domain * domain;
    std::vector<u64> alpha(n), xs(n);
    for (std::size_t k = 0; k < n; ++k) {
      alpha[k] = k / domain;
      xs[k] = k % domain;
    }
    const auto beta = random_blocks(prg, n);
    const auto root0 = random_blocks(prg, n);
    const auto root1 = random_blocks(prg, n);
    const DcfCorrections cw = dcf_gen(bits, alpha, beta, root0, root1);
    std::vector<Block> y0(n), y1(n);
    dcf_eval(0, cw, root0, xs, y0);
    dcf_eval(1, cw, root1, xs, y1);
    for (std::size_t k = 0; k < n; ++k) {
      ASSERT_EQ(add(y0[k], y1[k]), xs[k] < alpha[k] ? beta[k] : Block{})
          << "bits " << bits << " alpha " << alpha[k] << " x " << xs[k];
    }
  }
}

// 63 and 64 bits: random points, and points at and around alpha and the ends
// of the domain.
TEST(DcfTest, RandomLargeDomains) {
  Prg prg(seed_of(3));
  for (int bits : {63, 64}) {
    const u64 mask = bits == 64 ? ~u64{0} : (u64{1} << bits) - 1;
    std::vector<u64> alpha, xs;
    auto push = [&](u64 a, u64 x) {
      alpha.push_back(a & mask);
      xs.push_back(x & mask);
    };
    for (int k = 0; k < 3000; ++k) {
      const u64 a = prg.next_u64() & mask;
      push(a, prg.next_u64());
      for (u64 d : {u64{0}, u64{1}, u64{2}, ~u64{0}, ~u64{1}}) push(a, a + d);
      // Same high bits as alpha, random low bits (long shared prefixes).
      const int low = static_cast<int>(prg.uniform(static_cast<u64>(bits)));
      push(a, (a & ~((u64{1} << low) - 1)) | (prg.next_u64() & ((u64{1} << low) - 1)));
    }
    for (u64 a : {u64{0}, u64{1}, mask, mask - 1, mask >> 1, (mask >> 1) + 1}) {
      for (u64 x : {u64{0}, u64{1}, mask, mask - 1, mask >> 1, (mask >> 1) + 1}) push(a, x);
    }
    const std::size_t n = alpha.size();
    const auto beta = random_blocks(prg, n);
    const auto root0 = random_blocks(prg, n);
    const auto root1 = random_blocks(prg, n);
    const DcfCorrections cw = dcf_gen(bits, alpha, beta, root0, root1);
    std::vector<Block> y0(n), y1(n);
    dcf_eval(0, cw, root0, xs, y0);
    dcf_eval(1, cw, root1, xs, y1);
    std::size_t less = 0;
    for (std::size_t k = 0; k < n; ++k) {
      less += xs[k] < alpha[k];
      ASSERT_EQ(add(y0[k], y1[k]), xs[k] < alpha[k] ? beta[k] : Block{})
          << "bits " << bits << " alpha " << alpha[k] << " x " << xs[k];
    }
    EXPECT_GT(less, n / 5);  // both outcomes well represented
    EXPECT_LT(less, 4 * n / 5);
  }
}

TEST(DcfTest, SerializationRoundTripsAndIsPinned) {
  Prg prg(seed_of(4));
  for (int bits : {1, 2, 5, 63, 64}) {
    for (std::size_t count : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{1000}}) {
      std::vector<u64> alpha(count);
      for (auto& a : alpha) a = prg.next_u64() & (bits == 64 ? ~u64{0} : (u64{1} << bits) - 1);
      const auto beta = random_blocks(prg, count);
      const auto r0 = random_blocks(prg, count), r1 = random_blocks(prg, count);
      const DcfCorrections cw = dcf_gen(bits, alpha, beta, r0, r1);
      std::vector<std::uint8_t> bytes = {0xee};  // serialize appends
      cw.serialize(bytes);
      ASSERT_EQ(bytes.size(), 1 + DcfCorrections::serialized_size(bits, count));
      const DcfCorrections back = DcfCorrections::parse(
          bits, count, std::span<const std::uint8_t>(bytes).subspan(1));
      EXPECT_EQ(back.bits, bits);
      EXPECT_EQ(back.count, count);
      EXPECT_EQ(back.seed_cw, cw.seed_cw);
      EXPECT_EQ(back.value_cw, cw.value_cw);
      EXPECT_EQ(back.t_cw, cw.t_cw);
      EXPECT_EQ(back.final_cw, cw.final_cw);
    }
  }
  EXPECT_EQ(DcfCorrections::serialized_size(63, 1), 63 * 32 + 16 + 16u);
  EXPECT_EQ(DcfCorrections::serialized_size(63, 4), 4 * (63 * 32 + 16) + 63u);
  EXPECT_EQ(DcfCorrections::serialized_size(64, 1), 64 * 32 + 16 + 16u);
}

// Known answer, pinning the PRG (AES key, MMO form, j placement, t bit), the
// Fig. 3 arithmetic and the byte layout. The expected digest comes from an
// independent Python model of the construction (AES from the `cryptography`
// package), not from this implementation.
TEST(DcfTest, KnownAnswer) {
  const int bits = 5;
  const std::vector<u64> alpha = {0, 13, 31, 22};
  std::vector<Block> beta, r0, r1;
  for (u64 i = 0; i < alpha.size(); ++i) {
    beta.push_back({0x1111111111111111 * (i + 1), ~i});
    r0.push_back({0x0123456789abcdef + i, 0xfedcba9876543210 ^ i});
    r1.push_back({0x0f1e2d3c4b5a6978 * (i + 3), 0x8796a5b4c3d2e1f0 + 7 * i});
  }
  const DcfCorrections cw = dcf_gen(bits, alpha, beta, r0, r1);
  std::vector<std::uint8_t> bytes;
  cw.serialize(bytes);
  std::uint8_t digest[32];
  unsigned int len = 0;
  ASSERT_EQ(EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr), 1);
  std::string got;
  for (unsigned i = 0; i < len; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", digest[i]);
    got += b;
  }
  EXPECT_EQ(bytes.size(), 709u);
  EXPECT_EQ(got, "1e42b7c95e0ad966a07ad891a4ea8d7fd7259f288a261fd9c79537ef35cae497");
}

TEST(DcfTest, ParseRefusesMalformedInput) {
  Prg prg(seed_of(5));
  const int bits = 63;
  const std::size_t count = 5;  // 315 t entries: the last t byte uses 3 pairs
  std::vector<u64> alpha(count, 12345);
  const auto beta = random_blocks(prg, count);
  const auto r0 = random_blocks(prg, count), r1 = random_blocks(prg, count);
  std::vector<std::uint8_t> bytes;
  dcf_gen(bits, alpha, beta, r0, r1).serialize(bytes);
  const std::span<const std::uint8_t> all(bytes);
  for (std::size_t len : {std::size_t{0}, std::size_t{1}, bytes.size() - 1, bytes.size() - 16}) {
    EXPECT_EQ(category_of([&] { DcfCorrections::parse(bits, count, all.first(len)); }),
              ErrorCategory::kBadMessage)
        << len;
  }
  std::vector<std::uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_EQ(category_of([&] { DcfCorrections::parse(bits, count, longer); }),
            ErrorCategory::kBadMessage);
  EXPECT_EQ(category_of([&] { DcfCorrections::parse(bits, count + 1, bytes); }),
            ErrorCategory::kBadMessage);
  EXPECT_EQ(category_of([&] { DcfCorrections::parse(bits, count - 1, bytes); }),
            ErrorCategory::kBadMessage);
  // Unused bits of the last t byte.
  const std::size_t last_t = 2 * bits * count * 16 + (bits * count + 3) / 4 - 1;
  for (int bit = 6; bit < 8; ++bit) {
    std::vector<std::uint8_t> bad = bytes;
    bad[last_t] = static_cast<std::uint8_t>(bad[last_t] | (1u << bit));
    try {
      DcfCorrections::parse(bits, count, bad);
      ADD_FAILURE() << "unused t bit " << bit << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
      EXPECT_NE(std::string(e.what()).find("unused"), std::string::npos) << e.what();
    }
  }
  // Used bits of that byte are data, not an error.
  std::vector<std::uint8_t> flipped = bytes;
  flipped[last_t] ^= 0x3f;
  EXPECT_NO_THROW(DcfCorrections::parse(bits, count, flipped));
  // Absurd counts are refused without overflow.
  EXPECT_EQ(category_of([&] {
              DcfCorrections::parse(64, std::numeric_limits<std::size_t>::max() / 8, bytes);
            }),
            ErrorCategory::kBadMessage);
}

TEST(DcfTest, RefusesOutOfDomainArguments) {
  const std::vector<Block> b(1);
  const std::vector<u64> big = {16};
  EXPECT_EQ(category_of([&] { dcf_gen(4, big, b, b, b); }), ErrorCategory::kInternal);
  EXPECT_EQ(category_of([&] { dcf_gen(0, big, b, b, b); }), ErrorCategory::kInternal);
  EXPECT_EQ(category_of([&] { dcf_gen(65, big, b, b, b); }), ErrorCategory::kInternal);
  const std::vector<u64> ok = {15};
  const DcfCorrections cw = dcf_gen(4, ok, b, b, b);
  std::vector<Block> out(1);
  EXPECT_EQ(category_of([&] { dcf_eval(0, cw, b, big, out); }), ErrorCategory::kInternal);
  EXPECT_EQ(category_of([&] { dcf_eval(2, cw, b, ok, out); }), ErrorCategory::kInternal);
  std::vector<Block> out2(2);
  EXPECT_EQ(category_of([&] { dcf_eval(0, cw, b, ok, out2); }), ErrorCategory::kInternal);
}

// One party's view: the correction words look random (no constant or
// alpha-dependent structure visible in the bit balance), and two generations
// for the same function differ entirely.
TEST(DcfTest, CorrectionWordsLookRandom) {
  Prg prg(seed_of(6));
  const std::size_t count = 2000;
  std::vector<u64> alpha(count, 0);  // the same (degenerate) function for all
  std::vector<Block> beta(count, Block{1, 0});
  auto gen = [&] {
    const auto r0 = random_blocks(prg, count), r1 = random_blocks(prg, count);
    std::vector<std::uint8_t> bytes;
    dcf_gen(63, alpha, beta, r0, r1).serialize(bytes);
    return bytes;
  };
  const auto a = gen(), b = gen();
  ASSERT_EQ(a.size(), b.size());
  std::size_t ones = 0, equal_bytes = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ones += static_cast<std::size_t>(std::popcount(a[i]));
    equal_bytes += a[i] == b[i];
  }
  const double frac = static_cast<double>(ones) / (8.0 * static_cast<double>(a.size()));
  // Seed CWs have bit 0 always clear (the t bit's place): 1/256 of all bits.
  EXPECT_NEAR(frac, 0.5 - 1.0 / 512, 0.003);
  EXPECT_LT(equal_bytes, a.size() / 128);  // ~1/256 expected by chance
}

// ---- ReLU gate -------------------------------------------------------------

struct Gate {
  int bits = 64;
  ReluGateKey k0, k1;
  std::vector<u64> r;  // the mask r = r0 + r1 (test only)
};

Gate make_gate(std::size_t count, std::uint8_t tag, int bits = 64) {
  Prg d0(seed_of(tag), 7), d1(seed_of(static_cast<std::uint8_t>(tag + 1)), 7);
  const ReluGateDealt dealt = relu_gate_gen(count, bits, d0, d1);
  EXPECT_EQ(dealt.to_both.size(), DcfCorrections::serialized_size(bits - 1, count));
  EXPECT_EQ(dealt.to_party1.size(), 16 * count);
  Prg p0(seed_of(tag), 7), p1(seed_of(static_cast<std::uint8_t>(tag + 1)), 7);
  Gate g{bits,
         ReluGateKey::load(0, count, bits, p0, dealt.to_both, {}),
         ReluGateKey::load(1, count, bits, p1, dealt.to_both, dealt.to_party1),
         {}};
  EXPECT_EQ(g.k0.bits(), bits);
  EXPECT_EQ(g.k1.bits(), bits);
  for (std::size_t i = 0; i < count; ++i) g.r.push_back(g.k0.r_share()[i] + g.k1.r_share()[i]);
  // Both PRGs were replayed to the same point as the dealer's.
  EXPECT_EQ(d0.next_u64(), p0.next_u64());
  EXPECT_EQ(d1.next_u64(), p1.next_u64());
  return g;
}

// x in [-2^(bits-1), 2^(bits-1)) as a signed 64-bit integer.
bool in_range(u64 x, int bits) {
  if (bits == 64) return true;
  const auto v = static_cast<std::int64_t>(x);
  const std::int64_t half = std::int64_t{1} << (bits - 1);
  return v >= -half && v < half;
}

// Runs the gate on x (secret-shared with random shares) and checks DReLU and
// ReLU exactly, with every output combination. The oracle is the sign of
// x mod 2^bits as a bits-bit integer (the gate's value for any x); for x in
// range it is checked to be the sign of x itself.
void check_relu(const Gate& g, const std::vector<u64>& x, Prg& prg) {
  const std::size_t n = x.size();
  ASSERT_EQ(g.k0.count(), n);
  std::vector<u64> xhat(n);
  for (std::size_t i = 0; i < n; ++i) {
    const u64 x0 = prg.next_u64(), x1 = x[i] - x0;
    xhat[i] = (x0 + g.k0.r_share()[i]) + (x1 + g.k1.r_share()[i]);  // opened
  }
  std::vector<u64> d0(n), d1(n), y0(n), y1(n), d0b(n), y1b(n);
  g.k0.eval(xhat, d0, y0);
  g.k1.eval(xhat, d1, y1);
  g.k0.eval(xhat, d0b, {});
  g.k1.eval(xhat, {}, y1b);
  EXPECT_EQ(d0b, d0);
  EXPECT_EQ(y1b, y1);
  for (std::size_t i = 0; i < n; ++i) {
    const bool pos = ((x[i] >> (g.bits - 1)) & 1) == 0;
    if (in_range(x[i], g.bits)) {
      ASSERT_EQ(pos, static_cast<std::int64_t>(x[i]) >= 0);
    }
    ASSERT_EQ(d0[i] + d1[i], pos ? 1u : 0u)
        << "bits " << g.bits << " x " << static_cast<std::int64_t>(x[i]) << " r " << g.r[i] << " i "
        << i;
    ASSERT_EQ(y0[i] + y1[i], pos ? x[i] : 0u)
        << "bits " << g.bits << " x " << static_cast<std::int64_t>(x[i]) << " r " << g.r[i] << " i "
        << i;
  }
}

TEST(FssReluTest, RandomAndEdgeInputs) {
  Prg prg(seed_of(10));
  const std::size_t count = 20000;  // several pool tasks
  const Gate g = make_gate(count, 11);
  std::vector<u64> x(count);
  const u64 kMin = u64{1} << 63, kMax = kMin - 1;
  const std::vector<u64> edges = {0, ~u64{0}, 1, kMin, kMax, kMin + 1, kMax - 1, 2, ~u64{1}};
  std::size_t i = 0;
  for (u64 e : edges) x[i++] = e;
  // Values placing xhat = x + r at and around the wrap points of xhat mod
  // 2^64 and mod 2^63 (x = -r + d, 2^63 - r + d): c and MSB(xhat) flip there.
  for (std::size_t k = 0; k < 200; ++k, ++i) {
    const u64 r = g.r[i];
    const u64 d = static_cast<u64>(static_cast<std::int64_t>(k % 5) - 2);
    x[i] = (k % 10 < 5 ? 0 : kMin) - r + d;
  }
  // The same for r's low 63 bits: xhat mod 2^63 = r mod 2^63 + d.
  for (std::size_t k = 0; k < 200; ++k, ++i) {
    const u64 r = g.r[i];
    const u64 d = static_cast<u64>(static_cast<std::int64_t>(k % 5) - 2);
    x[i] = ((r & kMax) + d + (k % 2 ? kMin : 0)) - r;
  }
  // Small magnitudes (typical activations) and the full range.
  for (; i < 10000; ++i) x[i] = static_cast<u64>(static_cast<std::int64_t>(prg.uniform(2001)) - 1000);
  for (; i < count; ++i) x[i] = prg.next_u64();
  check_relu(g, x, prg);
}

// Widths 2..10: every x of the range [-2^(n-1), 2^(n-1)), each under 16
// gates (16 independent random masks r), in one batch per width.
TEST(FssReluTest, ExhaustiveSmallWidths) {
  Prg prg(seed_of(50));
  constexpr std::size_t kMasks = 16;
  for (int bits = 2; bits <= 10; ++bits) {
    const std::size_t range = std::size_t{1} << bits;
    const Gate g = make_gate(range * kMasks, static_cast<std::uint8_t>(51 + bits), bits);
    std::vector<u64> x(range * kMasks);
    const auto lo = -(std::int64_t{1} << (bits - 1));
    for (std::size_t k = 0; k < x.size(); ++k) {
      x[k] = static_cast<u64>(lo + static_cast<std::int64_t>(k % range));
      ASSERT_TRUE(in_range(x[k], bits));
    }
    check_relu(g, x, prg);
    if (HasFatalFailure()) return;
  }
}

// Larger widths: random in-range values, the edges -2^(n-1), -1, 0, 1,
// 2^(n-1) - 1 and their neighbours, and values putting xhat mod 2^(n-1) at
// and around r mod 2^(n-1) (where the borrow c flips).
TEST(FssReluTest, RandomInRangeWidths) {
  Prg prg(seed_of(70));
  for (int bits : {17, 20, 32, 33, 63, 64}) {
    const std::size_t count = 6000;
    const Gate g = make_gate(count, static_cast<std::uint8_t>(71 + bits), bits);
    const u64 half = u64{1} << (bits - 1);  // 2^(n-1)
    const u64 low = half - 1;               // mask of the low n-1 bits
    std::vector<u64> x(count);
    std::size_t i = 0;
    for (u64 e : {u64{0} - half, ~u64{0}, u64{0}, u64{1}, half - 1, u64{0} - half + 1, half - 2,
                  ~u64{1}, u64{2}}) {
      for (int rep = 0; rep < 20; ++rep) x[i++] = e;
    }
    // x mod 2^(n-1) = 2^(n-1) - (r mod 2^(n-1)) + d: the low n-1 bits of
    // x + r wrap there; x itself is that value or that value - 2^(n-1).
    for (std::size_t k = 0; k < 400; ++k, ++i) {
      const u64 d = static_cast<u64>(static_cast<std::int64_t>(k % 5) - 2);
      const u64 v = (half - (g.r[i] & low) + d) & low;
      x[i] = k % 2 ? v : v - half;
    }
    // Small magnitudes, then uniform over the range.
    for (; i < count / 2; ++i) {
      x[i] = static_cast<u64>(static_cast<std::int64_t>(prg.uniform(2001)) - 1000);
    }
    for (; i < count; ++i) x[i] = (prg.next_u64() & (2 * half - 1)) - half;
    for (u64 v : x) ASSERT_TRUE(in_range(v, bits)) << bits << " " << v;
    check_relu(g, x, prg);
    if (HasFatalFailure()) return;
  }
}

// Out of range: well-formed shares of the sign of x mod 2^n (check_relu's
// oracle), for uniformly random 64-bit x and values just outside the range.
TEST(FssReluTest, OutOfRangeGivesSignOfLowBits) {
  Prg prg(seed_of(80));
  for (int bits : {2, 3, 7, 20, 32, 63}) {
    const std::size_t count = 3000;
    const Gate g = make_gate(count, static_cast<std::uint8_t>(81 + bits), bits);
    const u64 half = u64{1} << (bits - 1);
    std::vector<u64> x(count);
    std::size_t i = 0;
    for (u64 e : {half, half + 1, u64{0} - half - 1, 2 * half, u64{0} - 2 * half, u64{1} << 63}) {
      x[i++] = e;
    }
    for (; i < count; ++i) x[i] = prg.next_u64();
    std::size_t outside = 0;
    for (u64 v : x) outside += !in_range(v, bits);
    EXPECT_GT(outside, count / 3);  // about half at 63 bits, nearly all below
    check_relu(g, x, prg);
    if (HasFatalFailure()) return;
  }
}

// The 64-bit gate is bit for bit the gate of earlier versions (a 63-bit DCF
// with alpha = r mod 2^63): the digest was computed with the implementation
// before widths were introduced (commit 07bc452), from the same seeds.
TEST(FssReluTest, FullWidthIsPinned) {
  Prg d0(seed_of(50), 7), d1(seed_of(51), 7);
  const ReluGateDealt dealt = relu_gate_gen(5, 64, d0, d1);
  std::vector<std::uint8_t> all = dealt.to_both;
  all.insert(all.end(), dealt.to_party1.begin(), dealt.to_party1.end());
  std::uint8_t digest[32];
  unsigned int len = 0;
  ASSERT_EQ(EVP_Digest(all.data(), all.size(), digest, &len, EVP_sha256(), nullptr), 1);
  std::string got;
  for (unsigned i = 0; i < len; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", digest[i]);
    got += b;
  }
  EXPECT_EQ(dealt.to_both.size(), 10239u);
  EXPECT_EQ(dealt.to_party1.size(), 80u);
  EXPECT_EQ(got, "08fa5f799fdef230d3e7247333c55810fb427e12b12639cbdfa382434cafd615");
}

TEST(FssReluTest, KeySizeScalesWithWidth) {
  for (int bits : {2, 20, 32, 64}) {
    Prg d0(seed_of(90)), d1(seed_of(91));
    const std::size_t count = 100;
    const ReluGateDealt dealt = relu_gate_gen(count, bits, d0, d1);
    const std::size_t levels = static_cast<std::size_t>(bits - 1);
    EXPECT_EQ(dealt.to_both.size(), count * (32 * levels + 16) + (levels * count + 3) / 4) << bits;
    EXPECT_EQ(dealt.to_party1.size(), 16 * count);
  }
}

TEST(FssReluTest, RefusesBadWidths) {
  Prg d0(seed_of(92)), d1(seed_of(93));
  for (int bits : {-1, 0, 1, 65, 128}) {
    EXPECT_EQ(category_of([&] { relu_gate_gen(1, bits, d0, d1); }), ErrorCategory::kInternal)
        << bits;
  }
  const ReluGateDealt dealt = relu_gate_gen(4, 20, d0, d1);
  auto load = [&](int bits) {
    Prg p(seed_of(92));
    return ReluGateKey::load(0, 4, bits, p, dealt.to_both, {});
  };
  EXPECT_NO_THROW(load(20));
  for (int bits : {1, 65}) EXPECT_EQ(category_of([&] { load(bits); }), ErrorCategory::kInternal);
  // Another width's key has another size: the bytes do not fit.
  for (int bits : {2, 19, 21, 64}) {
    EXPECT_EQ(category_of([&] { load(bits); }), ErrorCategory::kBadMessage) << bits;
  }
}

TEST(FssReluTest, ExtremeMasks) {
  // Gates whose r lands on the edge values cannot be forced through the PRG,
  // so check the algebra on all masks r in a small neighbourhood of the
  // critical points by shifting x instead: for each gate the inputs x = -r +
  // {0, 2^63} +- 1 put xhat on 0, 2^63, and their neighbours.
  Prg prg(seed_of(12));
  const std::size_t count = 8 * 1024;
  const Gate g = make_gate(count, 13);
  std::vector<u64> x(count);
  const u64 kMin = u64{1} << 63;
  for (std::size_t i = 0; i < count; ++i) {
    const u64 targets[8] = {0, 1, ~u64{0}, kMin, kMin - 1, kMin + 1, g.r[i], g.r[i] ^ kMin};
    x[i] = targets[i % 8] - g.r[i];
  }
  check_relu(g, x, prg);
}

TEST(FssReluTest, SmallBatchesAndZero) {
  Prg prg(seed_of(14));
  for (int bits : {2, 20, 64}) {
    for (std::size_t count : {std::size_t{1}, std::size_t{2}, std::size_t{511}, std::size_t{513}}) {
      const Gate g = make_gate(count, 15, bits);
      std::vector<u64> x(count);
      for (auto& v : x) v = prg.next_u64();
      check_relu(g, x, prg);
    }
    const Gate g = make_gate(0, 16, bits);
    EXPECT_EQ(g.k0.count(), 0u);
    g.k0.eval({}, {}, {});
  }
}

TEST(FssReluTest, KeysOfOnePartyLookRandom) {
  const std::size_t count = 1000;
  Prg a0(seed_of(20)), a1(seed_of(21)), b0(seed_of(22)), b1(seed_of(23));
  const ReluGateDealt da = relu_gate_gen(count, 64, a0, a1);
  const ReluGateDealt db = relu_gate_gen(count, 64, b0, b1);
  ASSERT_EQ(da.to_both.size(), db.to_both.size());
  std::size_t equal = 0, zero = 0;
  for (std::size_t i = 0; i < da.to_both.size(); ++i) {
    equal += da.to_both[i] == db.to_both[i];
    zero += da.to_both[i] == 0;
  }
  EXPECT_LT(equal, da.to_both.size() / 128);
  EXPECT_LT(zero, da.to_both.size() / 128);
  // Party 1's shares of m_r and m_r r are not the bits themselves.
  std::size_t small = 0;
  for (std::size_t i = 0; i < count; ++i) {
    u64 m;
    std::memcpy(&m, da.to_party1.data() + 16 * i, 8);
    small += m < 2;
  }
  EXPECT_LT(small, 3u);
  // The same PRG seeds give the same material (the parties replay them).
  Prg c0(seed_of(20)), c1(seed_of(21));
  const ReluGateDealt dc = relu_gate_gen(count, 64, c0, c1);
  EXPECT_EQ(dc.to_both, da.to_both);
  EXPECT_EQ(dc.to_party1, da.to_party1);
}

TEST(FssReluTest, LoadRefusesMalformedSizes) {
  const std::size_t count = 3;
  Prg d0(seed_of(30)), d1(seed_of(31));
  const ReluGateDealt dealt = relu_gate_gen(count, 64, d0, d1);
  const std::span<const std::uint8_t> both(dealt.to_both), p1(dealt.to_party1);
  auto load = [&](int party, std::size_t n, std::span<const std::uint8_t> b,
                  std::span<const std::uint8_t> q) {
    Prg prg(seed_of(static_cast<std::uint8_t>(30 + party)));
    return ReluGateKey::load(party, n, 64, prg, b, q);
  };
  EXPECT_NO_THROW(load(0, count, both, {}));
  EXPECT_NO_THROW(load(1, count, both, p1));
  std::vector<std::uint8_t> both_long(both.begin(), both.end()), p1_long(p1.begin(), p1.end());
  both_long.push_back(0);
  p1_long.push_back(0);
  auto expect_bad = [&](const char* what, auto&& f, const char* needle = "expected") {
    try {
      f();
      ADD_FAILURE() << what << ": accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << what << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  for (int party : {0, 1}) {
    const auto q = party == 1 ? p1 : std::span<const std::uint8_t>();
    expect_bad("to_both empty", [&] { load(party, count, {}, q); });
    expect_bad("to_both short by 1", [&] { load(party, count, both.first(both.size() - 1), q); });
    expect_bad("to_both short by 16", [&] { load(party, count, both.first(both.size() - 16), q); });
    expect_bad("to_both long", [&] { load(party, count, both_long, q); });
    expect_bad("count + 1", [&] { load(party, count + 1, both, q); });
    expect_bad("count - 1", [&] { load(party, count - 1, both, q); });
  }
  expect_bad("party 0 with party-1 bytes", [&] { load(0, count, both, p1); });
  expect_bad("party 0 with one party-1 byte", [&] { load(0, count, both, p1.first(1)); });
  expect_bad("party 1 without its bytes", [&] { load(1, count, both, {}); });
  expect_bad("party 1 short", [&] { load(1, count, both, p1.first(p1.size() - 1)); });
  expect_bad("party 1 short by 8", [&] { load(1, count, both, p1.first(p1.size() - 8)); });
  expect_bad("party 1 long", [&] { load(1, count, both, p1_long); });
  // t bits: the last t byte of 189 entries (3 gates x 63) uses one pair.
  std::vector<std::uint8_t> bad(both.begin(), both.end());
  bad[2 * 63 * count * 16 + (63 * count + 3) / 4 - 1] |= 0x40;
  expect_bad("unused t bits", [&] { load(0, count, bad, {}); }, "unused");
  EXPECT_EQ(category_of([&] { load(2, count, both, {}); }), ErrorCategory::kInternal);

  const ReluGateKey k = load(0, count, both, {});
  std::vector<u64> xh(count), out(count), wrong(count + 1);
  EXPECT_EQ(category_of([&] { k.eval(wrong, out, out); }), ErrorCategory::kInternal);
  EXPECT_EQ(category_of([&] { k.eval(xh, wrong, {}); }), ErrorCategory::kInternal);
  EXPECT_EQ(category_of([&] { k.eval(xh, {}, wrong); }), ErrorCategory::kInternal);
}

// Timing (not a correctness test; run with --gtest_also_run_disabled_tests).
// Single-thread numbers come from running inside a task of a private pool,
// where the global pool's parallel_for runs inline.
TEST(FssReluTest, DISABLED_Speed) {
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  ThreadPool one(2);
  for (int bits : {20, 32, 64}) {
    for (std::size_t count : {std::size_t{10000}, std::size_t{600000}}) {
      for (bool single : {true, false}) {
        auto run = [&] {
          Prg d0(seed_of(40)), d1(seed_of(41));
          auto t0 = Clock::now();
          ReluGateDealt dealt = relu_gate_gen(count, bits, d0, d1);
          auto t1 = Clock::now();
          Prg p0(seed_of(40));
          const ReluGateKey k0 = ReluGateKey::load(0, count, bits, p0, dealt.to_both, {});
          auto t2 = Clock::now();
          dealt = ReluGateDealt{};
          std::vector<u64> xhat(count), d(count), y(count);
          Prg px(seed_of(42));
          for (auto& v : xhat) v = px.next_u64();
          double best = 1e30;
          for (int rep = 0; rep < 5; ++rep) {
            const auto a = Clock::now();
            k0.eval(xhat, d, y);
            best = std::min(best, ms(a, Clock::now()));
          }
          std::printf(
              "%2d bits %7zu gates %s: gen %8.1f ms  load %7.1f ms  eval %7.1f ms (%.1f ns/gate)\n",
              bits, count, single ? "1 thread " : "pool     ", ms(t0, t1), ms(t1, t2), best,
              best * 1e6 / static_cast<double>(count));
        };
        if (single) {
          one.parallel_for(2, [&](std::int64_t b, std::int64_t) {
            if (b == 0) run();
          });
        } else {
          run();
        }
      }
    }
  }
}

}  // namespace
}  // namespace blindfold::mpc::fss
