// libFuzzer over the simulated platform's evidence parser and the attested
// channel's peer-facing parsers (tee/simulated.h, tee/channel.h). The first
// byte picks the target:
//   0: verify_simulated_evidence on the bytes;
//   1: verify_simulated_evidence on a valid evidence XORed with the bytes
//      (reaches the certificate, validity and signature checks);
//   2: parse_client_hello;  3: parse_enclave_evidence;
//   4: one sealed record (SealedChannel::recv) under fixed keys;
//   5: attest_client against an "enclave" that answers the bytes as its
//      tee-evidence message.
// Every input must end in acceptance or Error; anything else is a bug.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "net/memory.h"
#include "tee/channel.h"
#include "tee/crypto.h"
#include "tee/simulated.h"

namespace {

using namespace blindfold;
using namespace blindfold::tee;

const Time kNow = *parse_time("2026-06-01T00:00:00Z");

struct Fixture {
  SimulatedPlatform platform = SimulatedPlatform::generate(*parse_time("2026-01-01T00:00:00Z"),
                                                           *parse_time("2027-01-01T00:00:00Z"));
  Bytes valid;
  Fixture() {
    const Bytes m = sha384(Bytes{1, 2, 3});
    std::array<std::uint8_t, 64> rd{};
    valid = platform.make_evidence(m, m, rd, false);
  }
};
Fixture& fixture() {
  static Fixture f;
  return f;
}

void run(std::uint8_t mode, std::span<const std::uint8_t> in) {
  Fixture& f = fixture();
  switch (mode % 6) {
    case 0: verify_simulated_evidence(in, f.platform.certificate(), kNow); break;
    case 1: {
      Bytes ev = f.valid;
      const std::size_t n = std::min(in.size(), ev.size());
      for (std::size_t i = 0; i < n; ++i) ev[i] ^= in[i];
      ev.insert(ev.end(), in.begin() + static_cast<std::ptrdiff_t>(n), in.end());  // trailing bytes
      verify_simulated_evidence(ev, f.platform.certificate(), kNow);
      break;
    }
    case 2: parse_client_hello(in); break;
    case 3: parse_enclave_evidence(in); break;
    case 4: {
      auto [a, b] = net::memory_pair();
      b->set_timeout(std::chrono::milliseconds(10));
      std::array<std::uint8_t, 32> k1{}, k2{};
      k1[0] = 1;
      k2[0] = 2;
      SealedChannel rx(*b, false, k2, k1);
      a->send("req", in);
      rx.recv("req");
      break;
    }
    case 5: {
      auto [client, enclave] = net::memory_pair();
      client->set_timeout(std::chrono::milliseconds(10));
      enclave->send("tee-evidence", in);  // buffered until the client reads it
      Policy policy;
      policy.trust_simulated_platform = true;
      attest_client(
          *client,
          [&](std::span<const std::uint8_t> ev) {
            return verify_simulated_evidence(ev, f.platform.certificate(), kNow);
          },
          policy);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  try {
    run(data[0], std::span<const std::uint8_t>(data + 1, size - 1));
  } catch (const blindfold::Error&) {
  }
  return 0;
}
