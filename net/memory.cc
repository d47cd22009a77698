#include "net/memory.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <vector>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"

namespace blindfold::net {

namespace {

// One direction of a memory pair: a queue of written chunks (a message's
// payload is moved in whole, not byte by byte).
struct Pipe {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<std::uint8_t>> chunks;
  std::size_t front_off = 0;             // bytes of chunks.front() already read
  std::atomic<std::size_t> avail{0};     // unread bytes, for the reader's spin
  std::atomic<bool> closed{false};
};

// How long a reader polls before sleeping on the condition variable: a
// condition-variable wake-up costs 70-90 us on the VMs this project runs on,
// more than a whole protocol round between threads.
constexpr auto kSpin = std::chrono::microseconds(200);

class MemoryChannel final : public Channel {
 public:
  MemoryChannel(std::shared_ptr<Pipe> out, std::shared_ptr<Pipe> in)
      : out_(std::move(out)), in_(std::move(in)) {}
  ~MemoryChannel() override { close_transport(); }

 protected:
  void write_bytes(std::span<const std::uint8_t> d) override {
    std::lock_guard<std::mutex> lock(out_->mu);
    if (out_->closed) throw Error(ErrorCategory::kPeerFailure, "peer closed the connection");
    if (d.empty()) return;
    out_->chunks.emplace_back(d.begin(), d.end());
    out_->avail.fetch_add(d.size(), std::memory_order_release);
    out_->cv.notify_all();
  }
  void read_bytes(std::span<std::uint8_t> o, Clock::time_point deadline) override {
    std::size_t got = 0;
    while (got < o.size()) {
      const auto spin_until = std::min(deadline, Clock::now() + kSpin);
      while (in_->avail.load(std::memory_order_acquire) == 0 && !in_->closed.load() &&
             Clock::now() < spin_until) {
        std::this_thread::yield();
      }
      std::unique_lock<std::mutex> lock(in_->mu);
      if (!in_->cv.wait_until(lock, deadline, [&] { return !in_->chunks.empty() || in_->closed; })) {
        throw Error(ErrorCategory::kPeerFailure, "timed out");
      }
      if (in_->chunks.empty()) throw Error(ErrorCategory::kPeerFailure, "peer closed the connection");
      while (got < o.size() && !in_->chunks.empty()) {
        std::vector<std::uint8_t>& c = in_->chunks.front();
        const std::size_t n = std::min(o.size() - got, c.size() - in_->front_off);
        std::memcpy(o.data() + got, c.data() + in_->front_off, n);
        in_->front_off += n;
        got += n;
        in_->avail.fetch_sub(n, std::memory_order_relaxed);
        if (in_->front_off == c.size()) {
          in_->chunks.pop_front();
          in_->front_off = 0;
        }
      }
    }
  }
  void close_transport() override {
    for (Pipe* p : {out_.get(), in_.get()}) {
      std::lock_guard<std::mutex> lock(p->mu);
      p->closed = true;
      p->cv.notify_all();
    }
  }

 private:
  std::shared_ptr<Pipe> out_, in_;
};

}  // namespace

std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> memory_pair() {
  auto a = std::make_shared<Pipe>(), b = std::make_shared<Pipe>();
  return {std::make_unique<MemoryChannel>(a, b), std::make_unique<MemoryChannel>(b, a)};
}

Channel& Mesh::to(int j) const {
  if (j < 0 || j >= size() || !peers[static_cast<std::size_t>(j)]) {
    throw Error(ErrorCategory::kInternal,
                "party " + std::to_string(self) + " has no channel to party " + std::to_string(j));
  }
  return *peers[static_cast<std::size_t>(j)];
}

std::int64_t Mesh::sent_bytes() const {
  std::int64_t b = 0;
  for (const auto& c : peers) {
    if (c) b += c->stats().sent.bytes;
  }
  return b;
}

void Mesh::reset_stats() {
  for (auto& c : peers) {
    if (c) c->reset_stats();
  }
}

void Mesh::flush() {
  for (auto& c : peers) {
    if (c) c->flush();
  }
}

void Mesh::set_round_counter(const std::shared_ptr<RoundCounter>& rc) {
  for (auto& c : peers) {
    if (c) c->set_round_counter(rc);
  }
}

std::vector<Mesh> memory_meshes(int n) {
  if (n < 1) throw Error(ErrorCategory::kBadInput, "a mesh needs at least one party");
  std::vector<Mesh> meshes(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    meshes[static_cast<std::size_t>(i)].self = i;
    meshes[static_cast<std::size_t>(i)].peers.resize(static_cast<std::size_t>(n));
  }
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      auto [a, b] = memory_pair();
      a->set_peer_name("party " + std::to_string(j));
      b->set_peer_name("party " + std::to_string(i));
      meshes[static_cast<std::size_t>(i)].peers[static_cast<std::size_t>(j)] = std::move(a);
      meshes[static_cast<std::size_t>(j)].peers[static_cast<std::size_t>(i)] = std::move(b);
    }
  }
  return meshes;
}

void run_meshes(std::vector<Mesh>& meshes, const std::function<void(Mesh&)>& fn) {
  const std::size_t n = meshes.size();
  std::vector<std::exception_ptr> errors(n);
  // char, not bool: vector<bool> packs bits, and threads write neighbours.
  std::vector<char> own_failure(n, 0);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      Mesh& m = meshes[i];
      try {
        fn(m);
      } catch (const Error& e) {
        errors[i] = std::current_exception();
        own_failure[i] = e.category() != ErrorCategory::kPeerFailure;
        for (auto& c : m.peers) {
          if (c) c->close();
        }
      } catch (...) {
        errors[i] = std::current_exception();
        own_failure[i] = true;
        for (auto& c : m.peers) {
          if (c) c->close();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  // The root cause is a party's own error, not the peer failures it caused.
  for (std::size_t i = 0; i < n; ++i) {
    if (errors[i] && own_failure[i]) std::rethrow_exception(errors[i]);
  }
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

void simulate(int n, const std::function<void(Mesh&)>& fn) {
  if (n < 1) throw Error(ErrorCategory::kBadInput, "simulate needs at least one party");
  std::vector<Mesh> meshes = memory_meshes(n);
  run_meshes(meshes, fn);
}

}  // namespace blindfold::net
