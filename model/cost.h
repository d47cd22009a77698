// Static cost of a graph: multiply-accumulates and parameters per node, at
// batch size 1. Used by `blindfold inspect` and by planners.
#pragma once

#include <cstdint>

#include "model/graph.h"

namespace blindfold::model {

/// Multiply-accumulates of `node` at batch 1 (0 for ops without products).
/// Requires annotated shapes.
std::int64_t node_macs(const Graph& graph, const Node& node);

/// Float parameters read by `node` from constants.
std::int64_t node_params(const Graph& graph, const Node& node);

}  // namespace blindfold::model
