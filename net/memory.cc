#include "net/memory.h"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"

namespace blindfold::net {

namespace {

// One direction of a memory pair.
struct Pipe {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::uint8_t> data;
  bool closed = false;
};

class MemoryChannel final : public Channel {
 public:
  MemoryChannel(std::shared_ptr<Pipe> out, std::shared_ptr<Pipe> in)
      : out_(std::move(out)), in_(std::move(in)) {}
  ~MemoryChannel() override { close_transport(); }

 protected:
  void write_bytes(std::span<const std::uint8_t> d) override {
    std::lock_guard<std::mutex> lock(out_->mu);
    if (out_->closed) throw Error(ErrorCategory::kPeerFailure, "peer closed the connection");
    out_->data.insert(out_->data.end(), d.begin(), d.end());
    out_->cv.notify_all();
  }
  void read_bytes(std::span<std::uint8_t> o, Clock::time_point deadline) override {
    std::unique_lock<std::mutex> lock(in_->mu);
    std::size_t got = 0;
    while (got < o.size()) {
      if (!in_->cv.wait_until(lock, deadline, [&] { return !in_->data.empty() || in_->closed; })) {
        throw Error(ErrorCategory::kPeerFailure, "timed out");
      }
      if (in_->data.empty()) throw Error(ErrorCategory::kPeerFailure, "peer closed the connection");
      const std::size_t n = std::min(o.size() - got, in_->data.size());
      std::copy(in_->data.begin(), in_->data.begin() + static_cast<std::ptrdiff_t>(n),
                o.begin() + got);
      in_->data.erase(in_->data.begin(), in_->data.begin() + static_cast<std::ptrdiff_t>(n));
      got += n;
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

void simulate(int n, const std::function<void(Mesh&)>& fn) {
  if (n < 1) throw Error(ErrorCategory::kBadInput, "simulate needs at least one party");
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
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
  // char, not bool: vector<bool> packs bits, and threads write neighbours.
  std::vector<char> own_failure(static_cast<std::size_t>(n), 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      Mesh& m = meshes[static_cast<std::size_t>(i)];
      try {
        fn(m);
      } catch (const Error& e) {
        errors[static_cast<std::size_t>(i)] = std::current_exception();
        own_failure[static_cast<std::size_t>(i)] = e.category() != ErrorCategory::kPeerFailure;
        for (auto& c : m.peers) {
          if (c) c->close();
        }
      } catch (...) {
        errors[static_cast<std::size_t>(i)] = std::current_exception();
        own_failure[static_cast<std::size_t>(i)] = true;
        for (auto& c : m.peers) {
          if (c) c->close();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  // The root cause is a party's own error, not the peer failures it caused.
  for (int i = 0; i < n; ++i) {
    if (errors[static_cast<std::size_t>(i)] && own_failure[static_cast<std::size_t>(i)]) {
      std::rethrow_exception(errors[static_cast<std::size_t>(i)]);
    }
  }
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace blindfold::net
