// The backend contract (DESIGN.md): every technique answers the same
// questions, so the CLI, servers, tests and the comparison report treat them
// alike. A backend is where a model meets a technique.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "model/graph.h"

namespace blindfold::backends {

/// Who learns what and what must be trusted, in words the CLI prints.
struct TrustModel {
  std::string summary;    // one line for tables, e.g. "none: the data never leaves the client"
  std::string input;      // who sees the client's input
  std::string weights;    // who sees the model's weights
  std::string output;     // who sees the prediction
  std::string trusted;    // what must be trusted (non-collusion, vendor, dealer)
  std::string adversary;  // semi-honest / malicious / n/a
  int security_bits = 0;  // computational security; 0 when not applicable
};

/// Bytes and time of one phase.
struct PhaseCost {
  double ms = 0.0;
  std::int64_t bytes = 0;
};

/// What one inference cost. The same fields for every backend.
struct RunMetrics {
  PhaseCost offline;        // input-independent preprocessing for this query
  PhaseCost online;         // the query itself, end to end
  std::int64_t rounds = 0;  // online communication rounds
  /// A backend's own breakdown of the query, in the order it reports them
  /// (e.g. he: "encrypt_ms", "evaluate_ms", "decrypt_ms", "query_bytes").
  /// Names end in their unit (_ms, _bytes) or are counts. Empty: none.
  std::vector<std::pair<std::string, double>> detail;
};

/// Ok, or which node cannot be handled and why.
struct Support {
  bool ok = true;
  std::string node;
  std::string reason;
  static Support yes() { return {}; }
  static Support no(std::string node, std::string reason) {
    return {false, std::move(node), std::move(reason)};
  }
};

struct BackendOptions {
  unsigned threads = 0;  // 0: all cores
  /// Fixed-point fractional bits (MPC backends); 0: the backend's default.
  int frac_bits = 0;
  /// What the client learns: "" (the backend's default), "logits" or "label" (a one-hot arg
  /// max, the logits never opened). Backends where the client holds the
  /// model (plain) ignore it.
  std::string output;
  /// MPC backends: the bound |input| <= input_bound the comparisons are
  /// sized for (backends/mpc/plan.h); 0: the model's "blindfold.input_bound"
  /// metadata, and without it full 64-bit comparisons. he: the bound its
  /// error budget assumes (0: the metadata, else 1).
  double input_bound = 0;
  /// The he backend's mode: "latency" (one sample per query, packed in
  /// slots) or "batch" (one sample per slot); "": latency.
  std::string he_mode;
  /// tee: accept evidence from the SIMULATED platform (tee/simulated.h), on
  /// which no hardware protects the run; setup() refuses without it. Set only
  /// from --trust-simulated-platform (or by `blindfold demo`, which says so).
  bool trust_simulated_platform = false;
  /// tee: the model file the enclave loads and measures (the graph given to
  /// setup() must be imported from it).
  std::string model_path;
  /// tee: the simulated platform's directory (key and certificate); "": a
  /// per-user directory under TMPDIR.
  std::string tee_platform_dir;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual TrustModel trust_model() const = 0;
  /// Whether this backend can run `graph`; never throws.
  virtual Support supports(const model::Graph& graph) const = 0;
  /// Whether this backend can run `graph` with `options` (a backend whose
  /// answer depends on an option, e.g. he's mode, overrides it); never throws.
  virtual Support supports_with(const model::Graph& graph, const BackendOptions& options) const {
    (void)options;
    return supports(graph);
  }
  /// Setup phase: plan and prepare `graph` (keys, shared weights, ...). The
  /// graph must outlive the backend. Throws Error(kUnsupported) when
  /// supports() says no.
  virtual void setup(const model::Graph& graph, const BackendOptions& options) = 0;
  /// Cost of setup().
  virtual PhaseCost setup_cost() const = 0;
  /// One private inference of a batch. Returns what the client learns.
  virtual std::vector<Tensor> infer(const std::vector<Tensor>& inputs, RunMetrics* metrics) = 0;
};

/// Names of the backends this build has, in the order reports list them.
std::vector<std::string> backend_names();

/// A new backend by name. Throws Error(kBadInput) listing the known names.
std::unique_ptr<Backend> make_backend(std::string_view name);

}  // namespace blindfold::backends
