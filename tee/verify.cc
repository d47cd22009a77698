#include "tee/verify.h"

#include <openssl/x509.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "tee/crypto.h"
#include "tee/dcap.h"
#include "tee/simulated.h"
#include "tee/snp.h"

namespace blindfold::tee {

namespace {

[[noreturn]] void unfit(const std::string& why) {
  throw_error(ErrorCategory::kBadInput, "attestation: " + why);
}

std::string_view text_of(const Bytes& b) {
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}

// The collateral files sorted by kind.
struct Collateral {
  std::optional<DcapCollateral> dcap_qvl;           // dcap-qvl collateral JSON
  std::optional<std::string> tcb_info_response;     // PCS {"tcbInfo": ...}
  std::optional<std::string> qe_identity_response;  // PCS {"enclaveIdentity": ...}
  std::optional<Bytes> root_crl, pck_crl;
  std::optional<std::string> pem_chain;        // ASK/ARK, or the PCS issuer chain
  std::optional<Certificate> der_certificate;  // the VCEK
};

template <typename T>
void set_once(std::optional<T>& slot, T value, std::size_t index, const char* kind) {
  if (slot) unfit("collateral file #" + std::to_string(index + 1) + " is a second " + kind);
  slot = std::move(value);
}

bool is_root_crl(const Crl& crl) {
  char name[256] = {};
  X509_NAME_oneline(X509_CRL_get_issuer(crl.native()), name, sizeof name - 1);
  return std::string_view(name).find("CN=Intel SGX Root CA") != std::string_view::npos;
}

Collateral sort_collateral(const std::vector<Bytes>& files) {
  Collateral c;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const Bytes& f = files[i];
    const std::string_view text = text_of(f);
    const std::size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && text[first] == '{') {
      nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
      if (j.is_discarded() || !j.is_object())
        unfit("collateral file #" + std::to_string(i + 1) + " is not valid JSON");
      if (j.contains("tcb_info") || j.contains("qe_identity"))
        set_once(c.dcap_qvl, DcapCollateral::from_json(text), i, "dcap-qvl collateral");
      else if (j.contains("tcbInfo"))
        set_once(c.tcb_info_response, std::string(text), i, "TCB Info response");
      else if (j.contains("enclaveIdentity"))
        set_once(c.qe_identity_response, std::string(text), i, "QE Identity response");
      else
        unfit("collateral file #" + std::to_string(i + 1) +
              " is JSON of unknown kind (neither dcap-qvl collateral nor a PCS response)");
    } else if (text.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
      set_once(c.pem_chain, std::string(text), i, "PEM certificate chain");
    } else if (text.find("-----BEGIN X509 CRL-----") != std::string_view::npos ||
               (!f.empty() && f[0] == 0x30)) {
      // DER: a certificate (the VCEK) or a CRL.
      std::optional<Certificate> cert;
      try {
        cert = Certificate::from_der(f, "collateral");
      } catch (const Error&) {
      }
      if (cert) {
        set_once(c.der_certificate, std::move(*cert), i, "DER certificate");
        continue;
      }
      std::optional<Crl> crl;
      try {
        crl.emplace(Crl::parse(f, "collateral"));
      } catch (const Error&) {
        unfit("collateral file #" + std::to_string(i + 1) +
              " is neither a DER certificate nor a CRL");
      }
      if (is_root_crl(*crl))
        set_once(c.root_crl, f, i, "root CA CRL");
      else
        set_once(c.pck_crl, f, i, "PCK CRL");
    } else {
      unfit("collateral file #" + std::to_string(i + 1) +
            " is of unknown kind (expected collateral JSON, a PEM chain, a DER certificate or a "
            "CRL)");
    }
  }
  return c;
}

Claims verify_dcap(const VerifyInput& in, Collateral& c) {
  if (c.der_certificate)
    unfit("a DER certificate was given with a DCAP quote (the PCK chain is in the quote)");
  if (c.dcap_qvl) {
    if (c.tcb_info_response || c.qe_identity_response || c.root_crl || c.pck_crl || c.pem_chain)
      unfit("dcap-qvl collateral JSON holds everything: give no other collateral file with it");
    return verify_dcap_quote(in.evidence, *c.dcap_qvl, in.now);
  }
  if (!c.tcb_info_response && !c.qe_identity_response)
    unfit(
        "a DCAP quote needs its collateral: a dcap-qvl collateral JSON, or the PCS TCB Info and "
        "QE Identity responses with the PCK and root CRLs and their issuer chain");
  if (!c.tcb_info_response) unfit("missing collateral: the PCS TCB Info response");
  if (!c.qe_identity_response) unfit("missing collateral: the PCS QE Identity response");
  if (!c.pck_crl) unfit("missing collateral: the PCK CRL");
  if (!c.root_crl) unfit("missing collateral: the Intel SGX Root CA CRL");
  if (!c.pem_chain) unfit("missing collateral: the PEM issuer chain of the PCS responses");
  DcapCollateral col = DcapCollateral::from_pcs_responses(
      *c.tcb_info_response, *c.qe_identity_response, *c.pck_crl, *c.root_crl, *c.pem_chain);
  return verify_dcap_quote(in.evidence, col, in.now);
}

Claims verify_snp(const VerifyInput& in, Collateral& c) {
  if (c.dcap_qvl || c.tcb_info_response || c.qe_identity_response || c.root_crl || c.pck_crl)
    unfit("Intel collateral was given with an AMD SEV-SNP report");
  if (!c.der_certificate)
    unfit("missing collateral: the VCEK certificate (DER) of the SEV-SNP report");
  if (!c.pem_chain) unfit("missing collateral: the AMD ASK/ARK chain (PEM) of the SEV-SNP report");
  const std::vector<Certificate> chain = Certificate::chain_from_pem(*c.pem_chain, "ASK/ARK chain");
  return verify_snp_report(in.evidence, *c.der_certificate, chain, in.now);
}

// The simulated platform: its certificate (simulated-platform.pem, the only
// collateral) is the trust anchor the operator chose to trust; no hardware
// vouches for anything (the Policy refuses the claims unless it trusts the
// simulated platform explicitly).
Claims verify_simulated(const VerifyInput& in, Collateral& c) {
  if (c.dcap_qvl || c.tcb_info_response || c.qe_identity_response || c.root_crl || c.pck_crl ||
      c.der_certificate)
    unfit("hardware collateral was given with SIMULATED platform evidence");
  if (!c.pem_chain)
    unfit("missing collateral: the simulated platform's certificate (simulated-platform.pem)");
  const std::vector<Certificate> certs =
      Certificate::chain_from_pem(*c.pem_chain, "simulated platform certificate");
  if (certs.size() != 1)
    unfit("the simulated platform's certificate file holds " + std::to_string(certs.size()) +
          " certificates, expected 1");
  return verify_simulated_evidence(in.evidence, certs.front(), in.now);
}

}  // namespace

std::string evidence_kind(const Bytes& evidence) {
  if (looks_like_simulated_evidence(evidence)) return "SIMULATED platform evidence (no hardware)";
  if (looks_like_snp_report(evidence)) return "AMD SEV-SNP report";
  if (looks_like_dcap_quote(evidence)) return "Intel DCAP quote";
  return "unknown";
}

Claims verify_evidence(const VerifyInput& in) {
  Collateral c = sort_collateral(in.collateral);
  // Dispatch by content. The simulated platform's evidence (tee/simulated.h)
  // has the DCAP v4 header shape (TEE type "SIM"): its branch must come
  // before the DCAP one.
  if (looks_like_simulated_evidence(in.evidence)) return verify_simulated(in, c);
  if (looks_like_snp_report(in.evidence)) return verify_snp(in, c);
  if (looks_like_dcap_quote(in.evidence)) return verify_dcap(in, c);
  throw_error(ErrorCategory::kBadMessage,
              "attestation: evidence of unknown kind (" + std::to_string(in.evidence.size()) +
                  " bytes; neither an Intel DCAP quote v3/v4/v5 nor an AMD SEV-SNP report)");
}

}  // namespace blindfold::tee
