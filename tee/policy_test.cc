#include "tee/policy.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "tee/crypto.h"

namespace blindfold::tee {
namespace {

Claims up_to_date_sgx() {
  Claims c;
  c.platform = Platform::kSgx;
  c.version = 3;
  c.tcb_status = TcbStatus::kUpToDate;
  c.measurements = {{"MRENCLAVE", Bytes(32, 0xAA)}, {"MRSIGNER", Bytes(32, 0xBB)}};
  c.debug = false;
  return c;
}

bool has(const std::vector<std::string>& v, const std::string& needle) {
  for (const auto& s : v)
    if (s.find(needle) != std::string::npos) return true;
  return false;
}

std::string error_of(std::string_view json) {
  try {
    Policy::from_json(json);
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
    return e.what();
  }
  return "";
}

TEST(Policy, DefaultsAcceptOnlyUpToDate) {
  Policy p;
  Claims c = up_to_date_sgx();
  Appraisal a = appraise(p, c);
  EXPECT_TRUE(a.accepted()) << a.failures.front();
  EXPECT_TRUE(has(a.warnings, "no expected measurement"));
  for (TcbStatus s : {TcbStatus::kSWHardeningNeeded, TcbStatus::kConfigurationNeeded,
                      TcbStatus::kConfigurationAndSWHardeningNeeded, TcbStatus::kOutOfDate,
                      TcbStatus::kOutOfDateConfigurationNeeded, TcbStatus::kRevoked}) {
    c.tcb_status = s;
    a = appraise(p, c);
    EXPECT_FALSE(a.accepted()) << tcb_status_name(s);
    EXPECT_TRUE(has(a.failures, "TCB status " + std::string(tcb_status_name(s)) +
                                    " is not allowed (allowed: UpToDate)"));
  }
}

TEST(Policy, ANamedExceptionAdmitsExactlyThatStatus) {
  Policy p = Policy::from_json(
      R"({"allowed_tcb_statuses": ["UpToDate", "ConfigurationAndSWHardeningNeeded"]})");
  Claims c = up_to_date_sgx();
  c.tcb_status = TcbStatus::kConfigurationAndSWHardeningNeeded;
  c.advisory_ids = {"INTEL-SA-00289", "INTEL-SA-00615"};
  Appraisal a = appraise(p, c);
  EXPECT_TRUE(a.accepted());
  EXPECT_TRUE(has(a.warnings, "explicit exception"));
  for (TcbStatus s : {TcbStatus::kSWHardeningNeeded, TcbStatus::kConfigurationNeeded,
                      TcbStatus::kOutOfDate, TcbStatus::kRevoked}) {
    c.tcb_status = s;
    EXPECT_FALSE(appraise(p, c).accepted()) << tcb_status_name(s);
  }
  // Advisories: when listed, every advisory of the claims must be in the list.
  c.tcb_status = TcbStatus::kConfigurationAndSWHardeningNeeded;
  p.allowed_advisories = std::set<std::string>{"INTEL-SA-00289"};
  a = appraise(p, c);
  EXPECT_FALSE(a.accepted());
  EXPECT_TRUE(has(a.failures, "advisory INTEL-SA-00615"));
  p.allowed_advisories->insert("INTEL-SA-00615");
  EXPECT_TRUE(appraise(p, c).accepted());
  // Without UpToDate in the list, UpToDate itself is refused.
  Policy only = Policy::from_json(R"({"allowed_tcb_statuses": ["SWHardeningNeeded"]})");
  EXPECT_FALSE(appraise(only, up_to_date_sgx()).accepted());
}

TEST(Policy, DebugAndMigrationAgent) {
  Claims c = up_to_date_sgx();
  c.debug = true;
  EXPECT_TRUE(has(appraise(Policy{}, c).failures, "debug enclave"));
  Policy p = Policy::from_json(R"({"allow_debug": true})");
  Appraisal a = appraise(p, c);
  EXPECT_TRUE(a.accepted());
  EXPECT_TRUE(has(a.warnings, "debug enclave accepted"));
  // A default Claims says debug (the safe default of an unfilled struct).
  EXPECT_FALSE(appraise(Policy{}, Claims{}).accepted());

  c = up_to_date_sgx();
  c.platform = Platform::kSevSnp;
  c.migration_agent = true;
  EXPECT_TRUE(has(appraise(Policy{}, c).failures, "migration agent"));
  EXPECT_TRUE(appraise(Policy::from_json(R"({"allow_migration_agent": true})"), c).accepted());
}

TEST(Policy, Measurements) {
  const std::string aa(64, 'a'), bb(64, 'b'), cc(64, 'c');
  Policy p = Policy::from_json(R"({"measurements": {"MRENCLAVE": [")" + cc + R"(", ")" + aa +
                               R"("], "MRSIGNER": [")" + bb + R"("]}})");
  Claims c = up_to_date_sgx();
  Appraisal a = appraise(p, c);
  EXPECT_TRUE(a.accepted());
  EXPECT_FALSE(has(a.warnings, "no expected measurement"));
  c.measurements[0].second[5] ^= 1;
  a = appraise(p, c);
  EXPECT_FALSE(a.accepted());
  EXPECT_TRUE(has(a.failures, "measurement MRENCLAVE"));
  EXPECT_TRUE(has(a.failures, "not one of the policy's 2 expected"));
  // A measurement the evidence does not carry (TDX names on SGX claims).
  p = Policy::from_json(R"({"measurements": {"MRTD": [")" + aa + R"("]}})");
  a = appraise(p, up_to_date_sgx());
  EXPECT_FALSE(a.accepted());
  EXPECT_TRUE(
      has(a.failures, "MRTD is required by the policy but the Intel SGX evidence has none"));
}

TEST(Policy, PlatformsAndTheSimulatedPlatform) {
  Claims c = up_to_date_sgx();
  c.platform = Platform::kSimulated;
  Appraisal a = appraise(Policy{}, c);
  EXPECT_FALSE(a.accepted());
  EXPECT_TRUE(has(a.failures, "trust_simulated_platform"));
  Policy p = Policy::from_json(R"({"trust_simulated_platform": true})");
  a = appraise(p, c);
  EXPECT_TRUE(a.accepted());
  EXPECT_TRUE(has(a.warnings, "simulated platform trusted"));
  // A platform list without the simulated platform refuses it even when trusted.
  p = Policy::from_json(R"({"trust_simulated_platform": true, "platforms": ["Intel TDX"]})");
  EXPECT_FALSE(appraise(p, c).accepted());
  EXPECT_FALSE(appraise(p, up_to_date_sgx()).accepted());
  Claims tdx = up_to_date_sgx();
  tdx.platform = Platform::kTdx;
  EXPECT_TRUE(appraise(p, tdx).accepted());
}

TEST(Policy, ReportDataBinding) {
  const Bytes key(65, 0x04), nonce(32, 0x11);
  auto rd = binding_report_data(key, nonce);
  Bytes both = key;
  both.insert(both.end(), nonce.begin(), nonce.end());
  const Bytes h = sha256(both);
  EXPECT_TRUE(std::equal(h.begin(), h.end(), rd.begin()));
  EXPECT_TRUE(std::all_of(rd.begin() + 32, rd.end(), [](std::uint8_t b) { return b == 0; }));
  Claims c = up_to_date_sgx();
  c.report_data = rd;
  EXPECT_TRUE(appraise(Policy{}, c, rd).accepted());
  auto other = binding_report_data(key, Bytes(32, 0x12));
  Appraisal a = appraise(Policy{}, c, other);
  EXPECT_FALSE(a.accepted());
  EXPECT_TRUE(has(a.failures, "report_data"));
}

TEST(Policy, BadJsonNamesTheKey) {
  EXPECT_NE(error_of(R"({"allowed_tcb_status": ["UpToDate"]})")
                .find("\"allowed_tcb_status\": unknown key"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"allow_debug": "yes"})").find("\"allow_debug\": must be true or false"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"allowed_tcb_statuses": "UpToDate"})").find("\"allowed_tcb_statuses\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"allowed_tcb_statuses": ["Fine"]})").find("unknown TCB status \"Fine\""),
            std::string::npos);
  EXPECT_NE(
      error_of(R"({"measurements": {"MRENCLAVE": ["zz"]}})").find("\"measurements.MRENCLAVE\""),
      std::string::npos);
  EXPECT_NE(error_of(R"({"measurements": {"MRENCLAVE": []}})").find("non-empty"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"measurements": ["aa"]})").find("\"measurements\""), std::string::npos);
  EXPECT_NE(error_of(R"({"platforms": ["AMD SEV"]})").find("unknown platform"), std::string::npos);
  EXPECT_NE(error_of(R"({"trust_simulated_platform": 1})").find("trust_simulated_platform"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"allow_debug": false, "allow_debug": true})")
                .find("\"allow_debug\": given twice"),
            std::string::npos);
  EXPECT_NE(error_of("[1]").find("JSON object"), std::string::npos);
  EXPECT_NE(error_of("{").find("not valid JSON"), std::string::npos);
  // The empty object is the default policy.
  Policy p = Policy::from_json("{}");
  EXPECT_EQ(p.allowed_tcb_statuses, std::set<TcbStatus>{TcbStatus::kUpToDate});
  EXPECT_FALSE(p.allow_debug);
  EXPECT_FALSE(p.trust_simulated_platform);
}

}  // namespace
}  // namespace blindfold::tee
