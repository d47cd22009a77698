// The `blindfold` binary end to end: every command on the shipped models, and
// bad input of every kind giving one clear line on stderr and a non-zero exit.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/npy.h"
#include "tests/process_util.h"

namespace fs = std::filesystem;

namespace {

const std::string kBin = BLINDFOLD_BIN;
const std::string kRoot = BLINDFOLD_SOURCE_DIR;

using Result = blindfold::testutil::CommandResult;

Result sh(const std::string& args) {
  return blindfold::testutil::run_command(
      kBin, args, fs::temp_directory_path() / ("bf_cli_" + std::to_string(::getpid())));
}

std::string tmp(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("bf_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

void expect_clean_error(const Result& r, int code, const std::string& needle) {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("blindfold: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

}  // namespace

TEST(Cli, InspectShowsOpsShapesParamsMacs) {
  const Result r = sh("inspect " + kRoot + "/models/fmnist-lenet.onnx");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Conv"), std::string::npos);
  EXPECT_NE(r.out.find("MaxPool"), std::string::npos);
  EXPECT_NE(r.out.find("[N, 1, 28, 28]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[N, 10]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MACs per sample"), std::string::npos);
}

TEST(Cli, RunWritesOutputsForAnyBatch) {
  const std::string out = tmp("logits.npy");
  const Result r = sh("run " + kRoot + "/models/fmnist-lenet.onnx --input " + kRoot +
                      "/models/fixtures/fmnist-test-first8.npy --output " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  const blindfold::Tensor y = blindfold::read_npy(out);
  ASSERT_EQ(y.shape(), (blindfold::Shape{8, 10}));
  std::ifstream lab(kRoot + "/models/fixtures/fmnist-test-first8.labels.txt");
  int correct = 0;
  for (int i = 0; i < 8; ++i) {
    int l;
    lab >> l;
    const float* row = y.f32().data() + i * 10;
    correct += std::max_element(row, row + 10) - row == l;
  }
  EXPECT_GE(correct, 6);  // the LeNet is ~90% accurate
}

TEST(Cli, EvalPrintsAccuracy) {
  const Result r = sh("eval " + kRoot + "/models/fmnist-mlp.onnx --dataset fmnist --limit 500");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("accuracy"), std::string::npos);
  EXPECT_NE(r.out.find("/500)"), std::string::npos) << r.out;
  const Result c = sh("eval " + kRoot + "/models/cancer-logreg.onnx --dataset cancer");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("accuracy"), std::string::npos);
}

TEST(Cli, BenchJsonHasTheCommonMetrics) {
  const Result r = sh("bench " + kRoot +
                      "/models/fmnist-lenet.onnx --backend plain --batch 4 --runs 3 "
                      "--dataset fmnist --limit 200 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k :
       {"model", "backend", "batch", "runs", "latency_ms", "baseline", "phases_ms", "bytes",
        "rounds", "accuracy", "agreement_with_plain", "samples", "trust", "security_bits"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  EXPECT_TRUE(j["baseline"].is_null());  // no --baseline
  EXPECT_EQ(j["batch"], 4);
  EXPECT_EQ(j["samples"], 200);
  EXPECT_GT(j["latency_ms"]["median"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["agreement_with_plain"].get<double>(), 1.0);
  for (const char* k : {"setup", "offline", "online"}) {
    EXPECT_TRUE(j["phases_ms"].contains(k));
    EXPECT_TRUE(j["bytes"].contains(k));
  }
}

// Structure only: the ratios are the machine's.
TEST(Cli, BenchBaselineJsonAndText) {
  const std::string model = kRoot + "/models/fmnist-mlp.onnx";
  const Result r = sh("bench " + model + " --backend plain --baseline plain --runs 4 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["runs"], 4);
  ASSERT_TRUE(j["baseline"].is_object()) << r.out;
  const auto& b = j["baseline"];
  for (const char* k :
       {"backend", "latency_ms", "ratio_of_medians", "ratio_of_minima", "median_block_ratio"}) {
    EXPECT_TRUE(b.contains(k)) << k;
  }
  EXPECT_EQ(b["backend"], "plain");
  for (const char* k : {"median", "min", "max"}) {
    EXPECT_GT(b["latency_ms"][k].get<double>(), 0.0) << k;
  }
  for (const char* k : {"ratio_of_medians", "ratio_of_minima", "median_block_ratio"}) {
    EXPECT_GT(b[k].get<double>(), 0.0) << k;
  }
  const Result t = sh("bench " + model + " --backend plain --baseline plain --runs 2");
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("vs plain: "), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("median block ratio"), std::string::npos) << t.out;
}

TEST(Cli, MissingModelFile) {
  expect_clean_error(sh("inspect /nonexistent/m.onnx"), 8, "cannot open");
}

TEST(Cli, TruncatedAndCorruptedModels) {
  const std::string src = kRoot + "/models/fmnist-lenet.onnx";
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const std::string cut = tmp("cut.onnx");
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  expect_clean_error(sh("inspect " + cut), 2, "cut.onnx");
  std::string bad = bytes;
  for (std::size_t i = 40; i < bad.size(); i += 97) bad[i] = static_cast<char>(bad[i] ^ 0x5a);
  const std::string corrupt = tmp("corrupt.onnx");
  std::ofstream(corrupt, std::ios::binary) << bad;
  const Result r = sh("inspect " + corrupt);
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(lines(r.err), 1) << r.err;
}

TEST(Cli, WrongInputShapeDtypeAndAbsurdDims) {
  const std::string model = kRoot + "/models/fmnist-mlp.onnx";
  const std::string wrong = tmp("wrong.npy");
  blindfold::write_npy(wrong, blindfold::Tensor::from_floats({2, 5}, std::vector<float>(10)));
  expect_clean_error(sh("run " + model + " -i " + wrong + " -o " + tmp("o.npy")), 3,
                     "must have shape [N, 1, 28, 28]");
  const std::string ints = tmp("ints.npy");
  blindfold::write_npy(
      ints, blindfold::Tensor::from_ints({1, 1, 28, 28}, std::vector<std::int64_t>(784)));
  expect_clean_error(sh("run " + model + " -i " + ints + " -o " + tmp("o.npy")), 3, "float32");
  // A header claiming 2^40 x 2^40 elements with no payload.
  const std::string absurd = tmp("absurd.npy");
  std::string h =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }";
  h.append(64 - (10 + h.size() + 1) % 64, ' ');
  h.push_back('\n');
  std::string file = "\x93NUMPY\x01";
  file.push_back('\0');
  file.push_back(static_cast<char>(h.size() & 0xff));
  file.push_back(static_cast<char>(h.size() >> 8));
  std::ofstream(absurd, std::ios::binary) << file + h;
  expect_clean_error(sh("run " + model + " -i " + absurd + " -o " + tmp("o.npy")), 3, "2^31");
  expect_clean_error(sh("run " + model + " -i /nonexistent.npy -o " + tmp("o.npy")), 8,
                     "cannot open");
}

TEST(Cli, UnknownBackendAndDataset) {
  const std::string model = kRoot + "/models/fmnist-mlp.onnx";
  expect_clean_error(sh("bench " + model + " --backend nope"), 3, "unknown backend 'nope'");
  expect_clean_error(sh("bench " + model + " --baseline nosuch"), 3,
                     "--baseline: unknown backend 'nosuch'");
  expect_clean_error(sh("eval " + model + " --dataset imagenet"), 3, "unknown dataset");
}

TEST(Cli, DemoPrintsThePlaintextRow) {
  const Result r = sh("demo");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* m : {"fmnist-mlp", "fmnist-lenet", "fmnist-he", "cancer-logreg"}) {
    EXPECT_NE(r.out.find(m), std::string::npos) << m;
  }
  EXPECT_NE(r.out.find("plain"), std::string::npos);
}
