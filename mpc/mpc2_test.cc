// Tests of mpc2 (server, client and dealer as three threads over memory
// channels): each operation against its plaintext result, a small network
// over several preprocessed queries, desynchronisation and malformed
// messages, the helper's absence from the online phase, and a statistical
// check that the server's online view does not depend on the client's input.
#include "mpc/mpc2.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "net/memory.h"

namespace blindfold::mpc {
namespace {

using net::Bytes;
using net::Channel;
using net::Mesh;

// ---- helpers ---------------------------------------------------------------

template <class F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error thrown";
  return Error(ErrorCategory::kInternal, "none");
}

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

std::vector<u64> random_u64(std::mt19937_64& rng, std::size_t n) {
  std::vector<u64> v(n);
  for (auto& x : v) x = rng();
  return v;
}

// Fixed-point-like values: signed, |v| < 2^bits.
std::vector<u64> small_u64(std::mt19937_64& rng, std::size_t n, int bits) {
  std::vector<u64> v(n);
  const std::int64_t bound = std::int64_t{1} << bits;
  std::uniform_int_distribution<std::int64_t> d(-bound + 1, bound - 1);
  for (auto& x : v) x = static_cast<u64>(d(rng));
  return v;
}

std::vector<u64> plain_matmul(const std::vector<u64>& a, const std::vector<u64>& b, std::size_t m, std::size_t k,
                              std::size_t n) {
  std::vector<u64> c(m * n, 0);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t p = 0; p < k; ++p)
      for (std::size_t j = 0; j < n; ++j) c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}

u64 sar(u64 v, int bits) { return static_cast<u64>(static_cast<std::int64_t>(v) >> bits); }

// This party's share of `v` under the random split (r, v - r); shape only
// on the dealer. The same `mask` must be used by both parties.
Shared share_of(const Protocol& p, const std::vector<u64>& v, const std::vector<u64>& mask) {
  Shared s;
  s.n = v.size();
  if (p.party() == 0) s.s0 = mask;
  if (p.party() == 1) {
    s.s0.resize(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) s.s0[i] = v[i] - mask[i];
  }
  return s;
}

std::span<const u64> if_party(const Protocol& p, int party, const std::vector<u64>& v) {
  return p.party() == party ? std::span<const u64>(v) : std::span<const u64>();
}

struct OnlineStats {
  // Bytes between each party and the helper during online phases.
  std::int64_t helper_bytes[2] = {0, 0};
  // Peer channel statistics of the online phase (summed over queries), per party.
  net::ChannelStats peer[2];
  // Preprocessing bytes received by each party (all queries).
  std::int64_t pre_bytes[2] = {0, 0};
};

// Runs `setup` once and then `query` for queries 0..queries-1 on the server,
// the client and the dealer (simulate(3): party 2 is the dealer). The
// dealer generates the preprocessing `ahead` queries at a time; the parties
// receive a batch, then run it.
OnlineStats run_program(const std::function<void(Protocol&)>& setup,
                        const std::function<void(Protocol&, int)>& query, int queries, int ahead = 1) {
  OnlineStats st;
  net::simulate(3, [&](Mesh& m) {
    if (m.self == 2) {
      Mpc2Dealer d(m.to(0), m.to(1));
      setup(d);
      for (int q0 = 0; q0 < queries; q0 += ahead) {
        for (int q = q0; q < std::min(queries, q0 + ahead); ++q) {
          d.begin_query();
          query(d, q);
          d.end_query();
        }
      }
      return;
    }
    const int self = m.self;
    Mpc2Party p(self, m.to(1 - self), m.to(2));
    setup(p);
    for (int q0 = 0; q0 < queries; q0 += ahead) {
      const int end = std::min(queries, q0 + ahead);
      const std::int64_t before = m.to(2).stats().received.bytes;
      for (int q = q0; q < end; ++q) p.receive_preprocessing();
      EXPECT_EQ(p.stored(), static_cast<std::size_t>(end - q0));
      st.pre_bytes[self] += m.to(2).stats().received.bytes - before;
      m.to(2).reset_stats();
      m.to(1 - self).reset_stats();
      for (int q = q0; q < end; ++q) {
        p.begin_query();
        query(p, q);
        p.end_query();
      }
      EXPECT_EQ(p.stored(), 0u);
      const auto& hs = m.to(2).stats();
      st.helper_bytes[self] += hs.sent.bytes + hs.received.bytes;
      const auto& ps = m.to(1 - self).stats();
      auto& acc = st.peer[self];
      acc.sent.bytes += ps.sent.bytes;
      acc.sent.messages += ps.sent.messages;
      acc.received.bytes += ps.received.bytes;
      acc.received.messages += ps.received.messages;
      acc.rounds += ps.rounds;
      for (const auto& [tag, t] : ps.sent_by_tag) {
        acc.sent_by_tag[tag].bytes += t.bytes;
        acc.sent_by_tag[tag].messages += t.messages;
      }
    }
  });
  return st;
}

// ---- operations against plaintext ------------------------------------------

TEST(Mpc2, MatmulAndBiasMatchPlaintext) {
  std::mt19937_64 rng(1);
  const std::size_t m = 7, k = 13, n = 5;
  const auto w = random_u64(rng, m * k);
  const auto bias = random_u64(rng, m);
  std::vector<std::uint32_t> bias_idx(m * n);
  for (std::size_t i = 0; i < m * n; ++i) bias_idx[i] = static_cast<std::uint32_t>(i / n);
  const int queries = 3;
  std::vector<std::vector<u64>> xs, got(queries);
  for (int q = 0; q < queries; ++q) xs.push_back(random_u64(rng, k * n));
  int hw = -1, hb = -1;
  run_program(
      [&](Protocol& p) {
        hw = p.register_weights(if_party(p, 0, w), w.size());
        hb = p.register_weights(if_party(p, 0, bias), bias.size());
      },
      [&](Protocol& p, int q) {
        Shared x = p.input(if_party(p, 1, xs[q]), k * n);
        Shared y = p.matmul(0, x, m, k, n);
        y = p.add_weights(1, y, bias_idx);
        auto out = p.reveal_to_client(y);
        if (p.party() == 1) got[q] = out;
        if (p.party() != 1) {
          EXPECT_TRUE(out.empty());
        }
      },
      queries, queries);
  EXPECT_EQ(hw, 0);
  EXPECT_EQ(hb, 1);
  for (int q = 0; q < queries; ++q) {
    auto want = plain_matmul(w, xs[q], m, k, n);
    for (std::size_t i = 0; i < m * n; ++i) want[i] += bias[i / n];
    EXPECT_EQ(got[q], want) << "query " << q;
  }
}

TEST(Mpc2, MatmulOnRandomSharesMatchesPlaintext) {
  // Both parties' shares non-zero (as after a first layer).
  std::mt19937_64 rng(2);
  const std::size_t m = 16, k = 33, n = 9;
  const auto w = random_u64(rng, m * k);
  const auto x = random_u64(rng, k * n), mask = random_u64(rng, k * n);
  std::vector<u64> got;
  run_program([&](Protocol& p) { p.register_weights(if_party(p, 0, w), w.size()); },
              [&](Protocol& p, int) {
                Shared y = p.matmul(0, share_of(p, x, mask), m, k, n);
                auto out = p.reveal_to_client(y);
                if (p.party() == 1) got = out;
              },
              1);
  EXPECT_EQ(got, plain_matmul(w, x, m, k, n));
}

TEST(Mpc2, MulWeightsBroadcastsByIndex) {
  std::mt19937_64 rng(3);
  const std::size_t channels = 4, per = 6, n = channels * per;
  const auto w = random_u64(rng, channels);
  const auto x = random_u64(rng, n), mask = random_u64(rng, n);
  std::vector<std::uint32_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = static_cast<std::uint32_t>(i % channels);
  std::vector<u64> got;
  run_program([&](Protocol& p) { p.register_weights(if_party(p, 0, w), w.size()); },
              [&](Protocol& p, int) {
                Shared y = p.mul_weights(0, share_of(p, x, mask), idx);
                auto out = p.reveal_to_client(y);
                if (p.party() == 1) got = out;
              },
              2, 2);
  ASSERT_EQ(got.size(), n);
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(got[i], w[idx[i]] * x[i]) << i;
}

TEST(Mpc2, MulIsExact) {
  std::mt19937_64 rng(4);
  const std::size_t n = 1000;
  const auto x = random_u64(rng, n), y = random_u64(rng, n);
  const auto mx = random_u64(rng, n), my = random_u64(rng, n);
  std::vector<u64> got;
  run_program([](Protocol&) {},
              [&](Protocol& p, int) {
                Shared z = p.mul(share_of(p, x, mx), share_of(p, y, my));
                // A second, dependent product (x*y)*x.
                z = p.mul(z, share_of(p, x, mx));
                auto out = p.reveal_to_client(z);
                if (p.party() == 1) got = out;
              },
              1);
  ASSERT_EQ(got.size(), n);
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(got[i], x[i] * y[i] * x[i]) << i;
}

TEST(Mpc2, TruncWithinOneUlp) {
  // |x| < 2^30: a wrong value has probability 2^(31-64) per element.
  std::mt19937_64 rng(5);
  const std::size_t n = 20000;
  const int f = 12;
  const auto x = small_u64(rng, n, 30);
  const auto mask = random_u64(rng, n);
  std::vector<u64> got;
  run_program([](Protocol&) {},
              [&](Protocol& p, int) {
                Shared s = share_of(p, x, mask);
                p.trunc(s, f);
                auto out = p.reveal_to_client(s);
                if (p.party() == 1) got = out;
              },
              1);
  ASSERT_EQ(got.size(), n);
  int exact = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t d = static_cast<std::int64_t>(got[i] - sar(x[i], f));
    EXPECT_LE(std::abs(d), 1) << i << ": x=" << static_cast<std::int64_t>(x[i]);
    exact += d == 0;
  }
  EXPECT_GT(exact, static_cast<int>(n / 3));  // an off-by-one everywhere would be a bug
}

TEST(Mpc2, ReluAndDreluExact) {
  std::mt19937_64 rng(6);
  auto x = random_u64(rng, 3000);
  const auto small = small_u64(rng, 1000, 20);
  x.insert(x.end(), small.begin(), small.end());
  for (u64 v : {u64{0}, u64{1}, ~u64{0}, u64{1} << 63, (u64{1} << 63) - 1, (u64{1} << 63) + 1}) x.push_back(v);
  const auto mask = random_u64(rng, x.size());
  std::vector<u64> d, r, r_only, d_only, aliased;
  run_program([](Protocol&) {},
              [&](Protocol& p, int) {
                Shared s = share_of(p, x, mask);
                Shared sd, sr, sr2, sd2;
                p.relu(s, &sd, &sr);
                p.relu(s, nullptr, &sr2);
                p.relu(s, &sd2, nullptr);
                p.relu(s, nullptr, &s);  // output aliases the input
                auto o1 = p.reveal_to_client(sd), o2 = p.reveal_to_client(sr);
                auto o3 = p.reveal_to_client(sr2), o4 = p.reveal_to_client(sd2);
                auto o5 = p.reveal_to_client(s);
                if (p.party() == 1) {
                  d = o1, r = o2, r_only = o3, d_only = o4, aliased = o5;
                }
              },
              1);
  ASSERT_EQ(d.size(), x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const bool pos = static_cast<std::int64_t>(x[i]) >= 0;
    EXPECT_EQ(d[i], pos ? 1u : 0u) << i;
    EXPECT_EQ(r[i], pos ? x[i] : 0u) << i;
  }
  EXPECT_EQ(r_only, r);
  EXPECT_EQ(d_only, d);
  EXPECT_EQ(aliased, r);
}

// Relu at several widths in one query (one bundle of gates of mixed widths):
// exact for x in [-2^(bits-1), 2^(bits-1)) (edges, small and uniform
// values); outside, shares of the sign of x mod 2^bits, as documented.
TEST(Mpc2, ReluAtSmallWidths) {
  std::mt19937_64 rng(12);
  const std::vector<int> widths = {2, 5, 18, 20, 32, 33, 63, 64};
  std::vector<std::vector<u64>> xs, masks, d(widths.size()), r(widths.size());
  for (int bits : widths) {
    const u64 half = u64{1} << (bits - 1);
    std::vector<u64> x = {u64{0} - half, ~u64{0}, 0, 1, half - 1};
    for (int k = 0; k < 500; ++k) x.push_back((rng() & (2 * half - 1)) - half);  // in range
    for (int k = 0; k < 200; ++k) x.push_back(rng());                            // mostly outside
    if (bits < 64) {
      for (u64 v : {half, u64{0} - half - 1}) x.push_back(v);
    }
    masks.push_back(random_u64(rng, x.size()));
    xs.push_back(std::move(x));
  }
  run_program([](Protocol&) {},
              [&](Protocol& p, int) {
                for (std::size_t w = 0; w < widths.size(); ++w) {
                  Shared s = share_of(p, xs[w], masks[w]), sd, sr;
                  p.relu(s, &sd, &sr, widths[w]);
                  auto o1 = p.reveal_to_client(sd), o2 = p.reveal_to_client(sr);
                  if (p.party() == 1) d[w] = o1, r[w] = o2;
                }
              },
              1);
  for (std::size_t w = 0; w < widths.size(); ++w) {
    const int bits = widths[w];
    ASSERT_EQ(d[w].size(), xs[w].size());
    std::size_t in_range = 0;
    for (std::size_t i = 0; i < xs[w].size(); ++i) {
      const u64 x = xs[w][i];
      const auto v = static_cast<std::int64_t>(x);
      const bool inside = bits == 64 || (v >= -(std::int64_t{1} << (bits - 1)) && v < (std::int64_t{1} << (bits - 1)));
      const bool pos = ((x >> (bits - 1)) & 1) == 0;  // the sign of x mod 2^bits
      if (inside) {
        ++in_range;
        ASSERT_EQ(pos, v >= 0);
      }
      EXPECT_EQ(d[w][i], pos ? 1u : 0u) << "bits " << bits << " x " << v;
      EXPECT_EQ(r[w][i], pos ? x : 0u) << "bits " << bits << " x " << v;
    }
    EXPECT_GE(in_range, 505u) << bits;
  }
}

TEST(Mpc2, EmptyOperations) {
  run_program([](Protocol&) {},
              [&](Protocol& p, int) {
                Shared e = p.input({}, 0);
                Shared z = p.mul(e, e);
                Shared d, r;
                p.relu(z, &d, &r);
                EXPECT_EQ(d.n, 0u);
                EXPECT_TRUE(p.reveal_to_client(r).empty());
              },
              2);
}

TEST(Mpc2, LargeBundlesTravelInFrames) {
  // A relu of 10^4 elements: a ~20 MB bundle, sent as two 16 MiB frames.
  std::mt19937_64 rng(10);
  const auto x = random_u64(rng, 10000), mask = random_u64(rng, x.size());
  std::vector<u64> got;
  run_program([](Protocol&) {},
              [&](Protocol& p, int) {
                Shared s = share_of(p, x, mask), r;
                p.relu(s, nullptr, &r);
                auto out = p.reveal_to_client(r);
                if (p.party() == 1) got = out;
              },
              2, 2);
  ASSERT_EQ(got.size(), x.size());
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(got[i], static_cast<std::int64_t>(x[i]) >= 0 ? x[i] : 0u);

  // A server bundle of exactly one full frame (24 + 16 + 8 * 3 * 699049
  // bytes = 16 MiB): an empty frame ends it; the next query still works.
  const std::size_t m = 3, k = 1, n = 699049;
  const std::vector<u64> w = {5, 7, 11};
  const auto xs = random_u64(rng, k * n);
  std::vector<u64> out2;
  const OnlineStats st = run_program([&](Protocol& p) { p.register_weights(if_party(p, 0, w), w.size()); },
                                     [&](Protocol& p, int) {
                                       Shared y = p.matmul(0, p.input(if_party(p, 1, xs), k * n), m, k, n);
                                       auto out = p.reveal_to_client(y);
                                       if (p.party() == 1) out2 = out;
                                     },
                                     2, 2);
  EXPECT_EQ(out2, plain_matmul(w, xs, m, k, n));
  // Per query: one full frame and an empty one, 17 bytes of framing each.
  EXPECT_EQ(st.pre_bytes[0], 2 * ((std::int64_t{16} << 20) + 17 + 17));
}

// ---- a small network over several preprocessed queries --------------------

// At the full width and at 24 bits (|h| < 2^20 here: in range, so the same
// results, with smaller bundles).
TEST(Mpc2, TwoLayerNetworkOverPreprocessedQueries) {
  std::int64_t pre_full = 0;
  for (int bits : {64, 24}) {
    SCOPED_TRACE("relu width " + std::to_string(bits));
    std::mt19937_64 rng(7);
    const int f = 12;
    const std::size_t d_in = 20, hidden = 16, d_out = 5, batch = 3;
    const auto w1 = small_u64(rng, hidden * d_in, f);  // |w| < 1
    const auto b1 = small_u64(rng, hidden, 2 * f);     // scale 2f
    const auto w2 = small_u64(rng, d_out * hidden, f);
    std::vector<std::uint32_t> b1_idx(hidden * batch);
    for (std::size_t i = 0; i < b1_idx.size(); ++i) b1_idx[i] = static_cast<std::uint32_t>(i / batch);
    const int queries = 6;
    std::vector<std::vector<u64>> xs, got(queries);
    for (int q = 0; q < queries; ++q) xs.push_back(small_u64(rng, d_in * batch, f + 3));  // |x| < 8

    auto program = [&](Protocol& p, int q) {
      Shared x = p.input(if_party(p, 1, xs[q]), d_in * batch);
      Shared h = p.matmul(0, x, hidden, d_in, batch);
      h = p.add_weights(1, h, b1_idx);
      p.trunc(h, f);
      Shared a;
      p.relu(h, nullptr, &a, bits);
      Shared y = p.matmul(2, a, d_out, hidden, batch);
      p.trunc(y, f);
      auto out = p.reveal_to_client(y);
      if (p.party() == 1) got[q] = out;
    };
    const OnlineStats st = run_program(
        [&](Protocol& p) {
          p.register_weights(if_party(p, 0, w1), w1.size());
          p.register_weights(if_party(p, 0, b1), b1.size());
          p.register_weights(if_party(p, 0, w2), w2.size());
        },
        program, queries, /*ahead=*/3);

    for (int q = 0; q < queries; ++q) {
      // Plaintext with exact (floor) truncation; mpc2 may differ by 1 ulp per
      // truncation, which the second layer scales by sum |w2|.
      auto h = plain_matmul(w1, xs[q], hidden, d_in, batch);
      for (std::size_t i = 0; i < h.size(); ++i) {
        h[i] = sar(h[i] + b1[i / batch], f);
        if (static_cast<std::int64_t>(h[i]) < 0) h[i] = 0;
      }
      auto y = plain_matmul(w2, h, d_out, hidden, batch);
      ASSERT_EQ(got[q].size(), y.size());
      for (std::size_t i = 0; i < y.size(); ++i) {
        double l1 = 0;
        for (std::size_t j = 0; j < hidden; ++j) {
          l1 += std::abs(static_cast<double>(static_cast<std::int64_t>(w2[(i / batch) * hidden + j])));
        }
        const double tol = l1 / std::ldexp(1.0, f) + 2;
        const double diff = std::abs(static_cast<double>(static_cast<std::int64_t>(got[q][i] - sar(y[i], f))));
        EXPECT_LE(diff, tol) << "query " << q << " output " << i;
      }
    }
    // The helper is offline: nothing between it and either party online.
    EXPECT_EQ(st.helper_bytes[0], 0);
    EXPECT_EQ(st.helper_bytes[1], 0);
    EXPECT_GT(st.pre_bytes[0], 0);
    EXPECT_GT(st.pre_bytes[1], 0);
    // Online messages per query: client -> server F (2 matmuls), relu both
    // ways, reveal server -> client.
    EXPECT_EQ(st.peer[1].sent_by_tag.at("mpc2/F").messages, 2 * queries);
    EXPECT_EQ(st.peer[0].sent_by_tag.at("mpc2/relu").messages, queries);
    EXPECT_EQ(st.peer[1].sent_by_tag.at("mpc2/relu").messages, queries);
    EXPECT_EQ(st.peer[0].sent_by_tag.at("mpc2/reveal").messages, queries);
    EXPECT_EQ(st.peer[0].sent_by_tag.count("mpc2/F"), 0u);
    std::printf("[ mpc2     ] two-layer net, batch %zu, relu %d bits: online per query server sent %lld B, client "
                "sent %lld B; preprocessing per query server %lld B, client %lld B\n",
                batch, bits, static_cast<long long>(st.peer[0].sent.bytes / queries),
                static_cast<long long>(st.peer[1].sent.bytes / queries),
                static_cast<long long>(st.pre_bytes[0] / queries), static_cast<long long>(st.pre_bytes[1] / queries));
    // The relu keys (48 gates per query) shrink with the width: 63 -> 23 DCF
    // levels, 32.25 bytes per level and gate, to each party.
    if (bits == 64) {
      pre_full = st.pre_bytes[0];
    } else {
      EXPECT_EQ(pre_full - st.pre_bytes[0],
                queries * (48 * 40 * 32 + (48 * 63 + 3) / 4 - (48 * 23 + 3) / 4));
    }
  }
}

TEST(Mpc2, PerOperationCosts) {
  // Bytes and rounds of each interactive operation, online and offline.
  const std::size_t m = 8, k = 32, n = 4;
  const std::vector<u64> w(m * k, 3);
  struct Case {
    const char* name;
    std::function<void(Protocol&, Shared&)> op;
    std::size_t in;
  };
  const std::vector<Case> cases = {
      {"matmul 8x32 * 32x4", [&](Protocol& p, Shared& x) { p.matmul(0, x, m, k, n); }, k * n},
      {"mul_weights 128", [&](Protocol& p, Shared& x) {
         std::vector<std::uint32_t> idx(x.n, 0);
         p.mul_weights(0, x, idx);
       }, 128},
      {"mul 128", [&](Protocol& p, Shared& x) { p.mul(x, x); }, 128},
      {"relu 128", [&](Protocol& p, Shared& x) { p.relu(x, nullptr, &x); }, 128},
      {"relu 128 at 20 bits", [&](Protocol& p, Shared& x) { p.relu(x, nullptr, &x, 20); }, 128},
      {"reveal 128", [&](Protocol& p, Shared& x) { p.reveal_to_client(x); }, 128},
  };
  for (const auto& c : cases) {
    const std::vector<u64> x(c.in, 5);
    const OnlineStats st = run_program([&](Protocol& p) { p.register_weights(if_party(p, 0, w), w.size()); },
                                       [&](Protocol& p, int) {
                                         Shared s = p.input(if_party(p, 1, x), x.size());
                                         c.op(p, s);
                                       },
                                       1);
    EXPECT_EQ(st.helper_bytes[0] + st.helper_bytes[1], 0) << c.name;
    std::printf("[ mpc2     ] %-22s online: server sent %6lld B, client sent %6lld B, rounds %lld/%lld; "
                "bundle: server %7lld B, client %7lld B\n",
                c.name, static_cast<long long>(st.peer[0].sent.bytes),
                static_cast<long long>(st.peer[1].sent.bytes), static_cast<long long>(st.peer[0].rounds),
                static_cast<long long>(st.peer[1].rounds), static_cast<long long>(st.pre_bytes[0]),
                static_cast<long long>(st.pre_bytes[1]));
  }
}

// ---- desynchronisation, malformed and wrong-size messages -----------------

// The error of one query where the dealer runs `dealer_program` and the two
// parties run `party_program` (after registering the same weights).
Error desync_error(const std::vector<u64>& w, const std::function<void(Protocol&)>& dealer_program,
                   const std::function<void(Protocol&)>& party_program) {
  return error_of([&] {
    net::simulate(3, [&](Mesh& m) {
      if (m.self == 2) {
        Mpc2Dealer d(m.to(0), m.to(1));
        d.register_weights({}, w.size());
        d.begin_query();
        dealer_program(d);
        d.end_query();
        return;
      }
      Mpc2Party p(m.self, m.to(1 - m.self), m.to(2));
      p.register_weights(if_party(p, 0, w), w.size());
      p.receive_preprocessing();
      p.begin_query();
      party_program(p);
      p.end_query();
    });
  });
}

TEST(Mpc2, DealerPartyDesyncIsDetected) {
  const std::vector<u64> w(4 * 8, 1), x(8 * 2, 1);
  auto in = [&](Protocol& p, std::size_t n) { return p.input(if_party(p, 1, x), n); };
  // The parties run relu where the dealer ran matmul.
  Error e = desync_error(
      w, [&](Protocol& d) { d.matmul(0, in(d, x.size()), 4, 8, 2); },
      [&](Protocol& p) {
        Shared r;
        p.relu(in(p, x.size()), nullptr, &r);
      });
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
  EXPECT_TRUE(contains(e.what(), "relu")) << e.what();
  EXPECT_TRUE(contains(e.what(), "matmul")) << e.what();

  // Same operation, other sizes.
  e = desync_error(
      w,
      [&](Protocol& d) {
        Shared r;
        d.relu(in(d, 8), nullptr, &r);
      },
      [&](Protocol& p) {
        Shared r;
        p.relu(in(p, x.size()), nullptr, &r);
      });
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
  EXPECT_TRUE(contains(e.what(), "relu")) << e.what();

  // Same operation and size, another width: both widths named.
  auto relu_at = [&](int bits, std::size_t n) {
    return [&, bits, n](Protocol& p) {
      Shared r;
      p.relu(in(p, n), nullptr, &r, bits);
    };
  };
  e = desync_error(w, relu_at(20, x.size()), relu_at(32, x.size()));
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
  EXPECT_TRUE(contains(e.what(), "20 bits")) << e.what();
  EXPECT_TRUE(contains(e.what(), "32 bits")) << e.what();
  e = desync_error(w, relu_at(64, x.size()), relu_at(63, x.size()));
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
  EXPECT_TRUE(contains(e.what(), "64 bits")) << e.what();
  EXPECT_TRUE(contains(e.what(), "63 bits")) << e.what();
  // Empty relus carry no key: the record digest (which covers the width)
  // catches it.
  e = desync_error(w, relu_at(20, 0), relu_at(32, 0));
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
  EXPECT_TRUE(contains(e.what(), "relu")) << e.what();

  auto muls = [&](int count) {
    return [&, count](Protocol& p) {
      Shared s = in(p, x.size());
      for (int i = 0; i < count; ++i) p.mul(s, s);
    };
  };
  // The dealer ran one operation more: caught at end_query.
  e = desync_error(w, muls(2), muls(1));
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
  EXPECT_TRUE(contains(e.what(), "end_query")) << e.what();

  // The parties ran one operation more.
  e = desync_error(w, muls(1), muls(2));
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
  EXPECT_TRUE(contains(e.what(), "no more operations")) << e.what();
}

// A dealer whose bundles for the server are intercepted by the test, which
// forwards them (altered or not) to a real server party. Single-threaded:
// sends never block on memory channels.
struct Intercepted {
  std::unique_ptr<Channel> d_srv, tap_srv;  // dealer -> tap (server side)
  std::unique_ptr<Channel> d_cli, tap_cli;  // dealer -> tap (client side)
  std::unique_ptr<Channel> fwd, srv_helper;  // tap -> server's helper channel
  std::unique_ptr<Channel> srv_peer, cli_peer;
  std::unique_ptr<Mpc2Dealer> dealer;
  std::unique_ptr<Mpc2Party> server;

  Intercepted() {
    std::tie(d_srv, tap_srv) = net::memory_pair();
    std::tie(d_cli, tap_cli) = net::memory_pair();
    std::tie(fwd, srv_helper) = net::memory_pair();
    std::tie(srv_peer, cli_peer) = net::memory_pair();
    for (Channel* c : {tap_srv.get(), tap_cli.get(), srv_helper.get(), cli_peer.get(), srv_peer.get()}) {
      c->set_timeout(std::chrono::milliseconds(2000));
    }
    dealer = std::make_unique<Mpc2Dealer>(*d_srv, *d_cli);
    fwd->send("mpc2/seed", tap_srv->recv("mpc2/seed"));
    server = std::make_unique<Mpc2Party>(0, *srv_peer, *srv_helper);
  }
  // One query of the dealer running `op`; returns the server's bundle.
  Bytes deal(const std::function<void(Protocol&)>& op) {
    dealer->begin_query();
    op(*dealer);
    dealer->end_query();
    return tap_srv->recv("mpc2/pre");
  }
};

void set_u64(Bytes& b, std::size_t at, u64 v) { std::memcpy(b.data() + at, &v, 8); }
u64 load_u64_at(const Bytes& b, std::size_t at) {
  u64 v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}

TEST(Mpc2, MalformedBundlesAreRefused) {
  Intercepted t;
  auto mul8 = [](Protocol& p) {
    Shared s = p.input({}, 8);
    p.mul(s, s);
  };
  auto relu8 = [](Protocol& p) {
    Shared s = p.input({}, 8), r;
    p.relu(s, nullptr, &r);
  };
  const Bytes good = t.deal(relu8);  // query 0
  ASSERT_GT(good.size(), 40u);

  auto refused = [&](Bytes b, const std::string& needle) {
    t.fwd->send("mpc2/pre", b);
    const Error e = error_of([&] { t.server->receive_preprocessing(); });
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
    EXPECT_TRUE(contains(e.what(), needle)) << e.what();
    EXPECT_EQ(t.server->stored(), 0u);
  };
  refused(Bytes(good.begin(), good.begin() + 10), "shorter than its header");
  Bytes b = good;
  b[0] = 'X';
  refused(b, "magic");
  b = good;
  b[4] = 9;
  refused(b, "version");
  b = good;
  b.pop_back();
  refused(b, "announces");
  b = good;
  set_u64(b, 8, 5);  // query number
  refused(b, "query 5");
  b = good;
  set_u64(b, 24 + 8, good.size());  // record length overruns
  refused(b, "overruns");
  b = good;
  set_u64(b, 24, u64{9} << 56);  // unknown op
  refused(b, "unknown operation");

  // Consistent header and record framing, but the relu record is short:
  // refused offline too (the relu keys are checked and made there).
  b = good;
  const u64 rec_len = good.size() - 24 - 16 - 100;
  b.resize(good.size() - 100);
  set_u64(b, 16, b.size() - 24);
  set_u64(b, 24 + 8, rec_len);
  refused(b, "relu");
  // A relu record whose corrections are one byte short (the length of no
  // gate count), with consistent framing: refused offline.
  ASSERT_EQ(load_u64_at(good, 24 + 16), 64u);  // the width, then the corrections' length
  b = good;
  set_u64(b, 24 + 24, load_u64_at(good, 24 + 24) - 1);
  b.erase(b.begin() + 24 + 32);
  set_u64(b, 24 + 8, load_u64_at(good, 24 + 8) - 1);
  set_u64(b, 16, b.size() - 24);
  refused(b, "not the size of any number of 64-bit gates");
  // Widths outside 2..64 on the wire.
  for (u64 bits : {u64{0}, u64{1}, u64{65}, u64{1} << 32, (u64{1} << 63) + 64, ~u64{0}}) {
    b = good;
    set_u64(b, 24 + 16, bits);
    refused(b, "width of " + std::to_string(bits) + " bits");
  }
  // A valid width whose key size does not match the corrections' length.
  b = good;
  set_u64(b, 24 + 16, 32);
  refused(b, "not the size of any number of 32-bit gates");
  // A record too short to hold the width.
  b = good;
  b.resize(24 + 16 + 4);
  set_u64(b, 16, b.size() - 24);
  set_u64(b, 24 + 8, 4);
  refused(b, "truncated");
  // The record says relu but the party runs mul on it: refused when the
  // operation reads it (the key made offline is never used).
  t.fwd->send("mpc2/pre", good);
  t.server->receive_preprocessing();
  t.server->begin_query();
  Shared s = t.server->input({}, 8);
  Error e = error_of([&] { t.server->mul(s, s); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
  EXPECT_TRUE(contains(e.what(), "relu")) << e.what();

  // A mul record whose payload has the wrong length (server expects none).
  Intercepted t2;
  b = t2.deal(mul8);
  set_u64(b, 24 + 8, 8);
  b.insert(b.end(), 8, 0);
  set_u64(b, 16, b.size() - 24);
  t2.fwd->send("mpc2/pre", b);
  t2.server->receive_preprocessing();
  t2.server->begin_query();
  Shared s2 = t2.server->input({}, 8);
  e = error_of([&] { t2.server->mul(s2, s2); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
  EXPECT_TRUE(contains(e.what(), "mul")) << e.what();
  EXPECT_TRUE(contains(e.what(), "8 bytes, expected 0")) << e.what();
}

TEST(Mpc2, WrongSizePeerMessagesAreRefused) {
  const std::size_t m = 4, k = 8, n = 2;
  const std::vector<u64> w(m * k, 7);
  {
    Intercepted t;
    t.server->register_weights(w, w.size());
    t.dealer->register_weights({}, w.size());
    EXPECT_EQ(t.cli_peer->recv("mpc2/weights").size(), w.size() * 8);
    const Bytes bundle = t.deal([&](Protocol& p) { p.matmul(0, p.input({}, k * n), m, k, n); });
    t.fwd->send("mpc2/pre", bundle);
    t.server->receive_preprocessing();
    t.server->begin_query();
    t.cli_peer->send("mpc2/F", Bytes(k * n * 8 - 8, 0));  // one element short
    Shared x = t.server->input({}, k * n);
    const Error e = error_of([&] { t.server->matmul(0, x, m, k, n); });
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
    EXPECT_TRUE(contains(e.what(), "matmul")) << e.what();
    EXPECT_TRUE(contains(e.what(), std::to_string(k * n * 8 - 8) + " bytes, expected " +
                                       std::to_string(k * n * 8)))
        << e.what();
  }
  {
    Intercepted t;
    const Bytes bundle = t.deal([&](Protocol& p) {
      Shared r;
      p.relu(p.input({}, 8), nullptr, &r);
    });
    t.fwd->send("mpc2/pre", bundle);
    t.server->receive_preprocessing();
    t.server->begin_query();
    t.cli_peer->send("mpc2/relu", Bytes(9 * 8, 0));  // one element too many
    Shared x = t.server->input({}, 8), r;
    const Error e = error_of([&] { t.server->relu(x, nullptr, &r); });
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
    EXPECT_TRUE(contains(e.what(), "relu")) << e.what();
    EXPECT_TRUE(contains(e.what(), "72 bytes, expected 64")) << e.what();
  }
  {
    // The client receiving masked weights of the wrong size; a bad seed.
    auto [a, b] = net::memory_pair();
    auto [c, d] = net::memory_pair();
    c->send("mpc2/seed", Bytes(32, 1));
    Mpc2Party client(1, *b, *d);
    a->send("mpc2/weights", Bytes(8 * 3, 0));
    const Error e = error_of([&] { client.register_weights({}, 4); });
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
    EXPECT_TRUE(contains(e.what(), "register_weights")) << e.what();
    c->send("mpc2/seed", Bytes(31, 1));
    const Error e2 = error_of([&] { Mpc2Party p(1, *b, *d); });
    EXPECT_EQ(e2.category(), ErrorCategory::kBadMessage) << e2.what();
  }
}

TEST(Mpc2, CallerBugsAreInternalErrors) {
  Intercepted t;
  const std::vector<u64> w(6, 1);
  EXPECT_EQ(error_of([&] { t.server->register_weights(w, 5); }).category(), ErrorCategory::kInternal);
  EXPECT_EQ(error_of([&] { t.dealer->register_weights(w, 6); }).category(), ErrorCategory::kInternal);
  EXPECT_EQ(error_of([&] { t.server->begin_query(); }).category(), ErrorCategory::kInternal);
  EXPECT_EQ(error_of([&] { t.server->end_query(); }).category(), ErrorCategory::kInternal);
  Shared x = t.server->input({}, 6);
  EXPECT_EQ(error_of([&] { t.server->input(w, 6); }).category(), ErrorCategory::kInternal);
  EXPECT_EQ(error_of([&] { t.server->matmul(0, x, 2, 3, 2); }).category(), ErrorCategory::kInternal);
  EXPECT_EQ(error_of([&] { t.server->mul(x, x); }).category(), ErrorCategory::kInternal);  // no query
  EXPECT_EQ(error_of([&] { t.server->trunc(x, 64); }).category(), ErrorCategory::kInternal);
  EXPECT_EQ(error_of([&] { t.server->add_public(x, std::vector<u64>(5)); }).category(), ErrorCategory::kInternal);
  t.server->register_weights(w, w.size());
  t.dealer->register_weights({}, w.size());
  const Bytes bundle = t.deal([&](Protocol& p) { p.matmul(0, p.input({}, 6), 2, 3, 2); });
  t.fwd->send("mpc2/pre", bundle);
  t.server->receive_preprocessing();
  t.server->begin_query();
  EXPECT_EQ(error_of([&] { t.server->begin_query(); }).category(), ErrorCategory::kInternal);
  EXPECT_EQ(error_of([&] { t.server->matmul(1, x, 2, 3, 2); }).category(), ErrorCategory::kInternal);
  EXPECT_EQ(error_of([&] { t.server->matmul(0, x, 3, 2, 2); }).category(), ErrorCategory::kInternal);
  EXPECT_EQ(error_of([&] { t.server->matmul(0, x, 2, 3, 3); }).category(), ErrorCategory::kInternal);
  const std::vector<std::uint32_t> bad_idx(6, 6);
  EXPECT_EQ(error_of([&] { t.server->add_weights(0, x, bad_idx); }).category(), ErrorCategory::kInternal);
  EXPECT_EQ(error_of([&] { t.dealer->add_weights(0, t.dealer->input({}, 6), bad_idx); }).category(),
            ErrorCategory::kInternal);
}

// ---- the server's online view is independent of the client's input --------

// What one end of a channel received, payloads by message tag.
using View = std::map<std::string, Bytes>;

void record_into(Channel& c, View* view) {
  c.set_receive_observer([view](std::string_view tag, std::span<const std::uint8_t> payload) {
    Bytes& b = (*view)[std::string(tag)];
    b.insert(b.end(), payload.begin(), payload.end());
  });
}

// Payload bytes of the messages with one of `tags`.
Bytes payloads(const View& view, const std::vector<std::string>& tags) {
  Bytes out;
  for (const std::string& t : tags) {
    const auto it = view.find(t);
    if (it != view.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }
  return out;
}

// Regularised upper incomplete gamma Q(a, x) (series / continued fraction;
// Press et al., Numerical Recipes, 3rd ed., Sec. 6.2).
double gamma_q(double a, double x) {
  if (x <= 0) return 1.0;
  const double lg = -x + a * std::log(x) - std::lgamma(a);
  if (x < a + 1) {
    double ap = a, del = 1 / a, sum = del;
    for (int i = 0; i < 10000 && std::abs(del) > std::abs(sum) * 1e-15; ++i) {
      ap += 1;
      del *= x / ap;
      sum += del;
    }
    return 1 - sum * std::exp(lg);
  }
  const double tiny = 1e-300;
  double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (int i = 1; i < 10000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::abs(del - 1) < 1e-15) break;
  }
  return std::exp(lg) * h;
}

// Two-sample chi-square test on byte-value histograms (Numerical Recipes
// chstwo, unequal sample sizes); returns the p-value of "same distribution".
double chi2_two_sample_p(const Bytes& r, const Bytes& s) {
  double hr[256] = {}, hs[256] = {};
  for (std::uint8_t v : r) hr[v] += 1;
  for (std::uint8_t v : s) hs[v] += 1;
  const double nr = static_cast<double>(r.size()), ns = static_cast<double>(s.size());
  const double kr = std::sqrt(ns / nr), ks = std::sqrt(nr / ns);
  double chi2 = 0;
  int df = -1;
  for (int i = 0; i < 256; ++i) {
    if (hr[i] + hs[i] == 0) continue;
    ++df;
    const double t = kr * hr[i] - ks * hs[i];
    chi2 += t * t / (hr[i] + hs[i]);
  }
  if (df <= 0) return 0.0;  // all mass in one bin on both sides: treat as degenerate
  return gamma_q(0.5 * df, 0.5 * chi2);
}

TEST(Mpc2, ChiSquareSanity) {
  std::mt19937_64 rng(8);
  Bytes a(100000), b(100000), c(100000);
  for (auto& v : a) v = static_cast<std::uint8_t>(rng());
  for (auto& v : b) v = static_cast<std::uint8_t>(rng());
  for (auto& v : c) v = static_cast<std::uint8_t>(rng() % 250);
  EXPECT_GT(chi2_two_sample_p(a, b), 1e-4);
  EXPECT_LT(chi2_two_sample_p(a, c), 1e-10);
  EXPECT_NEAR(gamma_q(127.5, 127.5), 0.488, 0.01);  // median of chi2(255) ~ 254.3
}

struct ServerView {
  Bytes protocol;  // payloads of the mpc2/F and mpc2/relu messages
  Bytes leak_raw;  // a leaky variant: the client's raw input
  Bytes leak48;    // a subtler one: input masked with only 48 random bits
};

// Runs `queries` queries of matmul -> trunc -> relu on `input` (client) and
// returns what the server received. Alongside each query the client sends
// the two leaky transcripts on test-only tags, through the same tap.
ServerView server_view(const std::vector<u64>& input, int queries) {
  const std::size_t m = 8, k = 16, n = 4;
  std::mt19937_64 rng(9);
  const auto w = small_u64(rng, m * k, 12);
  View log;
  auto [server_end, client_end] = net::memory_pair();
  Channel& to_client = *server_end;  // the server's end: records what it reads
  Channel& to_server = *client_end;
  record_into(to_client, &log);
  auto [h_s, s_h] = net::memory_pair();
  auto [h_c, c_h] = net::memory_pair();
  auto program = [&](Protocol& p) {
    Shared x = p.input(if_party(p, 1, input), k * n);
    Shared y = p.matmul(0, x, m, k, n);
    p.trunc(y, 12);
    p.relu(y, nullptr, &y);
  };
  std::exception_ptr err[3];
  std::vector<Channel*> all = {&to_client, &to_server, h_s.get(), s_h.get(), h_c.get(), c_h.get()};
  auto guard = [&](int i, const std::function<void()>& f) {
    try {
      f();
    } catch (...) {
      err[i] = std::current_exception();
      for (Channel* c : all) c->close();
    }
  };
  std::thread dealer([&] {
    guard(2, [&] {
      Mpc2Dealer d(*h_s, *h_c);
      d.register_weights({}, w.size());
      for (int q = 0; q < queries; ++q) {
        d.begin_query();
        program(d);
        d.end_query();
      }
    });
  });
  std::thread client([&] {
    guard(1, [&] {
      Mpc2Party p(1, to_server, *c_h);
      p.register_weights({}, w.size());
      std::mt19937_64 r(std::random_device{}());
      std::vector<u64> leak(input.size());
      for (int q = 0; q < queries; ++q) {
        p.receive_preprocessing();
        p.begin_query();
        program(p);
        p.end_query();
        to_server.send("test/leak_raw", std::span<const std::uint8_t>(
                                            reinterpret_cast<const std::uint8_t*>(input.data()), input.size() * 8));
        for (std::size_t i = 0; i < input.size(); ++i) leak[i] = input[i] + (r() >> 16);
        to_server.send("test/leak48", std::span<const std::uint8_t>(
                                          reinterpret_cast<const std::uint8_t*>(leak.data()), leak.size() * 8));
      }
    });
  });
  guard(0, [&] {
    Mpc2Party p(0, to_client, *s_h);
    p.register_weights(w, w.size());
    for (int q = 0; q < queries; ++q) {
      p.receive_preprocessing();
      p.begin_query();
      program(p);
      p.end_query();
      to_client.recv("test/leak_raw");
      to_client.recv("test/leak48");
    }
  });
  client.join();
  dealer.join();
  for (auto& e : err) {
    if (e) std::rethrow_exception(e);
  }
  ServerView v;
  v.protocol = payloads(log, {"mpc2/F", "mpc2/relu"});
  v.leak_raw = payloads(log, {"test/leak_raw"});
  v.leak48 = payloads(log, {"test/leak48"});
  return v;
}

TEST(Mpc2, ServerOnlineViewIsIndependentOfClientInput) {
  const std::size_t size = 16 * 4;
  const int queries = 150;
  const std::vector<u64> zeros(size, 0);
  std::vector<u64> large(size);
  for (std::size_t i = 0; i < size; ++i) large[i] = (u64{0x3fff} << 48) + 0x123456789ULL * (i + 1);
  const ServerView a = server_view(zeros, queries);
  const ServerView b = server_view(large, queries);
  ASSERT_EQ(a.protocol.size(), static_cast<std::size_t>(queries) * (size + 32) * 8);
  ASSERT_EQ(a.protocol.size(), b.protocol.size());
  const double p = chi2_two_sample_p(a.protocol, b.protocol);
  std::printf("[ mpc2     ] server view, %zu bytes per input: chi-square p = %.4g (independent)\n",
              a.protocol.size(), p);
  EXPECT_GT(p, 1e-4);
  // The test has power: the leaky variants, seen through the same tap, are
  // told apart.
  const double p_raw = chi2_two_sample_p(a.leak_raw, b.leak_raw);
  const double p48 = chi2_two_sample_p(a.leak48, b.leak48);
  std::printf("[ mpc2     ] leaky variants: raw input p = %.4g, 48-bit mask p = %.4g\n", p_raw, p48);
  EXPECT_LT(p_raw, 1e-4);
  EXPECT_LT(p48, 1e-4);
}

}  // namespace
}  // namespace blindfold::mpc

namespace blindfold::mpc {
namespace {

// ---- timing of a LeNet-shaped program (models/fmnist-lenet.md) ------------
// Disabled by default (seconds of preprocessing); run with
//   --gtest_also_run_disabled_tests --gtest_filter='Mpc2Perf.*'
// MPC2_PERF_BATCH (default 1) sets the batch, MPC2_PERF_BITS (default 64)
// the relu width.

struct LenetIdx {
  std::vector<std::uint32_t> im2col1, pool1[4], im2col2, pool2[4], flat;
};

// Row-major C x (N*H*W) feature maps. im2col rows (c, ky, kx), columns (img, oy, ox).
std::vector<std::uint32_t> im2col(std::size_t c_in, std::size_t batch, std::size_t h, std::size_t kk) {
  const std::size_t oh = h - kk + 1;
  std::vector<std::uint32_t> idx;
  for (std::size_t c = 0; c < c_in; ++c)
    for (std::size_t ky = 0; ky < kk; ++ky)
      for (std::size_t kx = 0; kx < kk; ++kx)
        for (std::size_t b = 0; b < batch; ++b)
          for (std::size_t y = 0; y < oh; ++y)
            for (std::size_t x = 0; x < oh; ++x)
              idx.push_back(static_cast<std::uint32_t>(c * batch * h * h + b * h * h + (y + ky) * h + x + kx));
  return idx;
}

void pool_idx(std::size_t c_in, std::size_t batch, std::size_t h, std::vector<std::uint32_t> out[4]) {
  const std::size_t oh = h / 2;
  for (std::size_t c = 0; c < c_in; ++c)
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t y = 0; y < oh; ++y)
        for (std::size_t x = 0; x < oh; ++x)
          for (int corner = 0; corner < 4; ++corner)
            out[corner].push_back(static_cast<std::uint32_t>(c * batch * h * h + b * h * h + (2 * y + corner / 2) * h +
                                                             2 * x + corner % 2));
}

// max over 2x2 windows by a tournament of relus: max(a, b) = b + relu(a - b).
Shared maxpool(Protocol& p, const Shared& x, const std::vector<std::uint32_t> idx[4], int bits) {
  const Shared a = gather(x, idx[0]), b = gather(x, idx[1]), c = gather(x, idx[2]), d = gather(x, idx[3]);
  const Shared ab = sub(a, b), cd = sub(c, d);
  Shared r;
  p.relu(concat({&ab, &cd}), nullptr, &r, bits);
  std::vector<std::uint32_t> first(a.n), second(a.n);
  for (std::size_t i = 0; i < a.n; ++i) {
    first[i] = static_cast<std::uint32_t>(i);
    second[i] = static_cast<std::uint32_t>(a.n + i);
  }
  const Shared m1 = add(b, gather(r, first)), m2 = add(d, gather(r, second));
  Shared r2;
  p.relu(sub(m1, m2), nullptr, &r2, bits);
  return add(m2, r2);
}

TEST(Mpc2Perf, DISABLED_LenetShapes) {
  const char* env = std::getenv("MPC2_PERF_BATCH");
  const std::size_t batch = env ? static_cast<std::size_t>(std::atoi(env)) : 1;
  const char* env_bits = std::getenv("MPC2_PERF_BITS");
  const int bits = env_bits ? std::atoi(env_bits) : 64;
  const int f = 12;
  std::mt19937_64 rng(11);
  const auto w1 = small_u64(rng, 16 * 25, f - 2), w2 = small_u64(rng, 16 * 400, f - 4);
  const auto w3 = small_u64(rng, 100 * 256, f - 4), w4 = small_u64(rng, 10 * 100, f - 3);
  const auto x = small_u64(rng, batch * 784, f);
  LenetIdx ix;
  ix.im2col1 = im2col(1, batch, 28, 5);
  pool_idx(16, batch, 24, ix.pool1);
  ix.im2col2 = im2col(16, batch, 12, 5);
  pool_idx(16, batch, 8, ix.pool2);
  for (std::size_t c = 0; c < 16; ++c)  // rows (c, y, x), columns img
    for (std::size_t yx = 0; yx < 16; ++yx)
      for (std::size_t b = 0; b < batch; ++b) ix.flat.push_back(static_cast<std::uint32_t>(c * batch * 16 + b * 16 + yx));
  auto program = [&](Protocol& p) {
    Shared s = p.input(if_party(p, 1, x), x.size());
    s = p.matmul(0, gather(s, ix.im2col1), 16, 25, batch * 576);
    p.trunc(s, f);
    s = maxpool(p, s, ix.pool1, bits);
    p.relu(s, nullptr, &s, bits);
    s = p.matmul(1, gather(s, ix.im2col2), 16, 400, batch * 64);
    p.trunc(s, f);
    s = maxpool(p, s, ix.pool2, bits);
    p.relu(s, nullptr, &s, bits);
    s = p.matmul(2, gather(s, ix.flat), 100, 256, batch);
    p.trunc(s, f);
    p.relu(s, nullptr, &s, bits);
    s = p.matmul(3, s, 10, 100, batch);
    p.trunc(s, f);
    return p.reveal_to_client(s);
  };
  using Ms = std::chrono::duration<double, std::milli>;
  double offline_ms = 0, online_ms[2] = {0, 0};
  std::int64_t pre[2] = {0, 0}, online_bytes[2] = {0, 0}, rounds[2] = {0, 0};
  net::simulate(3, [&](Mesh& m) {
    auto setup = [&](Protocol& p) {
      for (const auto* w : {&w1, &w2, &w3, &w4}) p.register_weights(if_party(p, 0, *w), w->size());
    };
    if (m.self == 2) {
      Mpc2Dealer d(m.to(0), m.to(1));
      setup(d);
      const auto t0 = std::chrono::steady_clock::now();
      d.begin_query();
      program(d);
      d.end_query();
      offline_ms = Ms(std::chrono::steady_clock::now() - t0).count();
      return;
    }
    const int self = m.self;
    Mpc2Party p(self, m.to(1 - self), m.to(2));
    setup(p);
    p.receive_preprocessing();
    pre[self] = m.to(2).stats().received.bytes;
    m.to(1 - self).reset_stats();
    const auto t0 = std::chrono::steady_clock::now();
    p.begin_query();
    program(p);
    p.end_query();
    online_ms[self] = Ms(std::chrono::steady_clock::now() - t0).count();
    online_bytes[self] = m.to(1 - self).stats().sent.bytes;
    rounds[self] = m.to(1 - self).stats().rounds;
  });
  std::printf("[ mpc2     ] LeNet batch %zu, relu %d bits: online server %.1f ms, client %.1f ms; sent server "
              "%lld B, client %lld B, rounds %lld/%lld; dealer %.0f ms, bundles %lld / %lld B\n",
              batch, bits, online_ms[0], online_ms[1], static_cast<long long>(online_bytes[0]),
              static_cast<long long>(online_bytes[1]), static_cast<long long>(rounds[0]),
              static_cast<long long>(rounds[1]), offline_ms, static_cast<long long>(pre[0]),
              static_cast<long long>(pre[1]));
}

}  // namespace
}  // namespace blindfold::mpc
