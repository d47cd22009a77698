// TLS 1.3 transport (OpenSSL 3): mutual authentication against one given CA,
// the peer's certificate checked for an expected DNS name, and a Channel over
// the encrypted stream with the same buffering and deadlines as TcpChannel.
//
// What is enforced, and why:
//  - TLS 1.3 only: no downgrade, no renegotiation, forward secrecy always.
//  - Both sides present certificates (the server requires one from the
//    client: SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT).
//  - Chains are verified against ca_file only; the system trust store is
//    never loaded, so a certificate from a public CA is not a party.
//  - Names are checked against the subjectAltName DNS entries only (never
//    the subject CN), without partial wildcards.
//  - No session tickets or resumption: every connection authenticates anew.
//  - OpenSSL security level 3 (128-bit keys or stronger).
//
// Note on TLS 1.3: a client finishes its handshake before the server has
// checked the client's certificate. A client whose certificate is refused
// learns it on its first recv() ("TLS alert from the peer: ..."); the mesh
// (net/mesh.h) waits for the acceptor's hello reply for exactly this reason.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "net/channel.h"
#include "net/tcp.h"

// OpenSSL types, without including OpenSSL headers in ours.
struct ssl_ctx_st;
struct ssl_st;

namespace blindfold::net {

struct TlsSocketState;  // the socket as OpenSSL's BIO sees it (tls.cc)

struct TlsConfig {
  std::string ca_file;    // PEM: the only trust anchor(s)
  std::string cert_file;  // PEM: this party's certificate (chain)
  std::string key_file;   // PEM: its private key (unencrypted)
  /// DNS name the peer's certificate must carry in its subjectAltName. A
  /// client must set it. A server may leave it empty and accept any
  /// certificate issued by the CA, and must then call
  /// TlsChannel::check_peer_name() before trusting the peer's identity (the
  /// mesh does this after the peer says which party it is).
  std::string expected_peer_name;
};

enum class TlsRole { kClient, kServer };

/// A loaded TLS configuration (OpenSSL SSL_CTX): CA, certificate and key are
/// read once and shared by every connection made with it. Immutable after
/// construction; safe to share between threads.
class TlsContext {
 public:
  /// @throws Error(kBadInput) naming the file when the CA, certificate or key
  /// cannot be loaded or the key does not match the certificate.
  explicit TlsContext(const TlsConfig& config);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  const TlsConfig& config() const { return config_; }
  ssl_ctx_st* native() const { return ctx_; }

 private:
  TlsConfig config_;
  ssl_ctx_st* ctx_ = nullptr;
};

/// A Channel over TLS 1.3 on a connected TCP socket: StreamChannel's
/// sending thread, buffering and timeouts (net/tcp.h), with a handshake that
/// enforces the policy above.
///
/// Thread safety as for Channel: one sender and one receiver thread at a
/// time. OpenSSL calls are serialised by an internal mutex that is never
/// held while waiting on the socket, so a blocked recv() does not block the
/// sending thread.
class TlsChannel : public StreamChannel {
 public:
  /// Runs the handshake as `role` on `socket`, finishing before `deadline`.
  /// `peer_label` names the peer in errors ("party 1"); `expected_peer_name`
  /// overrides the context's (empty: use the context's).
  /// @throws Error(kPeerFailure) "TLS handshake with <peer_label> failed:
  /// <OpenSSL reason>" (e.g. "certificate verify failed (unable to get local
  /// issuer certificate)"), also on timeout; Error(kBadInput) for a client
  /// without an expected peer name.
  TlsChannel(const TlsContext& context, Socket socket, TlsRole role, Clock::time_point deadline,
             std::string peer_label = "peer", std::string expected_peer_name = "");
  /// Convenience: loads `config` for this one connection.
  TlsChannel(const TlsConfig& config, Socket socket, TlsRole role, Clock::time_point deadline,
             std::string peer_label = "peer");
  ~TlsChannel() override;

  /// True when the verified peer certificate carries `dns_name` in its
  /// subjectAltName (whole name, case-insensitive as DNS; subject CN ignored).
  bool peer_has_name(std::string_view dns_name) const;
  /// The DNS names of the peer certificate's subjectAltName, comma-separated
  /// and made printable (for error messages).
  std::string peer_names() const;
  /// Throws Error(kPeerFailure) unless peer_has_name(dns_name).
  void check_peer_name(std::string_view dns_name) const;

  /// Negotiated protocol and cipher suite, e.g. "TLSv1.3", "TLS_AES_256_GCM_SHA384".
  std::string protocol() const;
  std::string cipher() const;

 protected:
  IoResult stream_write(std::span<const std::span<const std::uint8_t>> parts) override;
  IoResult stream_read(std::span<std::uint8_t> out) override;
  void stream_close() override;

 private:
  void handshake(TlsRole role, Clock::time_point deadline, const std::string& expected_name);
  // Error text for a failed SSL call with SSL_get_error() result `code`,
  // draining OpenSSL's error queue. Call with mu_ held.
  std::string failure_text(int code) const;
  // The IoResult of a failed SSL_read/SSL_write. mu_ held.
  IoResult io_failure(int ret);

  static constexpr std::size_t kRecordBytes = 16 * 1024;  // TLS plaintext record
  std::unique_ptr<TlsSocketState> bio_state_;
  ssl_st* ssl_ = nullptr;
  mutable std::mutex mu_;  // serialises OpenSSL calls on ssl_
  std::string label_;
  std::vector<std::uint8_t> stage_;  // small parts gathered into one record (writer thread)
  bool fatal_ = false;               // an SSL_ERROR_SSL/SYSCALL happened: no close_notify (mu_)
};

/// Pops OpenSSL's (thread-local) error queue into one line of reasons,
/// e.g. "certificate verify failed; ...". Never includes key material.
std::string drain_openssl_errors();

}  // namespace blindfold::net
