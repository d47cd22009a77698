// Distributed comparison function and the ReLU/DReLU gate built on it.
//
// DCF: Boyle, Chandran, Gilboa, Gupta, Ishai, Kumar, Rathee, "Function Secret
// Sharing for Mixed-Mode and Fixed-Point Secure Computation", Eurocrypt 2021
// (ePrint 2020/1392), Fig. 3 (Gen^< / Eval^<), with G = Z_2^64 x Z_2^64 and
// Convert(block) = (lo, hi). Notation below follows the figure: per level i
// (MSB first) the PRG expands a seed into s^L || v^L || t^L || s^R || v^R ||
// t^R, and the correction word is s_CW || V_CW || t^L_CW || t^R_CW.
//
// PRG: fixed-key AES-128 in Matyas-Meyer-Oseas form (Guo, Katz, Wang, Yu,
// S&P 2020), G_j(s) = AES_K(s ^ j) ^ s ^ j for j = 0..3, j xored into the low
// 64 bits of the block:
//   j = 0: s^L || t^L (t^L = bit 0 of the block; the seed has bit 0 cleared)
//   j = 1: v^L
//   j = 2: s^R || t^R
//   j = 3: v^R
// K = the first 16 bytes of SHA-256("blindfold fss dcf")
//   = ae2d5bb31bbbf02ee77446b6c314aa56 (public; pinned by DcfTest.KnownAnswer).
// Evaluation needs only the side of x_i: 2 blocks per level.
//
// Batching: every kernel runs level by level over a sub-batch of kSub gates,
// so that the level-major corrections are read sequentially and AES runs over
// many blocks per EVP_EncryptUpdate call (gen: the whole sub-batch, 8 blocks
// per gate; eval: pieces of kPiece gates, 2 blocks per gate, with the next
// corrections prefetched so that memory traffic overlaps the AES work).
// Sub-batches are spread over ThreadPool::global(), each task with its own
// EVP context. Evaluation is bound by AES (32 bytes per gate and level)
// plus the corrections read from memory (33 bytes per gate and level): on
// one core of the development machine about 147 / 237 / 474 ns per gate at
// 20 / 32 / 64 bits. All AES is OpenSSL's: the project takes its symmetric
// crypto from OpenSSL or libsodium only, so there is no hand-written AES
// (a fused VAES-512 evaluation kernel, 2.3-3x faster per gate, was removed
// for that reason).
#include "mpc/fss.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"

namespace blindfold::mpc::fss {

static_assert(std::endian::native == std::endian::little,
              "the serialization copies blocks as little-endian u64 pairs");
static_assert(sizeof(Block) == 16);

namespace detail {
void wipe(void* p, std::size_t n) noexcept {
  if (p != nullptr && n != 0) OPENSSL_cleanse(p, n);
}
}  // namespace detail

namespace {

// Gates per sub-batch: the evaluation state (2 AES inputs, value, x, t: ~60
// bytes per gate) stays in L2, and each level's corrections are read in runs
// of 32 KB. A sub-batch is ~1 ms of work, far above a pool wake-up, so one
// sub-batch is enough for a task.
constexpr std::size_t kSub = 2048;
constexpr std::int64_t kGrain = 1;

// A ReLU gate of width n uses a DCF over n - 1 bits (fss.h).
void check_relu_width(int bits, const char* where) {
  if (bits < 2 || bits > 64) {
    throw Error(ErrorCategory::kInternal,
                std::string(where) + ": gate width of " + std::to_string(bits) + " bits (2..64)");
  }
}

template <class T>
void wipe_vec(std::vector<T>& v) {
  detail::wipe(v.data(), v.size() * sizeof(T));
}

inline Block bxor(Block a, Block b) { return {a.lo ^ b.lo, a.hi ^ b.hi}; }
inline Block badd(Block a, Block b) { return {a.lo + b.lo, a.hi + b.hi}; }
inline Block bsub(Block a, Block b) { return {a.lo - b.lo, a.hi - b.hi}; }
inline Block bneg(Block a) { return {u64{0} - a.lo, u64{0} - a.hi}; }
inline Block band(Block a, u64 m) { return {a.lo & m, a.hi & m}; }
// (-1)^t * a for a mask m = -t (all ones when t = 1): (a ^ m) - m.
inline Block bsign(Block a, u64 m) { return {(a.lo ^ m) - m, (a.hi ^ m) - m}; }

// The fixed public AES key, derived once.
const std::array<std::uint8_t, 16>& fixed_key() {
  static const std::array<std::uint8_t, 16> key = [] {
    static constexpr char kLabel[] = "blindfold fss dcf";
    std::array<std::uint8_t, 32> digest{};
    unsigned int len = 0;
    if (EVP_Digest(kLabel, sizeof kLabel - 1, digest.data(), &len, EVP_sha256(), nullptr) != 1 ||
        len != digest.size()) {
      throw Error(ErrorCategory::kInternal, "fss: SHA-256 of the AES key label failed");
    }
    std::array<std::uint8_t, 16> k{};
    std::memcpy(k.data(), digest.data(), k.size());
    return k;
  }();
  return key;
}

// Fixed-key AES-128-ECB over arrays of blocks (one context per task).
class FixedAes {
 public:
  FixedAes() : ctx_(EVP_CIPHER_CTX_new()) {
    if (ctx_ == nullptr ||
        EVP_EncryptInit_ex(ctx_, EVP_aes_128_ecb(), nullptr, fixed_key().data(), nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx_, 0) != 1) {
      EVP_CIPHER_CTX_free(ctx_);
      throw Error(ErrorCategory::kInternal, "fss: cannot initialise AES-128-ECB");
    }
  }
  ~FixedAes() { EVP_CIPHER_CTX_free(ctx_); }
  FixedAes(const FixedAes&) = delete;
  FixedAes& operator=(const FixedAes&) = delete;

  // out[k] = AES_K(in[k]) for k < n. n * 16 fits in an int (n <= 8 * kSub).
  void encrypt(const Block* in, Block* out, std::size_t n) {
    const int bytes = static_cast<int>(n * sizeof(Block));
    int len = 0;
    if (EVP_EncryptUpdate(ctx_, reinterpret_cast<unsigned char*>(out), &len,
                          reinterpret_cast<const unsigned char*>(in), bytes) != 1 ||
        len != bytes) {
      throw Error(ErrorCategory::kInternal, "fss: AES-128-ECB failed");
    }
  }

 private:
  EVP_CIPHER_CTX* ctx_;
};

void check_bits(int bits, const char* where) {
  if (bits < 1 || bits > 64) {
    throw Error(ErrorCategory::kInternal,
                std::string(where) + ": domain of " + std::to_string(bits) + " bits (1..64)");
  }
}

u64 domain_mask(int bits) { return bits == 64 ? ~u64{0} : (u64{1} << bits) - 1; }

// Runs fn(begin, end) over gate ranges [begin, end) of at most kSub gates
// each, spread over the global pool. fn is called with a per-task state made
// by make_state().
template <class MakeState, class Fn>
void for_sub_batches(std::size_t count, MakeState make_state, Fn fn) {
  const auto subs = static_cast<std::int64_t>((count + kSub - 1) / kSub);
  ThreadPool::global().parallel_for(
      subs,
      [&](std::int64_t first, std::int64_t last) {
        auto state = make_state();
        for (std::int64_t k = first; k < last; ++k) {
          const std::size_t begin = static_cast<std::size_t>(k) * kSub;
          fn(state, begin, std::min(count, begin + kSub));
        }
      },
      kGrain);
}

// ---- Gen (Fig. 3, Gen^<) ---------------------------------------------------

struct GenScratch {
  FixedAes aes;
  std::vector<Block> in = std::vector<Block>(8 * kSub), enc = std::vector<Block>(8 * kSub);
  std::vector<Block> s0 = std::vector<Block>(kSub), s1 = std::vector<Block>(kSub);
  std::vector<Block> valpha = std::vector<Block>(kSub);
  std::vector<std::uint8_t> t0 = std::vector<std::uint8_t>(kSub),
                            t1 = std::vector<std::uint8_t>(kSub);
  ~GenScratch() {
    for (auto* v : {&in, &enc, &s0, &s1, &valpha}) wipe_vec(*v);
    wipe_vec(t0);
    wipe_vec(t1);
  }
};

// Where gen writes the corrections: level-major blocks (possibly unaligned,
// inside a serialization buffer), one unpacked t byte per entry.
struct GenOut {
  int bits = 0;
  std::size_t count = 0;
  std::uint8_t* seed = nullptr;   // [bits * count] blocks
  std::uint8_t* value = nullptr;  // [bits * count] blocks
  std::uint8_t* t = nullptr;      // [bits * count] bytes
  std::uint8_t* final_cw = nullptr;  // [count] blocks
};

inline void put(std::uint8_t* base, std::size_t k, Block b) {
  std::memcpy(base + k * sizeof(Block), &b, sizeof b);
}

void gen_range(GenScratch& g, const GenOut& cw, const u64* alpha, const Block* beta,
               const Block* root0, const Block* root1, std::size_t begin, std::size_t end) {
  const std::size_t n = end - begin;
  const int bits = cw.bits;
  const std::size_t count = cw.count;
  for (std::size_t i = 0; i < n; ++i) {
    g.s0[i] = root0[begin + i];
    g.s1[i] = root1[begin + i];
    g.t0[i] = 0;
    g.t1[i] = 1;
    g.valpha[i] = Block{};
  }
  for (int level = 0; level < bits; ++level) {
    // Both parties' full expansions: in[8i + 4b + j] = s_b ^ j.
    for (std::size_t i = 0; i < n; ++i) {
      Block* p = &g.in[8 * i];
      for (u64 j = 0; j < 4; ++j) {
        p[j] = Block{g.s0[i].lo ^ j, g.s0[i].hi};
        p[4 + j] = Block{g.s1[i].lo ^ j, g.s1[i].hi};
      }
    }
    g.aes.encrypt(g.in.data(), g.enc.data(), 8 * n);
    const int shift = bits - 1 - level;
    const std::size_t row = static_cast<std::size_t>(level) * count + begin;
    for (std::size_t i = 0; i < n; ++i) {
      Block o[8];
      for (int k = 0; k < 8; ++k) o[k] = bxor(g.enc[8 * i + k], g.in[8 * i + k]);
      // Party b: s^L = o[4b] (bit 0 cleared), t^L = bit 0 of o[4b], v^L =
      // o[4b+1], s^R, t^R from o[4b+2], v^R = o[4b+3].
      const unsigned a = static_cast<unsigned>(alpha[begin + i] >> shift) & 1u;
      const unsigned keep = 2 * a, lose = 2 * (a ^ 1u);  // offsets of the sides
      const Block s_lose0{o[lose].lo & ~u64{1}, o[lose].hi};
      const Block s_lose1{o[4 + lose].lo & ~u64{1}, o[4 + lose].hi};
      const Block v_lose0 = o[lose + 1], v_lose1 = o[4 + lose + 1];
      const Block s_keep0{o[keep].lo & ~u64{1}, o[keep].hi};
      const Block s_keep1{o[4 + keep].lo & ~u64{1}, o[4 + keep].hi};
      const Block v_keep0 = o[keep + 1], v_keep1 = o[4 + keep + 1];
      const unsigned tl0 = o[0].lo & 1, tr0 = o[2].lo & 1;
      const unsigned tl1 = o[4].lo & 1, tr1 = o[6].lo & 1;
      const unsigned t_keep0 = a ? tr0 : tl0, t_keep1 = a ? tr1 : tl1;

      const u64 sign1 = u64{0} - g.t1[i];  // (-1)^{t1}: negate when all ones
      const Block s_cw = bxor(s_lose0, s_lose1);
      // V_CW = (-1)^{t1} [Convert(v1^Lose) - Convert(v0^Lose) - V_alpha
      //                   (+ beta when Lose = L, i.e. alpha_i = 1)].
      Block v_cw = bsub(bsub(v_lose1, v_lose0), g.valpha[i]);
      const u64 lose_left = u64{0} - a;
      v_cw = badd(v_cw, band(beta[begin + i], lose_left));
      v_cw = bsign(v_cw, sign1);
      // V_alpha = V_alpha - Convert(v1^Keep) + Convert(v0^Keep) + (-1)^{t1} V_CW.
      g.valpha[i] =
          badd(badd(bsub(g.valpha[i], v_keep1), v_keep0), bsign(v_cw, sign1));
      const unsigned tl_cw = tl0 ^ tl1 ^ a ^ 1u;
      const unsigned tr_cw = tr0 ^ tr1 ^ a;
      const unsigned t_keep_cw = a ? tr_cw : tl_cw;

      put(cw.seed, row + i, s_cw);
      put(cw.value, row + i, v_cw);
      cw.t[row + i] = static_cast<std::uint8_t>(tl_cw | (tr_cw << 1));

      // s_b = s_b^Keep ^ t_b s_CW; t_b = t_b^Keep ^ t_b t^Keep_CW.
      const u64 m0 = u64{0} - g.t0[i], m1 = u64{0} - g.t1[i];
      g.s0[i] = bxor(s_keep0, band(s_cw, m0));
      g.s1[i] = bxor(s_keep1, band(s_cw, m1));
      g.t0[i] = static_cast<std::uint8_t>(t_keep0 ^ (g.t0[i] & t_keep_cw));
      g.t1[i] = static_cast<std::uint8_t>(t_keep1 ^ (g.t1[i] & t_keep_cw));
    }
  }
  // CW^{(n+1)} = (-1)^{t1} [Convert(s1) - Convert(s0) - V_alpha].
  for (std::size_t i = 0; i < n; ++i) {
    const u64 sign1 = u64{0} - g.t1[i];
    put(cw.final_cw, begin + i, bsign(bsub(bsub(g.s1[i], g.s0[i]), g.valpha[i]), sign1));
  }
}

// ---- Eval (Fig. 3, Eval^<) -------------------------------------------------

// A block as a GCC/Clang vector of two u64 (lo, hi): one SSE register.
typedef u64 V2 __attribute__((vector_size(16)));
inline V2 ld(const Block* p) {
  V2 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void st(Block* p, V2 v) { std::memcpy(static_cast<void*>(p), &v, sizeof v); }

// Gates per AES call inside a level: the corrections of the next piece are
// prefetched while this one is encrypted and processed, so that memory
// traffic (33 bytes per gate and level) overlaps the AES work.
constexpr std::size_t kPiece = 64;
constexpr std::size_t kPrefetch = 128;

struct EvalScratch {
  FixedAes aes;
  std::vector<Block> in = std::vector<Block>(2 * kSub), enc = std::vector<Block>(2 * kPiece);
  std::vector<Block> value = std::vector<Block>(kSub);
  std::vector<u64> xs = std::vector<u64>(kSub);
  std::vector<std::uint8_t> t = std::vector<std::uint8_t>(kSub);
  std::vector<Block> out = std::vector<Block>(kSub);  // for callers that post-process
  ~EvalScratch() {
    for (auto* v : {&in, &enc, &value, &out}) wipe_vec(*v);
    wipe_vec(xs);
    wipe_vec(t);
  }
};

// Where eval reads the corrections: level-major blocks (any alignment), and
// the t bits either one byte per entry (DcfCorrections) or packed 4 per byte
// (DcfCorrectionsView, straight from a serialization).
struct EvalCw {
  int bits = 0;
  std::size_t count = 0;
  const std::uint8_t* seed = nullptr;
  const std::uint8_t* value = nullptr;
  const std::uint8_t* t = nullptr;
  const std::uint8_t* final_cw = nullptr;
};

EvalCw eval_cw(const DcfCorrections& cw) {
  return {cw.bits, cw.count, reinterpret_cast<const std::uint8_t*>(cw.seed_cw.data()),
          reinterpret_cast<const std::uint8_t*>(cw.value_cw.data()), cw.t_cw.data(),
          reinterpret_cast<const std::uint8_t*>(cw.final_cw.data())};
}
EvalCw eval_cw(const DcfCorrectionsView& cw) {
  return {cw.bits, cw.count, cw.seed_cw, cw.value_cw, cw.t_cw, cw.final_cw};
}

inline V2 ldb(const std::uint8_t* p) {
  V2 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The 2 t bits of entry k (bit 0: t_L CW, bit 1: t_R CW); only bit `side`
// of the result is used.
template <bool kPacked>
inline unsigned t_entry(const std::uint8_t* t, std::size_t k) {
  if constexpr (kPacked) {
    return static_cast<unsigned>(t[k >> 2]) >> (2 * (k & 3));
  } else {
    return t[k];
  }
}

// out[i] = party's share of f(x[begin + i] & xmask), i < end - begin.
template <bool kPacked>
void eval_range(EvalScratch& e, int party, const EvalCw& cw, const Block* root,
                const u64* x, u64 xmask, std::size_t begin, std::size_t end, Block* out) {
  const std::size_t n = end - begin;
  const int bits = cw.bits;
  const std::size_t count = cw.count;
  Block* const in = e.in.data();
  Block* const enc = e.enc.data();
  Block* const value = e.value.data();
  u64* const xs = e.xs.data();
  std::uint8_t* const t = e.t.data();
  // in[2i] = s ^ 2 x_i, in[2i+1] = s ^ (2 x_i + 1): the chosen side's
  // G_j inputs. xs[i] = x aligned to bit 63, so that level l reads bit 63
  // of xs << l.
  for (std::size_t i = 0; i < n; ++i) {
    xs[i] = (x[begin + i] & xmask) << (64 - bits);
    const V2 s = ld(&root[begin + i]);
    const V2 j = {(xs[i] >> 63) << 1, 0};
    st(&in[2 * i], s ^ j);
    st(&in[2 * i + 1], s ^ j ^ V2{1, 0});
    t[i] = static_cast<std::uint8_t>(party);
    value[i] = Block{};
  }
  const V2 clear_t = {~u64{1}, ~u64{0}};
  const V2 one_lo = {1, 0};
  for (int level = 0; level < bits; ++level) {
    const std::size_t row = static_cast<std::size_t>(level) * count + begin;
    const std::uint8_t* const scw = cw.seed + row * sizeof(Block);
    const std::uint8_t* const vcw = cw.value + row * sizeof(Block);
    for (std::size_t p = 0; p < n; p += kPiece) {
      const std::size_t q = std::min(n, p + kPiece);
      e.aes.encrypt(in + 2 * p, enc, 2 * (q - p));
      for (std::size_t i = p; i < q; ++i) {
        // The corrections kPrefetch gates ahead (they arrive while the
        // next piece is encrypted).
        if (kPrefetch != 0 && i + kPrefetch < n) {
          __builtin_prefetch(scw + (i + kPrefetch) * sizeof(Block));
          __builtin_prefetch(vcw + (i + kPrefetch) * sizeof(Block));
        }
        const Block* const o = enc + 2 * (i - p);
        const V2 o0 = ld(o) ^ ld(&in[2 * i]);          // G_{2 x_i}(s)
        const V2 o1 = ld(o + 1) ^ ld(&in[2 * i + 1]);  // G_{2 x_i + 1}(s)
        const u64 ti = t[i];
        const V2 m = V2{0, 0} - ti;  // t^{(i-1)} as a mask
        const u64 xl = xs[i] << level;
        const unsigned xi = static_cast<unsigned>(xl >> 63);
        // tau ^= t [s_CW || t_CW]: the chosen side's seed and t bit.
        const V2 s = (o0 & clear_t) ^ (ldb(scw + i * sizeof(Block)) & m);
        const unsigned tcw = t_entry<kPacked>(cw.t, row + i);
        t[i] = static_cast<std::uint8_t>((o0[0] & 1) ^ (ti & (tcw >> xi)));
        // V += Convert(v^{x_i}) + t V_CW (the sign (-1)^b is applied at the end).
        st(&value[i], ld(&value[i]) + o1 + (ldb(vcw + i * sizeof(Block)) & m));
        // Next level's inputs; after the last level j = 0 and in[2i] = s.
        const V2 j = {((xl << 1) >> 63) << 1, 0};
        st(&in[2 * i], s ^ j);
        st(&in[2 * i + 1], s ^ j ^ one_lo);
      }
    }
  }
  // V += Convert(s) + t CW^{(n+1)}; party 1 negates the whole sum.
  const u64 neg = u64{0} - static_cast<u64>(party);
  for (std::size_t i = 0; i < n; ++i) {
    const V2 m = V2{0, 0} - static_cast<u64>(t[i]);
    const V2 v = ld(&value[i]) + ld(&in[2 * i]) + (ldb(cw.final_cw + (begin + i) * sizeof(Block)) & m);
    st(&out[i], (v ^ neg) - neg);
  }
}

// Packs t entries (2 bits each) 4 per byte; unused bits of the last byte 0.
void pack_t(const std::uint8_t* t, std::size_t entries, std::uint8_t* out) {
  for (std::size_t k = 0; k < entries / 4; ++k) {
    const std::uint8_t* q = t + 4 * k;
    out[k] = static_cast<std::uint8_t>((q[0] & 3u) | (q[1] & 3u) << 2 | (q[2] & 3u) << 4 |
                                       (q[3] & 3u) << 6);
  }
  if (entries % 4 != 0) {
    std::uint8_t byte = 0;
    for (std::size_t k = entries / 4 * 4; k < entries; ++k) {
      byte = static_cast<std::uint8_t>(byte | (t[k] & 3u) << (2 * (k % 4)));
    }
    out[entries / 4] = byte;
  }
}

std::string sizes(std::size_t got, std::size_t want) {
  return std::to_string(got) + " bytes, expected " + std::to_string(want);
}

}  // namespace

// ---- DcfCorrections --------------------------------------------------------

std::size_t DcfCorrections::serialized_size(int bits, std::size_t count) {
  check_bits(bits, "DcfCorrections::serialized_size");
  const auto b = static_cast<std::size_t>(bits);
  // Bytes per gate at most 64 * 33 + 16 + 1; refuse counts that would overflow.
  if (count > std::numeric_limits<std::size_t>::max() / (b * 33 + 17)) {
    throw Error(ErrorCategory::kBadMessage,
                "DCF corrections: " + std::to_string(count) + " keys is too many");
  }
  return 2 * b * count * sizeof(Block) + (b * count + 3) / 4 + count * sizeof(Block);
}

void DcfCorrections::serialize(std::vector<std::uint8_t>& out) const {
  check_bits(bits, "DcfCorrections::serialize");
  const std::size_t entries = static_cast<std::size_t>(bits) * count;
  if (seed_cw.size() != entries || value_cw.size() != entries || t_cw.size() != entries ||
      final_cw.size() != count) {
    throw Error(ErrorCategory::kInternal, "DcfCorrections::serialize: inconsistent sizes");
  }
  if (count == 0) return;  // nothing to write (and no null pointers to memcpy)
  const std::size_t start = out.size();
  out.resize(start + serialized_size(bits, count));
  std::uint8_t* p = out.data() + start;
  std::memcpy(p, seed_cw.data(), entries * sizeof(Block));
  p += entries * sizeof(Block);
  std::memcpy(p, value_cw.data(), entries * sizeof(Block));
  p += entries * sizeof(Block);
  const std::size_t t_bytes = (entries + 3) / 4;
  pack_t(t_cw.data(), entries, p);
  p += t_bytes;
  std::memcpy(p, final_cw.data(), count * sizeof(Block));
}

DcfCorrectionsView DcfCorrectionsView::of(int bits, std::size_t count,
                                          std::span<const std::uint8_t> bytes) {
  check_bits(bits, "DcfCorrectionsView::of");
  const std::size_t want = DcfCorrections::serialized_size(bits, count);
  if (bytes.size() != want) {
    throw Error(ErrorCategory::kBadMessage, "DCF corrections (" + std::to_string(count) +
                                                " keys of " + std::to_string(bits) +
                                                " bits): " + sizes(bytes.size(), want));
  }
  DcfCorrectionsView v;
  v.bits = bits;
  v.count = count;
  if (count == 0) return v;
  const std::size_t entries = static_cast<std::size_t>(bits) * count;
  const std::size_t t_bytes = (entries + 3) / 4;
  const std::uint8_t* const p = bytes.data();
  v.seed_cw = p;
  v.value_cw = p + entries * sizeof(Block);
  v.t_cw = p + 2 * entries * sizeof(Block);
  v.final_cw = v.t_cw + t_bytes;
  // Only the last t byte has unused bits (when entries is not a multiple of 4).
  if (entries % 4 != 0) {
    const unsigned used = static_cast<unsigned>(entries % 4) * 2;
    if ((v.t_cw[t_bytes - 1] >> used) != 0) {
      throw Error(ErrorCategory::kBadMessage,
                  "DCF corrections: unused bits set in the last t byte (" +
                      std::to_string(v.t_cw[t_bytes - 1]) + ")");
    }
  }
  return v;
}

DcfCorrections DcfCorrections::parse(int bits, std::size_t count,
                                     std::span<const std::uint8_t> bytes) {
  check_bits(bits, "DcfCorrections::parse");
  // All checks first (before allocating anything large), then the copies.
  const DcfCorrectionsView v = DcfCorrectionsView::of(bits, count, bytes);
  DcfCorrections cw;
  cw.bits = bits;
  cw.count = count;
  if (count == 0) return cw;
  const std::size_t entries = static_cast<std::size_t>(bits) * count;
  cw.seed_cw.resize(entries);
  cw.value_cw.resize(entries);
  cw.t_cw.resize(entries);
  cw.final_cw.resize(count);
  std::memcpy(cw.seed_cw.data(), v.seed_cw, entries * sizeof(Block));
  std::memcpy(cw.value_cw.data(), v.value_cw, entries * sizeof(Block));
  for (std::size_t k = 0; k < entries; ++k) {
    cw.t_cw[k] = static_cast<std::uint8_t>((v.t_cw[k / 4] >> (2 * (k % 4))) & 3u);
  }
  std::memcpy(cw.final_cw.data(), v.final_cw, count * sizeof(Block));
  return cw;
}

// ---- DCF -------------------------------------------------------------------

namespace {

void check_gen_args(int bits, std::span<const u64> alpha, std::span<const Block> beta,
                    std::span<const Block> root0, std::span<const Block> root1) {
  check_bits(bits, "dcf_gen");
  const std::size_t count = alpha.size();
  if (beta.size() != count || root0.size() != count || root1.size() != count) {
    throw Error(ErrorCategory::kInternal, "dcf_gen: alpha, beta and root spans differ in size");
  }
  const u64 mask = domain_mask(bits);
  for (std::size_t i = 0; i < count; ++i) {
    if ((alpha[i] & ~mask) != 0) {
      throw Error(ErrorCategory::kInternal,
                  "dcf_gen: alpha[" + std::to_string(i) + "] outside the domain of " +
                      std::to_string(bits) + " bits");
    }
  }
}

void run_gen(const GenOut& out, std::span<const u64> alpha, std::span<const Block> beta,
             std::span<const Block> root0, std::span<const Block> root1) {
  for_sub_batches(
      out.count, [] { return std::make_unique<GenScratch>(); },
      [&](std::unique_ptr<GenScratch>& g, std::size_t begin, std::size_t end) {
        gen_range(*g, out, alpha.data(), beta.data(), root0.data(), root1.data(), begin, end);
      });
}

}  // namespace

DcfCorrections dcf_gen(int bits, std::span<const u64> alpha, std::span<const Block> beta,
                       std::span<const Block> root0, std::span<const Block> root1) {
  check_gen_args(bits, alpha, beta, root0, root1);
  const std::size_t count = alpha.size();
  DcfCorrections cw;
  cw.bits = bits;
  cw.count = count;
  const std::size_t entries = static_cast<std::size_t>(bits) * count;
  cw.seed_cw.resize(entries);
  cw.value_cw.resize(entries);
  cw.t_cw.resize(entries);
  cw.final_cw.resize(count);
  GenOut out;
  out.bits = bits;
  out.count = count;
  out.seed = reinterpret_cast<std::uint8_t*>(cw.seed_cw.data());
  out.value = reinterpret_cast<std::uint8_t*>(cw.value_cw.data());
  out.t = cw.t_cw.data();
  out.final_cw = reinterpret_cast<std::uint8_t*>(cw.final_cw.data());
  run_gen(out, alpha, beta, root0, root1);
  return cw;
}

void dcf_eval(int party, const DcfCorrections& cw, std::span<const Block> root,
              std::span<const u64> x, std::span<Block> out) {
  if (party != 0 && party != 1) throw Error(ErrorCategory::kInternal, "dcf_eval: party not 0/1");
  check_bits(cw.bits, "dcf_eval");
  const std::size_t count = cw.count;
  const std::size_t entries = static_cast<std::size_t>(cw.bits) * count;
  if (root.size() != count || x.size() != count || out.size() != count ||
      cw.seed_cw.size() != entries || cw.value_cw.size() != entries ||
      cw.t_cw.size() != entries || cw.final_cw.size() != count) {
    throw Error(ErrorCategory::kInternal, "dcf_eval: sizes do not match the corrections");
  }
  const u64 mask = domain_mask(cw.bits);
  for (std::size_t i = 0; i < count; ++i) {
    if ((x[i] & ~mask) != 0) {
      throw Error(ErrorCategory::kInternal, "dcf_eval: x[" + std::to_string(i) +
                                                "] outside the domain of " +
                                                std::to_string(cw.bits) + " bits");
    }
  }
  const EvalCw ecw = eval_cw(cw);
  for_sub_batches(
      count, [] { return std::make_unique<EvalScratch>(); },
      [&](std::unique_ptr<EvalScratch>& e, std::size_t begin, std::size_t end) {
        eval_range<false>(*e, party, ecw, root.data(), x.data(), mask, begin, end,
                          out.data() + begin);
      });
}

// ---- ReLU gate -------------------------------------------------------------

ReluGateDealt relu_gate_gen(std::size_t count, int bits, Prg& prg0, Prg& prg1) {
  check_relu_width(bits, "relu_gate_gen");
  const int dcf_bits = bits - 1;
  const u64 low = domain_mask(dcf_bits);
  // Draws, in the order of the header: roots, r shares; prg0 also m_r and
  // m_r * r shares.
  auto draw_blocks = [count](Prg& prg) {
    std::vector<Block> v(count);
    prg.fill({reinterpret_cast<std::uint8_t*>(v.data()), count * sizeof(Block)});
    return v;
  };
  auto draw_u64 = [count](Prg& prg) {
    std::vector<u64> v(count);
    prg.fill({reinterpret_cast<std::uint8_t*>(v.data()), count * sizeof(u64)});
    return v;
  };
  std::vector<Block> root0 = draw_blocks(prg0);
  std::vector<u64> r0 = draw_u64(prg0);
  std::vector<u64> m0 = draw_u64(prg0);
  std::vector<u64> mr0 = draw_u64(prg0);
  std::vector<Block> root1 = draw_blocks(prg1);
  std::vector<u64> r1 = draw_u64(prg1);

  // r = r0 + r1, m_r = bit n-1 of r, alpha = r mod 2^(n-1),
  // beta = (1 - 2 m_r) (1, r) with the full 64-bit r.
  std::vector<u64> alpha(count);
  std::vector<Block> beta(count);
  ReluGateDealt dealt;
  dealt.to_party1.resize(count * 2 * sizeof(u64));
  for (std::size_t i = 0; i < count; ++i) {
    const u64 r = r0[i] + r1[i];
    const u64 m = (r >> dcf_bits) & 1;
    const u64 sign = 1 - 2 * m;  // 1 or 2^64 - 1
    alpha[i] = r & low;
    beta[i] = Block{sign, sign * r};
    const u64 shares[2] = {m - m0[i], m * r - mr0[i]};
    std::memcpy(dealt.to_party1.data() + i * sizeof shares, shares, sizeof shares);
  }
  // Generate straight into the serialization (no second 2 KB-per-gate copy).
  check_gen_args(dcf_bits, alpha, beta, root0, root1);
  const std::size_t entries = static_cast<std::size_t>(dcf_bits) * count;
  dealt.to_both.resize(DcfCorrections::serialized_size(dcf_bits, count));
  std::vector<std::uint8_t> t(entries);
  GenOut out;
  out.bits = dcf_bits;
  out.count = count;
  out.seed = dealt.to_both.data();
  out.value = out.seed + entries * sizeof(Block);
  std::uint8_t* const t_packed = out.value + entries * sizeof(Block);
  out.t = t.data();
  out.final_cw = t_packed + (entries + 3) / 4;
  run_gen(out, alpha, beta, root0, root1);
  pack_t(t.data(), entries, t_packed);
  for (auto* v : {&root0, &root1, &beta}) wipe_vec(*v);
  for (auto* v : {&r0, &r1, &m0, &mr0, &alpha}) wipe_vec(*v);
  return dealt;
}

ReluGateKey ReluGateKey::load(int party, std::size_t count, int bits, Prg& prg,
                              std::span<const std::uint8_t> to_both,
                              std::span<const std::uint8_t> to_party1) {
  // Check everything (and draw from the PRG) on the caller's bytes first,
  // then copy and re-point the view at the copy.
  ReluGateKey key = load_borrowed(party, count, bits, prg, to_both, to_party1);
  key.own_.assign(to_both.begin(), to_both.end());
  key.cw_ = DcfCorrectionsView::of(bits - 1, count, key.own_);
  return key;
}

ReluGateKey ReluGateKey::load_borrowed(int party, std::size_t count, int bits, Prg& prg,
                                       std::span<const std::uint8_t> to_both,
                                       std::span<const std::uint8_t> to_party1) {
  if (party != 0 && party != 1) {
    throw Error(ErrorCategory::kInternal, "ReluGateKey::load: party not 0/1");
  }
  check_relu_width(bits, "ReluGateKey::load");
  const std::size_t both_want = DcfCorrections::serialized_size(bits - 1, count);
  if (to_both.size() != both_want) {
    throw Error(ErrorCategory::kBadMessage,
                "ReLU gate key (" + std::to_string(count) + " gates of " + std::to_string(bits) +
                    " bits): DCF corrections of " + sizes(to_both.size(), both_want));
  }
  const std::size_t p1_want = party == 1 ? count * 2 * sizeof(u64) : 0;
  if (to_party1.size() != p1_want) {
    throw Error(ErrorCategory::kBadMessage,
                "ReLU gate key (" + std::to_string(count) + " gates, party " +
                    std::to_string(party) + "): party-1 shares of " +
                    sizes(to_party1.size(), p1_want));
  }
  ReluGateKey key;
  key.party_ = party;
  key.count_ = count;
  key.bits_ = bits;
  key.cw_ = DcfCorrectionsView::of(bits - 1, count, to_both);
  key.root_.resize(count);
  key.r_.resize(count);
  key.m_.resize(count);
  key.mr_.resize(count);
  auto bytes_of = [](auto& v) {
    return std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(v.data()),
                                   v.size() * sizeof(v[0]));
  };
  prg.fill(bytes_of(key.root_));
  prg.fill(bytes_of(key.r_));
  if (party == 0) {
    prg.fill(bytes_of(key.m_));
    prg.fill(bytes_of(key.mr_));
  } else {
    for (std::size_t i = 0; i < count; ++i) {
      std::memcpy(&key.m_[i], to_party1.data() + 16 * i, 8);
      std::memcpy(&key.mr_[i], to_party1.data() + 16 * i + 8, 8);
    }
  }
  return key;
}

void ReluGateKey::eval(std::span<const u64> xhat, std::span<u64> drelu,
                       std::span<u64> relu) const {
  if (xhat.size() != count_ || (!drelu.empty() && drelu.size() != count_) ||
      (!relu.empty() && relu.size() != count_)) {
    throw Error(ErrorCategory::kInternal, "ReluGateKey::eval: sizes do not match count " +
                                              std::to_string(count_));
  }
  if (drelu.empty() && relu.empty()) return;
  const u64 one = party_ == 0 ? 1 : 0;
  const int top = bits_ - 1;  // bit n-1: the sign bit of an n-bit y
  const u64 low = domain_mask(top);
  const EvalCw ecw = eval_cw(cw_);
  for_sub_batches(
      count_, [] { return std::make_unique<EvalScratch>(); },
      [&](std::unique_ptr<EvalScratch>& e, std::size_t begin, std::size_t end) {
        // DCF at xhat mod 2^(n-1): shares of (c', c' r), c' = c (1 - 2 m_r).
        eval_range<true>(*e, party_, ecw, root_.data(), xhat.data(), low, begin, end,
                         e->out.data());
        for (std::size_t i = begin; i < end; ++i) {
          const Block c = e->out[i - begin];
          const u64 u = m_[i] + c.lo;                       // share of u = m_r ^ c
          const u64 ur = mr_[i] + c.hi;                     // share of u r
          const u64 msb = u64{0} - ((xhat[i] >> top) & 1);  // all ones when xhat_{n-1} = 1
          // DReLU = u if xhat_{n-1} else 1 - u; DReLU r = u r if xhat_{n-1} else r - u r.
          const u64 d = (u & msb) | ((one - u) & ~msb);
          const u64 dr = (ur & msb) | ((r_[i] - ur) & ~msb);
          if (!drelu.empty()) drelu[i] = d;
          if (!relu.empty()) relu[i] = d * xhat[i] - dr;  // DReLU (xhat - r)
        }
      });
}

}  // namespace blindfold::mpc::fss
