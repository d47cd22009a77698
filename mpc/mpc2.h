// mpc2: two-party secret-shared computation (server and client, additive
// shares over Z_2^64) with a dealer (the helper) that produces only
// input-independent correlated randomness, offline.
//
// Correlated randomness (the helper "derives everything from pairwise PRG
// seeds and sends only correction terms"):
//  - At connection the helper samples one 256-bit seed per party
//    (os_random) and sends it over that party's (TLS) channel.
//  - Query q's material is drawn from Prg(seed_p, q) by both the helper and
//    party p in program order; what cannot be drawn (the second share of a
//    product, the DCF correction words) is sent by the helper in one bundle
//    per query and per party. Fixed weight masks A come from
//    Prg(seed_server, 2^63 + handle).
//  - Bundles are generated ahead of queries (Mpc2Dealer::begin_query /
//    end_query around one run of the program) and stored by the parties
//    (receive_preprocessing) in a queue; each carries its query number.
//
// Protocols (party 0 = server, 1 = client):
//  - register_weights: E = W - A is opened to the client once; A is known to
//    the server and the helper. Never re-opened per query.
//  - matmul(W, X): a matrix triple with the fixed mask A (Mohassel-Zhang,
//    SecureML, S&P 2017, Sec. IV-B, with A fixed across queries) specialised
//    to a server that knows W: the client sends F = X_c - B (B fresh per
//    query, from the client's PRG), the helper gives C = A*B as
//    C_c (client PRG) and C_s = A*B - C_c (sent to the server);
//    Z_s = W*X_s + A*F + C_s, Z_c = E*X_c + C_c. One message client->server.
//  - mul_weights: the same with a diagonal W.
//  - mul: Beaver triples (Beaver, CRYPTO 1991). One round.
//  - trunc: local probabilistic truncation (SecureML Thm. 1): the result is
//    x/2^f rounded with an error of at most 1 in the last place, except with
//    probability 2^(l+1-64) per element when |x| < 2^l (a wrong value then).
//  - relu / drelu: the FSS gate of mpc/fss.h at the width the caller passes
//    (Protocol::relu: keys and evaluation cost proportional to it). One
//    round; exact for x in the promised range.
//  - reveal_to_client: the server sends its share.
// Security: semi-honest; the helper must not collude with either party
// (docs/THREAT_MODEL.md).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "core/random.h"
#include "mpc/protocol.h"
#include "net/channel.h"

namespace blindfold::mpc {

struct Mpc2Options {
  int frac_bits = 12;
};

/// The server (party 0) or the client (party 1).
class Mpc2Party final : public Protocol {
 public:
  /// `peer`: channel to the other party; `helper`: channel to the dealer.
  /// Receives this party's seed from the helper (blocks until it arrives).
  /// The channels must outlive the object.
  Mpc2Party(int party, net::Channel& peer, net::Channel& helper, Mpc2Options options = {});
  ~Mpc2Party() override;

  std::string name() const override { return "mpc2"; }
  int party() const override { return party_; }
  int frac_bits() const override { return options_.frac_bits; }

  /// Offline: receives one query's bundle from the helper and stores it.
  /// Throws Error(kBadMessage) for a malformed bundle.
  void receive_preprocessing();
  /// Bundles stored and not yet used.
  std::size_t stored() const { return bundles_.size(); }
  /// Online: starts a query with the oldest stored bundle (throws
  /// Error(kInternal) when none is stored) / checks that it was used up
  /// exactly (throws Error(kBadMessage) otherwise: the helper and this party
  /// ran different programs). end_query leaves the query's material (its
  /// bundle and spent keys) to be freed by the next receive_preprocessing
  /// or the destructor, off the online path.
  void begin_query();
  void end_query();

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
  struct Bundle;
  struct Query;
  int party_;
  net::Channel& peer_;
  net::Channel& helper_;
  Mpc2Options options_;
  Seed seed_{};
  std::vector<std::vector<u64>> weights_;  // server: W; client: E = W - A
  std::vector<std::vector<u64>> masks_;    // server: A
  std::deque<std::unique_ptr<Bundle>> bundles_;
  std::unique_ptr<Query> query_;  // the query in progress
  std::unique_ptr<Query> retired_;  // the last query ended, freed by receive_preprocessing
  std::uint64_t next_query_ = 0;  // number of the next query to begin
  std::vector<u64> scratch_;      // reused between ops (PRG draws, received vectors)

  Query& in_query(const char* op);
  void check_handle(int w, const char* op) const;
};

/// The helper (party 2): runs the same program on shapes only (the Shared
/// values it sees carry n and no shares) and generates the parties' bundles.
class Mpc2Dealer final : public Protocol {
 public:
  /// Samples and sends the two seeds. Channels must outlive the object.
  Mpc2Dealer(net::Channel& to_server, net::Channel& to_client, Mpc2Options options = {});
  ~Mpc2Dealer() override;

  std::string name() const override { return "mpc2"; }
  int party() const override { return 2; }
  int frac_bits() const override { return options_.frac_bits; }

  /// Starts generating the next query's bundles / sends them to both parties.
  void begin_query();
  void end_query();

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
  struct Query;
  net::Channel& to_server_;
  net::Channel& to_client_;
  Mpc2Options options_;
  Seed seed_server_{}, seed_client_{};
  std::vector<std::vector<u64>> masks_;  // A per weight handle
  std::unique_ptr<Query> query_;
  std::uint64_t next_query_ = 0;
  std::vector<u64> scratch_;

  Query& in_query(const char* op);
  void check_handle(int w, const char* op) const;
};

}  // namespace blindfold::mpc
