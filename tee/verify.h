// One entry point for attestation evidence of any supported kind: the kind of
// the evidence and of each collateral file is detected from its content, the
// matching verifier (tee/dcap.h, tee/snp.h) runs, and the claims come back.
// What the claims are worth is then a Policy's decision (tee/policy.h).
#pragma once

#include <string>
#include <vector>

#include "tee/evidence.h"

namespace blindfold::tee {

/// Evidence of any supported kind with its collateral files, their kinds
/// detected by content:
///   - a dcap-qvl collateral JSON (keys "tcb_info", "qe_identity", ...);
///   - Intel PCS responses: a TCB Info response {"tcbInfo": ..., "signature"},
///     a QE Identity response {"enclaveIdentity": ..., "signature"}, the PCK
///     and root CRLs (DER or PEM; told apart by their issuer: the root CRL's
///     is "Intel SGX Root CA"), and the PEM issuer chain of the responses;
///   - for SEV-SNP: the VCEK certificate (DER) and the ASK/ARK chain (PEM);
///   - for the SIMULATED platform (tee/simulated.h): its certificate (PEM,
///     simulated-platform.pem), the one trust anchor of such evidence.
/// `now` is the time at which certificates and collateral must be valid.
struct VerifyInput {
  Bytes evidence;
  std::vector<Bytes> collateral;
  Time now;
};

/// The evidence kinds verify_evidence knows, for messages: "Intel DCAP quote",
/// "AMD SEV-SNP report", "SIMULATED platform evidence (no hardware)", or
/// "unknown".
std::string evidence_kind(const Bytes& evidence);

/// Verifies `in.evidence` with its collateral at `in.now`.
/// @throws Error(kBadMessage, "attestation: ...") when the evidence or its
/// collateral fails a check; Error(kBadInput, "attestation: ...") when the
/// collateral given does not fit the evidence (a file of unknown kind, a
/// missing VCEK or TCB Info, two of a kind).
Claims verify_evidence(const VerifyInput& in);

}  // namespace blindfold::tee
