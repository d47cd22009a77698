// 2-D sliding windows (Conv, MaxPool, AveragePool): an ONNX node's strides,
// dilations, pads, auto_pad (NOTSET, VALID, SAME_UPPER, SAME_LOWER) and
// ceil_mode resolved against an input size. The plaintext engine's shape
// inference and kernels use it, and so do the backends that lower these
// nodes, so every engine reads the attributes the same way.
#pragma once

#include <cstdint>

#include "model/graph.h"

namespace blindfold::model {

enum class WindowOp { kConv, kMaxPool, kAveragePool };

/// Index 0 is the height, 1 the width.
struct Window {
  std::int64_t in[2] = {0, 0};
  std::int64_t kernel[2] = {1, 1};
  std::int64_t stride[2] = {1, 1};
  std::int64_t dilation[2] = {1, 1};
  std::int64_t pad_begin[2] = {0, 0};
  std::int64_t pad_end[2] = {0, 0};
  std::int64_t out[2] = {1, 1};
  // Extent of the dilated kernel.
  std::int64_t span(int d) const { return (kernel[d] - 1) * dilation[d] + 1; }
};

/// Resolves `node`'s window attributes for an input of in_h x in_w and a
/// kernel of k_h x k_w, following the ONNX formulas (including "a ceil_mode
/// window that would start in the right padding is dropped"; ceil_mode is
/// read for the pools only).
/// @throws Error(kBadModel) for malformed attributes (wrong count, strides or
///   dilations below 1, negative pads, an unknown auto_pad, a kernel larger
///   than the padded input), Error(kUnsupported) for pool pads not smaller
///   than the kernel (valid ONNX that onnxruntime refuses too).
Window resolve_window(const Node& node, std::int64_t in_h, std::int64_t in_w, std::int64_t k_h,
                      std::int64_t k_w, WindowOp op);

}  // namespace blindfold::model
