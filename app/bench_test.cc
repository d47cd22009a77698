// run_bench with a baseline (BenchOptions::baseline): the interleaved A/B
// run's structure. Timing values are the machine's, never asserted.
#include "app/bench.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "model/onnx_import.h"

namespace blindfold::app {
namespace {

// The source tree (BLINDFOLD_ROOT, set by CTest; else the working directory).
std::string root() {
  const char* r = std::getenv("BLINDFOLD_ROOT");
  return r ? r : ".";
}

bool positive_finite(double v) {
  return std::isfinite(v) && v > 0;
}

TEST(Bench, BaselineRunsInterleavedAndReportsRatios) {
  const model::Graph g = model::import_onnx_file(root() + "/models/fmnist-mlp.onnx");
  BenchOptions o;
  o.backend = "plain";
  o.baseline = "plain";
  o.runs = 5;
  o.threads = 1;
  const BenchResult r = run_bench(g, "fmnist-mlp", o);
  EXPECT_EQ(r.runs, 5);
  ASSERT_TRUE(r.baseline.has_value());
  const BaselineResult& b = *r.baseline;
  EXPECT_EQ(b.backend, "plain");
  EXPECT_TRUE(positive_finite(b.latency_ms.min));
  EXPECT_LE(b.latency_ms.min, b.latency_ms.median);
  EXPECT_LE(b.latency_ms.median, b.latency_ms.max);
  EXPECT_TRUE(positive_finite(b.ratio_of_medians)) << b.ratio_of_medians;
  EXPECT_TRUE(positive_finite(b.ratio_of_minima)) << b.ratio_of_minima;
  EXPECT_TRUE(positive_finite(b.median_block_ratio)) << b.median_block_ratio;
  EXPECT_TRUE(positive_finite(r.latency_ms.median));
}

// One run is one block pair: every ratio is that pair's, the summaries one call's.
TEST(Bench, OneRunIsOnePair) {
  const model::Graph g = model::import_onnx_file(root() + "/models/fmnist-mlp.onnx");
  BenchOptions o;
  o.baseline = "plain";
  o.runs = 1;
  o.threads = 1;
  const BenchResult r = run_bench(g, "fmnist-mlp", o);
  ASSERT_TRUE(r.baseline.has_value());
  const BaselineResult& b = *r.baseline;
  EXPECT_EQ(b.latency_ms.min, b.latency_ms.max);
  EXPECT_EQ(r.latency_ms.min, r.latency_ms.max);
  EXPECT_EQ(b.ratio_of_medians, b.median_block_ratio);
  EXPECT_EQ(b.ratio_of_minima, b.median_block_ratio);
}

TEST(Bench, NoBaselineByDefault) {
  const model::Graph g = model::import_onnx_file(root() + "/models/fmnist-mlp.onnx");
  BenchOptions o;
  o.runs = 2;
  o.threads = 1;
  EXPECT_FALSE(run_bench(g, "fmnist-mlp", o).baseline.has_value());
}

TEST(Bench, UnknownBaselineNamesIt) {
  const model::Graph g = model::import_onnx_file(root() + "/models/fmnist-mlp.onnx");
  BenchOptions o;
  o.baseline = "nosuch";
  try {
    run_bench(g, "fmnist-mlp", o);
    FAIL() << "an unknown baseline was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
    EXPECT_NE(std::string(e.what()).find("--baseline: unknown backend 'nosuch'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace blindfold::app
