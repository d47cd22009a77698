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
  std::string
      pck_crl_issuer_chain;  // PEM; may be empty (the quote's own PCK CA verifies the PCK CRL)
  Bytes root_ca_crl;         // DER
  Bytes pck_crl;             // DER
  std::string tcb_info_issuer_chain;     // PEM
  std::string tcb_info;                  // the exact JSON text of the "tcbInfo" object, as signed
  Bytes tcb_info_signature;              // raw r||s, 64 bytes
  std::string qe_identity_issuer_chain;  // PEM
  std::string qe_identity;      // the exact JSON text of the "enclaveIdentity" object, as signed
  Bytes qe_identity_signature;  // raw r||s, 64 bytes
  /// dcap-qvl's collateral JSON (sample/*_collateral.json: CRLs and signatures in hex).
  /// @throws Error(kBadInput) naming the missing or malformed field.
  static DcapCollateral from_json(std::string_view text);
  /// Intel PCS responses as go-tdx-guest keeps them: `tcb_info_response` =
  /// {"tcbInfo":{...},"signature":"hex"}, `qe_identity_response` =
  /// {"enclaveIdentity":{...},"signature":"hex"} (the signed bytes are the exact text of the inner
  /// object), the PCK and root CRLs (DER or PEM), and the PEM issuer chain of both responses (PCS
  /// sends it in a header, so these files lack it). pck_crl_issuer_chain is left empty.
  /// @throws Error(kBadInput) naming the missing or malformed field.
  static DcapCollateral from_pcs_responses(std::string_view tcb_info_response,
                                           std::string_view qe_identity_response,
                                           std::span<const std::uint8_t> pck_crl,
                                           std::span<const std::uint8_t> root_crl,
                                           std::string_view issuer_chain_pem);
};

/// A DCAP quote split into its parts (views into the parsed bytes, which must outlive it).
/// Structure only: nothing here is verified yet.
struct DcapQuote {
  std::uint16_t version = 0;               // 3, 4 or 5
  std::uint16_t attestation_key_type = 0;  // 2 (ECDSA P-256)
  std::uint32_t tee_type = 0;              // 0 SGX, 0x81 TDX
  std::uint16_t qe_svn = 0;                // header copies (unsigned by the QE; informative only)
  std::uint16_t pce_svn = 0;
  std::uint16_t body_type = 0;  // 1 SGX report (384), 2 TD report 1.0 (584), 3 TD report 1.5 (648)
  std::span<const std::uint8_t>
      signed_part;  // header || [v5 body type, size] || body: what the key signs
  std::span<const std::uint8_t> header;  // 48 bytes
  std::span<const std::uint8_t> body;
  std::span<const std::uint8_t> signature;            // raw r||s, 64
  std::span<const std::uint8_t> attestation_key;      // x||y, 64
  std::span<const std::uint8_t> qe_report;            // SGX report body of the QE, 384
  std::span<const std::uint8_t> qe_report_signature;  // raw r||s, 64, by the PCK key
  std::span<const std::uint8_t> qe_auth_data;
  std::span<const std::uint8_t> pck_chain_pem;  // certification data type 5 (may end with one NUL)
  std::size_t length = 0;  // bytes used; the rest of the input was zero padding
};

/// Splits a quote, checking every length against the bytes remaining. Bytes after the signature
/// data are refused unless all zero (quote buffers come zero padded).
/// @throws Error(kBadMessage, "attestation: ...") naming the malformed field.
DcapQuote parse_dcap_quote(std::span<const std::uint8_t> quote);

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

/// verify_dcap_quote with another trust anchor: the root whose DER has this SHA-256 (a private PKI,
/// or tests that need certificates and CRLs Intel did not sign). Every check is the same.
/// Production code calls verify_dcap_quote, which pins the Intel SGX Root CA.
Claims verify_dcap_quote_with_root(std::span<const std::uint8_t> quote,
                                   const DcapCollateral& collateral, Time now,
                                   std::span<const std::uint8_t, 32> root_sha256);

}  // namespace blindfold::tee
