#include "app/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <new>

#include "app/attest.h"
#include "app/bench.h"
#include "app/datasets.h"
#include "app/he_serve.h"
#include "app/netproxy.h"
#include "app/party.h"
#include "app/tee_serve.h"
#include "app/validators.h"
#include "backends/backend.h"
#include "backends/he/program.h"
#include "core/error.h"
#include "core/npy.h"
#include "model/cost.h"
#include "model/onnx_import.h"

namespace blindfold::app {

namespace {

std::string default_models_dir() {
  return std::string(BLINDFOLD_SOURCE_DIR) + "/models";
}

std::string model_stem(const std::string& path) {
  return std::filesystem::path(path).stem().string();
}

std::string human(double v) {
  char buf[32];
  if (v >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  } else if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  } else if (v >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  }
  return buf;
}

int cmd_inspect(const std::string& path) {
  const model::Graph g = model::import_onnx_file(path);
  std::printf("model    %s\n", path.c_str());
  std::printf("producer %s, opset %d\n", g.producer.empty() ? "?" : g.producer.c_str(), g.opset);
  for (int id : g.inputs) {
    const auto& v = g.value(id);
    std::printf("input    %s %s %s\n", v.name.c_str(), std::string(dtype_name(v.dtype)).c_str(),
                v.shape_string().c_str());
  }
  for (int id : g.outputs) {
    const auto& v = g.value(id);
    std::printf("output   %s %s %s\n", v.name.c_str(), std::string(dtype_name(v.dtype)).c_str(),
                v.shape_string().c_str());
  }
  std::printf("\n%-4s %-28s %-20s %-20s %10s %12s\n", "#", "node", "op", "output shape", "params",
              "MACs");
  std::int64_t total_macs = 0;
  int k = 0;
  for (const auto& n : g.nodes) {
    const std::int64_t macs = model::node_macs(g, n);
    total_macs += macs;
    std::string name = n.name.size() > 28 ? n.name.substr(0, 25) + "..." : n.name;
    std::printf("%-4d %-28s %-20s %-20s %10lld %12lld\n", k++, name.c_str(),
                std::string(model::op_name(n.op)).c_str(),
                g.value(n.outputs[0]).shape_string().c_str(),
                static_cast<long long>(model::node_params(g, n)), static_cast<long long>(macs));
  }
  std::printf("\nnodes %zu, parameters %lld (%s), MACs per sample %lld (%s)\n", g.nodes.size(),
              static_cast<long long>(g.parameter_count()),
              human(static_cast<double>(g.parameter_count())).c_str(),
              static_cast<long long>(total_macs), human(static_cast<double>(total_macs)).c_str());
  return 0;
}

int cmd_run(const std::string& path, const std::string& backend_name,
            const std::vector<std::string>& input_paths,
            const std::vector<std::string>& output_paths, const backends::BackendOptions& bo) {
  const model::Graph g = model::import_onnx_file(path);
  if (input_paths.size() != g.inputs.size()) {
    throw_error(ErrorCategory::kBadInput, "the model takes " + std::to_string(g.inputs.size()) +
                                              " input(s); " + std::to_string(input_paths.size()) +
                                              " --input given");
  }
  if (output_paths.size() != g.outputs.size()) {
    throw_error(ErrorCategory::kBadInput, "the model has " + std::to_string(g.outputs.size()) +
                                              " output(s); " + std::to_string(output_paths.size()) +
                                              " --output given");
  }
  std::vector<Tensor> inputs;
  for (const auto& p : input_paths) inputs.push_back(read_npy(p));
  auto backend = ready_backend(backend_name, g, bo);
  const std::vector<Tensor> out = backend->infer(inputs, nullptr);
  for (std::size_t i = 0; i < out.size(); ++i) write_npy(output_paths[i], out[i]);
  return 0;
}

int cmd_eval(const std::string& path, const std::string& backend_name, const std::string& dataset,
             std::int64_t limit, std::int64_t batch, const backends::BackendOptions& bo,
             const std::string& models_dir) {
  const model::Graph g = model::import_onnx_file(path);
  const Dataset data = load_dataset(dataset, limit, models_dir);
  auto backend = ready_backend(backend_name, g, bo);
  const EvalResult r = evaluate(g, *backend, data, batch, isatty(STDERR_FILENO) != 0);
  std::printf("model     %s\nbackend   %s\ndataset   %s (%lld samples)\n", path.c_str(),
              backend_name.c_str(), data.source.c_str(), static_cast<long long>(r.samples));
  std::printf(
      "accuracy  %.2f%% (%lld/%lld)\n",
      r.samples ? 100.0 * static_cast<double>(r.correct) / static_cast<double>(r.samples) : 0.0,
      static_cast<long long>(r.correct), static_cast<long long>(r.samples));
  if (backend_name != "plain") {
    std::printf(
        "agreement with plaintext %.2f%% (%lld/%lld)\n",
        r.samples ? 100.0 * static_cast<double>(r.agree) / static_cast<double>(r.samples) : 0.0,
        static_cast<long long>(r.agree), static_cast<long long>(r.samples));
  }
  std::printf("throughput %.1f samples/s (batch %lld, %.3f s)\n",
              r.seconds > 0 ? static_cast<double>(r.samples) / r.seconds : 0.0,
              static_cast<long long>(std::min(batch, r.samples)), r.seconds);
  return 0;
}

int cmd_bench(const std::string& path, BenchOptions o, bool json) {
  const model::Graph g = model::import_onnx_file(path);
  o.model_path = path;  // tee: the file the enclave loads
  const BenchResult r = run_bench(g, model_stem(path), o);
  if (json) {
    std::printf("%s\n", to_json(r).c_str());
    return 0;
  }
  std::printf("model %s, backend %s, batch %lld, %d runs\n", r.model.c_str(), r.backend.c_str(),
              static_cast<long long>(r.batch), r.runs);
  std::printf("latency ms: median %.3f  min %.3f  max %.3f\n", r.latency_ms.median,
              r.latency_ms.min, r.latency_ms.max);
  std::printf("per-sample ms: %.4f\n", r.latency_ms.median / static_cast<double>(r.batch));
  if (r.accuracy) {
    std::printf("accuracy %.2f%% on %lld samples, agreement with plaintext %.2f%%\n",
                100 * *r.accuracy, static_cast<long long>(r.samples),
                100 * *r.agreement_with_plain);
  }
  if (r.baseline) {
    const BaselineResult& b = *r.baseline;
    std::printf("vs %s: %.2fx (medians %.3f / %.3f ms; minima %.2fx; median block ratio %.2fx)\n",
                b.backend.c_str(), b.ratio_of_medians, r.latency_ms.median, b.latency_ms.median,
                b.ratio_of_minima, b.median_block_ratio);
  }
  for (const auto& [name, value] : r.detail) std::printf("%s: %.6g\n", name.c_str(), value);
  std::printf("trust: %s\n", r.trust.summary.c_str());
  return 0;
}

// The he backend's plan: mode, parameters and why, layers, keys, error budget.
int cmd_he_plan(const std::string& path, const backends::BackendOptions& bo) {
  const model::Graph g = model::import_onnx_file(path);
  backends::heplan::ProgramOptions po;
  po.mode = backends::heplan::parse_mode(bo.he_mode.empty() ? "latency" : bo.he_mode);
  po.input_bound = bo.input_bound;
  const auto program = backends::heplan::Program::build(g, po);
  std::printf("\n%s", program->describe().c_str());
  return 0;
}

struct DemoModel {
  const char* file;
  const char* dataset;
};

// The he rows of the demo: latency mode on a few samples (one query each),
// batch mode on the 500 with few timed runs (each a whole batch's cost).
constexpr int kDemoHeLatencySamples = 50;
constexpr int kDemoHeLatencyRuns = 5;
constexpr int kDemoHeBatchRuns = 1;

int cmd_demo(const std::string& models_dir, unsigned threads) {
  const DemoModel models[] = {{"fmnist-mlp.onnx", "fmnist"},
                              {"fmnist-lenet.onnx", "fmnist"},
                              {"fmnist-he.onnx", "fmnist"},
                              {"cancer-logreg.onnx", "cancer"}};
  std::printf("Blindfold demo: every shipped model, every backend in this build.\n");
  std::printf(
      "Accuracy on the full test set (plain), its first 500 samples (mpc2, mpc3, he-batch) or\n"
      "first %d (he: latency mode). Latency: median of 20 single-sample runs (he: %d, he-batch:\n"
      "%d, each a whole batch's work; mpc2: offline + online). Rounds: online (he: queries).\n"
      "Samples/s: over the accuracy run (he-batch: full queries, samples per query / latency).\n\n",
      kDemoHeLatencySamples, kDemoHeLatencyRuns, kDemoHeBatchRuns);
  std::printf(
      "tee: this demo trusts the SIMULATED TEE platform (as --trust-simulated-platform would):\n"
      "no hardware protects the tee rows (docs/THREAT_MODEL.md).\n\n");
  std::printf("%-14s %-8s %9s %10s %8s %12s %12s %10s %7s  %s\n", "model", "backend", "accuracy",
              "agreement", "samples", "latency ms", "samples/s", "bytes", "rounds", "trust");
  for (const auto& m : models) {
    const std::string path = models_dir + "/" + m.file;
    const model::Graph g = model::import_onnx_file(path);
    for (const std::string& b : backends::backend_names()) {
      BenchOptions o;
      o.backend = b;
      o.batch = 1;
      o.runs = 20;
      o.threads = threads;
      o.dataset = m.dataset;
      o.models_dir = models_dir;
      o.model_path = path;
      // The tee row runs on the SIMULATED platform: trusted here explicitly.
      o.trust_simulated_platform = b == "tee";
      if (b != "plain") {
        // Private rows: accuracy on the first 500 samples (the full test
        // set: `blindfold eval`, figures in docs/BENCHMARKS.md).
        o.eval_limit = 500;
        o.eval_batch = b == "mpc2" ? 8 : 64;
      }
      // he runs twice: latency mode (one sample per query) and batch mode
      // (one sample per slot, the whole evaluation in one query).
      std::vector<std::pair<std::string, BenchOptions>> rows;
      if (b == "he") {
        BenchOptions lat = o, bat = o;
        lat.he_mode = "latency";
        lat.runs = kDemoHeLatencyRuns;
        lat.eval_limit = kDemoHeLatencySamples;
        bat.he_mode = "batch";
        bat.runs = kDemoHeBatchRuns;
        bat.warmup = 0;
        bat.eval_batch = 1 << 20;  // the backend splits it into queries of the slot count
        rows = {{"he", lat}, {"he-batch", bat}};
      } else {
        rows = {{b, o}};
      }
      for (const auto& [label, ro] : rows) {
        backends::BackendOptions bo;
        bo.he_mode = ro.he_mode;
        bo.input_bound = ro.input_bound;
        const backends::Support sup = backends::make_backend(b)->supports_with(g, bo);
        if (!sup.ok) {
          std::printf("%-14s %-8s unsupported: %s\n", model_stem(path).c_str(), label.c_str(),
                      sup.reason.c_str());
          continue;
        }
        const BenchResult r = run_bench(g, model_stem(path), ro);
        double rate = r.throughput;
        if (label == "he-batch") {
          // The amortised rate of full queries: a query of max_batch samples
          // costs what the timed single-sample query cost.
          for (const auto& [name, value] : r.detail) {
            if (name == "max_batch" && r.latency_ms.median > 0)
              rate = value * 1000 / r.latency_ms.median;
          }
        }
        std::printf("%-14s %-8s %8.2f%% %9.2f%% %8lld %12.3f %12.0f %10lld %7lld  %s\n",
                    r.model.c_str(), label.c_str(), 100 * r.accuracy.value_or(0),
                    100 * r.agreement_with_plain.value_or(0), static_cast<long long>(r.samples),
                    r.latency_ms.median, rate,
                    static_cast<long long>(r.setup_bytes + r.online_bytes + r.offline_bytes),
                    static_cast<long long>(r.online_rounds), r.trust.summary.c_str());
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"blindfold: private inference on ONNX models, every technique side by side"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "blindfold 0.1.0");

  std::string model_path, backend = "plain", baseline, dataset, models_dir = default_models_dir();
  std::vector<std::string> inputs, outputs;
  std::int64_t limit = 0, batch = 1, eval_batch = 256;
  int runs = 20;
  unsigned threads = 0;
  bool json = false;
  int frac_bits = 0;
  double input_bound = 0;
  std::string reveal;
  std::string he_mode;
  bool trust_simulated_platform = false;
  auto mpc_options = [&](CLI::App* c) {
    c->add_flag("--trust-simulated-platform", trust_simulated_platform,
                "tee: accept the SIMULATED platform's evidence (no hardware protects the run)");
    c->add_option("--he-mode", he_mode,
                  "he: latency (one sample per query, packed in slots; default) | batch (one "
                  "sample per slot)")
        ->check(CLI::IsMember({"latency", "batch"}));
    c->add_option("--frac-bits", frac_bits, "mpc2/mpc3: fixed-point fractional bits (default 12)");
    c->add_option("--input-bound", input_bound,
                  "mpc2/mpc3: |input| bound the comparisons are sized for; he: the bound of the "
                  "error budget (default: the model's blindfold.input_bound metadata; none = "
                  "full 64-bit comparisons, he assumes 1)")
        ->check(positive_finite());
    c->add_option("--reveal", reveal, "mpc2/mpc3: what the client learns: logits (default) | label")
        ->check(CLI::IsMember({"logits", "label"}));
  };

  auto* inspect = app.add_subcommand("inspect", "ops, shapes, parameters and MACs per layer");
  inspect->add_option("model", model_path, "ONNX model file")->required();
  inspect->add_option("--backend,-b", backend, "he: also print the CKKS plan");
  inspect->add_option("--he-mode", he_mode, "he: latency (default) | batch")
      ->check(CLI::IsMember({"latency", "batch"}));
  inspect->add_option("--input-bound", input_bound, "he: |input| bound of the error budget")
      ->check(positive_finite());

  auto* run = app.add_subcommand("run", "run a model on .npy inputs, write .npy outputs");
  run->add_option("model", model_path, "ONNX model file")->required();
  run->add_option("--backend,-b", backend, "backend")->capture_default_str();
  run->add_option("--input,-i", inputs, "input .npy (float32), one per model input")->required();
  run->add_option("--output,-o", outputs, "output .npy, one per model output")->required();
  run->add_option("--threads", threads, "worker threads (0: all cores)");
  mpc_options(run);

  auto* eval = app.add_subcommand("eval", "accuracy and throughput on a labelled test set");
  eval->add_option("model", model_path, "ONNX model file")->required();
  eval->add_option("--dataset,-d", dataset, "fmnist | cancer")->required();
  eval->add_option("--limit,-n", limit, "first N samples only (0: all)");
  eval->add_option("--backend,-b", backend, "backend")->capture_default_str();
  eval->add_option("--batch", eval_batch,
                   "batch size (he --he-mode batch: default the whole set, split by the backend "
                   "into queries of one sample per slot)")
      ->capture_default_str();
  eval->add_option("--threads", threads, "worker threads (0: all cores)");
  eval->add_option("--models-dir", models_dir, "where shipped models and splits live");
  mpc_options(eval);

  auto* bench = app.add_subcommand("bench", "latency of one backend on one model");
  bench->add_option("model", model_path, "ONNX model file")->required();
  bench->add_option("--backend,-b", backend, "backend")->capture_default_str();
  bench->add_option("--batch", batch, "batch size")->capture_default_str();
  bench->add_option("--runs", runs, "timed runs")->capture_default_str();
  bench->add_option("--dataset,-d", dataset, "also measure accuracy on fmnist | cancer");
  bench->add_option("--limit,-n", limit, "evaluate the first N samples only (0: all)");
  bench->add_option("--threads", threads, "worker threads (0: all cores)");
  bench->add_option("--models-dir", models_dir, "where shipped models and splits live");
  bench->add_option("--baseline", baseline,
                    "also run BACKEND on the same inputs, interleaving its runs with the measured "
                    "backend's, and report the ratio (the same backend: an A/A check)");
  bench->add_flag("--json", json, "print one JSON object (docs/METRICS.md)");
  mpc_options(bench);

  auto* demo =
      app.add_subcommand("demo", "run the shipped models on every backend; print the table");
  demo->add_option("--models-dir", models_dir, "where the shipped models live");
  demo->add_option("--threads", threads, "worker threads (0: all cores)");

  // netproxy, netprobe serve|measure: the network test bed (scripts/netbed).
  const auto net_cmds = add_net_commands(app);
  // certs, party: the multi-process party mesh over TLS (net/mesh.h).
  const auto party_cmds = add_party_commands(app);
  // serve, infer: the he backend's server and client over TLS.
  const auto he_cmds = add_he_commands(app);
  // serve, infer --backend tee: the enclave host and the attesting client.
  const auto tee_cmds = add_tee_commands(app);
  // attest verify: attestation evidence by hand (tee/verify.h, tee/policy.h).
  const auto attest_cmds = add_attest_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    backends::BackendOptions bo;
    bo.threads = threads;
    bo.frac_bits = frac_bits;
    bo.output = reveal;
    bo.input_bound = input_bound;
    bo.he_mode = he_mode;
    bo.trust_simulated_platform = trust_simulated_platform;
    bo.model_path = model_path;
    if (*inspect) {
      const int rc = cmd_inspect(model_path);
      if (backend == "he") return cmd_he_plan(model_path, bo);
      if (backend != "plain") {
        throw_error(ErrorCategory::kBadInput, "inspect: --backend prints the plan of he only");
      }
      return rc;
    }
    if (*run) return cmd_run(model_path, backend, inputs, outputs, bo);
    if (*eval) {
      if (eval_batch < 1) throw_error(ErrorCategory::kBadInput, "--batch must be at least 1");
      // A batch-mode query costs the same for 1 or 8192 samples: hand the
      // backend everything and let it fill whole queries.
      if (backend == "he" && he_mode == "batch" && eval->count("--batch") == 0)
        eval_batch = 1 << 30;
      return cmd_eval(model_path, backend, dataset, limit, eval_batch, bo, models_dir);
    }
    if (*bench) {
      BenchOptions o;
      o.backend = backend;
      o.batch = batch;
      o.runs = runs;
      o.threads = threads;
      o.frac_bits = frac_bits;
      o.output = reveal;
      o.input_bound = input_bound;
      o.he_mode = he_mode;
      o.trust_simulated_platform = trust_simulated_platform;
      o.baseline = baseline;
      if (!dataset.empty()) o.dataset = dataset;
      o.eval_limit = limit;
      o.models_dir = models_dir;
      o.progress = !json && isatty(STDERR_FILENO) != 0;
      return cmd_bench(model_path, o, json);
    }
    if (*demo) return cmd_demo(models_dir, threads);
    if (net_cmds->selected()) return net_cmds->run();
    if (party_cmds->selected()) return party_cmds->run();
    if (tee_cmds->selected()) return tee_cmds->run();
    if (he_cmds->selected()) return he_cmds->run();
    if (attest_cmds->selected()) return attest_cmds->run();
  } catch (const Error& e) {
    std::fprintf(stderr, "blindfold: %s: %s\n", std::string(category_name(e.category())).c_str(),
                 e.what());
    return exit_code(e.category());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "blindfold: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "blindfold: unexpected error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace blindfold::app
