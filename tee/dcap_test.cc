#include "tee/dcap.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>

#include "core/error.h"
#include "tee/crypto.h"

namespace blindfold::tee {
namespace {

using namespace std::chrono_literals;

Bytes read_testdata(const std::string& rel) {
  std::string path = "../shared/testdata/attestation/" + rel;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    ADD_FAILURE() << "missing test vector " << path
                  << " (tests read ../shared/testdata from the project root)";
  return Bytes(std::istreambuf_iterator<char>(in), {});
}
std::string read_text(const std::string& rel) {
  Bytes b = read_testdata(rel);
  return std::string(b.begin(), b.end());
}

Time at(const char* s) {
  auto t = parse_time(s);
  EXPECT_TRUE(t) << s;
  return t.value_or(Time{});
}

std::string detail(const Claims& c, const std::string& key) {
  for (const auto& [k, v] : c.details)
    if (k == key) return v;
  return "";
}

/// Runs `f`, expecting Error(kBadMessage) whose message contains `needle`.
void expect_rejected(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "accepted; expected a rejection containing \"" << needle << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("attestation: ", 0), 0u) << e.what();
  }
}

struct Sample {
  Bytes quote;
  DcapCollateral collateral;
  Time now;
};

Sample sgx_sample() {
  return {read_testdata("dcap-qvl/sgx_quote"),
          DcapCollateral::from_json(read_text("dcap-qvl/sgx_quote_collateral.json")),
          at("2025-06-20T00:00:00Z")};
}
Sample tdx_sample() {
  return {read_testdata("dcap-qvl/tdx_quote"),
          DcapCollateral::from_json(read_text("dcap-qvl/tdx_quote_collateral.json")),
          at("2025-06-20T00:00:00Z")};
}
Sample tdx_outdated_sample() {
  return {read_testdata("dcap-qvl/tdx_quote_outdated"),
          DcapCollateral::from_json(read_text("dcap-qvl/tdx_quote_outdated_collateral.json")),
          at("2026-02-19T00:00:00Z")};
}

TEST(Dcap, SgxSampleIsConfigurationAndSWHardeningNeeded) {
  Sample s = sgx_sample();
  ASSERT_TRUE(looks_like_dcap_quote(s.quote));
  Claims c = verify_dcap_quote(s.quote, s.collateral, s.now);
  EXPECT_EQ(c.platform, Platform::kSgx);
  EXPECT_EQ(c.version, 3u);
  EXPECT_EQ(c.tcb_status, TcbStatus::kConfigurationAndSWHardeningNeeded);
  EXPECT_EQ(c.advisory_ids, (std::vector<std::string>{"INTEL-SA-00289", "INTEL-SA-00615"}));
  ASSERT_NE(c.measurement("MRENCLAVE"), nullptr);
  ASSERT_NE(c.measurement("MRSIGNER"), nullptr);
  EXPECT_EQ(c.measurement("MRENCLAVE")->size(), 32u);
  EXPECT_EQ(to_hex(*c.measurement("MRENCLAVE")), to_hex(std::span(s.quote).subspan(48 + 64, 32)));
  EXPECT_EQ(to_hex(c.report_data), to_hex(std::span(s.quote).subspan(48 + 320, 64)));
  EXPECT_EQ(detail(c, "fmspc"), "00A067110000");
  EXPECT_EQ(detail(c, "tcb_evaluation_data_number"), "17");
  EXPECT_EQ(detail(c, "collateral_valid_until"), "2025-07-19T10:01:18Z");
}

TEST(Dcap, TdxSampleIsUpToDate) {
  Sample s = tdx_sample();
  Claims c = verify_dcap_quote(s.quote, s.collateral, s.now);
  EXPECT_EQ(c.platform, Platform::kTdx);
  EXPECT_EQ(c.version, 4u);
  EXPECT_EQ(c.tcb_status, TcbStatus::kUpToDate);
  EXPECT_TRUE(c.advisory_ids.empty());
  EXPECT_FALSE(c.debug);
  for (const char* m : {"MRTD", "RTMR0", "RTMR1", "RTMR2", "RTMR3", "MRSEAM"}) {
    ASSERT_NE(c.measurement(m), nullptr) << m;
    EXPECT_EQ(c.measurement(m)->size(), 48u) << m;
  }
  EXPECT_EQ(to_hex(*c.measurement("MRTD")), to_hex(std::span(s.quote).subspan(48 + 136, 48)));
  EXPECT_EQ(to_hex(c.report_data), to_hex(std::span(s.quote).subspan(48 + 520, 64)));
  EXPECT_EQ(detail(c, "fmspc"), "B0C06F000000");
  EXPECT_EQ(detail(c, "tdx_module_tcb_status"), "UpToDate");
  EXPECT_EQ(detail(c, "qe_tcb_status"), "UpToDate");
  EXPECT_EQ(detail(c, "tee_tcb_svn"), "06010300000000000000000000000000");
}

// The platform's PCK certificate has CPUSVN component 8 = 3; every TCB level
// of this collateral asks for 5 there, so no level is <= the platform in every
// component (Intel's rule) and the TCB is unrecognized: rejected. (dcap-qvl
// compares the component arrays lexicographically and says OutOfDate.)
TEST(Dcap, TdxOutdatedSampleIsRejectedAsUnrecognizedTcb) {
  Sample s = tdx_outdated_sample();
  DcapQuote q = parse_dcap_quote(s.quote);
  EXPECT_EQ(q.version, 5);
  EXPECT_EQ(q.body_type, 3);
  expect_rejected([&] { verify_dcap_quote(s.quote, s.collateral, s.now); }, "TCB unrecognized");
}

TEST(Dcap, QuoteV5SampleWithTheSamePlatformsCollateral) {
  Bytes quote = read_testdata("go-tdx-guest/quote_v5_sample.dat");
  DcapQuote q = parse_dcap_quote(quote);
  EXPECT_EQ(q.version, 5);
  EXPECT_EQ(q.tee_type, 0x81u);
  EXPECT_EQ(q.body_type, 3);
  EXPECT_EQ(q.body.size(), 648u);
  EXPECT_EQ(q.length, quote.size());
  // dcap-qvl's tdx_quote_outdated collateral is for FMSPC 90C06F000000, the
  // v5 sample's platform: the whole verification runs.
  Sample s = tdx_outdated_sample();
  Claims c = verify_dcap_quote(quote, s.collateral, s.now);
  EXPECT_EQ(c.platform, Platform::kTdx);
  EXPECT_EQ(c.version, 5u);
  EXPECT_EQ(c.tcb_status, TcbStatus::kUpToDate);
  EXPECT_TRUE(c.advisory_ids.empty());
  EXPECT_EQ(detail(c, "fmspc"), "90C06F000000");
  EXPECT_EQ(detail(c, "tee_tcb_svn"), "0b010400000000000000000000000000");
  EXPECT_EQ(detail(c, "tee_tcb_svn2"), "0d010400000000000000000000000000");
  EXPECT_EQ(detail(c, "tcb_evaluation_data_number"), "18");
}

}  // namespace
}  // namespace blindfold::tee
