#include "net/certs.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "core/error.h"
#include "net/tls.h"

namespace blindfold::net {

namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;

constexpr const char* kCaName = "Blindfold test CA";
constexpr long kValidSeconds = 365L * 24 * 3600;
constexpr long kBackdateSeconds = 5L * 60;

[[noreturn]] void openssl_fail(const std::string& what) {
  const std::string why = drain_openssl_errors();
  throw Error(ErrorCategory::kInternal, what + (why.empty() ? "" : ": " + why));
}

KeyPtr make_key() {
  KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) openssl_fail("cannot generate an ECDSA P-256 key");
  return key;
}

// A positive, non-zero 128-bit serial (RFC 5280 4.1.2.2: at most 20 octets).
void set_random_serial(X509* cert) {
  unsigned char bytes[16];
  do {
    if (RAND_bytes(bytes, sizeof bytes) != 1) openssl_fail("RAND_bytes");
    bytes[0] &= 0x7f;
  } while (std::all_of(bytes, bytes + sizeof bytes, [](unsigned char b) { return b == 0; }));
  BnPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) {
    openssl_fail("cannot set the certificate serial number");
  }
}

void add_name_entry(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                 0) != 1) {
    openssl_fail(std::string("cannot set the certificate name field ") + field);
  }
}

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    openssl_fail(std::string("cannot add certificate extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
}

// A certificate for `subject_key`, signed by `issuer_key`; `issuer` is null
// for the self-signed CA.
CertPtr make_cert(EVP_PKEY* subject_key, const std::string& common_name, X509* issuer,
                  EVP_PKEY* issuer_key, bool is_ca) {
  CertPtr cert(X509_new());
  if (!cert) openssl_fail("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) openssl_fail("X509_set_version");
  set_random_serial(cert.get());
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), kValidSeconds)) {
    openssl_fail("cannot set the certificate validity");
  }
  if (X509_set_pubkey(cert.get(), subject_key) != 1) openssl_fail("X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  add_name_entry(name, "O", "Blindfold test PKI");
  add_name_entry(name, "CN", common_name);
  if (X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name) != 1) {
    openssl_fail("X509_set_issuer_name");
  }

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  if (X509V3_set_issuer_pkey(&ctx, issuer_key) != 1) openssl_fail("X509V3_set_issuer_pkey");
  if (is_ca) {
    add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_extension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
    add_extension(cert.get(), &ctx, NID_subject_alt_name, "DNS:" + common_name);
  }
  add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) openssl_fail("X509_sign");
  return cert;
}

// Writes `bytes` to `path` through a descriptor opened with `mode`, and sets
// the mode again in case the file existed with a looser one.
void write_file(const std::filesystem::path& path, const char* data, std::size_t size,
                mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    throw Error(ErrorCategory::kIo,
                "cannot write '" + path.string() + "': " + std::strerror(errno));
  }
  auto fail = [&](const char* what) {
    const int err = errno;
    (void)::close(fd);
    throw Error(ErrorCategory::kIo,
                std::string(what) + " '" + path.string() + "': " + std::strerror(err));
  };
  if (::fchmod(fd, mode) != 0) fail("cannot set the mode of");
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail("cannot sync");
  if (::close(fd) != 0) {
    throw Error(ErrorCategory::kIo,
                "cannot close '" + path.string() + "': " + std::strerror(errno));
  }
}

// PEM-encodes through a memory BIO, writes the file, and wipes the buffer
// (it holds a private key for write_key).
template <typename Encode>
void write_pem(const std::filesystem::path& path, mode_t mode, Encode encode) {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio) openssl_fail("BIO_new");
  if (encode(bio.get()) != 1) openssl_fail("cannot PEM-encode " + path.filename().string());
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || !data) openssl_fail("empty PEM output");
  try {
    write_file(path, data, static_cast<std::size_t>(len), mode);
  } catch (...) {
    OPENSSL_cleanse(data, static_cast<std::size_t>(len));
    throw;
  }
  OPENSSL_cleanse(data, static_cast<std::size_t>(len));
}

void write_key(const std::filesystem::path& path, EVP_PKEY* key) {
  write_pem(path, 0600, [&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

void write_cert(const std::filesystem::path& path, X509* cert) {
  write_pem(path, 0644, [&](BIO* b) { return PEM_write_bio_X509(b, cert); });
}

}  // namespace

bool is_valid_party_name(const std::string& name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

void make_test_pki(const std::filesystem::path& dir, const std::vector<std::string>& party_names) {
  if (party_names.empty()) throw Error(ErrorCategory::kBadInput, "no party names given");
  std::set<std::string> seen;
  for (const auto& n : party_names) {
    if (!is_valid_party_name(n)) {
      throw Error(ErrorCategory::kBadInput,
                  "invalid party name '" + n.substr(0, 80) +
                      "': use 1 to 63 characters of a-z, 0-9 and '-', not starting or ending "
                      "with '-'");
    }
    if (n == "ca") throw Error(ErrorCategory::kBadInput, "'ca' is reserved for the CA's files");
    if (!seen.insert(n).second) {
      throw Error(ErrorCategory::kBadInput, "party name '" + n + "' given twice");
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    throw Error(ErrorCategory::kIo,
                "cannot create directory '" + dir.string() + "'" + (ec ? ": " + ec.message() : ""));
  }
  ERR_clear_error();
  KeyPtr ca_key = make_key();
  CertPtr ca = make_cert(ca_key.get(), kCaName, nullptr, ca_key.get(), /*is_ca=*/true);
  write_key(dir / "ca.key", ca_key.get());
  write_cert(dir / "ca.pem", ca.get());
  for (const auto& n : party_names) {
    KeyPtr key = make_key();
    CertPtr cert = make_cert(key.get(), n, ca.get(), ca_key.get(), /*is_ca=*/false);
    write_key(dir / (n + ".key"), key.get());
    write_cert(dir / (n + ".pem"), cert.get());
  }
}

}  // namespace blindfold::net
