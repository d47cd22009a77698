// Runs a Graph on plaintext tensors. Shapes are inferred once per batch size
// and buffers are reused across runs, so a steady-state run allocates nothing.
// Not thread-safe: one Executor per thread (they may share the Graph).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "model/graph.h"
#include "model/shape_inference.h"

namespace blindfold::model {

class Executor {
 public:
  /// `graph` must outlive the executor.
  explicit Executor(const Graph& graph, ThreadPool& pool = ThreadPool::global());
  /// The pool the kernels run on.
  ThreadPool& pool() const { return pool_; }

  /// Runs the graph on `inputs` (one per graph input, in order). The batch
  /// size is read from the first batch-scaled dimension of the inputs.
  /// Throws Error(kBadInput) naming the input on a wrong count, dtype or shape.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs);

  /// Batch size implied by `input` for graph input `index`, after checking
  /// its dtype and every fixed dimension. Throws kBadInput.
  std::int64_t batch_of(std::size_t index, const Tensor& input) const;

 private:
  void prepare(std::int64_t batch);

  const Graph& graph_;
  ThreadPool& pool_;
  std::int64_t prepared_batch_ = -1;
  std::vector<TypedShape> shapes_;
  std::vector<Tensor> slots_;  // one per value (unused for constants)
};

}  // namespace blindfold::model
