#include "tee/crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "core/error.h"

namespace blindfold::tee {

namespace {

[[noreturn]] void reject(std::string_view what, std::string_view why) {
  throw_error(ErrorCategory::kBadMessage,
              "attestation: " + std::string(what) + " " + std::string(why));
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

BioPtr memory_bio(std::span<const std::uint8_t> data) {
  if (data.size() > (1u << 30)) return BioPtr(nullptr);
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

}  // namespace

Certificate Certificate::from_der(std::span<const std::uint8_t> der, std::string_view what) {
  const unsigned char* p = der.data();
  if (der.empty() || der.size() > (1u << 24)) reject(what, "is not a DER certificate (length)");
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (x == nullptr) reject(what, "is not a DER certificate");
  if (p != der.data() + der.size()) {
    X509_free(x);
    reject(what, "has bytes after the DER certificate");
  }
  return Certificate(x);
}

std::vector<Certificate> Certificate::chain_from_pem(std::string_view pem, std::string_view what) {
  std::vector<Certificate> out;
  std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(pem.data()),
                                      pem.size());
  BioPtr bio = memory_bio(bytes);
  if (!bio) reject(what, "is too long");
  std::size_t blocks = 0;
  for (std::size_t pos = pem.find("-----BEGIN CERTIFICATE-----"); pos != std::string_view::npos;
       pos = pem.find("-----BEGIN CERTIFICATE-----", pos + 1))
    ++blocks;
  for (std::size_t i = 0; i < blocks; ++i) {
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (x == nullptr) reject(what, "holds a PEM certificate that does not parse");
    out.push_back(Certificate(x));
  }
  if (out.empty()) reject(what, "holds no PEM certificate");
  return out;
}

Certificate::Certificate(const Certificate& o) : x_(o.x_) {
  if (x_) X509_up_ref(x_);
}
Certificate& Certificate::operator=(const Certificate& o) {
  if (this != &o) {
    if (o.x_) X509_up_ref(o.x_);
    if (x_) X509_free(x_);
    x_ = o.x_;
  }
  return *this;
}
Certificate::Certificate(Certificate&& o) noexcept : x_(o.x_) {
  o.x_ = nullptr;
}
Certificate& Certificate::operator=(Certificate&& o) noexcept {
  if (this != &o) {
    if (x_) X509_free(x_);
    x_ = o.x_;
    o.x_ = nullptr;
  }
  return *this;
}
Certificate::~Certificate() {
  if (x_) X509_free(x_);
}

Bytes Certificate::der() const {
  unsigned char* buf = nullptr;
  int n = i2d_X509(x_, &buf);
  if (n <= 0) throw_error(ErrorCategory::kInternal, "i2d_X509 failed");
  Bytes out(buf, buf + n);
  OPENSSL_free(buf);
  return out;
}

Bytes Certificate::fingerprint_sha256() const {
  return sha256(der());
}

std::string Certificate::subject() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(x_), 0,
                     XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

Bytes Certificate::extension(std::string_view oid) const {
  ASN1_OBJECT* obj = OBJ_txt2obj(std::string(oid).c_str(), 1);
  if (obj == nullptr) return {};
  int idx = X509_get_ext_by_OBJ(x_, obj, -1);
  ASN1_OBJECT_free(obj);
  if (idx < 0) return {};
  X509_EXTENSION* ext = X509_get_ext(x_, idx);
  ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
  const unsigned char* p = ASN1_STRING_get0_data(data);
  return Bytes(p, p + ASN1_STRING_length(data));
}

Crl Crl::parse(std::span<const std::uint8_t> bytes, std::string_view what) {
  if (bytes.empty() || bytes.size() > (1u << 26)) reject(what, "is not a CRL (length)");
  static constexpr std::string_view kPem = "-----BEGIN X509 CRL-----";
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  X509_CRL* c = nullptr;
  if (text.find(kPem) != std::string_view::npos) {
    BioPtr bio = memory_bio(bytes);
    c = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
  } else {
    const unsigned char* p = bytes.data();
    c = d2i_X509_CRL(nullptr, &p, static_cast<long>(bytes.size()));
    if (c != nullptr && p != bytes.data() + bytes.size()) {
      X509_CRL_free(c);
      reject(what, "has bytes after the DER CRL");
    }
  }
  if (c == nullptr) reject(what, "is not a CRL");
  return Crl(c);
}
Crl::Crl(Crl&& o) noexcept : c_(o.c_) {
  o.c_ = nullptr;
}
Crl& Crl::operator=(Crl&& o) noexcept {
  if (this != &o) {
    if (c_) X509_CRL_free(c_);
    c_ = o.c_;
    o.c_ = nullptr;
  }
  return *this;
}
Crl::~Crl() {
  if (c_) X509_CRL_free(c_);
}

void verify_chain(const Certificate& leaf, std::span<const Certificate> intermediates,
                  const Certificate& root, std::span<const Crl> crls, Time now,
                  std::string_view what) {
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      X509_STORE_CTX_free);
  std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> untrusted(
      sk_X509_new_null(), [](STACK_OF(X509) * s) { sk_X509_free(s); });
  std::unique_ptr<STACK_OF(X509_CRL), void (*)(STACK_OF(X509_CRL)*)> crl_stack(
      sk_X509_CRL_new_null(), [](STACK_OF(X509_CRL) * s) { sk_X509_CRL_free(s); });
  if (!store || !ctx || !untrusted || !crl_stack)
    throw_error(ErrorCategory::kInternal, "OpenSSL allocation failed");
  if (X509_STORE_add_cert(store.get(), root.native()) != 1)
    throw_error(ErrorCategory::kInternal, "X509_STORE_add_cert failed");
  for (const auto& c : intermediates) sk_X509_push(untrusted.get(), c.native());
  for (const auto& c : crls) sk_X509_CRL_push(crl_stack.get(), c.native());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.native(), untrusted.get()) != 1)
    throw_error(ErrorCategory::kInternal, "X509_STORE_CTX_init failed");
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  // Not X509_V_FLAG_X509_STRICT: AMD's VCEK has no authority key identifier.
  unsigned long flags = X509_V_FLAG_USE_CHECK_TIME;
  if (!crls.empty()) {
    flags |= X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;
    X509_STORE_CTX_set0_crls(ctx.get(), crl_stack.get());
  }
  X509_VERIFY_PARAM_set_flags(param, flags);
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(now.time_since_epoch().count()));
  // No partial chains: the chain must end at `root`, which is the only anchor.
  int ok = X509_verify_cert(ctx.get());
  if (ok != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    reject(what, "chain: " + std::string(X509_verify_cert_error_string(err)) + " (at depth " +
                     std::to_string(depth) + ")");
  }
}

Bytes ecdsa_raw_to_der(std::span<const std::uint8_t> raw) {
  if (raw.empty() || raw.size() % 2 != 0 || raw.size() > 132)
    throw_error(ErrorCategory::kBadMessage,
                "attestation: raw ECDSA signature has length " + std::to_string(raw.size()));
  std::size_t half = raw.size() / 2;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(raw.data(), static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(raw.data() + half, static_cast<int>(half), nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig, r, s) != 1) {
    ECDSA_SIG_free(sig);
    BN_free(r);
    BN_free(s);
    throw_error(ErrorCategory::kInternal, "ECDSA_SIG allocation failed");
  }
  unsigned char* buf = nullptr;
  int n = i2d_ECDSA_SIG(sig, &buf);
  ECDSA_SIG_free(sig);
  if (n <= 0) throw_error(ErrorCategory::kInternal, "i2d_ECDSA_SIG failed");
  Bytes out(buf, buf + n);
  OPENSSL_free(buf);
  return out;
}

namespace {

bool verify_with_key(EVP_PKEY* key, Hash hash, std::span<const std::uint8_t> message,
                     std::span<const std::uint8_t> raw_signature) {
  if (key == nullptr || raw_signature.empty() || raw_signature.size() % 2 != 0 ||
      raw_signature.size() > 132)
    return false;
  Bytes der = ecdsa_raw_to_der(raw_signature);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  const EVP_MD* type = hash == Hash::kSha256 ? EVP_sha256() : EVP_sha384();
  if (!md || EVP_DigestVerifyInit(md.get(), nullptr, type, nullptr, key) != 1) return false;
  int rc = EVP_DigestVerify(md.get(), der.data(), der.size(), message.data(), message.size());
  ERR_clear_error();
  return rc == 1;
}

}  // namespace

bool ecdsa_verify(const Certificate& cert, Hash hash, std::span<const std::uint8_t> message,
                  std::span<const std::uint8_t> raw_signature) {
  EVP_PKEY* key = X509_get0_pubkey(cert.native());
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  return verify_with_key(key, hash, message, raw_signature);
}

bool ecdsa_p256_verify_raw_key(std::span<const std::uint8_t> key_xy,
                               std::span<const std::uint8_t> message,
                               std::span<const std::uint8_t> raw_signature) {
  if (key_xy.size() != 64) return false;
  std::uint8_t point[65];
  point[0] = 0x04;
  std::memcpy(point + 1, key_xy.data(), 64);
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(),
                                                                      OSSL_PARAM_BLD_free);
  if (!bld) return false;
  OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld.get());
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> pctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* key = nullptr;
  bool built = pctx && params && EVP_PKEY_fromdata_init(pctx.get()) == 1 &&
               EVP_PKEY_fromdata(pctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  OSSL_PARAM_free(params);
  ERR_clear_error();
  if (!built || key == nullptr) {
    EVP_PKEY_free(key);
    return false;
  }
  // EVP_PKEY_fromdata does not check that the point is on the curve.
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> check(EVP_PKEY_CTX_new(key, nullptr),
                                                                    EVP_PKEY_CTX_free);
  bool on_curve = check && EVP_PKEY_public_check(check.get()) == 1;
  ERR_clear_error();
  bool ok = on_curve && verify_with_key(key, Hash::kSha256, message, raw_signature);
  EVP_PKEY_free(key);
  return ok;
}

Bytes sha256(std::span<const std::uint8_t> data) {
  Bytes out(32);
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &n, EVP_sha256(), nullptr) != 1)
    throw_error(ErrorCategory::kInternal, "SHA-256 failed");
  return out;
}

Bytes sha384(std::span<const std::uint8_t> data) {
  Bytes out(48);
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &n, EVP_sha384(), nullptr) != 1)
    throw_error(ErrorCategory::kInternal, "SHA-384 failed");
  return out;
}

}  // namespace blindfold::tee
