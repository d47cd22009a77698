#include "tee/simulated.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "core/error.h"
#include "net/test_util.h"
#include "tee/policy.h"

namespace blindfold::tee {
namespace {

using namespace std::chrono_literals;

using net::testing_util::contains;
using net::testing_util::error_of;

Bytes read_testdata(const std::string& rel) {
  std::string path = "../shared/testdata/attestation/" + rel;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    ADD_FAILURE() << "missing test vector " << path
                  << " (tests read ../shared/testdata from the project root)";
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

Time at(const char* s) {
  return *parse_time(s);
}

Bytes measure(std::string_view s) {
  return sha384({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
}

std::array<std::uint8_t, 64> some_report_data() {
  std::array<std::uint8_t, 64> rd{};
  for (std::size_t i = 0; i < rd.size(); ++i) rd[i] = static_cast<std::uint8_t>(i * 7 + 1);
  return rd;
}

const Time kNow = at("2026-06-01T00:00:00Z");

SimulatedPlatform test_platform() {
  return SimulatedPlatform::generate(at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z"));
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bf-sim-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

TEST(TeeSimulated, EvidenceRoundTripsWithItsClaims) {
  SimulatedPlatform p = test_platform();
  const Bytes code = measure("enclave binary"), model = measure("model file");
  const auto rd = some_report_data();
  const Bytes ev = p.make_evidence(code, model, rd, false);
  EXPECT_EQ(ev.size(), 288 + p.certificate().der().size());
  EXPECT_TRUE(looks_like_simulated_evidence(ev));
  const Claims c = verify_simulated_evidence(ev, p.certificate(), kNow);
  EXPECT_EQ(c.platform, Platform::kSimulated);
  EXPECT_EQ(c.version, 4u);
  EXPECT_EQ(c.tcb_status, TcbStatus::kUpToDate);
  ASSERT_NE(c.measurement("CODE"), nullptr);
  ASSERT_NE(c.measurement("MODEL"), nullptr);
  EXPECT_EQ(*c.measurement("CODE"), code);
  EXPECT_EQ(*c.measurement("MODEL"), model);
  EXPECT_EQ(c.report_data, rd);
  EXPECT_FALSE(c.debug);
  EXPECT_TRUE(
      contains(p.certificate().subject(), "Blindfold SIMULATED TEE platform (no hardware)"));

  const Claims d =
      verify_simulated_evidence(p.make_evidence(code, model, rd, true), p.certificate(), kNow);
  EXPECT_TRUE(d.debug);

  EXPECT_EQ(error_of([&] { p.make_evidence(Bytes(32), model, rd, false); }).category(),
            ErrorCategory::kBadInput);
}

TEST(TeeSimulated, HeaderIsTheDocumentedDcapV4Shape) {
  SimulatedPlatform p = test_platform();
  const Bytes ev = p.make_evidence(measure("a"), measure("b"), some_report_data(), true);
  EXPECT_EQ(ev[0], 4);  // version 4
  EXPECT_EQ(ev[1], 0);
  EXPECT_EQ(ev[2], 2);     // ECDSA-256-with-P-256
  EXPECT_EQ(ev[4], 0x00);  // TEE type 0x53494D00, little-endian
  EXPECT_EQ(ev[5], 0x4D);
  EXPECT_EQ(ev[6], 0x49);
  EXPECT_EQ(ev[7], 0x53);
  EXPECT_EQ(std::string(ev.begin() + 12, ev.begin() + 25), "BLINDFOLD-SIM");
  EXPECT_EQ(Bytes(ev.begin() + 48, ev.begin() + 96), measure("a"));
  EXPECT_EQ(ev[144], 1);  // DEBUG attribute
  EXPECT_EQ(ev[152], some_report_data()[0]);
}

TEST(TeeSimulated, LoadOrCreateWritesAPrivateKeyFileAndReloadsIt) {
  TempDir dir;
  const auto sub = dir.path / "platform";
  SimulatedPlatform a = SimulatedPlatform::load_or_create(sub);
  struct stat st {};
  ASSERT_EQ(::stat((sub / "simulated-platform.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(std::filesystem::exists(sub / "simulated-platform.pem"));

  SimulatedPlatform b = SimulatedPlatform::load_or_create(sub);
  EXPECT_EQ(a.certificate().der(), b.certificate().der());
  const Certificate given = SimulatedPlatform::load_certificate(sub);
  EXPECT_EQ(given.der(), a.certificate().der());
  // Evidence from the reloaded key verifies against the first certificate
  // (valid from a day before creation for ten years: "now" = its notBefore + 2
  // days).
  const auto now =
      std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  const Bytes ev = b.make_evidence(measure("c"), measure("m"), some_report_data(), false);
  EXPECT_NO_THROW(verify_simulated_evidence(ev, given, now));

  // A key that does not match the certificate is refused.
  TempDir other;
  SimulatedPlatform c = SimulatedPlatform::load_or_create(other.path);
  std::filesystem::copy_file(other.path / "simulated-platform.key", sub / "simulated-platform.key",
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_EQ(error_of([&] { SimulatedPlatform::load_or_create(sub); }).category(),
            ErrorCategory::kBadInput);
  // Only one of the two files: refused, not silently regenerated.
  std::filesystem::remove(sub / "simulated-platform.key");
  EXPECT_EQ(error_of([&] { SimulatedPlatform::load_or_create(sub); }).category(),
            ErrorCategory::kBadInput);
  EXPECT_EQ(error_of([&] { SimulatedPlatform::load_certificate(dir.path / "none"); }).category(),
            ErrorCategory::kIo);
}

TEST(TeeSimulated, EvidenceFromAnotherPlatformKeyIsRejected) {
  SimulatedPlatform trusted = test_platform();
  SimulatedPlatform other = test_platform();
  const Bytes ev = other.make_evidence(measure("c"), measure("m"), some_report_data(), false);
  Error e = error_of([&] { verify_simulated_evidence(ev, trusted.certificate(), kNow); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
  EXPECT_TRUE(contains(e.what(), "attestation: ")) << e.what();
  EXPECT_TRUE(contains(e.what(), "another platform key")) << e.what();

  // The other key's signature with the trusted certificate spliced in: the
  // signature check fails.
  Bytes spliced(ev.begin(), ev.begin() + 284);
  const Bytes cert = trusted.certificate().der();
  const std::uint32_t len = static_cast<std::uint32_t>(cert.size());
  const std::uint32_t sig_len = 64 + 4 + len;
  for (int i = 0; i < 4; ++i) spliced[216 + i] = static_cast<std::uint8_t>(sig_len >> (8 * i));
  for (int i = 0; i < 4; ++i) spliced.push_back(static_cast<std::uint8_t>(len >> (8 * i)));
  spliced.insert(spliced.end(), cert.begin(), cert.end());
  e = error_of([&] { verify_simulated_evidence(spliced, trusted.certificate(), kNow); });
  EXPECT_TRUE(contains(e.what(), "signature does not verify")) << e.what();
}

TEST(TeeSimulated, EverySingleByteFlipTruncationAndTrailingByteIsRejected) {
  SimulatedPlatform p = test_platform();
  const Bytes ev = p.make_evidence(measure("c"), measure("m"), some_report_data(), false);
  ASSERT_NO_THROW(verify_simulated_evidence(ev, p.certificate(), kNow));
  std::size_t rejected = 0, tried = 0;
  for (std::size_t i = 0; i < ev.size(); ++i) {
    for (std::uint8_t mask : {std::uint8_t{0x01}, std::uint8_t{0x80}, std::uint8_t{0xFF}}) {
      Bytes bad = ev;
      bad[i] ^= mask;
      ++tried;
      try {
        verify_simulated_evidence(bad, p.certificate(), kNow);
        ADD_FAILURE() << "flip of byte " << i << " by " << int(mask) << " accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
        EXPECT_TRUE(contains(e.what(), "attestation: ")) << e.what();
        ++rejected;
      }
    }
  }
  std::cout << "[ info ] single-byte flips of " << ev.size()
            << "-byte simulated evidence: " << rejected << "/" << tried << " rejected\n";
  EXPECT_EQ(rejected, tried);
  for (std::size_t n = 0; n < ev.size(); ++n)
    EXPECT_THROW(verify_simulated_evidence(std::span(ev).first(n), p.certificate(), kNow), Error)
        << n;
  Bytes longer = ev;
  longer.push_back(0);
  EXPECT_THROW(verify_simulated_evidence(longer, p.certificate(), kNow), Error);
}

TEST(TeeSimulated, CertificateOutsideItsValidityIsRejected) {
  SimulatedPlatform p = test_platform();  // valid 2026-01-01 .. 2027-01-01
  const Bytes ev = p.make_evidence(measure("c"), measure("m"), some_report_data(), false);
  EXPECT_NO_THROW(verify_simulated_evidence(ev, p.certificate(), at("2026-12-31T23:00:00Z")));
  Error e =
      error_of([&] { verify_simulated_evidence(ev, p.certificate(), at("2027-01-02T00:00:00Z")); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
  EXPECT_TRUE(contains(e.what(), "expired")) << e.what();
  e = error_of([&] { verify_simulated_evidence(ev, p.certificate(), at("2025-12-31T00:00:00Z")); });
  EXPECT_TRUE(contains(e.what(), "not yet valid")) << e.what();
}

TEST(TeeSimulated, RealQuotesAndReportsAreNotSimulatedEvidence) {
  SimulatedPlatform p = test_platform();
  for (const char* f : {"dcap-qvl/tdx_quote", "dcap-qvl/sgx_quote",
                        "go-tdx-guest/tdx_prod_quote_SPR_E4.dat", "go-sev-guest/attestation.bin"}) {
    const Bytes q = read_testdata(f);
    ASSERT_GT(q.size(), 48u) << f;
    EXPECT_FALSE(looks_like_simulated_evidence(q)) << f;
    Error e = error_of([&] { verify_simulated_evidence(q, p.certificate(), kNow); });
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
  }
  EXPECT_FALSE(looks_like_simulated_evidence(Bytes(10)));
}

TEST(TeeSimulated, PolicyRefusesSimulatedClaimsUnlessTrustedAndChecksMeasurements) {
  SimulatedPlatform p = test_platform();
  const auto rd = some_report_data();
  const Claims c = verify_simulated_evidence(p.make_evidence(measure("c"), measure("m"), rd, false),
                                             p.certificate(), kNow);
  Policy strict;  // secure defaults: no simulated platform
  Appraisal a = appraise(strict, c, rd);
  EXPECT_FALSE(a.accepted());
  Policy trusting;
  trusting.trust_simulated_platform = true;
  trusting.measurements["CODE"] = {measure("c")};
  trusting.measurements["MODEL"] = {measure("m")};
  a = appraise(trusting, c, rd);
  EXPECT_TRUE(a.accepted()) << (a.failures.empty() ? "" : a.failures[0]);
  // A debug enclave is refused unless the policy allows debug.
  const Claims dbg = verify_simulated_evidence(
      p.make_evidence(measure("c"), measure("m"), rd, true), p.certificate(), kNow);
  a = appraise(trusting, dbg, rd);
  ASSERT_FALSE(a.accepted());
  EXPECT_TRUE(contains(a.failures[0], "debug")) << a.failures[0];
  // report_data other than the expected one is refused.
  auto other_rd = rd;
  other_rd[0] ^= 1;
  EXPECT_FALSE(appraise(trusting, c, other_rd).accepted());
  trusting.measurements["MODEL"] = {measure("another model")};
  a = appraise(trusting, c, rd);
  ASSERT_FALSE(a.accepted());
  EXPECT_TRUE(contains(a.failures[0], "MODEL")) << a.failures[0];
}

TEST(TeeSimulated, MeasureFileIsSha384OfTheBytes) {
  TempDir dir;
  const auto f = dir.path / "abc";
  std::ofstream(f, std::ios::binary) << "abc";
  EXPECT_EQ(to_hex(measure_file(f)),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed80"
            "86072ba1e7cc2358baeca134c825a7");
  EXPECT_EQ(error_of([&] { measure_file(dir.path / "missing"); }).category(), ErrorCategory::kIo);
  EXPECT_EQ(error_of([&] { measure_file(dir.path); }).category(),
            ErrorCategory::kIo);  // a directory
}

}  // namespace
}  // namespace blindfold::tee
