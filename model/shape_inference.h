// Shape and dtype inference for every op in the closed set. Shapes are static
// but for the batch dimension: a graph is inferred at batch 1 and batch 2 and
// each dimension that doubles is marked as scaling with the batch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/graph.h"

namespace blindfold::model {

/// What inference knows of one input of a node.
struct ValueInfo {
  DType dtype = DType::kFloat32;
  Shape shape;
  /// The value when it is a constant (initializer or folded), else nullptr.
  /// Ops whose output shape depends on an input's values (Reshape, Slice,
  /// Pad, Squeeze, Unsqueeze, ReduceMean axes, ...) require it.
  const Tensor* constant = nullptr;
  bool present = true;  // false for an omitted optional input
};

struct TypedShape {
  DType dtype = DType::kFloat32;
  Shape shape;
};

/// Output dtypes and shapes of `node`, one per output. Throws
/// Error(kBadModel) naming the node when inputs are inconsistent.
std::vector<TypedShape> infer_node(const Node& node, std::span<const ValueInfo> inputs);

/// Concrete shapes of every value (indexed by value id) when every graph
/// input's batch dimension is `batch`.
std::vector<TypedShape> infer_shapes(const Graph& graph, std::int64_t batch);

/// Fills Value::shape, batch_dims, dtype and shape_known for every value.
/// Graph inputs declare their batch dimension with batch_dims (see importer).
void annotate_shapes(Graph& graph);

}  // namespace blindfold::model
