#include "model/kernels.h"

#include "model/ops_internal.h"

namespace blindfold::model {

void run_node(const Node& node, std::span<const Tensor* const> inputs,
              std::span<Tensor* const> outputs, ThreadPool& pool) {
  if (detail::is_nn_op(node.op)) {
    detail::run_nn(node, inputs, outputs, pool);
  } else {
    detail::run_basic(node, inputs, outputs, pool);
  }
}

}  // namespace blindfold::model
