// The SIMULATED TEE platform: attestation evidence in the shape of an Intel
// DCAP quote v4, signed by a locally generated ECDSA P-256 key (the
// "simulated platform key") that stands in for the hardware root of trust.
// NO HARDWARE PROTECTS ANYTHING THAT RUNS ON IT: whoever controls the machine
// (and so the key file) can forge evidence for any code and model. It exists so
// that the attested-channel protocol, the policy and the CLI can be exercised
// end to end on a machine without a TEE; a client accepts it only when its
// Policy sets trust_simulated_platform (the CLI's --trust-simulated-platform),
// and every name says "simulated".
//
// Additions to the agreed interface (nothing agreed was changed):
// SimulatedPlatform::generate (in memory, for tests), load_certificate (the
// client's side: the .pem only), the kSimulated* constants. Creating the files
// is not atomic across processes: create them once (the client or the
// launcher) before enclaves start.
//
// Evidence format (all integers little-endian, as in DCAP quotes). Offsets in
// bytes; total = 48 + 168 + 4 + 64 + 4 + cert_len.
//   Header (48 bytes, the DCAP quote v4 header layout):
//     0   u16  version                 = 4
//     2   u16  attestation key type    = 2 (ECDSA-256-with-P-256)
//     4   u32  TEE type                = 0x53494D00 ("SIM"; SGX is 0, TDX 0x81)
//     8   u16  reserved (QE SVN)       = 0
//     10  u16  reserved (PCE SVN)      = 0
//     12  16   vendor id               = "BLINDFOLD-SIM" then 3 zero bytes
//     28  20   user data               = zero
//   Body (168 bytes):
//     48  48   CODE  (SHA-384 of the enclave binary)
//     96  48   MODEL (SHA-384 of the model file)
//     144 u64  attributes: bit 0 DEBUG; every other bit must be zero
//     152 64   report_data
//   Signature data:
//     216 u32  signature data length   = 64 + 4 + cert_len (must match exactly)
//     220 64   ECDSA P-256 / SHA-256 signature over bytes [0, 216) (header ||
//              body), raw r || s, 32 bytes each, big-endian
//     284 u32  cert_len (1 .. kMaxSimulatedCertificateBytes)
//     288 ...  the platform certificate, DER (must equal the trusted platform
//              certificate byte for byte; no chain is built)
//   Nothing may follow the certificate.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>

#include "tee/crypto.h"
#include "tee/evidence.h"

struct evp_pkey_st;

namespace blindfold::tee {

inline constexpr std::uint32_t kSimulatedTeeType = 0x53494D00;
inline constexpr std::size_t kSimulatedHeaderBytes = 48;
inline constexpr std::size_t kSimulatedBodyBytes = 168;
inline constexpr std::size_t kSimulatedSignedBytes = kSimulatedHeaderBytes + kSimulatedBodyBytes;
inline constexpr std::size_t kMaxSimulatedCertificateBytes = 16 * 1024;
inline constexpr std::size_t kMeasurementBytes = 48;  // SHA-384

/// The SIMULATED platform: a locally generated ECDSA P-256 key (the "simulated
/// platform key") stands in for the hardware root of trust. No hardware
/// protects anything that runs on it; every name says so.
class SimulatedPlatform {
 public:
  /// Loads DIR/simulated-platform.pem and DIR/simulated-platform.key, creating
  /// both (key file mode 0600) when missing. The certificate is self-signed,
  /// subject "CN=Blindfold SIMULATED TEE platform (no hardware)", valid from
  /// one day before its creation for 10 years.
  /// @throws Error(kIo) when the directory or files cannot be read or written;
  /// Error(kBadInput) when they do not parse or do not match.
  static SimulatedPlatform load_or_create(const std::filesystem::path& dir);
  /// A fresh platform in memory only (tests), its certificate valid in
  /// [not_before, not_after].
  static SimulatedPlatform generate(Time not_before, Time not_after);
  /// DIR/simulated-platform.pem only (what a client is given).
  /// @throws Error(kIo) when missing, Error(kBadInput) when it does not parse.
  static Certificate load_certificate(const std::filesystem::path& dir);

  /// Evidence in the shape of a DCAP quote v4 (header, body, signature data),
  /// TEE type "simulated", for an enclave whose code and model measure `code`
  /// and `model` (SHA-384, 48 bytes each), binding `report_data`.
  /// @throws Error(kBadInput) when a measurement is not 48 bytes.
  Bytes make_evidence(std::span<const std::uint8_t> code, std::span<const std::uint8_t> model,
                      const std::array<std::uint8_t, 64>& report_data, bool debug) const;
  const Certificate& certificate() const { return cert_; }

  SimulatedPlatform(SimulatedPlatform&& o) noexcept;
  SimulatedPlatform& operator=(SimulatedPlatform&& o) noexcept;
  SimulatedPlatform(const SimulatedPlatform&) = delete;
  SimulatedPlatform& operator=(const SimulatedPlatform&) = delete;
  /// Frees the private key (EVP_PKEY_free); it is never printed.
  ~SimulatedPlatform();

 private:
  SimulatedPlatform(evp_pkey_st* key, Certificate cert) : key_(key), cert_(std::move(cert)) {}
  evp_pkey_st* key_ = nullptr;
  Certificate cert_;
};

/// True when `evidence` starts with the simulated header (version 4, key type
/// 2, TEE type 0x53494D00, vendor "BLINDFOLD-SIM"). Says nothing about validity.
bool looks_like_simulated_evidence(std::span<const std::uint8_t> evidence) noexcept;

/// Verifies evidence against the platform certificate the client was given.
/// Claims: platform kSimulated, version 4, tcb_status kUpToDate, measurements
/// "CODE" and "MODEL", report_data, debug; details "tee" -> "simulated (no
/// hardware)", "platform_key_sha256" -> certificate fingerprint.
/// @throws Error(kBadMessage, "attestation: ...") naming the failed check.
Claims verify_simulated_evidence(std::span<const std::uint8_t> evidence,
                                 const Certificate& platform_certificate, Time now);

/// SHA-384 of a file's bytes (the enclave measures its own binary and the
/// model file with it). @throws Error(kIo) when it cannot be read.
Bytes measure_file(const std::filesystem::path& path);

}  // namespace blindfold::tee
