#include "model/passes.h"

#include <cmath>

#include "core/error.h"
#include "model/kernels.h"
#include "model/shape_inference.h"

namespace blindfold::model {

namespace {

// Number of nodes reading each value, graph outputs counted as readers.
std::vector<int> reader_counts(const Graph& g) {
  std::vector<int> n(g.values.size(), 0);
  for (const Node& node : g.nodes) {
    for (int i : node.inputs) {
      if (i >= 0) ++n[static_cast<std::size_t>(i)];
    }
  }
  for (int o : g.outputs) ++n[static_cast<std::size_t>(o)];
  return n;
}

void drop_nodes(Graph& g, const std::vector<bool>& drop) {
  std::vector<Node> kept;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    if (!drop[k]) kept.push_back(std::move(g.nodes[k]));
  }
  for (Value& v : g.values) v.producer = -1;
  g.nodes.clear();
  for (Node& n : kept) g.add_node(std::move(n));
}

}  // namespace

int fold_constants(Graph& g) {
  ThreadPool pool(1);
  std::vector<bool> drop(g.nodes.size(), false);
  int folded = 0;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const Node& node = g.nodes[k];
    bool all_const = true;
    for (int i : node.inputs) {
      if (i >= 0 && !g.value(i).is_constant()) all_const = false;
    }
    if (!all_const) continue;
    std::vector<ValueInfo> infos;
    std::vector<const Tensor*> ins;
    for (int i : node.inputs) {
      ValueInfo vi;
      if (i < 0) {
        vi.present = false;
        ins.push_back(nullptr);
      } else {
        const Tensor& t = *g.value(i).constant;
        vi.dtype = t.dtype();
        vi.shape = t.shape();
        vi.constant = &t;
        ins.push_back(&t);
      }
      infos.push_back(std::move(vi));
    }
    const std::vector<TypedShape> shapes = infer_node(node, infos);
    std::vector<Tensor> outs(node.outputs.size());
    std::vector<Tensor*> out_ptrs;
    for (std::size_t o = 0; o < outs.size(); ++o) {
      outs[o].reset(shapes[o].dtype, shapes[o].shape);
      out_ptrs.push_back(&outs[o]);
    }
    run_node(node, ins, out_ptrs, pool);
    for (std::size_t o = 0; o < outs.size(); ++o) {
      Value& v = g.value(node.outputs[o]);
      v.constant = std::move(outs[o]);
      v.dtype = v.constant->dtype();
      v.producer = -1;
    }
    drop[k] = true;
    ++folded;
  }
  if (folded) drop_nodes(g, drop);
  return folded;
}

int fold_batchnorm(Graph& g) {
  const std::vector<int> readers = reader_counts(g);
  std::vector<bool> drop(g.nodes.size(), false);
  int folded = 0;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    Node& bn = g.nodes[k];
    if (bn.op != OpType::kBatchNormalization || bn.inputs.size() != 5 || bn.outputs.size() != 1) {
      continue;
    }
    const int x = bn.inputs[0];
    if (x < 0 || g.value(x).producer < 0 || readers[static_cast<std::size_t>(x)] != 1) continue;
    Node& conv = g.nodes[static_cast<std::size_t>(g.value(x).producer)];
    if (conv.op != OpType::kConv || conv.inputs.size() < 2 || conv.inputs[1] < 0) continue;
    const Value& wv = g.value(conv.inputs[1]);
    const bool has_bias = conv.inputs.size() > 2 && conv.inputs[2] >= 0;
    if (!wv.is_constant() || wv.constant->dtype() != DType::kFloat32 || wv.constant->rank() < 2) {
      continue;
    }
    if (has_bias && !g.value(conv.inputs[2]).is_constant()) continue;
    bool params_const = true;
    for (int i = 1; i < 5; ++i) {
      if (bn.inputs[static_cast<std::size_t>(i)] < 0 ||
          !g.value(bn.inputs[static_cast<std::size_t>(i)]).is_constant())
        params_const = false;
    }
    if (!params_const) continue;
    const std::int64_t m = wv.constant->dim(0);
    auto param = [&](int i) {
      return g.value(bn.inputs[static_cast<std::size_t>(i)]).constant->to_float_vector();
    };
    const std::vector<float> scale = param(1), shift = param(2), mean = param(3), var = param(4);
    if (static_cast<std::int64_t>(scale.size()) != m ||
        static_cast<std::int64_t>(shift.size()) != m ||
        static_cast<std::int64_t>(mean.size()) != m || static_cast<std::int64_t>(var.size()) != m) {
      continue;  // shape inference reports the mismatch
    }
    const float eps = bn.attrs.get_float("epsilon", 1e-5f);
    std::vector<float> w = wv.constant->to_float_vector();
    const std::int64_t per = wv.constant->numel() / m;
    std::vector<float> b(static_cast<std::size_t>(m), 0.0f);
    if (has_bias) {
      b = g.value(conv.inputs[2]).constant->to_float_vector();
      if (static_cast<std::int64_t>(b.size()) != m) continue;
    }
    for (std::int64_t c = 0; c < m; ++c) {
      const auto cu = static_cast<std::size_t>(c);
      const double f =
          static_cast<double>(scale[cu]) / std::sqrt(static_cast<double>(var[cu]) + eps);
      for (std::int64_t j = 0; j < per; ++j) {
        auto& wj = w[static_cast<std::size_t>(c * per + j)];
        wj = static_cast<float>(wj * f);
      }
      b[cu] = static_cast<float>((b[cu] - mean[cu]) * f + shift[cu]);
    }
    // New constants with fresh names: the originals may be shared.
    Value nw;
    nw.name = conv.name + ":bn_folded_weight";
    nw.constant = Tensor::from_floats(wv.constant->shape(), std::move(w));
    Value nb;
    nb.name = conv.name + ":bn_folded_bias";
    nb.constant = Tensor::from_floats({m}, std::move(b));
    const int wid = g.add_value(std::move(nw));
    const int bid = g.add_value(std::move(nb));
    conv.inputs.resize(3);
    conv.inputs[1] = wid;
    conv.inputs[2] = bid;
    conv.outputs[0] = bn.outputs[0];
    drop[k] = true;
    ++folded;
  }
  if (folded) drop_nodes(g, drop);
  return folded;
}

int remove_identities(Graph& g) {
  std::vector<bool> is_output(g.values.size(), false);
  for (int o : g.outputs) is_output[static_cast<std::size_t>(o)] = true;
  std::vector<int> replace(g.values.size());
  for (std::size_t i = 0; i < replace.size(); ++i) replace[i] = static_cast<int>(i);
  std::vector<bool> drop(g.nodes.size(), false);
  int removed = 0;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    Node& n = g.nodes[k];
    for (int& i : n.inputs) {
      if (i >= 0) i = replace[static_cast<std::size_t>(i)];
    }
    const bool same_type_cast = n.op == OpType::kCast && n.inputs.size() == 1 && n.inputs[0] >= 0 &&
                                g.value(n.inputs[0]).dtype == g.value(n.outputs[0]).dtype;
    if ((n.op == OpType::kIdentity || same_type_cast) && n.inputs.size() == 1 && n.inputs[0] >= 0 &&
        n.outputs.size() == 1 && !is_output[static_cast<std::size_t>(n.outputs[0])]) {
      replace[static_cast<std::size_t>(n.outputs[0])] = n.inputs[0];
      drop[k] = true;
      ++removed;
    }
  }
  if (removed) drop_nodes(g, drop);
  return removed;
}

void optimize(Graph& g) {
  fold_constants(g);
  remove_identities(g);
  fold_batchnorm(g);
  g.prune();
  g.validate();
  annotate_shapes(g);
}

}  // namespace blindfold::model
