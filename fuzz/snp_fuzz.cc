// libFuzzer target for the SEV-SNP verifier (tee/snp.h), the collateral
// sorting of tee/verify.h and the policy parser (tee/policy.h). The first
// input byte picks what the rest is:
//   0: an SEV-SNP report, verified with the real VCEK and ASK/ARK chain of
//      ../shared/testdata (when present) so that every structure check runs;
//   1: a policy JSON (Policy::from_json) and, when it parses, an appraisal;
//   2: a collateral file given with the real SNP report to verify_evidence;
//   3: evidence of unknown kind given to verify_evidence.
// Each must return or throw blindfold::Error; never crash. A report that
// verifies must be the real one (any other would be a forgery).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "tee/crypto.h"
#include "tee/policy.h"
#include "tee/snp.h"
#include "tee/verify.h"

namespace {

using blindfold::tee::Bytes;

Bytes read(const std::string& name) {
  std::ifstream in(std::string(BF_TESTDATA) + "/go-sev-guest/" + name, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

struct Real {
  Bytes report = read("attestation.bin");
  Bytes vcek_der = read("vcek.testcer");
  Bytes chain_pem = read("ask_ark_milan.pem");
  std::optional<blindfold::tee::Certificate> vcek;
  std::vector<blindfold::tee::Certificate> chain;
  blindfold::tee::Time now = *blindfold::tee::parse_time("2025-07-01T00:00:00Z");
  Real() {
    try {
      vcek = blindfold::tee::Certificate::from_der(vcek_der, "VCEK");
      chain = blindfold::tee::Certificate::chain_from_pem(
          std::string_view(reinterpret_cast<const char*>(chain_pem.data()), chain_pem.size()),
          "ASK/ARK");
    } catch (const blindfold::Error&) {
      vcek.reset();  // no test data: mode 0 and 2 only parse
    }
  }
};

const Real& real() {
  static const Real r;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0] % 4;
  std::span<const std::uint8_t> in(data + 1, size - 1);
  const Real& r = real();
  try {
    switch (mode) {
      case 0: {
        (void)blindfold::tee::looks_like_snp_report(in);
        if (!r.vcek) break;
        blindfold::tee::Claims c = blindfold::tee::verify_snp_report(in, *r.vcek, r.chain, r.now);
        if (!std::equal(in.begin(), in.end(), r.report.begin(), r.report.end())) std::abort();
        (void)c;
        break;
      }
      case 1: {
        const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
        const blindfold::tee::Policy p = blindfold::tee::Policy::from_json(text);
        blindfold::tee::Claims c;
        c.measurements.emplace_back("MEASUREMENT", Bytes(48, 0));
        (void)blindfold::tee::appraise(p, c, c.report_data);
        break;
      }
      case 2: {
        blindfold::tee::VerifyInput v{r.report, {Bytes(in.begin(), in.end()), r.chain_pem}, r.now};
        (void)blindfold::tee::verify_evidence(v);
        break;
      }
      default: {
        blindfold::tee::VerifyInput v{Bytes(in.begin(), in.end()), {}, r.now};
        (void)blindfold::tee::evidence_kind(v.evidence);
        (void)blindfold::tee::verify_evidence(v);
        break;
      }
    }
  } catch (const blindfold::Error&) {
  }
  return 0;
}
