// The delaying proxy on loopback: added RTT, byte-exact order, half-close,
// resets, backpressure, pacing, concurrency; and the probe through it.
#include "net/proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "core/error.h"

namespace blindfold::net {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// A loopback listener on an ephemeral port.
struct Listener {
  int fd = -1;
  std::uint16_t port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd, 128), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd); }
  // Accepts one connection within 5 s, or returns -1.
  int accept_one() const {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return -1;
    const int c = ::accept(fd, nullptr, nullptr);
    if (c >= 0) {
      int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return c;
  }
};

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{10, 0};  // no test may hang on a lost byte
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

bool send_all(int fd, const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool recv_all(int fd, std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// Echoes every connection until the client closes; `conns` connections.
class EchoServer {
 public:
  explicit EchoServer(int conns = 1) {
    thread_ = std::thread([this, conns] {
      std::vector<std::thread> workers;
      for (int i = 0; i < conns; ++i) {
        const int c = listener_.accept_one();
        if (c < 0) break;
        workers.emplace_back([c] {
          std::vector<std::uint8_t> buf(1 << 16);
          for (;;) {
            const ssize_t r = ::recv(c, buf.data(), buf.size(), 0);
            if (r <= 0 || !send_all(c, buf.data(), static_cast<std::size_t>(r))) break;
          }
          ::close(c);
        });
      }
      for (auto& w : workers) w.join();
    });
  }
  ~EchoServer() { thread_.join(); }
  std::uint16_t port() const { return listener_.port; }

 private:
  Listener listener_;
  std::thread thread_;
};

ProxyOptions options_to(std::uint16_t target, std::chrono::microseconds delay) {
  ProxyOptions o;
  o.listen = {"127.0.0.1", 0};
  o.connect = {"127.0.0.1", target};
  o.delay = delay;
  return o;
}

std::vector<double> ping_pong(int fd, int n) {
  std::vector<double> rtt;
  std::uint8_t ping[8] = {1, 2, 3, 4, 5, 6, 7, 8}, pong[8];
  for (int i = 0; i < n; ++i) {
    ping[0] = static_cast<std::uint8_t>(i);
    const auto t0 = Clock::now();
    EXPECT_TRUE(send_all(fd, ping, 8));
    EXPECT_TRUE(recv_all(fd, pong, 8));
    rtt.push_back(ms_since(t0));
    EXPECT_EQ(std::memcmp(ping, pong, 8), 0);
  }
  std::sort(rtt.begin(), rtt.end());
  return rtt;
}

TEST(Proxy, TwentyMsOneWayDelayAddsFortyMsToTheRtt) {
  EchoServer echo;
  Proxy proxy(options_to(echo.port(), 20ms));
  proxy.start();
  const int fd = connect_to(proxy.port());
  const std::vector<double> rtt = ping_pong(fd, 10);
  ::close(fd);
  // Every round trip waits 20 ms in each direction; the slack covers
  // scheduling on a loaded 2-core machine.
  EXPECT_GE(rtt.front(), 40.0);
  EXPECT_LT(rtt[rtt.size() / 2], 40.0 + 15.0);
}

TEST(Proxy, ZeroDelayAddsLittle) {
  EchoServer echo;
  Proxy proxy(options_to(echo.port(), 0us));
  proxy.start();
  const int fd = connect_to(proxy.port());
  const std::vector<double> rtt = ping_pong(fd, 20);
  ::close(fd);
  EXPECT_LT(rtt[rtt.size() / 2], 5.0);
}

TEST(Proxy, EightMiBOfRandomBytesArriveExactlyAndInOrder) {
  EchoServer echo;
  Proxy proxy(options_to(echo.port(), 1ms));
  proxy.start();
  std::vector<std::uint8_t> data(8 << 20);
  std::mt19937_64 rng(42);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  const int fd = connect_to(proxy.port());
  // Odd-sized writes, so chunk boundaries fall everywhere.
  std::thread writer([&] {
    std::size_t off = 0, step = 1;
    while (off < data.size()) {
      const std::size_t n = std::min(step, data.size() - off);
      ASSERT_TRUE(send_all(fd, data.data() + off, n));
      off += n;
      step = step * 7 % 100'003 + 1;
    }
  });
  std::vector<std::uint8_t> back(data.size());
  const bool ok = recv_all(fd, back.data(), back.size());
  writer.join();
  ::close(fd);
  ASSERT_TRUE(ok);
  EXPECT_TRUE(back == data);
  // The counter is bumped just after send() returns: give it a moment.
  const auto want = static_cast<std::int64_t>(2 * data.size());
  for (int i = 0; i < 100 && proxy.stats().bytes < want; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(proxy.stats().bytes, want);
}

TEST(Proxy, HalfCloseIsForwardedAfterTheDelay) {
  Listener target;
  ProxyOptions o = options_to(target.port, 10ms);
  Proxy proxy(o);
  proxy.start();
  std::thread server([&] {
    const int c = target.accept_one();
    ASSERT_GE(c, 0);
    std::string got;
    char buf[64];
    for (;;) {  // until the client's FIN arrives through the proxy
      const ssize_t r = ::recv(c, buf, sizeof buf, 0);
      if (r <= 0) break;
      got.append(buf, static_cast<std::size_t>(r));
    }
    EXPECT_EQ(got, "request");
    send_all(c, reinterpret_cast<const std::uint8_t*>("reply"), 5);
    ::close(c);
  });
  const int fd = connect_to(proxy.port());
  const auto t0 = Clock::now();
  ASSERT_TRUE(send_all(fd, reinterpret_cast<const std::uint8_t*>("request"), 7));
  ::shutdown(fd, SHUT_WR);
  std::string reply;
  char buf[64];
  for (;;) {
    const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) {
      EXPECT_EQ(r, 0) << "expected an orderly close, got " << std::strerror(errno);
      break;
    }
    reply.append(buf, static_cast<std::size_t>(r));
  }
  EXPECT_GE(ms_since(t0), 20.0);
  ::close(fd);
  server.join();
  EXPECT_EQ(reply, "reply");
}

TEST(Proxy, UnreachableTargetClosesTheClientAndKeepsServing) {
  std::uint16_t dead_port;
  {
    Listener gone;
    dead_port = gone.port;
  }
  Proxy proxy(options_to(dead_port, 0us));
  proxy.start();
  const int fd = connect_to(proxy.port());
  char b;
  EXPECT_LE(::recv(fd, &b, 1, 0), 0);
  ::close(fd);
  for (int i = 0; i < 100 && proxy.stats().failed == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(proxy.stats().failed, 1);
}

TEST(Proxy, PeerResetDoesNotCrashAndBecomesAReset) {
  Listener target;
  Proxy proxy(options_to(target.port, 1ms));
  proxy.start();
  for (int round = 0; round < 3; ++round) {
    const int fd = connect_to(proxy.port());
    const int c = target.accept_one();
    ASSERT_GE(c, 0);
    linger l{1, 0};
    ::setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(c);  // RST to the proxy
    char b;
    EXPECT_LE(::recv(fd, &b, 1, 0), 0);
    // Writing into the dead connection must not take the proxy down.
    std::vector<std::uint8_t> junk(1 << 16, 1);
    for (int i = 0; i < 8; ++i) {
      if (::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL) < 0) break;
    }
    ::close(fd);
  }
  for (int i = 0; i < 100 && proxy.stats().active > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(proxy.stats().active, 0);
  EXPECT_EQ(proxy.stats().failed, 3);
  // Still serving.
  EchoServer echo;
  Proxy again(options_to(echo.port(), 0us));
  again.start();
  const int fd = connect_to(again.port());
  EXPECT_EQ(ping_pong(fd, 1).size(), 1u);
  ::close(fd);
}

TEST(Proxy, QueueIsBoundedWhenTheReceiverStalls) {
  Listener target;
  ProxyOptions o = options_to(target.port, 0us);
  o.max_queue_bytes = 1 << 20;
  Proxy proxy(o);
  proxy.start();
  const int fd = connect_to(proxy.port());
  const int c = target.accept_one();  // never reads
  ASSERT_GE(c, 0);
  std::vector<std::uint8_t> block(1 << 16, 7);
  std::size_t sent = 0;
  const auto t0 = Clock::now();
  while (ms_since(t0) < 1500) {
    const ssize_t w = ::send(fd, block.data(), block.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
      sent += static_cast<std::size_t>(w);
    } else {
      std::this_thread::sleep_for(5ms);
    }
    if (sent > (std::size_t{256} << 20)) break;
  }
  // The socket buffers fill and the sender is held back; the proxy holds at
  // most its cap plus one chunk.
  EXPECT_LT(sent, std::size_t{256} << 20);
  EXPECT_LE(proxy.stats().peak_queued, (1 << 20) + (64 << 10) + 64);
  EXPECT_GE(proxy.stats().peak_queued, 512 << 10);
  ::close(fd);
  ::close(c);
}

TEST(Proxy, RatePacesEachDirection) {
  EchoServer echo;
  ProxyOptions o = options_to(echo.port(), 0us);
  o.rate_mbit = 40;
  Proxy proxy(o);
  proxy.start();
  const int fd = connect_to(proxy.port());
  std::vector<std::uint8_t> data(2 << 20, 3), back(data.size());
  const auto t0 = Clock::now();
  std::thread writer([&] { send_all(fd, data.data(), data.size()); });
  EXPECT_TRUE(recv_all(fd, back.data(), back.size()));
  const double ms = ms_since(t0);
  writer.join();
  ::close(fd);
  // 2 MiB at 40 Mbit/s is 419 ms; both directions are paced, in a pipeline.
  EXPECT_GE(ms, 400.0);
  EXPECT_LT(ms, 1500.0);
}

TEST(Proxy, ServesManyConnectionsConcurrently) {
  constexpr int kConns = 40;
  EchoServer echo(kConns);
  Proxy proxy(options_to(echo.port(), 50ms));
  proxy.start();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  const auto t0 = Clock::now();
  for (int i = 0; i < kConns; ++i) {
    clients.emplace_back([&] {
      const int fd = connect_to(proxy.port());
      if (ping_pong(fd, 2).front() >= 100.0) ++ok;
      ::close(fd);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kConns);
  // Serially this would take 40 * 2 * 100 ms = 8 s.
  EXPECT_LT(ms_since(t0), 2000.0);
  EXPECT_EQ(proxy.stats().accepted, kConns);
}

TEST(Proxy, StopsPromptlyWithOpenConnections) {
  EchoServer echo;
  auto proxy = std::make_unique<Proxy>(options_to(echo.port(), 1000ms));
  proxy->start();
  const int fd = connect_to(proxy->port());
  std::uint8_t b[8] = {};
  ASSERT_TRUE(send_all(fd, b, 8));
  // Let the proxy accept and reach the echo server before stopping it.
  for (int i = 0; i < 200 && proxy->stats().active == 0; ++i) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(50ms);
  const auto t0 = Clock::now();
  proxy.reset();
  EXPECT_LT(ms_since(t0), 500.0);
  EXPECT_LE(::recv(fd, b, 8, 0), 0);  // reset, not a late echo
  ::close(fd);
}

TEST(Probe, MeasuresRttAndThroughputThroughTheProxy) {
  ProbeServer server({"127.0.0.1", 0});
  std::thread serve([&] { server.serve_one(10s); });
  Proxy proxy(options_to(server.port(), 5ms));
  proxy.start();
  ProbeOptions o;
  o.pings = 5;
  o.bytes = 4 << 20;
  o.timeout = 10s;
  const ProbeResult r = probe_measure({"127.0.0.1", proxy.port()}, o);
  serve.join();
  EXPECT_EQ(r.pings, 5);
  EXPECT_GE(r.rtt_min_us, 10'000.0);
  EXPECT_LE(r.rtt_min_us, r.rtt_median_us);
  EXPECT_LE(r.rtt_median_us, r.rtt_max_us);
  EXPECT_EQ(r.bytes, 4u << 20);
  EXPECT_GT(r.mbit_s, 0.0);
  const std::string j = r.to_json("127.0.0.1:1");
  EXPECT_NE(j.find("\"rtt_us\":{\"median\":"), std::string::npos) << j;
  EXPECT_NE(j.find("\"mbit_s\":"), std::string::npos) << j;
}

TEST(Probe, ServerDropsNonProbesGoesOnAndTimesOut) {
  ProbeServer server({"127.0.0.1", 0});
  EXPECT_THROW(server.serve_one(100ms), Error);  // nobody came
  std::thread clients([&] {
    // A client that is not a probe, and one that closes at once (a
    // reachability check), are dropped; the real probe is then served.
    const int fd = connect_to(server.port());
    std::uint8_t junk[24] = {'G', 'E', 'T', ' '};
    send_all(fd, junk, sizeof junk);
    ::close(fd);
    ::close(connect_to(server.port()));
    ProbeOptions o;
    o.pings = 3;
    o.bytes = 4096;
    const ProbeResult r = probe_measure({"127.0.0.1", server.port()}, o);
    EXPECT_EQ(r.bytes, 4096u);
  });
  EXPECT_NO_THROW(server.serve_one(5s));
  clients.join();
}

TEST(Parse, HostPort) {
  EXPECT_EQ(parse_host_port("10.77.0.11:17000").host, "10.77.0.11");
  EXPECT_EQ(parse_host_port("10.77.0.11:17000").port, 17000);
  EXPECT_EQ(parse_host_port("[::1]:80").host, "::1");
  EXPECT_EQ(parse_host_port("[::1]:80").str(), "[::1]:80");
  EXPECT_EQ(parse_host_port("localhost:0").port, 0);
  for (const char* bad : {"", "host", ":80", "h:", "h:x", "h:65536", "::1:80", "h:123456"}) {
    EXPECT_THROW(parse_host_port(bad), Error) << bad;
  }
}

TEST(Parse, ByteCount) {
  EXPECT_EQ(parse_byte_count("1048576"), 1048576u);
  EXPECT_EQ(parse_byte_count("64MiB"), 64u << 20);
  EXPECT_EQ(parse_byte_count("64M"), 64u << 20);
  EXPECT_EQ(parse_byte_count("512k"), 512u << 10);
  EXPECT_EQ(parse_byte_count("1.5GiB"), 3u << 29);
  EXPECT_EQ(parse_byte_count("100B"), 100u);
  for (const char* bad : {"", "MiB", "-1", "1.5", "10 MiB", "10XB", "1e30", "nan"}) {
    EXPECT_THROW(parse_byte_count(bad), Error) << bad;
  }
}

TEST(Proxy, RejectsBadOptions) {
  ProxyOptions o = options_to(1, -1ms);
  EXPECT_THROW(Proxy{o}, Error);
  o = options_to(1, 0us);
  o.rate_mbit = -5;
  EXPECT_THROW(Proxy{o}, Error);
}

}  // namespace
}  // namespace blindfold::net
