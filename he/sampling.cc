#include "he/sampling.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "he/avx512_ops.h"

namespace blindfold::he {
namespace {

constexpr std::size_t kChunk = 4096;

// AES-256-CTR key stream with VAES (four blocks per 512-bit instruction),
// for expand_uniform: OpenSSL 3.0 runs CTR with 128-bit AES-NI only, and the
// expansion of c1 is about half of a seeded ciphertext's load. The stream is
// bit for bit OpenSSL's (sampling_test compares them): AES-256 with the
// FIPS-197 key schedule (Intel's AES-NI white paper, Gueron 2010, figure
// 33), counter block i = (stream, i) as two big-endian 64-bit words.
// Only intrinsics under the target attributes (he/avx512_ops.h says why).
#define BF_AESNI __attribute__((target("aes,sse4.1")))
#define BF_VAES __attribute__((target("avx512f,avx512bw,vaes,aes")))

BF_AESNI BF_INLINE __m128i key_assist_1(__m128i t1, __m128i t2) {
  t2 = _mm_shuffle_epi32(t2, 0xff);
  __m128i t4 = _mm_slli_si128(t1, 4);
  t1 = _mm_xor_si128(t1, t4);
  t4 = _mm_slli_si128(t4, 4);
  t1 = _mm_xor_si128(t1, t4);
  t4 = _mm_slli_si128(t4, 4);
  t1 = _mm_xor_si128(t1, t4);
  return _mm_xor_si128(t1, t2);
}

BF_AESNI BF_INLINE __m128i key_assist_2(__m128i t1, __m128i t3) {
  const __m128i t2 = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(t1, 0x0), 0xaa);
  __m128i t4 = _mm_slli_si128(t3, 4);
  t3 = _mm_xor_si128(t3, t4);
  t4 = _mm_slli_si128(t4, 4);
  t3 = _mm_xor_si128(t3, t4);
  t4 = _mm_slli_si128(t4, 4);
  t3 = _mm_xor_si128(t3, t4);
  return _mm_xor_si128(t3, t2);
}

// The 15 round keys of AES-256.
BF_AESNI void aes256_key_schedule(const std::uint8_t* key, __m128i* rk) {
  __m128i t1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key));
  __m128i t3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key + 16));
  rk[0] = t1;
  rk[1] = t3;
#define BF_AES_ROUND(i, rcon)                                 \
  t1 = key_assist_1(t1, _mm_aeskeygenassist_si128(t3, rcon)); \
  rk[i] = t1;                                                 \
  t3 = key_assist_2(t1, t3);                                  \
  rk[(i) + 1] = t3;
  BF_AES_ROUND(2, 0x01)
  BF_AES_ROUND(4, 0x02)
  BF_AES_ROUND(6, 0x04)
  BF_AES_ROUND(8, 0x08)
  BF_AES_ROUND(10, 0x10)
  BF_AES_ROUND(12, 0x20)
#undef BF_AES_ROUND
  t1 = key_assist_1(t1, _mm_aeskeygenassist_si128(t3, 0x40));
  rk[14] = t1;
}

// Blocks [first, first + 16 * groups) of the key stream, 16 at a time.
BF_VAES void aes256_ctr_vaes(const __m128i* rk, std::uint64_t stream, std::uint64_t first,
                             std::uint8_t* out, std::size_t groups) {
  __m512i k[15];
  for (int r = 0; r < 15; ++r) k[r] = _mm512_broadcast_i32x4(rk[r]);
  // Byte reversal within each 64-bit word: native counters -> big-endian.
  const __m512i bswap = _mm512_set_epi64(0x08090a0b0c0d0e0f, 0x0001020304050607, 0x08090a0b0c0d0e0f,
                                         0x0001020304050607, 0x08090a0b0c0d0e0f, 0x0001020304050607,
                                         0x08090a0b0c0d0e0f, 0x0001020304050607);
  const auto s = static_cast<long long>(stream);
  const auto c = static_cast<long long>(first);
  __m512i ctr = _mm512_set_epi64(c + 3, s, c + 2, s, c + 1, s, c, s);
  const __m512i four = _mm512_set_epi64(4, 0, 4, 0, 4, 0, 4, 0);
  for (std::size_t g = 0; g < groups; ++g) {
    __m512i b[4];
    for (int j = 0; j < 4; ++j) {
      b[j] = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, bswap), k[0]);
      ctr = _mm512_add_epi64(ctr, four);
    }
    for (int r = 1; r < 14; ++r) {
      for (int j = 0; j < 4; ++j) b[j] = _mm512_aesenc_epi128(b[j], k[r]);
    }
    for (int j = 0; j < 4; ++j) {
      _mm512_storeu_si512(out + 64 * (4 * g + static_cast<std::size_t>(j)),
                          _mm512_aesenclast_epi128(b[j], k[14]));
    }
  }
}

// Keeps, in order, the words w & mask that are below q: out[0..] gets them
// 8 candidates at a time (vpcompressq) while 8 more fit below `room`.
// Returns {candidates read, words written}.
struct Filtered {
  std::size_t read, written;
};
BF_VAES Filtered filter_below_avx512(const std::uint64_t* in, std::size_t words, std::uint64_t mask,
                                     std::uint64_t q, std::uint64_t* out, std::size_t room) {
  const __m512i vmask = _mm512_set1_epi64(static_cast<long long>(mask));
  const __m512i vq = _mm512_set1_epi64(static_cast<long long>(q));
  std::size_t r = 0, w = 0;
  for (; r + 8 <= words && w + 8 <= room; r += 8) {
    const __m512i v = _mm512_and_si512(_mm512_loadu_si512(in + r), vmask);
    const __mmask8 keep = _mm512_cmplt_epu64_mask(v, vq);
    _mm512_mask_compressstoreu_epi64(out + w, keep, v);
    w += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(keep)));
  }
  return {r, w};
}

bool vaes_usable() {
  static const bool ok = __builtin_cpu_supports("vaes") && __builtin_cpu_supports("aes") &&
                         __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return ok;
}

}  // namespace

void sample_ternary(Prg& prg, std::span<std::int8_t> out) {
  std::array<std::uint8_t, kChunk> buf;
  std::size_t pos = kChunk;
  for (std::size_t i = 0; i < out.size();) {
    if (pos == kChunk) {
      prg.fill(buf);
      pos = 0;
    }
    const std::uint8_t b = buf[pos++];
    // 255 = 3 * 85: accepting b < 255 makes b mod 3 exactly uniform. Whether
    // a byte is rejected does not depend on the value it would have given.
    if (b < 255) out[i++] = static_cast<std::int8_t>(b % 3) - 1;
  }
  secure_wipe(std::span<std::uint8_t>(buf));
}

void sample_cbd(Prg& prg, std::span<std::int8_t> out) {
  static_assert(2 * kCbdK <= 64);
  constexpr std::uint64_t kMask = (std::uint64_t{1} << kCbdK) - 1;
  std::array<std::uint64_t, kChunk / 8> buf;
  std::size_t pos = buf.size();
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (pos == buf.size()) {
      prg.fill(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(buf.data()), sizeof buf));
      pos = 0;
    }
    const std::uint64_t x = buf[pos++];
    out[i] =
        static_cast<std::int8_t>(std::popcount(x & kMask) - std::popcount((x >> kCbdK) & kMask));
  }
  secure_wipe(std::span<std::uint64_t>(buf));
}

void small_to_residues(std::span<const std::int8_t> small, const Modulus& q,
                       std::span<std::uint64_t> out) {
  const std::uint64_t m = q.value();
  for (std::size_t i = 0; i < small.size(); ++i) {
    const auto v = static_cast<std::int64_t>(small[i]);
    // v + q when v < 0, without a branch on the secret sign.
    out[i] = static_cast<std::uint64_t>(v) + (m & static_cast<std::uint64_t>(v >> 63));
  }
}

void signed_to_residues(std::span<const std::int64_t> v, const Modulus& q,
                        std::span<std::uint64_t> out) {
  const std::uint64_t m = q.value();
  const std::size_t n = v.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t x = v[i];
    const std::uint64_t neg = static_cast<std::uint64_t>(x >> 63);  // all ones when x < 0
    const std::uint64_t mag = barrett_reduce_64((static_cast<std::uint64_t>(x) ^ neg) - neg, q);
    // mag when x >= 0, else q - mag (0 when mag = 0).
    const std::uint64_t negated = mag == 0 ? 0 : m - mag;
    out[i] = (mag & ~neg) | (negated & neg);
  }
}

void small_signed_to_residues(std::span<const std::int64_t> v, const Modulus& q,
                              std::span<std::uint64_t> out) {
  const std::uint64_t m = q.value();
  const std::size_t n = v.size();
  const std::int64_t* in = v.data();
  std::uint64_t* o = out.data();
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t x = in[i];
    // x + q when x < 0, without a branch on the secret sign.
    o[i] = static_cast<std::uint64_t>(x) + (m & static_cast<std::uint64_t>(x >> 63));
  }
}

void expand_uniform(const Seed& seed, std::uint64_t stream, const Modulus& q,
                    std::span<std::uint64_t> out) {
  expand_uniform(
      seed, stream, q, out,
      vaes_usable() && std::endian::native == std::endian::little ? Isa::kAvx512 : Isa::kScalar);
}

void expand_uniform(const Seed& seed, std::uint64_t stream, const Modulus& q,
                    std::span<std::uint64_t> out, Isa isa) {
  if (isa != Isa::kScalar) {
    if (!vaes_usable() || std::endian::native != std::endian::little) {
      throw Error(ErrorCategory::kUnsupported, "expand_uniform: no VAES and AVX-512BW here");
    }
    // The same words from the VAES key stream, 2 KiB words (16 KiB, in L1)
    // at a time, filtered into `out`.
    const std::uint64_t mask =
        q.bits() >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << q.bits()) - 1;
    __m128i rk[15];
    aes256_key_schedule(seed.data(), rk);
    alignas(64) std::uint64_t buf[2048];
    std::uint64_t block = 0;
    std::size_t filled = 0;
    std::uint64_t* const o = out.data();
    while (filled < out.size()) {
      // Enough 16-block groups for the missing words (a few spare).
      const std::size_t missing = out.size() - filled;
      const std::size_t groups = std::min<std::size_t>(sizeof buf / 256, (missing + 31) / 32);
      aes256_ctr_vaes(rk, stream, block, reinterpret_cast<std::uint8_t*>(buf), groups);
      block += 16 * groups;
      const std::size_t words = 32 * groups;
      const Filtered f =
          filter_below_avx512(buf, words, mask, q.value(), o + filled, out.size() - filled);
      std::size_t r = f.read;
      filled += f.written;
      for (; r < words && filled < out.size(); ++r) {
        const std::uint64_t v = buf[r] & mask;
        o[filled] = v;
        filled += static_cast<std::size_t>(v < q.value());
      }
      if (r < words) break;  // done; the rest of the chunk is unused
    }
    return;
  }
  // The key stream of Prg(seed, stream) (AES-256-CTR, the stream number in
  // the high half of the initial counter block), generated straight into
  // `out` in large chunks by OpenSSL rather than through Prg's 4 KiB buffer,
  // then filtered in place: word w of the stream (little-endian) is kept as
  // w & mask when below q. The words kept, and so the output, are exactly
  // those of a word-by-word loop over Prg(seed, stream); the values are
  // public (c1 = a is sent or re-expanded), so nothing needs wiping.
  const std::uint64_t mask =
      q.bits() >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << q.bits()) - 1;
  std::unique_ptr<EVP_CIPHER_CTX, void (*)(EVP_CIPHER_CTX*)> ctx(EVP_CIPHER_CTX_new(),
                                                                 EVP_CIPHER_CTX_free);
  std::uint8_t iv[16] = {};
  for (int i = 0; i < 8; ++i) iv[i] = static_cast<std::uint8_t>(stream >> (56 - 8 * i));
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_ctr(), nullptr, seed.data(), iv) != 1) {
    throw Error(ErrorCategory::kInternal, "cannot initialise AES-256-CTR");
  }
  // Zeros to encrypt (CTR: the cipher text of zeros is the key stream).
  static const std::array<std::uint8_t, 16384> kZeros{};
  std::uint64_t* const o = out.data();
  std::size_t filled = 0;
  while (filled < out.size()) {
    // Key stream for the words still missing, written over them.
    std::size_t words = out.size() - filled;
    std::uint8_t* const dst = reinterpret_cast<std::uint8_t*>(o + filled);
    for (std::size_t done = 0; done < words * 8;) {
      const int len = static_cast<int>(std::min(words * 8 - done, kZeros.size()));
      int got = 0;
      if (EVP_EncryptUpdate(ctx.get(), dst + done, &got, kZeros.data(), len) != 1 || got != len) {
        throw Error(ErrorCategory::kInternal, "AES-256-CTR key stream failed");
      }
      done += static_cast<std::size_t>(len);
    }
    // Keep the words below q, in order (in place: the write index never
    // passes the read index).
    std::size_t w = filled;
    for (std::size_t r = filled; r < filled + words; ++r) {
      std::uint64_t v = o[r];
      if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
      v &= mask;
      o[w] = v;
      w += static_cast<std::size_t>(v < q.value());
    }
    filled = w;
  }
}

void secure_wipe(void* data, std::size_t bytes) noexcept {
  // memset at full speed, then an empty asm statement that takes the pointer
  // and clobbers memory: the compiler must assume the zeros are read, so it
  // cannot drop the memset as a dead store (the idiom of explicit_bzero).
  if (bytes == 0) return;
  std::memset(data, 0, bytes);
  asm volatile("" : : "r"(data) : "memory");
}

}  // namespace blindfold::he
