#include "he/sampling.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "he/avx512_ops.h"
#include "he/isa.h"

namespace blindfold::he {
namespace {

constexpr std::size_t kChunk = 4096;

// Keeps, in order, the words w & mask that are below q: out[0..] gets them
// 8 candidates at a time (vpcompressq) while 8 more fit below `room`.
// Returns {candidates read, words written}. Not cryptography: it only
// selects words of OpenSSL's key stream. `out` may equal `in` (a store
// never passes the words already read). Only intrinsics under the target
// attribute (he/avx512_ops.h says why).
struct Filtered {
  std::size_t read, written;
};
BF_AVX512 Filtered filter_below_avx512(const std::uint64_t* in, std::size_t words,
                                       std::uint64_t mask, std::uint64_t q, std::uint64_t* out,
                                       std::size_t room) {
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
    // passes the read index), 8 at a time with AVX-512 where the CPU has it.
    std::size_t w = filled;
    std::size_t r = filled;
    if (std::endian::native == std::endian::little && isa_supported(Isa::kAvx512)) {
      const Filtered f = filter_below_avx512(o + filled, words, mask, q.value(), o + filled, words);
      r += f.read;
      w += f.written;
    }
    for (; r < filled + words; ++r) {
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
