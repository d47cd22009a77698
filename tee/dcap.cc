// Intel DCAP quote verification (tee/dcap.h). The checks follow Intel's
// Quote Verification Library and dcap-qvl; all cryptography is OpenSSL
// through tee/crypto.h. Order (cheap checks first; all run before anything is
// returned): parse the quote; the collateral signatures over the exact JSON
// bytes; the QE report binding, the quote signature, the QE report signature;
// the collateral windows; every chain to the pinned root at "now" with the
// CRLs; the PCK certificate against the TCB Info; the QE report against the
// QE Identity; the TDX module identity; the TCB-level match.
//
// TCB status rule (as Intel's QvL and dcap-qvl combine them):
//  1. platform status = the first TCB Info level (in the given order) whose
//     sgxtcbcomponents are all <= the PCK certificate's CPUSVN components, whose
//     pcesvn <= the PCK certificate's PCESVN and, for TDX, whose
//     tdxtcbcomponents are <= the TD report's TEE_TCB_SVN (from index 2 when
//     TEE_TCB_SVN[1], the TDX module major version, is non-zero: those two
//     bytes are then judged by the TDX module identity "TDX_<major>", whose
//     first level with isvsvn <= TEE_TCB_SVN[0] gives the module status). No
//     level -> rejected (TCB unrecognized).
//  2. the module status and then the QE status (QE Identity level of the QE
//     report's ISVSVN; none -> rejected) are converged into it: OutOfDate (or
//     OutOfDateConfigurationNeeded) turns UpToDate / SWHardeningNeeded into
//     OutOfDate and ConfigurationNeeded / ConfigurationAndSWHardeningNeeded into
//     OutOfDateConfigurationNeeded; Revoked turns anything into Revoked.
//  3. advisory ids: the platform level's, then the module's and the QE's not
//     already listed.
// TD report 1.5 bodies are matched with TEE_TCB_SVN (the TCB the TD was
// launched under); TEE_TCB_SVN2 is reported in the details.
#include "tee/dcap.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "core/error.h"
#include "tee/crypto.h"

namespace blindfold::tee {

namespace {

using nlohmann::json;
using ByteView = std::span<const std::uint8_t>;

/// SHA-256 of the DER of the Intel SGX Root CA (CN=Intel SGX Root CA, Intel
/// Corporation, Santa Clara, CA, US), the only trust anchor.
constexpr std::array<std::uint8_t, 32> kIntelRootSha256 = {
    0x44, 0xa0, 0x19, 0x6b, 0x2b, 0x99, 0xf8, 0x89, 0xb8, 0xe1, 0x49, 0xe9, 0x5b, 0x80, 0x7a, 0x35,
    0x0e, 0x74, 0x24, 0x96, 0x43, 0x99, 0xe8, 0x85, 0xa7, 0xcb, 0xb8, 0xcc, 0xfa, 0xb6, 0x74, 0xd3};

/// Intel's QE vendor id 939A7233-F79C-4CA9-940A-0DB3957F0607.
constexpr std::array<std::uint8_t, 16> kIntelQeVendorId = {
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

constexpr std::uint32_t kTeeSgx = 0;
constexpr std::uint32_t kTeeTdx = 0x81;
constexpr std::size_t kHeaderSize = 48;
constexpr std::size_t kSgxBodySize = 384;
constexpr std::size_t kTd10BodySize = 584;
constexpr std::size_t kTd15BodySize = 648;

[[noreturn]] void fail(const std::string& what) {
  throw_error(ErrorCategory::kBadMessage, "attestation: " + what);
}
[[noreturn]] void bad_input(const std::string& what) {
  throw_error(ErrorCategory::kBadInput, "DCAP collateral: " + what);
}

std::uint16_t le16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | p[1] << 8);
}
std::uint32_t le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

/// Sequential reader: every take is checked against the bytes remaining.
class Reader {
 public:
  explicit Reader(ByteView d) : d_(d) {}
  ByteView take(std::size_t n, const char* what) {
    if (n > d_.size() - pos_) fail(std::string("quote truncated in ") + what);
    ByteView out = d_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  std::uint16_t u16(const char* what) { return le16(take(2, what).data()); }
  std::uint32_t u32(const char* what) { return le32(take(4, what).data()); }
  std::size_t pos() const { return pos_; }
  std::size_t remaining() const { return d_.size() - pos_; }

 private:
  ByteView d_;
  std::size_t pos_ = 0;
};

std::string_view as_text(ByteView b) {
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}
ByteView as_bytes(std::string_view s) {
  return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

// ---- collateral loaders ----------------------------------------------------

std::string json_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) bad_input(std::string("missing field \"") + key + "\"");
  if (!it->is_string()) bad_input(std::string("field \"") + key + "\" is not a string");
  return it->get<std::string>();
}

Bytes json_hex(const json& j, const char* key) {
  auto b = from_hex(json_string(j, key));
  if (!b) bad_input(std::string("field \"") + key + "\" is not hex");
  return *b;
}

json parse_json_or(std::string_view text, const std::string& what) {
  try {
    return json::parse(text);
  } catch (const json::exception&) {
    bad_input(what + " is not JSON");
  }
}

/// The exact text of the value of `key` in the top-level JSON object `text`
/// (already known to parse). Strings are skipped escape-aware.
std::string_view raw_member(std::string_view text, std::string_view key, const std::string& what) {
  std::size_t i = 0;
  auto ws = [&] {
    while (i < text.size() &&
           (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
      ++i;
  };
  auto skip_string = [&] {  // at '"'
    ++i;
    while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
    if (i >= text.size()) bad_input(what + ": unterminated string");
    ++i;
  };
  auto skip_value = [&] {
    if (i >= text.size()) bad_input(what + ": truncated value");
    if (text[i] == '"') return skip_string();
    if (text[i] != '{' && text[i] != '[') {
      while (i < text.size() && text[i] != ',' && text[i] != '}' && text[i] != ' ' &&
             text[i] != '\n' && text[i] != '\r' && text[i] != '\t')
        ++i;
      return;
    }
    std::size_t depth = 0;
    while (i < text.size()) {
      char ch = text[i];
      if (ch == '"') {
        skip_string();
        continue;
      }
      ++i;
      if (ch == '{' || ch == '[') ++depth;
      if ((ch == '}' || ch == ']') && --depth == 0) return;
    }
    bad_input(what + ": truncated value");
  };
  ws();
  if (i >= text.size() || text[i] != '{') bad_input(what + " is not a JSON object");
  ++i;
  while (true) {
    ws();
    if (i >= text.size() || text[i] != '"') break;
    std::size_t k0 = i + 1;
    skip_string();
    std::string_view k = text.substr(k0, i - 1 - k0);
    ws();
    if (i >= text.size() || text[i] != ':') break;
    ++i;
    ws();
    std::size_t v0 = i;
    skip_value();
    if (k == key) return text.substr(v0, i - v0);
    ws();
    if (i < text.size() && text[i] == ',') ++i;
  }
  bad_input(what + ": missing field \"" + std::string(key) + "\"");
}

Bytes crl_bytes(ByteView b) {
  return Bytes(b.begin(), b.end());
}

// ---- the PCK certificate's SGX extension (DER) -------------------------------

struct Tlv {
  std::uint8_t tag = 0;
  ByteView value;
};

/// Reads DER TLVs from `d` (definite lengths up to 4 bytes, checked).
class DerReader {
 public:
  explicit DerReader(ByteView d) : d_(d) {}
  bool done() const { return pos_ == d_.size(); }
  Tlv next() {
    if (d_.size() - pos_ < 2) fail("PCK certificate SGX extension: truncated DER");
    Tlv t;
    t.tag = d_[pos_++];
    std::size_t len = d_[pos_++];
    if (len & 0x80) {
      std::size_t n = len & 0x7f;
      if (n == 0 || n > 4 || d_.size() - pos_ < n)
        fail("PCK certificate SGX extension: bad DER length");
      len = 0;
      for (std::size_t i = 0; i < n; ++i) len = len << 8 | d_[pos_++];
    }
    if (len > d_.size() - pos_) fail("PCK certificate SGX extension: DER length past the end");
    t.value = d_.subspan(pos_, len);
    pos_ += len;
    return t;
  }

 private:
  ByteView d_;
  std::size_t pos_ = 0;
};

/// 1.2.840.113741.1.13.1 as DER OID content bytes.
constexpr std::array<std::uint8_t, 9> kSgxExtOid = {0x2a, 0x86, 0x48, 0x86, 0xf8,
                                                    0x4d, 0x01, 0x0d, 0x01};

/// The sub-identifiers after the SGX extension OID, or nullopt for another OID.
std::optional<std::vector<std::uint8_t>> sgx_suffix(ByteView oid) {
  if (oid.size() <= kSgxExtOid.size() ||
      !std::equal(kSgxExtOid.begin(), kSgxExtOid.end(), oid.begin()))
    return std::nullopt;
  std::vector<std::uint8_t> out;
  for (std::size_t i = kSgxExtOid.size(); i < oid.size(); ++i) {
    if (oid[i] & 0x80) return std::nullopt;  // all of Intel's are < 128
    out.push_back(oid[i]);
  }
  return out;
}

unsigned der_uint(ByteView v, unsigned max, const char* what) {
  if (v.empty() || v.size() > 3 || (v[0] & 0x80))
    fail(std::string("PCK certificate SGX extension: ") + what + " is not a small INTEGER");
  unsigned x = 0;
  for (std::uint8_t b : v) x = x << 8 | b;
  if (x > max) fail(std::string("PCK certificate SGX extension: ") + what + " out of range");
  return x;
}

struct PckInfo {
  std::array<unsigned, 16> components{};
  unsigned pce_svn = 0;
  Bytes cpu_svn;
  Bytes pce_id;
  Bytes fmspc;
};

PckInfo parse_sgx_extension(const Certificate& pck) {
  Bytes ext = pck.extension("1.2.840.113741.1.13.1");
  if (ext.empty()) fail("PCK certificate has no SGX extension");
  DerReader outer(ext);
  Tlv seq = outer.next();
  if (seq.tag != 0x30 || !outer.done()) fail("PCK certificate SGX extension is not one SEQUENCE");
  PckInfo info;
  bool have_tcb = false;
  std::array<bool, 16> have_comp{};
  bool have_pcesvn = false;
  DerReader items(seq.value);
  while (!items.done()) {
    Tlv item = items.next();
    if (item.tag != 0x30) fail("PCK certificate SGX extension: item is not a SEQUENCE");
    DerReader kv(item.value);
    Tlv oid = kv.next();
    if (oid.tag != 0x06) fail("PCK certificate SGX extension: item without OID");
    Tlv value = kv.next();
    if (!kv.done()) fail("PCK certificate SGX extension: item has extra fields");
    auto sub = sgx_suffix(oid.value);
    if (!sub || sub->size() != 1) continue;  // not ours, or a nested id at the top level
    switch ((*sub)[0]) {
      case 2: {  // TCB
        if (value.tag != 0x30 || have_tcb) fail("PCK certificate SGX extension: bad TCB field");
        have_tcb = true;
        DerReader comps(value.value);
        while (!comps.done()) {
          Tlv c = comps.next();
          if (c.tag != 0x30) fail("PCK certificate SGX extension: TCB item is not a SEQUENCE");
          DerReader ckv(c.value);
          Tlv coid = ckv.next();
          Tlv cval = ckv.next();
          if (coid.tag != 0x06 || !ckv.done()) fail("PCK certificate SGX extension: bad TCB item");
          auto csub = sgx_suffix(coid.value);
          if (!csub || csub->size() != 2 || (*csub)[0] != 2) continue;
          unsigned n = (*csub)[1];
          if (n >= 1 && n <= 16) {
            if (cval.tag != 0x02 || have_comp[n - 1])
              fail("PCK certificate SGX extension: bad TCB component");
            info.components[n - 1] = der_uint(cval.value, 255, "TCB component SVN");
            have_comp[n - 1] = true;
          } else if (n == 17) {
            if (cval.tag != 0x02 || have_pcesvn) fail("PCK certificate SGX extension: bad PCESVN");
            info.pce_svn = der_uint(cval.value, 65535, "PCESVN");
            have_pcesvn = true;
          } else if (n == 18) {
            if (cval.tag != 0x04 || cval.value.size() != 16)
              fail("PCK certificate SGX extension: bad CPUSVN");
            info.cpu_svn.assign(cval.value.begin(), cval.value.end());
          }
        }
        break;
      }
      case 3:  // PCE-ID
        if (value.tag != 0x04 || value.value.size() != 2 || !info.pce_id.empty())
          fail("PCK certificate SGX extension: bad PCE-ID");
        info.pce_id.assign(value.value.begin(), value.value.end());
        break;
      case 4:  // FMSPC
        if (value.tag != 0x04 || value.value.size() != 6 || !info.fmspc.empty())
          fail("PCK certificate SGX extension: bad FMSPC");
        info.fmspc.assign(value.value.begin(), value.value.end());
        break;
      default: break;
    }
  }
  if (!have_tcb || !have_pcesvn ||
      std::any_of(have_comp.begin(), have_comp.end(), [](bool b) { return !b; }))
    fail("PCK certificate SGX extension lacks TCB components or PCESVN");
  if (info.pce_id.empty()) fail("PCK certificate SGX extension lacks the PCE-ID");
  if (info.fmspc.empty()) fail("PCK certificate SGX extension lacks the FMSPC");
  return info;
}

// ---- certificates ------------------------------------------------------------

/// The trust anchor of the verification in progress (SHA-256 of its DER).
using RootPin = std::span<const std::uint8_t, 32>;

bool is_pinned_root(const Certificate& c, RootPin pin) {
  Bytes fp = c.fingerprint_sha256();
  return fp.size() == pin.size() && std::equal(fp.begin(), fp.end(), pin.begin());
}

/// The PEM text OpenSSL writes for `c` (64-column base64 lines, "\n").
std::string canonical_pem(const Certificate& c) {
  Bytes der = c.der();
  std::string b64(4 * ((der.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), der.data(),
                          static_cast<int>(der.size()));
  b64.resize(static_cast<std::size_t>(n));
  std::string out = "-----BEGIN CERTIFICATE-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) {
    out += b64.substr(i, 64);
    out += '\n';
  }
  out += "-----END CERTIFICATE-----\n";
  return out;
}

/// Subject common names of Intel's DCAP certificates. A chain must hold
/// exactly the expected roles: without that, any certificate under the Intel
/// root -- a platform's PCK certificate, whose key lives in a CPU -- could sign
/// a TCB Info of its own choosing.
constexpr std::string_view kTcbSigningCn = "Intel SGX TCB Signing";
constexpr std::string_view kPckCn = "Intel SGX PCK Certificate";
constexpr std::string_view kPckPlatformCaCn = "Intel SGX PCK Platform CA";
constexpr std::string_view kPckProcessorCaCn = "Intel SGX PCK Processor CA";
using Roles = std::vector<std::vector<std::string_view>>;

std::string common_name(const Certificate& c) {
  char buf[256];
  int n =
      X509_NAME_get_text_by_NID(X509_get_subject_name(c.native()), NID_commonName, buf, sizeof buf);
  return n > 0 && static_cast<std::size_t>(n) < sizeof buf
             ? std::string(buf, static_cast<std::size_t>(n))
             : std::string();
}

/// A chain from PEM that must end at the pinned root (returned last) and hold
/// one certificate per role before it, each with one of that role's subject
/// common names. With `strict`, the text must be exactly the canonical PEM of
/// its certificates (at most one NUL after), so no byte of it is unchecked.
std::vector<Certificate> chain_to_root(std::string_view pem, const std::string& what, bool strict,
                                       RootPin pin, const Roles& roles) {
  std::vector<Certificate> certs = Certificate::chain_from_pem(pem, what);
  if (strict) {
    std::string canon;
    for (const auto& c : certs) canon += canonical_pem(c);
    std::string_view text = pem;
    if (!text.empty() && text.back() == '\0') text.remove_suffix(1);
    if (text != canon) fail(what + " is not canonical PEM (bytes outside the certificates)");
  }
  if (certs.size() < 2) fail(what + " is too short (no root certificate)");
  if (!is_pinned_root(certs.back(), pin))
    fail(what + " does not end at the Intel SGX Root CA (pinned SHA-256 mismatch)");
  for (std::size_t i = 0; i + 1 < certs.size(); ++i)
    if (is_pinned_root(certs[i], pin)) fail(what + " holds the root certificate before its end");
  if (certs.size() != roles.size() + 1)
    fail(what + " has " + std::to_string(certs.size()) + " certificates, not " +
         std::to_string(roles.size() + 1));
  for (std::size_t i = 0; i < roles.size(); ++i) {
    std::string cn = common_name(certs[i]);
    if (std::find(roles[i].begin(), roles[i].end(), cn) == roles[i].end())
      fail(what + ": certificate " + std::to_string(i) + " is not the " + std::string(roles[i][0]) +
           " certificate (CN \"" + cn + "\")");
  }
  return certs;
}

/// Verifies chain[0] through chain[1..n-2] to chain[n-1] (the pinned root).
void verify_to_root(const std::vector<Certificate>& chain, std::span<const Crl> crls, Time now,
                    const std::string& what) {
  std::span<const Certificate> all(chain);
  verify_chain(all.front(), all.subspan(1, all.size() - 2), all.back(), crls, now, what);
}

// ---- collateral JSON ---------------------------------------------------------

json parse_signed_json(const std::string& text, const std::string& what) {
  try {
    json j = json::parse(text);
    if (!j.is_object()) fail(what + " is not a JSON object");
    return j;
  } catch (const json::exception&) {
    fail(what + " is not JSON");
  }
}

const json& field(const json& j, const char* key, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end()) fail(what + " lacks \"" + key + "\"");
  return *it;
}
std::string str_field(const json& j, const char* key, const std::string& what) {
  const json& v = field(j, key, what);
  if (!v.is_string()) fail(what + " field \"" + key + "\" is not a string");
  return v.get<std::string>();
}
std::uint64_t uint_field(const json& j, const char* key, const std::string& what,
                         std::uint64_t max) {
  const json& v = field(j, key, what);
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() > max)
    fail(what + " field \"" + key + "\" is not an integer in range");
  return v.get<std::uint64_t>();
}
Bytes hex_field(const json& j, const char* key, const std::string& what, std::size_t len) {
  auto b = from_hex(str_field(j, key, what));
  if (!b || b->size() != len)
    fail(what + " field \"" + key + "\" is not " + std::to_string(len) + " bytes of hex");
  return *b;
}
Time time_field(const json& j, const char* key, const std::string& what) {
  auto t = parse_time(str_field(j, key, what));
  if (!t) fail(what + " field \"" + key + "\" is not an RFC 3339 time");
  return *t;
}
TcbStatus status_field(const json& level, const std::string& what) {
  auto s = parse_tcb_status(str_field(level, "tcbStatus", what));
  if (!s) fail(what + " has an unknown tcbStatus");
  return *s;
}
std::vector<std::string> advisories(const json& level, const std::string& what) {
  std::vector<std::string> out;
  auto it = level.find("advisoryIDs");
  if (it == level.end()) return out;
  if (!it->is_array()) fail(what + " advisoryIDs is not an array");
  for (const auto& a : *it) {
    if (!a.is_string()) fail(what + " advisory id is not a string");
    out.push_back(a.get<std::string>());
  }
  return out;
}

void check_window(const json& j, const std::string& what, Time now, Time& from, Time& until) {
  Time issue = time_field(j, "issueDate", what);
  Time next = time_field(j, "nextUpdate", what);
  if (now < issue) fail(what + " is not yet valid (issueDate " + format_time(issue) + ")");
  if (now > next) fail(what + " has expired (nextUpdate " + format_time(next) + ")");
  from = std::max(from, issue);
  until = std::min(until, next);
}

/// Converges a secondary status (TDX module, QE) into the platform's.
TcbStatus converge(TcbStatus platform, TcbStatus other) {
  if (other == TcbStatus::kRevoked) return TcbStatus::kRevoked;
  if (other == TcbStatus::kOutOfDate || other == TcbStatus::kOutOfDateConfigurationNeeded) {
    switch (platform) {
      case TcbStatus::kUpToDate:
      case TcbStatus::kSWHardeningNeeded: return TcbStatus::kOutOfDate;
      case TcbStatus::kConfigurationNeeded:
      case TcbStatus::kConfigurationAndSWHardeningNeeded:
        return TcbStatus::kOutOfDateConfigurationNeeded;
      default: return platform;
    }
  }
  return platform;
}

void add_advisories(std::vector<std::string>& to, const std::vector<std::string>& from) {
  for (const auto& a : from)
    if (std::find(to.begin(), to.end(), a) == to.end()) to.push_back(a);
}

std::vector<unsigned> svn_array(const json& tcb, const char* key, const std::string& what) {
  const json& arr = field(tcb, key, what);
  if (!arr.is_array() || arr.size() != 16) fail(what + " " + key + " is not 16 components");
  std::vector<unsigned> out;
  for (const auto& c : arr) {
    if (!c.is_object()) fail(what + " " + key + " component is not an object");
    out.push_back(static_cast<unsigned>(uint_field(c, "svn", what + " " + key, 255)));
  }
  return out;
}

bool bytes_equal(ByteView a, ByteView b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}
bool masked_equal(ByteView value, ByteView expected, ByteView mask) {
  if (value.size() != expected.size() || value.size() != mask.size()) return false;
  for (std::size_t i = 0; i < value.size(); ++i)
    if ((value[i] & mask[i]) != (expected[i] & mask[i])) return false;
  return true;
}

std::string hex_upper(ByteView b) {
  std::string s = to_hex(b);
  for (char& c : s)
    if (c >= 'a' && c <= 'f') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

}  // namespace

// ---- public ------------------------------------------------------------------

DcapCollateral DcapCollateral::from_json(std::string_view text) {
  json j = parse_json_or(text, "collateral");
  if (!j.is_object()) bad_input("collateral is not a JSON object");
  DcapCollateral c;
  c.pck_crl_issuer_chain = json_string(j, "pck_crl_issuer_chain");
  c.root_ca_crl = json_hex(j, "root_ca_crl");
  c.pck_crl = json_hex(j, "pck_crl");
  c.tcb_info_issuer_chain = json_string(j, "tcb_info_issuer_chain");
  c.tcb_info = json_string(j, "tcb_info");
  c.tcb_info_signature = json_hex(j, "tcb_info_signature");
  c.qe_identity_issuer_chain = json_string(j, "qe_identity_issuer_chain");
  c.qe_identity = json_string(j, "qe_identity");
  c.qe_identity_signature = json_hex(j, "qe_identity_signature");
  return c;
}

DcapCollateral DcapCollateral::from_pcs_responses(std::string_view tcb_info_response,
                                                  std::string_view qe_identity_response,
                                                  std::span<const std::uint8_t> pck_crl,
                                                  std::span<const std::uint8_t> root_crl,
                                                  std::string_view issuer_chain_pem) {
  json tcb = parse_json_or(tcb_info_response, "TCB Info response");
  json qe = parse_json_or(qe_identity_response, "QE Identity response");
  if (!tcb.is_object() || !qe.is_object()) bad_input("PCS response is not a JSON object");
  DcapCollateral c;
  c.tcb_info = std::string(raw_member(tcb_info_response, "tcbInfo", "TCB Info response"));
  c.tcb_info_signature = json_hex(tcb, "signature");
  c.qe_identity =
      std::string(raw_member(qe_identity_response, "enclaveIdentity", "QE Identity response"));
  c.qe_identity_signature = json_hex(qe, "signature");
  c.pck_crl = crl_bytes(pck_crl);
  c.root_ca_crl = crl_bytes(root_crl);
  c.tcb_info_issuer_chain = std::string(issuer_chain_pem);
  c.qe_identity_issuer_chain = std::string(issuer_chain_pem);
  // The PCK CRL's issuer is the PCK CA of the quote's own chain, which
  // verifies it; no chain for it is needed (the PCS sends it in a header).
  return c;
}

bool looks_like_dcap_quote(std::span<const std::uint8_t> evidence) noexcept {
  if (evidence.size() < kHeaderSize) return false;
  std::uint16_t version = le16(evidence.data());
  std::uint16_t key_type = le16(evidence.data() + 2);
  return (version == 3 || version == 4 || version == 5) && key_type == 2;
}

DcapQuote parse_dcap_quote(std::span<const std::uint8_t> quote) {
  DcapQuote q;
  Reader r(quote);
  q.header = r.take(kHeaderSize, "header");
  q.version = le16(q.header.data());
  q.attestation_key_type = le16(q.header.data() + 2);
  q.tee_type = le32(q.header.data() + 4);
  q.qe_svn = le16(q.header.data() + 8);
  q.pce_svn = le16(q.header.data() + 10);
  if (q.version != 3 && q.version != 4 && q.version != 5)
    fail("unsupported quote version " + std::to_string(q.version));
  if (q.attestation_key_type != 2)
    fail("unsupported attestation key type " + std::to_string(q.attestation_key_type));
  if (q.tee_type != kTeeSgx && q.tee_type != kTeeTdx)
    fail("unknown TEE type " + std::to_string(q.tee_type));
  if (q.version == 3 && q.tee_type != kTeeSgx) fail("quote v3 with a non-SGX TEE type");
  if (!std::equal(kIntelQeVendorId.begin(), kIntelQeVendorId.end(), q.header.begin() + 12))
    fail("QE vendor id is not Intel's");
  std::size_t body_size = 0;
  if (q.version == 5) {
    q.body_type = r.u16("body type");
    std::uint32_t size = r.u32("body size");
    switch (q.body_type) {
      case 1: body_size = kSgxBodySize; break;
      case 2: body_size = kTd10BodySize; break;
      case 3: body_size = kTd15BodySize; break;
      default: fail("unknown quote v5 body type " + std::to_string(q.body_type));
    }
    if (size != body_size)
      fail("quote v5 body size " + std::to_string(size) + " does not match its type");
    if ((q.body_type == 1) != (q.tee_type == kTeeSgx))
      fail("quote v5 body type does not match the TEE type");
  } else {
    q.body_type = q.tee_type == kTeeSgx ? 1 : 2;
    body_size = q.tee_type == kTeeSgx ? kSgxBodySize : kTd10BodySize;
  }
  q.body = r.take(body_size, "report body");
  q.signed_part = quote.first(r.pos());
  std::uint32_t sig_len = r.u32("signature data length");
  if (sig_len > r.remaining()) fail("signature data length exceeds the quote");
  std::size_t sig_start = r.pos();
  q.signature = r.take(64, "ECDSA signature");
  q.attestation_key = r.take(64, "attestation key");
  std::size_t inner_end = 0;  // where the QE report certification data must end
  if (q.version >= 4) {
    std::uint16_t type = r.u16("certification data type");
    std::uint32_t size = r.u32("certification data size");
    if (type != 6)
      fail("certification data type " + std::to_string(type) + " is not 6 (QE report)");
    if (size > r.remaining()) fail("certification data size exceeds the quote");
    inner_end = r.pos() + size;
  }
  q.qe_report = r.take(kSgxBodySize, "QE report");
  q.qe_report_signature = r.take(64, "QE report signature");
  std::uint16_t auth_len = r.u16("QE auth data length");
  q.qe_auth_data = r.take(auth_len, "QE auth data");
  std::uint16_t cert_type = r.u16("PCK certification data type");
  std::uint32_t cert_size = r.u32("PCK certification data size");
  if (cert_type != 5)
    fail("PCK certification data type " + std::to_string(cert_type) + " is not 5 (PEM chain)");
  if (cert_size > r.remaining()) fail("PCK certification data size exceeds the quote");
  q.pck_chain_pem = r.take(cert_size, "PCK certificate chain");
  if (q.version >= 4 && r.pos() != inner_end)
    fail("certification data size does not match its contents");
  if (r.pos() - sig_start != sig_len) fail("signature data length does not match its contents");
  q.length = r.pos();
  ByteView rest = quote.subspan(q.length);
  if (std::any_of(rest.begin(), rest.end(), [](std::uint8_t b) { return b != 0; }))
    fail("trailing bytes after the quote");
  return q;
}

Claims verify_dcap_quote(std::span<const std::uint8_t> quote, const DcapCollateral& collateral,
                         Time now) {
  return verify_dcap_quote_with_root(quote, collateral, now, kIntelRootSha256);
}

Claims verify_dcap_quote_with_root(std::span<const std::uint8_t> quote_bytes,
                                   const DcapCollateral& collateral, Time now,
                                   std::span<const std::uint8_t, 32> pin) {
  const DcapQuote q = parse_dcap_quote(quote_bytes);
  const bool tdx = q.tee_type == kTeeTdx;

  // Cheap checks first (signatures, hashes), the chain verifications with
  // their CRLs after them; every check runs before anything is returned.
  // The collateral signatures over the exact JSON bytes, by the leaves of
  // issuer chains that end at the pinned root (the TCB Info and QE Identity
  // chains are usually the same text: parsed once then).
  std::vector<Certificate> tcb_chain =
      chain_to_root(collateral.tcb_info_issuer_chain, "TCB Info issuer chain", false, pin,
                    Roles{{kTcbSigningCn}});
  if (!ecdsa_verify(tcb_chain.front(), Hash::kSha256, as_bytes(collateral.tcb_info),
                    collateral.tcb_info_signature))
    fail("TCB Info signature does not verify");
  std::vector<Certificate> qe_chain =
      collateral.qe_identity_issuer_chain == collateral.tcb_info_issuer_chain
          ? tcb_chain
          : chain_to_root(collateral.qe_identity_issuer_chain, "QE Identity issuer chain", false,
                          pin, Roles{{kTcbSigningCn}});
  if (!ecdsa_verify(qe_chain.front(), Hash::kSha256, as_bytes(collateral.qe_identity),
                    collateral.qe_identity_signature))
    fail("QE Identity signature does not verify");

  // The quote: its PCK chain (every byte of the PEM checked), the QE report
  // binding the attestation key, the quote signature, the QE report signature.
  Bytes hashed(q.attestation_key.begin(), q.attestation_key.end());
  hashed.insert(hashed.end(), q.qe_auth_data.begin(), q.qe_auth_data.end());
  Bytes expect = sha256(hashed);
  ByteView qe_report_data = q.qe_report.subspan(320, 64);
  if (!bytes_equal(qe_report_data.first(32), expect) ||
      std::any_of(qe_report_data.begin() + 32, qe_report_data.end(),
                  [](std::uint8_t b) { return b != 0; }))
    fail("QE report data does not bind the attestation key (SHA-256(key || auth data))");
  std::vector<Certificate> pck_chain =
      chain_to_root(as_text(q.pck_chain_pem), "PCK certificate chain", true, pin,
                    Roles{{kPckCn}, {kPckPlatformCaCn, kPckProcessorCaCn}});
  const Certificate& pck = pck_chain.front();
  if (!ecdsa_p256_verify_raw_key(q.attestation_key, q.signed_part, q.signature))
    fail("quote signature does not verify with the attestation key");
  if (!ecdsa_verify(pck, Hash::kSha256, q.qe_report, q.qe_report_signature))
    fail("QE report signature does not verify with the PCK key");

  // The collateral's validity windows.
  const json tcb_info = parse_signed_json(collateral.tcb_info, "TCB Info");
  const json qe_identity = parse_signed_json(collateral.qe_identity, "QE Identity");
  Time valid_from = Time::min(), valid_until = Time::max();
  check_window(tcb_info, "TCB Info", now, valid_from, valid_until);
  check_window(qe_identity, "QE Identity", now, valid_from, valid_until);

  // Chains at `now` with the CRLs (OpenSSL checks each CRL's signature and
  // its thisUpdate / nextUpdate window too).
  std::vector<Crl> root_crls;
  root_crls.push_back(Crl::parse(collateral.root_ca_crl, "root CA CRL"));
  std::vector<Crl> all_crls;
  all_crls.push_back(Crl::parse(collateral.root_ca_crl, "root CA CRL"));
  all_crls.push_back(Crl::parse(collateral.pck_crl, "PCK CRL"));
  verify_to_root(tcb_chain, root_crls, now, "TCB Info signing certificate");
  if (collateral.qe_identity_issuer_chain != collateral.tcb_info_issuer_chain)
    verify_to_root(qe_chain, root_crls, now, "QE Identity signing certificate");
  if (!collateral.pck_crl_issuer_chain.empty()) {
    std::vector<Certificate> crl_chain =
        chain_to_root(collateral.pck_crl_issuer_chain, "PCK CRL issuer chain", false, pin,
                      Roles{{kPckPlatformCaCn, kPckProcessorCaCn}});
    verify_to_root(crl_chain, root_crls, now, "PCK CRL issuer");
  }
  verify_to_root(pck_chain, all_crls, now, "PCK certificate");

  // PCK certificate facts against the TCB Info.
  PckInfo pck_info = parse_sgx_extension(pck);
  const std::string tcb_what = "TCB Info";
  std::string tcb_id = str_field(tcb_info, "id", tcb_what);
  std::uint64_t tcb_version = uint_field(tcb_info, "version", tcb_what, 1000);
  if (tdx && tcb_id != "TDX") fail("TCB Info id is not \"TDX\" for a TDX quote");
  if (!tdx && tcb_id != "SGX") fail("TCB Info id is not \"SGX\" for an SGX quote");
  if (tcb_version != 3) fail("unsupported TCB Info version " + std::to_string(tcb_version));
  if (uint_field(tcb_info, "tcbType", tcb_what, 1u << 16) != 0)
    fail("unsupported TCB Info tcbType (only 0 is defined)");
  if (!bytes_equal(hex_field(tcb_info, "fmspc", tcb_what, 6), pck_info.fmspc))
    fail("FMSPC of the PCK certificate does not match the TCB Info");
  if (!bytes_equal(hex_field(tcb_info, "pceId", tcb_what, 2), pck_info.pce_id))
    fail("PCE ID of the PCK certificate does not match the TCB Info");
  std::uint64_t eval_number = uint_field(tcb_info, "tcbEvaluationDataNumber", tcb_what, 1u << 31);

  // QE report against the QE Identity.
  const std::string qe_what = "QE Identity";
  std::string qe_id = str_field(qe_identity, "id", qe_what);
  if (qe_id != (tdx ? "TD_QE" : "QE"))
    fail(std::string("QE Identity id is not \"") + (tdx ? "TD_QE" : "QE") + "\"");
  if (uint_field(qe_identity, "version", qe_what, 1000) != 2)
    fail("unsupported QE Identity version");
  ByteView qr = q.qe_report;
  if (!bytes_equal(qr.subspan(128, 32), hex_field(qe_identity, "mrsigner", qe_what, 32)))
    fail("QE report MRSIGNER does not match the QE Identity");
  if (le16(qr.data() + 256) != uint_field(qe_identity, "isvprodid", qe_what, 65535))
    fail("QE report ISVPRODID does not match the QE Identity");
  if (!masked_equal(qr.subspan(16, 4), hex_field(qe_identity, "miscselect", qe_what, 4),
                    hex_field(qe_identity, "miscselectMask", qe_what, 4)))
    fail("QE report MISCSELECT does not match the QE Identity");
  if (!masked_equal(qr.subspan(48, 16), hex_field(qe_identity, "attributes", qe_what, 16),
                    hex_field(qe_identity, "attributesMask", qe_what, 16)))
    fail("QE report ATTRIBUTES do not match the QE Identity");
  unsigned qe_isvsvn = le16(qr.data() + 258);
  std::optional<TcbStatus> qe_status;
  std::vector<std::string> qe_advisories;
  {
    const json& levels = field(qe_identity, "tcbLevels", qe_what);
    if (!levels.is_array()) fail("QE Identity tcbLevels is not an array");
    for (const auto& level : levels) {
      const json& tcb = field(level, "tcb", qe_what + " level");
      if (uint_field(tcb, "isvsvn", qe_what + " level", 65535) <= qe_isvsvn) {
        qe_status = status_field(level, qe_what + " level");
        qe_advisories = advisories(level, qe_what + " level");
        break;
      }
    }
  }
  if (!qe_status) fail("QE report ISVSVN matches no QE Identity TCB level");

  // TDX module identity (TCB Info v3).
  ByteView tee_tcb_svn;
  std::optional<TcbStatus> module_status;
  std::vector<std::string> module_advisories;
  if (tdx) {
    tee_tcb_svn = q.body.subspan(0, 16);
    ByteView mrsigner_seam = q.body.subspan(64, 48);
    ByteView seam_attributes = q.body.subspan(112, 8);
    const json* module = &field(tcb_info, "tdxModule", tcb_what);
    std::uint8_t major = tee_tcb_svn[1];
    const json* module_levels = nullptr;
    if (major > 0) {
      char id[16];
      std::snprintf(id, sizeof id, "TDX_%02X", major);
      const json& ids = field(tcb_info, "tdxModuleIdentities", tcb_what);
      if (!ids.is_array()) fail("TCB Info tdxModuleIdentities is not an array");
      const json* found = nullptr;
      for (const auto& m : ids)
        if (m.is_object() && str_field(m, "id", "TDX module identity") == id) found = &m;
      if (found == nullptr) fail(std::string("TCB Info has no TDX module identity ") + id);
      module = found;
      module_levels = &field(*found, "tcbLevels", "TDX module identity");
    }
    if (!bytes_equal(mrsigner_seam, hex_field(*module, "mrsigner", "TDX module", 48)))
      fail("TD report MRSIGNERSEAM does not match the TDX module identity");
    if (!masked_equal(seam_attributes, hex_field(*module, "attributes", "TDX module", 8),
                      hex_field(*module, "attributesMask", "TDX module", 8)))
      fail("TD report SEAMATTRIBUTES do not match the TDX module identity");
    if (module_levels != nullptr) {
      if (!module_levels->is_array()) fail("TDX module tcbLevels is not an array");
      for (const auto& level : *module_levels) {
        const json& tcb = field(level, "tcb", "TDX module level");
        if (uint_field(tcb, "isvsvn", "TDX module level", 255) <= tee_tcb_svn[0]) {
          module_status = status_field(level, "TDX module level");
          module_advisories = advisories(level, "TDX module level");
          break;
        }
      }
      if (!module_status) fail("TEE_TCB_SVN matches no TDX module TCB level");
    }
  }

  // Platform TCB level.
  std::optional<TcbStatus> platform_status;
  std::vector<std::string> advisory_ids;
  std::string tcb_date;
  {
    const json& levels = field(tcb_info, "tcbLevels", tcb_what);
    if (!levels.is_array()) fail("TCB Info tcbLevels is not an array");
    const std::string lw = "TCB Info level";
    for (const auto& level : levels) {
      const json& tcb = field(level, "tcb", lw);
      std::vector<unsigned> sgx = svn_array(tcb, "sgxtcbcomponents", lw);
      unsigned pcesvn = static_cast<unsigned>(uint_field(tcb, "pcesvn", lw, 65535));
      bool ok = pcesvn <= pck_info.pce_svn;
      for (std::size_t i = 0; i < 16 && ok; ++i) ok = sgx[i] <= pck_info.components[i];
      if (tdx) {
        std::vector<unsigned> tdxc = svn_array(tcb, "tdxtcbcomponents", lw);
        for (std::size_t i = tee_tcb_svn[1] > 0 ? 2 : 0; i < 16 && ok; ++i)
          ok = tdxc[i] <= tee_tcb_svn[i];
      }
      TcbStatus level_status = status_field(level, lw);  // every level's must parse
      if (!ok || platform_status) continue;
      platform_status = level_status;
      advisory_ids = advisories(level, lw);
      tcb_date = str_field(level, "tcbDate", lw);
    }
  }
  if (!platform_status) fail("TCB unrecognized: the platform matches no TCB Info level");
  TcbStatus status = *platform_status;
  if (module_status) {
    status = converge(status, *module_status);
    add_advisories(advisory_ids, module_advisories);
  }
  status = converge(status, *qe_status);
  add_advisories(advisory_ids, qe_advisories);

  Claims c;
  c.platform = tdx ? Platform::kTdx : Platform::kSgx;
  c.version = q.version;
  c.tcb_status = status;
  c.advisory_ids = std::move(advisory_ids);
  ByteView b = q.body;
  auto put = [&](const char* name, std::size_t off, std::size_t len) {
    c.measurements.emplace_back(name, Bytes(b.begin() + off, b.begin() + off + len));
  };
  if (tdx) {
    put("MRTD", 136, 48);
    put("RTMR0", 328, 48);
    put("RTMR1", 376, 48);
    put("RTMR2", 424, 48);
    put("RTMR3", 472, 48);
    put("MRSEAM", 16, 48);
    std::copy_n(b.begin() + 520, 64, c.report_data.begin());
    c.debug = (b[120] & 0x01) != 0;
  } else {
    put("MRENCLAVE", 64, 32);
    put("MRSIGNER", 128, 32);
    std::copy_n(b.begin() + 320, 64, c.report_data.begin());
    c.debug = (b[48] & 0x02) != 0;
  }
  auto detail = [&](std::string k, std::string v) {
    c.details.emplace_back(std::move(k), std::move(v));
  };
  if (!tdx) {
    detail("isv_prod_id", std::to_string(le16(b.data() + 256)));
    detail("isv_svn", std::to_string(le16(b.data() + 258)));
  } else {
    detail("tee_tcb_svn", to_hex(tee_tcb_svn));
    if (q.body_type == 3) detail("tee_tcb_svn2", to_hex(b.subspan(584, 16)));
    detail("td_attributes", to_hex(b.subspan(120, 8)));
    if (module_status)
      detail("tdx_module_tcb_status", std::string(tcb_status_name(*module_status)));
  }
  detail("fmspc", hex_upper(pck_info.fmspc));
  detail("pce_id", hex_upper(pck_info.pce_id));
  detail("pce_svn", std::to_string(pck_info.pce_svn));
  detail("qe_svn", std::to_string(qe_isvsvn));
  detail("platform_tcb_status", std::string(tcb_status_name(*platform_status)));
  detail("qe_tcb_status", std::string(tcb_status_name(*qe_status)));
  detail("tcb_date", tcb_date);
  detail("tcb_evaluation_data_number", std::to_string(eval_number));
  detail("collateral_valid_from", format_time(valid_from));
  detail("collateral_valid_until", format_time(valid_until));
  return c;
}

}  // namespace blindfold::tee
