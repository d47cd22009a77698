// libFuzzer targets: the preprocessing bundles an mpc2 party receives from
// the dealer ("mpc2/pre" frames, mpc/mpc2.cc's wire format), through
// Mpc2Party::receive_preprocessing over an in-memory channel whose other end
// plays a fake helper: it sends a fixed seed ("mpc2/seed"), then the fuzz
// input's frames, then closes. Two executables of this source
// (fuzz/CMakeLists.txt): mpc2_pre_fuzz, frames as they come (a run takes
// about a millisecond), and mpc2_pre_frames_fuzz (BF_MPC2_FULL_FRAME=1),
// whose first frame is padded with zeros to exactly 16 MiB (mpc2.cc's
// kFrameBytes), so that the continuation frames that follow a full frame
// are parsed (tens of milliseconds a run).
//
// Input: byte 0: bit 0 the party (0 server, 1 client); bit 1: run each
// stored bundle as a query (below). Then up to kMaxFrames frames, each a u16
// (little-endian) length and that many bytes (fewer at the end of the
// input).
//
// receive_preprocessing is called while frames remain; every call must
// succeed or throw Error(kBadMessage), or Error(kPeerFailure) when it asked
// for a frame after the last one (only a full 16 MiB frame does that). With
// bit 1, after each bundle it stored: begin_query, then one relu per
// non-empty relu record at the head of the bundle (width and gate count read
// from the record; the other party's opened values are queued on the peer
// channel beforehand), then end_query: each call succeeds or throws
// Error(kBadMessage). Sizes are bounded by the input (at most 8 frames of
// 64 KiB, and the one padded frame).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "mpc/fss.h"
#include "mpc/mpc2.h"
#include "net/channel.h"
#include "net/memory.h"

#ifndef BF_MPC2_FULL_FRAME
#define BF_MPC2_FULL_FRAME 0
#endif

namespace {

using namespace blindfold;
using namespace blindfold::mpc;

constexpr std::size_t kMaxFrames = 8;
constexpr std::size_t kFullFrame = std::size_t{16} << 20;  // mpc2.cc kFrameBytes
constexpr std::size_t kHeaderBytes = 24;
constexpr std::size_t kRecordBytes = 16;
constexpr u64 kOpRelu = 4;

enum class Outcome { kOk, kBadMessage, kPeerFailure };

template <class F>
Outcome run(F&& f) {
  try {
    f();
    return Outcome::kOk;
  } catch (const Error& e) {
    if (e.category() == ErrorCategory::kBadMessage) return Outcome::kBadMessage;
    if (e.category() == ErrorCategory::kPeerFailure) return Outcome::kPeerFailure;
    std::abort();
  }
}

u64 load_u64(const std::uint8_t* p) {
  u64 v;
  std::memcpy(&v, p, 8);
  return v;
}

// Gates of a relu record whose corrections take `size` bytes (0 if none).
std::size_t gates_of(int bits, std::size_t size) {
  // serialized_size(d, g) = (32 d + 16) g + ceil(d g / 4), so 4 size lies in
  // [per g, per g + 3] with per = 129 d + 64 (as mpc2.cc's relu_gates_of).
  const std::size_t per = 129 * static_cast<std::size_t>(bits - 1) + 64;
  const std::size_t g = 4 * (size / per) + 4 * (size % per) / per;
  if (g == 0 || fss::DcfCorrections::serialized_size(bits - 1, g) != size) return 0;
  return g;
}

// Runs the stored bundle `bundle` (its bytes as sent) as one query: the
// leading non-empty relu records, then end_query. Returns false when a call
// failed (the peer channel may then hold an unread message: stop querying).
bool run_query(Mpc2Party& party, net::Channel& peer_side, const std::vector<std::uint8_t>& bundle) {
  if (run([&] { party.begin_query(); }) != Outcome::kOk) std::abort();  // receive checked it
  bool ok = true;
  std::size_t pos = kHeaderBytes;
  while (ok && bundle.size() - pos >= kRecordBytes + 16) {
    const u64 op = load_u64(bundle.data() + pos) >> 56;
    const u64 len = load_u64(bundle.data() + pos + 8);
    if (op != kOpRelu || len < 16 || len > bundle.size() - pos - kRecordBytes) break;
    const u64 width = load_u64(bundle.data() + pos + kRecordBytes);
    const u64 both = load_u64(bundle.data() + pos + kRecordBytes + 8);
    if (width < 2 || width > 64 || both > len - 16) break;
    const int bits = static_cast<int>(width);
    const std::size_t n = gates_of(bits, static_cast<std::size_t>(both));
    if (n == 0) break;
    std::vector<u64> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = (i * 0x9e3779b97f4a7c15ULL) >> (64 - bits);
    peer_side.send("mpc2/relu", std::span<const std::uint8_t>(
                                    reinterpret_cast<const std::uint8_t*>(x.data()), 8 * n));
    const Outcome o = run([&] {
      Shared in =
          party.input(party.party() == 1 ? std::span<const u64>(x) : std::span<const u64>(), n);
      Shared d, r;
      party.relu(in, &d, &r, bits);
      if (d.n != n || r.n != n || d.s0.size() != n || r.s0.size() != n) std::abort();
    });
    if (o == Outcome::kPeerFailure) std::abort();
    ok = o == Outcome::kOk;
    pos += kRecordBytes + static_cast<std::size_t>(len);
  }
  const Outcome end = run([&] { party.end_query(); });
  if (end == Outcome::kPeerFailure) std::abort();
  return ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const int party_id = data[0] & 1;
  const bool queries = (data[0] >> 1) & 1;
  std::vector<std::vector<std::uint8_t>> frames;
  std::size_t at = 1;
  while (frames.size() < kMaxFrames && size - at >= 2) {
    const std::size_t len =
        std::min<std::size_t>(data[at] | std::size_t{data[at + 1]} << 8, size - at - 2);
    frames.emplace_back(data + at + 2, data + at + 2 + len);
    at += 2 + len;
  }
  if (frames.empty()) return 0;
  if (BF_MPC2_FULL_FRAME && frames[0].size() < kFullFrame) frames[0].resize(kFullFrame, 0);

  // (not structured bindings: clang 14 cannot capture them in lambdas)
  std::unique_ptr<net::Channel> helper_side, helper, peer_side, peer;
  std::tie(helper_side, helper) = net::memory_pair();
  std::tie(peer_side, peer) = net::memory_pair();
  helper->set_timeout(std::chrono::milliseconds(1000));
  peer->set_timeout(std::chrono::milliseconds(1000));
  Seed seed{};
  for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<std::uint8_t>(i);
  helper_side->send("mpc2/seed", std::span<const std::uint8_t>(seed));
  Mpc2Party party(party_id, *peer, *helper);
  for (const auto& f : frames) helper_side->send("mpc2/pre", f);
  helper_side->close();

  // Frames consumed so far: the channel's received messages, less the seed.
  auto consumed = [&] { return static_cast<std::size_t>(helper->stats().received.messages) - 1; };
  bool querying = queries;
  while (consumed() < frames.size()) {
    const std::size_t first = consumed();
    const std::size_t stored = party.stored();
    const Outcome o = run([&] { party.receive_preprocessing(); });
    if (o == Outcome::kPeerFailure) {
      if (consumed() != frames.size()) std::abort();  // it failed with frames left
      break;
    }
    if (consumed() <= first) std::abort();  // no progress
    if (party.stored() != stored + (o == Outcome::kOk ? 1 : 0)) std::abort();
    if (o != Outcome::kOk || !querying) continue;
    std::vector<std::uint8_t> bundle;
    for (std::size_t i = first; i < consumed(); ++i)
      bundle.insert(bundle.end(), frames[i].begin(), frames[i].end());
    querying = run_query(party, *peer_side, bundle);
  }
  return 0;
}
