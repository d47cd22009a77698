#include "tee/snp.h"

#include <openssl/asn1.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <string>

#include "core/error.h"

namespace blindfold::tee {

namespace {

[[noreturn]] void reject(const std::string& why) {
  throw_error(ErrorCategory::kBadMessage, "attestation: SEV-SNP " + why);
}

// Offsets of the ATTESTATION_REPORT (AMD SEV-SNP ABI specification).
constexpr std::size_t kVersion = 0x000;
constexpr std::size_t kGuestSvn = 0x004;
constexpr std::size_t kPolicy = 0x008;
constexpr std::size_t kFamilyId = 0x010;
constexpr std::size_t kImageId = 0x020;
constexpr std::size_t kVmpl = 0x030;
constexpr std::size_t kSignatureAlgo = 0x034;
constexpr std::size_t kCurrentTcb = 0x038;
constexpr std::size_t kPlatformInfo = 0x040;
constexpr std::size_t kSignerInfo = 0x048;  // AUTHOR_KEY_EN bit 0, MASK_CHIP_KEY 1, SIGNING_KEY 4:2
constexpr std::size_t kReportData = 0x050;
constexpr std::size_t kMeasurement = 0x090;
constexpr std::size_t kHostData = 0x0C0;
constexpr std::size_t kIdKeyDigest = 0x0E0;
constexpr std::size_t kAuthorKeyDigest = 0x110;
constexpr std::size_t kReportId = 0x140;
constexpr std::size_t kReportIdMa = 0x160;
constexpr std::size_t kReportedTcb = 0x180;
constexpr std::size_t kChipId = 0x1A0;
constexpr std::size_t kCommittedTcb = 0x1E0;
constexpr std::size_t kCurrentVersion = 0x1E8;    // build, minor, major, reserved
constexpr std::size_t kCommittedVersion = 0x1EC;  // build, minor, major, reserved
constexpr std::size_t kLaunchTcb = 0x1F0;
constexpr std::size_t kSignatureR = 0x2A0;
constexpr std::size_t kSignatureS = 0x2E8;
constexpr std::size_t kSignatureEnd = 0x330;
constexpr std::size_t kSigComponentBytes = 72;  // little-endian, zero-padded
constexpr std::size_t kP384Bytes = 48;

constexpr std::uint64_t kPolicyMigrateMa = 1ull << 18;
constexpr std::uint64_t kPolicyDebug = 1ull << 19;
constexpr std::uint64_t kPolicyMustBeOne = 1ull << 17;
constexpr std::uint64_t kPolicyReservedMask = ~((1ull << 26) - 1);  // bits 63:26

std::uint32_t u32(std::span<const std::uint8_t> r, std::size_t off) {
  return static_cast<std::uint32_t>(r[off]) | static_cast<std::uint32_t>(r[off + 1]) << 8 |
         static_cast<std::uint32_t>(r[off + 2]) << 16 |
         static_cast<std::uint32_t>(r[off + 3]) << 24;
}
std::uint64_t u64(std::span<const std::uint8_t> r, std::size_t off) {
  return static_cast<std::uint64_t>(u32(r, off)) | static_cast<std::uint64_t>(u32(r, off + 4))
                                                       << 32;
}

bool all_zero(std::span<const std::uint8_t> r, std::size_t begin, std::size_t end) {
  return std::all_of(r.begin() + static_cast<std::ptrdiff_t>(begin),
                     r.begin() + static_cast<std::ptrdiff_t>(end),
                     [](std::uint8_t b) { return b == 0; });
}

void require_zero(std::span<const std::uint8_t> r, std::size_t begin, std::size_t end,
                  const char* what) {
  if (!all_zero(r, begin, end)) {
    char where[64];
    std::snprintf(where, sizeof where, " [0x%03zX, 0x%03zX)", begin, end);
    reject(std::string("report: reserved field ") + what + where + " is not zero");
  }
}

// TCB_VERSION (Milan/Genoa layout): byte 0 BOOT_LOADER, 1 TEE, 2..5
// reserved, 6 SNP, 7 MICROCODE.
struct Tcb {
  std::uint8_t bl = 0, tee = 0, snp = 0, ucode = 0;
  bool operator==(const Tcb&) const = default;
  bool any_below(const Tcb& o) const {
    return bl < o.bl || tee < o.tee || snp < o.snp || ucode < o.ucode;
  }
  std::string str() const {
    return "bl=" + std::to_string(bl) + " tee=" + std::to_string(tee) +
           " snp=" + std::to_string(snp) + " ucode=" + std::to_string(ucode);
  }
};

Tcb tcb_at(std::span<const std::uint8_t> r, std::size_t off) {
  return Tcb{r[off], r[off + 1], r[off + 6], r[off + 7]};
}

// A small non-negative DER INTEGER (02 len bytes), as the VCEK's SPL
// extensions carry them; -1 when the bytes are anything else or above 255.
int der_small_uint(const Bytes& der) {
  if (der.size() < 3 || der.size() > 4 || der[0] != 0x02 || der[1] != der.size() - 2) return -1;
  if (der.size() == 3) return der[2] < 0x80 ? der[2] : -1;
  // Two content bytes: only 00 80..00 FF is a minimal encoding of a byte value.
  if (der[2] != 0x00 || der[3] < 0x80) return -1;
  return der[3];
}

std::uint8_t vcek_spl(const Certificate& vcek, std::string_view oid, const char* name) {
  Bytes ext = vcek.extension(oid);
  if (ext.empty())
    reject(std::string("VCEK has no ") + name + " extension (" + std::string(oid) + ")");
  int v = der_small_uint(ext);
  if (v < 0) reject(std::string("VCEK ") + name + " extension is not a DER INTEGER in [0, 255]");
  return static_cast<std::uint8_t>(v);
}

std::string time_string(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The DER contents of an IA5String / UTF8String / PrintableString (the VCEK's
// productName), or empty when it is anything else.
std::string der_string(const Bytes& der) {
  if (der.size() < 2 || (der[0] != 0x16 && der[0] != 0x0C && der[0] != 0x13)) return {};
  if (der[1] >= 0x80 || der[1] != der.size() - 2) return {};
  return std::string(der.begin() + 2, der.end());
}

// The big-endian 48-byte half of a 72-byte little-endian signature component.
void component_to_be(std::span<const std::uint8_t> le, std::uint8_t* out, const char* name) {
  for (std::size_t i = kP384Bytes; i < kSigComponentBytes; ++i)
    if (le[i] != 0) reject(std::string("report: signature ") + name + " padding is not zero");
  for (std::size_t i = 0; i < kP384Bytes; ++i) out[i] = le[kP384Bytes - 1 - i];
}

struct KnownArk {
  std::string_view fingerprint_hex;
  std::string_view product;  // the VCEK productName prefix ("Milan-B0")
};
constexpr KnownArk kKnownArks[] = {{kAmdMilanArkSha256Hex, "Milan"}};

}  // namespace

TcbStatus snp_tcb_status(std::span<const std::uint8_t, 8> reported,
                         std::span<const std::uint8_t, 8> committed) noexcept {
  return tcb_at(reported, 0).any_below(tcb_at(committed, 0)) ? TcbStatus::kOutOfDate
                                                             : TcbStatus::kUpToDate;
}

bool looks_like_snp_report(std::span<const std::uint8_t> evidence) noexcept {
  if (evidence.size() != kSnpReportBytes) return false;
  std::uint32_t version = u32(evidence, kVersion);
  return (version == 2 || version == 3) && u32(evidence, kSignatureAlgo) == 1;
}

Claims verify_snp_report(std::span<const std::uint8_t> r, const Certificate& vcek,
                         std::span<const Certificate> ask_ark, Time now) {
  // 1. Structure.
  if (r.size() != kSnpReportBytes)
    reject("report: " + std::to_string(r.size()) + " bytes, expected " +
           std::to_string(kSnpReportBytes));
  const std::uint32_t version = u32(r, kVersion);
  if (version != 2 && version != 3)
    reject("report: unsupported VERSION " + std::to_string(version) + " (2 and 3 are)");
  if (u32(r, kSignatureAlgo) != 1)
    reject("report: SIGNATURE_ALGO " + std::to_string(u32(r, kSignatureAlgo)) +
           " is not 1 (ECDSA P-384 with SHA-384)");
  const std::uint32_t vmpl = u32(r, kVmpl);
  if (vmpl > 3) reject("report: VMPL " + std::to_string(vmpl) + " is above 3");
  const std::uint64_t policy = u64(r, kPolicy);
  if ((policy & kPolicyMustBeOne) == 0) reject("report: POLICY bit 17 (must be one) is zero");
  if ((policy & kPolicyReservedMask) != 0)
    reject("report: POLICY reserved bits 63:26 are not zero");
  const std::uint32_t signer_info = u32(r, kSignerInfo);
  if ((signer_info & ~0x1Fu) != 0) reject("report: reserved bits 31:5 at 0x048 are not zero");
  if (((signer_info >> 2) & 7u) != 0)
    reject("report: SIGNING_KEY is not the VCEK (only VCEK-signed reports are supported)");
  require_zero(r, 0x04C, 0x050, "after the signer info");
  require_zero(r, version >= 3 ? 0x18B : 0x188, 0x1A0, "after REPORTED_TCB");
  require_zero(r, kCurrentVersion + 3, kCurrentVersion + 4, "of CURRENT version");
  require_zero(r, kCommittedVersion + 3, kCommittedVersion + 4, "of COMMITTED version");
  require_zero(r, 0x1F8, kSnpSignedBytes, "before the signature");
  require_zero(r, kReportedTcb + 2, kReportedTcb + 6, "of REPORTED_TCB");
  require_zero(r, kSignatureEnd, kSnpReportBytes, "after the signature");
  std::array<std::uint8_t, 2 * kP384Bytes> signature{};
  component_to_be(r.subspan(kSignatureR, kSigComponentBytes), signature.data(), "R");
  component_to_be(r.subspan(kSignatureS, kSigComponentBytes), signature.data() + kP384Bytes, "S");

  // 2. Certificates: the pinned ARK, then VCEK <- ASK <- ARK at `now`.
  const KnownArk* known = nullptr;
  const Certificate* ark = nullptr;
  std::vector<Certificate> intermediates;
  for (const auto& c : ask_ark) {
    const std::string fp = to_hex(c.fingerprint_sha256());
    const KnownArk* match = nullptr;
    for (const auto& k : kKnownArks)
      if (k.fingerprint_hex == fp) match = &k;
    if (match != nullptr && ark == nullptr) {
      known = match;
      ark = &c;
    } else {
      intermediates.push_back(c);
    }
  }
  if (ark == nullptr)
    reject(
        "certificates: unknown AMD root (no certificate in the ASK/ARK chain is a pinned ARK; "
        "this build trusts ARK-Milan only)");
  verify_chain(vcek, intermediates, *ark, {}, now, "SEV-SNP VCEK");
  const Bytes product_ext = vcek.extension("1.3.6.1.4.1.3704.1.2");
  if (!product_ext.empty()) {
    const std::string product = der_string(product_ext);
    if (product.rfind(known->product, 0) != 0)
      reject("VCEK: product name \"" + product + "\" is not a " + std::string(known->product) +
             " part (its ARK)");
  }

  // 3. Chip id and TCB against the VCEK's extensions.
  Bytes hwid = vcek.extension("1.3.6.1.4.1.3704.1.4");
  if (hwid.size() == 66 && hwid[0] == 0x04 && hwid[1] == 64)
    hwid.erase(hwid.begin(), hwid.begin() + 2);
  if (hwid.size() != 64)
    reject("VCEK: hwID extension (1.3.6.1.4.1.3704.1.4) is missing or not 64 bytes");
  if (!std::equal(hwid.begin(), hwid.end(), r.begin() + kChipId))
    reject("report: CHIP_ID does not match the VCEK's hwID");
  const Tcb vcek_tcb{vcek_spl(vcek, "1.3.6.1.4.1.3704.1.3.1", "blSPL"),
                     vcek_spl(vcek, "1.3.6.1.4.1.3704.1.3.2", "teeSPL"),
                     vcek_spl(vcek, "1.3.6.1.4.1.3704.1.3.3", "snpSPL"),
                     vcek_spl(vcek, "1.3.6.1.4.1.3704.1.3.8", "ucodeSPL")};
  const Tcb reported = tcb_at(r, kReportedTcb);
  if (reported.any_below(vcek_tcb))
    reject("report: REPORTED_TCB (" + reported.str() + ") is below the VCEK's TCB (" +
           vcek_tcb.str() + "): the VCEK does not vouch for it");
  if (reported != vcek_tcb)
    reject("report: REPORTED_TCB (" + reported.str() + ") is not the VCEK's TCB (" +
           vcek_tcb.str() + ")");

  // 4. The VCEK's signature over [0, 0x2A0).
  if (!ecdsa_verify(vcek, Hash::kSha384, r.first(kSnpSignedBytes), signature))
    reject("report: the VCEK signature does not verify");

  Claims c;
  c.platform = Platform::kSevSnp;
  c.version = version;
  const Tcb committed = tcb_at(r, kCommittedTcb);
  c.tcb_status = snp_tcb_status(r.subspan<kReportedTcb, 8>(), r.subspan<kCommittedTcb, 8>());
  c.measurements.emplace_back("MEASUREMENT",
                              Bytes(r.begin() + kMeasurement, r.begin() + kMeasurement + 48));
  c.measurements.emplace_back("HOST_DATA",
                              Bytes(r.begin() + kHostData, r.begin() + kHostData + 32));
  std::copy(r.begin() + kReportData, r.begin() + kReportData + 64, c.report_data.begin());
  c.debug = (policy & kPolicyDebug) != 0;
  c.migration_agent = (policy & kPolicyMigrateMa) != 0;

  auto hex = [&](std::size_t off, std::size_t n) { return to_hex(r.subspan(off, n)); };
  auto version_str = [&](std::size_t off) {
    return std::to_string(r[off + 2]) + "." + std::to_string(r[off + 1]) + " build " +
           std::to_string(r[off]);
  };
  char policy_hex[32];
  std::snprintf(policy_hex, sizeof policy_hex, "0x%016llx",
                static_cast<unsigned long long>(policy));
  char platform_info[32];
  std::snprintf(platform_info, sizeof platform_info, "0x%016llx",
                static_cast<unsigned long long>(u64(r, kPlatformInfo)));
  auto& d = c.details;
  d.emplace_back("guest_svn", std::to_string(u32(r, kGuestSvn)));
  d.emplace_back("policy", policy_hex);
  d.emplace_back("vmpl", std::to_string(vmpl));
  d.emplace_back("product", der_string(product_ext));
  d.emplace_back("family_id", hex(kFamilyId, 16));
  d.emplace_back("image_id", hex(kImageId, 16));
  d.emplace_back("id_key_digest", hex(kIdKeyDigest, 48));
  d.emplace_back("author_key_digest", hex(kAuthorKeyDigest, 48));
  d.emplace_back("author_key_en", std::to_string(signer_info & 1u));
  d.emplace_back("report_id", hex(kReportId, 32));
  d.emplace_back("report_id_ma", hex(kReportIdMa, 32));
  d.emplace_back("current_tcb", tcb_at(r, kCurrentTcb).str());
  d.emplace_back("reported_tcb", reported.str());
  d.emplace_back("committed_tcb", committed.str());
  d.emplace_back("launch_tcb", tcb_at(r, kLaunchTcb).str());
  d.emplace_back("current_version", version_str(kCurrentVersion));
  d.emplace_back("committed_version", version_str(kCommittedVersion));
  d.emplace_back("platform_info", platform_info);
  d.emplace_back("chip_id", hex(kChipId, 64));
  d.emplace_back("vcek_valid_until", time_string(X509_get0_notAfter(vcek.native())));
  return c;
}

}  // namespace blindfold::tee
