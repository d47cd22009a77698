// Helpers shared by the backends that lower a Graph to their own program
// (backends/mpc/plan.cc, backends/he/layers.cc).
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/tensor.h"
#include "model/graph.h"
#include "model/window.h"

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

/// Resolves a 2-D window node over an H x W input as the plaintext engine
/// does (model/window.h) and copies its strides, dilations and pads into
/// `g`, any layer description with fields sh, sw, dh, dw, pt, pl, pb, pr.
/// Returns the window (its output size, for the caller's checks).
template <typename G>
model::Window set_window(G& g, const model::Node& n, std::int64_t h, std::int64_t w,
                         std::int64_t kh, std::int64_t kw, model::WindowOp op) {
  const model::Window win = model::resolve_window(n, h, w, kh, kw, op);
  g.sh = win.stride[0];
  g.sw = win.stride[1];
  g.dh = win.dilation[0];
  g.dw = win.dilation[1];
  g.pt = win.pad_begin[0];
  g.pl = win.pad_begin[1];
  g.pb = win.pad_end[0];
  g.pr = win.pad_end[1];
  return win;
}

}  // namespace blindfold::backends::lowering
