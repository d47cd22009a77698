// For the backends' tests only (blindfold_backends_test): where the shipped
// models are, random tensors, and small graphs built node by node and shaped
// by the plaintext engine's inference, so every backend's conformance tests
// build their cases the same way.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "model/graph.h"
#include "model/op.h"
#include "model/shape_inference.h"

namespace blindfold::backends::testutil {

/// The source tree (BLINDFOLD_ROOT, set by CTest; else the working directory).
inline std::string root() {
  const char* r = std::getenv("BLINDFOLD_ROOT");
  return r ? r : ".";
}

/// Uniform in [lo, hi).
inline Tensor random_tensor(std::mt19937& rng, Shape shape, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& f : v) f = dist(rng);
  return Tensor::from_floats(std::move(shape), std::move(v));
}

/// Builds small graphs: one input [N, ...], nodes appended in order.
class Builder {
 public:
  explicit Builder(Shape input_per_sample) {
    model::Value v;
    v.name = "x";
    v.shape = {1};
    v.shape.insert(v.shape.end(), input_per_sample.begin(), input_per_sample.end());
    v.batch_dims.assign(v.shape.size(), false);
    v.batch_dims[0] = true;
    v.shape_known = true;
    g.inputs.push_back(g.add_value(v));
  }
  int input() const { return g.inputs[0]; }
  int constant(const Tensor& t) {
    model::Value v;
    v.name = "c" + std::to_string(g.values.size());
    v.constant = t;
    v.shape = t.shape();
    v.batch_dims.assign(t.shape().size(), false);
    v.shape_known = true;
    return g.add_value(v);
  }
  int node(model::OpType op, std::vector<int> inputs,
           std::map<std::string, model::Attribute> attrs = {}) {
    model::Value out;
    out.name = "v" + std::to_string(g.values.size());
    const int o = g.add_value(out);
    model::Node n;
    n.name = std::string(model::op_name(op)) + "_" + std::to_string(g.nodes.size());
    n.op = op;
    n.inputs = std::move(inputs);
    n.outputs = {o};
    for (auto& [k, a] : attrs) n.attrs.set(k, a);
    n.attrs.owner = n.label();
    g.add_node(n);
    return o;
  }
  /// Marks `output` the graph's output and infers every shape.
  model::Graph finish(int output) {
    g.outputs = {output};
    model::annotate_shapes(g);
    return g;
  }
  model::Graph g;
};

inline model::Attribute ints(std::vector<std::int64_t> v) {
  return model::Attribute::of_ints(std::move(v));
}

}  // namespace blindfold::backends::testutil
