#include "he/serialize.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "he/avx512_ops.h"
#include "he/sampling.h"

// Bodies (after the common header):
//   plaintext:   u32 level, f64 scale, packed rows 0..level
//   ciphertext:  u32 level, u32 size, f64 scale, [seed], packed polys
//                (seeded: c0 only, size 2, c1 = expand_uniform(seed))
//   public key:  seed of a, packed b over every key-basis prime
//   relin keys:  u32 dnum, seed, packed b of each digit over the key basis
//   galois keys: u32 count, then per key: u64 Galois element, u32 dnum,
//                seed, packed b (as relin keys)
//   secret key:  packed s over the key basis
// Packed rows: row i holds n residues of bits(q_i) bits each, LSB first.

namespace blindfold::he {
namespace {

constexpr std::uint8_t kMagic[4] = {'B', 'F', 'H', 'E'};
constexpr std::uint8_t kFlagSeeded = 1;
constexpr std::size_t kHeaderBytes = 4 + 2 + 1 + 1 + 8 + 4;

[[noreturn]] void bad(const std::string& what) {
  throw_error(ErrorCategory::kBadMessage, "CKKS deserialization: " + what);
}

// Little-endian 64-bit loads and stores at any byte address.
inline std::uint64_t load_le64(const std::uint8_t* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}
inline void store_le64(std::uint8_t* p, std::uint64_t v) noexcept {
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
}

// AVX-512 VBMI packing of 8 residues (exactly `bits` bytes) at a time, for
// 8 <= bits <= 56. Unpack: one masked load of the group's bytes, vpermb
// gathers residue k's 8-byte window (from byte k bits / 8) into lane k, a
// per-lane shift by (k bits) mod 8 and a mask leave the residue. Pack: each
// lane shifted left by its bit offset, then every output byte is taken from
// the lane that holds its first bit, ORed with the byte of the next lane
// when that lane starts inside it (two vpermb). The index tables come from
// vbmi_tables (generic code); the target functions hold only intrinsics
// (he/avx512_ops.h says why).
#define BF_VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi")))

struct VbmiTables {
  alignas(64) std::uint8_t window[64];  // unpack: lane k byte i <- k bits / 8 + i
  alignas(64) std::uint64_t shift[8];   // (k bits) mod 8
  alignas(64) std::uint8_t first[64];   // pack: byte t <- lane byte holding bit 8t
  alignas(64) std::uint8_t second[64];  // pack: byte t <- byte 0 of the lane starting in t
  std::uint64_t first_mask = 0, second_mask = 0;
};

VbmiTables vbmi_tables(int bits) {
  VbmiTables t{};
  const auto b = static_cast<unsigned>(bits);
  for (unsigned k = 0; k < 8; ++k) {
    t.shift[k] = (k * b) % 8;
    for (unsigned i = 0; i < 8; ++i) t.window[8 * k + i] = static_cast<std::uint8_t>(k * b / 8 + i);
  }
  for (unsigned byte = 0; byte < b; ++byte) {
    const unsigned k1 = 8 * byte / b;
    t.first[byte] = static_cast<std::uint8_t>(8 * k1 + (byte - k1 * b / 8));
    t.first_mask |= std::uint64_t{1} << byte;
    const unsigned k2 = k1 + 1;
    if (k2 < 8 && k2 * b < 8 * byte + 8) {
      t.second[byte] = static_cast<std::uint8_t>(8 * k2);
      t.second_mask |= std::uint64_t{1} << byte;
    }
  }
  return t;
}

bool vbmi_usable() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vbmi");
  return ok;
}

// Returns a nonzero mask when a residue is >= q.
BF_VBMI unsigned unpack_groups_vbmi(const std::uint8_t* p, const VbmiTables& t,
                                    std::uint64_t bytes_mask, std::size_t bits, std::uint64_t mask,
                                    std::uint64_t q, std::uint64_t* out, std::size_t groups) {
  const __m512i window = _mm512_load_si512(t.window);
  const __m512i shift = _mm512_load_si512(t.shift);
  const __m512i vmask = _mm512_set1_epi64(static_cast<long long>(mask));
  const __m512i vq = _mm512_set1_epi64(static_cast<long long>(q));
  const __mmask64 load_mask = _cvtu64_mask64(bytes_mask);
  __mmask8 over = 0;
  for (std::size_t g = 0; g < groups; ++g) {
    const __m512i raw = _mm512_maskz_loadu_epi8(load_mask, p + g * bits);
    const __m512i v =
        _mm512_and_si512(_mm512_srlv_epi64(_mm512_permutexvar_epi8(window, raw), shift), vmask);
    over = static_cast<__mmask8>(over | _mm512_cmpge_epu64_mask(v, vq));
    _mm512_storeu_si512(out + 8 * g, v);
  }
  return over;
}

BF_VBMI void pack_groups_vbmi(const std::uint64_t* in, const VbmiTables& t, std::size_t bits,
                              std::uint8_t* out, std::size_t groups) {
  const __m512i shift = _mm512_load_si512(t.shift);
  const __m512i first = _mm512_load_si512(t.first);
  const __m512i second = _mm512_load_si512(t.second);
  const __mmask64 m1 = _cvtu64_mask64(t.first_mask);
  const __mmask64 m2 = _cvtu64_mask64(t.second_mask);
  for (std::size_t g = 0; g < groups; ++g) {
    const __m512i sh = _mm512_sllv_epi64(_mm512_loadu_si512(in + 8 * g), shift);
    const __m512i bytes = _mm512_or_si512(_mm512_maskz_permutexvar_epi8(m1, first, sh),
                                          _mm512_maskz_permutexvar_epi8(m2, second, sh));
    _mm512_mask_storeu_epi8(out + g * bits, m1, bytes);
  }
}

// Packs row (each value below 2^bits, bits in [1, 61]) into exactly nbytes =
// ceil(n * bits / 8) bytes, LSB first: whole 64-bit words while they fit,
// then the last bytes.
void pack_row(std::span<const std::uint64_t> row, int bits, std::uint8_t* out,
              std::size_t nbytes) noexcept {
  std::uint64_t acc = 0;  // the low `have` bits are pending
  int have = 0;
  std::size_t o = 0;
  if (bits >= 8 && bits <= 56 && vbmi_usable()) {
    const std::size_t groups = row.size() / 8;
    const VbmiTables t = vbmi_tables(bits);
    pack_groups_vbmi(row.data(), t, static_cast<std::size_t>(bits), out, groups);
    o = groups * static_cast<std::size_t>(bits);
    row = row.subspan(8 * groups);
  }
  for (const std::uint64_t v : row) {
    acc |= v << have;
    const int total = have + bits;
    if (total >= 64) {
      store_le64(out + o, acc);
      o += 8;
      // The bits of v that did not fit (none when have == 0: v << 0 fit).
      acc = have == 0 ? 0 : v >> (64 - have);
      have = total - 64;
    } else {
      have = total;
    }
  }
  for (; have > 0; have -= 8) {
    out[o++] = static_cast<std::uint8_t>(acc);
    acc >>= 8;
  }
  (void)nbytes;
}

// Unpacks row from ceil(n * bits / 8) bytes (bits in [1, 61]); false when a
// residue is not below q or the padding bits after the last residue are not
// zero. Residue j starts at bit j * bits: one unaligned 64-bit load shifted
// right by its bit offset holds it whole when offset + bits <= 64 (bits <=
// 57), else a ninth byte completes it. The check is an OR over the row, so
// the loop has no data-dependent branch.
bool unpack_row(std::span<const std::uint8_t> in, int bits, std::uint64_t q,
                std::span<std::uint64_t> row) noexcept {
  const std::size_t n = row.size();
  const std::uint8_t* p = in.data();
  const std::size_t nbytes = in.size();
  const std::uint64_t mask = (std::uint64_t{1} << bits) - 1;
  const auto ubits = static_cast<std::size_t>(bits);
  // Residues whose load (9 bytes at most) stays inside the input.
  std::size_t fast = 0;
  if (nbytes >= 9) fast = std::min(n, ((nbytes - 9) * 8) / ubits + 1);
  std::uint64_t over = 0;
  std::uint64_t* out = row.data();
  std::size_t start = 0;
  if (bits >= 8 && bits <= 56 && vbmi_usable()) {
    const std::size_t groups = n / 8;
    const VbmiTables t = vbmi_tables(bits);
    over |= unpack_groups_vbmi(p, t, (std::uint64_t{1} << bits) - 1, ubits, mask, q, out, groups);
    start = 8 * groups;
  }
  if (bits <= 57) {
    for (std::size_t j = start; j < fast; ++j) {
      const std::size_t bit = j * ubits;
      const std::uint64_t v = (load_le64(p + (bit >> 3)) >> (bit & 7)) & mask;
      over |= static_cast<std::uint64_t>(v >= q);
      out[j] = v;
    }
  } else {
    for (std::size_t j = start; j < fast; ++j) {
      const std::size_t bit = j * ubits;
      const unsigned sh = bit & 7;
      const std::uint8_t* b = p + (bit >> 3);
      // (x << 1) << (63 - sh) is x << (64 - sh), and 0 for sh = 0.
      const std::uint64_t v =
          ((load_le64(b) >> sh) | ((std::uint64_t{b[8]} << 1) << (63 - sh))) & mask;
      over |= static_cast<std::uint64_t>(v >= q);
      out[j] = v;
    }
  }
  // The last residues, a byte at a time.
  for (std::size_t j = std::max(fast, start); j < n; ++j) {
    const std::size_t bit = j * ubits;
    std::uint64_t v = 0;
    for (std::size_t k = 0; k < ubits; ++k) {
      const std::size_t at = bit + k;
      v |= static_cast<std::uint64_t>((p[at >> 3] >> (at & 7)) & 1) << k;
    }
    over |= static_cast<std::uint64_t>(v >= q);
    out[j] = v;
  }
  // Padding: the bits of the last byte after the last residue.
  const std::size_t used = n * ubits;
  if (used % 8 != 0 && nbytes > 0 && (p[nbytes - 1] >> (used % 8)) != 0) over = 1;
  return over == 0;
}

class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) { le(v, 2); }
  void u32(std::uint32_t v) { le(v, 4); }
  void u64(std::uint64_t v) { le(v, 8); }
  void f64(double v) { u64(std::bit_cast<std::uint64_t>(v)); }
  void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void header(const CkksContext& ctx, ObjectType type, std::uint8_t flags) {
    bytes(kMagic);
    u16(kSerializationVersion);
    u8(static_cast<std::uint8_t>(type));
    u8(flags);
    u64(ctx.id());
    u32(static_cast<std::uint32_t>(ctx.n()));
  }
  // n residues of `bits` bits each (n * bits is a multiple of 8: n >= 8),
  // written a 64-bit word at a time.
  void packed(std::span<const std::uint64_t> row, int bits) {
    const std::size_t nbytes = (row.size() * static_cast<std::size_t>(bits) + 7) / 8;
    const std::size_t at = out_.size();
    out_.resize(at + nbytes);
    pack_row(row, bits, out_.data() + at, nbytes);
  }
  std::vector<std::uint8_t> take() { return std::move(out_); }
  void reserve(std::size_t n) { out_.reserve(n); }

 private:
  void le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  std::vector<std::uint8_t> out_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}
  std::size_t remaining() const noexcept { return in_.size() - pos_; }
  std::span<const std::uint8_t> take(std::size_t n, const char* what) {
    if (n > remaining()) {
      bad(std::string("truncated ") + what + " (" + std::to_string(n) + " bytes needed, " +
          std::to_string(remaining()) + " left)");
    }
    const auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::uint64_t le(int n, const char* what) {
    const auto s = take(static_cast<std::size_t>(n), what);
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= std::uint64_t{s[static_cast<std::size_t>(i)]} << (8 * i);
    return v;
  }
  std::uint8_t u8(const char* w) { return static_cast<std::uint8_t>(le(1, w)); }
  std::uint32_t u32(const char* w) { return static_cast<std::uint32_t>(le(4, w)); }
  std::uint64_t u64(const char* w) { return le(8, w); }
  double f64(const char* w) { return std::bit_cast<double>(u64(w)); }
  Seed seed() {
    Seed s;
    const auto b = take(s.size(), "seed");
    std::copy(b.begin(), b.end(), s.begin());
    return s;
  }
  // Unpacks n residues of q's bit length; each must be below q.
  void packed(std::span<std::uint64_t> row, const Modulus& q, const char* what) {
    const int bits = q.bits();
    const std::size_t nbytes = (row.size() * static_cast<std::size_t>(bits) + 7) / 8;
    const auto b = take(nbytes, what);
    if (!unpack_row(b, bits, q.value(), row)) {
      for (std::uint64_t v : row) {
        if (v >= q.value()) {
          bad(std::string(what) + ": residue " + std::to_string(v) + " is not below its modulus " +
              std::to_string(q.value()));
        }
      }
      bad(std::string(what) + ": nonzero padding bits");
    }
  }
  // The common header; returns the flags.
  std::uint8_t header(const CkksContext& ctx, ObjectType type, std::uint8_t allowed_flags) {
    const auto m = take(4, "magic");
    if (!std::equal(m.begin(), m.end(), kMagic)) bad("not a Blindfold HE object (bad magic)");
    const auto version = static_cast<std::uint16_t>(le(2, "version"));
    if (version != kSerializationVersion) {
      bad("format version " + std::to_string(version) + " (this build reads " +
          std::to_string(kSerializationVersion) + ")");
    }
    const std::uint8_t t = u8("type");
    if (t != static_cast<std::uint8_t>(type)) {
      bad("object type " + std::to_string(t) + ", expected " +
          std::to_string(static_cast<int>(type)));
    }
    const std::uint8_t flags = u8("flags");
    if ((flags & ~allowed_flags) != 0) bad("unknown flags " + std::to_string(flags));
    if (u64("context id") != ctx.id()) bad("the object belongs to another CKKS context");
    if (u32("ring degree") != ctx.n()) bad("ring degree differs from the context's");
    return flags;
  }
  void finish() {
    if (remaining() != 0) bad(std::to_string(remaining()) + " trailing bytes");
  }

 private:
  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

void check_id(const CkksContext& ctx, std::uint64_t id, const char* what) {
  if (id != ctx.id()) {
    throw_error(ErrorCategory::kBadInput, std::string("save: ") + what + " of another context");
  }
}

std::size_t packed_bytes(const CkksContext& ctx, std::size_t rows_from, std::size_t rows_to) {
  std::size_t bits = 0;
  for (std::size_t i = rows_from; i < rows_to; ++i) bits += ctx.modulus(i).bits();
  return bits * ctx.n() / 8;
}

double read_scale(Reader& r) {
  const double scale = r.f64("scale");
  if (!std::isfinite(scale) || !(scale > 0)) bad("scale is not finite and positive");
  return scale;
}

int read_level(Reader& r, const CkksContext& ctx) {
  const std::uint32_t level = r.u32("level");
  if (level > static_cast<std::uint32_t>(ctx.max_level())) {
    bad("level " + std::to_string(level) + " above the context's " +
        std::to_string(ctx.max_level()));
  }
  return static_cast<int>(level);
}

// The body of a key-switching key (relin and Galois keys).
void write_switch_key(Writer& w, const CkksContext& ctx, const KeySwitchKey& k) {
  check_id(ctx, k.context_id, "key-switching key");
  w.u32(static_cast<std::uint32_t>(k.dnum));
  w.bytes(k.a_seed);
  for (std::size_t j = 0; j < k.dnum; ++j) {
    for (std::size_t i = 0; i < ctx.key_size(); ++i) w.packed(k.b_row(j, i), ctx.modulus(i).bits());
  }
}

KeySwitchKey read_switch_key(Reader& r, const CkksContext& ctx) {
  KeySwitchKey k;
  k.context_id = ctx.id();
  k.n = ctx.n();
  k.key_size = ctx.key_size();
  const std::uint32_t dnum = r.u32("dnum");
  if (dnum != ctx.dnum()) {
    bad("key with " + std::to_string(dnum) + " digits; the context has " +
        std::to_string(ctx.dnum()));
  }
  k.dnum = dnum;
  k.a_seed = r.seed();
  const std::size_t n = ctx.n();
  // Check the length before allocating.
  if (r.remaining() < k.dnum * packed_bytes(ctx, 0, ctx.key_size())) bad("truncated key");
  k.b.resize(k.dnum * k.key_size * n);
  k.a.resize(k.b.size());
  for (std::size_t j = 0; j < k.dnum; ++j) {
    for (std::size_t i = 0; i < k.key_size; ++i) {
      const std::size_t off = (j * k.key_size + i) * n;
      r.packed({k.b.data() + off, n}, ctx.modulus(i), "key");
      expand_uniform(k.a_seed, kKeySwitchStream + j * k.key_size + i, ctx.modulus(i),
                     {k.a.data() + off, n});
    }
  }
  return k;
}

}  // namespace

std::vector<std::uint8_t> save(const CkksContext& ctx, const Ciphertext& ct, bool allow_seeded) {
  check_id(ctx, ct.context_id(), "ciphertext");
  const bool seeded = allow_seeded && ct.seed().has_value() && ct.size() == 2;
  Writer w;
  w.reserve(kHeaderBytes + 48 + (seeded ? 1 : ct.size()) * packed_bytes(ctx, 0, ct.primes()));
  w.header(ctx, ObjectType::kCiphertext, seeded ? kFlagSeeded : 0);
  w.u32(static_cast<std::uint32_t>(ct.level()));
  w.u32(static_cast<std::uint32_t>(ct.size()));
  w.f64(ct.scale());
  if (seeded) w.bytes(*ct.seed());
  for (std::size_t k = 0; k < (seeded ? 1 : ct.size()); ++k) {
    for (std::size_t i = 0; i < ct.primes(); ++i) w.packed(ct.row(k, i), ctx.modulus(i).bits());
  }
  return w.take();
}

Ciphertext load_ciphertext(const CkksContext& ctx, std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  const bool seeded = (r.header(ctx, ObjectType::kCiphertext, kFlagSeeded) & kFlagSeeded) != 0;
  const int level = read_level(r, ctx);
  const std::uint32_t size = r.u32("size");
  if (size < 2 || size > 3 || (seeded && size != 2)) {
    bad("ciphertext size " + std::to_string(size));
  }
  const double scale = read_scale(r);
  Seed seed{};
  if (seeded) seed = r.seed();
  const std::size_t stored = seeded ? 1 : size;
  if (r.remaining() != stored * packed_bytes(ctx, 0, static_cast<std::size_t>(level + 1))) {
    bad("ciphertext body of " + std::to_string(r.remaining()) + " bytes, expected " +
        std::to_string(stored * packed_bytes(ctx, 0, static_cast<std::size_t>(level + 1))));
  }
  // Built field by field (load_ciphertext is a friend of Ciphertext) so
  // that its data is not zero-filled first: every residue is written below.
  Ciphertext ct;
  ct.context_id_ = ctx.id();
  ct.n_ = ctx.n();
  ct.level_ = level;
  ct.scale_ = scale;
  ct.size_ = size;
  ct.data_.resize(size * static_cast<std::size_t>(level + 1) * ctx.n());
  for (std::size_t k = 0; k < stored; ++k) {
    for (std::size_t i = 0; i < ct.primes(); ++i) {
      r.packed(ct.mutable_row(k, i), ctx.modulus(i), "ciphertext");
    }
  }
  if (seeded) {
    for (std::size_t i = 0; i < ct.primes(); ++i) {
      expand_uniform(seed, kCiphertextStream + i, ctx.modulus(i), ct.mutable_row(1, i));
    }
    ct.set_seed(seed);
  }
  r.finish();
  return ct;
}

std::vector<std::uint8_t> save(const CkksContext& ctx, const Plaintext& pt) {
  check_id(ctx, pt.context_id(), "plaintext");
  Writer w;
  w.header(ctx, ObjectType::kPlaintext, 0);
  w.u32(static_cast<std::uint32_t>(pt.level()));
  w.f64(pt.scale());
  for (std::size_t i = 0; i < pt.primes(); ++i) w.packed(pt.row(i), ctx.modulus(i).bits());
  return w.take();
}

Plaintext load_plaintext(const CkksContext& ctx, std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  r.header(ctx, ObjectType::kPlaintext, 0);
  const int level = read_level(r, ctx);
  const double scale = read_scale(r);
  if (r.remaining() != packed_bytes(ctx, 0, static_cast<std::size_t>(level + 1))) {
    bad("plaintext body of the wrong length");
  }
  Plaintext pt(ctx.id(), ctx.n(), level, scale);
  for (std::size_t i = 0; i < pt.primes(); ++i) r.packed(pt.row(i), ctx.modulus(i), "plaintext");
  r.finish();
  return pt;
}

std::vector<std::uint8_t> save(const CkksContext& ctx, const PublicKey& pk) {
  check_id(ctx, pk.context_id, "public key");
  Writer w;
  w.header(ctx, ObjectType::kPublicKey, kFlagSeeded);
  w.bytes(pk.a_seed);
  for (std::size_t i = 0; i < ctx.key_size(); ++i) {
    w.packed({pk.b.data() + i * ctx.n(), ctx.n()}, ctx.modulus(i).bits());
  }
  return w.take();
}

PublicKey load_public_key(const CkksContext& ctx, std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  if (r.header(ctx, ObjectType::kPublicKey, kFlagSeeded) != kFlagSeeded) {
    bad("public key without its seed flag");
  }
  PublicKey pk;
  pk.context_id = ctx.id();
  pk.a_seed = r.seed();
  const std::size_t n = ctx.n();
  if (r.remaining() != packed_bytes(ctx, 0, ctx.key_size())) bad("public key of the wrong length");
  pk.b.resize(ctx.key_size() * n);
  pk.a.resize(pk.b.size());
  for (std::size_t i = 0; i < ctx.key_size(); ++i) {
    r.packed({pk.b.data() + i * n, n}, ctx.modulus(i), "public key");
    expand_uniform(pk.a_seed, kPublicKeyStream + i, ctx.modulus(i), {pk.a.data() + i * n, n});
  }
  r.finish();
  return pk;
}

std::vector<std::uint8_t> save(const CkksContext& ctx, const RelinKeys& rk) {
  Writer w;
  w.header(ctx, ObjectType::kRelinKeys, kFlagSeeded);
  write_switch_key(w, ctx, rk.key);
  return w.take();
}

RelinKeys load_relin_keys(const CkksContext& ctx, std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  if (r.header(ctx, ObjectType::kRelinKeys, kFlagSeeded) != kFlagSeeded) {
    bad("relinearization key without its seed flag");
  }
  RelinKeys rk{read_switch_key(r, ctx)};
  r.finish();
  return rk;
}

std::vector<std::uint8_t> save(const CkksContext& ctx, const GaloisKeys& gk) {
  check_id(ctx, gk.context_id, "Galois keys");
  Writer w;
  w.header(ctx, ObjectType::kGaloisKeys, kFlagSeeded);
  w.u32(static_cast<std::uint32_t>(gk.keys.size()));
  for (const auto& [g, entry] : gk.keys) {
    w.u64(g);
    write_switch_key(w, ctx, entry.key);
  }
  return w.take();
}

GaloisKeys load_galois_keys(const CkksContext& ctx, std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  if (r.header(ctx, ObjectType::kGaloisKeys, kFlagSeeded) != kFlagSeeded) {
    bad("Galois keys without their seed flag");
  }
  GaloisKeys gk;
  gk.context_id = ctx.id();
  const std::uint32_t count = r.u32("key count");
  // Each key takes at least its packed rows; N distinct odd elements exist.
  const std::size_t per_key = 8 + 4 + 32 + ctx.dnum() * packed_bytes(ctx, 0, ctx.key_size());
  if (count > ctx.n() || count * per_key > r.remaining()) {
    bad(std::to_string(count) + " Galois keys do not fit in " + std::to_string(r.remaining()) +
        " bytes");
  }
  for (std::uint32_t c = 0; c < count; ++c) {
    const std::uint64_t g = r.u64("Galois element");
    if (g % 2 == 0 || g < 3 || g >= 2 * ctx.n()) {
      bad("Galois element " + std::to_string(g) + " is not odd in [3, 2N)");
    }
    if (gk.has(g)) bad("Galois element " + std::to_string(g) + " appears twice");
    GaloisKeys::Entry entry;
    entry.key = read_switch_key(r, ctx);
    entry.perm = galois_permutation(g, ctx.n());
    gk.keys.emplace(g, std::move(entry));
  }
  r.finish();
  return gk;
}

std::vector<std::uint8_t> save_secret_key(const CkksContext& ctx, const SecretKey& sk) {
  check_id(ctx, sk.context_id(), "secret key");
  Writer w;
  // Exact size up front: no reallocation leaves copies of the key behind.
  w.reserve(kHeaderBytes + packed_bytes(ctx, 0, ctx.key_size()));
  w.header(ctx, ObjectType::kSecretKey, 0);
  for (std::size_t i = 0; i < ctx.key_size(); ++i) w.packed(sk.row(i), ctx.modulus(i).bits());
  return w.take();
}

SecretKey load_secret_key(const CkksContext& ctx, std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  r.header(ctx, ObjectType::kSecretKey, 0);
  if (r.remaining() != packed_bytes(ctx, 0, ctx.key_size())) bad("secret key of the wrong length");
  SecretKey sk(ctx.id(), ctx.n(), ctx.key_size());
  for (std::size_t i = 0; i < ctx.key_size(); ++i)
    r.packed(sk.row(i), ctx.modulus(i), "secret key");
  r.finish();
  return sk;
}

}  // namespace blindfold::he
