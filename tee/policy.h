// An appraisal policy: what verified Claims (tee/evidence.h) must say for a
// client to release a key or a prompt. Secure by default: a default-built
// Policy accepts only TCB status UpToDate, no debug enclave, no SEV-SNP
// migration agent, no simulated platform, and (when it names none) any
// measurement -- so a deployment must name its expected measurements to bind
// the code; `blindfold attest verify` prints a warning when it does not.
//
// JSON file format (every key optional; unknown keys are an error, so a typo
// never silently widens a policy):
//   {
//     "platforms": ["Intel SGX", "Intel TDX", "AMD SEV-SNP"],   // default: all hardware ones
//     "allowed_tcb_statuses": ["UpToDate", "SWHardeningNeeded"], // default: ["UpToDate"]
//     "allowed_advisories": ["INTEL-SA-00615"],  // when set, every advisory of the
//                                                // matched TCB level must be listed
//     "measurements": {"MRENCLAVE": ["<hex>", ...], "MRSIGNER": ["<hex>"]},
//     "allow_debug": false,
//     "allow_migration_agent": false,
//     "trust_simulated_platform": false
//   }
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tee/evidence.h"

namespace blindfold::tee {

struct Policy {
  /// Platforms accepted; empty means every hardware platform (never the
  /// simulated one, which needs trust_simulated_platform).
  std::set<Platform> platforms;
  std::set<TcbStatus> allowed_tcb_statuses{TcbStatus::kUpToDate};
  /// nullopt: advisories are not checked beyond the TCB status. Set: every
  /// advisory id of the claims must be in it.
  std::optional<std::set<std::string>> allowed_advisories;
  /// Measurement name -> accepted values. A name listed here and absent
  /// from the claims is a failure.
  std::map<std::string, std::vector<Bytes>> measurements;
  bool allow_debug = false;
  bool allow_migration_agent = false;
  /// Accept evidence from the simulated platform (tee/simulated.h): no
  /// hardware protects such a run. The CLI sets it only from
  /// --trust-simulated-platform.
  bool trust_simulated_platform = false;

  /// Parses the JSON format above. @throws Error(kBadInput) naming the key
  /// and what is wrong with it.
  static Policy from_json(std::string_view text);
};

/// The outcome of appraising claims: every failed rule, in words.
struct Appraisal {
  std::vector<std::string> failures;  // empty: accepted
  std::vector<std::string> warnings;  // e.g. "no expected measurement: any code is accepted"
  bool accepted() const { return failures.empty(); }
};

/// Appraises `claims` against `policy`. When `expected_report_data` is
/// given, claims.report_data must equal it byte for byte.
Appraisal appraise(const Policy& policy, const Claims& claims,
                   const std::optional<std::array<std::uint8_t, 64>>& expected_report_data = std::nullopt);

/// The report_data that binds a channel key to a client's challenge:
/// SHA-256(channel_public_key || client_nonce) in the first 32 bytes, zero
/// in the last 32.
std::array<std::uint8_t, 64> binding_report_data(std::span<const std::uint8_t> channel_public_key,
                                                 std::span<const std::uint8_t> client_nonce);

}  // namespace blindfold::tee
