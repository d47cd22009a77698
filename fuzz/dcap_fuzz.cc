// libFuzzer target: arbitrary bytes as an Intel DCAP quote (tee/dcap.h
// parse_dcap_quote) and, when they start like JSON, as dcap-qvl collateral
// JSON and as Intel PCS TCB Info / QE Identity responses. Each must either
// return views inside the input or throw blindfold::Error; never crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>

#include "core/error.h"
#include "tee/dcap.h"

namespace {

bool inside(std::span<const std::uint8_t> part, std::span<const std::uint8_t> all) {
  return part.empty() ||
         (part.data() >= all.data() && part.data() + part.size() <= all.data() + all.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> in(data, size);
  (void)blindfold::tee::looks_like_dcap_quote(in);
  try {
    const blindfold::tee::DcapQuote q = blindfold::tee::parse_dcap_quote(in);
    if (q.length > size || q.header.size() != 48 || q.signature.size() != 64 ||
        q.attestation_key.size() != 64 || q.qe_report.size() != 384 ||
        q.qe_report_signature.size() != 64)
      std::abort();
    for (auto part : {q.header, q.body, q.signed_part, q.signature, q.attestation_key, q.qe_report,
                      q.qe_report_signature, q.qe_auth_data, q.pck_chain_pem})
      if (!inside(part, in)) std::abort();
  } catch (const blindfold::Error&) {
  }
  if (size > 0 && data[0] == '{') {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
      (void)blindfold::tee::DcapCollateral::from_json(text);
    } catch (const blindfold::Error&) {
    }
    try {
      const auto c = blindfold::tee::DcapCollateral::from_pcs_responses(text, text, in, in, "");
      if (c.tcb_info.size() > size || c.qe_identity.size() > size) std::abort();
    } catch (const blindfold::Error&) {
    }
  }
  return 0;
}
