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
constexpr const char* kTagRelu = "mpc3/relu";

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

// ---- bit planes (relu) ------------------------------------------------------
// The binary part of relu is bit-sliced: plane p of a vector of n elements is
// ceil(n/64) words, word t holding bit p of elements 64t..64t+63 (element
// 64t+l at bit l; bits past n are zero). A word-wide AND is then 64 binary
// gates of 64 different elements, and a plane is sent as it is.

// The mask that selects the low j bits of every 2j-bit chunk (j a power of 2).
constexpr u64 swap_mask(unsigned j) {
  switch (j) {
    case 1: return 0x5555555555555555ULL;
    case 2: return 0x3333333333333333ULL;
    case 4: return 0x0F0F0F0F0F0F0F0FULL;
    case 8: return 0x00FF00FF00FF00FFULL;
    case 16: return 0x0000FFFF0000FFFFULL;
    default: return 0x00000000FFFFFFFFULL;
  }
}

// Transposes the W x W bit matrix held in every W-bit lane of a[0..W)
// (row r = a[r], column c = bit c of the lane), all 64/W lanes at once: the
// recursive block swap (Hacker's Delight, Sec. 7-3), log2(W) stages, each
// exchanging the top-right and bottom-left j x j blocks of every 2j x 2j
// block.
template <unsigned W>
inline void transpose_lanes(u64* a) {
  for (unsigned j = W / 2; j > 0; j >>= 1) {
    const u64 m = swap_mask(j);
    for (unsigned base = 0; base < W; base += 2 * j) {
      for (unsigned r = base; r < base + j; ++r) {
        const u64 t = ((a[r] >> j) ^ a[r + j]) & m;
        a[r + j] ^= t;
        a[r] ^= t << j;
      }
    }
  }
}

// planes[p * T + t] = plane p (p < k) of v[0..n), T = ceil(n / 64), k <= W.
// A block of 64 elements is packed W bits per element, 64/W elements to a
// word (element h*W + r in lane h of row r), and the lanes transposed: row p
// lane h bit r is then bit p of element h*W + r, i.e. row p is plane p.
template <unsigned W>
void to_planes_w(const u64* v, std::size_t n, int k, std::size_t T, u64* planes) {
  constexpr unsigned kLanes = 64 / W;
  constexpr u64 kLane = W == 64 ? ~u64{0} : (u64{1} << (W % 64)) - 1;
  u64 tail[64];
  for (std::size_t t = 0; t < T; ++t) {
    const u64* src = v + 64 * t;
    if (64 * t + 64 > n) {  // the last, partial block: zero-padded
      const std::size_t have = n - 64 * t;
      std::memcpy(tail, src, have * sizeof(u64));
      std::memset(tail + have, 0, (64 - have) * sizeof(u64));
      src = tail;
    }
    u64 a[W];
    for (unsigned r = 0; r < W; ++r) a[r] = src[r] & kLane;
    for (unsigned h = 1; h < kLanes; ++h) {
      for (unsigned r = 0; r < W; ++r) a[r] |= (src[h * W + r] & kLane) << ((h * W) % 64);
    }
    transpose_lanes<W>(a);
    for (int p = 0; p < k; ++p) planes[static_cast<std::size_t>(p) * T + t] = a[p];
  }
}

void to_planes(const u64* v, std::size_t n, int k, std::size_t T, u64* planes) {
  if (k <= 8) to_planes_w<8>(v, n, k, T, planes);
  else if (k <= 16) to_planes_w<16>(v, n, k, T, planes);
  else if (k <= 32) to_planes_w<32>(v, n, k, T, planes);
  else to_planes_w<64>(v, n, k, T, planes);
}

// out[l] = all ones if bit l of word w is set, else zero (l < 64).
inline void expand_bits(u64 w, u64* out) {
  for (unsigned l = 0; l < 64; ++l) out[l] = u64{0} - ((w >> l) & 1);
}

// The adder of relu for a `bits`-wide comparison: x = a + b (mod 2^bits),
// carry positions 0..bits-2 in groups of two (2j, 2j+1) (the last one single
// when bits-1 is odd), whose generate/propagate come out of the first round.
struct AdderShape {
  int k;       // comparison width
  int pairs;   // full groups (2j, 2j+1)
  int groups;  // ceil((k-1)/2)
  int nv;      // a-planes the single holder sends: a_0..a_{k-1}, then a_{2j+1} a_{2j}
  int nout;    // first-round outputs: G_0..G_{m-1}, then P_1..P_{m-1}
  explicit AdderShape(int bits)
      : k(bits), pairs((bits - 1) / 2), groups(bits / 2), nv(bits + (bits - 1) / 2), nout(2 * (bits / 2) - 1) {}
  /// Plane index (in the first-round outputs) of group j's G and (j >= 1) P.
  std::size_t g(int j) const { return static_cast<std::size_t>(j); }
  std::size_t p(int j) const { return static_cast<std::size_t>(groups + j - 1); }
};

// The first round's outputs as sums of (function of b) & (a-plane): for the
// pair (lo, hi) = (2j, 2j+1), with G_i = a_i b_i, P_i = a_i ^ b_i and
// h = a_hi a_lo,
//   G = G_hi ^ P_hi G_lo = a_hi b_hi ^ h b_lo ^ a_lo (b_hi b_lo),
//   P = P_hi P_lo        = h ^ a_hi b_lo ^ a_lo b_hi ^ b_hi b_lo,
// and for a single position G = a b, P = a ^ b. H holds the a-planes (or the
// masks standing for them): H[p] for a_p, H[k + j] for pair j's h. The terms
// of b alone are added when `pure` is all ones. out: s.nout planes.
void adder_groups(const AdderShape& s, const u64* H, const u64* B, std::size_t T, u64 pure, u64* out) {
  for (int j = 0; j < s.groups; ++j) {
    const std::size_t lo = 2 * static_cast<std::size_t>(j);
    u64* const G = out + s.g(j) * T;
    u64* const P = j > 0 ? out + s.p(j) * T : nullptr;
    const u64* const hl = H + lo * T;
    const u64* const bl = B + lo * T;
    if (j < s.pairs) {
      const u64* const hh = hl + T;
      const u64* const bh = bl + T;
      const u64* const hp = H + static_cast<std::size_t>(s.k + j) * T;
      for (std::size_t t = 0; t < T; ++t) G[t] = (hh[t] & bh[t]) ^ (hp[t] & bl[t]) ^ (hl[t] & bh[t] & bl[t]);
      if (P) {
        for (std::size_t t = 0; t < T; ++t) {
          P[t] = hp[t] ^ (hh[t] & bl[t]) ^ (hl[t] & bh[t]) ^ (bh[t] & bl[t] & pure);
        }
      }
    } else {
      for (std::size_t t = 0; t < T; ++t) G[t] = hl[t] & bl[t];
      if (P) {
        for (std::size_t t = 0; t < T; ++t) P[t] = hl[t] ^ (bl[t] & pure);
      }
    }
  }
}

// Binary AND of replicated sharings [AFLNO16, Sec. 2.1], party i's part:
// z_i = a_i b_i ^ a_i b_{i+1} ^ a_{i+1} b_i, for T words.
inline void and_local(const u64* a0, const u64* a1, const u64* b0, const u64* b1, u64* z, std::size_t T) {
  for (std::size_t t = 0; t < T; ++t) z[t] = (a0[t] & b0[t]) ^ (a0[t] & b1[t]) ^ (a1[t] & b0[t]);
}

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

// ReLU / DReLU: the sign bit of x mod 2^bits by a binary adder over boolean
// sharings [MR18, Sec. 5.3], bit-sliced (see to_planes), then lifted to
// Z_2^64 together with the product by x. With bits = k < 64 only the low k
// bits of x take part: x mod 2^k = (low k bits of a + b) below, and its bit
// k-1 is the sign of x when x lies in [-2^(k-1), 2^(k-1)).
//
// Round 1 (the adder's inputs, one round instead of a carry-save adder and a
// generate round): the helper (party 2, "A") knows a = x_2 + x_0; parties 0
// and 1 both know b = x_1, so x = a + b. The generate/propagate of every
// group of two carry positions is a sum of products g(b) h(a), with g known
// to 0 and 1 and h to A alone (adder_groups). A draws masks w (seed k_2,
// shared with party 1) and w' (k_0, shared with party 0) and sends
// V_h = h ^ w_h ^ w'_h to both: (V, w, w') is a sharing of h in the slots 1,
// 2, 0, and g(b) times it has slot 1 (= g V, known to 0 and 1) computable,
// but not slots 2 and 0 (g w and g w', each known to one of them). So party
// 1 sends C = sum g w ^ rho and party 0 sends C' = sum g w' ^ sigma (rho
// from k_2, sigma from k_0, fresh): the output sharing is
//   slot 1 = sum g V ^ C ^ C' ^ (terms of b alone),  slot 2 = rho,  slot 0 = sigma.
// Party 0 sees h ^ w_h (w from k_2, which it lacks) and C (masked by rho);
// party 1 sees h ^ w'_h and C' (masked by sigma); A receives nothing.
//
// Carry tree: ceil(log2(floor(k/2))) rounds, each combining adjacent
// groups, G = G_hi ^ P_hi & G_lo, P = P_hi & P_lo (no P for the lowest
// group, which is never needed), one replicated AND per output plane
// [AFLNO16, Sec. 2.1] with a fresh zero sharing. This is the upward sweep of
// a Brent-Kung / Kogge-Stone carry network [KS73] for the one carry we need.
// MSB = a_{k-1} ^ b_{k-1} ^ carry; DReLU d = 1 ^ MSB.
//
// Lift (one round), d = d_0 ^ d_1 ^ d_2 to Z_2^64 with the product by x:
// party 0 ("E") knows e = d_0 ^ d_1 and X = x_0 + x_1, parties 1 and 2 both
// know d_2 and x_2. With s = 1 - 2 d_2 and f = (1 - 2e) X:
//   d   = e s + d_2
//   d x = e X + f d_2 + e (s x_2) + d_2 x_2.
// Each product of a value E knows (e, f) with one that 1 and 2 know is made
// as in round 1, over Z_2^64: E sends V_e = e + w_e + w'_e and V_f to both
// (w from k_0, shared with 2; w' from k_1, shared with 1), so that slot 2 =
// b V is computable by 1 and 2; party 2 sends C2 = sum b w - rho and party 1
// C1 = sum b w' - sigma (one word per output each), and
//   slot 2 = sum b V - C1 - C2 + d_2 (resp. + d_2 x_2),
//   slot 0 = -rho, slot 1 = -sigma.
// The term e X, which E alone knows, is reshared in the same round: E sends
// U = e X + r (r from k_0) to party 1; slot 1 gets U, slot 0 gets -r.
// Party 1 sees e + w_e, f + w_f (w from k_0, which it lacks), U (masked by
// r) and C2 (masked by rho); party 2 sees e + w'_e, f + w'_f and C1 (masked
// by sigma); E receives nothing. The product of a value one party knows
// with one the other two know is the setting of ABY3's bit injection by a
// three-party OT whose choice bit two parties know [MR18, Sec. 5.3]; this
// arrangement (both receivers learn the shared slot, so no reshare round
// follows) is ours, argued here and checked by mpc3_test (exact outputs,
// the server's view). Before: two rounds of products, 5 words per element
// per party.
//
// Every party draws its randomness from the call's streams Prg(k_j, c); the
// two holders of a seed draw the same words in the same order (round 1: A
// and party 1 from k_2, A and party 0 from k_0; the tree: everyone from
// both; the lift: E and 2 from k_0, E and 1 from k_1).
namespace {

constexpr int kAdderHolder = 2;  // party "A" of round 1: knows x_2 + x_0
constexpr int kLiftHolder = 0;   // party "E" of the lift: knows d_0 ^ d_1 and x_0 + x_1
constexpr std::size_t kLiftChunk = 256;  // elements per PRG draw (a multiple of 64)

// The lift's randomness for one chunk of m elements, drawn in a fixed order
// (the two holders of a seed call this with the same flags).
struct LiftMasks {
  u64 we[kLiftChunk], wf[kLiftChunk], rd[kLiftChunk], rr[kLiftChunk], r[kLiftChunk];
  /// From k_E (E's self, party 2's next): w_e, w_f, rho_d, rho_r, r; the
  /// d-only and r-only ones only when that output is wanted.
  void draw_e(Prg& prg, std::size_t m, bool d, bool rl) {
    fill(prg, we, m);
    if (rl) fill(prg, wf, m);
    if (d) fill(prg, rd, m);
    if (rl) {
      fill(prg, rr, m);
      fill(prg, r, m);
    }
  }
  /// From k_{E+1} (E's next, party 1's self): w'_e, w'_f, sigma_d, sigma_r
  /// (into we, wf, rd, rr).
  void draw_e1(Prg& prg, std::size_t m, bool d, bool rl) {
    fill(prg, we, m);
    if (rl) fill(prg, wf, m);
    if (d) fill(prg, rd, m);
    if (rl) fill(prg, rr, m);
  }
  ~LiftMasks() { OPENSSL_cleanse(this, sizeof *this); }

 private:
  static void fill(Prg& prg, u64* out, std::size_t m) {
    prg.fill({reinterpret_cast<std::uint8_t*>(out), m * sizeof(u64)});
  }
};

// Party E's ReLU part of the lift for m elements: X = x_E + x_{E+1}, f =
// (1 - 2e) X masked into V_f, U = e X + r, and E's output components
// (-rho_r - r, U - sigma_r). A function of its own so that the restrict
// qualifiers let the loop vectorise.
void lift_e_relu(const u64* __restrict a0, const u64* __restrict a1, const u64* __restrict ebit,
                 const u64* __restrict wf, const u64* __restrict wf1, const u64* __restrict r,
                 const u64* __restrict rr, const u64* __restrict sr, u64* __restrict vf, u64* __restrict uu,
                 u64* __restrict z0, u64* __restrict z1, std::size_t m) {
  for (std::size_t l = 0; l < m; ++l) {
    const u64 xa = a0[l] + a1[l], ex = xa & ebit[l];
    const u64 u = ex + r[l];
    vf[l] = xa - 2 * ex + wf[l] + wf1[l];
    uu[l] = u;
    z0[l] = u64{0} - rr[l] - r[l];
    z1[l] = u - sr[l];
  }
}

}  // namespace

void Mpc3Party::relu(const Shared& x, Shared* drelu, Shared* relu, int bits) {
  check_relu_bits(bits);
  check(x, "relu");
  if (!drelu && !relu) return;
  const std::uint64_t c = calls_++;
  Prg self(k_self_, c), next(k_next_, c);
  const std::size_t n = x.n;
  const std::size_t T = (n + 63) / 64;  // words per plane
  const AdderShape s(bits);
  const std::size_t kT = static_cast<std::size_t>(s.k) * T;
  const std::size_t nv = static_cast<std::size_t>(s.nv) * T;
  const std::size_t no = static_cast<std::size_t>(s.nout) * T;
  const bool want_d = drelu != nullptr, want_r = relu != nullptr;
  // Lift buffers: E sends [V_e | V_f | U]; the others send [C_d | C_r] and
  // receive up to 3n from E and 2n from each other.
  const std::size_t lift_send = want_r ? 3 * n : n;
  const std::size_t lift_c = (want_d ? n : 0) + (want_r ? n : 0);
  const std::size_t area = std::max(n, lift_send + lift_c + lift_c);
  // (+1: never empty, so that the pointers below are never null for n = 0)
  std::span<u64> buf = scratch(kT + 3 * nv + 6 * no + 4 * T + area + 1);
  u64* const planes = buf.data();  // the adder input this party knows, k planes
  u64* const hw = planes + kT;     // nv: A's h-planes, then V; the others' masks
  u64* const hv = hw + nv;         // nv: V (received, or A's mask w')
  u64* const hx = hv + nv;         // nv: A's mask w
  u64* const ga = hx + nv;         // no: group G/P planes, component 0
  u64* const gb = ga + no;         // no: component 1
  u64* const cs = gb + no;         // no: this party's correction
  u64* const cr = cs + no;         // no: the other holder's correction
  u64* const snd = cr + no;        // no: tree send
  u64* const rcv = snd + no;       // no: tree receive
  u64* const msb0 = rcv + no;      // T: sharing of P_{k-1} = a_{k-1} ^ b_{k-1}
  u64* const msb1 = msb0 + T;
  u64* const d0 = msb1 + T;  // T: DReLU's boolean components
  u64* const d1 = d0 + T;
  u64* const tmp = d1 + T;  // area
  const u64* const s0 = x.s0.data();
  const u64* const s1 = x.s1.data();
  const std::size_t top = static_cast<std::size_t>(s.k - 1) * T;  // plane k-1

  // ---- round 1 ----
  const int role = (party_ - kAdderHolder + 3) % 3;  // 0: A; 1: A+1 (party 0); 2: A+2 (party 1)
  net::Channel& to_other = role == 1 ? next_ : prev_;  // the other holder of b
  const int other = role == 1 ? (party_ + 1) % 3 : (party_ + 2) % 3;
  if (role == 0) {
    for (std::size_t j = 0; j < n; ++j) tmp[j] = s0[j] + s1[j];  // a = x_A + x_{A+1}
    to_planes(tmp, n, s.k, T, planes);
    std::memcpy(hw, planes, kT * sizeof(u64));
    for (int j = 0; j < s.pairs; ++j) {
      const u64* lo = planes + 2 * static_cast<std::size_t>(j) * T;
      u64* h = hw + static_cast<std::size_t>(s.k + j) * T;
      for (std::size_t t = 0; t < T; ++t) h[t] = lo[T + t] & lo[t];
    }
    fill_words(self, {hx, nv});  // w, from k_A (shared with A+2)
    fill_words(self, {ga, no});  // rho: slot A, component 0
    fill_words(next, {hv, nv});  // w', from k_{A+1} (shared with A+1)
    fill_words(next, {gb, no});  // sigma: slot A+1, component 1
    std::memcpy(msb0, hx + top, T * sizeof(u64));
    std::memcpy(msb1, hv + top, T * sizeof(u64));
    for (std::size_t t = 0; t < nv; ++t) hw[t] ^= hx[t] ^ hv[t];
    send_words(next_, kTagRelu, {hw, nv});
    send_words(prev_, kTagRelu, {hw, nv});
  } else {
    // b = x_{A+2}: component 1 of party A+1, component 0 of party A+2.
    to_planes(role == 1 ? s1 : s0, n, s.k, T, planes);
    Prg& shared_with_a = role == 1 ? self : next;
    u64* const mine = role == 1 ? ga : gb;  // sigma (slot A+1) or rho (slot A)
    u64* const slot = role == 1 ? gb : ga;  // the slot both holders of b compute
    fill_words(shared_with_a, {hw, nv});
    fill_words(shared_with_a, {mine, no});
    adder_groups(s, hw, planes, T, 0, cs);
    for (std::size_t t = 0; t < no; ++t) cs[t] ^= mine[t];
    send_words(to_other, kTagRelu, {cs, no});
    recv_words(role == 1 ? prev_ : next_, kAdderHolder, kTagRelu, "relu", {hv, nv});
    recv_words(to_other, other, kTagRelu, "relu", {cr, no});
    adder_groups(s, hv, planes, T, ~u64{0}, slot);
    for (std::size_t t = 0; t < no; ++t) slot[t] ^= cs[t] ^ cr[t];
    u64* const mine_msb = role == 1 ? msb0 : msb1;
    u64* const slot_msb = role == 1 ? msb1 : msb0;
    std::memcpy(mine_msb, hw + top, T * sizeof(u64));
    for (std::size_t t = 0; t < T; ++t) slot_msb[t] = hv[top + t] ^ planes[top + t];
  }

  // ---- carry tree ----
  for (int m = s.groups; m > 1;) {
    const int h = m / 2;  // combined groups; a last odd group passes through
    const std::size_t words = static_cast<std::size_t>(2 * h - 1) * T;
    for (int u = 0; u < h; ++u) {  // P_hi & G_lo, then P_hi & P_lo (u >= 1)
      const std::size_t hi = s.p(2 * u + 1) * T, lo = s.g(2 * u) * T;
      and_local(ga + hi, gb + hi, ga + lo, gb + lo, snd + u * T, T);
      if (u > 0) {
        const std::size_t plo = s.p(2 * u) * T;
        and_local(ga + hi, gb + hi, ga + plo, gb + plo, snd + static_cast<std::size_t>(h + u - 1) * T, T);
      }
    }
    add_zero_share<true>(self, next, {snd, words});
    exchange("relu", {snd, words}, {rcv, words});
    for (int u = 0; u < h; ++u) {
      u64 *g0 = ga + s.g(u) * T, *g1 = gb + s.g(u) * T;
      const u64 *h0 = ga + s.g(2 * u + 1) * T, *h1 = gb + s.g(2 * u + 1) * T;
      const u64 *z0 = snd + u * T, *z1 = rcv + u * T;
      for (std::size_t t = 0; t < T; ++t) {
        g0[t] = h0[t] ^ z0[t];
        g1[t] = h1[t] ^ z1[t];
      }
      if (u > 0) {
        const std::size_t y = static_cast<std::size_t>(h + u - 1) * T;
        std::memcpy(ga + s.p(u) * T, snd + y, T * sizeof(u64));
        std::memcpy(gb + s.p(u) * T, rcv + y, T * sizeof(u64));
      }
    }
    if (m % 2 == 1) {
      std::memmove(ga + s.g(h) * T, ga + s.g(m - 1) * T, T * sizeof(u64));
      std::memmove(gb + s.g(h) * T, gb + s.g(m - 1) * T, T * sizeof(u64));
      std::memmove(ga + s.p(h) * T, ga + s.p(m - 1) * T, T * sizeof(u64));
      std::memmove(gb + s.p(h) * T, gb + s.p(m - 1) * T, T * sizeof(u64));
    }
    m = h + m % 2;
  }
  // DReLU = 1 ^ P_{k-1} ^ carry; the public 1 in slot 0 (party 0's
  // component 0, party 2's component 1).
  const u64 one0 = party_ == 0 ? ~u64{0} : 0, one1 = party_ == 2 ? ~u64{0} : 0;
  for (std::size_t t = 0; t < T; ++t) {
    d0[t] = msb0[t] ^ ga[t] ^ one0;
    d1[t] = msb1[t] ^ gb[t] ^ one1;
  }

  // ---- lift ----
  Shared dout, rout;
  if (want_d) {
    dout.n = n;
    dout.s0.resize(n);
    dout.s1.resize(n);
  }
  if (want_r) {
    rout.n = n;
    rout.s0.resize(n);
    rout.s1.resize(n);
  }
  u64* const ds0 = dout.s0.data();
  u64* const ds1 = dout.s1.data();
  u64* const rs0 = rout.s0.data();
  u64* const rs1 = rout.s1.data();
  const int lrole = (party_ - kLiftHolder + 3) % 3;  // 0: E; 1: E+1; 2: E+2
  LiftMasks mk, mk1;     // the words of k_E (w, rho, r) and of k_{E+1} (w', sigma)
  u64 bit[kLiftChunk];   // all ones where the element's bit (e or d_2) is set
  if (lrole == 0) {
    u64* const ve = tmp;
    u64* const vf = tmp + n;
    u64* const uu = tmp + 2 * n;
    for (std::size_t j0 = 0; j0 < n; j0 += kLiftChunk) {
      const std::size_t m = std::min(kLiftChunk, n - j0);
      for (std::size_t t = 0; 64 * t < m; ++t) expand_bits(d0[j0 / 64 + t] ^ d1[j0 / 64 + t], bit + 64 * t);
      mk.draw_e(self, m, want_d, want_r);
      mk1.draw_e1(next, m, want_d, want_r);
      for (std::size_t l = 0; l < m; ++l) ve[j0 + l] = (bit[l] & 1) + mk.we[l] + mk1.we[l];
      if (want_d) {
        for (std::size_t l = 0; l < m; ++l) {
          ds0[j0 + l] = u64{0} - mk.rd[l];
          ds1[j0 + l] = u64{0} - mk1.rd[l];
        }
      }
      if (want_r) {
        lift_e_relu(s0 + j0, s1 + j0, bit, mk.wf, mk1.wf, mk.r, mk.rr, mk1.rr, vf + j0, uu + j0, rs0 + j0,
                    rs1 + j0, m);
      }
    }
    send_words(next_, kTagRelu, {tmp, lift_send});           // V_e [V_f U]
    send_words(prev_, kTagRelu, {tmp, want_r ? 2 * n : n});  // V_e [V_f]
  } else {
    // Parties E+1 and E+2 both know d_2 (E+1's component 1, E+2's 0) and
    // x_2; E+1 draws (w', sigma) from k_{E+1}, E+2 (w, rho, r) from k_E.
    const bool e1 = lrole == 1;
    const u64* const dpl = e1 ? d1 : d0;
    const u64* const x2 = e1 ? s1 : s0;
    u64* const cown = tmp;              // [C_d | C_r], sent to the other
    u64* const cin = tmp + lift_c;      // the other's
    u64* const vin = tmp + 2 * lift_c;  // E's [V_e | V_f | U]
    u64* const c_d = cown;
    u64* const c_r = cown + (want_d ? n : 0);
    // Own slot (E+1: slot E+1, component 0; E+2: slot E, component 1) and
    // the shared slot E+2 (E+1's component 1, E+2's component 0).
    u64* const dmine = e1 ? ds0 : ds1;
    u64* const rmine = e1 ? rs0 : rs1;
    u64* const dslot = e1 ? ds1 : ds0;
    u64* const rslot = e1 ? rs1 : rs0;
    for (std::size_t j0 = 0; j0 < n; j0 += kLiftChunk) {
      const std::size_t m = std::min(kLiftChunk, n - j0);
      for (std::size_t t = 0; 64 * t < m; ++t) expand_bits(dpl[j0 / 64 + t], bit + 64 * t);
      if (e1) mk.draw_e1(self, m, want_d, want_r);
      else mk.draw_e(next, m, want_d, want_r);
      if (want_d) {
        for (std::size_t l = 0; l < m; ++l) {
          const u64 w = mk.we[l];
          c_d[j0 + l] = w - 2 * (w & bit[l]) - mk.rd[l];  // s w - rho
          dmine[j0 + l] = u64{0} - mk.rd[l];
        }
      }
      if (want_r) {
        for (std::size_t l = 0; l < m; ++l) {
          const std::size_t j = j0 + l;
          const u64 sx2 = x2[j] - 2 * (x2[j] & bit[l]);
          c_r[j] = sx2 * mk.we[l] + (mk.wf[l] & bit[l]) - mk.rr[l];
          rmine[j] = u64{0} - mk.rr[l];
        }
        if (!e1) {
          for (std::size_t l = 0; l < m; ++l) rmine[j0 + l] -= mk.r[l];
        }
      }
    }
    net::Channel& to_peer = e1 ? next_ : prev_;
    net::Channel& to_e = e1 ? prev_ : next_;
    const int peer = e1 ? (party_ + 1) % 3 : (party_ + 2) % 3;
    send_words(to_peer, kTagRelu, {cown, lift_c});
    recv_words(to_e, kLiftHolder, kTagRelu, "relu", {vin, e1 ? lift_send : (want_r ? 2 * n : n)});
    recv_words(to_peer, peer, kTagRelu, "relu", {cin, lift_c});
    const u64* const ve = vin;
    const u64* const vf = vin + n;
    const u64* const uu = vin + 2 * n;
    const u64* const c_d_in = cin;
    const u64* const c_r_in = cin + (want_d ? n : 0);
    for (std::size_t j0 = 0; j0 < n; j0 += kLiftChunk) {
      const std::size_t m = std::min(kLiftChunk, n - j0);
      for (std::size_t t = 0; 64 * t < m; ++t) expand_bits(dpl[j0 / 64 + t], bit + 64 * t);
      if (want_d) {
        for (std::size_t l = 0; l < m; ++l) {  // s V_e - C1 - C2 + d_2
          const std::size_t j = j0 + l;
          dslot[j] = ve[j] - 2 * (ve[j] & bit[l]) - c_d[j] - c_d_in[j] + (bit[l] & 1);
        }
      }
      if (want_r) {
        for (std::size_t l = 0; l < m; ++l) {  // s x_2 V_e + d_2 V_f - C1 - C2 + d_2 x_2
          const std::size_t j = j0 + l;
          const u64 sx2 = x2[j] - 2 * (x2[j] & bit[l]);
          rslot[j] = sx2 * ve[j] + (vf[j] & bit[l]) - c_r[j] - c_r_in[j] + (x2[j] & bit[l]);
        }
        if (e1) {
          for (std::size_t l = 0; l < m; ++l) rmine[j0 + l] += uu[j0 + l];
        }
      }
    }
  }
  OPENSSL_cleanse(bit, sizeof bit);
  if (want_d) *drelu = std::move(dout);
  if (want_r) *relu = std::move(rout);
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
