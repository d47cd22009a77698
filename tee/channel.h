// The attested channel: a client (the data owner) learns, before it releases
// anything, that it talks to an enclave whose evidence a verifier accepted and
// a Policy approved, and that the channel key it agrees on is the one the
// evidence binds. Then requests and responses travel as AEAD records.
//
// Additions to the agreed interface (nothing agreed was changed): the
// SealedChannel constructor (public, for tests and fuzzing), records_sent /
// records_received, the handshake message parsers at the end, the k*
// constants.
//
// Design. One-sided remote attestation bound to an ephemeral Diffie-Hellman
// key, as in RA-TLS (Knauth et al., "Integrating Remote Attestation with
// Transport Layer Security", 2018: the evidence's report data carries a hash
// of the channel key) and in SIGMA-style authenticated key exchange
// (Krawczyk, CRYPTO 2003: the identity proof -- here the evidence -- signs
// the DH share, and MACed/AEAD "finished" messages confirm the key); the key
// schedule follows TLS 1.3 ideas (RFC 8446 s7: HKDF over the DH secret with
// the transcript hash, one traffic key per direction, per-record sequence
// number as nonce, sealed Finished in both directions). All primitives are
// OpenSSL 3 EVP: X25519, HKDF-SHA256, SHA-256, AES-256-GCM.
//
// Handshake (net::Channel tags; integers little-endian):
//   C -> E "tee-hello":    u8 version=2 | nonce[32] | client X25519 key[32]   (65 bytes)
//   E -> C "tee-evidence": u8 version=2 | enclave X25519 key[32] |
//                          u32 evidence_len (1..kMaxEvidenceBytes) | evidence
//        where the evidence's report_data = binding_report_data(enclave key,
//        nonce) = SHA-256(enclave key || nonce) || 32 zero bytes.
//   C: verify(evidence) -> Claims; appraise(policy, claims, expected
//        report_data); on any failure throw -- nothing more is sent.
//   both: shared = X25519(own secret, peer key);
//        th = SHA-256("blindfold tee handshake v1" || u32 len || hello ||
//                     u32 len || evidence message);
//        k_c2s = HKDF-SHA256(salt=th, ikm=shared, info="blindfold tee c2s v1"),
//        k_s2c = HKDF-SHA256(salt=th, ikm=shared, info="blindfold tee s2c v1").
//   C -> E "tee-finished": sealed record 0 (c2s) of "client finished" || th
//   E -> C "tee-finished": sealed record 0 (s2c) of "enclave finished" || th
//        (the enclave checks the client's before it serves anything).
// Record (version 2): the plaintext of P bytes is cut into segments of
//   kSegmentBytes (16 KiB, TLS 1.3's largest record; the last may be shorter,
//   and an empty record is one empty segment), each sealed on its own with
//   AES-256-GCM under key k_dir:
//     nonce_i = u32 big-endian i || u64 big-endian record counter,
//     AAD_i   = "blindfold tee record v2" || direction byte ('C' or 'E') ||
//               u64 BE counter || u64 BE P || u32 BE i || u8 tag length || tag;
//   payload = ct_0 || gcm_tag_0 || ct_1 || gcm_tag_1 || ...
//   This is the STREAM construction of online authenticated encryption
//   (Hoang, Reyhanitabar, Rogaway, Vizar, "Online Authenticated-Encryption
//   and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015) with the record's
//   total length in every segment's AAD in place of STREAM's last-segment
//   flag: segments cannot be dropped, appended, reordered or moved between
//   records. Segments are independent, so large records are sealed and opened
//   on several cores (SealedChannel::set_pool); the receiver derives P from
//   the payload length and refuses lengths no P produces.
//
// Threat model. A malicious host relays (and may alter, drop, delay, replay,
// reorder or inject) every byte between client and enclave. It CANNOT: make a
// client accept evidence the verifier or the Policy rejects; replay old
// evidence (it binds the client's fresh nonce); substitute its own X25519 key
// for the enclave's (report_data binds the enclave key) or for the client's
// (the transcript hashes and keys then differ and Finished fails on both
// sides); read or alter sealed records, or replay/reorder/truncate them
// undetected (the counter is in the nonce and AAD; any failure breaks the
// channel). It CAN: deny service (drop or corrupt bytes -> the session fails
// with an error); see message sizes, tags and timing; connect to the enclave
// itself as a client (the enclave does not authenticate clients). The
// guarantees are only as good as the evidence's root of trust: with the
// SIMULATED platform (tee/simulated.h) the host holds the platform key and
// can forge evidence for any code, so no hardware protects such a run.
// Ephemeral keys give forward secrecy for past sessions; secrets are wiped.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>

#include "core/thread_pool.h"
#include "net/channel.h"
#include "tee/evidence.h"
#include "tee/policy.h"

namespace blindfold::tee {

inline constexpr std::uint8_t kChannelVersion = 2;
/// Largest evidence accepted in "tee-evidence" (checked before allocation).
inline constexpr std::size_t kMaxEvidenceBytes = std::size_t{1} << 20;
inline constexpr std::size_t kX25519KeyBytes = 32;
inline constexpr std::size_t kClientNonceBytes = 32;
/// Plaintext bytes per sealed segment of a record, and the tag each carries.
inline constexpr std::size_t kSegmentBytes = 16384;
inline constexpr std::size_t kSegmentTagBytes = 16;

/// Payload bytes of a sealed record carrying `plaintext_bytes`.
std::size_t sealed_record_bytes(std::size_t plaintext_bytes);

/// Messages under AEAD (AES-256-GCM from OpenSSL EVP) over any net::Channel
/// (which it does not own and which must outlive it): one key per direction,
/// each record a sequence of sealed segments (the record format above), the
/// record counter and segment index in the nonce, the channel tag in the
/// associated data.
/// A replayed, reordered, truncated or altered record is refused with
/// Error(kBadMessage) and the channel is broken afterwards (every later
/// send/recv throws). Thread safety: as net::Channel (one sender, one receiver).
class SealedChannel {
 public:
  /// `client_side` picks the direction bytes: a client sends 'C' records and
  /// receives 'E' records, an enclave the reverse. The keys are copied and
  /// wiped on destruction. (Built by attest_client/attest_enclave; public for
  /// tests and fuzzing.)
  SealedChannel(net::Channel& ch, bool client_side, const std::array<std::uint8_t, 32>& send_key,
                const std::array<std::uint8_t, 32>& recv_key);
  SealedChannel(const SealedChannel&) = delete;
  SealedChannel& operator=(const SealedChannel&) = delete;

  /// @throws Error(kBadMessage) when the channel is broken or the counter is
  /// exhausted; whatever net::Channel::send throws.
  void send(std::string_view tag, std::span<const std::uint8_t> plaintext);
  /// send() of the concatenation of `parts`, sealed from where they lie
  /// (no plaintext copy is made).
  void send_parts(std::string_view tag, std::span<const std::span<const std::uint8_t>> parts);
  /// @throws Error(kBadMessage) when the record does not authenticate (altered,
  /// replayed, reordered, truncated, another tag); whatever net::Channel::recv
  /// throws (kPeerFailure on transport).
  Bytes recv(std::string_view tag);
  /// recv() into `plaintext`, whose capacity is reused across calls. On any
  /// error it is wiped and emptied.
  void recv_into(std::string_view tag, Bytes& plaintext);
  /// Seal and open the segments of large records on `pool` too (nullptr, the
  /// default: on the calling thread only). Not owned; must outlive its use.
  void set_pool(ThreadPool* pool) { pool_ = pool; }
  net::Channel& transport() { return ch_; }  // for byte/round counters
  std::uint64_t records_sent() const { return send_counter_; }
  std::uint64_t records_received() const { return recv_counter_; }
  ~SealedChannel();  // wipes the keys

 private:
  net::Channel& ch_;
  bool client_side_;
  std::array<std::uint8_t, 32> send_key_;
  std::array<std::uint8_t, 32> recv_key_;
  std::uint64_t send_counter_ = 0;
  std::uint64_t recv_counter_ = 0;
  ThreadPool* pool_ = nullptr;
  Bytes tx_, rx_;                    // sealed payloads (ciphertext only), reused across records
  std::atomic<bool> broken_{false};  // set by either the sending or the receiving thread
};

/// What the client learned while attesting.
struct AttestedSession {
  std::unique_ptr<SealedChannel> channel;
  Claims claims;
  Appraisal appraisal;               // accepted (otherwise attest_client threw)
  double handshake_ms = 0;           // attested session set-up, reported separately from inference
  std::int64_t handshake_bytes = 0;  // sent + received on the transport, framing included
};

/// Verifies evidence bytes (e.g. a lambda over verify_simulated_evidence or
/// tee/verify.h's verify_evidence). Throws to reject.
using EvidenceVerifier = std::function<Claims(std::span<const std::uint8_t> evidence)>;
/// Makes evidence that binds `report_data` (the enclave side; e.g. a lambda
/// over SimulatedPlatform::make_evidence).
using EvidenceProducer = std::function<Bytes(const std::array<std::uint8_t, 64>& report_data)>;

/// Client side of the handshake: sends a fresh 32-byte nonce and an ephemeral
/// X25519 key; receives the enclave's X25519 key and evidence; verifies the
/// evidence, appraises the claims with `policy` and the expected report_data
/// binding_report_data(enclave_key, nonce) (tee/policy.h); only then derives
/// the keys (X25519 + HKDF-SHA256 over the transcript) and confirms. Nothing of
/// the client's (no prompt, no key) is sent before acceptance.
/// @throws Error(kBadMessage) naming the rejected check or the policy
/// failures; Error(kPeerFailure) on transport.
AttestedSession attest_client(net::Channel& ch, const EvidenceVerifier& verify,
                              const Policy& policy);

/// Enclave side: answers one client's handshake with a fresh X25519 key and
/// evidence from `produce`; returns once the client's Finished checked out.
/// @throws Error(kBadMessage) on a malformed hello or a bad client Finished;
/// Error(kPeerFailure) on transport.
std::unique_ptr<SealedChannel> attest_enclave(net::Channel& ch, const EvidenceProducer& produce);

// ---- Handshake message parsers (exposed for tests and fuzzing) ----

struct ClientHello {
  std::array<std::uint8_t, kClientNonceBytes> nonce{};
  std::array<std::uint8_t, kX25519KeyBytes> key{};
};
/// @throws Error(kBadMessage) for a wrong version or length.
ClientHello parse_client_hello(std::span<const std::uint8_t> msg);
Bytes serialize_client_hello(const ClientHello& h);

struct EnclaveEvidence {
  std::array<std::uint8_t, kX25519KeyBytes> key{};
  Bytes evidence;
};
/// @throws Error(kBadMessage) for a wrong version, a length out of range or
/// trailing bytes.
EnclaveEvidence parse_enclave_evidence(std::span<const std::uint8_t> msg);
Bytes serialize_enclave_evidence(const EnclaveEvidence& e);

}  // namespace blindfold::tee
