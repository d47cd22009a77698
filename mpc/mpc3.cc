// mpc3: three-party replicated secret sharing over Z_2^64 (see mpc3.h).
//
// References:
//  [AFLNO16] Araki, Furukawa, Lindell, Nof, Ohara, "High-Throughput Semi-
//            Honest Secure Three-Party Computation with an Honest Majority",
//            CCS 2016: replicated sharing, correlated (zero) randomness from
//            pairwise PRF keys, one-message multiplication (Sec. 2-3).
//  [MR18]    Mohassel, Rindal, "ABY3: A Mixed Protocol Framework for Machine
//            Learning", CCS 2018: truncation Pi_trunc1 (Sec. 5.1.1), binary
//            sharing and the bit-decomposition / bit-injection conversions
//            (Sec. 5.3), reshare of matrix products (Sec. 5.2).
//  [MZ17]    Mohassel, Zhang, "SecureML", S&P 2017, Thm. 1: the error of local
//            truncation of a two-out-of-two sharing.
//  [KS73]    Kogge, Stone, "A Parallel Algorithm for the Efficient Solution of
//            a General Class of Recurrence Equations", IEEE ToC 1973: the
//            log-depth carry computation used for the MSB.
//
// Index conventions used throughout: party i holds shares (x_i, x_{i+1}) as
// (s0, s1) and seeds (k_i, k_{i+1}) as (k_self_, k_next_). Share x_j and
// seed k_j are therefore held by the same two parties, j and j-1. Every
// call c draws from Prg(k, c); the two holders of a seed draw the same
// number of words from it in the same order.
#include "mpc/mpc3.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "core/error.h"

namespace blindfold::mpc {

static_assert(std::endian::native == std::endian::little,
              "mpc3 sends ring elements in host order, which must be the wire's little-endian");

namespace {

constexpr const char* kTagSeed = "mpc3/seed";
constexpr const char* kTagInput = "mpc3/input";
constexpr const char* kTagWeights = "mpc3/weights";
constexpr const char* kTagReshare = "mpc3/reshare";
constexpr const char* kTagTrunc = "mpc3/trunc";
constexpr const char* kTagReveal = "mpc3/reveal";

std::span<const std::uint8_t> bytes_of(std::span<const u64> v) {
  return {reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * sizeof(u64)};
}
std::span<std::uint8_t> bytes_of(std::span<u64> v) {
  return {reinterpret_cast<std::uint8_t*>(v.data()), v.size() * sizeof(u64)};
}

std::string party_label(int p) { return "party " + std::to_string(p) + " (" + party_name(p) + ")"; }

[[noreturn]] void internal(const std::string& what) {
  throw Error(ErrorCategory::kInternal, "mpc3 " + what);
}

// Adds (arithmetic) or xors (boolean) this party's share of a fresh zero
// sharing into z: alpha_i = F(k_i) - F(k_{i+1}) [AFLNO16, Sec. 2.2], or
// beta_i = F(k_i) ^ F(k_{i+1}). The three parties' values sum (xor) to zero.
// Drawn in small chunks that stay in L1 (no allocation).
template <bool kBoolean>
void add_zero_share(Prg& self, Prg& next, std::span<u64> z) {
  constexpr std::size_t kChunk = 512;
  u64 a[kChunk], b[kChunk];
  for (std::size_t off = 0; off < z.size(); off += kChunk) {
    const std::size_t m = std::min(kChunk, z.size() - off);
    self.fill({reinterpret_cast<std::uint8_t*>(a), m * sizeof(u64)});
    next.fill({reinterpret_cast<std::uint8_t*>(b), m * sizeof(u64)});
    u64* out = z.data() + off;
    if constexpr (kBoolean) {
      for (std::size_t j = 0; j < m; ++j) out[j] ^= a[j] ^ b[j];
    } else {
      for (std::size_t j = 0; j < m; ++j) out[j] += a[j] - b[j];
    }
  }
  OPENSSL_cleanse(a, sizeof a);
  OPENSSL_cleanse(b, sizeof b);
}

void fill_words(Prg& prg, std::span<u64> out) { prg.fill(bytes_of(out)); }

// Exchanges the bits of x at positions p (m set) and p + d.
constexpr u64 delta_swap(u64 x, u64 m, unsigned d) {
  const u64 t = ((x >> d) ^ x) & m;
  return x ^ t ^ (t << d);
}
// The bit-index-reversal permutation: bit p moves to position rev6(p), by
// swapping index bits (0,5), (1,4), (2,3). Afterwards the binary tree over
// bit positions pairs the upper and the lower half of every block: level L
// combines hi = x >> w with lo = x & (2^w - 1), w = 64 >> L.
constexpr u64 index_reverse(u64 x) {
  x = delta_swap(x, 0x00000000AAAAAAAAULL, 31);
  x = delta_swap(x, 0x0000CCCC0000CCCCULL, 14);
  x = delta_swap(x, 0x00F000F000F000F0ULL, 4);
  return x;
}
static_assert(index_reverse(u64{1} << 1) == u64{1} << 32);
static_assert(index_reverse(u64{1} << 3) == u64{1} << 48);
static_assert(index_reverse(u64{1} << 6) == u64{1} << 24);
static_assert(index_reverse(u64{1} << 63) == u64{1} << 63);
static_assert(index_reverse(index_reverse(0x0123456789ABCDEFULL)) == 0x0123456789ABCDEFULL);

// A share-component mask: all ones when `on`, else zero.
constexpr u64 mask_if(bool on) { return on ? ~u64{0} : u64{0}; }

}  // namespace

// ---- set-up -------------------------------------------------------------

Mpc3Party::Mpc3Party(int party, net::Channel& next, net::Channel& prev, Mpc3Options options)
    : party_(party), next_(next), prev_(prev), options_(options) {
  if (party < 0 || party > 2) internal("party must be 0, 1 or 2, got " + std::to_string(party));
  if (options.frac_bits < 0 || options.frac_bits > 62) {
    internal("frac_bits must be in [0, 62], got " + std::to_string(options.frac_bits));
  }
  try {
    // Party i samples k_i and gives it to party i-1, which then holds
    // (k_{i-1}, k_i); we receive k_{i+1} from party i+1.
    k_self_ = random_seed();
    prev_.send(kTagSeed, std::span<const std::uint8_t>(k_self_.data(), k_self_.size()));
    net::Bytes got = next_.recv(kTagSeed);
    if (got.size() != k_next_.size()) {
      const std::size_t size = got.size();
      OPENSSL_cleanse(got.data(), got.size());
      throw Error(ErrorCategory::kBadMessage,
                  "mpc3 setup: expected a " + std::to_string(k_next_.size()) + "-byte seed from " +
                      party_label((party_ + 1) % 3) + ", got " + std::to_string(size) + " bytes");
    }
    std::memcpy(k_next_.data(), got.data(), k_next_.size());
    OPENSSL_cleanse(got.data(), got.size());
  } catch (...) {
    OPENSSL_cleanse(k_self_.data(), k_self_.size());
    OPENSSL_cleanse(k_next_.data(), k_next_.size());
    throw;
  }
}

Mpc3Party::~Mpc3Party() {
  OPENSSL_cleanse(k_self_.data(), k_self_.size());
  OPENSSL_cleanse(k_next_.data(), k_next_.size());
}

// ---- helpers -------------------------------------------------------------

std::span<u64> Mpc3Party::scratch(std::size_t words) {
  if (scratch_.size() < words) scratch_.resize(words);
  return {scratch_.data(), words};
}

void Mpc3Party::check(const Shared& x, const char* op) const {
  if (x.s0.size() != x.n || x.s1.size() != x.n) {
    internal(std::string(op) + ": a replicated sharing of " + std::to_string(x.n) +
             " values needs two share vectors of that size, got " + std::to_string(x.s0.size()) +
             " and " + std::to_string(x.s1.size()));
  }
}

void Mpc3Party::send_words(net::Channel& to, const char* tag, std::span<const u64> words) {
  to.send(tag, bytes_of(words));
}

void Mpc3Party::recv_words(net::Channel& from, int from_party, const char* tag, const char* op,
                           std::span<u64> out) {
  net::Bytes got = from.recv(tag);
  if (got.size() != out.size() * sizeof(u64)) {
    throw Error(ErrorCategory::kBadMessage,
                std::string("mpc3 ") + op + ": expected " + std::to_string(out.size() * sizeof(u64)) +
                    " bytes (" + std::to_string(out.size()) + " ring elements) in '" + tag +
                    "' from " + party_label(from_party) + ", got " + std::to_string(got.size()));
  }
  if (!got.empty()) std::memcpy(out.data(), got.data(), got.size());
}

void Mpc3Party::exchange(const char* op, std::span<const u64> mine, std::span<u64> theirs) {
  // Send first: sends never wait for the peer, so the ring cannot deadlock.
  send_words(prev_, kTagReshare, mine);
  recv_words(next_, (party_ + 1) % 3, kTagReshare, op, theirs);
}

// The owner o of n values shares them: x_o and x_{o+1} come from the seeds
// k_o (parties o-1 and o) and k_{o+1} (parties o and o+1); the third share
// x_{o+2} = x - x_o - x_{o+1} is sent by the owner to the two parties that
// hold it, o+1 and o+2. Party i's place relative to the owner decides its part.
Shared Mpc3Party::share_owned(int owner, std::span<const u64> x, std::size_t n, const char* tag,
                              const char* op) {
  if (party_ == owner ? x.size() != n : !x.empty()) {
    internal(std::string(op) + ": the " + party_name(owner) + " passes the " + std::to_string(n) +
             " values and the others none; party " + std::to_string(party_) + " passed " +
             std::to_string(x.size()));
  }
  const std::uint64_t c = calls_++;
  Prg self(k_self_, c), next(k_next_, c);
  Shared out;
  out.n = n;
  out.s0.resize(n);
  out.s1.resize(n);
  switch ((party_ - owner + 3) % 3) {
    case 0: {  // the owner: holds (x_o, x_{o+1}) from k_self = k_o, k_next = k_{o+1}
      fill_words(self, out.s0);
      fill_words(next, out.s1);
      std::span<u64> third = scratch(n);
      for (std::size_t j = 0; j < n; ++j) third[j] = x[j] - out.s0[j] - out.s1[j];
      send_words(next_, tag, third);
      send_words(prev_, tag, third);
      break;
    }
    case 1:  // holds (x_{o+1}, x_{o+2}); k_self = k_{o+1}; the owner is prev
      fill_words(self, out.s0);
      recv_words(prev_, owner, tag, op, out.s1);
      break;
    case 2:  // holds (x_{o+2}, x_o); k_next = k_o; the owner is next
      recv_words(next_, owner, tag, op, out.s0);
      fill_words(next, out.s1);
      break;
  }
  return out;
}

// ---- model set-up ----------------------------------------------------------

int Mpc3Party::register_weights(std::span<const u64> w, std::size_t n) {
  weights_.push_back(share_owned(static_cast<int>(Party::kServer), w, n, kTagWeights, "register_weights"));
  return static_cast<int>(weights_.size() - 1);
}

// ---- one query -------------------------------------------------------------

Shared Mpc3Party::input(std::span<const u64> x, std::size_t n) {
  return share_owned(static_cast<int>(Party::kClient), x, n, kTagInput, "input");
}

void Mpc3Party::add_public(Shared& x, std::span<const u64> c) {
  check(x, "add_public");
  if (c.size() != x.n) {
    internal("add_public: " + std::to_string(c.size()) + " constants for " + std::to_string(x.n) +
             " values");
  }
  // c joins share x_0, held by party 0 (as s0) and party 2 (as s1).
  std::vector<u64>* target = party_ == 0 ? &x.s0 : party_ == 2 ? &x.s1 : nullptr;
  if (target) {
    u64* t = target->data();
    for (std::size_t j = 0; j < x.n; ++j) t[j] += c[j];
  }
}

Shared Mpc3Party::add_weights(int w, const Shared& x, std::span<const std::uint32_t> idx) {
  check(x, "add_weights");
  if (w < 0 || static_cast<std::size_t>(w) >= weights_.size()) {
    internal("add_weights: no weights with handle " + std::to_string(w));
  }
  if (idx.size() != x.n) {
    internal("add_weights: " + std::to_string(idx.size()) + " indices for " + std::to_string(x.n) +
             " values");
  }
  const Shared& wt = weights_[static_cast<std::size_t>(w)];
  Shared out;
  out.n = x.n;
  out.s0.resize(x.n);
  out.s1.resize(x.n);
  for (std::size_t j = 0; j < x.n; ++j) {
    const std::uint32_t k = idx[j];
    if (k >= wt.n) internal("add_weights: index " + std::to_string(k) + " out of range");
    out.s0[j] = x.s0[j] + wt.s0[k];
    out.s1[j] = x.s1[j] + wt.s1[k];
  }
  return out;
}

// Replicated multiplication [AFLNO16, Sec. 2.2]: z_i = x_i y_i + x_i y_{i+1}
// + x_{i+1} y_i + alpha_i, written as x_i (y_i + y_{i+1}) + x_{i+1} y_i;
// z_i goes to party i-1, z_{i+1} comes from party i+1.
Shared Mpc3Party::mul(const Shared& x, const Shared& y) {
  check(x, "mul");
  check(y, "mul");
  if (x.n != y.n) {
    internal("mul: operands of " + std::to_string(x.n) + " and " + std::to_string(y.n) + " values");
  }
  const std::uint64_t c = calls_++;
  Prg self(k_self_, c), next(k_next_, c);
  const std::size_t n = x.n;
  Shared out;
  out.n = n;
  out.s0.resize(n);
  out.s1.resize(n);
  const u64 *x0 = x.s0.data(), *x1 = x.s1.data(), *y0 = y.s0.data(), *y1 = y.s1.data();
  u64* z = out.s0.data();
  for (std::size_t j = 0; j < n; ++j) z[j] = x0[j] * (y0[j] + y1[j]) + x1[j] * y0[j];
  add_zero_share<false>(self, next, out.s0);
  exchange("mul", out.s0, out.s1);
  return out;
}

Shared Mpc3Party::mul_weights(int w, const Shared& x, std::span<const std::uint32_t> idx) {
  check(x, "mul_weights");
  if (w < 0 || static_cast<std::size_t>(w) >= weights_.size()) {
    internal("mul_weights: no weights with handle " + std::to_string(w));
  }
  if (idx.size() != x.n) {
    internal("mul_weights: " + std::to_string(idx.size()) + " indices for " + std::to_string(x.n) +
             " values");
  }
  const Shared& wt = weights_[static_cast<std::size_t>(w)];
  for (std::uint32_t k : idx) {
    if (k >= wt.n) internal("mul_weights: index " + std::to_string(k) + " out of range");
  }
  const std::uint64_t c = calls_++;
  Prg self(k_self_, c), next(k_next_, c);
  const std::size_t n = x.n;
  Shared out;
  out.n = n;
  out.s0.resize(n);
  out.s1.resize(n);
  const u64 *w0 = wt.s0.data(), *w1 = wt.s1.data(), *x0 = x.s0.data(), *x1 = x.s1.data();
  u64* z = out.s0.data();
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint32_t k = idx[j];
    z[j] = w0[k] * (x0[j] + x1[j]) + w1[k] * x0[j];
  }
  add_zero_share<false>(self, next, out.s0);
  exchange("mul_weights", out.s0, out.s1);
  return out;
}

// Matrix product with one reshare of the m x n result [MR18, Sec. 5.2]:
// Z_i = W_i (X_i + X_{i+1}) + W_{i+1} X_i + alpha_i (two local matmuls).
Shared Mpc3Party::matmul(int w, const Shared& x, std::size_t m, std::size_t k, std::size_t n) {
  check(x, "matmul");
  if (w < 0 || static_cast<std::size_t>(w) >= weights_.size()) {
    internal("matmul: no weights with handle " + std::to_string(w));
  }
  const Shared& wt = weights_[static_cast<std::size_t>(w)];
  if (wt.n != m * k || x.n != k * n) {
    internal("matmul: W has " + std::to_string(wt.n) + " values and X " + std::to_string(x.n) +
             " for " + std::to_string(m) + "x" + std::to_string(k) + " times " + std::to_string(k) +
             "x" + std::to_string(n));
  }
  const std::uint64_t c = calls_++;
  Prg self(k_self_, c), next(k_next_, c);
  Shared out;
  out.n = m * n;
  out.s0.resize(out.n);
  out.s1.resize(out.n);
  std::span<u64> xs = scratch(x.n);
  for (std::size_t j = 0; j < x.n; ++j) xs[j] = x.s0[j] + x.s1[j];
  ring_matmul(wt.s0, xs, out.s0, m, k, n);
  ring_matmul(wt.s1, x.s0, out.s0, m, k, n, /*accumulate=*/true);
  add_zero_share<false>(self, next, out.s0);
  exchange("matmul", out.s0, out.s1);
  return out;
}

// ABY3's Pi_trunc1 [MR18, Sec. 5.1.1] on the two-out-of-two sharing
// (a, b) = (x_0, x_1 + x_2): a is known to parties 0 and 2, b to party 1.
// a' = a >> f (arithmetic), b' = -((-b) >> f) [MZ17, Thm. 1]; the new
// sharing is y_0 = a', y_2 = r (from k_2, parties 1 and 2), y_1 = b' - r,
// computed by party 1 and sent to party 0 (the other holder of y_1).
void Mpc3Party::trunc(Shared& x, int bits) {
  check(x, "trunc");
  if (bits < 0 || bits > 63) internal("trunc: cannot shift by " + std::to_string(bits) + " bits");
  const std::uint64_t c = calls_++;
  if (bits == 0) return;
  const std::size_t n = x.n;
  switch (party_) {
    case 0: {  // (x_0, x_1) -> (a', y_1)
      u64* s0 = x.s0.data();
      for (std::size_t j = 0; j < n; ++j) s0[j] = static_cast<u64>(static_cast<std::int64_t>(s0[j]) >> bits);
      recv_words(next_, 1, kTagTrunc, "trunc", x.s1);
      break;
    }
    case 1: {  // (x_1, x_2) -> (y_1, r); r from k_2 = k_next
      u64 *s0 = x.s0.data(), *s1 = x.s1.data();
      for (std::size_t j = 0; j < n; ++j) {
        const u64 b = s0[j] + s1[j];
        s0[j] = -static_cast<u64>(static_cast<std::int64_t>(-b) >> bits);  // b'
      }
      Prg next(k_next_, c);
      fill_words(next, x.s1);  // r replaces x_2, already folded into b
      for (std::size_t j = 0; j < n; ++j) s0[j] -= s1[j];  // y_1 = b' - r
      send_words(prev_, kTagTrunc, x.s0);
      break;
    }
    case 2: {  // (x_2, x_0) -> (r, a'); r from k_2 = k_self
      Prg self(k_self_, c);
      fill_words(self, x.s0);
      u64* s1 = x.s1.data();
      for (std::size_t j = 0; j < n; ++j) s1[j] = static_cast<u64>(static_cast<std::int64_t>(s1[j]) >> bits);
      break;
    }
  }
}

// ReLU / DReLU [MR18, Sec. 5.3]: the MSB of x = x_0 + x_1 + x_2 by a binary
// adder over boolean sharings, bit-sliced (one u64 word holds the 64 bits of
// one element, so a word-wide AND is 64 binary gates).
//  - The summands' boolean sharings are local: x_j as (x_j in slot j, zero
//    elsewhere); for party i, slot i is its component 0 and slot i+1 its
//    component 1.
//  - Round 1: a 3-to-2 carry-save adder: s = x_0^x_1^x_2 (local), maj =
//    ((x_0^x_2) & (x_1^x_2)) ^ x_2 (one AND), q = maj << 1; x = s + q.
//  - Round 2: G = s & q, P = s ^ q.
//  - Rounds 3-8: a binary carry tree over bits 0..62 (bit 63 made a
//    neutral position), 6 levels, each one round; MSB = P_63 ^ carry.
//  - DReLU d = 1 ^ MSB, a boolean sharing d_0 ^ d_1 ^ d_2 of one bit.
//  - Rounds 9-10: bit injection: [d_j] = (d_j in slot j) are arithmetic
//    sharings; t = d_0 ^ d_1 = d_0 + d_1 - 2 d_0 d_1 and d_2 x (round 9),
//    DReLU = t + d_2 - 2 t d_2 and ReLU = t x + d_2 x - 2 t (d_2 x)
//    (round 10).
// Binary AND of replicated boolean sharings [AFLNO16, Sec. 2.1]:
// z_i = a_i b_i ^ a_i b_{i+1} ^ a_{i+1} b_i ^ beta_i, z_i sent to party i-1.
// Every round is one message per direction, whatever the size.
void Mpc3Party::relu(const Shared& x, Shared* drelu, Shared* relu, int bits) {
  check_relu_bits(bits);
  check(x, "relu");
  if (!drelu && !relu) return;
  const std::uint64_t c = calls_++;
  Prg self(k_self_, c), next(k_next_, c);
  const std::size_t n = x.n;
  std::span<u64> buf = scratch(13 * n);  // 7n state, 3n sent, 3n received
  u64* const g0 = buf.data();
  u64* const g1 = g0 + n;
  u64* const p0 = g1 + n;
  u64* const p1 = p0 + n;
  u64* const top = p1 + n;  // bit 0: P_63 of component 0; bit 1: of component 1
  u64* const e0 = top + n;  // d_2 x
  u64* const e1 = e0 + n;
  u64* const snd = e1 + n;  // 3n
  u64* const rcv = snd + 3 * n;  // 3n
  const u64* const s0 = x.s0.data();
  const u64* const s1 = x.s1.data();
  const int i = party_;

  // Which of this party's components carry a share of x_0^x_2 (A), x_1^x_2
  // (B) and x_2: slot j sits in component 0 when j == i, 1 when j == i+1.
  const u64 am0 = mask_if(i == 0 || i == 2), am1 = mask_if(i == 2 || i == 1);
  const u64 bm0 = mask_if(i == 1 || i == 2), bm1 = mask_if(i == 0 || i == 1);
  const u64 xm0 = mask_if(i == 2), xm1 = mask_if(i == 1);

  // Round 1: the AND of the carry-save adder.
  for (std::size_t j = 0; j < n; ++j) {
    const u64 a0 = s0[j] & am0, a1 = s1[j] & am1, b0 = s0[j] & bm0, b1 = s1[j] & bm1;
    snd[j] = (a0 & b0) ^ (a0 & b1) ^ (a1 & b0);
  }
  add_zero_share<true>(self, next, {snd, n});
  exchange("relu", {snd, n}, {rcv, n});

  // Round 2: q = maj << 1; G = s & q (sent from g0, received into g1),
  // P = s ^ q. P_63 is kept for the MSB; then bit 63 becomes a neutral
  // "propagate, no generate" position (G_63 = 0 in every component, P_63 =
  // 1 xored into slot 0), so that the tree's group over bits 0..63 yields the
  // carry into bit 63.
  constexpr u64 kBit63 = u64{1} << 63;
  const u64 p63_0 = i == 0 ? kBit63 : 0, p63_1 = i == 2 ? kBit63 : 0;
  for (std::size_t j = 0; j < n; ++j) {
    const u64 q0 = (snd[j] ^ (s0[j] & xm0)) << 1;
    const u64 q1 = (rcv[j] ^ (s1[j] & xm1)) << 1;
    g0[j] = (s0[j] & q0) ^ (s0[j] & q1) ^ (s1[j] & q0);
    const u64 pp0 = s0[j] ^ q0, pp1 = s1[j] ^ q1;
    top[j] = (pp0 >> 63) | ((pp1 >> 63) << 1);
    p0[j] = (pp0 & ~kBit63) ^ p63_0;
    p1[j] = (pp1 & ~kBit63) ^ p63_1;
  }
  add_zero_share<true>(self, next, {g0, n});
  exchange("relu", {g0, n}, {g1, n});
  for (std::size_t j = 0; j < n; ++j) {
    g0[j] = index_reverse(g0[j] & ~kBit63);
    g1[j] = index_reverse(g1[j] & ~kBit63);
    p0[j] = index_reverse(p0[j]);
    p1[j] = index_reverse(p1[j]);
  }

  // Rounds 3-8: the carry tree. Level L (1..6) combines adjacent groups of
  // 2^(L-1) bits, hi and lo (the halves of the index-reversed words): G =
  // G_hi ^ (P_hi & G_lo), P = P_hi & P_lo (G and P of a group are never
  // both 1, so ^ is |). This is the part of the Kogge-Stone prefix network
  // [KS73] that reaches the one carry we need (the upward sweep of a
  // Brent-Kung adder): level L ANDs only w = 64 >> L bits per element, which
  // are sent packed, 64 / w elements to a word.
  for (int level = 1; level <= 6; ++level) {
    const unsigned w = 64u >> level;  // output bits per element
    const std::size_t per_word = std::size_t{1} << level;
    const std::size_t words = (n + per_word - 1) / per_word;
    const bool with_p = level < 6;
    const u64 wmask = (u64{1} << w) - 1;
    const std::size_t total = with_p ? 2 * words : words;
    for (std::size_t t = 0; t < words; ++t) {
      const std::size_t j0 = t * per_word, j1 = std::min(n, j0 + per_word);
      u64 zg = 0, zp = 0;
      for (std::size_t j = j0; j < j1; ++j) {
        const unsigned sh = static_cast<unsigned>(j - j0) * w;
        const u64 gh0 = g0[j] >> w, gl0 = g0[j] & wmask, gh1 = g1[j] >> w, gl1 = g1[j] & wmask;
        const u64 ph0 = p0[j] >> w, pl0 = p0[j] & wmask, ph1 = p1[j] >> w, pl1 = p1[j] & wmask;
        zg |= ((ph0 & gl0) ^ (ph0 & gl1) ^ (ph1 & gl0)) << sh;
        zp |= ((ph0 & pl0) ^ (ph0 & pl1) ^ (ph1 & pl0)) << sh;
        g0[j] = gh0;
        g1[j] = gh1;
      }
      snd[t] = zg;
      if (with_p) snd[words + t] = zp;
    }
    add_zero_share<true>(self, next, {snd, total});
    exchange("relu", {snd, total}, {rcv, total});
    for (std::size_t t = 0; t < words; ++t) {
      const std::size_t j0 = t * per_word, j1 = std::min(n, j0 + per_word);
      const u64 mg0 = snd[t], mg1 = rcv[t];
      const u64 mp0 = with_p ? snd[words + t] : 0, mp1 = with_p ? rcv[words + t] : 0;
      for (std::size_t j = j0; j < j1; ++j) {
        const unsigned sh = static_cast<unsigned>(j - j0) * w;
        g0[j] ^= (mg0 >> sh) & wmask;
        g1[j] ^= (mg1 >> sh) & wmask;
        p0[j] = (mp0 >> sh) & wmask;
        p1[j] = (mp1 >> sh) & wmask;
      }
    }
  }

  // g now holds the carry into bit 63 (bit 0); MSB = P_63 ^ carry. The
  // DReLU bit's boolean components (0/1), into p0/p1; the public 1 is
  // xored into slot 0 (party 0's component 0, party 2's component 1).
  const u64 one0 = i == 0 ? 1 : 0, one1 = i == 2 ? 1 : 0;
  for (std::size_t j = 0; j < n; ++j) {
    p0[j] = (top[j] & 1) ^ g0[j] ^ one0;
    p1[j] = ((top[j] >> 1) & 1) ^ g1[j] ^ one1;
  }

  // Round 9: [d_0][d_1] and [d_2][x]. Arithmetic sharings of the bits:
  // [d_j] has d_j in slot j, so party i's component 0 is d_i (of [d_i]) and
  // component 1 is d_{i+1} (of [d_{i+1}]).
  const u64 dm0_0 = mask_if(i == 0), dm0_1 = mask_if(i == 2);  // [d_0]
  const u64 dm1_0 = mask_if(i == 1), dm1_1 = mask_if(i == 0);  // [d_1]
  const u64 dm2_0 = mask_if(i == 2), dm2_1 = mask_if(i == 1);  // [d_2]
  for (std::size_t j = 0; j < n; ++j) {
    const u64 a0 = p0[j] & dm0_0, a1 = p1[j] & dm0_1;
    const u64 b0 = p0[j] & dm1_0, b1 = p1[j] & dm1_1;
    const u64 c0 = p0[j] & dm2_0, c1 = p1[j] & dm2_1;
    snd[j] = a0 * (b0 + b1) + a1 * b0;
    snd[n + j] = c0 * (s0[j] + s1[j]) + c1 * s0[j];
  }
  add_zero_share<false>(self, next, {snd, 2 * n});
  exchange("relu", {snd, 2 * n}, {rcv, 2 * n});
  for (std::size_t j = 0; j < n; ++j) {
    const u64 a0 = p0[j] & dm0_0, a1 = p1[j] & dm0_1;
    const u64 b0 = p0[j] & dm1_0, b1 = p1[j] & dm1_1;
    g0[j] = a0 + b0 - 2 * snd[j];  // t
    g1[j] = a1 + b1 - 2 * rcv[j];
    p0[j] &= dm2_0;  // [d_2]
    p1[j] &= dm2_1;
    e0[j] = snd[n + j];  // d_2 x
    e1[j] = rcv[n + j];
  }

  // Round 10: t d_2 (DReLU), t x and t (d_2 x) (ReLU), one message.
  std::size_t words = 0;
  if (drelu) {
    for (std::size_t j = 0; j < n; ++j) snd[j] = g0[j] * (p0[j] + p1[j]) + g1[j] * p0[j];
    words += n;
  }
  if (relu) {
    u64* const v = snd + words;
    u64* const w = v + n;
    for (std::size_t j = 0; j < n; ++j) {
      v[j] = g0[j] * (s0[j] + s1[j]) + g1[j] * s0[j];
      w[j] = g0[j] * (e0[j] + e1[j]) + g1[j] * e0[j];
    }
    words += 2 * n;
  }
  add_zero_share<false>(self, next, {snd, words});
  exchange("relu", {snd, words}, {rcv, words});
  std::size_t off = 0;
  if (drelu) {
    Shared out;
    out.n = n;
    out.s0.resize(n);
    out.s1.resize(n);
    for (std::size_t j = 0; j < n; ++j) {
      out.s0[j] = g0[j] + p0[j] - 2 * snd[j];
      out.s1[j] = g1[j] + p1[j] - 2 * rcv[j];
    }
    *drelu = std::move(out);
    off += n;
  }
  if (relu) {
    Shared out;
    out.n = n;
    out.s0.resize(n);
    out.s1.resize(n);
    const u64 *v0 = snd + off, *v1 = rcv + off, *w0 = snd + off + n, *w1 = rcv + off + n;
    for (std::size_t j = 0; j < n; ++j) {
      out.s0[j] = v0[j] + e0[j] - 2 * w0[j];
      out.s1[j] = v1[j] + e1[j] - 2 * w1[j];
    }
    *relu = std::move(out);
  }
}

std::vector<u64> Mpc3Party::reveal_to_client(const Shared& x) {
  check(x, "reveal_to_client");
  ++calls_;
  switch (party_) {
    case 0:  // x_0 to the client, which holds x_1 and x_2
      send_words(next_, kTagReveal, x.s0);
      return {};
    case 1: {
      std::vector<u64> out(x.n);
      recv_words(prev_, 0, kTagReveal, "reveal_to_client", out);
      for (std::size_t j = 0; j < x.n; ++j) out[j] += x.s0[j] + x.s1[j];
      return out;
    }
    default:
      return {};
  }
}

}  // namespace blindfold::mpc
