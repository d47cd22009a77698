#include "tee/verify.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "tee/policy.h"
#include "tee/simulated.h"
#include "tee/test_util.h"

namespace blindfold::tee {
namespace {

using testutil::read_testdata;

VerifyInput snp_input() {
  return {
      read_testdata("go-sev-guest/attestation.bin"),
      {read_testdata("go-sev-guest/vcek.testcer"), read_testdata("go-sev-guest/ask_ark_milan.pem")},
      *parse_time("2025-07-01T00:00:00Z")};
}

VerifyInput sgx_input() {
  return {read_testdata("dcap-qvl/sgx_quote"),
          {read_testdata("dcap-qvl/sgx_quote_collateral.json")},
          *parse_time("2025-06-20T00:00:00Z")};
}

std::pair<ErrorCategory, std::string> error_of(const VerifyInput& in) {
  try {
    verify_evidence(in);
  } catch (const Error& e) {
    return {e.category(), e.what()};
  }
  return {ErrorCategory::kInternal, "accepted"};
}

TEST(Verify, SnpReportByContent) {
  VerifyInput in = snp_input();
  EXPECT_EQ(evidence_kind(in.evidence), "AMD SEV-SNP report");
  Claims c = verify_evidence(in);
  EXPECT_EQ(c.platform, Platform::kSevSnp);
  EXPECT_EQ(c.tcb_status, TcbStatus::kUpToDate);
  // Collateral in any order.
  std::swap(in.collateral[0], in.collateral[1]);
  EXPECT_EQ(verify_evidence(in).platform, Platform::kSevSnp);
  // The real report is a debug guest: the default policy refuses it.
  Appraisal a = appraise(Policy{}, c);
  EXPECT_FALSE(a.accepted());
  ASSERT_EQ(a.failures.size(), 1u);
  EXPECT_NE(a.failures[0].find("debug"), std::string::npos);
}

TEST(Verify, SgxQuoteByContentIsRejectedByTheDefaultPolicy) {
  VerifyInput in = sgx_input();
  EXPECT_EQ(evidence_kind(in.evidence), "Intel DCAP quote");
  Claims c = verify_evidence(in);
  EXPECT_EQ(c.platform, Platform::kSgx);
  EXPECT_EQ(c.tcb_status, TcbStatus::kConfigurationAndSWHardeningNeeded);
  Appraisal a = appraise(Policy{}, c);
  EXPECT_FALSE(a.accepted());
  Policy p = Policy::from_json(
      R"({"allowed_tcb_statuses": ["UpToDate", "ConfigurationAndSWHardeningNeeded"]})");
  EXPECT_TRUE(appraise(p, c).accepted()) << appraise(p, c).failures.front();
}

TEST(Verify, RejectionsAndUnfitCollateral) {
  VerifyInput in = snp_input();
  in.evidence[0x90] ^= 1;
  auto [cat, msg] = error_of(in);
  EXPECT_EQ(cat, ErrorCategory::kBadMessage);
  EXPECT_NE(msg.find("attestation: SEV-SNP report: the VCEK signature does not verify"),
            std::string::npos)
      << msg;

  in = snp_input();
  in.collateral.pop_back();
  std::tie(cat, msg) = error_of(in);
  EXPECT_EQ(cat, ErrorCategory::kBadInput);
  EXPECT_NE(msg.find("ASK/ARK chain"), std::string::npos) << msg;
  in.collateral = {};
  std::tie(cat, msg) = error_of(in);
  EXPECT_NE(msg.find("VCEK"), std::string::npos) << msg;
  in = snp_input();
  in.collateral.push_back(in.collateral[0]);
  std::tie(cat, msg) = error_of(in);
  EXPECT_NE(msg.find("second DER certificate"), std::string::npos) << msg;
  in = snp_input();
  in.collateral.push_back(Bytes{'h', 'i'});
  std::tie(cat, msg) = error_of(in);
  EXPECT_NE(msg.find("collateral file #3 is of unknown kind"), std::string::npos) << msg;
  in = snp_input();
  in.collateral.push_back(read_testdata("dcap-qvl/sgx_quote_collateral.json"));
  std::tie(cat, msg) = error_of(in);
  EXPECT_NE(msg.find("Intel collateral"), std::string::npos) << msg;

  in = sgx_input();
  in.collateral = {};
  std::tie(cat, msg) = error_of(in);
  EXPECT_EQ(cat, ErrorCategory::kBadInput);
  EXPECT_NE(msg.find("needs its collateral"), std::string::npos) << msg;
  in = sgx_input();
  in.now = *parse_time("2025-09-01T00:00:00Z");  // after the collateral's nextUpdate
  std::tie(cat, msg) = error_of(in);
  EXPECT_EQ(cat, ErrorCategory::kBadMessage) << msg;

  in.evidence = Bytes(100, 0);
  std::tie(cat, msg) = error_of(in);
  EXPECT_EQ(cat, ErrorCategory::kBadMessage);
  EXPECT_NE(msg.find("evidence of unknown kind"), std::string::npos) << msg;
  EXPECT_EQ(evidence_kind(in.evidence), "unknown");
}

TEST(Verify, PcsResponsesAreSortedByKind) {
  // go-tdx-guest's PCS-style files: a TCB Info and a QE Identity response and
  // the PCK and root CRLs. Without the issuer chain the collateral is
  // incomplete, and the message names what is missing.
  VerifyInput in{
      read_testdata("go-tdx-guest/tdx_prod_quote_SPR_E4.dat"),
      {read_testdata("go-tdx-guest/rootcrl.der"),
       read_testdata("go-tdx-guest/sample_tcbInfo_response"), read_testdata("go-tdx-guest/pckcrl"),
       read_testdata("go-tdx-guest/sample_qeIdentity_response")},
      *parse_time("2023-07-01T00:00:00Z")};
  auto [cat, msg] = error_of(in);
  EXPECT_EQ(cat, ErrorCategory::kBadInput);
  EXPECT_NE(msg.find("missing collateral: the PEM issuer chain"), std::string::npos) << msg;
  in.collateral.erase(in.collateral.begin());
  std::tie(cat, msg) = error_of(in);
  EXPECT_NE(msg.find("missing collateral: the Intel SGX Root CA CRL"), std::string::npos) << msg;
}

// The SIMULATED platform's evidence by content (its DCAP-v4-shaped header
// must not reach the DCAP verifier), its certificate as the one collateral;
// the default policy refuses it, trust_simulated_platform admits it.
TEST(Verify, SimulatedEvidenceByContent) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("bf-verify-sim-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const SimulatedPlatform platform = SimulatedPlatform::load_or_create(dir);
  std::ifstream pem_in(dir / "simulated-platform.pem", std::ios::binary);
  const Bytes pem(std::istreambuf_iterator<char>(pem_in), {});
  const Bytes code(48, 0xC0), model(48, 0x0D);
  std::array<std::uint8_t, 64> rd{};
  rd[0] = 7;
  VerifyInput in{
      platform.make_evidence(code, model, rd, false), {pem}, *parse_time("2030-01-01T00:00:00Z")};
  in.now = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  EXPECT_EQ(evidence_kind(in.evidence), "SIMULATED platform evidence (no hardware)");
  const Claims c = verify_evidence(in);
  EXPECT_EQ(c.platform, Platform::kSimulated);
  ASSERT_NE(c.measurement("MODEL"), nullptr);
  EXPECT_EQ(*c.measurement("MODEL"), model);
  EXPECT_EQ(c.report_data, rd);
  EXPECT_FALSE(appraise(Policy{}, c).accepted());
  Policy trusting;
  trusting.trust_simulated_platform = true;
  EXPECT_TRUE(appraise(trusting, c, rd).accepted());
  // Another platform's certificate, a missing one, hardware collateral: refused.
  const SimulatedPlatform other = SimulatedPlatform::load_or_create(dir / "other");
  std::ifstream other_in(dir / "other" / "simulated-platform.pem", std::ios::binary);
  VerifyInput foreign = in;
  foreign.collateral = {Bytes(std::istreambuf_iterator<char>(other_in), {})};
  EXPECT_THROW(verify_evidence(foreign), Error);
  VerifyInput bare = in;
  bare.collateral.clear();
  EXPECT_THROW(verify_evidence(bare), Error);
  VerifyInput mixed = in;
  mixed.collateral.push_back(read_testdata("go-sev-guest/vcek.testcer"));
  EXPECT_THROW(verify_evidence(mixed), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace blindfold::tee
