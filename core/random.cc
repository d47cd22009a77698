#include "core/random.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <limits>

#include "core/error.h"

namespace blindfold {

void os_random(std::span<std::uint8_t> out) {
  // RAND_bytes takes an int length; fill in chunks.
  std::size_t done = 0;
  while (done < out.size()) {
    const int n = static_cast<int>(std::min<std::size_t>(out.size() - done, 1 << 30));
    if (RAND_bytes(out.data() + done, n) != 1) {
      throw Error(ErrorCategory::kInternal, "the OpenSSL CSPRNG failed (RAND_bytes)");
    }
    done += static_cast<std::size_t>(n);
  }
}

Seed random_seed() {
  Seed s;
  os_random(s);
  return s;
}

struct Prg::Impl {
  EVP_CIPHER_CTX* ctx = nullptr;
  std::array<std::uint8_t, 4096> buf{};
  std::size_t pos = 4096;
  ~Impl() {
    OPENSSL_cleanse(buf.data(), buf.size());
    EVP_CIPHER_CTX_free(ctx);  // also wipes the expanded key
  }
};

Prg::Prg(const Seed& seed, std::uint64_t stream) : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_CIPHER_CTX_new();
  std::uint8_t iv[16] = {};
  for (int i = 0; i < 8; ++i) iv[i] = static_cast<std::uint8_t>(stream >> (56 - 8 * i));
  if (!impl_->ctx ||
      EVP_EncryptInit_ex(impl_->ctx, EVP_aes_256_ctr(), nullptr, seed.data(), iv) != 1) {
    throw Error(ErrorCategory::kInternal, "cannot initialise AES-256-CTR");
  }
}

Prg Prg::from_os() {
  Seed s = random_seed();
  Prg p(s);
  OPENSSL_cleanse(s.data(), s.size());
  return p;
}

Prg::~Prg() = default;
Prg::Prg(Prg&&) noexcept = default;
Prg& Prg::operator=(Prg&&) noexcept = default;

void Prg::refill() {
  // Encrypting zeros in CTR mode yields the key stream.
  static const std::array<std::uint8_t, 4096> kZeros{};
  int len = 0;
  if (EVP_EncryptUpdate(impl_->ctx, impl_->buf.data(), &len, kZeros.data(),
                        static_cast<int>(kZeros.size())) != 1 ||
      len != static_cast<int>(kZeros.size())) {
    throw Error(ErrorCategory::kInternal, "AES-256-CTR key stream failed");
  }
  impl_->pos = 0;
}

void Prg::fill(std::span<std::uint8_t> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    if (impl_->pos == impl_->buf.size()) refill();
    const std::size_t n = std::min(out.size() - done, impl_->buf.size() - impl_->pos);
    std::memcpy(out.data() + done, impl_->buf.data() + impl_->pos, n);
    OPENSSL_cleanse(impl_->buf.data() + impl_->pos, n);
    impl_->pos += n;
    done += n;
  }
}

std::uint64_t Prg::next_u64() {
  std::uint64_t v;
  fill({reinterpret_cast<std::uint8_t*>(&v), sizeof v});
  return v;
}

std::uint64_t Prg::uniform(std::uint64_t bound) {
  if (bound == 0) throw Error(ErrorCategory::kInternal, "Prg::uniform with bound 0");
  // Accept v below the largest multiple of bound: exactly uniform.
  const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() -
                              std::numeric_limits<std::uint64_t>::max() % bound;
  for (;;) {
    const std::uint64_t v = next_u64();
    if (v < limit) return v % bound;
  }
}

void Prg::uniform(std::span<std::uint64_t> out, std::uint64_t bound) {
  for (auto& v : out) v = uniform(bound);
}

}  // namespace blindfold
