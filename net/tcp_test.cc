// One conformance suite run over every transport (memory, TCP, TLS): big and
// small messages, counters, desync, size cap, timeouts, close. Then what only
// sockets have: a peer process killed mid-message (fork), a hostile frame
// header announcing 2^62 bytes, connect-with-retry, no SIGPIPE.
#include "net/tcp.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include "core/error.h"
#include "net/certs.h"
#include "net/memory.h"
#include "net/test_util.h"
#include "net/tls.h"

using namespace blindfold;
using namespace blindfold::net;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

Bytes random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);  // test data only
  Bytes b(n);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const std::uint32_t r = rng();
    std::memcpy(b.data() + i, &r, 4);
  }
  for (; i < n; ++i) b[i] = static_cast<std::uint8_t>(rng());
  return b;
}

// Runs f, returns the Error it throws (fails the test when it throws none).
using testing_util::contains;
using testing_util::error_of;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A test PKI shared by the suite, in a directory of its own.
struct Pki {
  fs::path dir;
  Pki() {
    dir = fs::temp_directory_path() / ("bf_tcp_test_" + std::to_string(::getpid()));
    make_test_pki(dir, {"client", "server"});
  }
  ~Pki() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  TlsConfig config(const std::string& me, const std::string& peer) const {
    return {(dir / "ca.pem").string(), (dir / (me + ".pem")).string(),
            (dir / (me + ".key")).string(), peer};
  }
};

const Pki& pki() {
  static const Pki p;
  return p;
}

// A connected pair of TCP sockets on loopback (ephemeral port).
std::pair<Socket, Socket> socket_pair() {
  TcpListener l("127.0.0.1", 0);
  Socket c = tcp_connect("127.0.0.1", l.port(), Clock::now() + 5s);
  Socket s = l.accept(Clock::now() + 5s);
  return {std::move(c), std::move(s)};
}

using ChannelPair = std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>>;

ChannelPair tcp_pair() {
  auto [c, s] = socket_pair();
  return {std::make_unique<TcpChannel>(std::move(c)), std::make_unique<TcpChannel>(std::move(s))};
}

ChannelPair tls_pair() {
  auto [c, s] = socket_pair();
  const TlsContext client_ctx(pki().config("client", "server"));
  const TlsContext server_ctx(pki().config("server", "client"));
  std::unique_ptr<Channel> server;
  std::exception_ptr server_error;
  std::thread t([&, s = std::move(s)]() mutable {
    try {
      server = std::make_unique<TlsChannel>(server_ctx, std::move(s), TlsRole::kServer,
                                            Clock::now() + 5s, "client");
    } catch (...) {
      server_error = std::current_exception();
    }
  });
  auto client = std::make_unique<TlsChannel>(client_ctx, std::move(c), TlsRole::kClient,
                                             Clock::now() + 5s, "server");
  t.join();
  if (server_error) std::rethrow_exception(server_error);
  return {std::move(client), std::move(server)};
}

struct TransportCase {
  const char* name;
  ChannelPair (*make)();
};

class Conformance : public ::testing::TestWithParam<TransportCase> {
 protected:
  void SetUp() override { std::tie(a, b) = GetParam().make(); }
  std::unique_ptr<Channel> a, b;
};

}  // namespace

TEST_P(Conformance, FiftyMiBMessageByteExact) {
  const Bytes big = random_bytes(50u << 20, 1);
  std::thread t([&] {
    a->send("big", big);
    a->flush();
  });
  const Bytes got = b->recv("big");
  t.join();
  ASSERT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big);
}

TEST_P(Conformance, ManySmallMessagesBothWaysAtOnce) {
  // Each side sends and receives on different threads at the same time (the
  // thread-safety contract of channel.h): 2000 messages of 0..300 bytes each.
  constexpr int kCount = 2000;
  auto sender = [](Channel& ch, unsigned seed) {
    std::mt19937 rng(seed);
    for (int i = 0; i < kCount; ++i) ch.send("m", random_bytes(rng() % 301, seed + i));
    ch.flush();
  };
  auto receiver = [](Channel& ch, unsigned seed, bool* ok) {
    std::mt19937 rng(seed);
    *ok = true;
    for (int i = 0; i < kCount; ++i) {
      if (ch.recv("m") != random_bytes(rng() % 301, seed + i)) *ok = false;
    }
  };
  bool ok_a = false, ok_b = false;
  std::thread t1(sender, std::ref(*a), 100u), t2(sender, std::ref(*b), 200u);
  std::thread t3(receiver, std::ref(*a), 200u, &ok_a), t4(receiver, std::ref(*b), 100u, &ok_b);
  t1.join();
  t2.join();
  t3.join();
  t4.join();
  EXPECT_TRUE(ok_a);
  EXPECT_TRUE(ok_b);
  EXPECT_EQ(a->stats().sent.messages, kCount);
  EXPECT_EQ(b->stats().received.messages, kCount);
}

TEST_P(Conformance, BothSidesSendLargeMessagesBeforeReceiving) {
  // The share-exchange pattern: each side sends 32 MiB, then receives the
  // other's. Blocking writes would deadlock once the socket buffers fill.
  const Bytes x = random_bytes(32u << 20, 3), y = random_bytes(32u << 20, 4);
  Bytes got_by_b;
  std::thread t([&] {
    b->send("share", y);
    got_by_b = b->recv("share");
  });
  a->send("share", x);
  const Bytes got_by_a = a->recv("share");
  t.join();
  EXPECT_TRUE(got_by_a == y);
  EXPECT_TRUE(got_by_b == x);
}

TEST_P(Conformance, PingPongKeepsOrder) {
  std::string b_error;
  std::thread t([&] {
    try {
      for (int i = 0; i < 500; ++i) b->send("pong", b->recv("ping"));
      b->flush();  // the last pong is not followed by a recv, which would flush it
    } catch (const Error& e) {
      b_error = e.what();
    }
  });
  int mismatches = 0;
  try {
    for (int i = 0; i < 500; ++i) {
      const Bytes m = random_bytes(static_cast<std::size_t>(i % 37), static_cast<unsigned>(i));
      a->send("ping", m);
      mismatches += a->recv("pong") != m;
    }
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
    a->close();
  }
  t.join();
  EXPECT_EQ(b_error, "");
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(a->stats().rounds, 500);
  EXPECT_EQ(b->stats().rounds, 500);
}

TEST_P(Conformance, CountersMatchAHandCountedExchange) {
  a->send("a", std::string(10, 'x'));  // 1 + 1 + 8 + 10 = 20 bytes
  EXPECT_EQ(b->recv("a").size(), 10u);
  b->send("bb", std::string(3, 'y'));  // 1 + 2 + 8 + 3 = 14 bytes
  EXPECT_EQ(a->recv("bb").size(), 3u);
  const ChannelStats& sa = a->stats();
  const ChannelStats& sb = b->stats();
  EXPECT_EQ(sa.sent.bytes, 20);
  EXPECT_EQ(sa.sent.messages, 1);
  EXPECT_EQ(sa.received.bytes, 14);
  EXPECT_EQ(sa.received.messages, 1);
  EXPECT_EQ(sa.sent_by_tag.at("a").bytes, 20);
  EXPECT_EQ(sa.received_by_tag.at("bb").bytes, 14);
  EXPECT_EQ(sb.sent.bytes, 14);
  EXPECT_EQ(sb.received.bytes, 20);
  // One round each: a sent once, b answered once (channel.h).
  EXPECT_EQ(sa.rounds, 1);
  EXPECT_EQ(sb.rounds, 1);
}

TEST_P(Conformance, DesyncNamesBothTags) {
  a->send("shares", "12345");
  const Error e = error_of([&] { b->recv("triples"); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
  EXPECT_TRUE(contains(e.what(), "expected message 'triples', got 'shares'")) << e.what();
}

TEST_P(Conformance, OversizedMessageRefusedByTheReceiver) {
  b->set_max_message_bytes(1000);
  a->send("blob", Bytes(5000, 1));
  a->flush();
  const Error e = error_of([&] { b->recv("blob"); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
  EXPECT_TRUE(contains(e.what(), "announces 5000 bytes, more than the limit of 1000")) << e.what();
}

TEST_P(Conformance, SilentPeerTimesOut) {
  b->set_timeout(300ms);
  const auto t0 = Clock::now();
  const Error e = error_of([&] { b->recv("never"); });
  const double s = seconds_since(t0);
  EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(e.what(), "timed out")) << e.what();
  EXPECT_GE(s, 0.29);
  EXPECT_LT(s, 1.3);
}

TEST_P(Conformance, PeerCloseIsSeenAfterTheBufferedMessages) {
  a->send("last", "bye");
  a->close();
  EXPECT_EQ(b->recv("last").size(), 3u);
  b->set_timeout(5s);
  const auto t0 = Clock::now();
  const Error e = error_of([&] { b->recv("more"); });
  EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(e.what(), "closed")) << e.what();
  EXPECT_LT(seconds_since(t0), 1.0);
  // Sending to a closed peer fails too, without killing the process (SIGPIPE).
  const Error e2 = error_of([&] {
    for (int i = 0; i < 100; ++i) {
      b->send("x", Bytes(1 << 16));
      b->flush();
    }
  });
  EXPECT_EQ(e2.category(), ErrorCategory::kPeerFailure);
}

TEST_P(Conformance, CloseWakesABlockedRecvOnAnotherThread) {
  b->set_timeout(10s);
  std::atomic<bool> failed{false};
  const auto t0 = Clock::now();
  std::thread t([&] {
    try {
      b->recv("never");
    } catch (const Error& e) {
      failed = e.category() == ErrorCategory::kPeerFailure;
    }
  });
  std::this_thread::sleep_for(100ms);
  b->close();
  t.join();
  EXPECT_TRUE(failed);
  EXPECT_LT(seconds_since(t0), 2.0);
}

INSTANTIATE_TEST_SUITE_P(Transports, Conformance,
                         ::testing::Values(TransportCase{"memory", &memory_pair},
                                           TransportCase{"tcp", &tcp_pair},
                                           TransportCase{"tls", &tls_pair}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- sockets only: hostile and dying peers ----------------------------------------

namespace {

// A TLS channel whose raw byte stream a test can write (frames of its own making).
class RawTls : public TlsChannel {
 public:
  using TlsChannel::TlsChannel;
  void raw(std::span<const std::uint8_t> d) {
    write_bytes(d);
    flush_bytes();
    if (!wait_sent(Clock::now() + 5s)) throw Error(ErrorCategory::kPeerFailure, "raw write failed");
  }
};

// Writes raw bytes to a connected socket, as TCP or inside TLS.
struct RawWriter {
  std::function<void(std::span<const std::uint8_t>)> write;
  std::unique_ptr<RawTls> tls;
  Socket tcp;
};

RawWriter raw_client(bool tls, std::uint16_t port) {
  RawWriter w;
  Socket s = tcp_connect("127.0.0.1", port, Clock::now() + 5s);
  if (tls) {
    w.tls = std::make_unique<RawTls>(TlsContext(pki().config("client", "server")), std::move(s),
                                     TlsRole::kClient, Clock::now() + 5s, "server", "server");
    w.write = [p = w.tls.get()](std::span<const std::uint8_t> d) { p->raw(d); };
  } else {
    w.tcp = std::move(s);
    w.write = [fd = w.tcp.fd()](std::span<const std::uint8_t> d) {
      std::size_t done = 0;
      while (done < d.size()) {
        const ssize_t n = send_some(fd, d.subspan(done));
        if (n > 0) {
          done += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EAGAIN) {
          wait_fd(fd, POLLOUT, Clock::now() + 5s);
        } else {
          throw Error(ErrorCategory::kPeerFailure, "raw write failed");
        }
      }
    };
  }
  return w;
}

std::unique_ptr<Channel> server_side(bool tls, TcpListener& l) {
  Socket s = l.accept(Clock::now() + 5s);
  if (!tls) return std::make_unique<TcpChannel>(std::move(s));
  return std::make_unique<TlsChannel>(TlsContext(pki().config("server", "client")), std::move(s),
                                      TlsRole::kServer, Clock::now() + 5s, "client");
}

Bytes frame_header(const std::string& tag, std::uint64_t len) {
  Bytes h;
  h.push_back(static_cast<std::uint8_t>(tag.size()));
  for (char c : tag) h.push_back(static_cast<std::uint8_t>(c));
  for (int i = 0; i < 8; ++i) h.push_back(static_cast<std::uint8_t>(len >> (8 * i)));
  return h;
}

class SocketTransport : public ::testing::TestWithParam<bool> {};  // param: TLS

}  // namespace

TEST_P(SocketTransport, PeerProcessKilledMidMessageFailsFast) {
  const bool tls = GetParam();
  (void)pki();  // generated before fork, used by both processes
  TcpListener l("127.0.0.1", 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Announce 1 MiB, send half of it, die without closing anything.
    try {
      RawWriter w = raw_client(tls, l.port());
      w.write(frame_header("data", 1 << 20));
      w.write(Bytes(1 << 19, 7));
    } catch (...) {
      _exit(3);
    }
    raise(SIGKILL);
    _exit(4);
  }
  std::unique_ptr<Channel> ch = server_side(tls, l);
  ch->set_timeout(2s);
  const auto t0 = Clock::now();
  const Error e = error_of([&] { ch->recv("data"); });
  const double s = seconds_since(t0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(e.what(), "peer closed the connection")) << e.what();
  EXPECT_LT(s, 1.0) << e.what();
}

TEST_P(SocketTransport, PeerProcessThatGoesSilentTimesOut) {
  const bool tls = GetParam();
  (void)pki();
  TcpListener l("127.0.0.1", 0);
  int done_pipe[2];
  ASSERT_EQ(pipe(done_pipe), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(done_pipe[1]);
    try {
      RawWriter w = raw_client(tls, l.port());
      w.write(frame_header("data", 100));
      w.write(Bytes(10, 7));
      char c;
      (void)!read(done_pipe[0], &c, 1);  // stay connected and silent until told
    } catch (...) {
      _exit(3);
    }
    _exit(0);
  }
  close(done_pipe[0]);
  std::unique_ptr<Channel> ch = server_side(tls, l);
  ch->set_timeout(400ms);
  const auto t0 = Clock::now();
  const Error e = error_of([&] { ch->recv("data"); });
  const double s = seconds_since(t0);
  close(done_pipe[1]);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(e.what(), "timed out after 400 ms")) << e.what();
  EXPECT_GE(s, 0.39);
  EXPECT_LT(s, 1.4);
}

TEST_P(SocketTransport, HugeAnnouncedLengthRefusedBeforeAllocation) {
  const bool tls = GetParam();
  TcpListener l("127.0.0.1", 0);
  RawWriter w;
  std::thread t([&] { w = raw_client(tls, l.port()); });
  std::unique_ptr<Channel> ch = server_side(tls, l);
  t.join();
  // 2^62 bytes: allocating first would throw std::bad_alloc, not this Error.
  w.write(frame_header("x", std::uint64_t{1} << 62));
  const Error e = error_of([&] { ch->recv("x"); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
  EXPECT_TRUE(contains(e.what(), "announces 4611686018427387904 bytes, more than the limit of"))
      << e.what();
}

TEST_P(SocketTransport, LengthOneOverASmallLimitRefused) {
  const bool tls = GetParam();
  TcpListener l("127.0.0.1", 0);
  RawWriter w;
  std::thread t([&] { w = raw_client(tls, l.port()); });
  std::unique_ptr<Channel> ch = server_side(tls, l);
  t.join();
  ch->set_max_message_bytes(100);
  w.write(frame_header("x", 101));
  const Error e = error_of([&] { ch->recv("x"); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
  EXPECT_TRUE(contains(e.what(), "more than the limit of 100")) << e.what();
}

TEST_P(SocketTransport, GarbageTagLengthIsABadMessage) {
  const bool tls = GetParam();
  TcpListener l("127.0.0.1", 0);
  RawWriter w;
  std::thread t([&] { w = raw_client(tls, l.port()); });
  std::unique_ptr<Channel> ch = server_side(tls, l);
  t.join();
  w.write(Bytes{0, 0, 0, 0});
  const Error e = error_of([&] { ch->recv("x"); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
  EXPECT_TRUE(contains(e.what(), "invalid tag length 0")) << e.what();
}

INSTANTIATE_TEST_SUITE_P(TcpAndTls, SocketTransport, ::testing::Values(false, true),
                         [](const auto& info) { return std::string(info.param ? "tls" : "tcp"); });

// ---- TCP plumbing ------------------------------------------------------------------

TEST(Tcp, ListenerOnPortZeroReportsTheEphemeralPort) {
  TcpListener a("127.0.0.1", 0), b("127.0.0.1", 0);
  EXPECT_NE(a.port(), 0);
  EXPECT_NE(a.port(), b.port());
  // The port is really in use.
  const Error e = error_of([&] { TcpListener c("127.0.0.1", a.port()); });
  EXPECT_EQ(e.category(), ErrorCategory::kIo);
  EXPECT_TRUE(contains(e.what(), "cannot listen on 127.0.0.1:")) << e.what();
}

TEST(Tcp, ConnectRetriesUntilThePeerListens) {
  std::uint16_t port = 0;
  {
    TcpListener probe("127.0.0.1", 0);
    port = probe.port();
  }  // now closed: connects are refused until the thread below listens
  std::unique_ptr<TcpListener> late;
  std::thread t([&] {
    std::this_thread::sleep_for(300ms);
    late = std::make_unique<TcpListener>("127.0.0.1", port);
  });
  const auto t0 = Clock::now();
  Socket s = tcp_connect("127.0.0.1", port, Clock::now() + 5s);
  t.join();
  EXPECT_TRUE(s.valid());
  EXPECT_GE(seconds_since(t0), 0.25);
  Socket peer = late->accept(Clock::now() + 1s);
  EXPECT_TRUE(peer.valid());
}

TEST(Tcp, ConnectGivesUpAtTheDeadline) {
  std::uint16_t port = 0;
  {
    TcpListener probe("127.0.0.1", 0);
    port = probe.port();
  }
  const auto t0 = Clock::now();
  const Error e = error_of([&] { tcp_connect("127.0.0.1", port, Clock::now() + 400ms); });
  const double s = seconds_since(t0);
  EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(e.what(), "could not connect to 127.0.0.1:" + std::to_string(port) +
                                     " within 0.4 s (last error: Connection refused)"))
      << e.what();
  EXPECT_GE(s, 0.39);
  EXPECT_LT(s, 1.0);
}

TEST(Tcp, UnknownHostIsBadInput) {
  const Error e = error_of([] { tcp_connect("no-such-host.invalid", 1, Clock::now() + 2s); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
  EXPECT_TRUE(contains(e.what(), "cannot resolve host 'no-such-host.invalid'")) << e.what();
}

TEST(Tcp, AcceptTimesOut) {
  TcpListener l("127.0.0.1", 0);
  const auto t0 = Clock::now();
  const Error e = error_of([&] { l.accept(Clock::now() + 200ms); });
  EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(e.what(), "no connection on 127.0.0.1:")) << e.what();
  EXPECT_LT(seconds_since(t0), 1.0);
}

TEST(Tcp, Ipv6Loopback) {
  std::unique_ptr<TcpListener> l;
  try {
    l = std::make_unique<TcpListener>("::1", 0);
  } catch (const Error&) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  std::thread t([&] {
    TcpChannel c(tcp_connect("::1", l->port(), Clock::now() + 2s));
    c.send("v6", "hello");
    c.flush();
  });
  TcpChannel s(l->accept(Clock::now() + 2s));
  EXPECT_EQ(s.recv("v6").size(), 5u);
  t.join();
}

TEST(Tcp, SendThenDestroyLosesNothing) {
  // A sender that flushes and closes right away loses nothing.
  auto [a, b] = tcp_pair();
  const Bytes m = random_bytes(3 << 20, 9);
  std::thread t([&, &a = a] {
    a->send("m", m);
    a.reset();  // destructor: flush, shutdown, close
  });
  EXPECT_EQ(b->recv("m"), m);
  t.join();
}

TEST(Tcp, SendToAPeerThatNeverReadsTimesOut) {
  auto [a, b] = tcp_pair();
  a->set_timeout(500ms);
  a->set_max_message_bytes(1 << 20);  // queue cap: 2 MiB beyond the socket buffers
  const Bytes chunk(1 << 20, 1);
  const auto t0 = Clock::now();
  const Error e = error_of([&, &a = a] {
    for (int i = 0; i < 256; ++i) a->send("c", chunk);
  });
  EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(e.what(), "timed out after 500 ms: the peer is not reading")) << e.what();
  EXPECT_LT(seconds_since(t0), 5.0);
}

TEST(Tcp, BatchingHoldsMessagesUntilFlush) {
  auto [a, b] = tcp_pair();
  auto* tcp = dynamic_cast<TcpChannel*>(a.get());
  ASSERT_TRUE(tcp);
  tcp->set_batching(true);
  for (int i = 0; i < 100; ++i) a->send("m", "small");
  pollfd p{dynamic_cast<TcpChannel*>(b.get())->native_handle(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 100), 0);  // nothing on the wire yet
  a->flush();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(b->recv("m").size(), 5u);
  EXPECT_EQ(b->stats().received.bytes, 100 * (1 + 1 + 8 + 5));
}

TEST(Tcp, WaitSentReportsDelivery) {
  auto [a, b] = tcp_pair();
  auto* tcp = dynamic_cast<TcpChannel*>(a.get());
  a->send("m", Bytes(8 << 20, 2));  // more than the socket buffers hold
  EXPECT_FALSE(tcp->wait_sent(Clock::now() + 100ms));
  std::thread t([&, &b = b] { b->recv("m"); });
  EXPECT_TRUE(tcp->wait_sent(Clock::now() + 5s));
  t.join();
}
