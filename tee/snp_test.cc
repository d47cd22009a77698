#include "tee/snp.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "core/error.h"
#include "tee/test_util.h"

namespace blindfold::tee {
namespace {

using testutil::read_testdata;

struct Sample {
  Bytes report = read_testdata("go-sev-guest/attestation.bin");
  Bytes vcek_der = read_testdata("go-sev-guest/vcek.testcer");
  Bytes chain_pem = read_testdata("go-sev-guest/ask_ark_milan.pem");
  Certificate vcek = Certificate::from_der(vcek_der, "VCEK");
  std::vector<Certificate> chain = Certificate::chain_from_pem(
      std::string_view(reinterpret_cast<const char*>(chain_pem.data()), chain_pem.size()),
      "ASK/ARK");
  Time now = *parse_time("2025-07-01T00:00:00Z");
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
    return e.what();
  }
  return "";
}

TEST(Snp, RealReportVerifies) {
  Sample s;
  ASSERT_TRUE(looks_like_snp_report(s.report));
  Claims c = verify_snp_report(s.report, s.vcek, s.chain, s.now);
  EXPECT_EQ(c.platform, Platform::kSevSnp);
  EXPECT_EQ(c.version, 2u);
  EXPECT_EQ(c.tcb_status, TcbStatus::kUpToDate);
  std::array<std::uint8_t, 64> rd{1, 2, 3, 4, 5};
  EXPECT_EQ(c.report_data, rd);
  ASSERT_NE(c.measurement("MEASUREMENT"), nullptr);
  EXPECT_EQ(to_hex(*c.measurement("MEASUREMENT")),
            "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b"
            "6bdf8a9ece31a5a608eb0cf2e4872b01");
  ASSERT_NE(c.measurement("HOST_DATA"), nullptr);
  EXPECT_EQ(c.measurement("HOST_DATA")->size(), 32u);
  // POLICY 0x0b0000: SMT (16), reserved-one (17), DEBUG (19); no migration agent.
  EXPECT_TRUE(c.debug);
  EXPECT_FALSE(c.migration_agent);
  auto detail = [&](const std::string& k) {
    for (const auto& [n, v] : c.details)
      if (n == k) return v;
    return std::string("<none>");
  };
  EXPECT_EQ(detail("policy"), "0x00000000000b0000");
  EXPECT_EQ(detail("reported_tcb"), "bl=2 tee=0 snp=5 ucode=68");
  EXPECT_EQ(detail("product"), "Milan-B0");
  EXPECT_EQ(detail("vcek_valid_until"), "2029-09-24T00:55:28Z");
  // The chain in either order.
  std::vector<Certificate> reversed{s.chain[1], s.chain[0]};
  EXPECT_NO_THROW(verify_snp_report(s.report, s.vcek, reversed, s.now));
}

TEST(Snp, EverySingleByteFlipIsRejected) {
  Sample s;
  int rejected = 0, total = 0;
  for (std::size_t i = 0; i < s.report.size(); ++i) {
    Bytes r = s.report;
    r[i] ^= 0x01;
    ++total;
    try {
      verify_snp_report(r, s.vcek, s.chain, s.now);
      ADD_FAILURE() << "flip of bit 0 at offset " << i << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
      ++rejected;
    }
  }
  // And a different bit in the signed region, byte by byte.
  for (std::size_t i = 0; i < kSnpSignedBytes; ++i) {
    Bytes r = s.report;
    r[i] ^= 0x80;
    ++total;
    try {
      verify_snp_report(r, s.vcek, s.chain, s.now);
      ADD_FAILURE() << "flip of bit 7 at offset " << i << " accepted";
    } catch (const Error&) {
      ++rejected;
    }
  }
  std::printf(
      "SEV-SNP: %d of %d single-byte flips rejected (every byte of [0, 0x4A0) and again "
      "[0, 0x2A0))\n",
      rejected, total);
  EXPECT_EQ(rejected, total);
  EXPECT_EQ(total, static_cast<int>(kSnpReportBytes + kSnpSignedBytes));
}

TEST(Snp, NamedRejections) {
  Sample s;
  auto with = [&](std::size_t off, std::uint8_t v) {
    Bytes r = s.report;
    r[off] = v;
    return message_of([&] { verify_snp_report(r, s.vcek, s.chain, s.now); });
  };
  EXPECT_NE(with(0x2A0 + 1, 0x00).find("signature does not verify"), std::string::npos);
  EXPECT_NE(with(0x50, 0x09).find("signature does not verify"), std::string::npos);
  EXPECT_NE(with(0x2A0 + 60, 0x01).find("padding"), std::string::npos);
  EXPECT_NE(with(0x400, 0x01).find("reserved"), std::string::npos);
  EXPECT_NE(with(0x1A0, 0x00).find("CHIP_ID"), std::string::npos);
  EXPECT_NE(with(0x186, 0x04).find("below the VCEK"), std::string::npos);
  EXPECT_NE(with(0x186, 0x06).find("is not the VCEK's TCB"), std::string::npos);
  EXPECT_NE(with(0x34, 0x02).find("SIGNATURE_ALGO"), std::string::npos);
  EXPECT_NE(with(0x00, 0x05).find("VERSION"), std::string::npos);
  EXPECT_NE(with(0x0A, 0x09).find("bit 17"), std::string::npos);
}

TEST(Snp, TruncatedAndExtendedReportsAreRejected) {
  Sample s;
  for (std::size_t n : {std::size_t{0}, std::size_t{4}, kSnpSignedBytes, kSnpReportBytes - 1}) {
    Bytes r(s.report.begin(), s.report.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(looks_like_snp_report(r));
    EXPECT_NE(message_of([&] { verify_snp_report(r, s.vcek, s.chain, s.now); }).find("bytes"),
              std::string::npos);
  }
  Bytes longer = s.report;
  longer.push_back(0);
  EXPECT_FALSE(looks_like_snp_report(longer));
  EXPECT_THROW(verify_snp_report(longer, s.vcek, s.chain, s.now), Error);
}

TEST(Snp, TcbStatusIsReportedAgainstCommitted) {
  const std::array<std::uint8_t, 8> committed{2, 0, 0, 0, 0, 0, 5, 68};
  EXPECT_EQ(snp_tcb_status(committed, committed), TcbStatus::kUpToDate);
  for (std::size_t i : {0, 1, 6, 7}) {
    std::array<std::uint8_t, 8> older = committed, newer = committed;
    if (older[i] == 0) {
      newer[i] = 1;
      EXPECT_EQ(snp_tcb_status(committed, newer), TcbStatus::kOutOfDate) << i;
    } else {
      older[i] -= 1;
      EXPECT_EQ(snp_tcb_status(older, committed), TcbStatus::kOutOfDate) << i;
    }
    newer[i] += 1;
    EXPECT_EQ(snp_tcb_status(newer, committed), TcbStatus::kUpToDate) << i;
  }
}

TEST(Snp, CertificatesAndTime) {
  Sample s;
  // Outside the VCEK's validity (2022-09-24 .. 2029-09-24).
  EXPECT_NE(message_of([&] {
              verify_snp_report(s.report, s.vcek, s.chain, *parse_time("2030-01-01T00:00:00Z"));
            }).find("chain"),
            std::string::npos);
  EXPECT_THROW(verify_snp_report(s.report, s.vcek, s.chain, *parse_time("2022-01-01T00:00:00Z")),
               Error);
  // A flipped byte in the VCEK or the ASK: the DER no longer parses, or a
  // signature in the chain no longer verifies. Bytes near the end are in the
  // RSA-PSS signature itself.
  int vcek_rejected = 0, vcek_total = 0;
  for (std::size_t i = 0; i < s.vcek_der.size(); i += 7) {
    Bytes der = s.vcek_der;
    der[i] ^= 0x04;
    ++vcek_total;
    try {
      Certificate v = Certificate::from_der(der, "VCEK");
      verify_snp_report(s.report, v, s.chain, s.now);
    } catch (const Error&) {
      ++vcek_rejected;
    }
  }
  EXPECT_EQ(vcek_rejected, vcek_total);
  Bytes ask_der = s.chain[0].der();
  int ask_rejected = 0, ask_total = 0;
  for (std::size_t i = 0; i < ask_der.size(); i += 11) {
    Bytes der = ask_der;
    der[i] ^= 0x04;
    ++ask_total;
    try {
      std::vector<Certificate> chain{Certificate::from_der(der, "ASK"), s.chain[1]};
      verify_snp_report(s.report, s.vcek, chain, s.now);
    } catch (const Error&) {
      ++ask_rejected;
    }
  }
  EXPECT_EQ(ask_rejected, ask_total);
  std::printf("SEV-SNP: %d/%d VCEK and %d/%d ASK byte flips rejected\n", vcek_rejected, vcek_total,
              ask_rejected, ask_total);
  // Without the ARK: unknown root. Without the ASK: the chain does not build.
  std::vector<Certificate> ask_only{s.chain[0]};
  EXPECT_NE(message_of([&] {
              verify_snp_report(s.report, s.vcek, ask_only, s.now);
            }).find("unknown AMD root"),
            std::string::npos);
  std::vector<Certificate> ark_only{s.chain[1]};
  EXPECT_THROW(verify_snp_report(s.report, s.vcek, ark_only, s.now), Error);
  // The ASK in the VCEK's place: not the key that signed (and no chip id).
  EXPECT_THROW(verify_snp_report(s.report, s.chain[0], s.chain, s.now), Error);
  EXPECT_EQ(to_hex(s.chain[1].fingerprint_sha256()), kAmdMilanArkSha256Hex);
}

}  // namespace
}  // namespace blindfold::tee
