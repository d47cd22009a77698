#include "core/random.h"

#include <gtest/gtest.h>

#include <set>

using namespace blindfold;

TEST(Random, OsRandomIsNotConstant) {
  const Seed a = random_seed(), b = random_seed();
  EXPECT_NE(a, b);
}

TEST(Random, PrgIsDeterministicPerSeedAndStream) {
  Seed s{};
  s[0] = 7;
  Prg a(s), b(s), c(s, 1);
  const std::uint64_t x = a.next_u64();
  EXPECT_EQ(x, b.next_u64());
  EXPECT_NE(x, c.next_u64());
  // Known answer: AES-256-CTR with key 07 00..00 and IV zero encrypts a zero
  // block to this key stream (little-endian first word), pinning the
  // construction so a silent change of cipher or counter layout is caught.
  Prg k(Seed{});
  std::array<std::uint8_t, 16> block;
  k.fill(block);
  // AES-256 of the zero block under the zero key: dc95c078a2408989ad48a21492842087.
  const std::array<std::uint8_t, 16> expected = {0xdc, 0x95, 0xc0, 0x78, 0xa2, 0x40, 0x89, 0x89,
                                                 0xad, 0x48, 0xa2, 0x14, 0x92, 0x84, 0x20, 0x87};
  EXPECT_EQ(block, expected);
}

TEST(Random, UniformStaysInRangeAndCoversIt) {
  Prg p(Seed{});
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t v = p.uniform(7);
    ASSERT_LT(v, 7u);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 7u);
  std::vector<std::uint64_t> big(1000);
  p.uniform(big, (1ULL << 60) - 93);
  for (auto v : big) EXPECT_LT(v, (1ULL << 60) - 93);
}
