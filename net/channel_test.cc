// Channel framing and counters, over the in-memory transport, and simulate().
#include "net/channel.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "core/error.h"
#include "net/memory.h"

using namespace blindfold;
using namespace blindfold::net;

namespace {
Bytes random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);  // test data only
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}
ErrorCategory category_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.category();
  }
  ADD_FAILURE() << "no error thrown";
  return ErrorCategory::kInternal;
}
}  // namespace

TEST(Channel, LargeMessageByteExact) {
  auto [a, b] = memory_pair();
  const Bytes big = random_bytes(50u << 20, 1);
  std::thread t([&, &a = a] { a->send("big", big); });
  const Bytes got = b->recv("big");
  t.join();
  EXPECT_EQ(got, big);
}

TEST(Channel, CountersMatchAHandCountedExchange) {
  auto [a, b] = memory_pair();
  a->send("a", std::string(10, 'x'));  // 1 + 1 + 8 + 10 = 20 bytes
  a->send("a", std::string(0, 'x'));   // 1 + 1 + 8 = 10 bytes, same round
  EXPECT_EQ(b->recv("a").size(), 10u);
  EXPECT_EQ(b->recv("a").size(), 0u);
  b->send("bb", std::string(3, 'y'));  // 1 + 2 + 8 + 3 = 14 bytes
  EXPECT_EQ(a->recv("bb").size(), 3u);
  a->send("a", std::string(1, 'z'));  // 11 bytes, second round for a
  b->recv("a");
  const ChannelStats& sa = a->stats();
  EXPECT_EQ(sa.sent.bytes, 20 + 10 + 11);
  EXPECT_EQ(sa.sent.messages, 3);
  EXPECT_EQ(sa.received.bytes, 14);
  EXPECT_EQ(sa.sent_by_tag.at("a").messages, 3);
  EXPECT_EQ(sa.rounds, 2);
  const ChannelStats& sb = b->stats();
  EXPECT_EQ(sb.received.bytes, 41);
  EXPECT_EQ(sb.sent.bytes, 14);
  EXPECT_EQ(sb.rounds, 1);
  EXPECT_EQ(sb.received_by_tag.at("a").bytes, 41);
}

TEST(Channel, ReceiveObserverSeesEachAcceptedMessage) {
  auto [a, b] = memory_pair();
  std::vector<std::pair<std::string, std::string>> seen;
  b->set_receive_observer([&seen](std::string_view tag, std::span<const std::uint8_t> p) {
    seen.emplace_back(std::string(tag), std::string(p.begin(), p.end()));
  });
  a->send("x", "abc");
  a->send("empty", "");
  a->send("y", "zz");
  EXPECT_EQ(b->recv("x").size(), 3u);
  EXPECT_EQ(b->recv("empty").size(), 0u);
  EXPECT_THROW(b->recv("other"), Error);  // a refused message is not observed
  const std::vector<std::pair<std::string, std::string>> want = {{"x", "abc"}, {"empty", ""}};
  EXPECT_EQ(seen, want);
}

TEST(Channel, DesyncNamesBothTags) {
  auto [a, b] = memory_pair();
  a->send("shares", "12345");
  try {
    b->recv("triples");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
    EXPECT_NE(std::string(e.what()).find("expected message 'triples', got 'shares'"),
              std::string::npos)
        << e.what();
  }
  // The channel is unusable afterwards rather than silently misaligned.
  EXPECT_EQ(category_of([&, &b = b] { b->recv("shares"); }), ErrorCategory::kPeerFailure);
}

TEST(Channel, OversizedAnnouncedLengthRefusedBeforeAllocation) {
  auto [a, b] = memory_pair();
  b->set_max_message_bytes(1024);
  a->send("x", std::string(4096, 'x'));  // the sender's cap is the default
  try {
    b->recv("x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
    EXPECT_NE(std::string(e.what()).find("more than the limit of 1024"), std::string::npos)
        << e.what();
  }
  // The sender refuses payloads above its own cap.
  a->set_max_message_bytes(8);
  EXPECT_EQ(category_of([&, &a = a] { a->send("x", std::string(9, 'x')); }),
            ErrorCategory::kBadInput);
  EXPECT_EQ(category_of([&, &a = a] { a->send("", "x"); }), ErrorCategory::kBadInput);
  EXPECT_EQ(category_of([&, &a = a] { a->send(std::string(33, 't'), "x"); }),
            ErrorCategory::kBadInput);
}

TEST(Channel, TimeoutAndPeerCloseArePeerFailures) {
  auto [a, b] = memory_pair();
  b->set_timeout(std::chrono::milliseconds(100));
  const auto t0 = Clock::now();
  EXPECT_EQ(category_of([&, &b = b] { b->recv("never"); }), ErrorCategory::kPeerFailure);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));

  auto [c, d] = memory_pair();
  d->set_timeout(std::chrono::seconds(5));
  c->send("half", "ok");
  std::thread closer([&, &c = c] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    c.reset();  // the peer goes away
  });
  EXPECT_EQ(d->recv("half"), (Bytes{'o', 'k'}));
  const auto t1 = Clock::now();
  try {
    d->recv("more");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
    EXPECT_NE(std::string(e.what()).find("closed"), std::string::npos) << e.what();
  }
  EXPECT_LT(Clock::now() - t1, std::chrono::seconds(2));
  closer.join();
}

TEST(Simulate, ThreePartiesExchangeWithEveryPeer) {
  std::vector<int> sums(3, 0);
  simulate(3, [&](Mesh& m) {
    for (int j = 0; j < m.size(); ++j) {
      if (j != m.self) m.to(j).send("id", std::string(1, static_cast<char>('0' + m.self)));
    }
    for (int j = 0; j < m.size(); ++j) {
      if (j == m.self) continue;
      const Bytes b = m.to(j).recv("id");
      sums[static_cast<std::size_t>(m.self)] += b.at(0) - '0';
    }
  });
  EXPECT_EQ(sums, (std::vector<int>{3, 2, 1}));
}

TEST(Simulate, OnePartyFailingEndsTheOthersQuicklyWithItsError) {
  const auto t0 = Clock::now();
  try {
    simulate(3, [](Mesh& m) {
      if (m.self == 1) throw Error(ErrorCategory::kBadInput, "party 1 refuses");
      m.to(1).recv("never");  // would wait 30 s without the close
    });
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
    EXPECT_NE(std::string(e.what()).find("party 1 refuses"), std::string::npos);
  }
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
}
