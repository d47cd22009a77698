// Runs ONNX's own backend node tests (generated offline by
// scripts/gen_onnx_node_tests.py) through the importer and the plaintext
// engine. A case is "unsupported" when the importer refuses it with
// ErrorCategory::kUnsupported (an op outside the closed set, an element type
// other than float/int64, or an op variant we do not implement, each named in
// the message); every other case must match ONNX's expected outputs.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/error.h"
#include "model/executor.h"
#include "model/onnx_import.h"

namespace fs = std::filesystem;
using namespace blindfold;

namespace {

std::string data_dir() {
  const char* d = std::getenv("BLINDFOLD_ONNX_NODE_DIR");
  return d ? d : "";
}

std::vector<Tensor> load_set(const fs::path& dir, const char* prefix) {
  std::vector<Tensor> out;
  for (int k = 0;; ++k) {
    const fs::path p = dir / (std::string(prefix) + std::to_string(k) + ".pb");
    if (!fs::exists(p)) break;
    out.push_back(model::tensor_from_onnx_file(p.string()));
  }
  return out;
}

// Returns "" on a match, else what differs.
std::string compare(const Tensor& got, const Tensor& want) {
  if (got.shape() != want.shape()) {
    return "shape " + shape_to_string(got.shape()) + " != expected " +
           shape_to_string(want.shape());
  }
  if (want.dtype() == DType::kInt64) {
    if (got.dtype() != DType::kInt64) return "dtype float, expected int64";
    const auto a = got.i64(), b = want.i64();
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (a[i] != b[i])
        return "element " + std::to_string(i) + ": " + std::to_string(a[i]) +
               " != " + std::to_string(b[i]);
    }
    return "";
  }
  if (got.dtype() != DType::kFloat32) return "dtype int64, expected float";
  const auto a = got.f32(), b = want.f32();
  // The tolerances of ONNX's backend test runner (rtol 1e-3) with a small
  // absolute floor for values near zero.
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i]) && std::isnan(a[i])) continue;
    if (std::isinf(b[i]) && a[i] == b[i]) continue;
    if (!(std::fabs(a[i] - b[i]) <= 1e-5f + 1e-3f * std::fabs(b[i]))) {
      return "element " + std::to_string(i) + ": " + std::to_string(a[i]) +
             " != " + std::to_string(b[i]);
    }
  }
  return "";
}

}  // namespace

TEST(OnnxNodeTests, EverySupportedCasePasses) {
  const std::string root = data_dir();
  if (root.empty() || !fs::exists(fs::path(root) / "node")) {
    FAIL() << "ONNX node test data not found; set BLINDFOLD_ONNX_NODE_DIR (ctest does)";
  }
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(fs::path(root) / "node")) cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());
  int passed = 0, failed = 0, unsupported = 0;
  std::map<std::string, int> unsupported_reasons;
  std::vector<std::string> failures;
  for (const fs::path& dir : cases) {
    const std::string name = dir.filename().string();
    const fs::path set = dir / "test_data_set_0";
    try {
      // Learn the runtime inputs from the model itself (a tensor-typed graph
      // input per test input). int64 ones (shapes, axes, pads, indices) are
      // pinned to the case's values so that shapes stay static.
      onnx::ModelProto mp;
      {
        std::ifstream in(dir / "model.onnx", std::ios::binary);
        if (!mp.ParseFromIstream(&in)) throw Error(ErrorCategory::kBadModel, "cannot parse model");
      }
      for (const auto& n : mp.graph().node()) {
        if ((!n.domain().empty() && n.domain() != "ai.onnx") || !model::op_from_name(n.op_type())) {
          throw Error(ErrorCategory::kUnsupported, "unsupported op '" + n.op_type() + "'");
        }
      }
      std::vector<std::string> input_names;
      std::vector<bool> is_int;
      std::set<std::string> inits;
      for (const auto& t : mp.graph().initializer()) inits.insert(t.name());
      for (const auto& vi : mp.graph().input()) {
        if (inits.count(vi.name())) continue;
        if (!vi.type().has_tensor_type()) {
          throw Error(ErrorCategory::kUnsupported,
                      "graph input '" + vi.name() + "' is not a tensor");
        }
        input_names.push_back(vi.name());
        is_int.push_back(vi.type().tensor_type().elem_type() == onnx::TensorProto_DataType_INT64);
      }
      const std::vector<Tensor> inputs = load_set(set, "input_");
      const std::vector<Tensor> expected = load_set(set, "output_");
      if (input_names.size() != inputs.size()) {
        throw Error(ErrorCategory::kBadModel, "input count mismatch");
      }
      model::ImportOptions opt;
      std::vector<Tensor> runtime;
      for (std::size_t k = 0; k < inputs.size(); ++k) {
        if (is_int[k]) {
          opt.bind_inputs.emplace_back(input_names[k], inputs[k]);
        } else {
          runtime.push_back(inputs[k]);
        }
      }
      const model::Graph g = model::import_onnx_file((dir / "model.onnx").string(), opt);
      model::Executor ex(g);
      const std::vector<Tensor> got = ex.run(runtime);
      if (got.size() < expected.size()) throw Error(ErrorCategory::kBadModel, "too few outputs");
      std::string diff;
      for (std::size_t k = 0; k < expected.size() && diff.empty(); ++k) {
        diff = compare(got[k], expected[k]);
        if (!diff.empty()) diff = "output " + std::to_string(k) + ": " + diff;
      }
      if (diff.empty()) {
        ++passed;
      } else {
        ++failed;
        failures.push_back(name + ": " + diff);
      }
    } catch (const Error& e) {
      if (e.category() == ErrorCategory::kUnsupported) {
        ++unsupported;
        std::string why = e.what();
        const auto q = why.find("unsupported op '");
        if (q != std::string::npos) why = why.substr(q, why.find('\'', q + 16) - q + 1);
        ++unsupported_reasons[why.substr(0, 80)];
      } else {
        ++failed;
        failures.push_back(name + ": " + std::string(category_name(e.category())) + ": " +
                           e.what());
      }
    } catch (const std::exception& e) {
      ++failed;
      failures.push_back(name + ": exception: " + e.what());
    }
  }
  for (const auto& f : failures) std::printf("FAILED %s\n", f.c_str());
  if (std::getenv("BLINDFOLD_VERBOSE")) {
    for (const auto& [why, n] : unsupported_reasons)
      std::printf("unsupported x%d: %s\n", n, why.c_str());
  }
  std::printf("ONNX node tests: %d passed, %d failed, %d unsupported (of %zu cases)\n", passed,
              failed, unsupported, cases.size());
  EXPECT_EQ(failed, 0);
  EXPECT_GT(passed, 100);
}
