// libFuzzer target: the tee backend's sealed message parser
// (backends/tee/wire.h), which the enclave runs on every request a client
// sends and the client on every response. Bytes are either refused with
// Error(kBadMessage) or parsed; a parsed message re-encodes to the same bytes
// (the format is canonical), which checks that nothing was skipped or misread.
// Requests are also decoded into tensors reused from the previous input, as
// the enclave does (decode_request_into), and must come out the same.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "backends/tee/wire.h"
#include "core/error.h"

namespace tw = blindfold::backends::teewire;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  try {
    const auto ts = tw::decode_request(in);
    const tw::Bytes again = tw::encode_request(ts);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
  } catch (const blindfold::Error& e) {
    if (e.category() != blindfold::ErrorCategory::kBadMessage) std::abort();
  }
  static std::vector<blindfold::Tensor> reused;
  try {
    tw::decode_request_into(in, reused);
    const tw::Bytes again = tw::encode_request(reused);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
  } catch (const blindfold::Error& e) {
    if (e.category() != blindfold::ErrorCategory::kBadMessage) std::abort();
    reused.clear();  // partial contents, as the enclave would wipe them
  }
  try {
    const tw::Response r = tw::decode_response(in);
    const tw::Bytes again = r.ok ? tw::encode_ok(r.outputs, r.enclave_compute_ms)
                                 : tw::encode_error(r.category, r.error);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
  } catch (const blindfold::Error& e) {
    if (e.category() != blindfold::ErrorCategory::kBadMessage) std::abort();
  }
  return 0;
}
