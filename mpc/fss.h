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
// Ciphers", S&P 2020), with AES from OpenSSL (EVP, ECB over whole batches)
// and from nowhere else (the project's rule for symmetric crypto).
// Both keys of one DCF share the same correction words; they differ only in
// the root seed (and the party bit), so a dealer derives each party's root
// seed from a PRG it shares with that party and sends only the correction
// words.
//
// The ReLU/DReLU gate on top (masked-input paradigm of the same paper and of
// LLAMA/Orca/SIGMA), of a width n in [2, 64]: the parties hold additive
// shares of x in Z_2^64 and of a dealer mask r; they open xhat = x + r (one
// round) and each evaluates its key on xhat locally, obtaining additive
// shares of DReLU(x) = 1{x >= 0} and of ReLU(x) = DReLU(x) * x. The gate
// reads the sign from y = x mod 2^n only: MSB_n(y) = xhat_{n-1} ^ r_{n-1} ^ c,
// with z_{n-1} bit n-1 of z and the borrow c = 1{xhat mod 2^(n-1) <
// r mod 2^(n-1)} (the carry out of the low n-1 bits of y + r). The DCF
// (domain n-1 bits, alpha = r mod 2^(n-1)) carries beta = ((1 - 2 m_r),
// (1 - 2 m_r) r) with m_r = r_{n-1} and the full 64-bit r, so the parties
// get shares of c' = c (1 - 2 m_r) and c' r; with dealer shares of m_r and
// m_r * r, u = m_r ^ c = m_r + c' and u r = m_r r + c' r are linear, and so
// are DReLU = (xhat_{n-1} ? u : 1 - u) and ReLU = DReLU * xhat - DReLU * r,
// in Z_2^64 with the full 64-bit xhat and r.
//
// Range: the result is exact (no approximation, no error probability)
// whenever x, read as a signed 64-bit integer, lies in [-2^(n-1), 2^(n-1)):
// then the sign of y as an n-bit integer is the sign of x, and ReLU is
// DReLU * x exactly. With n = 64 that is every x (and the gate is bit for bit
// the 63-bit-DCF gate of earlier versions). Outside the range the outputs
// are still well-formed shares: DReLU = 1 - MSB_n(x mod 2^n) (the sign of
// x mod 2^n as an n-bit integer) and ReLU = that bit times x.
//
// Key size per gate: (n - 1) levels x (16-byte seed CW + 16-byte payload CW
// + 2 bits) + a 16-byte final CW, i.e. DcfCorrections::serialized_size(n - 1,
// count) = 32.25 (n - 1) + 16 bytes per gate (rounded up over the batch):
// about 2,048 bytes at n = 64, 1,016 at 32, 629 at 20, sent by the dealer
// to both parties (party 1 also gets 16 bytes of shares per gate).
// Evaluation costs 2 AES blocks per level: 2 (n - 1) per gate (126 at 64
// bits, 62 at 32, 38 at 20).
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
  std::vector<std::uint8_t> to_both;    // DcfCorrections serialization (n - 1 bits)
  std::vector<std::uint8_t> to_party1;  // count x (m_r share, m_r*r share), u64 LE
};

/// Dealer: generates `count` gates of width `bits` (2..64, see the header
/// comment; throws Error(kInternal) otherwise). prg0 / prg1 are the PRGs it
/// shares with party 0 / party 1; the parties replay them with
/// ReluGateKey::load in the same order. Draw order, per PRG, for the whole
/// batch (the same for every width): `count` root seeds (16 bytes each),
/// then `count` shares of r; prg0 then also `count` shares of m_r and
/// `count` shares of m_r * r. r = r0 + r1.
ReluGateDealt relu_gate_gen(std::size_t count, int bits, Prg& prg0, Prg& prg1);

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

  /// Party b's key for `count` gates of width `bits` (the dealer's): draws
  /// its PRG part (see relu_gate_gen) from `prg` and checks the dealer's
  /// bytes (copying the correction words once). `to_party1` must be empty
  /// for party 0. Throws Error(kBadMessage) when a byte count does not match
  /// `count` and `bits` or the t bits are malformed; Error(kInternal) for a
  /// party other than 0/1 or a width outside 2..64 (the caller validates
  /// widths it reads from a peer).
  static ReluGateKey load(int party, std::size_t count, int bits, Prg& prg,
                          std::span<const std::uint8_t> to_both,
                          std::span<const std::uint8_t> to_party1);
  /// The same checks and PRG draws as load(), without copying `to_both`:
  /// the key keeps a view into it (see the lifetime rule above).
  /// `to_party1` is copied (16 bytes per gate) and need not outlive the key.
  static ReluGateKey load_borrowed(int party, std::size_t count, int bits, Prg& prg,
                                   std::span<const std::uint8_t> to_both,
                                   std::span<const std::uint8_t> to_party1);
  int party() const { return party_; }
  std::size_t count() const { return count_; }
  /// The gate width n (2..64; 0 for a default-constructed key).
  int bits() const { return bits_; }
  /// This party's share of the input masks r, to add before opening.
  std::span<const u64> r_share() const { return r_; }

  /// Given the opened xhat[i] = x[i] + r[i] (all 64 bits), writes this
  /// party's shares of DReLU(x) (0/1, unscaled) and/or ReLU(x) (same scale
  /// as x); exact for x in [-2^(bits-1), 2^(bits-1)) (header comment). Pass
  /// an empty span for an output not wanted. Sizes must equal count().
  void eval(std::span<const u64> xhat, std::span<u64> drelu, std::span<u64> relu) const;

 private:
  int party_ = 0;
  std::size_t count_ = 0;
  int bits_ = 0;
  std::vector<std::uint8_t> own_;  // load(): the copied corrections (public: not wiped)
  DcfCorrectionsView cw_;          // into own_ or the caller's bytes
  detail::SecretVector<Block> root_;
  detail::SecretVector<u64> r_, m_, mr_;
};

}  // namespace blindfold::mpc::fss
