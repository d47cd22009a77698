#include "net/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace blindfold::net {

// What the BIO callbacks need: the descriptor, and what the last socket call
// said (OpenSSL may clobber errno before we ask SSL_get_error).
struct TlsSocketState {
  int fd = -1;
  int last_errno = 0;
  bool eof = false;
};

namespace {

constexpr unsigned kHostFlags =
    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;

// ---- a BIO over our socket -------------------------------------------------
// OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE when
// the peer is gone; ours sends with MSG_NOSIGNAL and leaves signal
// dispositions (process-global state) alone.

TlsSocketState* state_of(BIO* b) {
  return static_cast<TlsSocketState*>(BIO_get_data(b));
}

int bio_write_ex(BIO* b, const char* data, size_t len, size_t* written) {
  BIO_clear_retry_flags(b);
  TlsSocketState* st = state_of(b);
  const ssize_t n = send_some(st->fd, {reinterpret_cast<const std::uint8_t*>(data), len});
  if (n >= 0) {
    *written = static_cast<size_t>(n);
    return 1;
  }
  st->last_errno = errno;
  if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
  return 0;
}

int bio_read_ex(BIO* b, char* data, size_t len, size_t* read) {
  BIO_clear_retry_flags(b);
  TlsSocketState* st = state_of(b);
  const ssize_t n = recv_some(st->fd, {reinterpret_cast<std::uint8_t*>(data), len});
  if (n > 0) {
    *read = static_cast<size_t>(n);
    return 1;
  }
  if (n == 0) {
    st->eof = true;
    return 0;
  }
  st->last_errno = errno;
  if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(b);
  return 0;
}

long bio_ctrl(BIO* b, int cmd, long /*num*/, void* /*ptr*/) {
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;  // unbuffered
    case BIO_CTRL_EOF: return state_of(b)->eof ? 1 : 0;
    default: return 0;
  }
}

int bio_create(BIO* b) {
  BIO_set_init(b, 0);
  BIO_set_data(b, nullptr);
  return 1;
}

int bio_destroy(BIO* /*b*/) {
  return 1;
}  // the state belongs to TlsChannel

const BIO_METHOD* socket_bio_method() {
  // Built once and never changed afterwards; OpenSSL needs it to outlive
  // every BIO made from it.
  static BIO_METHOD* const method = [] {
    const int index = BIO_get_new_index();
    if (index == -1) return static_cast<BIO_METHOD*>(nullptr);
    BIO_METHOD* m = BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, "blindfold socket");
    if (!m) return m;
    if (BIO_meth_set_write_ex(m, bio_write_ex) != 1 || BIO_meth_set_read_ex(m, bio_read_ex) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1 ||
        BIO_meth_set_destroy(m, bio_destroy) != 1) {
      BIO_meth_free(m);
      return static_cast<BIO_METHOD*>(nullptr);
    }
    return m;
  }();
  if (!method) throw Error(ErrorCategory::kInternal, "cannot create the OpenSSL socket BIO");
  return method;
}

// Refuses to prompt on the terminal for an encrypted key's pass phrase.
int no_password(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) {
  return 0;
}

// Peer-controlled text (certificate names) made safe for one log line.
std::string printable(std::string_view s, std::size_t max = 128) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > max) out += "...";
  return out;
}

std::string ms_string(std::chrono::milliseconds t) {
  return std::to_string(t.count()) + " ms";
}

}  // namespace

std::string drain_openssl_errors() {
  std::string out;
  int kept = 0;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    if (kept == 4) continue;  // drain the rest silently
    const char* reason = ERR_reason_error_string(e);
    std::string text;
    if (reason) {
      text = reason;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      text = buf;
    }
    if (out.find(text) != std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += text;
    ++kept;
  }
  return out;
}

// ---- TlsContext ------------------------------------------------------------

TlsContext::TlsContext(const TlsConfig& config) : config_(config) {
  ERR_clear_error();
  auto fail = [&](const std::string& what) {
    const std::string why = drain_openssl_errors();
    if (ctx_) SSL_CTX_free(ctx_);
    ctx_ = nullptr;
    throw Error(ErrorCategory::kBadInput, what + (why.empty() ? "" : ": " + why));
  };
  for (const auto& [file, what] :
       {std::pair{config.ca_file, "CA certificate"}, std::pair{config.cert_file, "certificate"},
        std::pair{config.key_file, "private key"}}) {
    std::error_code ec;
    if (file.empty()) throw Error(ErrorCategory::kBadInput, std::string("TLS needs a ") + what);
    if (!std::filesystem::is_regular_file(file, ec)) {
      throw Error(ErrorCategory::kBadInput,
                  std::string("TLS ") + what + " file '" + file + "' does not exist");
    }
  }
  ctx_ = SSL_CTX_new(TLS_method());
  if (!ctx_) fail("cannot create a TLS context");
  if (SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx_, TLS1_3_VERSION) != 1) {
    fail("cannot restrict TLS to version 1.3");
  }
  SSL_CTX_set_security_level(ctx_, 3);
  SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (SSL_CTX_set_num_tickets(ctx_, 0) != 1) fail("cannot disable TLS session tickets");
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
  // No auto-chaining: the peer has the CA; send only what cert_file holds.
  SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                             SSL_MODE_NO_AUTO_CHAIN);
  SSL_CTX_set_read_ahead(ctx_, 1);
  SSL_CTX_set_default_read_buffer_len(ctx_, 64 * 1024);
  SSL_CTX_set_default_passwd_cb(ctx_, no_password);
  // The given CA only: SSL_CTX_set_default_verify_paths is never called.
  if (SSL_CTX_load_verify_file(ctx_, config.ca_file.c_str()) != 1) {
    fail("cannot load TLS CA certificate '" + config.ca_file + "'");
  }
  if (SSL_CTX_use_certificate_chain_file(ctx_, config.cert_file.c_str()) != 1) {
    fail("cannot load TLS certificate '" + config.cert_file + "'");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx_, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail("cannot load TLS private key '" + config.key_file + "'");
  }
  if (SSL_CTX_check_private_key(ctx_) != 1) {
    fail("TLS private key '" + config.key_file + "' does not match certificate '" +
         config.cert_file + "'");
  }
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify_depth(ctx_, 4);
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx_);
  if (!param || X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT) != 1) {
    fail("cannot set TLS verification flags");
  }
  X509_VERIFY_PARAM_set_hostflags(param, kHostFlags);
}

TlsContext::~TlsContext() {
  if (ctx_) SSL_CTX_free(ctx_);
}

// ---- TlsChannel ------------------------------------------------------------

TlsChannel::TlsChannel(const TlsConfig& config, Socket socket, TlsRole role,
                       Clock::time_point deadline, std::string peer_label)
    : TlsChannel(TlsContext(config), std::move(socket), role, deadline, std::move(peer_label),
                 config.expected_peer_name) {}

TlsChannel::TlsChannel(const TlsContext& context, Socket socket, TlsRole role,
                       Clock::time_point deadline, std::string peer_label,
                       std::string expected_peer_name)
    : StreamChannel(std::move(socket)),
      bio_state_(std::make_unique<TlsSocketState>()),
      label_(std::move(peer_label)) {
  set_peer_name(label_);
  if (expected_peer_name.empty()) expected_peer_name = context.config().expected_peer_name;
  if (role == TlsRole::kClient && expected_peer_name.empty()) {
    throw Error(ErrorCategory::kBadInput,
                "a TLS client must name the peer it expects (TlsConfig::expected_peer_name)");
  }
  ERR_clear_error();
  ssl_ = SSL_new(context.native());
  if (!ssl_) {
    throw Error(ErrorCategory::kInternal, "SSL_new failed: " + drain_openssl_errors());
  }
  BIO* bio = BIO_new(socket_bio_method());
  if (!bio) {
    SSL_free(ssl_);
    ssl_ = nullptr;
    throw Error(ErrorCategory::kInternal, "BIO_new failed: " + drain_openssl_errors());
  }
  bio_state_->fd = sock_.fd();
  BIO_set_data(bio, bio_state_.get());
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);  // ssl_ owns the one reference
  try {
    handshake(role, deadline, expected_peer_name);
  } catch (...) {
    SSL_free(ssl_);
    ssl_ = nullptr;
    throw;
  }
  start_writer();
}

TlsChannel::~TlsChannel() {
  close_transport();  // stops the sending thread, which uses ssl_
  if (ssl_) SSL_free(ssl_);
}

std::string TlsChannel::failure_text(int code) const {
  switch (code) {
    case SSL_ERROR_ZERO_RETURN: return "peer closed the connection";
    case SSL_ERROR_SYSCALL: {
      const std::string queued = drain_openssl_errors();
      const int err = bio_state_->last_errno;
      if (bio_state_->eof || err == 0) return "peer closed the connection";
      if (is_disconnect_errno(err)) {
        return std::string("peer closed the connection (") + std::strerror(err) + ")";
      }
      return std::string("socket error: ") + std::strerror(err) +
             (queued.empty() ? "" : " (" + queued + ")");
    }
    case SSL_ERROR_SSL: {
      const unsigned long first = ERR_peek_error();
      if (ERR_GET_LIB(first) == ERR_LIB_SSL &&
          ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        drain_openssl_errors();
        return "peer closed the connection (no TLS close_notify)";
      }
      std::string text = drain_openssl_errors();
      const long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK) {
        text += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
      }
      return text.empty() ? "TLS protocol error" : text;
    }
    default: return "TLS error " + std::to_string(code) + ": " + drain_openssl_errors();
  }
}

void TlsChannel::handshake(TlsRole role, Clock::time_point deadline,
                           const std::string& expected_name) {
  const std::string what = "TLS handshake with " + label_ + " failed: ";
  if (!expected_name.empty()) {
    SSL_set_hostflags(ssl_, kHostFlags);
    if (SSL_set1_host(ssl_, expected_name.c_str()) != 1) {
      throw Error(ErrorCategory::kInternal, "SSL_set1_host: " + drain_openssl_errors());
    }
  }
  if (role == TlsRole::kClient) {
    SSL_set_connect_state(ssl_);
  } else {
    SSL_set_accept_state(ssl_);
  }
  const auto start = Clock::now();
  for (;;) {
    int code = SSL_ERROR_NONE;
    std::string text;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ERR_clear_error();
      const int r = SSL_do_handshake(ssl_);
      if (r == 1) break;
      code = SSL_get_error(ssl_, r);
      if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE) {
        fatal_ = true;
        text = failure_text(code);
      }
    }
    if (!text.empty()) throw Error(ErrorCategory::kPeerFailure, what + text);
    if (!wait_fd(sock_.fd(), code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
      throw Error(ErrorCategory::kPeerFailure,
                  what + "timed out after " +
                      ms_string(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                                                      start)));
    }
  }
  // Belt and braces: the context allows nothing else, but a wrong build or
  // configuration must not silently weaken the channel.
  std::lock_guard<std::mutex> lock(mu_);
  if (SSL_version(ssl_) != TLS1_3_VERSION) {
    throw Error(ErrorCategory::kPeerFailure,
                what + "negotiated " + std::string(SSL_get_version(ssl_)) + ", not TLS 1.3");
  }
  if (!SSL_get0_peer_certificate(ssl_)) {
    throw Error(ErrorCategory::kPeerFailure, what + "the peer presented no certificate");
  }
  const long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) {
    throw Error(ErrorCategory::kPeerFailure, what + X509_verify_cert_error_string(verify));
  }
}

bool TlsChannel::peer_has_name(std::string_view dns_name) const {
  if (dns_name.empty()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert || SSL_get_verify_result(ssl_) != X509_V_OK) return false;
  const int r = X509_check_host(cert, dns_name.data(), dns_name.size(), kHostFlags, nullptr);
  ERR_clear_error();
  return r == 1;
}

std::string TlsChannel::peer_names() const {
  std::lock_guard<std::mutex> lock(mu_);
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert) return "";
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  ERR_clear_error();
  if (!names) return "";
  std::string out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && i < 8; ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type != GEN_DNS) continue;
    const ASN1_STRING* s = g->d.dNSName;
    if (!out.empty()) out += ",";
    out += printable({reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      static_cast<std::size_t>(std::max(0, ASN1_STRING_length(s)))});
  }
  GENERAL_NAMES_free(names);
  return out;
}

void TlsChannel::check_peer_name(std::string_view dns_name) const {
  if (peer_has_name(dns_name)) return;
  const std::string names = peer_names();
  throw Error(ErrorCategory::kPeerFailure,
              "the certificate of " + label_ + " is for " +
                  (names.empty() ? std::string("no DNS name") : "'" + names + "'") + ", not '" +
                  printable(dns_name) + "'");
}

std::string TlsChannel::protocol() const {
  std::lock_guard<std::mutex> lock(mu_);
  return SSL_get_version(ssl_);
}

std::string TlsChannel::cipher() const {
  std::lock_guard<std::mutex> lock(mu_);
  const char* c = SSL_get_cipher_name(ssl_);
  return c ? c : "";
}

StreamChannel::IoResult TlsChannel::io_failure(int ret) {
  IoResult r;
  const int code = SSL_get_error(ssl_, ret);
  if (code == SSL_ERROR_WANT_READ) {
    r.wait = POLLIN;
  } else if (code == SSL_ERROR_WANT_WRITE) {
    r.wait = POLLOUT;
  } else if (code == SSL_ERROR_ZERO_RETURN) {
    r.eof = true;  // close_notify: an orderly end
  } else {
    fatal_ = true;
    r.error = failure_text(code);
  }
  return r;
}

StreamChannel::IoResult TlsChannel::stream_write(
    std::span<const std::span<const std::uint8_t>> parts) {
  // Small parts are gathered into one record instead of one record each. A
  // retry after WANT_WRITE gathers the same bytes again, as OpenSSL requires
  // (and SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows the buffer to move).
  std::span<const std::uint8_t> data = parts[0];
  if (parts.size() > 1 && data.size() < kRecordBytes) {
    stage_.clear();
    for (const auto& p : parts) {
      const std::size_t room = kRecordBytes * 4 - stage_.size();
      stage_.insert(stage_.end(), p.begin(),
                    p.begin() + static_cast<std::ptrdiff_t>(std::min(room, p.size())));
      if (stage_.size() == kRecordBytes * 4) break;
    }
    data = stage_;
  }
  std::lock_guard<std::mutex> lock(mu_);
  ERR_clear_error();
  std::size_t n = 0;
  const int ret = SSL_write_ex(ssl_, data.data(), data.size(), &n);
  if (ret == 1) {
    IoResult r;
    r.n = n;
    return r;
  }
  return io_failure(ret);
}

StreamChannel::IoResult TlsChannel::stream_read(std::span<std::uint8_t> out) {
  std::lock_guard<std::mutex> lock(mu_);
  ERR_clear_error();
  std::size_t n = 0;
  const int ret = SSL_read_ex(ssl_, out.data(), out.size(), &n);
  if (ret == 1) {
    IoResult r;
    r.n = n;
    return r;
  }
  return io_failure(ret);
}

void TlsChannel::stream_close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fatal_ || !ssl_) return;
  // Sends close_notify so the peer can tell an orderly end from a cut
  // connection. Non-blocking: we do not wait for the peer's reply.
  ERR_clear_error();
  (void)SSL_shutdown(ssl_);
  ERR_clear_error();
}

}  // namespace blindfold::net
