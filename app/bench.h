// The measurements every backend reports alike (`bench --json`, `demo`, the
// comparison report). Schema documented in docs/METRICS.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "app/datasets.h"
#include "backends/backend.h"
#include "model/graph.h"

namespace blindfold::app {

struct BenchOptions {
  std::string backend = "plain";
  std::int64_t batch = 1;
  int runs = 20;
  int warmup = 2;
  unsigned threads = 0;
  int frac_bits = 0;             // MPC fixed point; 0: backend default
  std::string output;            // "logits" or "label" (MPC backends); "": default
  double input_bound = 0;        // MPC: |input| bound for the comparisons; 0: the model's metadata
  std::string he_mode;           // he: "latency" | "batch"; "": latency
  std::int64_t eval_batch = 64;  // batch size of the accuracy evaluation
  /// When set, inputs are the dataset's first samples and accuracy and
  /// agreement with plaintext are measured over `eval_limit` samples.
  std::optional<std::string> dataset;
  std::int64_t eval_limit = 0;  // 0: the whole dataset
  std::string models_dir;
  bool progress = false;
  /// tee: trust the SIMULATED platform (--trust-simulated-platform) and the
  /// model file the enclave loads (BackendOptions).
  bool trust_simulated_platform = false;
  std::string model_path;
  /// Another backend run on the same inputs with the same options, its calls
  /// interleaved with the measured backend's, so that the machine's speed
  /// drifting between minutes hits both alike; "": none. May equal `backend`
  /// (an A/A run: how precise the ratio is).
  std::string baseline;
};

struct Summary {
  double median = 0, min = 0, max = 0;
};

/// Calls per block of an interleaved run, and the pause before each block.
inline constexpr int kBaselineBlockRuns = 10;
inline constexpr std::chrono::milliseconds kBaselineQuietGap{5};

/// The baseline's side of an interleaved run (BenchOptions::baseline).
struct BaselineResult {
  std::string backend;
  Summary latency_ms;
  double ratio_of_medians = 0;    // median(measured) / median(baseline)
  double ratio_of_minima = 0;     // min(measured) / min(baseline)
  double median_block_ratio = 0;  // median over adjacent block pairs of their medians' ratio
};

struct BenchResult {
  std::string model;
  std::string backend;
  std::int64_t batch = 0;
  int runs = 0;
  Summary latency_ms;
  double setup_ms = 0, offline_ms = 0, online_ms = 0;  // per run, medians
  std::int64_t setup_bytes = 0, offline_bytes = 0, online_bytes = 0;
  std::int64_t online_rounds = 0;
  /// The backend's own breakdown (RunMetrics::detail), medians over the
  /// runs, in the backend's order; empty when it reports none.
  std::vector<std::pair<std::string, double>> detail;
  std::optional<double> accuracy;
  std::optional<double> agreement_with_plain;
  std::int64_t samples = 0;  // samples evaluated for accuracy
  double throughput = 0;     // samples per second over the evaluation
  backends::TrustModel trust;
  std::optional<BaselineResult> baseline;  // only with BenchOptions::baseline
};

/// Backend `name` set up for `graph` (the setup phase), or Error(kUnsupported)
/// naming the node it cannot run.
std::unique_ptr<backends::Backend> ready_backend(const std::string& name, const model::Graph& graph,
                                                 unsigned threads);
std::unique_ptr<backends::Backend> ready_backend(const std::string& name, const model::Graph& graph,
                                                 const backends::BackendOptions& options);

/// Accuracy and throughput of `backend` on `data` in batches of `batch`;
/// also agreement with the plaintext engine when the backend is not plain.
struct EvalResult {
  std::int64_t samples = 0;
  std::int64_t correct = 0;
  std::int64_t agree = 0;
  double seconds = 0;
  std::vector<int> predictions;
};
EvalResult evaluate(const model::Graph& graph, backends::Backend& backend, const Dataset& data,
                    std::int64_t batch, bool progress);

BenchResult run_bench(const model::Graph& graph, const std::string& model_name,
                      const BenchOptions& options);

/// One JSON object (see docs/METRICS.md).
std::string to_json(const BenchResult& r);

}  // namespace blindfold::app
