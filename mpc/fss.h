// Function secret sharing for comparisons (mpc/ kernels; no parties, no
// network). A dealer splits a function into two keys; each key alone is
// pseudorandom, and the two parties' evaluations on the same public input
// add up to the function's value.
//
// Construction: the distributed comparison function (DCF) of Boyle, Chandran,
// Gilboa, Gupta, Ishai, Kumar and Rathee, "Function Secret Sharing for
// Mixed-Mode and Fixed-Point Secure Computation", Eurocrypt 2021 (ePrint
// 2020/1392), Fig. 3: f_{alpha,beta}(x) = beta if x < alpha else 0, with the
// payload group G = Z_2^64 x Z_2^64. Its PRG is fixed-key AES-128 in
// Matyas-Meyer-Oseas form, G_j(s) = AES_K(s ^ j) ^ s ^ j (Guo, Katz, Wang,
// Yu, "Efficient and Secure Multiparty Computation from Fixed-Key Block
// Ciphers", S&P 2020), with AES from OpenSSL (EVP, ECB over whole batches).
// Both keys of one DCF share the same correction words; they differ only in
// the root seed (and the party bit), so a dealer derives each party's root
// seed from a PRG it shares with that party and sends only the correction
// words.
//
// The ReLU/DReLU gate on top (masked-input paradigm of the same paper and of
// LLAMA/Orca/SIGMA): the parties hold additive shares of x in Z_2^64 and of a
// dealer mask r; they open xhat = x + r (one round) and each evaluates its key
// on xhat locally, obtaining additive shares of DReLU(x) = 1{x >= 0 as int64}
// and of ReLU(x) = DReLU(x) * x. With m_r = MSB(r), the borrow
// c = 1{xhat mod 2^63 < r mod 2^63} gives MSB(x) = MSB(xhat) ^ m_r ^ c. The DCF
// (domain 63 bits, alpha = r mod 2^63) carries beta = ((1 - 2 m_r),
// (1 - 2 m_r) r), so the parties get shares of c' = c (1 - 2 m_r) and c' r;
// with dealer shares of m_r and m_r * r, u = m_r ^ c = m_r + c' and
// u r = m_r r + c' r are linear, and so are DReLU = (MSB(xhat) ? u : 1 - u) and
// ReLU = DReLU * xhat - DReLU * r. Exact for every x in Z_2^64 (no
// approximation, no error probability).
//
// Key size per gate: 63 levels x (16-byte seed CW + 16-byte payload CW + 2
// bits) + a 16-byte final CW = 2,048 bytes, sent by the dealer to both
// parties; evaluation costs 2 AES blocks per level (126 per gate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/random.h"
#include "mpc/ring.h"

namespace blindfold::mpc::fss {

/// A 128-bit PRG seed / group element of G = Z_2^64 x Z_2^64.
struct Block {
  u64 lo = 0, hi = 0;
  friend bool operator==(const Block&, const Block&) = default;
};

namespace detail {
/// OPENSSL_cleanse(p, n).
void wipe(void* p, std::size_t n) noexcept;
/// An allocator that wipes memory before freeing it (reallocation too), for
/// vectors of secret key material.
template <class T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() = default;
  template <class U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    wipe(p, n * sizeof(T));
    std::allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};
template <class T>
using SecretVector = std::vector<T, WipingAllocator<T>>;
}  // namespace detail

// ---- the DCF itself (exposed for tests and other gates) ------------------

/// Correction words of `count` DCF keys over a domain of `bits` bits
/// (1..64), stored level-major so that evaluation runs level by level over
/// the whole batch. Identical for both parties.
struct DcfCorrections {
  int bits = 0;
  std::size_t count = 0;
  std::vector<Block> seed_cw;   // [bits * count]   level-major
  std::vector<Block> value_cw;  // [bits * count]   level-major
  std::vector<std::uint8_t> t_cw;  // [bits * count]  bit 0: t_L CW, bit 1: t_R CW
  std::vector<Block> final_cw;  // [count]

  /// Serialized size in bytes for (bits, count); t bits packed 4 per byte.
  /// Layout (no header: bits and count are known to both sides): seed_cw,
  /// then value_cw (16 bytes per block: lo then hi, each u64 little-endian),
  /// then the t bits (entry k of t_cw in bits 2(k%4), 2(k%4)+1 of byte k/4;
  /// unused bits of the last byte zero), then final_cw. Throws
  /// Error(kBadMessage) if the size would not fit in size_t.
  static std::size_t serialized_size(int bits, std::size_t count);
  /// Appends the serialization to `out`.
  void serialize(std::vector<std::uint8_t>& out) const;
  /// Parses exactly serialized_size(bits, count) bytes; throws
  /// Error(kBadMessage) naming the problem on a size mismatch or a t byte
  /// with bits other than the 2 used.
  static DcfCorrections parse(int bits, std::size_t count, std::span<const std::uint8_t> bytes);
};

/// A read-only view of serialized corrections (the layout of
/// DcfCorrections::serialize), evaluated in place: no copy of the 2 KB per
/// key. Holds pointers into the bytes it was made from, which must outlive
/// the view (and everything that holds it). Blocks may be unaligned; the t
/// bits stay packed.
struct DcfCorrectionsView {
  int bits = 0;
  std::size_t count = 0;
  const std::uint8_t* seed_cw = nullptr;   // [bits * count] blocks, level-major
  const std::uint8_t* value_cw = nullptr;  // [bits * count] blocks, level-major
  const std::uint8_t* t_cw = nullptr;      // [(bits * count + 3) / 4] packed t bits
  const std::uint8_t* final_cw = nullptr;  // [count] blocks

  /// Checks `bytes` exactly as DcfCorrections::parse does (same errors,
  /// Error(kBadMessage)) and returns a view into them.
  static DcfCorrectionsView of(int bits, std::size_t count, std::span<const std::uint8_t> bytes);
};

/// Dealer: keys for f_i(x) = beta[i] if x < alpha[i] else 0, x in [0, 2^bits).
/// root0/root1 are the parties' root seeds (the dealer draws them from the
/// PRGs it shares with each party). alpha[i] < 2^bits (checked).
DcfCorrections dcf_gen(int bits, std::span<const u64> alpha, std::span<const Block> beta,
                       std::span<const Block> root0, std::span<const Block> root1);

/// Party `party` (0 or 1): out[i] = its share of f_i(x[i]); the two parties'
/// outputs add up (component-wise modulo 2^64) to beta[i] * 1{x[i] < alpha[i]}.
/// x[i] < 2^bits (checked).
void dcf_eval(int party, const DcfCorrections& cw, std::span<const Block> root,
              std::span<const u64> x, std::span<Block> out);

// ---- the ReLU / DReLU gate -----------------------------------------------

/// What the dealer sends for `count` gates: the DCF correction words (to
/// both parties) and party 1's shares of m_r and m_r * r (party 0 draws its
/// shares from its PRG; party 1's are the dealer's correction terms).
struct ReluGateDealt {
  std::vector<std::uint8_t> to_both;    // DcfCorrections serialization (bits 63)
  std::vector<std::uint8_t> to_party1;  // count x (m_r share, m_r*r share), u64 LE
};

/// Dealer: generates `count` gates. prg0 / prg1 are the PRGs it shares with
/// party 0 / party 1; the parties replay them with relu_gate_load in the
/// same order. Draw order, per PRG, for the whole batch: `count` root seeds
/// (16 bytes each), then `count` shares of r; prg0 then also `count` shares
/// of m_r and `count` shares of m_r * r. r = r0 + r1.
ReluGateDealt relu_gate_gen(std::size_t count, Prg& prg0, Prg& prg1);

/// One party's keys for `count` gates.
///
/// Lifetime: a key made by load() owns a copy of the correction words; a key
/// made by load_borrowed() evaluates directly on the caller's `to_both`
/// bytes, which must stay alive and unchanged for as long as the key (or a
/// key moved from it) is used. Keys are movable, not copyable.
class ReluGateKey {
 public:
  ReluGateKey() = default;
  ReluGateKey(ReluGateKey&&) noexcept = default;
  ReluGateKey& operator=(ReluGateKey&&) noexcept = default;
  ReluGateKey(const ReluGateKey&) = delete;
  ReluGateKey& operator=(const ReluGateKey&) = delete;

  /// Party b's key: draws its PRG part (see relu_gate_gen) from `prg` and
  /// checks the dealer's bytes (copying the correction words once).
  /// `to_party1` must be empty for party 0. Throws Error(kBadMessage) when a
  /// byte count does not match `count` or the t bits are malformed.
  static ReluGateKey load(int party, std::size_t count, Prg& prg,
                          std::span<const std::uint8_t> to_both,
                          std::span<const std::uint8_t> to_party1);
  /// The same checks and PRG draws as load(), without copying `to_both`:
  /// the key keeps a view into it (see the lifetime rule above).
  /// `to_party1` is copied (16 bytes per gate) and need not outlive the key.
  static ReluGateKey load_borrowed(int party, std::size_t count, Prg& prg,
                                   std::span<const std::uint8_t> to_both,
                                   std::span<const std::uint8_t> to_party1);
  int party() const { return party_; }
  std::size_t count() const { return count_; }
  /// This party's share of the input masks r, to add before opening.
  std::span<const u64> r_share() const { return r_; }

  /// Given the opened xhat[i] = x[i] + r[i], writes this party's shares of
  /// DReLU(x) (0/1, unscaled) and/or ReLU(x) (same scale as x); pass an
  /// empty span for an output not wanted. Sizes must equal count().
  void eval(std::span<const u64> xhat, std::span<u64> drelu, std::span<u64> relu) const;

 private:
  int party_ = 0;
  std::size_t count_ = 0;
  std::vector<std::uint8_t> own_;  // load(): the copied corrections (public: not wiped)
  DcfCorrectionsView cw_;          // into own_ or the caller's bytes
  detail::SecretVector<Block> root_;
  detail::SecretVector<u64> r_, m_, mr_;
};

}  // namespace blindfold::mpc::fss
