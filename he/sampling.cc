#include "he/sampling.h"

#include <array>
#include <bit>
#include <cstring>

namespace blindfold::he {
namespace {

constexpr std::size_t kChunk = 4096;

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

void expand_uniform(const Seed& seed, std::uint64_t stream, const Modulus& q,
                    std::span<std::uint64_t> out) {
  Prg prg(seed, stream);
  const std::uint64_t mask =
      q.bits() >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << q.bits()) - 1;
  std::array<std::uint64_t, kChunk / 8> buf;
  std::size_t pos = buf.size();
  for (std::size_t i = 0; i < out.size();) {
    if (pos == buf.size()) {
      prg.fill(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(buf.data()), sizeof buf));
      pos = 0;
    }
    const std::uint64_t v = buf[pos++] & mask;
    if (v < q.value()) out[i++] = v;
  }
}

void secure_wipe(void* data, std::size_t bytes) noexcept {
  volatile std::uint8_t* p = static_cast<volatile std::uint8_t*>(data);
  for (std::size_t i = 0; i < bytes; ++i) p[i] = 0;
  // Also tell the compiler the memory is observed.
  asm volatile("" : : "r"(data) : "memory");
}

}  // namespace blindfold::he
