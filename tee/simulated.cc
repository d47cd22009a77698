#include "tee/simulated.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/random.h"

namespace blindfold::tee {

namespace {

constexpr char kVendorTag[] = "BLINDFOLD-SIM";  // 13 bytes, zero-padded to 16
constexpr char kSubjectCn[] = "Blindfold SIMULATED TEE platform (no hardware)";
constexpr std::uint16_t kQuoteVersion = 4;
constexpr std::uint16_t kAttestationKeyType = 2;
constexpr std::size_t kSignatureBytes = 64;

[[noreturn]] void reject(const std::string& why) {
  throw_error(ErrorCategory::kBadMessage, "attestation: simulated evidence: " + why);
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

void put_u16(Bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
}
void put_u32(Bytes& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u64(Bytes& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
std::uint16_t get_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
std::uint32_t get_u32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The 48-byte header every simulated evidence starts with.
Bytes simulated_header() {
  Bytes h;
  h.reserve(kSimulatedHeaderBytes);
  put_u16(h, kQuoteVersion);
  put_u16(h, kAttestationKeyType);
  put_u32(h, kSimulatedTeeType);
  put_u16(h, 0);
  put_u16(h, 0);
  std::uint8_t vendor[16] = {};
  std::memcpy(vendor, kVendorTag, sizeof(kVendorTag) - 1);
  h.insert(h.end(), vendor, vendor + 16);
  h.resize(kSimulatedHeaderBytes, 0);  // user data
  return h;
}

PkeyPtr generate_key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key)
    throw_error(ErrorCategory::kInternal, "simulated platform: P-256 key generation failed");
  return key;
}

Certificate self_signed(EVP_PKEY* key, Time not_before, Time not_after) {
  X509Ptr x(X509_new());
  if (!x) throw_error(ErrorCategory::kInternal, "simulated platform: X509_new failed");
  bool ok = X509_set_version(x.get(), 2) == 1;
  std::uint8_t serial[16];
  os_random(serial);
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  ok = ok && bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get())) != nullptr;
  BN_free(bn);
  ok = ok &&
       ASN1_TIME_set(X509_getm_notBefore(x.get()),
                     std::chrono::system_clock::to_time_t(not_before)) != nullptr &&
       ASN1_TIME_set(X509_getm_notAfter(x.get()),
                     std::chrono::system_clock::to_time_t(not_after)) != nullptr;
  X509_NAME* name = X509_get_subject_name(x.get());
  ok = ok &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  reinterpret_cast<const unsigned char*>(kSubjectCn), -1, -1,
                                  0) == 1 &&
       X509_set_issuer_name(x.get(), name) == 1 && X509_set_pubkey(x.get(), key) == 1;
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  const std::pair<int, const char*> exts[] = {{NID_basic_constraints, "critical,CA:FALSE"},
                                              {NID_key_usage, "critical,digitalSignature"}};
  for (const auto& [nid, value] : exts) {
    if (!ok) break;
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    ok = e != nullptr && X509_add_ext(x.get(), e, -1) == 1;
    X509_EXTENSION_free(e);
  }
  ok = ok && X509_sign(x.get(), key, EVP_sha256()) > 0;
  if (!ok)
    throw_error(ErrorCategory::kInternal, "simulated platform: making the certificate failed");
  int n = i2d_X509(x.get(), nullptr);
  if (n <= 0)
    throw_error(ErrorCategory::kInternal, "simulated platform: encoding the certificate failed");
  Bytes der(static_cast<std::size_t>(n));
  unsigned char* p = der.data();
  i2d_X509(x.get(), &p);
  return Certificate::from_der(der, "simulated platform certificate");
}

bool is_p256(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char group[64] = {};
  std::size_t len = 0;
  if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1) return false;
  return std::string_view(group, len) == "prime256v1" || std::string_view(group, len) == "P-256";
}

std::time_t to_time_t(Time t) {
  return std::chrono::system_clock::to_time_t(t);
}

}  // namespace

SimulatedPlatform::SimulatedPlatform(SimulatedPlatform&& o) noexcept
    : key_(o.key_), cert_(std::move(o.cert_)) {
  o.key_ = nullptr;
}
SimulatedPlatform& SimulatedPlatform::operator=(SimulatedPlatform&& o) noexcept {
  if (this != &o) {
    EVP_PKEY_free(key_);
    key_ = o.key_;
    o.key_ = nullptr;
    cert_ = std::move(o.cert_);
  }
  return *this;
}
SimulatedPlatform::~SimulatedPlatform() {
  EVP_PKEY_free(key_);
}

SimulatedPlatform SimulatedPlatform::generate(Time not_before, Time not_after) {
  PkeyPtr key = generate_key();
  Certificate cert = self_signed(key.get(), not_before, not_after);
  return SimulatedPlatform(key.release(), std::move(cert));
}

Certificate SimulatedPlatform::load_certificate(const std::filesystem::path& dir) {
  const auto path = dir / "simulated-platform.pem";
  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) throw_error(ErrorCategory::kIo, "simulated platform: cannot read " + path.string());
  X509Ptr x(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
  if (!x)
    throw_error(ErrorCategory::kBadInput,
                "simulated platform: " + path.string() + " is not a PEM certificate");
  int n = i2d_X509(x.get(), nullptr);
  if (n <= 0)
    throw_error(ErrorCategory::kBadInput,
                "simulated platform: " + path.string() + " does not encode");
  Bytes der(static_cast<std::size_t>(n));
  unsigned char* p = der.data();
  i2d_X509(x.get(), &p);
  try {
    return Certificate::from_der(der, "simulated platform certificate");
  } catch (const Error& e) {
    throw_error(ErrorCategory::kBadInput, e.what());
  }
}

SimulatedPlatform SimulatedPlatform::load_or_create(const std::filesystem::path& dir) {
  const auto cert_path = dir / "simulated-platform.pem";
  const auto key_path = dir / "simulated-platform.key";
  std::error_code ec;
  const bool have_cert = std::filesystem::exists(cert_path, ec);
  const bool have_key = std::filesystem::exists(key_path, ec);
  if (have_cert != have_key)
    throw_error(ErrorCategory::kBadInput, "simulated platform: " + dir.string() +
                                              " holds only one of simulated-platform.pem and "
                                              "simulated-platform.key");
  if (!have_cert) {
    std::filesystem::create_directories(dir, ec);
    if (ec) throw_error(ErrorCategory::kIo, "simulated platform: cannot create " + dir.string());
    const auto now =
        std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
    SimulatedPlatform p =
        generate(now - std::chrono::hours(24), now + std::chrono::hours(24 * 3653));
    // The key first, exclusively created with mode 0600.
    int fd = ::open(key_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
      throw_error(ErrorCategory::kIo, "simulated platform: cannot create " + key_path.string());
    FilePtr kf(::fdopen(fd, "wb"));
    if (!kf) {
      ::close(fd);
      throw_error(ErrorCategory::kIo, "simulated platform: cannot write " + key_path.string());
    }
    if (PEM_write_PrivateKey(kf.get(), p.key_, nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
        std::fflush(kf.get()) != 0)
      throw_error(ErrorCategory::kIo, "simulated platform: cannot write " + key_path.string());
    kf.reset();
    FilePtr cf(std::fopen(cert_path.c_str(), "wb"));
    if (!cf || PEM_write_X509(cf.get(), p.cert_.native()) != 1 || std::fflush(cf.get()) != 0)
      throw_error(ErrorCategory::kIo, "simulated platform: cannot write " + cert_path.string());
    return p;
  }
  Certificate cert = load_certificate(dir);
  FilePtr kf(std::fopen(key_path.c_str(), "rb"));
  if (!kf) throw_error(ErrorCategory::kIo, "simulated platform: cannot read " + key_path.string());
  PkeyPtr key(PEM_read_PrivateKey(kf.get(), nullptr, nullptr, nullptr));
  if (!key)
    throw_error(ErrorCategory::kBadInput,
                "simulated platform: " + key_path.string() + " is not a PEM private key");
  if (!is_p256(key.get()))
    throw_error(ErrorCategory::kBadInput,
                "simulated platform: " + key_path.string() + " is not a P-256 key");
  if (X509_check_private_key(cert.native(), key.get()) != 1)
    throw_error(ErrorCategory::kBadInput, "simulated platform: " + key_path.string() +
                                              " does not match " + cert_path.string());
  return SimulatedPlatform(key.release(), std::move(cert));
}

Bytes SimulatedPlatform::make_evidence(std::span<const std::uint8_t> code,
                                       std::span<const std::uint8_t> model,
                                       const std::array<std::uint8_t, 64>& report_data,
                                       bool debug) const {
  if (code.size() != kMeasurementBytes || model.size() != kMeasurementBytes)
    throw_error(ErrorCategory::kBadInput,
                "simulated platform: measurements must be 48 bytes (SHA-384)");
  if (key_ == nullptr) throw_error(ErrorCategory::kInternal, "simulated platform: moved-from");
  Bytes out = simulated_header();
  out.insert(out.end(), code.begin(), code.end());
  out.insert(out.end(), model.begin(), model.end());
  put_u64(out, debug ? 1 : 0);
  out.insert(out.end(), report_data.begin(), report_data.end());

  // ECDSA P-256 / SHA-256 over header || body, converted to raw r || s.
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::size_t sig_len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len, out.data(), out.size()) != 1)
    throw_error(ErrorCategory::kInternal, "simulated platform: signing failed");
  Bytes der(sig_len);
  if (EVP_DigestSign(ctx.get(), der.data(), &sig_len, out.data(), out.size()) != 1)
    throw_error(ErrorCategory::kInternal, "simulated platform: signing failed");
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig_len));
  if (sig == nullptr)
    throw_error(ErrorCategory::kInternal, "simulated platform: bad signature encoding");
  std::uint8_t raw[kSignatureBytes];
  const bool ok = BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) == 32 &&
                  BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) == 32;
  ECDSA_SIG_free(sig);
  if (!ok) throw_error(ErrorCategory::kInternal, "simulated platform: bad signature size");

  const Bytes cert = cert_.der();
  put_u32(out, static_cast<std::uint32_t>(kSignatureBytes + 4 + cert.size()));
  out.insert(out.end(), raw, raw + kSignatureBytes);
  put_u32(out, static_cast<std::uint32_t>(cert.size()));
  out.insert(out.end(), cert.begin(), cert.end());
  return out;
}

bool looks_like_simulated_evidence(std::span<const std::uint8_t> evidence) noexcept {
  if (evidence.size() < kSimulatedHeaderBytes) return false;
  static const Bytes header = [] {
    try {
      return simulated_header();
    } catch (...) {
      return Bytes{};
    }
  }();
  // Version, key type, TEE type and vendor id (bytes 0..28); not the reserved
  // fields.
  return header.size() == kSimulatedHeaderBytes &&
         std::memcmp(evidence.data(), header.data(), 8) == 0 &&
         std::memcmp(evidence.data() + 12, header.data() + 12, 16) == 0;
}

Claims verify_simulated_evidence(std::span<const std::uint8_t> evidence,
                                 const Certificate& platform_certificate, Time now) {
  const std::uint8_t* d = evidence.data();
  const std::size_t n = evidence.size();
  if (n < kSimulatedHeaderBytes) reject("shorter than its 48-byte header");
  if (get_u16(d) != kQuoteVersion) reject("version is " + std::to_string(get_u16(d)) + ", not 4");
  if (get_u16(d + 2) != kAttestationKeyType) reject("attestation key type is not 2 (ECDSA P-256)");
  if (get_u32(d + 4) != kSimulatedTeeType) reject("TEE type is not 0x53494D00 (simulated)");
  const Bytes header = simulated_header();
  if (std::memcmp(d + 8, header.data() + 8, kSimulatedHeaderBytes - 8) != 0)
    reject(
        "header reserved fields, vendor id or user data differ from the "
        "simulated platform's");
  if (n < kSimulatedSignedBytes) reject("shorter than its header and 168-byte body");
  std::size_t pos = kSimulatedSignedBytes;
  const std::uint64_t attributes = get_u64(d + 144);
  if ((attributes & ~std::uint64_t{1}) != 0) reject("unknown attribute bits set");
  if (n - pos < 4) reject("no signature data length");
  const std::uint32_t sig_data_len = get_u32(d + pos);
  pos += 4;
  if (sig_data_len != n - pos) reject("signature data length does not match the bytes that follow");
  if (n - pos < kSignatureBytes + 4) reject("signature data too short");
  const std::span<const std::uint8_t> raw_sig(d + pos, kSignatureBytes);
  pos += kSignatureBytes;
  const std::uint32_t cert_len = get_u32(d + pos);
  pos += 4;
  if (cert_len == 0 || cert_len > kMaxSimulatedCertificateBytes)
    reject("platform certificate length out of range");
  if (cert_len != n - pos)
    reject("platform certificate length does not match the bytes that follow");
  const std::span<const std::uint8_t> cert_der(d + pos, cert_len);

  // The embedded certificate must be the trusted one, byte for byte.
  const Bytes trusted = platform_certificate.der();
  if (trusted.size() != cert_der.size() ||
      std::memcmp(trusted.data(), cert_der.data(), trusted.size()) != 0)
    reject(
        "signed by another platform key (the embedded certificate is not "
        "the trusted "
        "simulated platform certificate)");
  std::time_t t = to_time_t(now);
  const int before = X509_cmp_time(X509_get0_notBefore(platform_certificate.native()), &t);
  const int after = X509_cmp_time(X509_get0_notAfter(platform_certificate.native()), &t);
  if (before == 0 || after == 0) reject("platform certificate validity does not parse");
  if (before > 0) reject("platform certificate is not yet valid at " + format_time(now));
  if (after < 0) reject("platform certificate has expired at " + format_time(now));
  if (!ecdsa_verify(platform_certificate, Hash::kSha256, evidence.first(kSimulatedSignedBytes),
                    raw_sig))
    reject("signature does not verify with the platform key");

  Claims c;
  c.platform = Platform::kSimulated;
  c.version = kQuoteVersion;
  c.tcb_status = TcbStatus::kUpToDate;
  c.measurements.emplace_back("CODE", Bytes(d + 48, d + 96));
  c.measurements.emplace_back("MODEL", Bytes(d + 96, d + 144));
  std::memcpy(c.report_data.data(), d + 152, 64);
  c.debug = (attributes & 1) != 0;
  c.migration_agent = false;
  c.details.emplace_back("tee", "simulated (no hardware)");
  c.details.emplace_back("platform_key_sha256", to_hex(platform_certificate.fingerprint_sha256()));
  return c;
}

Bytes measure_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_error(ErrorCategory::kIo, "cannot read " + path.string() + " to measure it");
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha384(), nullptr) != 1)
    throw_error(ErrorCategory::kInternal, "SHA-384 init failed");
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize got = in.gcount();
    if (got > 0 && EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(got)) != 1)
      throw_error(ErrorCategory::kInternal, "SHA-384 update failed");
  }
  if (in.bad()) throw_error(ErrorCategory::kIo, "error reading " + path.string());
  Bytes out(48);
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != 48)
    throw_error(ErrorCategory::kInternal, "SHA-384 final failed");
  return out;
}

}  // namespace blindfold::tee
