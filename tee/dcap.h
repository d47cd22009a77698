// Intel DCAP quote verification: SGX quotes v3, TDX quotes v4, and v5 (TDX
// 1.0 / 1.5 bodies). Every check of Intel's Quote Verification Library that
// decides acceptance is here: the quote's structure (every length against the
// bytes remaining), the PCK certificate chain to the pinned Intel SGX Root CA
// with the root and PCK CRLs, the QE report signed by the PCK key, the QE
// report binding the attestation key, the quote signed by the attestation key,
// the TCB Info and QE Identity collateral signed over their exact JSON bytes
// and valid at "now", and the TCB-level match that yields the TCB status and
// advisory ids. "now" is an argument; the wall clock is never read.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "tee/evidence.h"

namespace blindfold::tee {

/// Collateral for one quote (Intel PCS data). Field names follow dcap-qvl's collateral JSON.
struct DcapCollateral {
  std::string pck_crl_issuer_chain;      // PEM
  Bytes root_ca_crl;                     // DER
  Bytes pck_crl;                         // DER
  std::string tcb_info_issuer_chain;     // PEM
  std::string tcb_info;                  // the exact JSON text of the "tcbInfo" object, as signed
  Bytes tcb_info_signature;              // raw r||s, 64 bytes
  std::string qe_identity_issuer_chain;  // PEM
  std::string qe_identity;      // the exact JSON text of the "enclaveIdentity" object, as signed
  Bytes qe_identity_signature;  // raw r||s, 64 bytes
  /// dcap-qvl's collateral JSON (sample/*_collateral.json: CRLs and signatures in hex).
  /// @throws Error(kBadInput) naming the missing or malformed field.
  static DcapCollateral from_json(std::string_view text);
};

/// True when `evidence` starts like a DCAP quote (version 3, 4 or 5, attestation key type 2) -- for
/// dispatch only.
bool looks_like_dcap_quote(std::span<const std::uint8_t> evidence) noexcept;

/// Verifies a DCAP quote with its collateral at time `now` (see the checks above); returns the
/// claims. The trust anchor is the Intel SGX Root CA, pinned in dcap.cc by the SHA-256 of its DER
/// (a hash constant, not a copy of the file): the root certificate is taken from the collateral's
/// issuer chains and must match the pin.
/// @throws Error(kBadMessage, "attestation: ...") naming the first check that failed.
Claims verify_dcap_quote(std::span<const std::uint8_t> quote, const DcapCollateral& collateral,
                         Time now);

}  // namespace blindfold::tee
