// libFuzzer target: the FSS dealer's bytes as a party parses them (mpc/fss.h):
// fss::DcfCorrections::parse, and fss::ReluGateKey::load / load_borrowed.
//
// Input: byte 0 selects what runs (bit 0: 0 DcfCorrections::parse, 1 a ReLU
// gate key; bit 1: party; bit 2: load_borrowed instead of load; bit 3: "fit"
// mode, below); byte 1 the width (DCF domain 1..64 bits, gate width 2..64);
// byte 2 the count (0..40). The rest is the dealer's bytes:
//  - DCF: all of it.
//  - ReLU key: a u16 (little-endian) length of to_both, to_both, and the
//    rest as to_party1 (party 1's shares; must be empty for party 0).
//  - fit mode: the count is instead the largest (at most 40) for which the
//    rest holds enough bytes, cut to exactly the size the count needs (for
//    a gate key of party 1, to_both then its 16 bytes per gate), so that the
//    size checks pass and the content checks and the evaluation run.
// Every call must either succeed or throw Error(kBadMessage). On success:
//  - DCF: the corrections serialize to the input bytes again (the format is
//    canonical), DcfCorrectionsView::of accepts them, and dcf_eval runs for
//    both parties on a few x.
//  - ReLU key: eval on `count` xhat values (0, +-1, around 2^(bits-1) and
//    pseudorandom ones); a key from load and one from load_borrowed on the
//    same PRG stream must give the same shares bit for bit.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "mpc/fss.h"

namespace {

using namespace blindfold;
using namespace blindfold::mpc;
using namespace blindfold::mpc::fss;

constexpr std::size_t kMaxCount = 40;  // keeps each execution short

// Errors the parsers may throw on a peer's bytes: kBadMessage only.
template <class F>
bool accepted(F&& f) {
  try {
    f();
    return true;
  } catch (const Error& e) {
    if (e.category() != ErrorCategory::kBadMessage) std::abort();
    return false;
  }
}

u64 splitmix(u64& s) {
  u64 z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Inputs to evaluate on: edge values of an n-bit signed range, then
// pseudorandom ones (seeded from the input, so a reproducer reproduces).
std::vector<u64> test_points(std::size_t count, int bits, u64 seed) {
  const u64 half = bits >= 64 ? u64{1} << 63 : u64{1} << (bits - 1);
  const u64 edges[] = {0,           1, ~u64{0}, half, half - 1, u64{0} - half, u64{0} - half - 1,
                       u64{1} << 63};
  std::vector<u64> x(count);
  for (std::size_t i = 0; i < count; ++i) x[i] = i < std::size(edges) ? edges[i] : splitmix(seed);
  return x;
}

Seed prg_seed() {
  Seed s{};
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(0x5a ^ i);
  return s;
}

void fuzz_dcf(int party, int bits, std::size_t count, std::span<const std::uint8_t> bytes,
              u64 seed) {
  DcfCorrections cw;
  if (!accepted([&] { cw = DcfCorrections::parse(bits, count, bytes); })) {
    // The view must refuse the same bytes.
    if (accepted([&] { (void)DcfCorrectionsView::of(bits, count, bytes); })) std::abort();
    return;
  }
  if (cw.bits != bits || cw.count != count) std::abort();
  std::vector<std::uint8_t> again;
  cw.serialize(again);
  if (!std::equal(bytes.begin(), bytes.end(), again.begin(), again.end())) std::abort();
  if (!accepted([&] { (void)DcfCorrectionsView::of(bits, count, bytes); })) std::abort();

  const u64 mask = bits == 64 ? ~u64{0} : (u64{1} << bits) - 1;
  std::vector<u64> x = test_points(count, bits, seed);
  for (u64& v : x) v &= mask;
  std::vector<Block> root(count), out(count);
  for (Block& b : root) b = {splitmix(seed), splitmix(seed)};
  dcf_eval(party, cw, root, x, out);
  dcf_eval(1 - party, cw, root, x, out);
}

void fuzz_relu(int party, int bits, std::size_t count, bool borrowed,
               std::span<const std::uint8_t> to_both, std::span<const std::uint8_t> to_party1,
               u64 seed) {
  Prg prg(prg_seed(), 7);
  ReluGateKey key;
  if (!accepted([&] {
        key = borrowed ? ReluGateKey::load_borrowed(party, count, bits, prg, to_both, to_party1)
                       : ReluGateKey::load(party, count, bits, prg, to_both, to_party1);
      })) {
    return;
  }
  if (key.party() != party || key.count() != count || key.bits() != bits ||
      key.r_share().size() != count) {
    std::abort();
  }
  // The other loader on the same PRG stream: the same key.
  Prg prg2(prg_seed(), 7);
  ReluGateKey other;
  if (!accepted([&] {
        other = borrowed ? ReluGateKey::load(party, count, bits, prg2, to_both, to_party1)
                         : ReluGateKey::load_borrowed(party, count, bits, prg2, to_both, to_party1);
      })) {
    std::abort();
  }

  const std::vector<u64> xhat = test_points(count, bits, seed);
  std::vector<u64> d0(count), r0(count), d1(count), r1(count);
  key.eval(xhat, d0, r0);
  other.eval(xhat, d1, r1);
  if (d0 != d1 || r0 != r1) std::abort();
  // One output at a time writes the same values.
  std::fill(d1.begin(), d1.end(), 0);
  key.eval(xhat, d1, {});
  if (d0 != d1) std::abort();
  std::fill(r1.begin(), r1.end(), 0);
  key.eval(xhat, {}, r1);
  if (r0 != r1) std::abort();
}

// The largest count <= kMaxCount whose bytes fit in `avail` (0 if none).
std::size_t fit_count(int dcf_bits, std::size_t per_gate_extra, std::size_t avail) {
  std::size_t best = 0;
  for (std::size_t g = 1; g <= kMaxCount; ++g) {
    if (DcfCorrections::serialized_size(dcf_bits, g) + per_gate_extra * g > avail) break;
    best = g;
  }
  return best;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t mode = data[0];
  const bool relu = mode & 1;
  const int party = (mode >> 1) & 1;
  const bool borrowed = (mode >> 2) & 1;
  const bool fit = (mode >> 3) & 1;
  const int bits = relu ? 2 + data[1] % 63 : 1 + data[1] % 64;
  std::size_t count = data[2] % (kMaxCount + 1);
  std::span<const std::uint8_t> rest(data + 3, size - 3);
  u64 seed = 0;
  for (std::size_t i = 0; i < std::min<std::size_t>(size, 8); ++i) seed = seed << 8 | data[i];

  if (!relu) {
    if (fit) {
      count = fit_count(bits, 0, rest.size());
      rest = rest.first(DcfCorrections::serialized_size(bits, count));
    }
    fuzz_dcf(party, bits, count, rest, seed);
    return 0;
  }
  std::span<const std::uint8_t> to_both, to_party1;
  if (fit) {
    const std::size_t extra = party == 1 ? 16 : 0;
    count = fit_count(bits - 1, extra, rest.size());
    to_both = rest.first(DcfCorrections::serialized_size(bits - 1, count));
    to_party1 = rest.subspan(to_both.size(), extra * count);
  } else {
    if (rest.size() < 2) return 0;
    const std::size_t n =
        std::min<std::size_t>(rest[0] | std::size_t{rest[1]} << 8, rest.size() - 2);
    to_both = rest.subspan(2, n);
    to_party1 = rest.subspan(2 + n);
  }
  fuzz_relu(party, bits, count, borrowed, to_both, to_party1, seed);
  return 0;
}
