// TLS 1.3 transport and the test PKI: who is refused and why. Every refusal
// is a kPeerFailure that names the peer and OpenSSL's reason. The byte-level
// behaviour (big messages, timeouts, killed peers) is in tcp_test.cc's
// conformance suite, which runs over TLS too.
#include "net/tls.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include "core/error.h"
#include "net/certs.h"
#include "net/tcp.h"
#include "net/test_util.h"

using namespace blindfold;
using namespace blindfold::net;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using testing_util::contains;
using testing_util::error_of;

// Two independent test PKIs with the same party names.
class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = new fs::path(fs::temp_directory_path() / ("bf_tls_test_" + std::to_string(getpid())));
    make_test_pki(*base_ / "a", {"client", "server", "helper"});
    make_test_pki(*base_ / "b", {"client", "server", "helper"});
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*base_, ec);
    delete base_;
    base_ = nullptr;
  }
  // me's certificate from PKI `pki`, trusting PKI `ca`'s CA.
  static TlsConfig config(const std::string& me, const std::string& peer,
                          const std::string& pki = "a", const std::string& ca = "a") {
    return {(*base_ / ca / "ca.pem").string(), (*base_ / pki / (me + ".pem")).string(),
            (*base_ / pki / (me + ".key")).string(), peer};
  }
  static fs::path path(const std::string& rel) { return *base_ / rel; }

  struct Outcome {
    std::unique_ptr<TlsChannel> client, server;
    std::optional<Error> client_error, server_error;
  };

  // Runs both handshakes on loopback, each on its own thread.
  static Outcome handshake(const TlsConfig& client_cfg, const TlsConfig& server_cfg,
                           std::chrono::milliseconds limit = 3s) {
    TcpListener l("127.0.0.1", 0);
    Outcome o;
    std::thread t([&] {
      try {
        o.server = std::make_unique<TlsChannel>(server_cfg, l.accept(Clock::now() + limit),
                                                TlsRole::kServer, Clock::now() + limit, "party 0");
      } catch (const Error& e) {
        o.server_error = e;
      }
    });
    try {
      o.client = std::make_unique<TlsChannel>(
          client_cfg, tcp_connect("127.0.0.1", l.port(), Clock::now() + limit), TlsRole::kClient,
          Clock::now() + limit, "party 1");
    } catch (const Error& e) {
      o.client_error = e;
    }
    t.join();
    return o;
  }

  static fs::path* base_;
};

fs::path* Tls::base_ = nullptr;

}  // namespace

TEST_F(Tls, MutualAuthenticationOverTls13) {
  Outcome o = handshake(config("client", "server"), config("server", "client"));
  ASSERT_FALSE(o.client_error) << o.client_error->what();
  ASSERT_FALSE(o.server_error) << o.server_error->what();
  EXPECT_EQ(o.client->protocol(), "TLSv1.3");
  EXPECT_EQ(o.server->protocol(), "TLSv1.3");
  EXPECT_FALSE(o.client->cipher().empty());
  EXPECT_EQ(o.client->peer_names(), "server");
  EXPECT_EQ(o.server->peer_names(), "client");
  EXPECT_TRUE(o.server->peer_has_name("client"));
  EXPECT_FALSE(o.server->peer_has_name("server"));
  EXPECT_FALSE(o.server->peer_has_name("clien"));  // whole names only
  EXPECT_FALSE(o.server->peer_has_name("client.example"));
  EXPECT_NO_THROW(o.server->check_peer_name("client"));
  const Error e = error_of([&] { o.server->check_peer_name("helper"); });
  EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(e.what(), "certificate of party 0 is for 'client', not 'helper'"))
      << e.what();
  o.client->send("hi", "there");
  EXPECT_EQ(o.server->recv("hi").size(), 5u);
}

TEST_F(Tls, ServerFromAnotherCaIsRefusedByTheClient) {
  Outcome o = handshake(config("client", "server"), config("server", "client", "b", "b"));
  ASSERT_TRUE(o.client_error);
  EXPECT_EQ(o.client_error->category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(o.client_error->what(),
                       "TLS handshake with party 1 failed: "
                       "certificate verify failed (unable to get local "
                       "issuer certificate)"))
      << o.client_error->what();
  ASSERT_TRUE(o.server_error);  // it sees the client's alert
  EXPECT_EQ(o.server_error->category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(o.server_error->what(), "TLS handshake with party 0 failed"))
      << o.server_error->what();
}

TEST_F(Tls, ClientFromAnotherCaIsRefusedByTheServer) {
  Outcome o = handshake(config("client", "server", "b", "a"), config("server", "client"));
  ASSERT_TRUE(o.server_error);
  EXPECT_EQ(o.server_error->category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(o.server_error->what(),
                       "TLS handshake with party 0 failed: "
                       "certificate verify failed"))
      << o.server_error->what();
  // Under TLS 1.3 the client's handshake ends before the server has judged
  // its certificate; the refusal reaches it on its first read.
  if (!o.client_error) {
    o.client->set_timeout(2s);
    const Error e = error_of([&] { o.client->recv("anything"); });
    EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
    EXPECT_TRUE(contains(e.what(), "alert")) << e.what();
  }
}

TEST_F(Tls, ServerWithTheWrongPartyNameIsRefused) {
  // A genuine certificate of the same CA, but for "helper", not "server".
  Outcome o = handshake(config("client", "server"), config("helper", "client"));
  ASSERT_TRUE(o.client_error);
  EXPECT_EQ(o.client_error->category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(o.client_error->what(), "certificate verify failed (hostname mismatch)"))
      << o.client_error->what();
}

TEST_F(Tls, ClientWithTheWrongPartyNameIsRefusedWhenTheServerNamesIt) {
  Outcome o = handshake(config("helper", "server"), config("server", "client"));
  ASSERT_TRUE(o.server_error);
  EXPECT_TRUE(contains(o.server_error->what(), "hostname mismatch")) << o.server_error->what();
}

TEST_F(Tls, AClientMustNameItsPeer) {
  Outcome o = handshake(config("client", ""), config("server", "client"), 500ms);
  ASSERT_TRUE(o.client_error);
  EXPECT_EQ(o.client_error->category(), ErrorCategory::kBadInput);
}

namespace {

// A client made with OpenSSL directly, to do what TlsChannel refuses to:
// present no certificate, or speak TLS 1.2.
std::string raw_openssl_client(std::uint16_t port, const std::string& ca, int max_version,
                               bool* handshake_ok) {
  // OpenSSL's socket BIO writes with write(2): keep a SIGPIPE from a
  // vanished server pending on this thread, then discard it.
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  Socket s = tcp_connect("127.0.0.1", port, Clock::now() + 2s);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_max_proto_version(ctx, max_version);
  SSL_CTX_load_verify_file(ctx, ca.c_str());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, s.fd());
  // The socket is non-blocking: drive the handshake with poll.
  int r = 0;
  for (int i = 0; i < 200; ++i) {
    r = SSL_connect(ssl);
    if (r == 1) break;
    const int code = SSL_get_error(ssl, r);
    if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE) break;
    wait_fd(s.fd(), code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, Clock::now() + 100ms);
  }
  *handshake_ok = r == 1;
  if (r == 1) {
    // TLS 1.3: the server's verdict on our (missing) certificate comes now.
    char c;
    for (int i = 0; i < 200; ++i) {
      r = SSL_read(ssl, &c, 1);
      const int code = SSL_get_error(ssl, r);
      if (code != SSL_ERROR_WANT_READ) break;
      wait_fd(s.fd(), POLLIN, Clock::now() + 100ms);
    }
  }
  const std::string err = drain_openssl_errors();
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  const timespec zero{0, 0};
  while (sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  return err;
}

}  // namespace

TEST_F(Tls, ClientWithoutACertificateIsRefused) {
  TcpListener l("127.0.0.1", 0);
  std::optional<Error> server_error;
  std::thread t([&] {
    try {
      TlsChannel s(config("server", ""), l.accept(Clock::now() + 3s), TlsRole::kServer,
                   Clock::now() + 3s, "party 1");
    } catch (const Error& e) {
      server_error = e;
    }
  });
  bool ok = false;
  const std::string client_err =
      raw_openssl_client(l.port(), path("a/ca.pem").string(), TLS1_3_VERSION, &ok);
  t.join();
  ASSERT_TRUE(server_error);
  EXPECT_EQ(server_error->category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(server_error->what(),
                       "TLS handshake with party 1 failed: peer did not return a certificate"))
      << server_error->what();
  EXPECT_TRUE(contains(client_err, "certificate required")) << client_err;
}

TEST_F(Tls, Tls12IsRefused) {
  TcpListener l("127.0.0.1", 0);
  std::optional<Error> server_error;
  std::thread t([&] {
    try {
      TlsChannel s(config("server", ""), l.accept(Clock::now() + 3s), TlsRole::kServer,
                   Clock::now() + 3s, "party 1");
    } catch (const Error& e) {
      server_error = e;
    }
  });
  bool ok = true;
  raw_openssl_client(l.port(), path("a/ca.pem").string(), TLS1_2_VERSION, &ok);
  t.join();
  EXPECT_FALSE(ok);
  ASSERT_TRUE(server_error);
  EXPECT_TRUE(contains(server_error->what(), "unsupported protocol")) << server_error->what();
}

TEST_F(Tls, PlaintextPeerFailsTheHandshake) {
  TcpListener l("127.0.0.1", 0);
  std::optional<Error> server_error;
  std::thread t([&] {
    try {
      TlsChannel s(config("server", ""), l.accept(Clock::now() + 3s), TlsRole::kServer,
                   Clock::now() + 3s, "party 1");
    } catch (const Error& e) {
      server_error = e;
    }
  });
  {
    TcpChannel c(tcp_connect("127.0.0.1", l.port(), Clock::now() + 2s));
    c.send("hello", std::string(200, 'x'));
    std::this_thread::sleep_for(100ms);
  }
  t.join();
  ASSERT_TRUE(server_error);
  EXPECT_EQ(server_error->category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(server_error->what(), "TLS handshake with party 1 failed"))
      << server_error->what();
}

TEST_F(Tls, SilentPeerTimesOutTheHandshake) {
  TcpListener l("127.0.0.1", 0);
  Socket c = tcp_connect("127.0.0.1", l.port(), Clock::now() + 2s);  // says nothing
  const auto t0 = Clock::now();
  const Error e = error_of([&] {
    TlsChannel s(config("server", ""), l.accept(Clock::now() + 2s), TlsRole::kServer,
                 Clock::now() + 300ms, "party 1");
  });
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(e.category(), ErrorCategory::kPeerFailure);
  EXPECT_TRUE(contains(e.what(), "TLS handshake with party 1 failed: timed out after")) << e.what();
  EXPECT_LT(secs, 1.3);
}

TEST_F(Tls, BadFilesAreBadInput) {
  TlsConfig c = config("client", "server");
  c.ca_file = path("a/nope.pem").string();
  Error e = error_of([&] { TlsContext ctx(c); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
  EXPECT_TRUE(contains(e.what(), "nope.pem' does not exist")) << e.what();

  c = config("client", "server");
  c.key_file = path("a/server.key").string();  // a key that is not the certificate's
  e = error_of([&] { TlsContext ctx(c); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
  EXPECT_TRUE(contains(e.what(), "key values mismatch")) << e.what();

  c = config("client", "server");
  c.cert_file = path("a/client.key").string();  // not a certificate at all
  e = error_of([&] { TlsContext ctx(c); });
  EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
  EXPECT_TRUE(contains(e.what(), "cannot load TLS certificate")) << e.what();
}

TEST_F(Tls, BatchingHoldsMessagesUntilFlush) {
  Outcome o = handshake(config("client", "server"), config("server", "client"));
  ASSERT_FALSE(o.client_error || o.server_error);
  o.client->set_batching(true);
  for (int i = 0; i < 100; ++i) o.client->send("m", "small");
  pollfd p{o.server->native_handle(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 100), 0);  // nothing on the wire yet
  o.client->flush();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(o.server->recv("m").size(), 5u);
}

// ---- the test PKI -----------------------------------------------------------------

namespace {

X509* load_cert(const fs::path& p) {
  FILE* f = fopen(p.c_str(), "r");
  if (!f) return nullptr;
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  return x;
}

}  // namespace

TEST_F(Tls, TestPkiCertificatesHaveTheDocumentedShape) {
  X509* ca = load_cert(path("a/ca.pem"));
  X509* leaf = load_cert(path("a/server.pem"));
  ASSERT_TRUE(ca && leaf);
  // The CA says it is a test CA.
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "Blindfold test CA");
  EXPECT_EQ(X509_check_ca(ca), 1);
  EXPECT_EQ(X509_check_ca(leaf), 0);
  EXPECT_EQ(X509_get_version(leaf), X509_VERSION_3);
  EXPECT_EQ(X509_check_host(leaf, "server", 6, 0, nullptr), 1);
  EXPECT_EQ(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0), 1);
  EXPECT_EQ(X509_check_purpose(leaf, X509_PURPOSE_SSL_CLIENT, 0), 1);
  EXPECT_TRUE(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE);
  EXPECT_FALSE(X509_get_key_usage(leaf) & KU_KEY_CERT_SIGN);
  // 128-bit random serial, ~1 year of validity.
  const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf);
  EXPECT_GE(ASN1_STRING_length(serial), 14);
  EXPECT_LE(ASN1_STRING_length(serial), 16);
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), 1);
  EXPECT_EQ(days, 365);
  // Chain verification with the strict flags the transport uses.
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* vctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(vctx, store, leaf, nullptr);
  X509_STORE_CTX_set_flags(vctx, X509_V_FLAG_X509_STRICT);
  EXPECT_EQ(X509_verify_cert(vctx), 1)
      << X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx));
  X509_STORE_CTX_free(vctx);
  X509_STORE_free(store);
  X509_free(ca);
  X509_free(leaf);
}

TEST_F(Tls, TestPkiKeyFilesArePrivate) {
  for (const char* f : {"a/ca.key", "a/client.key", "a/server.key"}) {
    struct stat st {};
    ASSERT_EQ(stat(path(f).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
  struct stat st {};
  ASSERT_EQ(stat(path("a/ca.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_F(Tls, TestPkiRefusesBadNames) {
  for (const std::vector<std::string>& names :
       std::vector<std::vector<std::string>>{{},
                                             {"Client"},
                                             {"a b"},
                                             {"-x"},
                                             {"x", "x"},
                                             {"ca"},
                                             {std::string(64, 'a')},
                                             {"../etc"}}) {
    const Error e = error_of([&] { make_test_pki(path("bad"), names); });
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput) << (names.empty() ? "" : names[0]);
  }
  EXPECT_FALSE(fs::exists(path("bad")));
}
