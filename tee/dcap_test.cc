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

void flip_everything(Sample s, const std::string& name) {
  std::size_t total = 0;
  // The whole quote is signed or length-checked: header, body, signature
  // data length, signature, attestation key, certification data headers,
  // QE report and its signature, QE auth data, PCK chain PEM (and padding).
  total += flip_every_byte(
      s.quote, [&] { verify_dcap_quote(s.quote, s.collateral, s.now); }, name + " quote");
  DcapCollateral& c = s.collateral;
  auto run = [&] { verify_dcap_quote(s.quote, c, s.now); };
  total += flip_every_char(c.tcb_info, run, name + " TCB Info");
  total += flip_every_byte(c.tcb_info_signature, run, name + " TCB Info signature");
  total += flip_every_char(c.qe_identity, run, name + " QE Identity");
  total += flip_every_byte(c.qe_identity_signature, run, name + " QE Identity signature");
  std::cout << "  " << name << ": " << total << " single-byte flips checked (quote "
            << s.quote.size() << " bytes), all rejected\n";
}

TEST(Dcap, EverySingleByteFlipOfTheSgxSampleIsRejected) {
  flip_everything(sgx_sample(), "SGX v3");
}
TEST(Dcap, EverySingleByteFlipOfTheTdxSampleIsRejected) {
  flip_everything(tdx_sample(), "TDX v4");
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

}  // namespace
}  // namespace blindfold::tee
