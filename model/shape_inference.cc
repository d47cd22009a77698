#include "model/shape_inference.h"

#include "core/error.h"
#include "model/ops_internal.h"

namespace blindfold::model {

namespace detail {

void fail(const Node& node, const std::string& msg) {
  throw_error(ErrorCategory::kBadModel, node.label() + ": " + msg);
}

void unsupported(const Node& node, const std::string& msg) {
  throw_error(ErrorCategory::kUnsupported, node.label() + ": " + msg);
}

void expect_inputs(const Node& node, std::span<const ValueInfo> inputs, std::size_t lo,
                   std::size_t hi) {
  if (inputs.size() < lo || inputs.size() > hi) {
    fail(node,
         "expects " +
             (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)) +
             " inputs, has " + std::to_string(inputs.size()));
  }
  for (std::size_t i = 0; i < lo; ++i) {
    if (!inputs[i].present) fail(node, "required input " + std::to_string(i) + " is missing");
  }
}

std::int64_t normalize_axis(const Node& node, std::int64_t axis, std::int64_t rank) {
  if (axis < -rank || axis >= rank) {
    fail(node,
         "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

}  // namespace detail

std::vector<TypedShape> infer_node(const Node& node, std::span<const ValueInfo> inputs) {
  std::vector<TypedShape> out = detail::is_nn_op(node.op) ? detail::infer_nn(node, inputs)
                                                          : detail::infer_basic(node, inputs);
  if (out.size() != node.outputs.size()) {
    // Optional extra outputs (e.g. MaxPool indices, BatchNorm running stats)
    // are refused by the importer, so a mismatch is a bug.
    if (out.size() < node.outputs.size()) {
      detail::fail(node, "has " + std::to_string(node.outputs.size()) + " outputs; only " +
                             std::to_string(out.size()) + " supported");
    }
    out.resize(node.outputs.size());
  }
  for (const TypedShape& t : out) checked_numel(t.shape);
  return out;
}

std::vector<TypedShape> infer_shapes(const Graph& graph, std::int64_t batch) {
  if (batch < 1) throw_error(ErrorCategory::kBadInput, "batch size must be at least 1");
  std::vector<TypedShape> shapes(graph.values.size());
  std::vector<bool> known(graph.values.size(), false);
  for (std::size_t i = 0; i < graph.values.size(); ++i) {
    const Value& v = graph.values[i];
    if (v.is_constant()) {
      shapes[i] = {v.constant->dtype(), v.constant->shape()};
      known[i] = true;
    }
  }
  for (int id : graph.inputs) {
    const Value& v = graph.value(id);
    shapes[static_cast<std::size_t>(id)] = {v.dtype, v.shape_at(batch)};
    checked_numel(shapes[static_cast<std::size_t>(id)].shape);
    known[static_cast<std::size_t>(id)] = true;
  }
  std::vector<ValueInfo> infos;
  for (const Node& node : graph.nodes) {
    infos.clear();
    for (int in : node.inputs) {
      ValueInfo vi;
      if (in < 0) {
        vi.present = false;
      } else {
        if (!known[static_cast<std::size_t>(in)]) {
          detail::fail(node, "input '" + graph.value(in).name + "' has no known shape");
        }
        vi.dtype = shapes[static_cast<std::size_t>(in)].dtype;
        vi.shape = shapes[static_cast<std::size_t>(in)].shape;
        const Value& v = graph.value(in);
        if (v.is_constant()) vi.constant = &*v.constant;
      }
      infos.push_back(std::move(vi));
    }
    std::vector<TypedShape> out = infer_node(node, infos);
    for (std::size_t k = 0; k < node.outputs.size(); ++k) {
      shapes[static_cast<std::size_t>(node.outputs[k])] = std::move(out[k]);
      known[static_cast<std::size_t>(node.outputs[k])] = true;
    }
  }
  return shapes;
}

void annotate_shapes(Graph& graph) {
  const std::vector<TypedShape> s1 = infer_shapes(graph, 1);
  bool batched = false;
  for (int id : graph.inputs) {
    for (bool b : graph.value(id).batch_dims) batched = batched || b;
  }
  const std::vector<TypedShape> s2 = batched ? infer_shapes(graph, 2) : s1;
  for (std::size_t i = 0; i < graph.values.size(); ++i) {
    Value& v = graph.values[i];
    v.dtype = s1[i].dtype;
    v.shape = s1[i].shape;
    v.batch_dims.assign(v.shape.size(), false);
    if (s2[i].shape.size() != v.shape.size()) {
      throw_error(ErrorCategory::kBadModel,
                  "the rank of '" + v.name + "' depends on the batch size");
    }
    for (std::size_t d = 0; d < v.shape.size(); ++d) {
      if (s2[i].shape[d] == v.shape[d]) continue;
      if (s2[i].shape[d] != 2 * v.shape[d]) {
        throw_error(ErrorCategory::kBadModel, "dimension " + std::to_string(d) + " of '" + v.name +
                                                  "' does not scale linearly with the batch");
      }
      v.batch_dims[d] = true;
    }
    v.shape_known = true;
  }
}

}  // namespace blindfold::model
