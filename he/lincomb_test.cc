// lincomb against a scalar reference (mul_mod/add_mod, exact mod q) in every
// instruction-set variant: moduli of 20..60 bits, edge residues (0, q - 1),
// tails of the 16-coefficient and 6-output tiles, term counts across the
// IFMA segment (4095) and accumulation into existing outputs.
#include "he/lincomb.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/error.h"

namespace blindfold::he {
namespace {

struct Case {
  std::size_t m, k, n;
};

void check(const Modulus& q, const Case& cs, Isa isa, bool accumulate, bool extremes,
           std::mt19937_64& rng) {
  std::vector<std::vector<std::uint64_t>> in(cs.k, std::vector<std::uint64_t>(cs.n));
  std::vector<std::uint64_t> w(cs.m * cs.k);
  auto draw = [&] { return extremes ? q.value() - 1 - (rng() & 1) : rng() % q.value(); };
  for (auto& row : in)
    for (auto& x : row) x = draw();
  for (auto& x : w) x = draw();
  std::vector<std::vector<std::uint64_t>> out(cs.m, std::vector<std::uint64_t>(cs.n));
  for (auto& row : out)
    for (auto& x : row) x = rng() % q.value();
  auto expect = out;
  for (std::size_t r = 0; r < cs.m; ++r) {
    for (std::size_t c = 0; c < cs.n; ++c) {
      std::uint64_t s = accumulate ? expect[r][c] : 0;
      for (std::size_t j = 0; j < cs.k; ++j)
        s = add_mod(s, mul_mod(w[r * cs.k + j], in[j][c], q), q);
      expect[r][c] = s;
    }
  }
  std::vector<const std::uint64_t*> ip;
  for (auto& row : in) ip.push_back(row.data());
  std::vector<std::uint64_t*> op;
  for (auto& row : out) op.push_back(row.data());
  lincomb(ip, w, q, op, cs.n, accumulate, isa);
  for (std::size_t r = 0; r < cs.m; ++r) {
    ASSERT_EQ(out[r], expect[r]) << "q=" << q.value() << " isa=" << isa_name(isa) << " m=" << cs.m
                                 << " k=" << cs.k << " n=" << cs.n << " row " << r;
  }
}

std::vector<Isa> isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::kScalar, Isa::kAvx512, Isa::kAvx512Ifma}) {
    if (isa_supported(isa)) v.push_back(isa);
  }
  return v;
}

bool runs(Isa isa, const Modulus& q) {
  return isa != Isa::kAvx512Ifma ||
         (q.value() >= (std::uint64_t{1} << 20) && q.value() < (std::uint64_t{1} << 50));
}

TEST(Lincomb, MatchesReferenceEveryIsa) {
  std::mt19937_64 rng(11);
  const std::vector<Case> cases = {{1, 1, 16},    {6, 25, 32}, {7, 3, 40}, {13, 30, 64},
                                   {100, 17, 48}, {5, 0, 16},  {2, 9, 7}};
  for (int bits : {20, 30, 36, 40, 45, 49, 50, 55, 60}) {
    const Modulus q((std::uint64_t{1} << (bits - 1)) +
                    (rng() & ((std::uint64_t{1} << (bits - 1)) - 1)));
    for (Isa isa : isas()) {
      if (!runs(isa, q)) continue;
      for (const Case& cs : cases) {
        for (bool acc : {false, true}) {
          check(q, cs, isa, acc, false, rng);
          check(q, cs, isa, acc, true, rng);
        }
      }
    }
  }
}

TEST(Lincomb, LongSumsAcrossSegments) {
  std::mt19937_64 rng(12);
  for (int bits : {49, 60}) {
    const Modulus q((std::uint64_t{1} << bits) - 1 - 2 * (rng() & 0xffff));
    for (Isa isa : isas()) {
      if (!runs(isa, q)) continue;
      check(q, {3, 4100, 16}, isa, false, true, rng);
      check(q, {7, 8200, 16}, isa, true, false, rng);
    }
  }
}

TEST(Lincomb, RefusesBadArguments) {
  const Modulus q(1099511627689ull);  // 40 bits
  std::vector<std::uint64_t> a(16), b(16);
  std::vector<const std::uint64_t*> ip = {a.data()};
  std::vector<std::uint64_t*> op = {b.data()};
  std::vector<std::uint64_t> w(2);
  EXPECT_THROW(lincomb(ip, w, q, op, 16), Error);
  if (isa_supported(Isa::kAvx512Ifma)) {
    const Modulus big((std::uint64_t{1} << 55) - 55);
    std::vector<std::uint64_t> w1(1, 1);
    EXPECT_THROW(lincomb(ip, w1, big, op, 16, false, Isa::kAvx512Ifma), Error);
    EXPECT_EQ(lincomb_isa(big), Isa::kScalar);
    EXPECT_EQ(lincomb_isa(q), Isa::kAvx512Ifma);
  }
}

}  // namespace
}  // namespace blindfold::he
