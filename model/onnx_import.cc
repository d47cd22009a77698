// ONNX → IR. Every field read from the protobuf is treated as hostile: sizes
// are checked against the bytes actually present before any allocation.
#include "model/onnx_import.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "model/passes.h"
#include "model/shape_inference.h"

namespace blindfold::model {

namespace {

constexpr std::size_t kMaxNodes = 1'000'000;
constexpr std::size_t kMaxValues = 4'000'000;

[[noreturn]] void bad(const std::string& msg) {
  throw_error(ErrorCategory::kBadModel, msg);
}

std::string elem_type_name(int t) {
  if (onnx::TensorProto_DataType_IsValid(t)) {
    return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(t));
  }
  return "type " + std::to_string(t);
}

// Element types we can hold, and how we hold them.
bool supported_elem_type(int t, DType* out) {
  switch (t) {
    case onnx::TensorProto_DataType_FLOAT: *out = DType::kFloat32; return true;
    case onnx::TensorProto_DataType_INT64: *out = DType::kInt64; return true;
    default: return false;
  }
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw_error(ErrorCategory::kIo, std::string("cannot open ") + what + " '" + path + "'");
  const std::streamoff size = in.tellg();
  if (size < 0)
    throw_error(ErrorCategory::kIo, std::string("cannot read ") + what + " '" + path + "'");
  if (size > kMaxModelBytes) {
    throw_error(ErrorCategory::kBadModel,
                std::string(what) + " '" + path + "' is larger than 1 GiB");
  }
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) {
    throw_error(ErrorCategory::kIo, std::string("cannot read ") + what + " '" + path + "'");
  }
  return bytes;
}

template <typename Src, typename Dst>
void copy_raw(const std::string& raw, std::int64_t n, std::vector<Dst>* out) {
  out->resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    Src v;
    std::memcpy(&v, raw.data() + i * static_cast<std::int64_t>(sizeof(Src)), sizeof(Src));
    (*out)[static_cast<std::size_t>(i)] = static_cast<Dst>(v);
  }
}

// Converts a TensorProto. `what` names it in errors. Accepts float and int64
// natively and, for test data and initializers, double → float and
// int32/int8/uint8/bool → int64.
Tensor convert_tensor(const onnx::TensorProto& tp, const std::string& what) {
  if (tp.data_location() == onnx::TensorProto_DataLocation_EXTERNAL || tp.external_data_size()) {
    throw_error(ErrorCategory::kUnsupported,
                what + " uses external data files, which are not supported");
  }
  if (tp.has_segment()) bad(what + " is segmented, which is not supported");
  Shape shape;
  for (std::int64_t d : tp.dims()) {
    if (d < 0) bad(what + " has a negative dimension");
    shape.push_back(d);
  }
  std::int64_t n;
  try {
    n = checked_numel(shape);
  } catch (const Error& e) {
    bad(what + ": " + e.what());
  }
  const int t = tp.data_type();
  const std::string& raw = tp.raw_data();
  const bool has_raw = tp.has_raw_data();
  auto check_count = [&](std::int64_t have, const char* field) {
    if (have != n) {
      bad(what + " has " + std::to_string(have) + " values in " + field + ", its shape " +
          shape_to_string(shape) + " needs " + std::to_string(n));
    }
  };
  auto check_raw = [&](std::size_t elem) {
    if (raw.size() != static_cast<std::size_t>(n) * elem) {
      bad(what + " has " + std::to_string(raw.size()) + " bytes of raw data, its shape " +
          shape_to_string(shape) + " and type " + elem_type_name(t) + " need " +
          std::to_string(static_cast<std::size_t>(n) * elem));
    }
  };
  std::vector<float> f;
  std::vector<std::int64_t> i;
  switch (t) {
    case onnx::TensorProto_DataType_FLOAT:
      if (has_raw) {
        check_raw(4);
        copy_raw<float>(raw, n, &f);
      } else {
        check_count(tp.float_data_size(), "float_data");
        f.assign(tp.float_data().begin(), tp.float_data().end());
      }
      return Tensor::from_floats(shape, std::move(f));
    case onnx::TensorProto_DataType_DOUBLE:
      if (has_raw) {
        check_raw(8);
        copy_raw<double>(raw, n, &f);
      } else {
        check_count(tp.double_data_size(), "double_data");
        for (double v : tp.double_data()) f.push_back(static_cast<float>(v));
      }
      return Tensor::from_floats(shape, std::move(f));
    case onnx::TensorProto_DataType_INT64:
      if (has_raw) {
        check_raw(8);
        copy_raw<std::int64_t>(raw, n, &i);
      } else {
        check_count(tp.int64_data_size(), "int64_data");
        i.assign(tp.int64_data().begin(), tp.int64_data().end());
      }
      return Tensor::from_ints(shape, std::move(i));
    case onnx::TensorProto_DataType_INT32:
    case onnx::TensorProto_DataType_INT16:
    case onnx::TensorProto_DataType_INT8:
    case onnx::TensorProto_DataType_UINT8:
    case onnx::TensorProto_DataType_UINT16:
    case onnx::TensorProto_DataType_BOOL:
      if (has_raw) {
        switch (t) {
          case onnx::TensorProto_DataType_INT32:
            check_raw(4);
            copy_raw<std::int32_t>(raw, n, &i);
            break;
          case onnx::TensorProto_DataType_INT16:
            check_raw(2);
            copy_raw<std::int16_t>(raw, n, &i);
            break;
          case onnx::TensorProto_DataType_UINT16:
            check_raw(2);
            copy_raw<std::uint16_t>(raw, n, &i);
            break;
          case onnx::TensorProto_DataType_INT8:
            check_raw(1);
            copy_raw<std::int8_t>(raw, n, &i);
            break;
          default:
            check_raw(1);
            copy_raw<std::uint8_t>(raw, n, &i);
            break;
        }
      } else {
        check_count(tp.int32_data_size(), "int32_data");
        i.assign(tp.int32_data().begin(), tp.int32_data().end());
      }
      return Tensor::from_ints(shape, std::move(i));
    default:
      throw_error(ErrorCategory::kUnsupported,
                  what + " has element type " + elem_type_name(t) + ", which is not supported");
  }
}

Attribute convert_attribute(const onnx::AttributeProto& ap, const std::string& owner) {
  Attribute a;
  const std::string what = "attribute '" + ap.name() + "' of " + owner;
  switch (ap.type()) {
    case onnx::AttributeProto_AttributeType_INT:
      a.kind = Attribute::Kind::kInt;
      a.i = ap.i();
      break;
    case onnx::AttributeProto_AttributeType_FLOAT:
      a.kind = Attribute::Kind::kFloat;
      a.f = ap.f();
      break;
    case onnx::AttributeProto_AttributeType_STRING:
      a.kind = Attribute::Kind::kString;
      a.s = ap.s();
      break;
    case onnx::AttributeProto_AttributeType_INTS:
      a.kind = Attribute::Kind::kInts;
      a.ints.assign(ap.ints().begin(), ap.ints().end());
      break;
    case onnx::AttributeProto_AttributeType_FLOATS:
      a.kind = Attribute::Kind::kFloats;
      a.floats.assign(ap.floats().begin(), ap.floats().end());
      break;
    case onnx::AttributeProto_AttributeType_TENSOR:
      a.kind = Attribute::Kind::kTensor;
      a.t = convert_tensor(ap.t(), what);
      break;
    case onnx::AttributeProto_AttributeType_UNDEFINED:
      // Files written before IR version 2 left the type unset; infer it.
      if (ap.has_t()) {
        a.kind = Attribute::Kind::kTensor;
        a.t = convert_tensor(ap.t(), what);
      } else if (ap.ints_size()) {
        a.kind = Attribute::Kind::kInts;
        a.ints.assign(ap.ints().begin(), ap.ints().end());
      } else if (ap.floats_size()) {
        a.kind = Attribute::Kind::kFloats;
        a.floats.assign(ap.floats().begin(), ap.floats().end());
      } else if (ap.has_s()) {
        a.kind = Attribute::Kind::kString;
        a.s = ap.s();
      } else if (ap.has_f()) {
        a.kind = Attribute::Kind::kFloat;
        a.f = ap.f();
      } else {
        a.kind = Attribute::Kind::kInt;
        a.i = ap.i();
      }
      break;
    default:
      throw_error(ErrorCategory::kUnsupported,
                  what + " has a type (graph, sparse tensor or type proto) that is not supported");
  }
  return a;
}

// Declared type of a graph input: element type and shape, where only the
// first dimension may be symbolic (the batch).
void convert_input(const onnx::ValueInfoProto& vi, Value* v) {
  if (!vi.type().has_tensor_type()) {
    throw_error(
        ErrorCategory::kUnsupported,
        "graph input '" + vi.name() + "' is not a tensor (sequences and maps are not supported)");
  }
  const auto& tt = vi.type().tensor_type();
  if (!supported_elem_type(tt.elem_type(), &v->dtype)) {
    throw_error(ErrorCategory::kUnsupported, "graph input '" + vi.name() + "' has element type " +
                                                 elem_type_name(tt.elem_type()) +
                                                 "; only float and int64 are supported");
  }
  if (!tt.has_shape()) {
    bad("graph input '" + vi.name() + "' has no shape; Blindfold needs static shapes");
  }
  const int rank = tt.shape().dim_size();
  if (static_cast<std::size_t>(rank) > kMaxRank)
    bad("graph input '" + vi.name() + "' has rank above 8");
  for (int d = 0; d < rank; ++d) {
    const auto& dim = tt.shape().dim(d);
    if (dim.has_dim_value() && dim.dim_value() < 0) {
      bad("dimension " + std::to_string(d) + " of graph input '" + vi.name() + "' is negative");
    }
    const bool symbolic = !dim.has_dim_value();
    if (symbolic && d != 0) {
      throw_error(ErrorCategory::kUnsupported,
                  "dimension " + std::to_string(d) + " of graph input '" + vi.name() +
                      "' is dynamic; only the first (batch) dimension may be");
    }
    if (symbolic) {
      v->shape.push_back(1);
      v->batch_dims.push_back(true);
    } else {
      v->shape.push_back(dim.dim_value());
      v->batch_dims.push_back(false);
    }
  }
  try {
    checked_numel(v->shape);
  } catch (const Error& e) {
    bad("graph input '" + vi.name() + "': " + e.what());
  }
}

Graph convert_model(const onnx::ModelProto& mp, const ImportOptions& options) {
  if (!mp.has_graph()) bad("the model has no graph");
  Graph g;
  // Opsets: the default domain is required; ops from other domains are refused
  // per node below.
  int opset = -1;
  for (const auto& os : mp.opset_import()) {
    if (os.domain().empty() || os.domain() == "ai.onnx") opset = static_cast<int>(os.version());
  }
  if (opset < 0) {
    if (mp.opset_import_size() == 0 && mp.ir_version() > 0 && mp.ir_version() < 3) {
      opset = 1;  // IR v1/v2 files predate opset_import
    } else if (mp.opset_import_size() > 0) {
      throw_error(ErrorCategory::kUnsupported, "the model imports only the domain '" +
                                                   mp.opset_import(0).domain() +
                                                   "'; only the default ONNX domain is supported");
    } else {
      bad("the model imports no opset of the default ONNX domain");
    }
  }
  if (opset < 1 || opset > 1000) bad("the model's opset " + std::to_string(opset) + " is invalid");
  g.opset = opset;
  g.producer = mp.producer_name();
  if (mp.metadata_props_size() > 256) bad("the model has more than 256 metadata entries");
  for (const onnx::StringStringEntryProto& e : mp.metadata_props()) {
    if (e.key().size() > 4096 || e.value().size() > 4096) {
      bad("metadata entry '" + e.key().substr(0, 64) + "' is longer than 4 KiB");
    }
    if (!g.metadata.emplace(e.key(), e.value()).second) bad("metadata key '" + e.key() + "' appears twice");
  }
  const onnx::GraphProto& gp = mp.graph();
  g.name = gp.name();
  if (static_cast<std::size_t>(gp.node_size()) > kMaxNodes)
    bad("the graph has more than 10^6 nodes");
  if (static_cast<std::size_t>(gp.initializer_size() + gp.input_size()) > kMaxValues) {
    bad("the graph has too many values");
  }
  if (gp.sparse_initializer_size()) {
    throw_error(ErrorCategory::kUnsupported, "sparse initializers are not supported");
  }

  std::set<std::string> initializer_names;
  for (const auto& tp : gp.initializer()) {
    if (tp.name().empty()) bad("an initializer has no name");
    Value v;
    v.name = tp.name();
    v.constant = convert_tensor(tp, "initializer '" + tp.name() + "'");
    v.dtype = v.constant->dtype();
    g.add_value(std::move(v));
    initializer_names.insert(tp.name());
  }
  for (const auto& vi : gp.input()) {
    if (initializer_names.count(vi.name())) continue;  // an initializer with a default
    Value v;
    v.name = vi.name();
    bool bound = false;
    for (const auto& [name, t] : options.bind_inputs) {
      if (name == vi.name()) {
        v.constant = t;
        v.dtype = t.dtype();
        bound = true;
      }
    }
    if (!bound) convert_input(vi, &v);
    const int id = g.add_value(std::move(v));
    if (!bound) g.inputs.push_back(id);
  }

  int counter = 0;
  for (const auto& np : gp.node()) {
    ++counter;
    const std::string label_name =
        np.name().empty() ? np.op_type() + "_" + std::to_string(counter) : np.name();
    if (!np.domain().empty() && np.domain() != "ai.onnx") {
      throw_error(ErrorCategory::kUnsupported, "unsupported op '" + np.domain() + "." +
                                                   np.op_type() + "' at node '" + label_name +
                                                   "' (opset " + std::to_string(opset) +
                                                   "): only the default ONNX domain is supported");
    }
    const auto op = op_from_name(np.op_type());
    if (!op) {
      throw_error(ErrorCategory::kUnsupported, "unsupported op '" + np.op_type() + "' at node '" +
                                                   label_name + "' (opset " +
                                                   std::to_string(opset) + ")");
    }
    Node n;
    n.name = label_name;
    n.op = *op;
    n.opset = opset;
    n.attrs.owner = n.label();
    for (const auto& in : np.input()) {
      if (in.empty()) {
        n.inputs.push_back(-1);
        continue;
      }
      const int id = g.find_value(in);
      if (id < 0) bad(n.label() + " reads '" + in + "', which is not defined before it");
      n.inputs.push_back(id);
    }
    // Trailing omitted optional outputs are dropped; omitted ones in the
    // middle get a private name so positions are kept.
    int last = np.output_size() - 1;
    while (last >= 0 && np.output(last).empty()) --last;
    if (last < 0) bad(n.label() + " has no outputs");
    for (int k = 0; k <= last; ++k) {
      Value v;
      v.name = np.output(k).empty() ? label_name + ":unused:" + std::to_string(k) : np.output(k);
      if (g.find_value(v.name) >= 0)
        bad(n.label() + " writes '" + v.name + "', which is already defined");
      n.outputs.push_back(g.add_value(std::move(v)));
    }
    for (const auto& ap : np.attribute()) {
      if (ap.name().empty()) bad(n.label() + " has an attribute without a name");
      if (!ap.ref_attr_name().empty()) {
        throw_error(ErrorCategory::kUnsupported, n.label() + " uses a reference attribute");
      }
      n.attrs.set(ap.name(), convert_attribute(ap, n.label()));
    }
    g.add_node(std::move(n));
  }
  for (const auto& vi : gp.output()) {
    const int id = g.find_value(vi.name());
    if (id < 0) bad("graph output '" + vi.name() + "' is never produced");
    g.outputs.push_back(id);
  }
  if (g.outputs.empty()) bad("the graph has no outputs");
  g.validate();
  // Constant nodes and subgraphs of constants are folded first, always: ops
  // whose shapes depend on values (Reshape, Slice, Pad, ...) often read them.
  fold_constants(g);
  annotate_shapes(g);
  if (options.optimize) optimize(g);
  return g;
}

}  // namespace

Graph import_onnx(std::string_view bytes, const ImportOptions& options) {
  if (bytes.size() > static_cast<std::size_t>(kMaxModelBytes))
    bad("the model is larger than 1 GiB");
  onnx::ModelProto mp;
  if (!mp.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    bad("the file is not a valid ONNX model (protobuf parse failed: truncated or corrupted)");
  }
  return convert_model(mp, options);
}

Graph import_onnx_file(const std::string& path, const ImportOptions& options) {
  const std::string bytes = read_file(path, "model file");
  try {
    return import_onnx(bytes, options);
  } catch (const Error& e) {
    if (e.category() == ErrorCategory::kIo) throw;
    throw Error(e.category(), path + ": " + e.what());
  }
}

Tensor tensor_from_onnx(std::string_view bytes) {
  onnx::TensorProto tp;
  if (!tp.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw_error(ErrorCategory::kBadInput, "not a valid ONNX TensorProto");
  }
  return convert_tensor(tp, "tensor '" + tp.name() + "'");
}

Tensor tensor_from_onnx_file(const std::string& path) {
  return tensor_from_onnx(read_file(path, "tensor file"));
}

}  // namespace blindfold::model
