// `blindfold attest verify` end to end on the real evidence of
// ../shared/testdata/attestation (read from the project root): verdicts, exit
// statuses and the lines an operator reads.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/process_util.h"

namespace fs = std::filesystem;

namespace {

const std::string kBin = BLINDFOLD_BIN;
const std::string kData = "../shared/testdata/attestation/";
const std::string kSnp = "attest verify " + kData + "go-sev-guest/attestation.bin -c " + kData +
                         "go-sev-guest/vcek.testcer -c " + kData +
                         "go-sev-guest/ask_ark_milan.pem --now 2025-07-01T00:00:00Z";
const std::string kSgx = "attest verify " + kData + "dcap-qvl/sgx_quote -c " + kData +
                         "dcap-qvl/sgx_quote_collateral.json --now 2025-06-20T00:00:00Z";
const std::string kSnpMeasurement =
    "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b"
    "0"
    "1";

fs::path dir() {
  const fs::path d = fs::temp_directory_path() / ("bf_attest_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

using Result = blindfold::testutil::CommandResult;

Result sh(const std::string& args) {
  return blindfold::testutil::run_command(kBin, args, dir());
}

std::string write(const std::string& name, const std::string& text) {
  const std::string p = (dir() / name).string();
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

bool contains(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

class AttestCli : public ::testing::Test {
 protected:
  void SetUp() override {
    // The test vectors must be there: a missing file fails, never skips.
    for (const char* f : {"go-sev-guest/attestation.bin", "go-sev-guest/vcek.testcer",
                          "go-sev-guest/ask_ark_milan.pem", "dcap-qvl/sgx_quote",
                          "dcap-qvl/sgx_quote_collateral.json"})
      ASSERT_TRUE(fs::exists(kData + f)) << "missing test vector " << kData + f;
  }
};

TEST_F(AttestCli, SnpReportAcceptedWithAPolicyNamingItsMeasurement) {
  // The real report is a debug guest (POLICY bit 19): the policy must allow it.
  const std::string policy =
      write("snp_policy.json", R"({"measurements": {"MEASUREMENT": [")" + kSnpMeasurement +
                                   R"("]}, "allow_debug": true})");
  Result r = sh(kSnp + " --policy " + policy);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("ACCEPTED\n", 0), 0u) << r.out;
  EXPECT_TRUE(contains(r.out, "AMD SEV-SNP")) << r.out;
  EXPECT_TRUE(contains(r.out, "tcb_status                 UpToDate")) << r.out;
  EXPECT_TRUE(contains(r.out, "MEASUREMENT                " + kSnpMeasurement)) << r.out;
  EXPECT_TRUE(contains(r.out, "report_data                0102030405000000")) << r.out;
  EXPECT_TRUE(contains(r.out, "debug                      true")) << r.out;
  EXPECT_TRUE(contains(r.out, "policy warning             debug enclave accepted")) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
  // The binding check: the right report_data passes, another one fails.
  std::string rd = "0102030405" + std::string(118, '0');
  EXPECT_EQ(sh(kSnp + " --policy " + policy + " --report-data " + rd).code, 0);
  rd[0] = '9';
  r = sh(kSnp + " --policy " + policy + " --report-data " + rd);
  EXPECT_EQ(r.code, 10);
  EXPECT_TRUE(contains(r.out, "policy failure             report_data")) << r.out;

  // Default policy: rejected for debug, exit 10.
  r = sh(kSnp);
  EXPECT_EQ(r.code, 10) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("REJECTED by the policy: debug enclave", 0), 0u) << r.out;
  // Another measurement: rejected.
  const std::string other =
      write("snp_other.json", R"({"measurements": {"MEASUREMENT": [")" + std::string(96, 'a') +
                                  R"("]}, "allow_debug": true})");
  r = sh(kSnp + " --policy " + other);
  EXPECT_EQ(r.code, 10);
  EXPECT_TRUE(contains(r.out, "measurement MEASUREMENT " + kSnpMeasurement + " is not one of"))
      << r.out;
}

TEST_F(AttestCli, FlippedSnpByteDoesNotVerify) {
  std::ifstream in(kData + "go-sev-guest/attestation.bin", std::ios::binary);
  std::string report((std::istreambuf_iterator<char>(in)), {});
  ASSERT_EQ(report.size(), 0x4A0u);
  report[0x90] = static_cast<char>(report[0x90] ^ 0x01);  // MEASUREMENT
  const std::string flipped = write("flipped.bin", report);
  Result r = sh("attest verify " + flipped + " -c " + kData + "go-sev-guest/vcek.testcer -c " +
                kData + "go-sev-guest/ask_ark_milan.pem --now 2025-07-01T00:00:00Z");
  EXPECT_EQ(r.code, 4) << r.out << r.err;  // bad message
  EXPECT_TRUE(contains(r.out, "REJECTED: the AMD SEV-SNP report does not verify")) << r.out;
  EXPECT_EQ(r.err,
            "blindfold: bad message: attestation: SEV-SNP report: the VCEK signature does not "
            "verify\n");
  // Outside the VCEK's validity.
  r = sh("attest verify " + kData + "go-sev-guest/attestation.bin -c " + kData +
         "go-sev-guest/vcek.testcer -c " + kData +
         "go-sev-guest/ask_ark_milan.pem --now 2030-01-01T00:00:00Z");
  EXPECT_EQ(r.code, 4);
  EXPECT_TRUE(contains(r.err, "certificate has expired")) << r.err;
}

TEST_F(AttestCli, SgxSampleRejectedByDefaultAcceptedWithTheNamedException) {
  Result r = sh(kSgx);
  EXPECT_EQ(r.code, 10) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("REJECTED by the policy: TCB status ConfigurationAndSWHardeningNeeded is "
                        "not allowed (allowed: UpToDate)",
                        0),
            0u)
      << r.out;
  EXPECT_TRUE(contains(r.out, "advisories                 INTEL-SA-00289, INTEL-SA-00615"))
      << r.out;
  const std::string policy =
      write("sgx_policy.json",
            R"({"allowed_tcb_statuses": ["UpToDate", "ConfigurationAndSWHardeningNeeded"]})");
  r = sh(kSgx + " --policy " + policy);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("ACCEPTED\n", 0), 0u) << r.out;
  EXPECT_TRUE(contains(r.out,
                       "policy warning             TCB status "
                       "ConfigurationAndSWHardeningNeeded accepted by an explicit exception"))
      << r.out;
  // --json: the same verdict, machine-readable.
  r = sh(kSgx + " --json");
  EXPECT_EQ(r.code, 10);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["verdict"], "REJECTED");
  EXPECT_EQ(j["platform"], "Intel SGX");
  EXPECT_EQ(j["tcb_status"], "ConfigurationAndSWHardeningNeeded");
  EXPECT_EQ(j["measurements"]["MRENCLAVE"].get<std::string>().size(), 64u);
  EXPECT_EQ(j["policy_failures"].size(), 1u);
  // After the collateral's nextUpdate (2025-07-19): expired collateral.
  r = sh("attest verify " + kData + "dcap-qvl/sgx_quote -c " + kData +
         "dcap-qvl/sgx_quote_collateral.json --now 2025-09-01T00:00:00Z");
  EXPECT_EQ(r.code, 4) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "REJECTED: the Intel DCAP quote does not verify")) << r.out;
}

TEST_F(AttestCli, BadInputIsOneClearLine) {
  auto expect_clean = [](const Result& r, int code, const std::string& needle) {
    EXPECT_EQ(r.code, code) << r.out << r.err;
    EXPECT_EQ(r.err.rfind("blindfold: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(contains(r.err, needle)) << r.err;
  };
  expect_clean(sh("attest verify /nonexistent/evidence.bin"), 8, "cannot open '/nonexistent");
  expect_clean(sh(kSnp + " -c /nonexistent/vcek.der"), 8, "cannot open '/nonexistent/vcek.der'");
  expect_clean(sh(kSnp + " --policy /nonexistent/policy.json"), 8, "policy.json");
  expect_clean(sh("attest verify " + kData +
                  "go-sev-guest/attestation.bin --now "
                  "2025-07-01T00:00:00Z"),
               3, "missing collateral: the VCEK certificate");
  expect_clean(sh("attest verify " + kData + "go-sev-guest/attestation.bin --now yesterday"), 3,
               "--now");
  expect_clean(sh(kSnp + " --report-data 12"), 3, "--report-data");
  const std::string typo = write("typo.json", R"({"allowed_tcb_status": ["UpToDate"]})");
  expect_clean(sh(kSnp + " --policy " + typo), 3, "\"allowed_tcb_status\": unknown key");
  const std::string junk = write("junk.bin", "not evidence");
  expect_clean(sh("attest verify " + junk), 4, "evidence of unknown kind");
}

}  // namespace
