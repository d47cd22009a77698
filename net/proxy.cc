#include "net/proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <vector>

#include "core/error.h"

namespace blindfold::net {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::microseconds;

constexpr std::size_t kChunkBytes = 64 << 10;  // one recv() at most
constexpr int kReadsPerWakeup = 16;            // fairness between the two directions
// What a queued chunk costs besides its bytes (deque slot, vector, heap
// header), so that a peer dribbling 1-byte segments cannot make the queue's
// memory exceed its cap by a large factor.
constexpr std::size_t kChunkOverhead = 64;

std::string errno_text(int e) {
  return std::strerror(e);
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void make_nonblocking(int fd) {
  const int fl = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

// Closes with RST instead of FIN, so the peer sees the failure as a reset.
void close_reset(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

struct AddrInfoDeleter {
  void operator()(addrinfo* a) const { ::freeaddrinfo(a); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

AddrInfoPtr resolve(const HostPort& hp, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  const std::string port = std::to_string(hp.port);
  const int rc = ::getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    throw Error(ErrorCategory::kBadInput,
                "cannot resolve '" + hp.host + "': " + std::string(::gai_strerror(rc)));
  }
  return AddrInfoPtr(res);
}

timespec to_timespec(Clock::duration d) {
  if (d < Clock::duration::zero()) d = Clock::duration::zero();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return ts;
}

// Waits for `events` on fd until the deadline; a second fd (the stop pipe,
// or -1) ends the wait early. Returns revents of fd, 0 on timeout, -1 when
// the second fd became readable.
int wait_ready(int fd, short events, Clock::time_point deadline, int stop_fd = -1) {
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) return 0;
    pollfd p[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    const timespec ts = to_timespec(deadline - now);
    const int rc = ::ppoll(p, stop_fd >= 0 ? 2 : 1, &ts, nullptr);
    if (rc < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCategory::kIo, "poll: " + errno_text(errno));
    }
    if (rc == 0) continue;  // re-checks the deadline
    if (stop_fd >= 0 && (p[1].revents & POLLIN)) return -1;
    if (p[0].revents) return p[0].revents;
  }
}

// Non-blocking connect to the first address that answers. Returns -1 on
// failure (error text in `why`), -2 when stopped.
int connect_any(const addrinfo* list, Clock::time_point deadline, int stop_fd, std::string& why) {
  why = "no address";
  for (const addrinfo* ai = list; ai; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      why = "socket: " + errno_text(errno);
      continue;
    }
    make_nonblocking(fd);
    set_nodelay(fd);
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
      why = errno_text(errno);
      ::close(fd);
      continue;
    }
    if (rc < 0) {
      const int ev = wait_ready(fd, POLLOUT, deadline, stop_fd);
      if (ev < 0) {
        ::close(fd);
        return -2;
      }
      if (ev == 0) {
        why = "timed out";
        ::close(fd);
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        why = errno_text(err);
        ::close(fd);
        continue;
      }
    }
    return fd;
  }
  return -1;
}

void atomic_max(std::atomic<std::int64_t>& a, std::int64_t v) {
  std::int64_t cur = a.load(std::memory_order_relaxed);
  while (cur < v && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

// Bytes held for one direction of one connection. A chunk is what one recv()
// returned, stamped with its release time (arrival + delay); an end-of-stream
// marker travels in the same queue so the FIN is delayed like the data.
struct Chunk {
  Clock::time_point release;
  std::vector<std::uint8_t> data;
  bool eof = false;
};

struct Direction {
  int from = -1, to = -1;
  std::deque<Chunk> queue;
  std::size_t queued = 0;         // memory held: data + kChunkOverhead per chunk
  std::size_t head_sent = 0;      // bytes of queue.front() already written
  bool head_started = false;      // the head's pacing slot was taken
  bool read_eof = false;          // `from` sent FIN
  bool write_shut = false;        // FIN forwarded to `to`
  bool blocked = false;           // `to` returned EAGAIN; wait for POLLOUT
  Clock::time_point next_free{};  // rate pacing: earliest start of the next chunk

  bool wants_read(std::size_t cap) const { return !read_eof && queued < cap; }
  // When the head may start, or max() when nothing is waiting on time.
  Clock::time_point due() const {
    if (queue.empty() || blocked) return Clock::time_point::max();
    if (head_started) return Clock::time_point::min();
    return std::max(queue.front().release, next_free);
  }
};

}  // namespace

// ---- HostPort ---------------------------------------------------------------

std::string HostPort::str() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

HostPort parse_host_port(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return Error(ErrorCategory::kBadInput,
                 "bad address '" + std::string(text) + "' (want HOST:PORT): " + why);
  };
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) throw bad("no port");
  std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    throw bad("put an IPv6 address in brackets");
  }
  if (host.empty()) throw bad("empty host");
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    throw bad("port must be a number");
  }
  const long p = std::stol(std::string(port));
  if (p > 65535) throw bad("port out of range");
  return HostPort{std::string(host), static_cast<std::uint16_t>(p)};
}

std::uint64_t parse_byte_count(std::string_view text) {
  const std::string s(text);
  const auto bad = [&] {
    return Error(ErrorCategory::kBadInput,
                 "bad byte count '" + s + "' (want e.g. 1048576, 64MiB, 512k, 1G)");
  };
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    throw bad();
  }
  std::string unit = s.substr(used);
  double mult = 1;
  if (!unit.empty() && unit != "B") {
    switch (unit[0]) {
      case 'k':
      case 'K': mult = 1024.0; break;
      case 'm':
      case 'M': mult = 1024.0 * 1024; break;
      case 'g':
      case 'G': mult = 1024.0 * 1024 * 1024; break;
      default: throw bad();
    }
    const std::string rest = unit.substr(1);
    if (!(rest.empty() || rest == "B" || rest == "iB")) throw bad();
  }
  const double r = v * mult;
  if (!std::isfinite(r) || r < 0 || r > 9.2e18 || r != std::floor(r)) throw bad();
  return static_cast<std::uint64_t>(r);
}

// ---- sockets ----------------------------------------------------------------

namespace {

int listen_tcp(const HostPort& at, int backlog) {
  const AddrInfoPtr list = resolve(at, true);
  std::string why = "no address";
  for (const addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      why = errno_text(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, backlog) == 0) return fd;
    why = errno_text(errno);
    ::close(fd);
  }
  throw Error(ErrorCategory::kIo, "cannot listen on " + at.str() + ": " + why);
}

std::uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

int connect_tcp(const HostPort& to, std::chrono::milliseconds timeout) {
  const AddrInfoPtr list = resolve(to, false);
  std::string why;
  const int fd = connect_any(list.get(), Clock::now() + timeout, -1, why);
  if (fd < 0) {
    throw Error(ErrorCategory::kPeerFailure, "cannot connect to " + to.str() + ": " + why);
  }
  return fd;
}

}  // namespace

// ---- Proxy ------------------------------------------------------------------

struct Proxy::Conn {
  int client = -1;
  std::thread thread;
  std::atomic<bool> done{false};
};

Proxy::Proxy(ProxyOptions options) : opt_(std::move(options)) {
  if (opt_.delay < microseconds::zero()) {
    throw Error(ErrorCategory::kBadInput, "the delay must not be negative");
  }
  if (opt_.rate_mbit < 0 || !std::isfinite(opt_.rate_mbit)) {
    throw Error(ErrorCategory::kBadInput, "the rate must be a positive number of Mbit/s (or 0)");
  }
  if (opt_.max_queue_bytes < kChunkBytes) opt_.max_queue_bytes = kChunkBytes;
  if (opt_.max_connections < 1) throw Error(ErrorCategory::kBadInput, "max_connections < 1");
  resolve(opt_.connect, false);  // fails now, not on the first connection
  listen_fd_ = listen_tcp(opt_.listen, 256);
  port_ = bound_port(listen_fd_);
  if (::pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(listen_fd_);
    throw Error(ErrorCategory::kIo, "pipe: " + errno_text(errno));
  }
  make_nonblocking(listen_fd_);
}

Proxy::~Proxy() {
  stop();
  if (runner_.joinable()) runner_.join();
  reap(true);
  ::close(listen_fd_);
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
}

void Proxy::start() {
  runner_ = std::thread([this] { run(); });
}

void Proxy::stop() noexcept {
  const char b = 1;
  // The pipe is never drained: once written it stays readable for everyone.
  [[maybe_unused]] const ssize_t n = ::write(stop_pipe_[1], &b, 1);
}

ProxyStats Proxy::stats() const {
  ProxyStats s;
  s.accepted = accepted_.load();
  s.refused = refused_.load();
  s.failed = failed_.load();
  s.active = active_.load();
  s.bytes = bytes_.load();
  s.peak_queued = peak_queued_.load();
  return s;
}

void Proxy::reap(bool all) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (all || (*it)->done.load()) {
      if ((*it)->thread.joinable()) (*it)->thread.join();
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void Proxy::run() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    const int rc = ::poll(p, 2, 1000);
    if (rc < 0 && errno != EINTR) {
      std::fprintf(stderr, "netproxy: poll: %s\n", errno_text(errno).c_str());
      break;
    }
    if (p[1].revents & POLLIN) break;
    reap(false);
    if (rc <= 0 || !(p[0].revents & POLLIN)) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::fprintf(stderr, "netproxy: accept: %s\n", errno_text(errno).c_str());
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      continue;  // EAGAIN, ECONNABORTED, EINTR: nothing to do
    }
    if (active_.load() >= opt_.max_connections) {
      ++refused_;
      if (opt_.verbose) std::fprintf(stderr, "netproxy: refused a connection (limit reached)\n");
      close_reset(fd);
      continue;
    }
    ++accepted_;
    ++active_;
    auto c = std::make_unique<Conn>();
    c->client = fd;
    Conn* raw = c.get();
    try {
      std::lock_guard<std::mutex> lock(mu_);
      conns_.push_back(std::move(c));
      raw->thread = std::thread([this, raw] { serve(raw); });
    } catch (const std::system_error& e) {  // no thread to be had
      std::fprintf(stderr, "netproxy: cannot start a thread: %s\n", e.what());
      close_reset(fd);
      --active_;
      ++failed_;
      raw->done = true;
    }
  }
  reap(true);
}

void Proxy::serve(Conn* c) {
  // ppoll() may otherwise wake up to 50 us late (the default timer slack),
  // which matters for sub-millisecond delays.
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  const int a = c->client;
  make_nonblocking(a);
  set_nodelay(a);
  std::string why;
  int b = -1;
  try {
    const AddrInfoPtr target = resolve(opt_.connect, false);
    b = connect_any(target.get(), Clock::now() + opt_.connect_timeout, stop_pipe_[0], why);
  } catch (const Error& e) {
    why = e.what();
  }
  if (b < 0) {
    if (b == -1) {
      ++failed_;
      std::fprintf(stderr, "netproxy: cannot connect to %s: %s\n", opt_.connect.str().c_str(),
                   why.c_str());
    }
    close_reset(a);
    --active_;
    c->done = true;
    return;
  }
  if (opt_.verbose) std::fprintf(stderr, "netproxy: connection open\n");

  const Clock::duration delay = opt_.delay;
  // Nanoseconds per byte at the pacing rate.
  const double ns_per_byte = opt_.rate_mbit > 0 ? 8e3 / opt_.rate_mbit : 0;
  Direction d[2];
  d[0].from = a;
  d[0].to = b;
  d[1].from = b;
  d[1].to = a;
  std::vector<std::uint8_t> buf(kChunkBytes);
  bool failed = false;
  std::string fail_why;

  for (;;) {
    // 1. Forward whatever is due, in order.
    Clock::time_point now = Clock::now();
    for (Direction& dir : d) {
      while (!failed && !dir.queue.empty() && !dir.blocked) {
        Chunk& h = dir.queue.front();
        if (!dir.head_started) {
          const Clock::time_point start = std::max(h.release, dir.next_free);
          if (start > now) break;
          dir.head_started = true;
          if (ns_per_byte > 0 && !h.eof) {
            dir.next_free = start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                        ns_per_byte * static_cast<double>(h.data.size())));
          }
        }
        if (h.eof) {
          ::shutdown(dir.to, SHUT_WR);
          dir.write_shut = true;
          dir.queue.pop_front();
          dir.head_started = false;
          break;
        }
        const ssize_t w = ::send(dir.to, h.data.data() + dir.head_sent,
                                 h.data.size() - dir.head_sent, MSG_NOSIGNAL);
        if (w < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            dir.blocked = true;
            break;
          }
          failed = true;
          fail_why = "send: " + errno_text(errno);
          break;
        }
        dir.head_sent += static_cast<std::size_t>(w);
        bytes_ += w;
        if (dir.head_sent == h.data.size()) {
          dir.queued -= h.data.size() + kChunkOverhead;
          dir.queue.pop_front();
          dir.head_sent = 0;
          dir.head_started = false;
        }
      }
    }
    if (failed) break;
    if (d[0].write_shut && d[1].write_shut) break;  // both FINs forwarded: done

    // 2. Wait for input, writability, the next release time or stop.
    short ev_a = 0, ev_b = 0;
    if (d[0].wants_read(opt_.max_queue_bytes)) ev_a |= POLLIN;
    if (d[1].blocked) ev_a |= POLLOUT;
    if (d[1].wants_read(opt_.max_queue_bytes)) ev_b |= POLLIN;
    if (d[0].blocked) ev_b |= POLLOUT;
    pollfd p[3] = {{ev_a ? a : -1, ev_a, 0}, {ev_b ? b : -1, ev_b, 0}, {stop_pipe_[0], POLLIN, 0}};
    const Clock::time_point due = std::min(d[0].due(), d[1].due());
    timespec ts;
    const timespec* tsp = nullptr;
    if (due != Clock::time_point::max()) {
      ts = to_timespec(due - Clock::now());
      tsp = &ts;
    }
    const int rc = ::ppoll(p, 3, tsp, nullptr);
    if (rc < 0) {
      if (errno == EINTR) continue;
      failed = true;
      fail_why = "poll: " + errno_text(errno);
      break;
    }
    if (p[2].revents & POLLIN) {
      failed = true;
      fail_why = "proxy stopping";
      break;
    }
    // 3. Read what arrived, stamped with its arrival time.
    for (int i = 0; i < 2 && !failed; ++i) {
      Direction& in = d[i];
      Direction& out = d[1 - i];  // the direction that writes to this socket
      const short re = p[i].revents;
      if (re & POLLOUT) out.blocked = false;
      if ((re & (POLLERR | POLLHUP)) && !(p[i].events & POLLIN)) out.blocked = false;
      if (!(p[i].events & POLLIN) || !(re & (POLLIN | POLLERR | POLLHUP))) continue;
      for (int k = 0; k < kReadsPerWakeup && in.wants_read(opt_.max_queue_bytes); ++k) {
        const ssize_t n = ::recv(in.from, buf.data(), buf.size(), 0);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          failed = true;
          fail_why = "recv: " + errno_text(errno);
          break;
        }
        const Clock::time_point arrival = Clock::now();
        Chunk ch;
        ch.release = arrival + delay;
        if (n == 0) {
          ch.eof = true;
          in.read_eof = true;
          in.queue.push_back(std::move(ch));
          break;
        }
        ch.data.assign(buf.begin(), buf.begin() + n);
        in.queued += static_cast<std::size_t>(n) + kChunkOverhead;
        in.queue.push_back(std::move(ch));
        atomic_max(peak_queued_, static_cast<std::int64_t>(in.queued));
      }
    }
    if (failed) break;
  }

  if (failed) {
    // A reset (or a stop) on one side becomes a reset on the other.
    if (fail_why != "proxy stopping") {
      ++failed_;
      if (opt_.verbose) std::fprintf(stderr, "netproxy: connection reset: %s\n", fail_why.c_str());
    }
    close_reset(a);
    close_reset(b);
  } else {
    if (opt_.verbose) std::fprintf(stderr, "netproxy: connection closed\n");
    ::close(a);
    ::close(b);
  }
  --active_;
  c->done = true;
}

// ---- probe ------------------------------------------------------------------

namespace {

constexpr char kProbeMagic[8] = {'B', 'F', 'P', 'R', 'O', 'B', 'E', '1'};

void put_u64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t get_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

void read_full(int fd, std::uint8_t* p, std::size_t n, Clock::time_point deadline) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, p + got, n - got, MSG_DONTWAIT);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
      continue;
    }
    if (r == 0) throw Error(ErrorCategory::kPeerFailure, "peer closed the connection");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      throw Error(ErrorCategory::kPeerFailure, "recv: " + errno_text(errno));
    }
    if (wait_ready(fd, POLLIN, deadline) == 0)
      throw Error(ErrorCategory::kPeerFailure, "timed out");
  }
}

void write_full(int fd, const std::uint8_t* p, std::size_t n, Clock::time_point deadline) {
  std::size_t put = 0;
  while (put < n) {
    const ssize_t w = ::send(fd, p + put, n - put, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w >= 0) {
      put += static_cast<std::size_t>(w);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      throw Error(ErrorCategory::kPeerFailure, "send: " + errno_text(errno));
    }
    if (wait_ready(fd, POLLOUT, deadline) == 0)
      throw Error(ErrorCategory::kPeerFailure, "timed out");
  }
}

struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd >= 0) ::close(fd);
      fd = o.fd;
      o.fd = -1;
    }
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

ProbeServer::ProbeServer(const HostPort& listen) : fd_(listen_tcp(listen, 4)) {
  port_ = bound_port(fd_);
}

ProbeServer::~ProbeServer() {
  ::close(fd_);
}

void ProbeServer::serve_one(std::chrono::milliseconds max_time) {
  const Clock::time_point deadline = Clock::now() + max_time;
  // Connections that close or are not a probe before the header is complete
  // (port scanners, reachability checks through a proxy) are dropped and the
  // server goes on waiting for a real probe client until the deadline.
  Fd s{-1};
  std::uint64_t pings = 0, bytes = 0;
  for (;;) {
    const int ev = wait_ready(fd_, POLLIN, deadline);
    if (ev == 0) throw Error(ErrorCategory::kPeerFailure, "no probe client within the time limit");
    Fd c{::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC)};
    if (c.fd < 0) throw Error(ErrorCategory::kPeerFailure, "accept: " + errno_text(errno));
    set_nodelay(c.fd);
    std::uint8_t hdr[24];
    try {
      read_full(c.fd, hdr, sizeof hdr, deadline);
    } catch (const Error&) {
      continue;
    }
    if (std::memcmp(hdr, kProbeMagic, 8) != 0) continue;
    pings = get_u64(hdr + 8);
    bytes = get_u64(hdr + 16);
    if (pings > static_cast<std::uint64_t>(kMaxProbePings) || bytes > kMaxProbeBytes) {
      throw Error(ErrorCategory::kBadMessage, "probe asks for too many pings or bytes");
    }
    s = std::move(c);
    break;
  }
  std::uint8_t ping[8];
  for (std::uint64_t i = 0; i < pings; ++i) {
    read_full(s.fd, ping, 8, deadline);
    write_full(s.fd, ping, 8, deadline);
  }
  std::vector<std::uint8_t> sink(1 << 20);
  std::uint64_t left = bytes;
  while (left > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, sink.size()));
    const ssize_t r = ::recv(s.fd, sink.data(), n, MSG_DONTWAIT);
    if (r > 0) {
      left -= static_cast<std::uint64_t>(r);
      continue;
    }
    if (r == 0) throw Error(ErrorCategory::kPeerFailure, "peer closed during the bulk transfer");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      throw Error(ErrorCategory::kPeerFailure, "recv: " + errno_text(errno));
    }
    if (wait_ready(s.fd, POLLIN, deadline) == 0)
      throw Error(ErrorCategory::kPeerFailure, "timed out");
  }
  std::uint8_t ack[8];
  put_u64(ack, bytes);
  write_full(s.fd, ack, 8, deadline);
  // Wait (briefly) for the client to close first, so the ack is not lost to a reset.
  std::uint8_t tail;
  wait_ready(s.fd, POLLIN, std::min(deadline, Clock::now() + std::chrono::seconds(5)));
  [[maybe_unused]] const ssize_t r = ::recv(s.fd, &tail, 1, MSG_DONTWAIT);
}

ProbeResult probe_measure(const HostPort& to, const ProbeOptions& o) {
  if (o.pings < 1 || o.pings > kMaxProbePings) {
    throw Error(ErrorCategory::kBadInput, "pings must be 1 to " + std::to_string(kMaxProbePings));
  }
  if (o.bytes > kMaxProbeBytes) throw Error(ErrorCategory::kBadInput, "too many bytes");
  const Clock::time_point deadline = Clock::now() + o.timeout;
  Fd s{connect_tcp(to, o.timeout)};
  std::uint8_t hdr[24];
  std::memcpy(hdr, kProbeMagic, 8);
  put_u64(hdr + 8, static_cast<std::uint64_t>(o.pings));
  put_u64(hdr + 16, o.bytes);
  write_full(s.fd, hdr, sizeof hdr, deadline);

  std::vector<double> rtt;
  rtt.reserve(static_cast<std::size_t>(o.pings));
  std::uint8_t ping[8], pong[8];
  for (int i = 0; i < o.pings; ++i) {
    put_u64(ping, static_cast<std::uint64_t>(i));
    const Clock::time_point t0 = Clock::now();
    write_full(s.fd, ping, 8, deadline);
    read_full(s.fd, pong, 8, deadline);
    const Clock::time_point t1 = Clock::now();
    if (get_u64(pong) != static_cast<std::uint64_t>(i)) {
      throw Error(ErrorCategory::kBadMessage, "probe reply out of order");
    }
    rtt.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(rtt.begin(), rtt.end());
  ProbeResult r;
  r.pings = o.pings;
  r.rtt_min_us = rtt.front();
  r.rtt_max_us = rtt.back();
  const std::size_t m = rtt.size() / 2;
  r.rtt_median_us = rtt.size() % 2 ? rtt[m] : (rtt[m - 1] + rtt[m]) / 2;

  std::vector<std::uint8_t> block(1 << 20, 0x5a);
  const Clock::time_point t0 = Clock::now();
  std::uint64_t left = o.bytes;
  while (left > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, block.size()));
    write_full(s.fd, block.data(), n, deadline);
    left -= n;
  }
  std::uint8_t ack[8];
  read_full(s.fd, ack, 8, deadline);
  const Clock::time_point t1 = Clock::now();
  if (get_u64(ack) != o.bytes) throw Error(ErrorCategory::kBadMessage, "probe ack is wrong");
  r.bytes = o.bytes;
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  r.mbit_s = r.seconds > 0 ? static_cast<double>(o.bytes) * 8 / r.seconds / 1e6 : 0;
  return r;
}

std::string ProbeResult::to_json(const std::string& target) const {
  std::string t;
  for (const char ch : target.substr(0, 200)) {
    if (ch == '"' || ch == '\\') t += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) t += ch;
  }
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"target\":\"%s\",\"pings\":%d,\"rtt_us\":{\"median\":%.1f,\"min\":%.1f,"
                "\"max\":%.1f},\"bytes\":%llu,\"seconds\":%.4f,\"mbit_s\":%.1f}",
                t.c_str(), pings, rtt_median_us, rtt_min_us, rtt_max_us,
                static_cast<unsigned long long>(bytes), seconds, mbit_s);
  return buf;
}

}  // namespace blindfold::net
