// mpc3: three-party replicated secret sharing over Z_2^64, honest majority,
// semi-honest, no dealer (Araki, Furukawa, Lindell, Nof, Ohara, "High-
// Throughput Semi-Honest Secure Three-Party Computation with an Honest
// Majority", CCS 2016; Mohassel and Rindal, "ABY3", CCS 2018).
//
// Party i holds (x_i, x_{i+1}) of x = x_0 + x_1 + x_2 (indices mod 3).
// Parties: 0 = server (weights), 1 = client (input, output), 2 = helper (a
// third computing party; with honest majority, any single party's view is
// independent of the others' secrets).
//
// Pairwise seeds: at connection party i samples k_i (os_random) and sends it
// to party i-1, so party i holds k_i and k_{i+1}. Call number c's zero
// sharing is alpha_i = F(k_i, c) - F(k_{i+1}, c) (AES-CTR streams of
// core/random), so sum alpha_i = 0 and party i alone knows alpha_i.
//
// Protocols:
//  - input (client) / register_weights (server): the owner draws two shares
//    from the seeds it shares with the holders and sends the third share to
//    the two parties that hold it.
//  - mul, matmul, mul_weights: local cross products
//    z_i = x_i y_i + x_i y_{i+1} + x_{i+1} y_i + alpha_i, then party i sends
//    z_i to party i-1 (one round, one element per output per party).
//  - trunc: ABY3 Pi_trunc1 (Sec. 5.1.1): parties 0 and 1 truncate the 2-out-
//    of-2 sharing (x_0, x_1 + x_2) locally and reshare; one message from
//    party 1 to party 0. Error as SecureML: at most 1 in the last place,
//    except with probability 2^(l+1-64) for |x| < 2^l.
//  - relu/drelu on `bits` = k bits (the sign of x mod 2^k; exact for x in
//    [-2^(k-1), 2^(k-1)), all x at k = 64). Bit-sliced binary adder over
//    the low k bits of x = a + b, a = x_2 + x_0 (known to the helper),
//    b = x_1 (known to parties 0 and 1) [MR18, Sec. 5.3], then a one-round
//    lift to Z_2^64 (details and the view argument in mpc3.cc):
//      round 1: the generate/propagate of carry positions taken two at a
//        time, in one round: the helper sends its masked a-planes (k +
//        floor((k-1)/2) bit planes) to both others, parties 0 and 1 send
//        each other a masked correction (2 floor(k/2) - 1 planes);
//      carry tree: ceil(log2(floor(k/2))) rounds of replicated ANDs over
//        bit planes (one plane = 64 elements in a word);
//      lift: party 0 sends V_e, V_f (to 1 and 2) and U (to 1), one word per
//        element each; parties 1 and 2 send each other one word per element
//        per output (DReLU, ReLU = DReLU * x, both in Z_2^64 on the whole x).
//    Rounds: 2 + ceil(log2(floor(k/2))) (10 before; party 2 counts one
//    fewer, its first two messages going out back to back). Bytes per
//    element sent by party 0 / 1 / 2 (n a multiple of 64; mpc3_test checks
//    this table):
//        k | rounds | ReLU alone           | DReLU and ReLU       | DReLU alone
//       20 |   6    | 44.1 / 12.1 / 17     | 44.1 / 20.1 / 25     | 20.1 / 12.1 / 17
//       32 |   6    | 47.1 / 15.1 / 23     | 47.1 / 23.1 / 31     | 23.1 / 15.1 / 23
//       64 |   7    | 55   / 23   / 38.9   | 55   / 31   / 46.9   | 31   / 23   / 38.9
//    (before: 72 bytes per party at every width). The lift is 40 / 8 / 8
//    bytes of ReLU alone, 40 / 16 / 16 with DReLU, 16 / 8 / 8 for DReLU
//    alone; the binary part is (2 floor(k/2) - 1 + tree) / 8 bytes for
//    parties 0 and 1 and (2 (k + floor((k-1)/2)) + tree) / 8 for party 2,
//    tree = the sum over levels of 2 floor(g/2) - 1 for g groups (14 planes
//    at k = 20, 26 at 32, 57 at 64).
//  - reveal_to_client: party 0 sends x_0 to the client.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/random.h"
#include "mpc/protocol.h"
#include "net/channel.h"

namespace blindfold::mpc {

struct Mpc3Options {
  int frac_bits = 12;
};

class Mpc3Party final : public Protocol {
 public:
  /// `next`: channel to party (party+1)%3; `prev`: to party (party+2)%3.
  /// Exchanges the pairwise seeds (blocks until the peers answer). The
  /// channels must outlive the object.
  Mpc3Party(int party, net::Channel& next, net::Channel& prev, Mpc3Options options = {});
  ~Mpc3Party() override;

  std::string name() const override { return "mpc3"; }
  int party() const override { return party_; }
  int frac_bits() const override { return options_.frac_bits; }

  int register_weights(std::span<const u64> w, std::size_t n) override;
  Shared input(std::span<const u64> x, std::size_t n) override;
  void add_public(Shared& x, std::span<const u64> c) override;
  Shared add_weights(int w, const Shared& x, std::span<const std::uint32_t> idx) override;
  Shared mul_weights(int w, const Shared& x, std::span<const std::uint32_t> idx) override;
  Shared matmul(int w, const Shared& x, std::size_t m, std::size_t k, std::size_t n) override;
  Shared mul(const Shared& x, const Shared& y) override;
  void trunc(Shared& x, int bits) override;
  using Protocol::relu;
  void relu(const Shared& x, Shared* drelu, Shared* relu, int bits) override;
  std::vector<u64> reveal_to_client(const Shared& x) override;

 private:
  Shared share_owned(int owner, std::span<const u64> x, std::size_t n, const char* tag, const char* op);
  int party_;
  net::Channel& next_;
  net::Channel& prev_;
  Mpc3Options options_;
  Seed k_self_{}, k_next_{};
  std::uint64_t calls_ = 0;  // counter for the zero-sharing and seed streams
  std::vector<Shared> weights_;
  // Reused work space (relu, input, weights): grows, never shrinks, so a
  // model's repeated calls do not page-fault fresh buffers.
  std::vector<u64> scratch_;

  std::span<u64> scratch(std::size_t words);
  /// Checks that x is a replicated sharing (two share vectors of x.n).
  void check(const Shared& x, const char* op) const;
  /// Sends `words` to `to` under `tag`.
  void send_words(net::Channel& to, const char* tag, std::span<const u64> words);
  /// Receives exactly out.size() words from `from` (party `from_party`) or
  /// throws Error(kBadMessage) naming `op` and both sizes.
  void recv_words(net::Channel& from, int from_party, const char* tag, const char* op,
                  std::span<u64> out);
  /// One reshare round: sends `mine` (z_i) to party i-1 and receives z_{i+1}
  /// from party i+1 into `theirs` (same size).
  void exchange(const char* op, std::span<const u64> mine, std::span<u64> theirs);
};

}  // namespace blindfold::mpc
