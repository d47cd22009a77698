// What a verified piece of attestation evidence says, the same shape for
// every platform (Intel SGX and TDX DCAP quotes, AMD SEV-SNP reports, and the
// simulated platform of tee/simulated.h). Verifiers (tee/dcap.h, tee/snp.h,
// tee/simulated.h) produce Claims only after every signature, chain, CRL and
// collateral check passed; a Policy (tee/policy.h) then decides whether the
// claims are acceptable for a given deployment.
//
// Rejection is an exception: Error(kBadMessage, "attestation: <what failed>")
// for evidence or collateral that fails a check (a signature, a length, a
// date), so no caller can forget to look at a verdict flag.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace blindfold::tee {

using Bytes = std::vector<std::uint8_t>;
/// "Now" as verifiers take it: an argument, never read from the wall clock
/// inside verification (collateral is valid for about 30 days).
using Time = std::chrono::sys_seconds;

enum class Platform { kSgx, kTdx, kSevSnp, kSimulated };
/// "Intel SGX", "Intel TDX", "AMD SEV-SNP", "simulated (no hardware)".
std::string_view platform_name(Platform p) noexcept;
/// Hardware vendor for the trust column: "Intel", "AMD", "none (simulated)".
std::string_view platform_vendor(Platform p) noexcept;

/// Intel's TCB status values (PCS TCB Info v3), in Intel's spelling. AMD
/// SEV-SNP reports map to kUpToDate or kOutOfDate (reported TCB against the
/// VCEK's TCB); the simulated platform always says kUpToDate.
enum class TcbStatus {
  kUpToDate,
  kSWHardeningNeeded,
  kConfigurationNeeded,
  kConfigurationAndSWHardeningNeeded,
  kOutOfDate,
  kOutOfDateConfigurationNeeded,
  kRevoked,
};
/// "UpToDate", "SWHardeningNeeded", ...
std::string_view tcb_status_name(TcbStatus s) noexcept;
/// The inverse of tcb_status_name; nullopt for anything else.
std::optional<TcbStatus> parse_tcb_status(std::string_view s) noexcept;

/// What verified evidence says.
struct Claims {
  Platform platform = Platform::kSimulated;
  std::uint32_t version = 0;  // quote / report version
  TcbStatus tcb_status = TcbStatus::kRevoked;
  /// Advisory ids of the matched TCB level (e.g. "INTEL-SA-00615").
  std::vector<std::string> advisory_ids;
  /// Named measurements in the platform's order. Names: SGX "MRENCLAVE",
  /// "MRSIGNER"; TDX "MRTD", "RTMR0".."RTMR3", "MRSEAM"; SEV-SNP
  /// "MEASUREMENT", "HOST_DATA"; simulated "CODE", "MODEL".
  std::vector<std::pair<std::string, Bytes>> measurements;
  std::array<std::uint8_t, 64> report_data{};
  /// SGX ATTRIBUTES.DEBUG, TDX TD_ATTRIBUTES.DEBUG, SEV-SNP policy DEBUG.
  bool debug = true;
  /// SEV-SNP policy MIGRATE_MA; false on other platforms.
  bool migration_agent = false;
  /// Other printable facts in order ("isv_prod_id" -> "0", "fmspc" ->
  /// "00A067110000", "collateral_valid_until" -> "2025-07-19T10:56:11Z").
  std::vector<std::pair<std::string, std::string>> details;

  /// The measurement called `name`, or nullptr.
  const Bytes* measurement(std::string_view name) const;
};

/// Lower-case hex of `b`.
std::string to_hex(std::span<const std::uint8_t> b);
/// Parses hex (either case, even length); nullopt on anything else.
std::optional<Bytes> from_hex(std::string_view s);
/// Parses an RFC 3339 UTC time "2025-06-19T10:56:11Z" (also with
/// fractional seconds "...11.123Z"); nullopt on anything else.
std::optional<Time> parse_time(std::string_view s);
/// "2025-06-19T10:56:11Z".
std::string format_time(Time t);

}  // namespace blindfold::tee
