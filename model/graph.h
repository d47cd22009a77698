// The intermediate representation: a Graph of Nodes over Values. Shapes are
// static except for one symbolic batch dimension. Every backend lowers this
// IR; the ONNX importer is the only code that knows about protobuf.
//
// Ownership: a Graph owns its Values (with initializer tensors) and Nodes.
// Values and nodes refer to each other by index, so a Graph can be copied.
// Not thread-safe for mutation; concurrent const use is fine.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/op.h"

namespace blindfold::model {

/// One ONNX attribute, reduced to the kinds our ops use.
struct Attribute {
  enum class Kind { kInt, kFloat, kString, kInts, kFloats, kTensor };
  Kind kind = Kind::kInt;
  std::int64_t i = 0;
  float f = 0.0f;
  std::string s;
  std::vector<std::int64_t> ints;
  std::vector<float> floats;
  Tensor t;

  static Attribute of_int(std::int64_t v);
  static Attribute of_float(float v);
  static Attribute of_string(std::string v);
  static Attribute of_ints(std::vector<std::int64_t> v);
  static Attribute of_floats(std::vector<float> v);
  static Attribute of_tensor(Tensor v);
};

struct Node;

/// Typed attribute access that names the node and the attribute in errors.
class Attributes {
 public:
  void set(const std::string& name, Attribute a) { map_[name] = std::move(a); }
  bool has(const std::string& name) const { return map_.count(name) != 0; }
  const std::map<std::string, Attribute>& all() const { return map_; }

  std::int64_t get_int(const std::string& name, std::int64_t def) const;
  float get_float(const std::string& name, float def) const;
  std::string get_string(const std::string& name, const std::string& def) const;
  std::vector<std::int64_t> get_ints(const std::string& name,
                                     const std::vector<std::int64_t>& def) const;
  std::vector<float> get_floats(const std::string& name, const std::vector<float>& def) const;
  const Tensor& get_tensor(const std::string& name) const;

  /// Used in error messages ("attribute 'pads' of node conv1 (Conv)").
  std::string owner;

 private:
  const Attribute& get(const std::string& name, Attribute::Kind kind) const;
  std::map<std::string, Attribute> map_;
};

/// A named value: a graph input, an initializer (constant) or a node output.
struct Value {
  std::string name;
  DType dtype = DType::kFloat32;
  /// Shape at batch size 1 (see batch_dims). Empty until shape inference for
  /// intermediate values.
  Shape shape;
  /// batch_dims[d] is true when dimension d scales with the batch size: its
  /// size at batch B is shape[d] * B.
  std::vector<bool> batch_dims;
  bool shape_known = false;
  /// Set for initializers and folded constants.
  std::optional<Tensor> constant;
  /// Index of the producing node, or -1 for inputs and initializers.
  int producer = -1;

  bool is_constant() const { return constant.has_value(); }
  /// Concrete shape at batch size `batch`.
  Shape shape_at(std::int64_t batch) const;
  /// "[N, 1, 28, 28]" with the batch dimension shown symbolically.
  std::string shape_string() const;
};

struct Node {
  std::string name;
  OpType op = OpType::kIdentity;
  /// Value indices; -1 marks an omitted optional input.
  std::vector<int> inputs;
  std::vector<int> outputs;
  Attributes attrs;
  /// Opset version of the default ONNX domain the node was written for;
  /// some ops changed attributes into inputs across versions.
  int opset = 13;

  /// "node 'conv1' (Conv)" for error messages.
  std::string label() const;
};

/// Symbolic name of the batch dimension in printed shapes.
inline constexpr const char* kBatchSymbol = "N";

class Graph {
 public:
  std::vector<Value> values;
  std::vector<Node> nodes;  // in topological order (the importer checks)
  std::vector<int> inputs;  // runtime inputs (not initializers)
  std::vector<int> outputs;
  int opset = 13;
  std::string name;
  std::string producer;
  /// The model's metadata_props (ModelProto field 14), key -> value, e.g.
  /// "blindfold.input_bound" (docs/MPC.md). At most 256 entries of at most
  /// 4 KiB each (the importer refuses more).
  std::map<std::string, std::string> metadata;

  /// Appends a value and returns its index. Throws kBadModel on a duplicate.
  int add_value(Value v);
  /// Index of the value named `name`, or -1.
  int find_value(const std::string& name) const;
  /// Appends a node, setting the producer of its outputs.
  void add_node(Node n);

  const Value& value(int id) const { return values.at(static_cast<std::size_t>(id)); }
  Value& value(int id) { return values.at(static_cast<std::size_t>(id)); }

  /// Removes nodes whose outputs nobody uses and values nobody refers to,
  /// renumbering indices. Keeps graph inputs and outputs.
  void prune();

  /// Checks the invariants every pass relies on: indices in range, every
  /// node input produced before use, one producer per value. Throws kBadModel.
  void validate() const;

  /// Number of float parameters held in constants.
  std::int64_t parameter_count() const;

 private:
  std::map<std::string, int> index_;
};

}  // namespace blindfold::model
