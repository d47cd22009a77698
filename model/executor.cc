#include "model/executor.h"

#include "core/error.h"
#include "model/kernels.h"

namespace blindfold::model {

Executor::Executor(const Graph& graph, ThreadPool& pool) : graph_(graph), pool_(pool) {}

std::int64_t Executor::batch_of(std::size_t index, const Tensor& input) const {
  const Value& v = graph_.value(graph_.inputs.at(index));
  if (input.dtype() != v.dtype) {
    throw_error(ErrorCategory::kBadInput, "input '" + v.name + "' must be " +
                                              std::string(dtype_name(v.dtype)) + ", got " +
                                              std::string(dtype_name(input.dtype())));
  }
  if (input.rank() != v.shape.size()) {
    throw_error(ErrorCategory::kBadInput, "input '" + v.name + "' must have shape " +
                                              v.shape_string() + ", got " +
                                              shape_to_string(input.shape()));
  }
  std::int64_t batch = -1;
  for (std::size_t d = 0; d < v.shape.size(); ++d) {
    const std::int64_t got = input.dim(d);
    const bool scaled = d < v.batch_dims.size() && v.batch_dims[d];
    bool ok;
    if (scaled) {
      ok = v.shape[d] > 0 && got > 0 && got % v.shape[d] == 0 &&
           (batch < 0 || got / v.shape[d] == batch);
      if (ok) batch = got / v.shape[d];
    } else {
      ok = got == v.shape[d];
    }
    if (!ok) {
      throw_error(ErrorCategory::kBadInput, "input '" + v.name + "' must have shape " +
                                                v.shape_string() + ", got " +
                                                shape_to_string(input.shape()));
    }
  }
  return batch < 0 ? 1 : batch;
}

void Executor::prepare(std::int64_t batch) {
  if (batch == prepared_batch_) return;
  shapes_ = infer_shapes(graph_, batch);
  slots_.resize(graph_.values.size());
  for (const Node& n : graph_.nodes) {
    for (int o : n.outputs) {
      const TypedShape& ts = shapes_[static_cast<std::size_t>(o)];
      slots_[static_cast<std::size_t>(o)].reset(ts.dtype, ts.shape);
    }
  }
  prepared_batch_ = batch;
}

std::vector<Tensor> Executor::run(const std::vector<Tensor>& inputs) {
  if (inputs.size() != graph_.inputs.size()) {
    throw_error(ErrorCategory::kBadInput, "the model takes " +
                                              std::to_string(graph_.inputs.size()) +
                                              " inputs, got " + std::to_string(inputs.size()));
  }
  std::int64_t batch = 1;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::int64_t b = batch_of(i, inputs[i]);
    const Value& v = graph_.value(graph_.inputs[i]);
    bool scaled = false;
    for (bool s : v.batch_dims) scaled = scaled || s;
    if (!scaled) continue;
    if (i > 0 && batch != 1 && b != batch) {
      throw_error(ErrorCategory::kBadInput, "inputs disagree on the batch size");
    }
    batch = b;
  }
  prepare(batch);

  std::vector<const Tensor*> ptr(graph_.values.size(), nullptr);
  for (std::size_t i = 0; i < graph_.values.size(); ++i) {
    const Value& v = graph_.values[i];
    if (v.is_constant()) ptr[i] = &*v.constant;
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ptr[static_cast<std::size_t>(graph_.inputs[i])] = &inputs[i];
  }
  std::vector<const Tensor*> ins;
  std::vector<Tensor*> outs;
  for (const Node& n : graph_.nodes) {
    ins.clear();
    outs.clear();
    for (int i : n.inputs) ins.push_back(i >= 0 ? ptr[static_cast<std::size_t>(i)] : nullptr);
    for (int o : n.outputs) {
      Tensor* t = &slots_[static_cast<std::size_t>(o)];
      const TypedShape& ts = shapes_[static_cast<std::size_t>(o)];
      if (t->shape() != ts.shape || t->dtype() != ts.dtype) t->reset(ts.dtype, ts.shape);
      outs.push_back(t);
      ptr[static_cast<std::size_t>(o)] = t;
    }
    run_node(n, ins, outs, pool_);
  }
  std::vector<Tensor> result;
  result.reserve(graph_.outputs.size());
  for (int o : graph_.outputs) {
    const Tensor* t = ptr[static_cast<std::size_t>(o)];
    if (!t) throw_error(ErrorCategory::kInternal, "graph output was not computed");
    result.push_back(*t);
  }
  return result;
}

}  // namespace blindfold::model
