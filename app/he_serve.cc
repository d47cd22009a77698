#include "app/he_serve.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "backends/he/he_backend.h"
#include "core/error.h"
#include "core/npy.h"
#include "model/onnx_import.h"
#include "net/mesh.h"
#include "net/tcp.h"
#include "net/tls.h"

namespace blindfold::app {

namespace {

using Clock = std::chrono::steady_clock;
namespace heplan = backends::heplan;

// "host:port" or "[v6]:port" -> host, port. Port 0 allowed when `allow_zero`.
std::pair<std::string, std::uint16_t> parse_host_port(const std::string& s, const char* flag,
                                                      bool allow_zero) {
  std::string host, port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      throw_error(ErrorCategory::kBadInput,
                  std::string(flag) + " must be HOST:PORT or [V6]:PORT, is '" + s + "'");
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon) {
      throw_error(ErrorCategory::kBadInput,
                  std::string(flag) + " must be HOST:PORT or [V6]:PORT, is '" + s + "'");
    }
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  long p = -1;
  try {
    std::size_t used = 0;
    p = std::stol(port, &used);
    if (used != port.size()) p = -1;
  } catch (const std::exception&) {
    p = -1;
  }
  if (p < (allow_zero ? 0 : 1) || p > 65535 || host.empty()) {
    throw_error(ErrorCategory::kBadInput, std::string(flag) + ": bad host or port in '" + s + "'");
  }
  return {host, static_cast<std::uint16_t>(p)};
}

// The TLS configuration of one side (tls_context) or, under
// --insecure-transport, none.
std::unique_ptr<net::TlsContext> tls_context(const HeTransportOptions& t, const char* default_name,
                                             const std::string& expected_peer) {
  if (t.insecure_transport) {
    if (!t.pki.empty() || !t.ca.empty() || !t.cert.empty() || !t.key.empty()) {
      throw_error(ErrorCategory::kBadInput,
                  "--insecure-transport takes no --pki, --ca, --cert or --key");
    }
    return nullptr;
  }
  namespace fs = std::filesystem;
  net::TlsConfig c;
  const fs::path dir = t.pki;
  c.ca_file = !t.ca.empty() ? t.ca : t.pki.empty() ? "" : (dir / "ca.pem").string();
  const std::string name = t.name.empty() ? default_name : t.name;
  c.cert_file = !t.cert.empty() ? t.cert : t.pki.empty() ? "" : (dir / (name + ".pem")).string();
  c.key_file = !t.key.empty() ? t.key : t.pki.empty() ? "" : (dir / (name + ".key")).string();
  if (c.ca_file.empty() || c.cert_file.empty() || c.key_file.empty()) {
    throw_error(
        ErrorCategory::kBadInput,
        "TLS needs a CA, a certificate and its key: --pki DIR (from `blindfold certs --out DIR "
        "--parties server,client`) or --ca/--cert/--key; plain TCP needs --insecure-transport");
  }
  c.expected_peer_name = expected_peer;
  return std::make_unique<net::TlsContext>(c);
}

void warn_if_not_loopback(const HeTransportOptions& t, const std::string& host) {
  if (t.insecure_transport && !net::is_loopback_host(host)) {
    std::fprintf(
        stderr,
        "blindfold: warning: plain TCP to or from %s: anyone on the path reads and alters the "
        "messages (the ciphertexts stay encrypted, but the session is not authenticated)\n",
        host.c_str());
  }
}

std::string one_line(ErrorCategory c, const std::string& what) {
  std::string s = std::string(category_name(c)) + ": " + what;
  for (char& ch : s) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return s;
}

double round3(double x) {
  return std::round(x * 1000) / 1000;
}

// Labels as the CLI's evaluation computes them: arg max over the last axis;
// one output: >= 0.5 after a sigmoid, >= 0 otherwise.
std::vector<std::int64_t> labels_of(const Tensor& y, heplan::Finish finish) {
  const std::int64_t n = y.rank() > 0 ? y.dim(0) : 1;
  const std::int64_t k = n ? y.numel() / n : 1;
  std::vector<std::int64_t> labels;
  const auto d = y.f32();
  for (std::int64_t r = 0; r < n; ++r) {
    const float* row = d.data() + r * k;
    if (k == 1) {
      labels.push_back(row[0] >= (finish == heplan::Finish::kSigmoid ? 0.5f : 0.0f) ? 1 : 0);
    } else {
      labels.push_back(std::max_element(row, row + k) - row);
    }
  }
  return labels;
}

}  // namespace

int run_he_serve(const HeServeOptions& o) {
  if (o.backend != "he") {
    throw_error(ErrorCategory::kBadInput,
                "serve: --backend must be he (mpc2/mpc3 run with `blindfold party`)");
  }
  if (o.model.empty()) throw_error(ErrorCategory::kBadInput, "serve: --model is required");
  if (o.sessions < 0)
    throw_error(ErrorCategory::kBadInput, "--sessions must be 0 (forever) or more");
  if (o.concurrent < 1 || o.concurrent > 256) {
    throw_error(ErrorCategory::kBadInput, "--concurrent must be 1 to 256");
  }
  if (o.transport.timeout_ms < 1 || o.transport.timeout_ms > 24LL * 3600 * 1000) {
    throw_error(ErrorCategory::kBadInput, "--timeout-ms must be 1 to 86400000");
  }
  const auto [host, port] = parse_host_port(o.listen, "--listen", true);
  const std::unique_ptr<net::TlsContext> tls = tls_context(o.transport, "server", "");
  warn_if_not_loopback(o.transport, host);

  const model::Graph graph = model::import_onnx_file(o.model);
  std::unique_ptr<ThreadPool> pool;
  if (o.threads != 0) pool = std::make_unique<ThreadPool>(o.threads);
  heplan::ProgramOptions po;
  po.mode = heplan::parse_mode(o.he_mode);
  po.pool = pool ? pool.get() : &ThreadPool::global();
  po.input_bound = o.input_bound;
  const std::unique_ptr<heplan::Program> program = heplan::Program::build(graph, po);

  net::TcpListener listener(host, port);
  std::string plan = program->describe();
  if (!plan.empty() && plan.back() != '\n') plan += '\n';
  std::printf("serve: %s with he (%s mode), %s\n%s", o.model.c_str(), heplan::mode_name(po.mode),
              backends::he_trust_model().summary.c_str(), plan.c_str());
  std::printf("serve: listening on %s (%s)\n", net::host_port(host, listener.port()).c_str(),
              tls ? "tls" : "tcp, insecure");
  std::fflush(stdout);

  const auto timeout = std::chrono::milliseconds(o.transport.timeout_ms);
  // One session: handshake, then serve_session; every failure is one line.
  // Returns whether it succeeded. Runs on its own thread.
  auto session = [&](std::int64_t s, net::Socket sock, const std::string& remote) {
    const auto t0 = Clock::now();
    try {
      std::unique_ptr<net::Channel> ch;
      if (tls) {
        ch = std::make_unique<net::TlsChannel>(*tls, std::move(sock), net::TlsRole::kServer,
                                               Clock::now() + timeout, "client " + remote);
      } else {
        ch = std::make_unique<net::TcpChannel>(std::move(sock));
      }
      ch->set_peer_name("client " + remote);
      ch->set_timeout(timeout);
      std::printf("serve: session %lld: connected (%s)\n", static_cast<long long>(s),
                  remote.c_str());
      std::fflush(stdout);
      const backends::ServedSession r = backends::serve_session(
          *ch, *program,
          [&](const std::string& line) {
            std::fprintf(stderr, "blindfold: serve: session %lld: refused: %s\n",
                         static_cast<long long>(s), line.c_str());
            std::fflush(stderr);
          },
          po.pool);
      std::printf("serve: session %lld: done, %lld queries, %lld samples, %lld refused, %.1f ms\n",
                  static_cast<long long>(s), static_cast<long long>(r.queries),
                  static_cast<long long>(r.samples), static_cast<long long>(r.refused),
                  std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      std::fflush(stdout);
      return true;
    } catch (const Error& e) {
      std::fprintf(stderr, "blindfold: serve: session %lld failed: %s\n", static_cast<long long>(s),
                   one_line(e.category(), e.what()).c_str());
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "blindfold: serve: session %lld failed: out of memory\n",
                   static_cast<long long>(s));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "blindfold: serve: session %lld failed: %s\n", static_cast<long long>(s),
                   one_line(ErrorCategory::kInternal, e.what()).c_str());
    }
    std::fflush(stderr);
    return false;
  };

  // Up to o.concurrent sessions at once, each on its own thread (the program
  // is immutable and evaluate() may run for several sessions at once); the
  // accept loop waits while all slots are taken.
  std::mutex mu;
  std::condition_variable cv;
  std::int64_t active = 0, failed = 0;
  auto wait_all = [&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return active == 0; });
  };
  try {
    for (std::int64_t s = 1; o.sessions == 0 || s <= o.sessions; ++s) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return active < o.concurrent; });
      }
      // Wait for the next client as long as it takes.
      net::Socket sock;
      std::string remote;
      while (!sock.valid()) {
        try {
          sock = listener.accept(Clock::now() + std::chrono::hours(1), &remote);
        } catch (const Error& e) {
          if (e.category() != ErrorCategory::kPeerFailure) throw;  // the listener failed
        }
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        ++active;
      }
      std::thread([&, s, remote, sock = std::move(sock)]() mutable {
        const bool ok = session(s, std::move(sock), remote);
        std::lock_guard<std::mutex> lock(mu);
        failed += ok ? 0 : 1;
        --active;
        cv.notify_all();
      }).detach();
    }
  } catch (...) {
    wait_all();  // the sessions use this frame's program, listener and TLS context
    throw;
  }
  wait_all();
  std::printf("serve: %lld sessions, %lld failed\n", static_cast<long long>(o.sessions),
              static_cast<long long>(failed));
  return 0;
}

int run_he_infer(const HeInferOptions& o) {
  if (o.backend != "he") {
    throw_error(ErrorCategory::kBadInput,
                "infer: --backend must be he (mpc2/mpc3 run with `blindfold party`)");
  }
  if (o.input.empty()) throw_error(ErrorCategory::kBadInput, "infer: --input is required");
  if (o.batch < 0)
    throw_error(ErrorCategory::kBadInput, "--batch must be 0 (the server's maximum) or more");
  if (o.transport.timeout_ms < 1 || o.transport.timeout_ms > 24LL * 3600 * 1000) {
    throw_error(ErrorCategory::kBadInput, "--timeout-ms must be 1 to 86400000");
  }
  const auto [host, port] = parse_host_port(o.server, "--server", false);
  const std::unique_ptr<net::TlsContext> tls = tls_context(o.transport, "client", o.server_name);
  warn_if_not_loopback(o.transport, host);
  const Tensor x = read_npy(o.input);
  if (x.dtype() != DType::kFloat32)
    throw_error(ErrorCategory::kBadInput, "--input must be float32");

  const auto timeout = std::chrono::milliseconds(o.transport.timeout_ms);
  const auto t0 = Clock::now();
  net::Socket sock = net::tcp_connect(host, port, Clock::now() + timeout);
  const std::string label = "server " + net::host_port(host, port);
  std::unique_ptr<net::Channel> ch;
  if (tls) {
    ch = std::make_unique<net::TlsChannel>(*tls, std::move(sock), net::TlsRole::kClient,
                                           Clock::now() + timeout, label, o.server_name);
  } else {
    ch = std::make_unique<net::TcpChannel>(std::move(sock));
  }
  ch->set_peer_name(label);
  ch->set_timeout(timeout);
  const double connect_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();

  backends::RemoteSession session(*ch, &ThreadPool::global());
  // On any failure after the keys, the session is ended cleanly (the server
  // then logs a session with fewer queries, not a broken connection).
  std::vector<Tensor> outs;
  nlohmann::ordered_json qs = nlohmann::ordered_json::array();
  double enc = 0, rtt = 0, srv = 0, dec = 0;
  std::int64_t qb = 0, rb = 0;
  const heplan::ClientSpec& spec = session.spec();
  try {
    // The input must be [N, input_shape...].
    const Shape& want = spec.input_shape;
    if (x.rank() != want.size() + 1 ||
        !std::equal(want.begin(), want.end(), x.shape().begin() + 1)) {
      std::string w = "[N";
      for (auto d : want) w += ", " + std::to_string(d);
      std::string got = "[";
      for (std::size_t i = 0; i < x.shape().size(); ++i)
        got += (i ? ", " : "") + std::to_string(x.shape()[i]);
      throw_error(ErrorCategory::kBadInput,
                  "--input has shape " + got + "]; the server's model takes " + w + "]");
    }
    if (o.batch > spec.max_batch) {
      throw_error(ErrorCategory::kBadInput,
                  "--batch " + std::to_string(o.batch) + ": the server takes at most " +
                      std::to_string(spec.max_batch) + " samples per query");
    }
    const std::vector<Tensor> queries =
        backends::split_queries(x, o.batch == 0 ? spec.max_batch : o.batch);
    for (const Tensor& q : queries) {
      backends::RemoteSession::Query m;
      outs.push_back(session.run(q, &m));
      qs.push_back({{"samples", m.samples},
                    {"encrypt_ms", round3(m.encrypt_ms)},
                    {"round_trip_ms", round3(m.round_trip_ms)},
                    {"server_ms", round3(m.server_ms)},
                    {"decrypt_ms", round3(m.decrypt_ms)},
                    {"total_ms", round3(m.encrypt_ms + m.round_trip_ms + m.decrypt_ms)},
                    {"query_bytes", m.query_bytes},
                    {"response_bytes", m.response_bytes}});
      enc += m.encrypt_ms;
      rtt += m.round_trip_ms;
      srv += m.server_ms;
      dec += m.decrypt_ms;
      qb += m.query_bytes;
      rb += m.response_bytes;
    }
  } catch (...) {
    try {
      session.finish();
    } catch (const Error&) {
    }
    throw;
  }
  session.finish();
  ch->close();
  const Tensor y = backends::concat_rows(outs);
  if (!o.out.empty()) write_npy(o.out, y);

  nlohmann::ordered_json j;
  j["backend"] = "he";
  j["mode"] = heplan::mode_name(spec.mode);
  j["params"] = spec.params.describe();
  j["transport"] = tls ? "tls" : "tcp";
  j["samples"] = y.rank() > 0 ? y.dim(0) : 1;
  j["labels"] = labels_of(y, spec.finish);
  j["setup"] = {{"connect_ms", round3(connect_ms)},
                {"keys_ms", round3(session.setup_ms())},
                {"spec_bytes", session.spec_bytes()},
                {"key_bytes", session.key_bytes()}};
  j["queries"] = qs;
  j["total"] = {{"encrypt_ms", round3(enc)},
                {"round_trip_ms", round3(rtt)},
                {"server_ms", round3(srv)},
                {"decrypt_ms", round3(dec)},
                {"total_ms", round3(enc + rtt + dec)},
                {"query_bytes", qb},
                {"response_bytes", rb}};
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
  return 0;
}

namespace {

void add_transport_options(CLI::App* c, HeTransportOptions& t, const char* who) {
  c->add_option("--pki", t.pki,
                "TLS files from `blindfold certs`: DIR/ca.pem, DIR/NAME.pem, DIR/NAME.key");
  c->add_option("--name", t.name,
                std::string("this side's certificate name in --pki (") + who + ")");
  c->add_option("--ca", t.ca, "the CA certificate (PEM) the peer's certificate must chain to");
  c->add_option("--cert", t.cert, "this side's certificate (PEM)");
  c->add_option("--key", t.key, "this side's private key (PEM)");
  c->add_flag("--insecure-transport", t.insecure_transport,
              "plain TCP: no encryption or authentication of the session (loopback tests only)");
  c->add_option("--timeout-ms", t.timeout_ms,
                "receive timeout of every message, and of the handshake")
      ->capture_default_str();
}

class HeCommandsImpl final : public HeCommands {
 public:
  explicit HeCommandsImpl(CLI::App& app) {
    serve_ = app.add_subcommand("serve",
                                "serve a model to `blindfold infer` clients (he: CKKS, one message "
                                "up and one down per query)");
    serve_->add_option("--backend,-b", serve_opts_.backend, "he")->capture_default_str();
    serve_->add_option("--model", serve_opts_.model, "the ONNX model to serve")->required();
    serve_
        ->add_option("--he-mode", serve_opts_.he_mode,
                     "latency (one sample per query) | batch (one per slot)")
        ->check(CLI::IsMember({"latency", "batch"}))
        ->capture_default_str();
    serve_
        ->add_option("--listen", serve_opts_.listen,
                     "HOST:PORT to listen on (port 0: any, printed)")
        ->required();
    serve_->add_option(
        "--input-bound", serve_opts_.input_bound,
        "|input| bound of the error budget (default: the model's blindfold.input_bound metadata)");
    serve_->add_option("--threads", serve_opts_.threads, "evaluation threads (0: all cores)");
    serve_
        ->add_option("--concurrent", serve_opts_.concurrent,
                     "sessions served at once (each holds its client's keys; 1: one after another)")
        ->capture_default_str();
    serve_
        ->add_option("--sessions", serve_opts_.sessions,
                     "serve this many sessions, then exit (0: forever)")
        ->capture_default_str();
    add_transport_options(serve_, serve_opts_.transport, "default server");

    infer_ =
        app.add_subcommand("infer",
                           "run inputs through a `blindfold serve` server (he: the server sees "
                           "only ciphertexts)");
    infer_->add_option("--backend,-b", infer_opts_.backend, "he")->capture_default_str();
    infer_->add_option("--server", infer_opts_.server, "HOST:PORT of the server")->required();
    infer_
        ->add_option("--server-name", infer_opts_.server_name,
                     "the name the server's certificate must carry (subjectAltName DNS)")
        ->capture_default_str();
    infer_->add_option("--input,-i", infer_opts_.input, "input tensor (.npy, float32, [N, ...])")
        ->required();
    infer_->add_option("--out,-o", infer_opts_.out, "write the outputs here (.npy)");
    infer_->add_option("--batch", infer_opts_.batch, "samples per query (0: the server's maximum)")
        ->capture_default_str();
    add_transport_options(infer_, infer_opts_.transport, "default client");
  }

  bool selected() const override { return serve_->parsed() || infer_->parsed(); }
  int run() override {
    if (serve_->parsed()) return run_he_serve(serve_opts_);
    return run_he_infer(infer_opts_);
  }

 private:
  CLI::App* serve_ = nullptr;
  CLI::App* infer_ = nullptr;
  HeServeOptions serve_opts_;
  HeInferOptions infer_opts_;
};

}  // namespace

std::unique_ptr<HeCommands> add_he_commands(CLI::App& app) {
  return std::make_unique<HeCommandsImpl>(app);
}

}  // namespace blindfold::app
