#include "app/tee_serve.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <new>
#include <thread>

#include "backends/tee/host.h"
#include "backends/tee/tee_backend.h"
#include "backends/tee/wire.h"
#include "core/error.h"
#include "core/npy.h"
#include "net/tcp.h"
#include "tee/channel.h"
#include "tee/crypto.h"
#include "tee/policy.h"
#include "tee/simulated.h"

namespace blindfold::app {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// "host:port" or "[v6]:port".
std::pair<std::string, std::uint16_t> split_host_port(const std::string& s, const char* flag,
                                                      bool allow_zero) {
  std::string host, port;
  const bool v6 = !s.empty() && s.front() == '[';
  const auto colon = v6 ? s.find("]:") : s.rfind(':');
  if (colon == std::string::npos || (!v6 && s.find(':') != colon)) {
    throw_error(ErrorCategory::kBadInput,
                std::string(flag) + " must be HOST:PORT or [V6]:PORT, is '" + s + "'");
  }
  host = v6 ? s.substr(1, colon - 1) : s.substr(0, colon);
  port = s.substr(colon + (v6 ? 2 : 1));
  long p = -1;
  if (!port.empty() && port.size() <= 5 &&
      port.find_first_not_of("0123456789") == std::string::npos) {
    p = std::stol(port);
  }
  if (p < (allow_zero ? 0 : 1) || p > 65535 || host.empty()) {
    throw_error(ErrorCategory::kBadInput, std::string(flag) + ": bad host or port in '" + s + "'");
  }
  return {host, static_cast<std::uint16_t>(p)};
}

tee::Bytes measurement_flag(const std::string& hex, const char* flag) {
  const auto b = tee::from_hex(hex);
  if (!b || b->size() != tee::kMeasurementBytes) {
    throw_error(ErrorCategory::kBadInput, std::string(flag) + " must be " +
                                              std::to_string(2 * tee::kMeasurementBytes) +
                                              " hex digits (a SHA-384 measurement)");
  }
  return *b;
}

void print_trust_model(const backends::TrustModel& t) {
  std::printf("trust model: %s\n", t.summary.c_str());
  std::printf("  input seen by:   %s\n", t.input.c_str());
  std::printf("  weights seen by: %s\n", t.weights.c_str());
  std::printf("  output seen by:  %s\n", t.output.c_str());
  std::printf("  trusted:         %s\n", t.trusted.c_str());
}

void print_claims(const tee::Claims& c) {
  std::printf("claims: platform %s (vendor: %s), version %u, tcb %s, debug %s\n",
              std::string(tee::platform_name(c.platform)).c_str(),
              std::string(tee::platform_vendor(c.platform)).c_str(), c.version,
              std::string(tee::tcb_status_name(c.tcb_status)).c_str(), c.debug ? "yes" : "no");
  for (const auto& [name, value] : c.measurements) {
    std::printf("  %s %s\n", name.c_str(), tee::to_hex(value).c_str());
  }
  std::printf("  report_data %s\n", tee::to_hex(c.report_data).c_str());
  for (const auto& [k, v] : c.details) std::printf("  %s: %s\n", k.c_str(), v.c_str());
}

}  // namespace

int run_tee_serve(const TeeServeOptions& o) {
  if (o.model.empty()) throw_error(ErrorCategory::kBadInput, "serve: --model is required");
  if (o.platform_dir.empty()) {
    throw_error(ErrorCategory::kBadInput,
                "serve --backend tee: --platform-dir is required (the simulated platform's key "
                "and certificate; created when missing)");
  }
  if (o.sessions < 0)
    throw_error(ErrorCategory::kBadInput, "--sessions must be 0 (forever) or more");
  const auto [host, port] = split_host_port(o.listen, "--listen", true);

  backends::EnclaveLaunch launch;
  launch.binary = backends::default_enclave_binary();
  launch.model = o.model;
  launch.platform_dir = o.platform_dir;
  launch.threads = o.threads;
  std::error_code ec;
  if (!fs::is_regular_file(launch.binary, ec)) {
    throw_error(ErrorCategory::kUnsupported,
                "serve: the enclave binary " + launch.binary.string() +
                    " is missing (build the blindfold-enclave target)");
  }
  // Provisioning the simulated platform (once per directory).
  if (!fs::exists(launch.platform_dir / "simulated-platform.pem", ec)) {
    (void)tee::SimulatedPlatform::load_or_create(launch.platform_dir);
  }
  const tee::Bytes code = tee::measure_file(launch.binary);
  const tee::Bytes model = tee::measure_file(launch.model);

  net::TcpListener listener(host, port);
  std::printf("serve: %s with tee, %s\n", o.model.c_str(),
              backends::tee_trust_model().summary.c_str());
  std::printf("serve: simulated platform certificate %s (clients: --platform-cert)\n",
              (launch.platform_dir / "simulated-platform.pem").string().c_str());
  std::printf("serve: enclave CODE %s\nserve: enclave MODEL %s\n", tee::to_hex(code).c_str(),
              tee::to_hex(model).c_str());
  std::printf(
      "serve: listening on %s (tcp; each session sealed end to end by the attested "
      "channel; this host relays ciphertext only)\n",
      net::host_port(host, listener.port()).c_str());
  std::fflush(stdout);

  std::mutex mu;
  std::condition_variable cv;
  std::int64_t active = 0;
  // The session threads use this frame: leave it only once they ended,
  // whether the loop finished or the listener failed.
  struct WaitForSessions {
    std::mutex& mu;
    std::condition_variable& cv;
    std::int64_t& active;
    ~WaitForSessions() {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return active == 0; });
    }
  } wait_for_sessions{mu, cv, active};
  for (std::int64_t s = 1; o.sessions == 0 || s <= o.sessions; ++s) {
    std::string remote;
    net::Socket sock = listener.accept(Clock::now() + std::chrono::hours(24 * 365), &remote);
    {
      std::lock_guard<std::mutex> lock(mu);
      ++active;
    }
    auto session = [&, s, remote, sock = std::move(sock)]() mutable {
      const auto t0 = Clock::now();
      try {
        auto [host_end, enclave_end] = backends::local_socket_pair();
        backends::EnclaveProcess enclave(launch, std::move(enclave_end));
        std::printf("serve: session %lld: %s -> enclave pid %d\n", static_cast<long long>(s),
                    remote.c_str(), static_cast<int>(enclave.pid()));
        std::fflush(stdout);
        backends::Relay relay(std::move(sock), std::move(host_end), false);
        relay.join();
        enclave.stop(5000);
        std::printf(
            "serve: session %lld: done, %lld bytes to the enclave, %lld from it, enclave "
            "%s, %.1f ms\n",
            static_cast<long long>(s), static_cast<long long>(relay.bytes_to_enclave()),
            static_cast<long long>(relay.bytes_from_enclave()),
            enclave.ended().value_or("running").c_str(), ms_since(t0));
        std::fflush(stdout);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "blindfold: serve: session %lld failed: %s\n",
                     static_cast<long long>(s), e.what());
        std::fflush(stderr);
      }
      std::lock_guard<std::mutex> lock(mu);
      --active;
      cv.notify_all();
    };
    try {
      std::thread(std::move(session)).detach();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      --active;
      throw;
    }
  }
  return 0;
}

int run_tee_infer(const TeeInferOptions& o) {
  if (!o.trust_simulated_platform) {
    throw_error(ErrorCategory::kBadInput, backends::untrusted_simulated_platform_message());
  }
  if (o.platform_cert.empty()) {
    throw_error(ErrorCategory::kBadInput,
                "infer --backend tee: --platform-cert is required (the simulated platform's "
                "certificate, DIR/simulated-platform.pem on the server)");
  }
  if (o.input.empty()) throw_error(ErrorCategory::kBadInput, "infer: --input is required");
  if (o.timeout_ms < 1 || o.timeout_ms > 24LL * 3600 * 1000) {
    throw_error(ErrorCategory::kBadInput, "--timeout-ms must be 1 to 86400000");
  }
  tee::Policy policy;
  if (!o.policy.empty()) policy = tee::Policy::from_json(read_file_bytes(o.policy, 1 << 20));
  // This client verifies simulated evidence only, and trusts it only with
  // the flag. A policy file that names its platforms keeps them: one that
  // leaves out the simulated platform refuses this server.
  if (policy.platforms.empty()) policy.platforms = {tee::Platform::kSimulated};
  policy.trust_simulated_platform = true;
  if (!o.expect_code.empty())
    policy.measurements["CODE"] = {measurement_flag(o.expect_code, "--expect-code")};
  if (!o.expect_model.empty())
    policy.measurements["MODEL"] = {measurement_flag(o.expect_model, "--expect-model")};
  const std::vector<tee::Certificate> certs = tee::Certificate::chain_from_pem(
      read_file_bytes(o.platform_cert, 1 << 20), "the simulated platform certificate");
  const tee::Certificate& cert = certs.front();
  const auto [host, port] = split_host_port(o.server, "--server", false);
  const Tensor x = read_npy(o.input);

  const auto timeout = std::chrono::milliseconds(o.timeout_ms);
  const auto t0 = Clock::now();
  net::TcpChannel ch(net::tcp_connect(host, port, Clock::now() + timeout));
  ch.set_peer_name("server " + net::host_port(host, port));
  ch.set_timeout(timeout);
  const tee::EvidenceVerifier verify = [&](std::span<const std::uint8_t> evidence) {
    const auto now =
        std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
    return tee::verify_simulated_evidence(evidence, cert, now);
  };
  tee::AttestedSession session;
  try {
    session = tee::attest_client(ch, verify, policy);
  } catch (const Error& e) {
    std::printf("verdict: REFUSED: %s\n", e.what());
    std::printf("nothing of the input was sent\n");
    std::fflush(stdout);
    throw;
  }
  std::printf(
      "verdict: ACCEPTED (attestation verified, policy satisfied; simulated platform "
      "trusted by --trust-simulated-platform)\n");
  for (const auto& w : session.appraisal.warnings) std::printf("warning: %s\n", w.c_str());
  for (const char* m : {"CODE", "MODEL"}) {
    if (policy.measurements.count(m) == 0 && !policy.measurements.empty()) {
      std::printf("warning: no expected %s measurement: any %s is accepted\n", m,
                  std::string_view(m) == "CODE" ? "enclave binary" : "model");
    }
  }
  print_claims(session.claims);
  print_trust_model(backends::tee_trust_model());
  std::printf("handshake: %.1f ms, %lld bytes\n", session.handshake_ms,
              static_cast<long long>(session.handshake_bytes));
  std::fflush(stdout);

  const auto t1 = Clock::now();
  const std::int64_t b0 = ch.stats().sent.bytes + ch.stats().received.bytes;
  session.channel->send(backends::teewire::kRequestTag, backends::teewire::encode_request({x}));
  const backends::teewire::Response r =
      backends::teewire::decode_response(session.channel->recv(backends::teewire::kResponseTag));
  if (!r.ok) throw_error(r.category, "the enclave refused the request: " + r.error);
  if (r.outputs.empty()) throw_error(ErrorCategory::kBadMessage, "the enclave returned no output");
  const Tensor& y = r.outputs[0];
  std::printf("inference: %.1f ms (enclave compute %.1f ms), %lld bytes\n", ms_since(t1),
              r.enclave_compute_ms,
              static_cast<long long>(ch.stats().sent.bytes + ch.stats().received.bytes - b0));
  std::printf("output: %s %s\n", std::string(dtype_name(y.dtype())).c_str(),
              shape_to_string(y.shape()).c_str());
  if (y.dtype() == DType::kFloat32 && y.rank() == 2 && y.dim(1) > 0) {
    std::string labels;
    const auto v = y.f32();
    for (std::int64_t i = 0; i < y.dim(0); ++i) {
      std::int64_t best = 0;
      for (std::int64_t j = 1; j < y.dim(1); ++j) {
        if (v[static_cast<std::size_t>(i * y.dim(1) + j)] >
            v[static_cast<std::size_t>(i * y.dim(1) + best)])
          best = j;
      }
      labels += (i ? ", " : "") + std::to_string(best);
    }
    std::printf("labels: [%s]\n", labels.c_str());
  }
  if (!o.out.empty()) write_npy(o.out, y);
  std::printf("total: %.1f ms\n", ms_since(t0));
  return 0;
}

namespace {

// The tee flags on the he backend's serve/infer subcommands; the shared
// flags (--model, --listen, --server, --input, ...) are read from them.
class TeeCommandsImpl final : public TeeCommands {
 public:
  explicit TeeCommandsImpl(CLI::App& app) {
    serve_ = app.get_subcommand("serve");
    infer_ = app.get_subcommand("infer");
    serve_->add_option("--platform-dir", serve_opts_.platform_dir,
                       "tee: the SIMULATED platform's key and certificate (created when missing)");
    infer_->add_option("--platform-cert", infer_opts_.platform_cert,
                       "tee: the simulated platform's certificate (DIR/simulated-platform.pem)");
    infer_->add_flag("--trust-simulated-platform", infer_opts_.trust_simulated_platform,
                     "tee: accept evidence from the SIMULATED platform (no hardware protects "
                     "the run)");
    infer_->add_option("--policy", infer_opts_.policy,
                       "tee: appraisal policy (JSON, tee/policy.h)");
    infer_->add_option("--expect-code", infer_opts_.expect_code,
                       "tee: the enclave binary's SHA-384 (hex) the evidence must carry");
    infer_->add_option("--expect-model", infer_opts_.expect_model,
                       "tee: the model file's SHA-384 (hex) the evidence must carry");
  }

  bool selected() const override {
    return (serve_->parsed() && backend(serve_) == "tee") ||
           (infer_->parsed() && backend(infer_) == "tee");
  }

  int run() override {
    if (serve_->parsed()) {
      refuse_tls_flags(serve_);
      serve_opts_.model = str(serve_, "--model");
      serve_opts_.listen = str(serve_, "--listen");
      serve_opts_.threads = static_cast<unsigned>(num(serve_, "--threads", 0));
      serve_opts_.sessions = num(serve_, "--sessions", 0);
      return run_tee_serve(serve_opts_);
    }
    refuse_tls_flags(infer_);
    infer_opts_.server = str(infer_, "--server");
    infer_opts_.input = str(infer_, "--input");
    infer_opts_.out = str(infer_, "--out");
    if (infer_->get_option("--timeout-ms")->count() > 0)
      infer_opts_.timeout_ms = num(infer_, "--timeout-ms", infer_opts_.timeout_ms);
    return run_tee_infer(infer_opts_);
  }

 private:
  static std::string backend(const CLI::App* c) { return str(c, "--backend"); }
  static std::string str(const CLI::App* c, const std::string& name) {
    const CLI::Option* o = c->get_option(name);
    return o->count() > 0 ? o->as<std::string>() : o->get_default_str();
  }
  static std::int64_t num(const CLI::App* c, const std::string& name, std::int64_t def) {
    const CLI::Option* o = c->get_option(name);
    return o->count() > 0 ? o->as<std::int64_t>() : def;
  }
  static void refuse_tls_flags(const CLI::App* c) {
    for (const char* f : {"--pki", "--ca", "--cert", "--key", "--insecure-transport"}) {
      if (c->get_option(f)->count() > 0) {
        throw_error(ErrorCategory::kBadInput,
                    std::string(f) +
                        " does not apply to --backend tee: the session is sealed end to end by "
                        "the attested channel (tee/channel.h)");
      }
    }
  }

  CLI::App* serve_ = nullptr;
  CLI::App* infer_ = nullptr;
  TeeServeOptions serve_opts_;
  TeeInferOptions infer_opts_;
};

}  // namespace

std::unique_ptr<TeeCommands> add_tee_commands(CLI::App& app) {
  return std::make_unique<TeeCommandsImpl>(app);
}

}  // namespace blindfold::app
