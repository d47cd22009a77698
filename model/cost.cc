#include "model/cost.h"

namespace blindfold::model {

namespace {
std::int64_t numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}
}  // namespace

std::int64_t node_macs(const Graph& g, const Node& n) {
  if (n.outputs.empty() || n.inputs.empty() || n.inputs[0] < 0) return 0;
  const Value& out = g.value(n.outputs[0]);
  switch (n.op) {
    case OpType::kConv: {
      if (n.inputs.size() < 2 || n.inputs[1] < 0) return 0;
      const Shape& w = g.value(n.inputs[1]).shape;  // [M, C/g, kh, kw]
      std::int64_t per = 1;
      for (std::size_t d = 1; d < w.size(); ++d) per *= w[d];
      return numel(out.shape) * per;
    }
    case OpType::kGemm:
    case OpType::kMatMul: {
      const Shape& a = g.value(n.inputs[0]).shape;
      if (a.empty()) return 0;
      std::int64_t k = a.back();
      if (n.op == OpType::kGemm && n.attrs.get_int("transA", 0) != 0 && a.size() == 2) k = a[0];
      return numel(out.shape) * k;
    }
    default: return 0;
  }
}

std::int64_t node_params(const Graph& g, const Node& n) {
  std::int64_t p = 0;
  for (int i : n.inputs) {
    if (i >= 0 && g.value(i).is_constant() && g.value(i).constant->dtype() == DType::kFloat32) {
      p += g.value(i).constant->numel();
    }
  }
  return p;
}

}  // namespace blindfold::model
