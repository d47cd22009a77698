// ONNX import: the only code in Blindfold that knows protobuf. A model file is
// hostile input: sizes are checked before allocation, unsupported ops and
// domains are refused with the node, op and opset named.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/tensor.h"
#include "model/graph.h"

namespace blindfold::model {

/// Largest model file accepted (1 GiB).
inline constexpr std::int64_t kMaxModelBytes = std::int64_t{1} << 30;

struct ImportOptions {
  /// Run BatchNorm folding, identity removal and pruning after import (see
  /// passes.h). Constant folding and shape inference always run.
  bool optimize = true;
  /// Graph inputs whose names appear here are bound to these values and
  /// become constants (used to pin shape-like int64 inputs).
  std::vector<std::pair<std::string, Tensor>> bind_inputs;
};

/// Parses a serialized ModelProto. Throws Error(kBadModel) on any problem.
Graph import_onnx(std::string_view bytes, const ImportOptions& options = {});
/// Reads and parses a .onnx file. Throws Error(kIo) when it cannot be read.
Graph import_onnx_file(const std::string& path, const ImportOptions& options = {});

/// Parses a serialized TensorProto (ONNX test data). float, double (converted
/// to float32), int32/int64 (to int64) and bool (to int64) are accepted.
Tensor tensor_from_onnx(std::string_view bytes);
Tensor tensor_from_onnx_file(const std::string& path);

}  // namespace blindfold::model
