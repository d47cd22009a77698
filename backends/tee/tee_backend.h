// The tee backend: the model runs inside an enclave process
// (blindfold-enclave), reached over an attested channel (tee/channel.h); the
// host process between client and enclave relays only ciphertext. This build
// has no TEE hardware: the enclave's evidence is signed by the SIMULATED
// platform key (tee/simulated.h), so setup() refuses unless
// BackendOptions::trust_simulated_platform is set (--trust-simulated-platform),
// and the trust model says that no hardware protects the run.
//
// setup(): spawns the enclave on a socket pair whose host side this process
// drives in line (no relay thread: the host code writes the client's bytes
// into the enclave's socket, recording them for tests), computes the expected CODE and MODEL
// measurements itself from the enclave binary and the model file (a swapped binary or model is
// refused), and runs the attested handshake; its cost is setup_cost().
// infer(): one sealed request and response.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include "backends/backend.h"
#include "backends/tee/host.h"
#include "backends/tee/local_channel.h"
#include "backends/tee/wire.h"
#include "tee/channel.h"

namespace blindfold::backends {

/// The trust model of a tee run on the simulated platform.
TrustModel tee_trust_model();

/// The policy the tee client applies: the simulated platform (trusted only
/// when `trust_simulated_platform`), no debug enclave, and exactly these
/// CODE and MODEL measurements.
tee::Policy tee_policy(bool trust_simulated_platform, const tee::Bytes& code,
                       const tee::Bytes& model);

/// The message setup() refuses with when the simulated platform is not trusted.
std::string untrusted_simulated_platform_message();

class TeeBackend final : public Backend {
 public:
  TeeBackend();
  ~TeeBackend() override;

  std::string name() const override { return "tee"; }
  TrustModel trust_model() const override { return tee_trust_model(); }
  Support supports(const model::Graph& graph) const override;
  /// @throws Error(kBadInput) without trust in the simulated platform or
  /// without options.model_path; Error(kUnsupported) when the enclave binary
  /// is missing; Error(kBadMessage) when attestation or the policy refuses;
  /// Error(kPeerFailure) when the enclave process fails.
  void setup(const model::Graph& graph, const BackendOptions& options) override;
  PhaseCost setup_cost() const override { return setup_cost_; }
  /// @throws Error(kPeerFailure) naming the enclave's exit status when it is
  /// gone; the enclave's error (its category) when it refuses the request.
  std::vector<Tensor> infer(const std::vector<Tensor>& inputs, RunMetrics* metrics) override;

  // ---- For tests and tools (call before setup()) ----
  /// Use this enclave binary instead of default_enclave_binary().
  void set_enclave_binary(std::filesystem::path p) { enclave_binary_ = std::move(p); }
  /// Expect these measurements instead of computing them from the files.
  void set_expected_measurements(tee::Bytes code, tee::Bytes model) {
    expected_code_ = std::move(code);
    expected_model_ = std::move(model);
  }
  /// Record every byte that crosses the enclave's boundary.
  void set_record_boundary(bool on) { record_ = on; }

  // ---- After setup() (or a failed one) ----
  /// What crossed the boundary, both ways (empty unless recording).
  std::vector<std::uint8_t> crossed_to_enclave() const;
  std::vector<std::uint8_t> crossed_from_enclave() const;
  pid_t enclave_pid() const { return enclave_ ? enclave_->pid() : -1; }
  const tee::Claims& claims() const { return session_.claims; }
  const tee::Appraisal& appraisal() const { return session_.appraisal; }
  /// One sealed request/response with raw request bytes (tests send
  /// malformed requests through it).
  teewire::Response call(std::span<const std::uint8_t> request);

 private:
  teewire::Response call_parts(std::span<const std::span<const std::uint8_t>> request);
  [[noreturn]] void rethrow_transport(const Error& e);
  void teardown();

  std::filesystem::path enclave_binary_;
  std::optional<tee::Bytes> expected_code_, expected_model_;
  bool record_ = false;

  std::unique_ptr<EnclaveProcess> enclave_;
  std::vector<std::uint8_t> recorded_to_enclave_, recorded_from_enclave_;  // after a failed setup
  std::unique_ptr<SyncLocalChannel> channel_;
  tee::AttestedSession session_;
  tee::Bytes reply_;  // the opened response, reused from call to call
  std::int64_t evidence_bytes_ = 0;
  PhaseCost setup_cost_;
};

}  // namespace blindfold::backends
