// Plaintext float32 kernels for every op: the reference every private backend
// is checked against. Kernels write into outputs already reset to the dtype
// and shape that shape inference gave; they allocate only scratch space.
#pragma once

#include <span>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "model/graph.h"

namespace blindfold::model {

/// Runs `node`. inputs[i] is nullptr for an omitted optional input; outputs
/// are pre-shaped. Throws Error(kBadModel) for attribute values the kernel
/// does not support, naming the node.
void run_node(const Node& node, std::span<const Tensor* const> inputs,
              std::span<Tensor* const> outputs, ThreadPool& pool);

}  // namespace blindfold::model
