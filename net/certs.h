// A throw-away public-key infrastructure for tests, benchmarks and
// single-operator deployments: one self-signed test CA and one certificate
// per party, made with OpenSSL's EVP/X509 APIs.
//
// The CA's private key is written next to the certificates, so whoever can
// read the directory can mint a certificate for any party name: this is a
// *test* CA ("Blindfold test CA" in its subject). Parties run by different
// organisations must each get their certificate from a CA that all of them
// trust, with the CA key kept offline.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace blindfold::net {

/// True for a valid party name: 1..63 characters of [a-z0-9-], not starting
/// or ending with '-' (one DNS label, so it can be a subjectAltName).
bool is_valid_party_name(const std::string& name);

/// Writes into `dir` (created if missing): ca.pem, ca.key, and NAME.pem /
/// NAME.key for every party name.
///
/// Keys are ECDSA P-256. The CA certificate is self-signed, X.509 v3,
/// basicConstraints critical CA:TRUE pathlen:0, keyUsage keyCertSign+cRLSign.
/// Each party certificate has subject CN=NAME, subjectAltName DNS:NAME,
/// basicConstraints critical CA:FALSE, keyUsage critical digitalSignature,
/// extendedKeyUsage serverAuth+clientAuth, subject and authority key
/// identifiers. Validity: from 5 minutes ago (clock skew) for 365 days.
/// Serial numbers: 128 random bits from RAND_bytes. Signatures: ECDSA with
/// SHA-256. Key files are created with mode 0600 (and set to 0600 when they
/// already exist); existing files are overwritten.
///
/// @throws Error(kBadInput) for an invalid, duplicate or reserved ("ca")
/// party name or an empty list; Error(kIo) when a file cannot be written;
/// Error(kInternal) when OpenSSL fails.
void make_test_pki(const std::filesystem::path& dir, const std::vector<std::string>& party_names);

}  // namespace blindfold::net
