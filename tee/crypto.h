// The OpenSSL operations every verifier needs, in one place: certificate
// parsing, chain verification at a given time with CRLs, and signature
// checks over raw (r||s) ECDSA signatures as quotes carry them. No crypto of
// our own: everything is OpenSSL 3 (X509_verify_cert, EVP_DigestVerify).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tee/evidence.h"

struct x509_st;
struct X509_crl_st;

namespace blindfold::tee {

/// An owned X.509 certificate (OpenSSL X509, reference counted).
class Certificate {
 public:
  /// @throws Error(kBadMessage) "attestation: <what> is not a DER certificate".
  static Certificate from_der(std::span<const std::uint8_t> der, std::string_view what);
  /// Every certificate in a PEM text, in order. @throws Error(kBadMessage)
  /// when the text holds none or a block does not parse.
  static std::vector<Certificate> chain_from_pem(std::string_view pem, std::string_view what);

  Certificate(const Certificate& o);
  Certificate& operator=(const Certificate& o);
  Certificate(Certificate&&) noexcept;
  Certificate& operator=(Certificate&&) noexcept;
  ~Certificate();

  x509_st* native() const { return x_; }
  Bytes der() const;
  /// SHA-256 of the DER encoding (for pinning roots).
  Bytes fingerprint_sha256() const;
  /// The subject as one line ("CN=Intel SGX Root CA, O=Intel Corporation, ...").
  std::string subject() const;
  /// The DER contents (OCTET STRING value) of the extension with this
  /// dotted OID, or empty when absent.
  Bytes extension(std::string_view oid) const;

 private:
  explicit Certificate(x509_st* x) : x_(x) {}
  x509_st* x_ = nullptr;
};

/// An owned CRL.
class Crl {
 public:
  /// Accepts DER, or PEM ("-----BEGIN X509 CRL-----").
  /// @throws Error(kBadMessage) "attestation: <what> is not a CRL".
  static Crl parse(std::span<const std::uint8_t> bytes, std::string_view what);
  Crl(Crl&&) noexcept;
  Crl& operator=(Crl&&) noexcept;
  Crl(const Crl&) = delete;
  Crl& operator=(const Crl&) = delete;
  ~Crl();
  X509_crl_st* native() const { return c_; }

 private:
  explicit Crl(X509_crl_st* c) : c_(c) {}
  X509_crl_st* c_ = nullptr;
};

/// Verifies `leaf` up to `root` through `intermediates` at time `now`
/// (X509_V_FLAG_USE_CHECK_TIME; the wall clock is never read), with every
/// CRL in `crls` checked for every certificate it covers (X509_V_FLAG_CRL_CHECK
/// | X509_V_FLAG_CRL_CHECK_ALL when crls is non-empty; a certificate whose
/// issuer has no CRL in the list is then rejected). `root` is the only
/// trust anchor; the system store is never loaded.
/// @throws Error(kBadMessage) "attestation: <what> chain: <OpenSSL reason>".
void verify_chain(const Certificate& leaf, std::span<const Certificate> intermediates,
                  const Certificate& root, std::span<const Crl> crls, Time now,
                  std::string_view what);

/// Raw ECDSA signature r||s (big-endian, each half n bytes: 32 for P-256,
/// 48 for P-384) to DER, as EVP_DigestVerify wants it.
/// @throws Error(kBadMessage) for an odd or empty length.
Bytes ecdsa_raw_to_der(std::span<const std::uint8_t> raw);

enum class Hash { kSha256, kSha384 };

/// Verifies an ECDSA signature (raw r||s, big-endian) over `message` with
/// the public key of `cert`. False when it does not verify.
bool ecdsa_verify(const Certificate& cert, Hash hash, std::span<const std::uint8_t> message,
                  std::span<const std::uint8_t> raw_signature);
/// Verifies with a raw uncompressed P-256 public key x||y (64 bytes), as DCAP
/// quotes carry the attestation key. False when it does not verify or the
/// key is not a point on the curve.
bool ecdsa_p256_verify_raw_key(std::span<const std::uint8_t> key_xy,
                               std::span<const std::uint8_t> message,
                               std::span<const std::uint8_t> raw_signature);

Bytes sha256(std::span<const std::uint8_t> data);
Bytes sha384(std::span<const std::uint8_t> data);

}  // namespace blindfold::tee
