// AMD SEV-SNP attestation report verification (AMD SEV-SNP ABI
// specification, "ATTESTATION_REPORT" structure; VCEK certificate extensions
// from AMD's "Versioned Chip Endorsement Key (VCEK) Certificate and KDS
// Interface Specification"). Checks, in order:
//
//  1. Structure: exactly 0x4A0 bytes; VERSION 2 or 3; SIGNATURE_ALGO 1
//     (ECDSA P-384 with SHA-384); VMPL <= 3; POLICY bit 17 (must be one) set
//     and bits 63:26 (reserved) zero; every reserved field zero (0x048 bits
//     31:5, 0x04C, 0x188..0x1A0 -- from 0x18B for VERSION 3, whose CPUID
//     family/model/stepping occupy 0x188..0x18A --, the reserved bytes of
//     the CURRENT/COMMITTED versions at 0x1EB and 0x1EF, 0x1F8..0x2A0, bytes
//     2..5 of REPORTED_TCB, and the signature's reserved tail 0x330..0x4A0);
//     the signature's R and S (72 little-endian bytes each) with their
//     padding above 48 bytes zero.
//  2. Certificates: the ARK is found among `ask_ark` by its SHA-256 (pinned:
//     only AMD's Milan ARK is known here; any other root is refused with
//     "unknown AMD root"); VCEK <- ASK <- ARK verified at `now` by OpenSSL
//     (RSASSA-PSS SHA-384); the VCEK's productName extension
//     (1.3.6.1.4.1.3704.1.2), where present, must name the ARK's product.
//  3. Chip and TCB: the VCEK's hwID (1.3.6.1.4.1.3704.1.4) must equal the
//     report's CHIP_ID; the VCEK's blSPL, teeSPL, snpSPL and ucodeSPL
//     (1.3.6.1.4.1.3704.1.3.{1,2,3,8}) must equal the report's REPORTED_TCB
//     component by component. A VCEK key is derived from one TCB: a report
//     whose REPORTED_TCB differs from the VCEK's (below it -- the VCEK does
//     not vouch for it -- or above it) is rejected.
//  4. Signature: ECDSA P-384 / SHA-384 by the VCEK over bytes [0, 0x2A0).
//
// TcbStatus mapping (AMD publishes no "latest TCB" that a verifier could
// compare with, so the status says what the report itself shows):
//   - kUpToDate: REPORTED_TCB (= the VCEK's TCB) is at or above the
//     platform's COMMITTED_TCB in every component;
//   - kOutOfDate: REPORTED_TCB is below COMMITTED_TCB in some component: the
//     host signs with the key of an older TCB than the firmware it has
//     committed to, so the report is only as trustworthy as that older TCB.
// Policy bits: DEBUG (bit 19) -> Claims::debug; MIGRATE_MA (bit 18) ->
// Claims::migration_agent. Measurements: "MEASUREMENT" (48 bytes at 0x90),
// "HOST_DATA" (32 bytes at 0xC0). "now" is an argument; the wall clock is
// never read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tee/crypto.h"
#include "tee/evidence.h"

namespace blindfold::tee {

inline constexpr std::size_t kSnpReportBytes = 0x4A0;
inline constexpr std::size_t kSnpSignedBytes = 0x2A0;

/// True when `evidence` is 0x4A0 bytes with VERSION 2 or 3 and
/// SIGNATURE_ALGO 1 -- for dispatch only; verify_snp_report checks the rest.
bool looks_like_snp_report(std::span<const std::uint8_t> evidence) noexcept;

/// The SHA-256 of the DER of AMD's Milan ARK (ARK-Milan, valid 2020-10-22 to
/// 2045-10-22), the only AMD root this build trusts.
inline constexpr std::string_view kAmdMilanArkSha256Hex =
    "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd";

/// The TcbStatus of a verified report from its REPORTED_TCB and
/// COMMITTED_TCB (TCB_VERSION, 8 bytes each): kOutOfDate when a reported
/// component (boot loader, TEE, SNP, microcode) is below the committed one,
/// kUpToDate otherwise.
TcbStatus snp_tcb_status(std::span<const std::uint8_t, 8> reported,
                         std::span<const std::uint8_t, 8> committed) noexcept;

/// Verifies an SEV-SNP attestation report with its VCEK and the ASK/ARK
/// chain (any order) at time `now`; returns the claims (platform kSevSnp).
/// Details: "guest_svn", "policy" (hex), "vmpl", "product", "family_id",
/// "image_id", "id_key_digest", "author_key_digest", "author_key_en",
/// "report_id", "report_id_ma", "current_tcb", "reported_tcb",
/// "committed_tcb", "launch_tcb" (each "bl=.. tee=.. snp=.. ucode=.."),
/// "current_version", "committed_version", "platform_info", "chip_id",
/// "vcek_valid_until".
/// @throws Error(kBadMessage, "attestation: ...") naming the first check
/// that failed.
Claims verify_snp_report(std::span<const std::uint8_t> report, const Certificate& vcek,
                         std::span<const Certificate> ask_ark, Time now);

}  // namespace blindfold::tee
