#include "tee/dcap.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <chrono>
#include <ctime>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>

#include "core/error.h"
#include "tee/crypto.h"
#include "tee/test_util.h"

namespace blindfold::tee {
namespace {

using namespace std::chrono_literals;

using testutil::read_testdata;
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

// go-tdx-guest's production SPR quote and its PCS responses (FMSPC
// 50806F000000, both). The responses carry no issuer chain; the TCB Signing
// certificate of dcap-qvl's collateral (issued 2025-05-06) holds the same
// Intel key: both signatures verify with it. The collateral's window
// (2023-06-18 .. 2023-07-08) ends before that certificate begins, so the full
// verification stops at the signing chain; every quote-side check passes.
TEST(Dcap, SprQuoteWithPcsResponses) {
  Bytes file = read_testdata("go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
  // The file ends with a testing-only text after the quote: refused as it is.
  expect_rejected([&] { parse_dcap_quote(file); }, "trailing bytes");
  Bytes quote(file.begin(), file.begin() + 4935);
  DcapQuote q = parse_dcap_quote(quote);
  EXPECT_EQ(q.version, 4);
  EXPECT_EQ(q.length, quote.size());

  std::string chain = DcapCollateral::from_json(read_text("dcap-qvl/sgx_quote_collateral.json"))
                          .tcb_info_issuer_chain;
  DcapCollateral col = DcapCollateral::from_pcs_responses(
      read_text("go-tdx-guest/sample_tcbInfo_response"),
      read_text("go-tdx-guest/sample_qeIdentity_response"), read_testdata("go-tdx-guest/pckcrl"),
      read_testdata("go-tdx-guest/rootcrl.der"), chain);
  EXPECT_EQ(col.tcb_info.rfind("{\"id\":\"TDX\"", 0), 0u);
  EXPECT_EQ(col.tcb_info.back(), '}');
  EXPECT_EQ(col.qe_identity.rfind("{\"id\":\"TD_QE\"", 0), 0u);
  EXPECT_EQ(col.tcb_info_signature.size(), 64u);
  std::vector<Certificate> signer = Certificate::chain_from_pem(chain, "TCB signing chain");
  auto bytes = [](const std::string& t) {
    return std::span(reinterpret_cast<const std::uint8_t*>(t.data()), t.size());
  };
  EXPECT_TRUE(ecdsa_verify(signer[0], Hash::kSha256, bytes(col.tcb_info), col.tcb_info_signature));
  EXPECT_TRUE(
      ecdsa_verify(signer[0], Hash::kSha256, bytes(col.qe_identity), col.qe_identity_signature));
  std::string flipped = col.tcb_info;
  flipped[10] ^= 1;
  EXPECT_FALSE(ecdsa_verify(signer[0], Hash::kSha256, bytes(flipped), col.tcb_info_signature));

  // Quote side, by hand: PCK chain at a time inside the collateral window
  // with go-tdx-guest's CRLs, QE report signature, key binding, quote signature.
  Time now = at("2023-06-20T00:00:00Z");
  std::string pem(q.pck_chain_pem.begin(), q.pck_chain_pem.end());
  std::vector<Certificate> pck = Certificate::chain_from_pem(pem, "PCK chain");
  ASSERT_EQ(pck.size(), 3u);
  std::vector<Crl> crls;
  crls.push_back(Crl::parse(col.root_ca_crl, "root CRL"));
  crls.push_back(Crl::parse(col.pck_crl, "PCK CRL"));
  std::vector<Certificate> mid{pck[1]};
  EXPECT_NO_THROW(verify_chain(pck[0], mid, pck[2], crls, now, "PCK"));
  EXPECT_TRUE(ecdsa_verify(pck[0], Hash::kSha256, q.qe_report, q.qe_report_signature));
  Bytes bound(q.attestation_key.begin(), q.attestation_key.end());
  bound.insert(bound.end(), q.qe_auth_data.begin(), q.qe_auth_data.end());
  EXPECT_EQ(to_hex(sha256(bound)), to_hex(q.qe_report.subspan(320, 32)));
  EXPECT_TRUE(ecdsa_p256_verify_raw_key(q.attestation_key, q.signed_part, q.signature));

  expect_rejected([&] { verify_dcap_quote(quote, col, now); },
                  "TCB Info signing certificate chain: certificate is not yet valid");
}

TEST(Dcap, CollateralLoadersRefuseMissingFields) {
  auto bad_input = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kBadInput) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  bad_input([] { DcapCollateral::from_json("{"); }, "not JSON");
  bad_input([] { DcapCollateral::from_json("[]"); }, "not a JSON object");
  std::string text = read_text("dcap-qvl/sgx_quote_collateral.json");
  std::string no_crl = text;
  no_crl.replace(no_crl.find("\"pck_crl\""), 9, "\"pck_crX\"");
  bad_input([&] { DcapCollateral::from_json(no_crl); }, "\"pck_crl\"");
  std::string odd = text;
  std::size_t sig = odd.find("\"tcb_info_signature\"");
  odd.replace(odd.find('"', sig + 21) + 1, 1, "z");
  bad_input([&] { DcapCollateral::from_json(odd); }, "tcb_info_signature");
  Bytes none;
  bad_input(
      [&] { DcapCollateral::from_pcs_responses("{\"signature\":\"00\"}", "{}", none, none, ""); },
      "tcbInfo");
}

TEST(Dcap, DispatchSniff) {
  Sample s = sgx_sample();
  EXPECT_TRUE(looks_like_dcap_quote(s.quote));
  EXPECT_FALSE(looks_like_dcap_quote(std::span(s.quote).first(47)));
  Bytes other = s.quote;
  other[0] = 2;
  EXPECT_FALSE(looks_like_dcap_quote(other));
  other = s.quote;
  other[2] = 3;
  EXPECT_FALSE(looks_like_dcap_quote(other));
  EXPECT_FALSE(looks_like_dcap_quote(read_testdata("go-sev-guest/attestation.bin")));
}

TEST(Dcap, CollateralOutsideItsWindowIsRejected) {
  Sample s = sgx_sample();
  // QE Identity nextUpdate 2025-07-19T10:01:18Z, TCB Info issueDate 2025-06-19T10:56:11Z.
  expect_rejected([&] { verify_dcap_quote(s.quote, s.collateral, at("2025-07-19T10:01:19Z")); },
                  "QE Identity has expired");
  expect_rejected([&] { verify_dcap_quote(s.quote, s.collateral, at("2025-08-01T00:00:00Z")); },
                  "TCB Info has expired");
  expect_rejected([&] { verify_dcap_quote(s.quote, s.collateral, at("2025-06-19T10:56:10Z")); },
                  "TCB Info is not yet valid");
  expect_rejected([&] { verify_dcap_quote(s.quote, s.collateral, at("2024-01-01T00:00:00Z")); },
                  "is not yet valid");
  EXPECT_NO_THROW(verify_dcap_quote(s.quote, s.collateral, at("2025-06-19T10:56:11Z")));
  EXPECT_NO_THROW(verify_dcap_quote(s.quote, s.collateral, at("2025-07-19T10:01:18Z")));
}

TEST(Dcap, StaleOrForeignCrlsAreRejected) {
  Sample s = tdx_sample();
  // A PCK CRL of the right issuer (PCK Platform CA) that expired in 2023.
  DcapCollateral stale = s.collateral;
  stale.pck_crl = read_testdata("go-tdx-guest/pckcrl");
  expect_rejected([&] { verify_dcap_quote(s.quote, stale, s.now); }, "CRL has expired");
  // One that is not yet valid (2026).
  DcapCollateral early = s.collateral;
  early.pck_crl = tdx_outdated_sample().collateral.pck_crl;
  expect_rejected([&] { verify_dcap_quote(s.quote, early, s.now); }, "CRL is not yet valid");
  // The SGX quote's PCK is issued by the Processor CA: the Platform CA's CRL does not cover it.
  Sample sgx = sgx_sample();
  DcapCollateral foreign = sgx.collateral;
  foreign.pck_crl = s.collateral.pck_crl;
  expect_rejected([&] { verify_dcap_quote(sgx.quote, foreign, sgx.now); }, "PCK certificate chain");
  // A root CRL that does not parse.
  DcapCollateral broken = sgx.collateral;
  broken.root_ca_crl[5] ^= 0x40;
  expect_rejected([&] { verify_dcap_quote(sgx.quote, broken, sgx.now); }, "root CA CRL");
}

TEST(Dcap, WrongRootIsRejected) {
  Sample s = sgx_sample();
  std::string ark;
  {
    std::string pem = read_text("go-sev-guest/ask_ark_milan.pem");
    std::size_t second = pem.find("-----BEGIN CERTIFICATE-----", 1);
    ASSERT_NE(second, std::string::npos);
    ark = pem.substr(second);  // the self-signed AMD ARK
  }
  auto with_root = [&](const std::string& chain) {
    std::size_t last = chain.rfind("-----BEGIN CERTIFICATE-----");
    return chain.substr(0, last) + ark;
  };
  DcapCollateral tcb = s.collateral;
  tcb.tcb_info_issuer_chain = with_root(tcb.tcb_info_issuer_chain);
  expect_rejected([&] { verify_dcap_quote(s.quote, tcb, s.now); },
                  "TCB Info issuer chain does not end at the Intel SGX Root CA");
  DcapCollateral qe = s.collateral;
  qe.qe_identity_issuer_chain = with_root(qe.qe_identity_issuer_chain);
  expect_rejected([&] { verify_dcap_quote(s.quote, qe, s.now); },
                  "QE Identity issuer chain does not end at the Intel SGX Root CA");
  DcapCollateral crl = s.collateral;
  crl.pck_crl_issuer_chain = with_root(crl.pck_crl_issuer_chain);
  expect_rejected([&] { verify_dcap_quote(s.quote, crl, s.now); },
                  "PCK CRL issuer chain does not end at the Intel SGX Root CA");
  // Without its root, a chain is refused too.
  DcapCollateral short_chain = s.collateral;
  std::string& c = short_chain.tcb_info_issuer_chain;
  c = c.substr(0, c.rfind("-----BEGIN CERTIFICATE-----"));
  expect_rejected([&] { verify_dcap_quote(s.quote, short_chain, s.now); },
                  "TCB Info issuer chain is too short");

  // The quote's own PCK chain ending at another root: rebuild the quote with
  // the AMD ARK in place of the Intel root and the lengths fixed.
  DcapQuote q = parse_dcap_quote(s.quote);
  std::string pem(q.pck_chain_pem.begin(), q.pck_chain_pem.end());
  std::string replaced = with_root(pem.substr(0, pem.find_last_not_of('\0') + 1));
  std::size_t cert_off = static_cast<std::size_t>(q.pck_chain_pem.data() - s.quote.data());
  Bytes forged(s.quote.begin(), s.quote.begin() + static_cast<std::ptrdiff_t>(cert_off));
  forged.insert(forged.end(), replaced.begin(), replaced.end());
  auto put32 = [&](std::size_t off, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) forged[off + i] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  std::int64_t delta = static_cast<std::int64_t>(replaced.size()) -
                       static_cast<std::int64_t>(q.pck_chain_pem.size());
  put32(cert_off - 4, static_cast<std::uint32_t>(replaced.size()));
  std::size_t siglen_off = 48 + 384;
  std::uint32_t siglen = forged[siglen_off] | forged[siglen_off + 1] << 8 |
                         forged[siglen_off + 2] << 16 |
                         static_cast<std::uint32_t>(forged[siglen_off + 3]) << 24;
  put32(siglen_off, static_cast<std::uint32_t>(siglen + delta));
  EXPECT_NO_THROW(parse_dcap_quote(forged));
  expect_rejected([&] { verify_dcap_quote(forged, s.collateral, s.now); },
                  "PCK certificate chain does not end at the Intel SGX Root CA");
}

TEST(Dcap, MismatchedCollateralIsRejected) {
  Sample sgx = sgx_sample();
  Sample tdx = tdx_sample();
  // TDX collateral for the SGX quote (with the SGX PCK CRL, so that the
  // chains pass): its TCB Info is signed and valid, but for TDX.
  DcapCollateral for_sgx = tdx.collateral;
  for_sgx.pck_crl = sgx.collateral.pck_crl;
  for_sgx.pck_crl_issuer_chain = sgx.collateral.pck_crl_issuer_chain;
  expect_rejected([&] { verify_dcap_quote(sgx.quote, for_sgx, sgx.now); },
                  "TCB Info id is not \"SGX\"");
  DcapCollateral for_tdx = sgx.collateral;
  for_tdx.pck_crl = tdx.collateral.pck_crl;
  for_tdx.pck_crl_issuer_chain = tdx.collateral.pck_crl_issuer_chain;
  expect_rejected([&] { verify_dcap_quote(tdx.quote, for_tdx, tdx.now); },
                  "TCB Info id is not \"TDX\"");
  // A TDX TCB Info of another platform (FMSPC 90C06F000000, not B0C06F000000).
  Sample other = tdx_outdated_sample();
  expect_rejected([&] { verify_dcap_quote(tdx.quote, other.collateral, other.now); },
                  "FMSPC of the PCK certificate does not match the TCB Info");
  // A QE Identity of the wrong kind (SGX QE for a TD quote).
  DcapCollateral wrong_qe = tdx.collateral;
  wrong_qe.qe_identity = sgx.collateral.qe_identity;
  wrong_qe.qe_identity_signature = sgx.collateral.qe_identity_signature;
  wrong_qe.qe_identity_issuer_chain = sgx.collateral.qe_identity_issuer_chain;
  expect_rejected([&] { verify_dcap_quote(tdx.quote, wrong_qe, tdx.now); },
                  "QE Identity id is not \"TD_QE\"");
  // Swapped signatures.
  DcapCollateral swapped = sgx.collateral;
  std::swap(swapped.tcb_info_signature, swapped.qe_identity_signature);
  expect_rejected([&] { verify_dcap_quote(sgx.quote, swapped, sgx.now); },
                  "TCB Info signature does not verify");
}

/// Flips bit 0 of every byte of `bytes` in turn; verify() must throw each time.
std::size_t flip_every_byte(Bytes& bytes, const std::function<void()>& verify,
                            const std::string& what) {
  std::size_t checked = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] ^= 0x01;
    try {
      verify();
      ADD_FAILURE() << what << ": flip of byte " << i << " accepted";
    } catch (const Error&) {
    }
    bytes[i] ^= 0x01;
    ++checked;
  }
  verify();  // restored: accepted again
  return checked;
}
std::size_t flip_every_char(std::string& text, const std::function<void()>& verify,
                            const std::string& what) {
  Bytes b(text.begin(), text.end());
  std::size_t n = flip_every_byte(
      b,
      [&] {
        text.assign(b.begin(), b.end());
        verify();
      },
      what);
  text.assign(b.begin(), b.end());
  return n;
}

// The whole quote is signed or length-checked: header, body, signature data
// length, signature, attestation key, certification data headers, QE report
// and its signature, QE auth data, PCK chain PEM (and the zero padding).
void flip_quote(Sample s, const std::string& name) {
  std::size_t n = flip_every_byte(
      s.quote, [&] { verify_dcap_quote(s.quote, s.collateral, s.now); }, name + " quote");
  EXPECT_EQ(n, s.quote.size());
  std::cout << "  " << name << " quote: " << n << " single-byte flips checked, all rejected\n";
}

void flip_collateral(Sample s, const std::string& name) {
  DcapCollateral& c = s.collateral;
  auto run = [&] { verify_dcap_quote(s.quote, c, s.now); };
  std::size_t n = flip_every_char(c.tcb_info, run, name + " TCB Info");
  n += flip_every_byte(c.tcb_info_signature, run, name + " TCB Info signature");
  n += flip_every_char(c.qe_identity, run, name + " QE Identity");
  n += flip_every_byte(c.qe_identity_signature, run, name + " QE Identity signature");
  EXPECT_EQ(n, c.tcb_info.size() + c.qe_identity.size() + 128);
  std::cout << "  " << name << " TCB Info + QE Identity and signatures: " << n
            << " single-byte flips checked, all rejected\n";
}

TEST(Dcap, EverySingleByteFlipOfTheSgxQuoteIsRejected) {
  flip_quote(sgx_sample(), "SGX v3");
}
TEST(Dcap, EverySingleByteFlipOfTheTdxQuoteIsRejected) {
  flip_quote(tdx_sample(), "TDX v4");
}
TEST(Dcap, EverySingleByteFlipOfTheSgxCollateralIsRejected) {
  flip_collateral(sgx_sample(), "SGX v3");
}
TEST(Dcap, EverySingleByteFlipOfTheTdxCollateralIsRejected) {
  flip_collateral(tdx_sample(), "TDX v4");
}

TEST(Dcap, TruncationAtEveryLengthIsRejected) {
  for (Sample s : {sgx_sample(), tdx_sample(), tdx_outdated_sample()}) {
    DcapQuote q = parse_dcap_quote(s.quote);
    std::size_t rejected = 0;
    for (std::size_t n = 0; n < q.length; ++n) {
      try {
        parse_dcap_quote(std::span(s.quote).first(n));
        ADD_FAILURE() << "truncated quote of " << n << " bytes parsed";
      } catch (const Error& e) {
        EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
        ++rejected;
      }
    }
    // A few through the whole verifier too.
    for (std::size_t n :
         {std::size_t{0}, std::size_t{47}, std::size_t{48}, q.length / 2, q.length - 1})
      expect_rejected([&] { verify_dcap_quote(std::span(s.quote).first(n), s.collateral, s.now); },
                      "");
    EXPECT_EQ(rejected, q.length);
  }
}

TEST(Dcap, OversizedAndWrongLengthFieldsAreRejected) {
  Sample sgx = sgx_sample();
  Sample tdx = tdx_sample();
  Sample v5 = tdx_outdated_sample();
  auto with32 = [](Bytes b, std::size_t off, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b[off + i] = static_cast<std::uint8_t>(v >> (8 * i));
    return b;
  };
  auto with16 = [](Bytes b, std::size_t off, std::uint16_t v) {
    b[off] = static_cast<std::uint8_t>(v);
    b[off + 1] = static_cast<std::uint8_t>(v >> 8);
    return b;
  };
  for (std::uint32_t v : {0xffffffffu, 0x80000000u, 0u, 4163u, 4165u}) {
    expect_rejected([&] { parse_dcap_quote(with32(sgx.quote, 432, v)); }, "signature data");
  }
  // SGX v3: QE auth data length at 48+384+4+128+384+64.
  std::size_t auth = 48 + 384 + 4 + 128 + 384 + 64;
  for (std::uint16_t v : {0xffff, 0x21, 0x1f, 0})
    expect_rejected([&] { parse_dcap_quote(with16(sgx.quote, auth, v)); }, "");
  std::size_t cert_size = auth + 2 + 32 + 2;
  for (std::uint32_t v : {0xffffffffu, 0xfffffffau, 0u})
    expect_rejected([&] { parse_dcap_quote(with32(sgx.quote, cert_size, v)); }, "");
  expect_rejected([&] { parse_dcap_quote(with16(sgx.quote, cert_size - 2, 6)); }, "is not 5");
  // TDX v4: the outer certification data (type 6) size.
  std::size_t outer = 48 + 584 + 4 + 128 + 2;
  for (std::uint32_t v : {0xffffffffu, 0u, 4165u, 4167u})
    expect_rejected([&] { parse_dcap_quote(with32(tdx.quote, outer, v)); }, "");
  expect_rejected([&] { parse_dcap_quote(with16(tdx.quote, outer - 2, 5)); }, "is not 6");
  // v5: body size and type.
  for (std::uint32_t v : {0xffffffffu, 584u, 0u})
    expect_rejected([&] { parse_dcap_quote(with32(v5.quote, 50, v)); }, "body size");
  expect_rejected([&] { parse_dcap_quote(with16(v5.quote, 48, 4)); }, "body type");
  expect_rejected([&] { parse_dcap_quote(with16(v5.quote, 48, 1)); }, "");
  // Header fields.
  expect_rejected([&] { parse_dcap_quote(with16(sgx.quote, 0, 6)); }, "unsupported quote version");
  expect_rejected([&] { parse_dcap_quote(with16(sgx.quote, 2, 3)); }, "attestation key type");
  expect_rejected([&] { parse_dcap_quote(with32(sgx.quote, 4, 0x81)); }, "non-SGX");
  expect_rejected([&] { parse_dcap_quote(with32(tdx.quote, 4, 7)); }, "unknown TEE type");
  // Trailing bytes: zero padding is accepted (the dcap-qvl TDX quote has 70
  // bytes of it), anything else refused.
  Bytes padded = sgx.quote;
  padded.resize(padded.size() + 16, 0);
  EXPECT_NO_THROW(verify_dcap_quote(padded, sgx.collateral, sgx.now));
  padded.back() = 1;
  expect_rejected([&] { parse_dcap_quote(padded); }, "trailing bytes");
}

// ---- a stand-in Intel PKI -----------------------------------------------------
// Revocation, and TCB Info / QE Identity contents Intel did not sign, need
// keys we hold. The stand-in root, PCK CA and TCB signing key are made here;
// the PCK certificate is re-issued by the stand-in PCK CA with the real PCK
// public key and the real SGX extension, so the quote's own signatures (QE
// report by the PCK key, quote by the attestation key) stay the real ones.
// verify_dcap_quote_with_root pins the stand-in root.

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;

PkeyPtr new_key() {
  return PkeyPtr(EVP_EC_gen("P-256"), EVP_PKEY_free);
}

void add_ext(X509* x, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(e, nullptr);
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

X509Ptr make_cert(EVP_PKEY* subject_key, const char* cn, X509* issuer, EVP_PKEY* issuer_key,
                  long serial, bool ca, const X509* copy_sgx_ext_from = nullptr) {
  X509Ptr x(X509_new(), X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial);
  ASN1_TIME_set(X509_getm_notBefore(x.get()), 1577836800);  // 2020-01-01
  ASN1_TIME_set(X509_getm_notAfter(x.get()), 1893456000);   // 2030-01-01
  X509_set_pubkey(x.get(), subject_key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509* iss = issuer != nullptr ? issuer : x.get();
  X509_set_issuer_name(x.get(), X509_get_subject_name(iss));
  add_ext(x.get(), iss, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x.get(), iss, NID_key_usage,
          ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,nonRepudiation");
  add_ext(x.get(), iss, NID_subject_key_identifier, "hash");
  add_ext(x.get(), iss, NID_authority_key_identifier, "keyid:always");
  if (copy_sgx_ext_from != nullptr) {
    ASN1_OBJECT* oid = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
    int idx = X509_get_ext_by_OBJ(copy_sgx_ext_from, oid, -1);
    ASN1_OBJECT_free(oid);
    EXPECT_GE(idx, 0);
    X509_add_ext(x.get(), X509_get_ext(copy_sgx_ext_from, idx), -1);
  }
  EXPECT_GT(X509_sign(x.get(), issuer_key, EVP_sha256()), 0);
  return x;
}

std::string pem_of(X509* x) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(bio.get(), x);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

Bytes make_crl(X509* issuer, EVP_PKEY* key, const std::vector<long>& revoked, time_t last,
               time_t next) {
  std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(X509_CRL_new(), X509_CRL_free);
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer));
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> t(ASN1_TIME_new(), ASN1_TIME_free);
  ASN1_TIME_set(t.get(), last);
  X509_CRL_set1_lastUpdate(crl.get(), t.get());
  ASN1_TIME_set(t.get(), next);
  X509_CRL_set1_nextUpdate(crl.get(), t.get());
  for (long serial : revoked) {
    X509_REVOKED* r = X509_REVOKED_new();
    ASN1_INTEGER* sn = ASN1_INTEGER_new();
    ASN1_INTEGER_set(sn, serial);
    X509_REVOKED_set_serialNumber(r, sn);
    ASN1_INTEGER_free(sn);
    ASN1_TIME_set(t.get(), last);
    X509_REVOKED_set_revocationDate(r, t.get());
    X509_CRL_add0_revoked(crl.get(), r);
  }
  X509_CRL_sort(crl.get());
  EXPECT_GT(X509_CRL_sign(crl.get(), key, EVP_sha256()), 0);
  unsigned char* der = nullptr;
  int n = i2d_X509_CRL(crl.get(), &der);
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

/// Raw r||s (32 + 32) ECDSA-SHA256 signature of `text` by `key`.
Bytes sign_raw(EVP_PKEY* key, const std::string& text) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key);
  std::size_t len = 0;
  EVP_DigestSign(md.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(text.data()),
                 text.size());
  Bytes der(len);
  EVP_DigestSign(md.get(), der.data(), &len, reinterpret_cast<const unsigned char*>(text.data()),
                 text.size());
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len));
  Bytes raw(64);
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw.data(), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw.data() + 32, 32);
  ECDSA_SIG_free(sig);
  return raw;
}

/// `quote` with its PCK chain PEM replaced and every length around it fixed.
Bytes with_pck_chain(const Bytes& quote, const std::string& pem) {
  DcapQuote q = parse_dcap_quote(quote);
  std::size_t cert_off = static_cast<std::size_t>(q.pck_chain_pem.data() - quote.data());
  Bytes out(quote.begin(), quote.begin() + static_cast<std::ptrdiff_t>(cert_off));
  out.insert(out.end(), pem.begin(), pem.end());
  auto add32 = [&](std::size_t off, std::int64_t delta) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(out[off + i]) << (8 * i);
    v = static_cast<std::uint32_t>(v + delta);
    for (int i = 0; i < 4; ++i) out[off + i] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  std::int64_t delta =
      static_cast<std::int64_t>(pem.size()) - static_cast<std::int64_t>(q.pck_chain_pem.size());
  add32(cert_off - 4, delta);          // PCK certification data size
  add32(q.signed_part.size(), delta);  // signature data length
  if (q.version >= 4) add32(q.signed_part.size() + 4 + 128 + 2, delta);  // type 6 data size
  return out;
}

struct StandIn {
  PkeyPtr root_key = new_key(), ca_key = new_key(), tcb_key = new_key();
  X509Ptr root{nullptr, X509_free}, ca{nullptr, X509_free}, pck{nullptr, X509_free},
      tcb{nullptr, X509_free};
  std::array<std::uint8_t, 32> pin{};
  Sample s;
  std::vector<long> revoked_by_root, revoked_by_ca;
  time_t crl_last = 1748736000;  // 2025-06-01
  time_t crl_next = 1754006400;  // 2025-08-01
  std::string tcb_info, qe_identity;

  explicit StandIn(Sample sample) : s(std::move(sample)) {
    root = make_cert(root_key.get(), "Stand-in SGX Root CA", nullptr, root_key.get(), 1, true);
    ca = make_cert(ca_key.get(), "Intel SGX PCK Platform CA", root.get(), root_key.get(), 2, true);
    tcb = make_cert(tcb_key.get(), "Intel SGX TCB Signing", root.get(), root_key.get(), 3, false);
    DcapQuote q = parse_dcap_quote(s.quote);
    std::vector<Certificate> real = Certificate::chain_from_pem(
        std::string(q.pck_chain_pem.begin(), q.pck_chain_pem.end()), "real PCK chain");
    pck = make_cert(X509_get0_pubkey(real[0].native()), "Intel SGX PCK Certificate", ca.get(),
                    ca_key.get(), 4, false, real[0].native());
    unsigned char* der = nullptr;
    int n = i2d_X509(root.get(), &der);
    Bytes root_fp = sha256(std::span(der, static_cast<std::size_t>(n)));
    OPENSSL_free(der);
    std::copy(root_fp.begin(), root_fp.end(), pin.begin());
    s.quote = with_pck_chain(s.quote, pem_of(pck.get()) + pem_of(ca.get()) + pem_of(root.get()));
    tcb_info = s.collateral.tcb_info;
    qe_identity = s.collateral.qe_identity;
  }

  DcapCollateral collateral() const {
    DcapCollateral c;
    c.root_ca_crl = make_crl(root.get(), root_key.get(), revoked_by_root, crl_last, crl_next);
    c.pck_crl = make_crl(ca.get(), ca_key.get(), revoked_by_ca, crl_last, crl_next);
    c.pck_crl_issuer_chain = pem_of(ca.get()) + pem_of(root.get());
    c.tcb_info_issuer_chain = pem_of(tcb.get()) + pem_of(root.get());
    c.qe_identity_issuer_chain = c.tcb_info_issuer_chain;
    c.tcb_info = tcb_info;
    c.tcb_info_signature = sign_raw(tcb_key.get(), tcb_info);
    c.qe_identity = qe_identity;
    c.qe_identity_signature = sign_raw(tcb_key.get(), qe_identity);
    return c;
  }
  Claims verify() const { return verify_dcap_quote_with_root(s.quote, collateral(), s.now, pin); }
};

void replace_once(std::string& text, const std::string& from, const std::string& to) {
  std::size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
}

TEST(DcapStandIn, SameVerdictUnderTheStandInRootAndOnlyThere) {
  StandIn p(sgx_sample());
  Claims c = p.verify();
  EXPECT_EQ(c.tcb_status, TcbStatus::kConfigurationAndSWHardeningNeeded);
  EXPECT_EQ(c.advisory_ids, (std::vector<std::string>{"INTEL-SA-00289", "INTEL-SA-00615"}));
  // The Intel pin refuses the stand-in chains.
  expect_rejected([&] { verify_dcap_quote(p.s.quote, p.collateral(), p.s.now); },
                  "does not end at the Intel SGX Root CA");
  // A TCB Info signed by the stand-in key is refused with the real chain.
  DcapCollateral mixed = p.s.collateral;
  DcapCollateral fake = p.collateral();
  mixed.tcb_info_signature = fake.tcb_info_signature;
  expect_rejected([&] { verify_dcap_quote(sgx_sample().quote, mixed, p.s.now); },
                  "TCB Info signature does not verify");
}

TEST(DcapStandIn, OnlyTheTcbSigningCertificateSignsCollateral) {
  // A TCB Info signed by another key under the root (here the PCK CA's; a
  // platform's PCK key would be the attack) with a valid chain: refused.
  StandIn p(sgx_sample());
  DcapCollateral c = p.collateral();
  c.tcb_info_signature = sign_raw(p.ca_key.get(), c.tcb_info);
  c.tcb_info_issuer_chain = pem_of(p.ca.get()) + pem_of(p.root.get());
  expect_rejected([&] { verify_dcap_quote_with_root(p.s.quote, c, p.s.now, p.pin); },
                  "TCB Info issuer chain: certificate 0 is not the Intel SGX TCB Signing");
  // A chain with an extra certificate in the middle.
  DcapCollateral longer = p.collateral();
  longer.qe_identity_issuer_chain = pem_of(p.tcb.get()) + pem_of(p.ca.get()) + pem_of(p.root.get());
  expect_rejected([&] { verify_dcap_quote_with_root(p.s.quote, longer, p.s.now, p.pin); },
                  "QE Identity issuer chain has 3 certificates, not 2");
  // The PCK chain of the quote needs its PCK CA in the middle.
  Bytes two = with_pck_chain(p.s.quote, pem_of(p.pck.get()) + pem_of(p.root.get()));
  expect_rejected([&] { verify_dcap_quote_with_root(two, p.collateral(), p.s.now, p.pin); },
                  "PCK certificate chain has 2 certificates, not 3");
}

TEST(DcapStandIn, RevokedCertificatesAreRejected) {
  {
    StandIn p(sgx_sample());
    p.revoked_by_ca = {4};  // the PCK certificate
    expect_rejected([&] { p.verify(); }, "PCK certificate chain: certificate revoked");
  }
  {
    StandIn p(sgx_sample());
    p.revoked_by_root = {2};  // the PCK CA
    expect_rejected([&] { p.verify(); }, "certificate revoked");
  }
  {
    StandIn p(sgx_sample());
    p.revoked_by_root = {3};  // the TCB signing certificate
    expect_rejected([&] { p.verify(); }, "TCB Info signing certificate chain: certificate revoked");
  }
  {
    StandIn p(sgx_sample());
    p.revoked_by_ca = {5, 6, 7};  // others: accepted
    EXPECT_NO_THROW(p.verify());
  }
  {  // A PCK CRL in the PCK CA's name signed by another key.
    StandIn p(sgx_sample());
    DcapCollateral c = p.collateral();
    c.pck_crl = make_crl(p.ca.get(), p.root_key.get(), {}, p.crl_last, p.crl_next);
    expect_rejected([&] { verify_dcap_quote_with_root(p.s.quote, c, p.s.now, p.pin); },
                    "CRL signature failure");
    // Without the optional PCK CRL issuer chain, the same verdicts.
    DcapCollateral no_chain = p.collateral();
    no_chain.pck_crl_issuer_chain.clear();
    EXPECT_EQ(verify_dcap_quote_with_root(p.s.quote, no_chain, p.s.now, p.pin).tcb_status,
              TcbStatus::kConfigurationAndSWHardeningNeeded);
    c.pck_crl_issuer_chain.clear();
    expect_rejected([&] { verify_dcap_quote_with_root(p.s.quote, c, p.s.now, p.pin); },
                    "CRL signature failure");
  }
  {
    StandIn p(sgx_sample());
    p.crl_next = p.crl_last + 3600;  // stale CRLs
    expect_rejected([&] { p.verify(); }, "CRL has expired");
  }
}

TEST(DcapStandIn, TcbAndQeIdentityRules) {
  {  // The matched level says Revoked.
    StandIn p(sgx_sample());
    replace_once(p.tcb_info, "\"tcbStatus\":\"ConfigurationAndSWHardeningNeeded\"",
                 "\"tcbStatus\":\"Revoked\"");
    EXPECT_EQ(p.verify().tcb_status, TcbStatus::kRevoked);
  }
  {  // The QE's ISVSVN (8) is below the UpToDate level: OutOfDate QE converges.
    StandIn p(sgx_sample());
    replace_once(p.qe_identity, "{\"isvsvn\":8}", "{\"isvsvn\":11}");
    Claims c = p.verify();
    EXPECT_EQ(c.tcb_status, TcbStatus::kOutOfDateConfigurationNeeded);
    EXPECT_EQ(detail(c, "qe_tcb_status"), "OutOfDate");
    EXPECT_EQ(c.advisory_ids, (std::vector<std::string>{"INTEL-SA-00289", "INTEL-SA-00615"}));
  }
  {  // No QE level at or below the QE's ISVSVN.
    StandIn p(sgx_sample());
    std::string& qe = p.qe_identity;
    for (const char* svn : {"8", "6", "5", "4", "2", "1"})
      replace_once(qe, std::string("{\"isvsvn\":") + svn + "}", "{\"isvsvn\":99}");
    expect_rejected([&] { p.verify(); }, "matches no QE Identity TCB level");
  }
  {  // A PCESVN above the platform's everywhere: TCB unrecognized.
    StandIn p(sgx_sample());
    std::size_t at = 0;
    while ((at = p.tcb_info.find("\"pcesvn\":", at)) != std::string::npos) {
      at += 9;
      std::size_t end = p.tcb_info.find_first_not_of("0123456789", at);
      p.tcb_info.replace(at, end - at, "99");
    }
    expect_rejected([&] { p.verify(); }, "TCB unrecognized");
  }
  {
    StandIn p(sgx_sample());
    replace_once(p.qe_identity, "\"isvprodid\":1", "\"isvprodid\":2");
    expect_rejected([&] { p.verify(); }, "QE report ISVPRODID");
  }
  {
    StandIn p(sgx_sample());
    replace_once(p.qe_identity, "\"mrsigner\":\"8C", "\"mrsigner\":\"9C");
    expect_rejected([&] { p.verify(); }, "QE report MRSIGNER");
  }
  {
    StandIn p(sgx_sample());
    replace_once(p.qe_identity, "\"miscselect\":\"00000000\"", "\"miscselect\":\"00000001\"");
    expect_rejected([&] { p.verify(); }, "QE report MISCSELECT");
  }
  {
    StandIn p(sgx_sample());
    replace_once(p.qe_identity, "\"attributes\":\"11", "\"attributes\":\"13");
    expect_rejected([&] { p.verify(); }, "QE report ATTRIBUTES");
  }
  {
    StandIn p(sgx_sample());
    replace_once(p.tcb_info, "\"fmspc\":\"00A067110000\"", "\"fmspc\":\"00A067110001\"");
    expect_rejected([&] { p.verify(); }, "FMSPC");
  }
  {
    StandIn p(sgx_sample());
    replace_once(p.tcb_info, "\"pceId\":\"0000\"", "\"pceId\":\"0001\"");
    expect_rejected([&] { p.verify(); }, "PCE ID");
  }
  {
    StandIn p(sgx_sample());
    replace_once(p.tcb_info, "\"version\":3", "\"version\":2");
    expect_rejected([&] { p.verify(); }, "unsupported TCB Info version");
  }
  {
    StandIn p(sgx_sample());
    replace_once(p.tcb_info, "\"tcbStatus\":\"SWHardeningNeeded\"", "\"tcbStatus\":\"Fine\"");
    expect_rejected([&] { p.verify(); }, "unknown tcbStatus");
  }
}

// The SPR quote's own TCB under go-tdx-guest's TCB Info, re-signed by the
// stand-in (the real signing certificate of its time is not in testdata):
// every check passes up to the TCB-level match, which finds no level (the PCK
// certificate's SVNs 3,3,2,2,2,... are below 5,5,2,2,3,... of both levels).
TEST(DcapStandIn, SprQuoteTcbIsUnrecognized) {
  Bytes file = read_testdata("go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
  Bytes none;
  Sample spr{Bytes(file.begin(), file.begin() + 4935),
             DcapCollateral::from_pcs_responses(
                 read_text("go-tdx-guest/sample_tcbInfo_response"),
                 read_text("go-tdx-guest/sample_qeIdentity_response"), none, none, ""),
             at("2023-06-20T00:00:00Z")};
  StandIn p(std::move(spr));
  p.crl_last = 1685577600;  // 2023-06-01
  p.crl_next = 1690848000;  // 2023-08-01
  expect_rejected([&] { p.verify(); }, "TCB unrecognized");
  // With a level the platform meets added in front, the rest of the rules run.
  replace_once(
      p.tcb_info, "\"tcbLevels\":[", "\"tcbLevels\":[{\"tcb\":{\"sgxtcbcomponents\":[" + [] {
        std::string c;
        for (int i = 0; i < 16; ++i) c += std::string(i ? "," : "") + "{\"svn\":0}";
        return c + "],\"pcesvn\":0,\"tdxtcbcomponents\":[" + c;
      }() + "]},\"tcbDate\":\"2018-01-01T00:00:00Z\",\"tcbStatus\":\"OutOfDate\"},");
  Claims c = p.verify();
  EXPECT_EQ(c.tcb_status, TcbStatus::kOutOfDate);
  EXPECT_EQ(detail(c, "fmspc"), "50806F000000");
  EXPECT_EQ(detail(c, "qe_tcb_status"), "UpToDate");
}

TEST(DcapStandIn, TdxModuleRules) {
  {  // Baseline: the real verdict.
    StandIn p(tdx_sample());
    EXPECT_EQ(p.verify().tcb_status, TcbStatus::kUpToDate);
  }
  {  // TEE_TCB_SVN[0] = 6 below the module's UpToDate level: OutOfDate module converges.
    StandIn p(tdx_sample());
    replace_once(p.tcb_info, "\"tcbLevels\":[{\"tcb\":{\"isvsvn\":4}",
                 "\"tcbLevels\":[{\"tcb\":{\"isvsvn\":7}");
    Claims c = p.verify();
    EXPECT_EQ(detail(c, "tdx_module_tcb_status"), "OutOfDate");
    EXPECT_EQ(c.tcb_status, TcbStatus::kOutOfDate);
  }
  {  // No identity for module major version 1.
    StandIn p(tdx_sample());
    replace_once(p.tcb_info, "\"id\":\"TDX_01\"", "\"id\":\"TDX_02\"");
    expect_rejected([&] { p.verify(); }, "no TDX module identity TDX_01");
  }
  {
    StandIn p(tdx_sample());
    std::string zeros(96, '0');
    replace_once(p.tcb_info, "\"id\":\"TDX_01\",\"mrsigner\":\"" + zeros,
                 "\"id\":\"TDX_01\",\"mrsigner\":\"1" + zeros.substr(1));
    expect_rejected([&] { p.verify(); }, "MRSIGNERSEAM");
  }
  {  // tdxtcbcomponents[2] above TEE_TCB_SVN[2] = 3 in every level.
    StandIn p(tdx_sample());
    std::size_t at = 0;
    while ((at = p.tcb_info.find("\"tdxtcbcomponents\":[", at)) != std::string::npos) {
      at = p.tcb_info.find("{\"svn\":", at);
      at = p.tcb_info.find("{\"svn\":", at + 1);
      at = p.tcb_info.find("{\"svn\":", at + 1) + 7;
      std::size_t end = p.tcb_info.find_first_not_of("0123456789", at);
      p.tcb_info.replace(at, end - at, "9");
    }
    expect_rejected([&] { p.verify(); }, "TCB unrecognized");
  }
}

}  // namespace
}  // namespace blindfold::tee
