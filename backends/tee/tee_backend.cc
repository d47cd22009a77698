#include "backends/tee/tee_backend.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "tee/simulated.h"

namespace blindfold::backends {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::int64_t transport_bytes(const net::Channel& ch) {
  return ch.stats().sent.bytes + ch.stats().received.bytes;
}

// Receive timeout of the client's channel: the attested handshake and each
// inference (a large batch of a large model may take minutes).
constexpr std::chrono::minutes kClientTimeout{10};

}  // namespace

TrustModel tee_trust_model() {
  TrustModel t;
  t.summary = "TEE, vendor: " + std::string(tee::platform_vendor(tee::Platform::kSimulated)) +
              " -- simulated: no hardware protects this run";
  t.input = "the enclave only (the host sees ciphertext)";
  t.weights =
      "the enclave, and the host, which stores the model file in plaintext (no model "
      "encryption)";
  t.output = "the enclave only (the host sees ciphertext)";
  t.trusted =
      "the TEE vendor's hardware and attestation service -- here NONE: simulated platform key "
      "(whoever holds it can forge evidence)";
  t.adversary = "a host that relays every byte (malicious on the wire); simulated platform";
  t.security_bits = 0;
  return t;
}

tee::Policy tee_policy(bool trust_simulated_platform, const tee::Bytes& code,
                       const tee::Bytes& model) {
  tee::Policy p;
  p.platforms = {tee::Platform::kSimulated};
  p.trust_simulated_platform = trust_simulated_platform;
  p.allow_debug = false;
  p.measurements["CODE"] = {code};
  p.measurements["MODEL"] = {model};
  return p;
}

std::string untrusted_simulated_platform_message() {
  return "tee: this build's TEE platform is SIMULATED (a locally generated platform key, no TEE "
         "hardware): no hardware protects the run; pass --trust-simulated-platform to run on it "
         "anyway";
}

TeeBackend::TeeBackend() = default;

TeeBackend::~TeeBackend() {
  teardown();
}

void TeeBackend::teardown() {
  // The sealed channel refers to the transport: it goes first. Closing the
  // transport ends the session; the enclave then exits by itself.
  session_.channel.reset();
  channel_.reset();
  if (enclave_) enclave_->stop(2000);
}

Support TeeBackend::supports(const model::Graph& graph) const {
  if (graph.inputs.size() > teewire::kMaxWireTensors ||
      graph.outputs.size() > teewire::kMaxWireTensors) {
    return Support::no(
        "", "more than " + std::to_string(teewire::kMaxWireTensors) + " inputs or outputs");
  }
  // The enclave runs the plaintext engine: everything plain runs.
  return Support::yes();
}

void TeeBackend::setup(const model::Graph& graph, const BackendOptions& options) {
  (void)graph;
  if (!options.trust_simulated_platform) {
    throw_error(ErrorCategory::kBadInput, untrusted_simulated_platform_message());
  }
  if (options.model_path.empty()) {
    throw_error(ErrorCategory::kBadInput,
                "tee: the enclave loads the model from its file, and no model path was given");
  }
  teardown();
  enclave_.reset();
  recorded_to_enclave_.clear();
  recorded_from_enclave_.clear();
  session_ = {};
  const auto t0 = Clock::now();

  EnclaveLaunch launch;
  launch.binary = enclave_binary_.empty() ? default_enclave_binary() : enclave_binary_;
  launch.model = options.model_path;
  launch.platform_dir = options.tee_platform_dir.empty() ? default_platform_dir()
                                                         : fs::path(options.tee_platform_dir);
  launch.threads = options.threads;

  // Provisioning the simulated platform (once per directory; an operator's
  // step on real hardware). The client then holds only its certificate.
  std::error_code ec;
  if (!fs::exists(launch.platform_dir / "simulated-platform.pem", ec)) {
    (void)tee::SimulatedPlatform::load_or_create(launch.platform_dir);
  }
  const tee::Certificate platform_cert =
      tee::SimulatedPlatform::load_certificate(launch.platform_dir);

  // What the client expects: it measures the binary and the model it knows.
  if (!fs::is_regular_file(launch.binary, ec)) {
    throw_error(ErrorCategory::kUnsupported,
                "tee: the enclave binary " + launch.binary.string() +
                    " is missing (build the blindfold-enclave target; it must lie next to the "
                    "blindfold executable)");
  }
  const tee::Bytes code = expected_code_ ? *expected_code_ : tee::measure_file(launch.binary);
  const tee::Bytes model = expected_model_ ? *expected_model_ : tee::measure_file(launch.model);

  // The host is in line: its code moves the client's bytes into the
  // enclave's socket on the client's thread (as an untrusted runtime's call
  // into an enclave does), with no relay thread and no second copy between
  // them. Every byte that crosses the boundary passes through channel_,
  // which records it for the tests. (`blindfold serve`, where the client is
  // remote, relays TCP connections instead: app/tee_serve.cc.)
  auto [client_end, enclave_end] = local_socket_pair();
  enclave_ = std::make_unique<EnclaveProcess>(launch, std::move(enclave_end));
  channel_ = std::make_unique<SyncLocalChannel>(std::move(client_end), record_);
  channel_->set_peer_name("the enclave process");
  channel_->set_timeout(kClientTimeout);

  const tee::Policy policy = tee_policy(options.trust_simulated_platform, code, model);
  std::int64_t evidence_bytes = 0;
  const tee::EvidenceVerifier verify = [&](std::span<const std::uint8_t> evidence) {
    evidence_bytes = static_cast<std::int64_t>(evidence.size());
    const auto now =
        std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
    return tee::verify_simulated_evidence(evidence, platform_cert, now);
  };
  try {
    session_ = tee::attest_client(*channel_, verify, policy);
  } catch (const Error& e) {
    // Nothing of the client's crossed. Stop the enclave; keep what was
    // recorded for inspection.
    if (record_) {
      recorded_to_enclave_ = channel_->recorded_written();
      recorded_from_enclave_ = channel_->recorded_read();
    }
    channel_.reset();
    enclave_->stop(2000);
    if (e.category() == ErrorCategory::kPeerFailure) {
      const auto st = enclave_->ended();
      throw_error(ErrorCategory::kPeerFailure,
                  std::string("tee: the enclave process failed during the attested handshake (") +
                      (st ? *st : "still running") + "): " + e.what());
    }
    throw;
  }
  evidence_bytes_ = evidence_bytes;
  setup_cost_.ms = ms_since(t0);
  setup_cost_.bytes = transport_bytes(*channel_);
}

void TeeBackend::rethrow_transport(const Error& e) {
  if (e.category() != ErrorCategory::kPeerFailure) throw e;
  std::optional<std::string> st;
  if (enclave_) {
    // It may still be on its way out: give it a moment to be reaped.
    for (int i = 0; i < 100 && !(st = enclave_->ended()); ++i) ::usleep(2000);
  }
  throw_error(ErrorCategory::kPeerFailure,
              "tee: the enclave process " + std::to_string(enclave_pid()) +
                  (st ? " " + *st : std::string(" stopped answering")) + " (" + e.what() + ")");
}

teewire::Response TeeBackend::call(std::span<const std::uint8_t> request) {
  const std::span<const std::uint8_t> one[1] = {request};
  return call_parts(one);
}

teewire::Response TeeBackend::call_parts(std::span<const std::span<const std::uint8_t>> request) {
  if (!session_.channel) throw_error(ErrorCategory::kInternal, "tee backend used before setup");
  try {
    session_.channel->send_parts(teewire::kRequestTag, request);
    session_.channel->recv_into(teewire::kResponseTag, reply_);
    return teewire::decode_response(reply_);
  } catch (const Error& e) {
    rethrow_transport(e);
  }
}

std::vector<Tensor> TeeBackend::infer(const std::vector<Tensor>& inputs, RunMetrics* metrics) {
  if (!session_.channel) throw_error(ErrorCategory::kInternal, "tee backend used before setup");
  const auto t0 = Clock::now();
  const std::int64_t b0 = transport_bytes(*channel_);
  const std::int64_t sent0 = channel_->stats().sent.bytes;
  // Sealed from the tensors' own memory: the request is never copied
  // together in plaintext.
  const teewire::RequestParts request = teewire::request_parts(inputs);
  teewire::Response r = call_parts(request.parts);
  if (!r.ok) throw_error(r.category, "tee: the enclave refused the request: " + r.error);
  if (metrics) {
    metrics->offline = {};
    metrics->online.ms = ms_since(t0);
    metrics->online.bytes = transport_bytes(*channel_) - b0;
    metrics->rounds = 1;
    const std::int64_t sent = channel_->stats().sent.bytes - sent0;
    metrics->detail = {
        {"enclave_compute_ms", r.enclave_compute_ms},
        {"seal_transport_ms", metrics->online.ms - r.enclave_compute_ms},
        {"request_bytes", static_cast<double>(sent)},
        {"response_bytes", static_cast<double>(metrics->online.bytes - sent)},
        {"handshake_ms", session_.handshake_ms},
        {"evidence_bytes", static_cast<double>(evidence_bytes_)},
    };
  }
  return std::move(r.outputs);
}

std::vector<std::uint8_t> TeeBackend::crossed_to_enclave() const {
  return channel_ ? channel_->recorded_written() : recorded_to_enclave_;
}

std::vector<std::uint8_t> TeeBackend::crossed_from_enclave() const {
  return channel_ ? channel_->recorded_read() : recorded_from_enclave_;
}

}  // namespace blindfold::backends
