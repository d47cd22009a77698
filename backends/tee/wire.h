// The sealed messages between a tee client and the enclave process
// (app/enclave_main.cc): a batch of tensors up, the outputs (or a refusal
// naming what was wrong) down. They travel inside tee::SealedChannel records,
// so only the enclave and the client ever see these bytes; the parser still
// treats every byte as hostile (a client may be anyone who can reach the
// enclave) and checks every length against the bytes remaining before use.
//
// Format (integers little-endian):
//   request:  "BFTQ" | u8 version=1 | u32 count (<= kMaxWireTensors) | count x tensor
//   response: "BFTR" | u8 version=1 | u8 status
//     status 0 (ok):    f64 enclave_compute_ms | u32 count | count x tensor
//     status 1 (error): u8 category (ErrorCategory) | u32 length (<= kMaxWireErrorBytes) | text
//   tensor:   u8 dtype (0 float32, 1 int64) | u8 rank (<= kMaxRank) |
//             rank x u64 dims | numel x element (4 or 8 bytes)
// Nothing may follow the last field.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace blindfold::backends::teewire {

using Bytes = std::vector<std::uint8_t>;

inline constexpr std::uint8_t kWireVersion = 1;
inline constexpr std::uint32_t kMaxWireTensors = 64;
inline constexpr std::uint32_t kMaxWireErrorBytes = 4096;

/// Tags of the sealed records (tee::SealedChannel puts them in the AAD).
inline constexpr const char* kRequestTag = "tee-request";
inline constexpr const char* kResponseTag = "tee-response";

Bytes encode_request(const std::vector<Tensor>& inputs);
/// The request encode_request() makes, as pieces to seal where they lie
/// (tee::SealedChannel::send_parts): the framing bytes are in `framing`, the
/// tensor data is referenced in `inputs`, which must outlive `parts`.
struct RequestParts {
  Bytes framing;
  std::vector<std::span<const std::uint8_t>> parts;
};
/// @throws Error(kBadInput) for more than kMaxWireTensors tensors.
RequestParts request_parts(const std::vector<Tensor>& inputs);
/// @throws Error(kBadMessage) naming what is wrong.
std::vector<Tensor> decode_request(std::span<const std::uint8_t> msg);
/// decode_request() into `inputs`, reusing the tensors' buffers (no
/// allocation for a request shaped like the last one). On error the tensors
/// hold partial data: the caller wipes them.
void decode_request_into(std::span<const std::uint8_t> msg, std::vector<Tensor>& inputs);

struct Response {
  bool ok = false;
  double enclave_compute_ms = 0;
  std::vector<Tensor> outputs;  // ok
  ErrorCategory category{};     // !ok
  std::string error;            // !ok
};

Bytes encode_ok(const std::vector<Tensor>& outputs, double enclave_compute_ms);
Bytes encode_error(ErrorCategory category, std::string_view text);
/// @throws Error(kBadMessage) naming what is wrong.
Response decode_response(std::span<const std::uint8_t> msg);

}  // namespace blindfold::backends::teewire
