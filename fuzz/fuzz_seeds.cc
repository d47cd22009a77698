// Writes the seed corpora of mpc_plan_fuzz, fss_fuzz and mpc2_pre_fuzz from
// the real producers, in each target's input format (see the targets'
// header comments), so that no corpus is kept in the repository:
//   OUT/mpc_plan/  the plans of ROOT/models/*.onnx (lowered at 12 fractional
//                  bits, without and with an input bound)
//   OUT/fss/       fss::dcf_gen corrections and fss::relu_gate_gen keys
//   OUT/mpc2_pre/  Mpc2Dealer bundles of small programs, for each party
//   OUT/mpc2_pre_frames/  bundles of two frames (mpc2_pre_frames_fuzz)
// Usage: fuzz_seeds ROOT OUT (fuzz/CMakeLists.txt runs it at build time).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "backends/mpc/plan.h"
#include "core/error.h"
#include "core/random.h"
#include "model/onnx_import.h"
#include "mpc/fss.h"
#include "mpc/mpc2.h"
#include "net/memory.h"

namespace {

using namespace blindfold;
using namespace blindfold::mpc;
namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

void write(const fs::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!f) throw Error(ErrorCategory::kIo, "cannot write " + p.string());
}

void put_u16(Bytes& b, std::size_t v) {
  b.push_back(static_cast<std::uint8_t>(v));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
}

void put_u64(Bytes& b, u64 v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

Seed fixed_seed(std::uint8_t k) {
  Seed s{};
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(k + i);
  return s;
}

int plans(const fs::path& root, const fs::path& out) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(root / "models")) {
    if (e.path().extension() != ".onnx") continue;
    try {
      const model::Graph g = model::import_onnx_file(e.path().string());
      for (double bound : {0.0, 1.0}) {
        const std::string json = backends::mpcplan::lower(g, 12, nullptr, bound).serialize();
        const std::string name = e.path().stem().string() + (bound > 0 ? "-bound" : "") + ".json";
        write(out / name, Bytes(json.begin(), json.end()));
        ++n;
      }
    } catch (const Error& err) {
      std::fprintf(stderr, "fuzz_seeds: %s: no plan (%s)\n", e.path().filename().c_str(),
                   err.what());
    }
  }
  return n;
}

int fss_keys(const fs::path& out) {
  int n = 0;
  // DcfCorrections: mode 0 (bit 1: party), byte 1 = bits - 1, byte 2 = count.
  for (int bits : {1, 19, 63, 64}) {
    for (std::size_t count : {std::size_t{1}, std::size_t{5}}) {
      Prg prg(fixed_seed(1), static_cast<u64>(bits));
      std::vector<u64> alpha(count);
      std::vector<fss::Block> beta(count), r0(count), r1(count);
      for (auto& a : alpha) a = bits == 64 ? prg.next_u64() : prg.uniform(u64{1} << bits);
      for (auto* v : {&beta, &r0, &r1}) {
        for (auto& b : *v) b = {prg.next_u64(), prg.next_u64()};
      }
      Bytes in = {0, static_cast<std::uint8_t>(bits - 1), static_cast<std::uint8_t>(count)};
      fss::dcf_gen(bits, alpha, beta, r0, r1).serialize(in);
      write(out / ("dcf-" + std::to_string(bits) + "-" + std::to_string(count)), in);
      ++n;
    }
  }
  // ReLU gate keys: mode bit 0 set, bit 1 party, bit 2 borrowed, bit 3 fit;
  // byte 1 = bits - 2, byte 2 = count; then u16 length | to_both | to_party1
  // (fit mode: to_both | to_party1).
  for (int bits : {2, 20, 64}) {
    for (std::size_t count : {std::size_t{1}, std::size_t{3}, std::size_t{17}}) {
      Prg p0(fixed_seed(2), 0), p1(fixed_seed(3), 0);
      const fss::ReluGateDealt d = fss::relu_gate_gen(count, bits, p0, p1);
      for (int party : {0, 1}) {
        for (int fit : {0, 1}) {
          const std::uint8_t mode =
              static_cast<std::uint8_t>(1 | party << 1 | (count == 3) << 2 | fit << 3);
          Bytes in = {mode, static_cast<std::uint8_t>(bits - 2), static_cast<std::uint8_t>(count)};
          if (!fit) put_u16(in, d.to_both.size());
          in.insert(in.end(), d.to_both.begin(), d.to_both.end());
          if (party == 1) in.insert(in.end(), d.to_party1.begin(), d.to_party1.end());
          write(out / ("relu-" + std::to_string(bits) + "-" + std::to_string(count) + "-p" +
                       std::to_string(party) + (fit ? "-fit" : "")),
                in);
          ++n;
        }
      }
    }
  }
  return n;
}

// Runs `queries` queries of `program` on a fresh dealer and writes, for each
// party, the input mpc2_pre_fuzz reads: flags (party, bit 1: run the
// queries) and the frames of every bundle.
int bundles(const fs::path& out, const std::string& name, int queries,
            const std::function<void(Protocol&)>& program,
            const std::function<void(Protocol&)>& setup = {}) {
  auto [to_server, at_server] = net::memory_pair();
  auto [to_client, at_client] = net::memory_pair();
  Mpc2Dealer dealer(*to_server, *to_client);
  if (setup) setup(dealer);  // weights are registered outside a query
  at_server->recv("mpc2/seed");
  at_client->recv("mpc2/seed");
  Bytes in[2] = {{0b10}, {0b11}};
  for (int q = 0; q < queries; ++q) {
    dealer.begin_query();
    program(dealer);
    dealer.end_query();
    for (int p : {0, 1}) {
      const Bytes b = (p == 0 ? at_server : at_client)->recv("mpc2/pre");
      if (b.size() > 0xffff)
        throw Error(ErrorCategory::kInternal, "fuzz_seeds: bundle too large for a seed");
      put_u16(in[p], b.size());
      in[p].insert(in[p].end(), b.begin(), b.end());
    }
  }
  for (int p : {0, 1}) write(out / (name + "-p" + std::to_string(p)), in[p]);
  return 2;
}

int mpc2_bundles(const fs::path& out) {
  int n = 0;
  auto relu = [](Protocol& p, std::size_t n, int bits) {
    Shared r;
    p.relu(p.input({}, n), nullptr, &r, bits);
  };
  n += bundles(out, "empty", 1, [](Protocol&) {});
  n += bundles(out, "relu20", 1, [&](Protocol& p) { relu(p, 3, 20); });
  n += bundles(out, "relu-widths", 1, [&](Protocol& p) {
    relu(p, 1, 2);
    relu(p, 5, 64);
    relu(p, 17, 33);
    relu(p, 0, 12);  // last: mpc2_pre_fuzz stops at an empty record
  });
  n += bundles(out, "mul-relu", 1, [&](Protocol& p) {
    Shared x = p.input({}, 4);
    (void)p.mul(x, x);
    relu(p, 2, 32);
  });
  n += bundles(
      out, "matmul-relu", 1,
      [&](Protocol& p) {
        (void)p.matmul(0, p.input({}, 6), 2, 3, 2);
        relu(p, 4, 24);
      },
      [](Protocol& p) { p.register_weights({}, 6); });
  n += bundles(out, "three-queries", 3, [&](Protocol& p) { relu(p, 2, 16); });

  return n;
}

// mpc2_pre_frames_fuzz pads the first frame with zeros to 16 MiB: bundles of
// a full frame and a short one, for each party. The first frame holds the
// header and a mul record (a party accepts any mul payload offline) that
// runs into the second frame, or ends exactly at the frame boundary with a
// relu record of a real bundle in the second frame.
int mpc2_frames(const fs::path& out) {
  constexpr u64 kFull = u64{16} << 20;
  // A relu record (header and payload) of a real bundle per party: query 0
  // of a dealer running one relu of 3 gates at 20 bits.
  Bytes relu_record[2];
  {
    auto [to_server, at_server] = net::memory_pair();
    auto [to_client, at_client] = net::memory_pair();
    Mpc2Dealer dealer(*to_server, *to_client);
    at_server->recv("mpc2/seed");
    at_client->recv("mpc2/seed");
    dealer.begin_query();
    Shared r;
    dealer.relu(dealer.input({}, 3), nullptr, &r, 20);
    dealer.end_query();
    for (int p : {0, 1}) {
      const Bytes b = (p == 0 ? at_server : at_client)->recv("mpc2/pre");
      relu_record[p].assign(b.begin() + 24, b.end());
    }
  }
  int n = 0;
  for (int p : {0, 1}) {
    for (int boundary : {0, 1}) {
      const Bytes tail = boundary ? relu_record[p] : Bytes(8, 0);
      Bytes frame = {'B', 'F', 'M', '2', 2, 0, 0, 0};
      put_u64(frame, 0);                         // query number
      put_u64(frame, kFull - 24 + tail.size());  // body
      put_u64(frame, u64{3} << 56);              // mul
      put_u64(frame, kFull - 24 - 16 + (boundary ? 0 : tail.size()));
      Bytes in = {static_cast<std::uint8_t>(0b10 | p)};
      put_u16(in, frame.size());
      in.insert(in.end(), frame.begin(), frame.end());
      put_u16(in, tail.size());
      in.insert(in.end(), tail.begin(), tail.end());
      write(out / ((boundary ? "boundary-relu-p" : "two-frames-p") + std::to_string(p)), in);
      ++n;
    }
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fuzz_seeds ROOT OUT\n");
    return 2;
  }
  try {
    const fs::path root = argv[1], out = argv[2];
    for (const char* d : {"mpc_plan", "fss", "mpc2_pre", "mpc2_pre_frames"})
      fs::create_directories(out / d);
    const int a = plans(root, out / "mpc_plan");
    const int b = fss_keys(out / "fss");
    const int c = mpc2_bundles(out / "mpc2_pre");
    const int d = mpc2_frames(out / "mpc2_pre_frames");
    std::printf("fuzz_seeds: %d plans, %d FSS inputs, %d + %d mpc2 bundle inputs in %s\n", a, b, c,
                d, argv[2]);
    return a > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", e.what());
    return 1;
  }
}
