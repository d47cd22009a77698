// Helpers shared by the backends that lower a Graph to their own program
// (backends/mpc/plan.cc, backends/he/layers.cc).
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/tensor.h"
#include "model/graph.h"

namespace blindfold::backends::lowering {

/// Error(kUnsupported) naming the node and its op: "node 'X' (Op): why".
[[noreturn]] inline void unsupported(const model::Node& n, const std::string& why) {
  throw_error(ErrorCategory::kUnsupported,
              "node '" + n.name + "' (" + std::string(model::op_name(n.op)) + "): " + why);
}

/// Product of the dimensions (shapes the importer has already bounded).
inline std::int64_t numel(const Shape& s) {
  std::int64_t n = 1;
  for (std::int64_t d : s) n *= d;
  return n;
}

/// A value's shape per sample: it must have a known shape whose leading
/// dimension, and only that one, is the batch (of size 1 in the graph).
/// Throws unsupported(n, ...) otherwise.
inline Shape per_sample(const model::Value& v, const model::Node& n) {
  if (!v.shape_known || v.shape.empty() || v.batch_dims.empty() || !v.batch_dims[0]) {
    unsupported(n, "value '" + v.name + "' has no leading batch dimension");
  }
  for (std::size_t d = 1; d < v.batch_dims.size(); ++d) {
    if (v.batch_dims[d]) {
      unsupported(n,
                  "value '" + v.name + "' scales with the batch in dimension " + std::to_string(d));
    }
  }
  if (v.shape[0] != 1)
    unsupported(n, "value '" + v.name + "' has batch dimension " + std::to_string(v.shape[0]));
  return Shape(v.shape.begin() + 1, v.shape.end());
}

}  // namespace blindfold::backends::lowering
