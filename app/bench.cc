#include "app/bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "model/executor.h"

namespace blindfold::app {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

Summary summarize(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  const std::size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return s;
}

void draw_progress(std::int64_t done, std::int64_t total, double seconds) {
  const int width = 30;
  const int filled = total ? static_cast<int>(width * done / total) : width;
  std::fprintf(stderr, "\r[%.*s%*s] %lld/%lld  %.0f samples/s", filled,
               "##############################", width - filled, "", static_cast<long long>(done),
               static_cast<long long>(total),
               seconds > 0 ? static_cast<double>(done) / seconds : 0.0);
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

// Inputs for a timing run: the dataset's first rows (cycled), else a fixed
// deterministic pattern in [0, 1). Benchmark data, not secrets.
std::vector<Tensor> bench_inputs(const model::Graph& g, std::int64_t batch, const Dataset* data) {
  std::vector<Tensor> ins;
  for (std::size_t k = 0; k < g.inputs.size(); ++k) {
    const model::Value& v = g.value(g.inputs[k]);
    Tensor t(v.dtype, v.shape_at(batch));
    if (v.dtype == DType::kFloat32) {
      auto d = t.f32();
      if (data && k == 0 && data->inputs.numel() > 0) {
        const auto src = data->inputs.f32();
        for (std::size_t i = 0; i < d.size(); ++i) d[i] = src[i % src.size()];
      } else {
        std::uint32_t x = 12345;
        for (float& f : d) {
          x = x * 1664525u + 1013904223u;
          f = static_cast<float>(x >> 8) / 16777216.0f;
        }
      }
    }
    ins.push_back(std::move(t));
  }
  return ins;
}

// The setup phase of `backend` for `graph`, or Error(kUnsupported) naming
// the node it cannot run.
void set_up(backends::Backend& backend, const model::Graph& graph,
            const backends::BackendOptions& bo) {
  const backends::Support s = backend.supports_with(graph, bo);
  if (!s.ok) {
    throw_error(ErrorCategory::kUnsupported,
                "backend '" + backend.name() + "' cannot run " +
                    (s.node.empty() ? std::string("this model") : "node '" + s.node + "'") + ": " +
                    s.reason);
  }
  backend.setup(graph, bo);
}

// Wall time of one call in ms, measured the same way for the measured
// backend and the baseline.
double timed_infer(backends::Backend& backend, const std::vector<Tensor>& inputs,
                   backends::RunMetrics* m) {
  const auto t0 = Clock::now();
  backend.infer(inputs, m);
  return ms_since(t0);
}

}  // namespace

std::unique_ptr<backends::Backend> ready_backend(const std::string& name, const model::Graph& graph,
                                                 unsigned threads) {
  backends::BackendOptions bo;
  bo.threads = threads;
  return ready_backend(name, graph, bo);
}

std::unique_ptr<backends::Backend> ready_backend(const std::string& name, const model::Graph& graph,
                                                 const backends::BackendOptions& bo) {
  auto backend = backends::make_backend(name);
  set_up(*backend, graph, bo);
  return backend;
}

EvalResult evaluate(const model::Graph& graph, backends::Backend& backend, const Dataset& data,
                    std::int64_t batch, bool progress) {
  if (graph.inputs.size() != 1) {
    throw_error(ErrorCategory::kBadInput, "evaluation needs a model with exactly one input");
  }
  const bool is_plain = backend.name() == "plain";
  std::unique_ptr<model::Executor> reference;
  if (!is_plain) reference = std::make_unique<model::Executor>(graph);
  EvalResult r;
  const std::int64_t n = data.inputs.dim(0);
  const auto t0 = Clock::now();
  auto last_draw = t0;
  for (std::int64_t b = 0; b < n; b += batch) {
    const std::int64_t e = std::min(n, b + batch);
    std::vector<Tensor> in{slice_rows(data.inputs, b, e)};
    const std::vector<Tensor> out = backend.infer(in, nullptr);
    if (out.empty()) throw_error(ErrorCategory::kInternal, "backend returned no output");
    const std::vector<int> pred = predicted_labels(out[0]);
    std::vector<int> ref = pred;
    if (reference) ref = predicted_labels(reference->run(in)[0]);
    for (std::int64_t i = b; i < e; ++i) {
      const int p = pred[static_cast<std::size_t>(i - b)];
      r.correct += p == data.labels[static_cast<std::size_t>(i)];
      r.agree += p == ref[static_cast<std::size_t>(i - b)];
      r.predictions.push_back(p);
    }
    r.samples = e;
    if (progress && (ms_since(last_draw) > 100 || e == n)) {
      draw_progress(e, n, ms_since(t0) / 1000.0);
      last_draw = Clock::now();
    }
  }
  r.seconds = ms_since(t0) / 1000.0;
  return r;
}

BenchResult run_bench(const model::Graph& graph, const std::string& model_name,
                      const BenchOptions& o) {
  if (o.batch < 1) throw_error(ErrorCategory::kBadInput, "--batch must be at least 1");
  if (o.runs < 1) throw_error(ErrorCategory::kBadInput, "--runs must be at least 1");
  BenchResult r;
  r.model = model_name;
  r.backend = o.backend;
  r.batch = o.batch;
  r.runs = o.runs;

  std::optional<Dataset> data;
  if (o.dataset) data = load_dataset(*o.dataset, o.eval_limit, o.models_dir);

  backends::BackendOptions bo;
  bo.threads = o.threads;
  bo.frac_bits = o.frac_bits;
  bo.output = o.output;
  bo.input_bound = o.input_bound;
  bo.he_mode = o.he_mode;
  bo.trust_simulated_platform = o.trust_simulated_platform;
  bo.model_path = o.model_path;
  // Made before the measured backend's setup (keys, an enclave's start) is
  // paid for, so that an unknown name fails at once; set up after it.
  std::unique_ptr<backends::Backend> baseline;
  if (!o.baseline.empty()) {
    try {
      baseline = backends::make_backend(o.baseline);
    } catch (const Error& e) {
      throw_error(e.category(), std::string("--baseline: ") + e.what());
    }
  }
  auto backend = ready_backend(o.backend, graph, bo);
  r.trust = backend->trust_model();
  r.setup_ms = backend->setup_cost().ms;
  r.setup_bytes = backend->setup_cost().bytes;
  if (baseline) set_up(*baseline, graph, bo);

  const std::vector<Tensor> inputs = bench_inputs(graph, o.batch, data ? &*data : nullptr);
  for (int w = 0; w < o.warmup; ++w) {
    backend->infer(inputs, nullptr);
    if (baseline) baseline->infer(inputs, nullptr);
  }
  std::vector<double> lat, base_lat, off, on;
  std::vector<double> off_bytes, on_bytes, rounds;
  std::vector<std::pair<std::string, std::vector<double>>> detail;  // in the backend's order
  const auto measured_run = [&] {
    backends::RunMetrics m;
    lat.push_back(timed_infer(*backend, inputs, &m));
    off.push_back(m.offline.ms);
    on.push_back(m.online.ms);
    off_bytes.push_back(static_cast<double>(m.offline.bytes));
    on_bytes.push_back(static_cast<double>(m.online.bytes));
    rounds.push_back(static_cast<double>(m.rounds));
    for (const auto& [name, value] : m.detail) {
      auto it = std::find_if(detail.begin(), detail.end(),
                             [&](const auto& d) { return d.first == name; });
      if (it == detail.end()) {
        detail.emplace_back(name, std::vector<double>{});
        it = detail.end() - 1;
      }
      it->second.push_back(value);
    }
  };
  std::vector<double> block_ratios;
  if (!baseline) {
    for (int i = 0; i < o.runs; ++i) measured_run();
  } else {
    // Interleaved in blocks: each backend makes kBaselineBlockRuns timed calls
    // back to back (after one untimed call), as it does alone, so that each
    // keeps the state a busy caller gives it -- its workers polling between
    // calls (the engine's for 0.1 ms, the tee enclave's for 2 ms). Blocks
    // alternate, the order swapped every pair, with a pause between them
    // longer than any worker polls: neither side's polling workers run during
    // the other's block. Drift hits both alike, and adjacent blocks see the
    // least of it.
    for (int done = 0, k = 0; done < o.runs; ++k) {
      const int n = std::min(kBaselineBlockRuns, o.runs - done);
      double block_median[2] = {0, 0};  // measured, baseline
      for (int side : {k % 2, 1 - k % 2}) {
        std::this_thread::sleep_for(kBaselineQuietGap);
        backends::Backend& b = side == 0 ? *backend : *baseline;
        b.infer(inputs, nullptr);
        for (int i = 0; i < n; ++i) {
          if (side == 0) {
            measured_run();
          } else {
            // Same bookkeeping as the measured side.
            backends::RunMetrics m;
            base_lat.push_back(timed_infer(*baseline, inputs, &m));
          }
        }
        const std::vector<double>& out = side == 0 ? lat : base_lat;
        block_median[side] = summarize({out.end() - n, out.end()}).median;
      }
      block_ratios.push_back(block_median[0] / block_median[1]);
      done += n;
    }
  }
  for (auto& [name, values] : detail) r.detail.emplace_back(name, summarize(values).median);
  r.latency_ms = summarize(lat);
  r.offline_ms = summarize(off).median;
  r.online_ms = summarize(on).median;
  r.offline_bytes = static_cast<std::int64_t>(summarize(off_bytes).median);
  r.online_bytes = static_cast<std::int64_t>(summarize(on_bytes).median);
  r.online_rounds = static_cast<std::int64_t>(summarize(rounds).median);
  if (baseline) {
    BaselineResult b;
    b.backend = o.baseline;
    b.latency_ms = summarize(base_lat);
    b.ratio_of_medians = r.latency_ms.median / b.latency_ms.median;
    b.ratio_of_minima = r.latency_ms.min / b.latency_ms.min;
    b.median_block_ratio = summarize(block_ratios).median;
    r.baseline = b;
  }

  if (data) {
    const EvalResult e =
        evaluate(graph, *backend, *data, std::max<std::int64_t>(o.batch, o.eval_batch), o.progress);
    r.samples = e.samples;
    r.accuracy = e.samples ? static_cast<double>(e.correct) / static_cast<double>(e.samples) : 0.0;
    r.agreement_with_plain =
        e.samples ? static_cast<double>(e.agree) / static_cast<double>(e.samples) : 0.0;
    r.throughput = e.seconds > 0 ? static_cast<double>(e.samples) / e.seconds : 0.0;
  }
  return r;
}

std::string to_json(const BenchResult& r) {
  nlohmann::ordered_json j;
  j["model"] = r.model;
  j["backend"] = r.backend;
  j["batch"] = r.batch;
  j["runs"] = r.runs;
  j["latency_ms"] = {
      {"median", r.latency_ms.median}, {"min", r.latency_ms.min}, {"max", r.latency_ms.max}};
  if (r.baseline) {
    const BaselineResult& b = *r.baseline;
    nlohmann::ordered_json bj;
    bj["backend"] = b.backend;
    bj["latency_ms"] = {
        {"median", b.latency_ms.median}, {"min", b.latency_ms.min}, {"max", b.latency_ms.max}};
    bj["ratio_of_medians"] = b.ratio_of_medians;
    bj["ratio_of_minima"] = b.ratio_of_minima;
    bj["median_block_ratio"] = b.median_block_ratio;
    j["baseline"] = bj;
  } else {
    j["baseline"] = nullptr;
  }
  j["phases_ms"] = {{"setup", r.setup_ms}, {"offline", r.offline_ms}, {"online", r.online_ms}};
  j["bytes"] = {{"setup", r.setup_bytes}, {"offline", r.offline_bytes}, {"online", r.online_bytes}};
  j["rounds"] = {{"online", r.online_rounds}};
  if (!r.detail.empty()) {
    nlohmann::ordered_json d = nlohmann::ordered_json::object();
    for (const auto& [name, value] : r.detail) {
      // Times stay numbers with a fraction; byte counts and counts print as integers.
      const bool is_ms = name.size() > 3 && name.compare(name.size() - 3, 3, "_ms") == 0;
      if (!is_ms && std::floor(value) == value && std::fabs(value) < 0x1p53) {
        d[name] = static_cast<std::int64_t>(value);
      } else {
        d[name] = value;
      }
    }
    j["detail"] = d;
  }
  j["accuracy"] =
      r.accuracy ? nlohmann::ordered_json(*r.accuracy) : nlohmann::ordered_json(nullptr);
  j["agreement_with_plain"] = r.agreement_with_plain
                                  ? nlohmann::ordered_json(*r.agreement_with_plain)
                                  : nlohmann::ordered_json(nullptr);
  j["samples"] = r.samples;
  j["throughput_per_s"] = r.throughput;
  j["trust"] = r.trust.summary;
  j["security_bits"] = r.trust.security_bits;
  return j.dump(2);
}

}  // namespace blindfold::app
