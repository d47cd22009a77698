#include "model/graph.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"

namespace blindfold::model {

namespace {
std::string kind_name(Attribute::Kind k) {
  switch (k) {
    case Attribute::Kind::kInt: return "int";
    case Attribute::Kind::kFloat: return "float";
    case Attribute::Kind::kString: return "string";
    case Attribute::Kind::kInts: return "ints";
    case Attribute::Kind::kFloats: return "floats";
    case Attribute::Kind::kTensor: return "tensor";
  }
  return "?";
}
}  // namespace

Attribute Attribute::of_int(std::int64_t v) {
  Attribute a;
  a.kind = Kind::kInt;
  a.i = v;
  return a;
}
Attribute Attribute::of_float(float v) {
  Attribute a;
  a.kind = Kind::kFloat;
  a.f = v;
  return a;
}
Attribute Attribute::of_string(std::string v) {
  Attribute a;
  a.kind = Kind::kString;
  a.s = std::move(v);
  return a;
}
Attribute Attribute::of_ints(std::vector<std::int64_t> v) {
  Attribute a;
  a.kind = Kind::kInts;
  a.ints = std::move(v);
  return a;
}
Attribute Attribute::of_floats(std::vector<float> v) {
  Attribute a;
  a.kind = Kind::kFloats;
  a.floats = std::move(v);
  return a;
}
Attribute Attribute::of_tensor(Tensor v) {
  Attribute a;
  a.kind = Kind::kTensor;
  a.t = std::move(v);
  return a;
}

const Attribute& Attributes::get(const std::string& name, Attribute::Kind kind) const {
  const auto it = map_.find(name);
  if (it == map_.end()) {
    throw_error(ErrorCategory::kBadModel, "missing attribute '" + name + "' of " + owner);
  }
  if (it->second.kind != kind) {
    throw_error(ErrorCategory::kBadModel, "attribute '" + name + "' of " + owner + " is " +
                                              kind_name(it->second.kind) + ", expected " +
                                              kind_name(kind));
  }
  return it->second;
}

std::int64_t Attributes::get_int(const std::string& name, std::int64_t def) const {
  return has(name) ? get(name, Attribute::Kind::kInt).i : def;
}
float Attributes::get_float(const std::string& name, float def) const {
  if (!has(name)) return def;
  const Attribute& a = map_.at(name);
  if (a.kind == Attribute::Kind::kInt) return static_cast<float>(a.i);
  return get(name, Attribute::Kind::kFloat).f;
}
std::string Attributes::get_string(const std::string& name, const std::string& def) const {
  return has(name) ? get(name, Attribute::Kind::kString).s : def;
}
std::vector<std::int64_t> Attributes::get_ints(const std::string& name,
                                               const std::vector<std::int64_t>& def) const {
  return has(name) ? get(name, Attribute::Kind::kInts).ints : def;
}
std::vector<float> Attributes::get_floats(const std::string& name,
                                          const std::vector<float>& def) const {
  return has(name) ? get(name, Attribute::Kind::kFloats).floats : def;
}
const Tensor& Attributes::get_tensor(const std::string& name) const {
  return get(name, Attribute::Kind::kTensor).t;
}

Shape Value::shape_at(std::int64_t batch) const {
  Shape s = shape;
  for (std::size_t d = 0; d < s.size() && d < batch_dims.size(); ++d) {
    if (batch_dims[d]) s[d] *= batch;
  }
  return s;
}

std::string Value::shape_string() const {
  if (!shape_known) return "[?]";
  std::ostringstream os;
  os << '[';
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (d) os << ", ";
    const bool b = d < batch_dims.size() && batch_dims[d];
    if (b && shape[d] == 1) {
      os << kBatchSymbol;
    } else if (b) {
      os << shape[d] << '*' << kBatchSymbol;
    } else {
      os << shape[d];
    }
  }
  os << ']';
  return os.str();
}

std::string Node::label() const {
  return "node '" + name + "' (" + std::string(op_name(op)) + ")";
}

int Graph::add_value(Value v) {
  if (v.name.empty()) throw_error(ErrorCategory::kBadModel, "value with an empty name");
  if (index_.count(v.name)) {
    throw_error(ErrorCategory::kBadModel, "value '" + v.name + "' is defined twice");
  }
  const int id = static_cast<int>(values.size());
  index_[v.name] = id;
  values.push_back(std::move(v));
  return id;
}

int Graph::find_value(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

void Graph::add_node(Node n) {
  const int id = static_cast<int>(nodes.size());
  for (int o : n.outputs) {
    Value& v = value(o);
    if (v.producer != -1 || v.is_constant()) {
      throw_error(ErrorCategory::kBadModel, "value '" + v.name + "' has more than one producer");
    }
    v.producer = id;
  }
  nodes.push_back(std::move(n));
}

void Graph::prune() {
  const std::size_t nv = values.size();
  std::vector<bool> live_value(nv, false);
  for (int o : outputs) live_value[static_cast<std::size_t>(o)] = true;
  std::vector<bool> live_node(nodes.size(), false);
  for (std::size_t k = nodes.size(); k-- > 0;) {
    const Node& n = nodes[k];
    bool used = false;
    for (int o : n.outputs) used = used || live_value[static_cast<std::size_t>(o)];
    if (!used) continue;
    live_node[k] = true;
    for (int i : n.inputs) {
      if (i >= 0) live_value[static_cast<std::size_t>(i)] = true;
    }
    for (int o : n.outputs) live_value[static_cast<std::size_t>(o)] = true;
  }
  for (int i : inputs) live_value[static_cast<std::size_t>(i)] = true;

  std::vector<int> remap(nv, -1);
  std::vector<Value> kept_values;
  for (std::size_t i = 0; i < nv; ++i) {
    if (!live_value[i]) continue;
    remap[i] = static_cast<int>(kept_values.size());
    kept_values.push_back(std::move(values[i]));
    kept_values.back().producer = -1;
  }
  std::vector<Node> kept_nodes;
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    if (!live_node[k]) continue;
    Node n = std::move(nodes[k]);
    for (int& i : n.inputs) i = i >= 0 ? remap[static_cast<std::size_t>(i)] : -1;
    for (int& o : n.outputs) o = remap[static_cast<std::size_t>(o)];
    kept_nodes.push_back(std::move(n));
  }
  for (int& i : inputs) i = remap[static_cast<std::size_t>(i)];
  for (int& o : outputs) o = remap[static_cast<std::size_t>(o)];
  values = std::move(kept_values);
  nodes.clear();
  index_.clear();
  for (std::size_t i = 0; i < values.size(); ++i) index_[values[i].name] = static_cast<int>(i);
  for (Node& n : kept_nodes) add_node(std::move(n));
}

void Graph::validate() const {
  const int nv = static_cast<int>(values.size());
  std::vector<bool> ready(values.size(), false);
  for (int i = 0; i < nv; ++i) {
    if (values[static_cast<std::size_t>(i)].is_constant())
      ready[static_cast<std::size_t>(i)] = true;
  }
  for (int i : inputs) {
    if (i < 0 || i >= nv) throw_error(ErrorCategory::kBadModel, "graph input index out of range");
    ready[static_cast<std::size_t>(i)] = true;
  }
  for (const Node& n : nodes) {
    for (int i : n.inputs) {
      if (i < -1 || i >= nv) {
        throw_error(ErrorCategory::kBadModel, n.label() + " refers to a value out of range");
      }
      if (i >= 0 && !ready[static_cast<std::size_t>(i)]) {
        throw_error(ErrorCategory::kBadModel,
                    n.label() + " uses '" + values[static_cast<std::size_t>(i)].name +
                        "' before it is produced (the graph is not in topological order or "
                        "has a cycle)");
      }
    }
    for (int o : n.outputs) {
      if (o < 0 || o >= nv) {
        throw_error(ErrorCategory::kBadModel, n.label() + " has an output out of range");
      }
      if (ready[static_cast<std::size_t>(o)]) {
        throw_error(ErrorCategory::kBadModel, n.label() + " writes '" +
                                                  values[static_cast<std::size_t>(o)].name +
                                                  "', which already has a value");
      }
      ready[static_cast<std::size_t>(o)] = true;
    }
  }
  for (int o : outputs) {
    if (o < 0 || o >= nv || !ready[static_cast<std::size_t>(o)]) {
      throw_error(ErrorCategory::kBadModel, "graph output is never produced");
    }
  }
}

std::int64_t Graph::parameter_count() const {
  std::int64_t n = 0;
  for (const Value& v : values) {
    if (v.is_constant() && v.constant->dtype() == DType::kFloat32) n += v.constant->numel();
  }
  return n;
}

}  // namespace blindfold::model
