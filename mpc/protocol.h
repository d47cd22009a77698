// The protocol interface shared by mpc2 and mpc3 (mpc/ layer 2 of 3): one
// party's view of a secret-shared computation over Z_2^64 with fixed point.
// The engine in backends/mpc lowers a model to calls on this interface; every
// party (and, for mpc2, the dealer) runs the same sequence of calls, so the
// calls themselves are the protocol's program and message order.
//
// Parties: 0 = server (holds the model's weights), 1 = client (holds the
// input, learns the output), 2 = helper (mpc2: the dealer, offline only;
// mpc3: the third computing party).
//
// Batched and vectorised: every call takes whole vectors, so one call is at
// most one or a few communication rounds whatever the size.
//
// Thread safety: a Protocol object is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mpc/ring.h"

namespace blindfold::mpc {

enum class Party : int { kServer = 0, kClient = 1, kHelper = 2 };
const char* party_name(int party);  // "server", "client", "helper"

/// A secret-shared vector of n ring elements, as one party holds it.
///  - mpc2 server/client: s0 = the additive share, s1 empty.
///  - mpc3 party i: s0 = x_i, s1 = x_{i+1} (replicated sharing, x = x0+x1+x2).
///  - mpc2 dealer: both empty; only n (the dealer runs the program on shapes).
struct Shared {
  std::size_t n = 0;
  std::vector<u64> s0, s1;
};

// ---- local operations, the same for every protocol and party -------------
// They act on whichever share vectors are present (none for the dealer).

/// out = x[idx[i]] for each i (reshape, transpose, im2col, window gathers).
Shared gather(const Shared& x, std::span<const std::uint32_t> idx);
Shared add(const Shared& x, const Shared& y);
Shared sub(const Shared& x, const Shared& y);
Shared neg(const Shared& x);
/// x * c for a public ring element c (e.g. a fixed-point constant; the result
/// has the scale of x plus that of c).
Shared mul_public(const Shared& x, u64 c);
/// Sum of x over groups: out[j] = sum of x[i] with group[i] == j, j < groups.
Shared sum_groups(const Shared& x, std::span<const std::uint32_t> group, std::size_t groups);
/// Concatenation.
Shared concat(const std::vector<const Shared*>& parts);
/// Throws Error(kInternal) unless 2 <= bits <= 64 (Protocol::relu).
void check_relu_bits(int bits);

class Protocol {
 public:
  virtual ~Protocol() = default;
  virtual std::string name() const = 0;  // "mpc2", "mpc3"
  virtual int party() const = 0;          // 0, 1, 2
  virtual int frac_bits() const = 0;

  // ---- model set-up (once per model and session) ----
  /// Registers a tensor of the server's weights (fixed-point encoded at
  /// whatever scale the caller chose). `w` holds the n values on the
  /// server and is empty elsewhere. Communicates once (mpc2: the masked
  /// weights W - A are opened to the client, A fixed per tensor and known to
  /// the server and the dealer; mpc3: W is reshared among the three
  /// parties). Returns a handle for the calls below.
  virtual int register_weights(std::span<const u64> w, std::size_t n) = 0;

  // ---- one query ----
  /// The client's input (fixed-point encoded). `x` holds n values on the
  /// client and is empty elsewhere.
  virtual Shared input(std::span<const u64> x, std::size_t n) = 0;
  /// Adds the public vector c (size x.n) to the shared value.
  virtual void add_public(Shared& x, std::span<const u64> c) = 0;
  /// y = x + W[idx[i]] (bias), local.
  virtual Shared add_weights(int w, const Shared& x, std::span<const std::uint32_t> idx) = 0;
  /// y_i = W[idx[i]] * x_i (per-channel scales). Result scale: sum of scales.
  virtual Shared mul_weights(int w, const Shared& x, std::span<const std::uint32_t> idx) = 0;
  /// Y (m x n) = W (m x k) * X (k x n), row-major; W registered with m*k
  /// values. Result scale: sum of scales (not truncated).
  virtual Shared matmul(int w, const Shared& x, std::size_t m, std::size_t k, std::size_t n) = 0;
  /// Element-wise product of two shared vectors (not truncated).
  virtual Shared mul(const Shared& x, const Shared& y) = 0;
  /// Divides by 2^bits with sign (fixed-point rescale); see each protocol
  /// for exactness.
  virtual void trunc(Shared& x, int bits) = 0;
  /// Shares of DReLU(x) = 1{x >= 0} (0/1, unscaled) and ReLU(x) (scale of x).
  /// Either output pointer may be null when not wanted.
  ///
  /// `bits` (2..64) is the comparison width: the caller promises that every
  /// x, read as a signed 64-bit integer, lies in [-2^(bits-1), 2^(bits-1)),
  /// and the sign is computed from the low `bits` bits only, which costs
  /// about bits/64 of a full-width comparison. With bits = 64 the result is
  /// exact for every x. Outside the promised range the outputs are still
  /// well-formed shares, of a wrong value (the sign of x mod 2^bits); nothing
  /// else breaks. All parties (and the mpc2 dealer) must pass the same bits.
  /// Throws Error(kInternal) for bits outside 2..64 (a caller bug; a plan
  /// from a peer is validated before it gets here).
  virtual void relu(const Shared& x, Shared* drelu, Shared* relu, int bits) = 0;
  /// Full width (bits = 64): exact for every x.
  void relu(const Shared& x, Shared* drelu, Shared* relu) { this->relu(x, drelu, relu, 64); }
  /// Opens x to the client only; returns the values on the client, an empty
  /// vector elsewhere.
  virtual std::vector<u64> reveal_to_client(const Shared& x) = 0;
};

}  // namespace blindfold::mpc
