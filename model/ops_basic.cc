// Shape inference and plaintext kernels for the element-wise and data-movement
// ops: everything outside the nn set of ops_nn.cc (see ops_internal.h).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "model/ops_internal.h"

namespace blindfold::model::detail {

namespace {

using Dims = std::array<std::int64_t, kMaxRank>;

// Element-wise work below this many elements runs inline: waking the pool
// costs more than it saves for LeNet-sized tensors.
constexpr std::int64_t kParallelMin = std::int64_t{1} << 18;
// Smallest chunk handed to one worker.
constexpr std::int64_t kParallelGrain = std::int64_t{1} << 16;

// ONNX TensorProto.DataType numbers Cast may target.
constexpr std::int64_t kOnnxFloat = 1;
constexpr std::int64_t kOnnxInt64 = 7;

std::string op_str(const Node& node) {
  return std::string(op_name(node.op));
}

// Runs fn(begin, end) over [0, rows), on the pool when the work (rows *
// row_len elements) is large enough; inline otherwise so that small ops pay
// no std::function or synchronisation cost.
template <class F>
void for_rows(ThreadPool& pool, std::int64_t rows, std::int64_t row_len, F&& fn) {
  if (rows <= 0) return;
  const std::int64_t len = std::max<std::int64_t>(row_len, 1);
  if (rows < 2 || pool.size() < 2 || rows * len < kParallelMin) {
    fn(std::int64_t{0}, rows);
    return;
  }
  const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / len);
  pool.parallel_for(
      rows, [&fn](std::int64_t b, std::int64_t e) { fn(b, e); }, grain);
}

// Walks rows [begin, end) of an index space with outer dimensions dims[0..n)
// (all > 0), keeping K running offsets off[k] = sum_d idx[d] * strides[k][d]
// so that no row needs a division. Calls fn(row, off, idx).
template <std::size_t K, class F>
void walk_rows(std::size_t n, const std::int64_t* dims,
               const std::array<const std::int64_t*, K>& strides, std::int64_t begin,
               std::int64_t end, F&& fn) {
  Dims idx{};
  std::array<std::int64_t, K> off{};
  std::int64_t r = begin;
  for (std::size_t d = n; d-- > 0;) {
    idx[d] = r % dims[d];
    r /= dims[d];
    for (std::size_t k = 0; k < K; ++k) off[k] += idx[d] * strides[k][d];
  }
  for (std::int64_t row = begin; row < end; ++row) {
    fn(row, off, idx);
    for (std::size_t d = n; d-- > 0;) {
      for (std::size_t k = 0; k < K; ++k) off[k] += strides[k][d];
      if (++idx[d] < dims[d]) break;
      for (std::size_t k = 0; k < K; ++k) off[k] -= strides[k][d] * dims[d];
      idx[d] = 0;
    }
  }
}

std::int64_t product(const Shape& s, std::size_t from, std::size_t to) {
  std::int64_t p = 1;
  for (std::size_t i = from; i < to; ++i) p *= s[i];
  return p;
}

// Rejects output shapes the tensor layer would refuse, naming the node (the
// generic check in infer_node reports bad input without saying where).
void check_shape(const Node& node, const Shape& s) {
  try {
    checked_numel(s);
  } catch (const Error& e) {
    fail(node, e.what());
  }
}

void check_dtype(const Node& node, const ValueInfo& in, DType want, const char* what) {
  if (in.dtype != want) {
    fail(node, std::string(what) + " must be " + std::string(dtype_name(want)) + ", got " +
                   std::string(dtype_name(in.dtype)));
  }
}

// The constant behind optional input i, nullptr when it is omitted. Our IR is
// static-shaped, so shape-like inputs must be known at import.
const Tensor* constant_input(const Node& node, std::span<const ValueInfo> in, std::size_t i,
                             const char* what) {
  if (i >= in.size() || !in[i].present) return nullptr;
  if (!in[i].constant)
    fail(node, std::string(what) + " of " + op_str(node) + " must be a constant");
  return in[i].constant;
}

const Tensor* optional_tensor(std::span<const Tensor* const> in, std::size_t i) {
  return i < in.size() ? in[i] : nullptr;
}

const Tensor& required_tensor(const Node& node, std::span<const Tensor* const> in, std::size_t i) {
  if (i >= in.size() || !in[i]) {
    throw_error(ErrorCategory::kInternal,
                node.label() + ": input " + std::to_string(i) + " was not supplied");
  }
  return *in[i];
}

Tensor& output_tensor(const Node& node, std::span<Tensor* const> out, std::size_t i) {
  if (i >= out.size() || !out[i]) {
    throw_error(ErrorCategory::kInternal,
                node.label() + ": output " + std::to_string(i) + " was not supplied");
  }
  return *out[i];
}

// Kernels trust no caller: a pre-shaped output that disagrees with what the
// inputs imply would make the loops below read or write out of bounds.
void expect_output(const Node& node, const Tensor& out, DType dtype, const Shape& shape) {
  if (out.dtype() != dtype || out.shape() != shape) {
    throw_error(ErrorCategory::kInternal,
                node.label() + ": output is " + std::string(dtype_name(out.dtype())) +
                    shape_to_string(out.shape()) + ", expected " + std::string(dtype_name(dtype)) +
                    shape_to_string(shape));
  }
}

std::vector<std::int64_t> read_ints(const Node& node, const Tensor& t, const char* what) {
  if (t.rank() > 1) {
    fail(node,
         std::string(what) + " must be a 1-D tensor, has shape " + shape_to_string(t.shape()));
  }
  try {
    return t.to_int_vector();
  } catch (const Error& e) {
    fail(node, std::string(what) + ": " + e.what());
  }
}

// Normalises a list of axes against `rank`, refusing duplicates.
std::vector<std::int64_t> normalize_axes(const Node& node, std::vector<std::int64_t> axes,
                                         std::int64_t rank) {
  std::vector<bool> seen(static_cast<std::size_t>(rank), false);
  for (std::int64_t& a : axes) {
    a = normalize_axis(node, a, rank);
    if (seen[static_cast<std::size_t>(a)]) fail(node, "axis " + std::to_string(a) + " repeats");
    seen[static_cast<std::size_t>(a)] = true;
  }
  return axes;
}

void copy_data(const Node& node, const Tensor& in, Tensor& out) {
  if (in.dtype() != out.dtype() || in.numel() != out.numel()) {
    throw_error(ErrorCategory::kInternal,
                node.label() + ": cannot copy " + std::string(dtype_name(in.dtype())) +
                    shape_to_string(in.shape()) + " into " + std::string(dtype_name(out.dtype())) +
                    shape_to_string(out.shape()));
  }
  if (in.dtype() == DType::kFloat32) {
    std::copy(in.f32().begin(), in.f32().end(), out.f32().begin());
  } else {
    std::copy(in.i64().begin(), in.i64().end(), out.i64().begin());
  }
}

// ---- broadcasting binary ops ---------------------------------------------

// Numpy multidirectional broadcast of two shapes, or false when they clash.
bool broadcast_dims(const Shape& a, const Shape& b, Dims& out, std::size_t& rank) {
  rank = std::max(a.size(), b.size());
  if (rank > kMaxRank) return false;
  for (std::size_t i = 0; i < rank; ++i) {
    // Aligned from the right; a missing dimension acts as 1.
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else {
      return false;
    }
  }
  return true;
}

Shape broadcast_shape(const Node& node, const Shape& a, const Shape& b) {
  Dims d{};
  std::size_t rank = 0;
  if (!broadcast_dims(a, b, d, rank)) {
    fail(node, "cannot broadcast " + shape_to_string(a) + " with " + shape_to_string(b));
  }
  return Shape(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(rank));
}

// The loop nest of a broadcast: output dims (outermost first) with each
// input's stride per dim (0 where it is broadcast). Size-1 dims are dropped
// and neighbours merged when both inputs step through them contiguously, so
// e.g. bias [1,C,1,1] over [N,C,H,W] becomes [N, C, H*W] with strides
// b = [0, 1, 0]; the innermost stride is then always 0 or 1.
struct BroadcastPlan {
  std::size_t rank = 0;  // at least 1
  Dims dims{};
  Dims sa{};
  Dims sb{};
  std::int64_t total = 0;
};

BroadcastPlan plan_broadcast(const Shape& a, const Shape& b, const Dims& out, std::size_t rank) {
  Dims ra{}, rb{};  // input strides aligned to the output dims
  std::int64_t stride_a = 1, stride_b = 1;
  for (std::size_t i = rank; i-- > 0;) {
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    ra[i] = da == 1 ? 0 : stride_a;
    rb[i] = db == 1 ? 0 : stride_b;
    stride_a *= da;
    stride_b *= db;
  }
  BroadcastPlan p;
  p.total = 1;
  for (std::size_t i = 0; i < rank; ++i) p.total *= out[i];
  for (std::size_t i = 0; i < rank; ++i) {
    if (out[i] == 1) continue;
    if (p.rank > 0) {
      const std::size_t j = p.rank - 1;
      // Mergeable when stepping the outer dim equals stepping through the
      // whole inner one, for both inputs (also true for two broadcasts).
      if (p.sa[j] == ra[i] * out[i] && p.sb[j] == rb[i] * out[i]) {
        p.dims[j] *= out[i];
        p.sa[j] = ra[i];
        p.sb[j] = rb[i];
        continue;
      }
    }
    p.dims[p.rank] = out[i];
    p.sa[p.rank] = ra[i];
    p.sb[p.rank] = rb[i];
    ++p.rank;
  }
  if (p.rank == 0) {  // every dim is 1: a scalar
    p.rank = 1;
    p.dims[0] = 1;
    p.sa[0] = 0;
    p.sb[0] = 0;
  }
  return p;
}

// One innermost row. Written as separate loops so each is a plain vectorisable
// loop rather than one with a stride the compiler cannot see.
template <class T, class Op>
inline void binary_row(const T* a, std::int64_t sa, const T* b, std::int64_t sb, T* o,
                       std::int64_t n, Op op) {
  if (sa == 1 && sb == 1) {
    for (std::int64_t i = 0; i < n; ++i) o[i] = op(a[i], b[i]);
  } else if (sa == 1) {
    const T bv = *b;
    for (std::int64_t i = 0; i < n; ++i) o[i] = op(a[i], bv);
  } else if (sb == 1) {
    const T av = *a;
    for (std::int64_t i = 0; i < n; ++i) o[i] = op(av, b[i]);
  } else {
    const T v = op(*a, *b);
    std::fill(o, o + n, v);
  }
}

template <class T, class Op>
void binary_loop(const BroadcastPlan& p, const T* a, const T* b, T* o, ThreadPool& pool, Op op) {
  if (p.total == 0) return;
  const std::size_t inner_dim = p.rank - 1;
  const std::int64_t inner = p.dims[inner_dim];
  const std::int64_t isa = p.sa[inner_dim], isb = p.sb[inner_dim];
  if (p.rank == 1) {
    // Same shape or scalar broadcast: split the elements themselves.
    for_rows(pool, inner, 1, [&](std::int64_t begin, std::int64_t end) {
      binary_row(a + begin * isa, isa, b + begin * isb, isb, o + begin, end - begin, op);
    });
    return;
  }
  const std::int64_t rows = p.total / inner;
  const std::array<const std::int64_t*, 2> strides = {p.sa.data(), p.sb.data()};
  for_rows(pool, rows, inner, [&](std::int64_t begin, std::int64_t end) {
    walk_rows<2>(inner_dim, p.dims.data(), strides, begin, end,
                 [&](std::int64_t row, const std::array<std::int64_t, 2>& off, const Dims&) {
                   binary_row(a + off[0], isa, b + off[1], isb, o + row * inner, inner, op);
                 });
  });
}

template <class T>
void run_binary_typed(const Node& node, OpType op, const BroadcastPlan& p, const T* a, const T* b,
                      T* o, ThreadPool& pool) {
  if constexpr (std::is_same_v<T, float>) {
    switch (op) {
      case OpType::kAdd: return binary_loop(p, a, b, o, pool, std::plus<float>());
      case OpType::kSub: return binary_loop(p, a, b, o, pool, std::minus<float>());
      case OpType::kMul: return binary_loop(p, a, b, o, pool, std::multiplies<float>());
      case OpType::kDiv: return binary_loop(p, a, b, o, pool, std::divides<float>());
      case OpType::kPow:
        // x^2 (variance in decomposed LayerNorm) is exact as x*x and vectorises.
        if (p.total > 0 && p.rank == 1 && p.sb[0] == 0 && *b == 2.0f) {
          return binary_loop(p, a, b, o, pool, [](float x, float) { return x * x; });
        }
        return binary_loop(p, a, b, o, pool, [](float x, float y) { return std::pow(x, y); });
      default: break;
    }
  } else {
    // Two's-complement wrap-around instead of signed-overflow UB: a hostile
    // model must not be able to trigger undefined behaviour.
    using U = std::uint64_t;
    switch (op) {
      case OpType::kAdd:
        return binary_loop(p, a, b, o, pool, [](T x, T y) { return T(U(x) + U(y)); });
      case OpType::kSub:
        return binary_loop(p, a, b, o, pool, [](T x, T y) { return T(U(x) - U(y)); });
      case OpType::kMul:
        return binary_loop(p, a, b, o, pool, [](T x, T y) { return T(U(x) * U(y)); });
      case OpType::kDiv:
        return binary_loop(p, a, b, o, pool, [&node](T x, T y) {
          if (y == 0)
            throw_error(ErrorCategory::kBadInput, node.label() + ": integer division by zero");
          if (y == -1) return T(U(0) - U(x));  // INT64_MIN / -1 overflows
          return T(x / y);                     // C++ truncates toward zero, as ONNX does
        });
      default: break;
    }
  }
  throw_error(ErrorCategory::kInternal, node.label() + ": no kernel for this dtype");
}

std::vector<TypedShape> infer_binary(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 2, 2);
  const DType ta = in[0].dtype, tb = in[1].dtype;
  const bool ok = (ta == DType::kFloat32 && tb == DType::kFloat32) ||
                  (ta == DType::kInt64 && tb == DType::kInt64 && node.op != OpType::kPow) ||
                  // Pow's exponent may have its own type since opset 12.
                  (node.op == OpType::kPow && ta == DType::kFloat32 && tb == DType::kInt64);
  if (!ok && node.op == OpType::kPow && ta == DType::kInt64) {
    // Valid ONNX (integer Pow), outside this float engine.
    unsupported(node, "unsupported input types " + std::string(dtype_name(ta)) + " and " +
                          std::string(dtype_name(tb)));
  }
  if (!ok) {
    fail(node, "unsupported input types " + std::string(dtype_name(ta)) + " and " +
                   std::string(dtype_name(tb)));
  }
  Shape s = broadcast_shape(node, in[0].shape, in[1].shape);
  check_shape(node, s);
  return {{ta, std::move(s)}};
}

void run_binary(const Node& node, std::span<const Tensor* const> inputs,
                std::span<Tensor* const> outputs, ThreadPool& pool) {
  const Tensor& a = required_tensor(node, inputs, 0);
  const Tensor& b = required_tensor(node, inputs, 1);
  Tensor& out = output_tensor(node, outputs, 0);
  Dims dims{};
  std::size_t rank = 0;
  bool same = broadcast_dims(a.shape(), b.shape(), dims, rank) && out.rank() == rank &&
              out.dtype() == a.dtype();
  for (std::size_t i = 0; same && i < rank; ++i) same = out.dim(i) == dims[i];
  if (!same) {
    throw_error(ErrorCategory::kInternal, node.label() + ": output shape " +
                                              shape_to_string(out.shape()) + " does not match " +
                                              shape_to_string(a.shape()) + " and " +
                                              shape_to_string(b.shape()));
  }
  const BroadcastPlan p = plan_broadcast(a.shape(), b.shape(), dims, rank);
  if (a.dtype() == DType::kFloat32 && b.dtype() == DType::kFloat32) {
    run_binary_typed<float>(node, node.op, p, a.f32().data(), b.f32().data(), out.f32().data(),
                            pool);
  } else if (a.dtype() == DType::kInt64 && b.dtype() == DType::kInt64) {
    run_binary_typed<std::int64_t>(node, node.op, p, a.i64().data(), b.i64().data(),
                                   out.i64().data(), pool);
  } else if (node.op == OpType::kPow && a.dtype() == DType::kFloat32) {
    const std::vector<float> e = b.to_float_vector();  // rare: integer exponent
    run_binary_typed<float>(node, node.op, p, a.f32().data(), e.data(), out.f32().data(), pool);
  } else {
    throw_error(ErrorCategory::kInternal, node.label() + ": unsupported input types");
  }
}

// ---- unary element-wise ops -------------------------------------------------

template <class Op>
void unary_loop(const float* x, float* y, std::int64_t n, ThreadPool& pool, Op op) {
  for_rows(pool, n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) y[i] = op(x[i]);
  });
}

void run_unary(const Node& node, std::span<const Tensor* const> inputs,
               std::span<Tensor* const> outputs, ThreadPool& pool) {
  const Tensor& in = required_tensor(node, inputs, 0);
  Tensor& out = output_tensor(node, outputs, 0);
  expect_output(node, out, DType::kFloat32, in.shape());
  const float* x = in.f32().data();
  float* y = out.f32().data();
  const std::int64_t n = in.numel();
  switch (node.op) {
    // NaN passes through (NaN < 0 is false), as in ONNX Runtime.
    case OpType::kRelu:
      return unary_loop(x, y, n, pool, [](float v) { return v < 0.0f ? 0.0f : v; });
    // exp(-v) overflowing to inf still gives the right limit 0.
    case OpType::kSigmoid:
      return unary_loop(x, y, n, pool, [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
    case OpType::kTanh: return unary_loop(x, y, n, pool, [](float v) { return std::tanh(v); });
    case OpType::kErf: return unary_loop(x, y, n, pool, [](float v) { return std::erf(v); });
    case OpType::kSqrt: return unary_loop(x, y, n, pool, [](float v) { return std::sqrt(v); });
    default: break;
  }
  throw_error(ErrorCategory::kInternal, node.label() + ": not a unary op");
}

// ---- Cast ---------------------------------------------------------------------

DType cast_target(const Node& node) {
  if (!node.attrs.has("to")) fail(node, "missing attribute 'to'");
  const std::int64_t to = node.attrs.get_int("to", 0);
  if (to == kOnnxFloat) return DType::kFloat32;
  if (to == kOnnxInt64) return DType::kInt64;
  unsupported(node, "Cast to ONNX type " + std::to_string(to) +
                        " is not supported (only 1 = float and 7 = int64)");
}

// Truncates toward zero like C, but saturates instead of the UB of an
// out-of-range conversion; NaN becomes 0.
std::int64_t float_to_int64(float v) {
  constexpr float kTwo63 = 9223372036854775808.0f;
  if (std::isnan(v)) return 0;
  if (v >= kTwo63) return std::numeric_limits<std::int64_t>::max();
  if (v < -kTwo63) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(v);
}

void run_cast(const Node& node, const Tensor& in, Tensor& out) {
  const DType to = cast_target(node);
  expect_output(node, out, to, in.shape());
  if (in.dtype() == to) return copy_data(node, in, out);
  if (to == DType::kInt64) {
    std::transform(in.f32().begin(), in.f32().end(), out.i64().begin(), float_to_int64);
  } else {
    std::transform(in.i64().begin(), in.i64().end(), out.f32().begin(),
                   [](std::int64_t v) { return static_cast<float>(v); });
  }
}

// ---- Constant -------------------------------------------------------------------

// The value of a Constant node (a copy: Constant nodes are folded away by
// the optimiser, so this is not on any hot path).
Tensor constant_value(const Node& node) {
  const char* kinds[] = {"value", "value_float", "value_floats", "value_int", "value_ints"};
  int found = 0;
  for (const char* k : kinds) found += node.attrs.has(k) ? 1 : 0;
  if (found != 1) {
    for (const char* k : {"sparse_value", "value_string", "value_strings"}) {
      if (node.attrs.has(k))
        unsupported(node, std::string("attribute '") + k + "' is not supported");
    }
    fail(node, "needs exactly one of value, value_float(s), value_int(s)");
  }
  if (node.attrs.has("value")) return node.attrs.get_tensor("value");
  if (node.attrs.has("value_float")) return Tensor::scalar(node.attrs.get_float("value_float", 0));
  if (node.attrs.has("value_int"))
    return Tensor::from_ints({}, {node.attrs.get_int("value_int", 0)});
  if (node.attrs.has("value_floats")) {
    std::vector<float> v = node.attrs.get_floats("value_floats", {});
    const auto n = static_cast<std::int64_t>(v.size());
    return Tensor::from_floats({n}, std::move(v));
  }
  std::vector<std::int64_t> v = node.attrs.get_ints("value_ints", {});
  const auto n = static_cast<std::int64_t>(v.size());
  return Tensor::from_ints({n}, std::move(v));
}

// ---- shape-only ops: Flatten, Reshape, Squeeze, Unsqueeze ------------------------

Shape flatten_shape(const Node& node, const Shape& in) {
  const auto rank = static_cast<std::int64_t>(in.size());
  std::int64_t axis = node.attrs.get_int("axis", 1);
  // Flatten's axis may equal the rank (everything in the outer dimension).
  if (axis < -rank || axis > rank) {
    fail(node,
         "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  }
  if (axis < 0) axis += rank;
  const auto a = static_cast<std::size_t>(axis);
  return {product(in, 0, a), product(in, a, in.size())};
}

Shape reshape_shape(const Node& node, const Shape& in, const Tensor& shape_t) {
  if (shape_t.rank() != 1) {
    fail(node, "shape must be a 1-D tensor, has shape " + shape_to_string(shape_t.shape()));
  }
  const std::vector<std::int64_t> target = read_ints(node, shape_t, "shape");
  if (target.size() > kMaxRank) {
    fail(node,
         "target rank " + std::to_string(target.size()) + " exceeds " + std::to_string(kMaxRank));
  }
  const bool allowzero = node.attrs.get_int("allowzero", 0) != 0;
  Shape out(target.size());
  std::ptrdiff_t infer_at = -1;
  bool has_zero = false;
  std::int64_t known = 1;  // product of the given dims, kept <= kMaxTensorElements
  for (std::size_t i = 0; i < target.size(); ++i) {
    std::int64_t v = target[i];
    if (v == -1) {
      if (infer_at >= 0) fail(node, "shape " + shape_to_string(target) + " has more than one -1");
      infer_at = static_cast<std::ptrdiff_t>(i);
      continue;
    }
    if (v == 0 && !allowzero) {
      if (i >= in.size()) {
        fail(node, "shape[" + std::to_string(i) + "] = 0 copies a dimension the input " +
                       shape_to_string(in) + " does not have");
      }
      v = in[i];
    } else if (v < 0) {
      fail(node,
           "shape " + shape_to_string(target) + " has an invalid dimension " + std::to_string(v));
    }
    if (v == 0) {
      has_zero = true;
    } else if (v > kMaxTensorElements / known) {
      fail(node, "shape " + shape_to_string(target) + " is too large");
    } else {
      known *= v;
    }
    out[i] = v;
  }
  const std::int64_t n = product(in, 0, in.size());
  if (infer_at >= 0) {
    if (has_zero) {
      fail(node, "shape " + shape_to_string(target) + " has -1 next to a zero dimension");
    }
    if (n % known != 0) {
      fail(node, "cannot reshape " + shape_to_string(in) + " to " + shape_to_string(target));
    }
    out[static_cast<std::size_t>(infer_at)] = n / known;
  } else if ((has_zero ? 0 : known) != n) {
    fail(node, "cannot reshape " + shape_to_string(in) + " (" + std::to_string(n) +
                   " elements) to " + shape_to_string(out));
  }
  return out;
}

// `axes` nullptr or empty: drop every dimension of size 1.
Shape squeeze_shape(const Node& node, const Shape& in, const std::vector<std::int64_t>* axes) {
  const auto rank = static_cast<std::int64_t>(in.size());
  std::vector<bool> drop(in.size(), false);
  if (axes && !axes->empty()) {
    for (std::int64_t a : normalize_axes(node, *axes, rank)) {
      if (in[static_cast<std::size_t>(a)] != 1) {
        fail(node, "cannot squeeze axis " + std::to_string(a) + " of shape " + shape_to_string(in) +
                       ": its size is not 1");
      }
      drop[static_cast<std::size_t>(a)] = true;
    }
  } else {
    for (std::size_t i = 0; i < in.size(); ++i) drop[i] = in[i] == 1;
  }
  Shape out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (!drop[i]) out.push_back(in[i]);
  }
  return out;
}

// Axes are positions in the output, so they are normalised against its rank.
Shape unsqueeze_shape(const Node& node, const Shape& in, const std::vector<std::int64_t>& axes) {
  const std::size_t rank = in.size() + axes.size();
  if (rank > kMaxRank) {
    fail(node, "output rank " + std::to_string(rank) + " exceeds " + std::to_string(kMaxRank));
  }
  std::vector<bool> is_new(rank, false);
  for (std::int64_t a : normalize_axes(node, axes, static_cast<std::int64_t>(rank))) {
    is_new[static_cast<std::size_t>(a)] = true;
  }
  Shape out(rank);
  std::size_t next = 0;
  for (std::size_t i = 0; i < rank; ++i) out[i] = is_new[i] ? 1 : in[next++];
  return out;
}

// Squeeze/Unsqueeze axes: an attribute before opset 13, an input since.
std::optional<std::vector<std::int64_t>> axes_param(const Node& node, const Tensor* axes_input) {
  if (node.opset < 13) {
    if (!node.attrs.has("axes")) return std::nullopt;
    return node.attrs.get_ints("axes", {});
  }
  if (!axes_input) return std::nullopt;
  return read_ints(node, *axes_input, "axes");
}

// ---- Transpose ----------------------------------------------------------------------

std::vector<std::int64_t> transpose_perm(const Node& node, std::size_t rank) {
  std::vector<std::int64_t> perm;
  if (node.attrs.has("perm")) {
    perm = node.attrs.get_ints("perm", {});
  } else {
    for (std::size_t i = rank; i-- > 0;) perm.push_back(static_cast<std::int64_t>(i));
  }
  std::vector<bool> seen(rank, false);
  bool ok = perm.size() == rank;
  for (std::size_t i = 0; ok && i < perm.size(); ++i) {
    const std::int64_t p = perm[i];
    ok = p >= 0 && p < static_cast<std::int64_t>(rank) && !seen[static_cast<std::size_t>(p)];
    if (ok) seen[static_cast<std::size_t>(p)] = true;
  }
  if (!ok) {
    fail(node, "perm " + shape_to_string(perm) + " is not a permutation of the " +
                   std::to_string(rank) + " input axes");
  }
  return perm;
}

template <class T>
void transpose_loop(const T* in, T* out, const Shape& in_shape,
                    const std::vector<std::int64_t>& perm, ThreadPool& pool) {
  const std::size_t rank = perm.size();
  const std::vector<std::int64_t> in_strides = strides_of(in_shape);
  // Output dims with the input stride of each; size-1 dims carry no data.
  Dims dims{}, strides{};
  std::size_t n = 0;
  for (std::size_t i = 0; i < rank; ++i) {
    const auto p = static_cast<std::size_t>(perm[i]);
    if (in_shape[p] == 1) continue;
    dims[n] = in_shape[p];
    strides[n] = in_strides[p];
    ++n;
  }
  const std::int64_t total = product(in_shape, 0, in_shape.size());
  if (total == 0) return;
  bool in_order = true;  // only size-1 axes move: the data is unchanged
  for (std::size_t i = 1; i < n; ++i) in_order = in_order && strides[i - 1] > strides[i];
  if (n <= 1 || in_order) {
    std::copy(in, in + total, out);
    return;
  }
  const std::int64_t inner = dims[n - 1], step = strides[n - 1];
  const std::array<const std::int64_t*, 1> s = {strides.data()};
  for_rows(pool, total / inner, inner, [&](std::int64_t begin, std::int64_t end) {
    walk_rows<1>(n - 1, dims.data(), s, begin, end,
                 [&](std::int64_t row, const std::array<std::int64_t, 1>& off, const Dims&) {
                   const T* src = in + off[0];
                   T* dst = out + row * inner;
                   for (std::int64_t i = 0; i < inner; ++i) dst[i] = src[i * step];
                 });
  });
}

// ---- Concat ---------------------------------------------------------------------------

Shape concat_shape(const Node& node, std::span<const ValueInfo> in, std::int64_t* axis_out) {
  if (in.empty()) fail(node, "needs at least one input");
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (!in[i].present) fail(node, "input " + std::to_string(i) + " is missing");
  }
  // The axis became required in opset 4; before it defaulted to 1.
  if (node.opset >= 4 && !node.attrs.has("axis")) fail(node, "missing attribute 'axis'");
  const auto rank = static_cast<std::int64_t>(in[0].shape.size());
  const std::int64_t axis = normalize_axis(node, node.attrs.get_int("axis", 1), rank);
  Shape out = in[0].shape;
  out[static_cast<std::size_t>(axis)] = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const Shape& s = in[i].shape;
    bool ok = s.size() == out.size() && in[i].dtype == in[0].dtype;
    for (std::size_t d = 0; ok && d < s.size(); ++d) {
      ok = static_cast<std::int64_t>(d) == axis || s[d] == out[d];
    }
    if (!ok) {
      fail(node, "input " + std::to_string(i) + " " + std::string(dtype_name(in[i].dtype)) +
                     shape_to_string(s) + " does not match input 0 " +
                     std::string(dtype_name(in[0].dtype)) + shape_to_string(in[0].shape) +
                     " outside axis " + std::to_string(axis));
    }
    out[static_cast<std::size_t>(axis)] += s[static_cast<std::size_t>(axis)];
  }
  if (axis_out) *axis_out = axis;
  return out;
}

template <class T>
void concat_loop(std::span<const Tensor* const> inputs, T* out, const Shape& out_shape,
                 std::size_t axis) {
  const std::int64_t outer = product(out_shape, 0, axis);
  const std::int64_t inner = product(out_shape, axis + 1, out_shape.size());
  const std::int64_t row = out_shape[axis] * inner;
  std::int64_t at = 0;  // offset of this input's block within an output row
  for (const Tensor* t : inputs) {
    const T* src;
    if constexpr (std::is_same_v<T, float>) {
      src = t->f32().data();
    } else {
      src = t->i64().data();
    }
    const std::int64_t chunk = t->dim(axis) * inner;
    for (std::int64_t o = 0; o < outer; ++o) {
      std::copy(src + o * chunk, src + (o + 1) * chunk, out + o * row + at);
    }
    at += chunk;
  }
}

// ---- Slice ------------------------------------------------------------------------------

// Per input dim: first element, step, and count taken.
struct SlicePlan {
  Shape out;
  std::vector<std::int64_t> start, step;
};

SlicePlan slice_plan(const Node& node, const Shape& in, const Tensor* starts_t,
                     const Tensor* ends_t, const Tensor* axes_t, const Tensor* steps_t) {
  std::vector<std::int64_t> starts, ends, axes, steps;
  if (node.opset < 10) {
    if (!node.attrs.has("starts") || !node.attrs.has("ends")) {
      fail(node, "needs the attributes 'starts' and 'ends'");
    }
    starts = node.attrs.get_ints("starts", {});
    ends = node.attrs.get_ints("ends", {});
    axes = node.attrs.get_ints("axes", {});
  } else {
    if (!starts_t || !ends_t) fail(node, "needs the inputs starts and ends");
    starts = read_ints(node, *starts_t, "starts");
    ends = read_ints(node, *ends_t, "ends");
    if (axes_t) axes = read_ints(node, *axes_t, "axes");
    if (steps_t) steps = read_ints(node, *steps_t, "steps");
  }
  const auto rank = static_cast<std::int64_t>(in.size());
  const bool have_axes = node.opset < 10 ? node.attrs.has("axes") : axes_t != nullptr;
  if (!have_axes) {
    for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
  }
  if (steps.empty() && (node.opset < 10 || !steps_t)) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() ||
      steps.size() != starts.size()) {
    fail(node, "starts, ends, axes and steps differ in length (" + std::to_string(starts.size()) +
                   ", " + std::to_string(ends.size()) + ", " + std::to_string(axes.size()) + ", " +
                   std::to_string(steps.size()) + ")");
  }
  axes = normalize_axes(node, std::move(axes), rank);
  SlicePlan p;
  p.out = in;
  p.start.assign(in.size(), 0);
  p.step.assign(in.size(), 1);
  for (std::size_t i = 0; i < axes.size(); ++i) {
    const auto a = static_cast<std::size_t>(axes[i]);
    const std::int64_t dim = in[a];
    std::int64_t s = starts[i], e = ends[i], t = steps[i];
    if (t == 0) fail(node, "step of axis " + std::to_string(a) + " is 0");
    // dim <= 2^31, so these additions cannot overflow.
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    std::int64_t count;
    if (dim == 0) {
      count = 0;  // also keeps the clamp bounds below ordered
    } else if (t > 0) {
      s = std::clamp<std::int64_t>(s, 0, dim);
      e = std::clamp<std::int64_t>(e, 0, dim);
      count = e > s ? (e - s - 1) / t + 1 : 0;  // no e - s + t: t may be huge
    } else {
      s = std::clamp<std::int64_t>(s, 0, dim - 1);
      e = std::clamp<std::int64_t>(e, -1, dim - 1);
      // -t overflows for INT64_MIN; any step beyond the dim takes one element.
      const std::int64_t neg = t < -dim ? dim + 1 : -t;
      count = s > e ? (s - e - 1) / neg + 1 : 0;
      t = -neg;
    }
    if (count == 0) s = 0;
    p.out[a] = count;
    p.start[a] = s;
    p.step[a] = count > 1 ? t : 1;  // keeps offsets in range when count <= 1
  }
  return p;
}

template <class T>
void slice_loop(const T* in, T* out, const Shape& in_shape, const SlicePlan& p, ThreadPool& pool) {
  const std::size_t rank = in_shape.size();
  const std::int64_t total = product(p.out, 0, rank);
  if (total == 0) return;
  if (rank == 0) {
    out[0] = in[0];
    return;
  }
  const std::vector<std::int64_t> in_strides = strides_of(in_shape);
  Dims strides{};
  std::int64_t base = 0;
  for (std::size_t d = 0; d < rank; ++d) {
    strides[d] = in_strides[d] * p.step[d];
    base += p.start[d] * in_strides[d];
  }
  const std::int64_t inner = p.out[rank - 1], step = strides[rank - 1];
  const std::array<const std::int64_t*, 1> s = {strides.data()};
  for_rows(pool, total / inner, inner, [&](std::int64_t begin, std::int64_t end) {
    walk_rows<1>(rank - 1, p.out.data(), s, begin, end,
                 [&](std::int64_t row, const std::array<std::int64_t, 1>& off, const Dims&) {
                   const T* src = in + base + off[0];
                   T* dst = out + row * inner;
                   if (step == 1) {
                     std::copy(src, src + inner, dst);
                   } else {
                     for (std::int64_t i = 0; i < inner; ++i) dst[i] = src[i * step];
                   }
                 });
  });
}

// ---- Pad --------------------------------------------------------------------------------------

enum class PadMode { kConstant, kReflect, kEdge };

// Negative pads crop first, then positive pads grow the cropped tensor (the
// order ONNX Runtime uses, which matters for reflect and edge).
struct PadPlan {
  PadMode mode = PadMode::kConstant;
  Shape out;
  std::vector<std::int64_t> crop;    // first kept input index per axis
  std::vector<std::int64_t> keep;    // kept input extent per axis
  std::vector<std::int64_t> before;  // elements added in front per axis
};

PadPlan pad_plan(const Node& node, const Shape& in, const Tensor* pads_t, const Tensor* axes_t) {
  PadPlan p;
  const std::string mode = node.attrs.get_string("mode", "constant");
  if (mode == "constant") {
    p.mode = PadMode::kConstant;
  } else if (mode == "reflect") {
    p.mode = PadMode::kReflect;
  } else if (mode == "edge") {
    p.mode = PadMode::kEdge;
  } else {
    fail(node, "mode '" + mode + "' is not supported (constant, reflect, edge)");
  }
  const auto rank = static_cast<std::int64_t>(in.size());
  std::vector<std::int64_t> pads, axes;
  if (node.opset < 11) {
    const char* name = node.opset < 2 && node.attrs.has("paddings") ? "paddings" : "pads";
    if (!node.attrs.has(name)) fail(node, "missing attribute 'pads'");
    pads = node.attrs.get_ints(name, {});
  } else {
    if (!pads_t) fail(node, "needs the input pads");
    pads = read_ints(node, *pads_t, "pads");
  }
  if (axes_t) {
    axes = normalize_axes(node, read_ints(node, *axes_t, "axes"), rank);
  } else {
    for (std::int64_t a = 0; a < rank; ++a) axes.push_back(a);
  }
  if (pads.size() != 2 * axes.size()) {
    fail(node, "pads has " + std::to_string(pads.size()) + " values, expected " +
                   std::to_string(2 * axes.size()));
  }
  std::vector<std::int64_t> lo(in.size(), 0), hi(in.size(), 0);
  for (std::size_t i = 0; i < axes.size(); ++i) {
    lo[static_cast<std::size_t>(axes[i])] = pads[i];
    hi[static_cast<std::size_t>(axes[i])] = pads[i + axes.size()];
  }
  p.out.resize(in.size());
  p.crop.resize(in.size());
  p.keep.resize(in.size());
  p.before.resize(in.size());
  for (std::size_t d = 0; d < in.size(); ++d) {
    const std::string where = " on axis " + std::to_string(d) + " of " + shape_to_string(in);
    // Bounding the pads first keeps the arithmetic below free of overflow.
    if (std::max(lo[d], hi[d]) > kMaxTensorElements || std::min(lo[d], hi[d]) < -in[d]) {
      fail(node, "pads " + shape_to_string(pads) + " are out of range" + where);
    }
    const std::int64_t crop_lo = std::max<std::int64_t>(0, -lo[d]);
    const std::int64_t crop_hi = std::max<std::int64_t>(0, -hi[d]);
    const std::int64_t keep = in[d] - crop_lo - crop_hi;
    if (keep < 0) fail(node, "negative pads crop more than the whole axis" + where);
    const std::int64_t b = std::max<std::int64_t>(0, lo[d]);
    const std::int64_t a = std::max<std::int64_t>(0, hi[d]);
    if (b > 0 || a > 0) {
      if (p.mode == PadMode::kReflect && std::max(a, b) > keep - 1) {
        fail(node,
             "reflect pads must be smaller than the padded extent " + std::to_string(keep) + where);
      }
      if (p.mode == PadMode::kEdge && keep == 0)
        fail(node, "edge padding of an empty axis" + where);
    }
    p.crop[d] = crop_lo;
    p.keep[d] = keep;
    p.before[d] = b;
    p.out[d] = keep + b + a;
  }
  check_shape(node, p.out);
  return p;
}

// Input index feeding output index o along one axis, or -1 for the pad value.
std::int64_t pad_source(const PadPlan& p, std::size_t d, std::int64_t o) {
  const std::int64_t j = o - p.before[d];  // position in the kept range
  const std::int64_t keep = p.keep[d];
  if (j >= 0 && j < keep) return p.crop[d] + j;
  switch (p.mode) {
    case PadMode::kConstant: return -1;
    case PadMode::kEdge: return p.crop[d] + (j < 0 ? 0 : keep - 1);
    case PadMode::kReflect: return p.crop[d] + (j < 0 ? -j : 2 * (keep - 1) - j);
  }
  return -1;
}

template <class T>
void pad_loop(const T* in, T* out, const Shape& in_shape, const PadPlan& p, T value,
              ThreadPool& pool) {
  const std::size_t rank = in_shape.size();
  const std::int64_t total = product(p.out, 0, rank);
  if (total == 0) return;
  if (rank == 0) {
    out[0] = in[0];
    return;
  }
  // Source index of every output coordinate, per axis: a few KB at most.
  std::vector<std::int64_t> map_at(rank + 1, 0);
  for (std::size_t d = 0; d < rank; ++d) map_at[d + 1] = map_at[d] + p.out[d];
  std::vector<std::int64_t> map(static_cast<std::size_t>(map_at[rank]));
  for (std::size_t d = 0; d < rank; ++d) {
    for (std::int64_t o = 0; o < p.out[d]; ++o) {
      map[static_cast<std::size_t>(map_at[d] + o)] = pad_source(p, d, o);
    }
  }
  const std::vector<std::int64_t> in_strides = strides_of(in_shape);
  const std::size_t last = rank - 1;
  const std::int64_t inner = p.out[last];
  const std::int64_t* inner_map = map.data() + map_at[last];
  const std::int64_t body_lo = p.before[last], body_hi = body_lo + p.keep[last];
  const std::array<const std::int64_t*, 0> none = {};
  for_rows(pool, total / inner, inner, [&](std::int64_t begin, std::int64_t end) {
    walk_rows<0>(last, p.out.data(), none, begin, end,
                 [&](std::int64_t row, const std::array<std::int64_t, 0>&, const Dims& idx) {
                   T* dst = out + row * inner;
                   std::int64_t base = 0;
                   for (std::size_t d = 0; d < last; ++d) {
                     const std::int64_t s = map[static_cast<std::size_t>(map_at[d] + idx[d])];
                     if (s < 0) {
                       std::fill(dst, dst + inner, value);
                       return;
                     }
                     base += s * in_strides[d];
                   }
                   const T* src = in + base;
                   for (std::int64_t i = 0; i < body_lo; ++i) {
                     dst[i] = inner_map[i] < 0 ? value : src[inner_map[i]];
                   }
                   std::copy(src + p.crop[last], src + p.crop[last] + p.keep[last], dst + body_lo);
                   for (std::int64_t i = body_hi; i < inner; ++i) {
                     dst[i] = inner_map[i] < 0 ? value : src[inner_map[i]];
                   }
                 });
  });
}

// ---- Gather -----------------------------------------------------------------------------------

Shape gather_shape(const Node& node, const Shape& data, const Shape& indices,
                   std::size_t* axis_out) {
  const auto rank = static_cast<std::int64_t>(data.size());
  if (rank == 0) fail(node, "cannot gather from a scalar");
  const auto axis =
      static_cast<std::size_t>(normalize_axis(node, node.attrs.get_int("axis", 0), rank));
  Shape out(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(axis));
  out.insert(out.end(), indices.begin(), indices.end());
  out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(axis) + 1, data.end());
  if (out.size() > kMaxRank) {
    fail(node,
         "output rank " + std::to_string(out.size()) + " exceeds " + std::to_string(kMaxRank));
  }
  if (axis_out) *axis_out = axis;
  return out;
}

template <class T>
void gather_loop(const T* data, const std::int64_t* idx, T* out, const Shape& data_shape,
                 std::size_t axis, std::int64_t n_idx) {
  const std::int64_t outer = product(data_shape, 0, axis);
  const std::int64_t dim = data_shape[axis];
  const std::int64_t inner = product(data_shape, axis + 1, data_shape.size());
  for (std::int64_t o = 0; o < outer; ++o) {
    const T* src = data + o * dim * inner;
    for (std::int64_t j = 0; j < n_idx; ++j) {
      const std::int64_t k = idx[j] < 0 ? idx[j] + dim : idx[j];  // validated by the caller
      std::copy(src + k * inner, src + (k + 1) * inner, out);
      out += inner;
    }
  }
}

void run_gather(const Node& node, const Tensor& data, const Tensor& indices, Tensor& out) {
  if (indices.dtype() != DType::kInt64) {
    throw_error(ErrorCategory::kInternal, node.label() + ": indices are not int64");
  }
  std::size_t axis = 0;
  expect_output(node, out, data.dtype(), gather_shape(node, data.shape(), indices.shape(), &axis));
  const std::int64_t dim = data.dim(axis);
  // Indices may be a runtime value: check every one before any is used.
  for (std::int64_t v : indices.i64()) {
    if (v < -dim || v >= dim) {
      throw_error(ErrorCategory::kBadInput,
                  node.label() + ": index " + std::to_string(v) + " is out of range for axis " +
                      std::to_string(axis) + " of size " + std::to_string(dim));
    }
  }
  if (data.dtype() == DType::kFloat32) {
    gather_loop(data.f32().data(), indices.i64().data(), out.f32().data(), data.shape(), axis,
                indices.numel());
  } else {
    gather_loop(data.i64().data(), indices.i64().data(), out.i64().data(), data.shape(), axis,
                indices.numel());
  }
}

// Dispatches a dtype-generic kernel on float32 or int64 data.
template <class F>
void with_type(const Tensor& in, Tensor& out, F&& fn) {
  if (in.dtype() == DType::kFloat32) {
    fn(in.f32().data(), out.f32().data());
  } else {
    fn(in.i64().data(), out.i64().data());
  }
}

}  // namespace

// ---- shape inference --------------------------------------------------------------------------

std::vector<TypedShape> infer_basic(const Node& node, std::span<const ValueInfo> in) {
  const auto single = [&](DType dtype, Shape shape) {
    check_shape(node, shape);
    return std::vector<TypedShape>{{dtype, std::move(shape)}};
  };
  switch (node.op) {
    case OpType::kAdd:
    case OpType::kSub:
    case OpType::kMul:
    case OpType::kDiv:
    case OpType::kPow: return infer_binary(node, in);

    case OpType::kRelu:
    case OpType::kSigmoid:
    case OpType::kTanh:
    case OpType::kErf:
    case OpType::kSqrt:
      expect_inputs(node, in, 1, 1);
      check_dtype(node, in[0], DType::kFloat32, "input");
      return single(DType::kFloat32, in[0].shape);

    case OpType::kIdentity: expect_inputs(node, in, 1, 1); return single(in[0].dtype, in[0].shape);

    case OpType::kCast:
      expect_inputs(node, in, 1, 1);
      return single(cast_target(node), in[0].shape);

    case OpType::kConstant: {
      expect_inputs(node, in, 0, 0);
      const Tensor v = constant_value(node);
      return single(v.dtype(), v.shape());
    }

    case OpType::kFlatten:
      expect_inputs(node, in, 1, 1);
      return single(in[0].dtype, flatten_shape(node, in[0].shape));

    case OpType::kReshape: {
      expect_inputs(node, in, 2, 2);
      const Tensor* shape = constant_input(node, in, 1, "shape");
      return single(in[0].dtype, reshape_shape(node, in[0].shape, *shape));
    }

    case OpType::kSqueeze: {
      expect_inputs(node, in, 1, node.opset < 13 ? 1 : 2);
      const auto axes = axes_param(node, constant_input(node, in, 1, "axes"));
      return single(in[0].dtype, squeeze_shape(node, in[0].shape, axes ? &*axes : nullptr));
    }

    case OpType::kUnsqueeze: {
      expect_inputs(node, in, node.opset < 13 ? 1 : 2, node.opset < 13 ? 1 : 2);
      const auto axes = axes_param(node, constant_input(node, in, 1, "axes"));
      if (!axes) fail(node, "missing axes");
      return single(in[0].dtype, unsqueeze_shape(node, in[0].shape, *axes));
    }

    case OpType::kTranspose: {
      expect_inputs(node, in, 1, 1);
      const std::vector<std::int64_t> perm = transpose_perm(node, in[0].shape.size());
      Shape out(perm.size());
      for (std::size_t i = 0; i < perm.size(); ++i) {
        out[i] = in[0].shape[static_cast<std::size_t>(perm[i])];
      }
      return single(in[0].dtype, std::move(out));
    }

    case OpType::kConcat:
      return single(in.empty() ? DType::kFloat32 : in[0].dtype, concat_shape(node, in, nullptr));

    case OpType::kSlice: {
      if (node.opset < 10) {
        expect_inputs(node, in, 1, 1);
        return single(in[0].dtype,
                      slice_plan(node, in[0].shape, nullptr, nullptr, nullptr, nullptr).out);
      }
      expect_inputs(node, in, 3, 5);
      SlicePlan p =
          slice_plan(node, in[0].shape, constant_input(node, in, 1, "starts"),
                     constant_input(node, in, 2, "ends"), constant_input(node, in, 3, "axes"),
                     constant_input(node, in, 4, "steps"));
      return single(in[0].dtype, std::move(p.out));
    }

    case OpType::kPad: {
      if (node.opset < 11) {
        expect_inputs(node, in, 1, 1);
        return single(in[0].dtype, pad_plan(node, in[0].shape, nullptr, nullptr).out);
      }
      expect_inputs(node, in, 2, node.opset < 18 ? 3 : 4);
      // constant_value is read by the kernel, so it need not be a constant.
      if (in.size() > 2 && in[2].present) {
        if (in[2].dtype != in[0].dtype) fail(node, "constant_value and data differ in type");
        if (product(in[2].shape, 0, in[2].shape.size()) != 1) {
          fail(node, "constant_value must be a scalar, has shape " + shape_to_string(in[2].shape));
        }
      }
      PadPlan p = pad_plan(node, in[0].shape, constant_input(node, in, 1, "pads"),
                           constant_input(node, in, 3, "axes"));
      return single(in[0].dtype, std::move(p.out));
    }

    case OpType::kGather: {
      expect_inputs(node, in, 2, 2);
      check_dtype(node, in[1], DType::kInt64, "indices");
      return single(in[0].dtype, gather_shape(node, in[0].shape, in[1].shape, nullptr));
    }

    default: break;
  }
  fail(node, "is not an element-wise or data-movement op");
}

// ---- kernels --------------------------------------------------------------------------------

void run_basic(const Node& node, std::span<const Tensor* const> inputs,
               std::span<Tensor* const> outputs, ThreadPool& pool) {
  switch (node.op) {
    case OpType::kAdd:
    case OpType::kSub:
    case OpType::kMul:
    case OpType::kDiv:
    case OpType::kPow: return run_binary(node, inputs, outputs, pool);

    case OpType::kRelu:
    case OpType::kSigmoid:
    case OpType::kTanh:
    case OpType::kErf:
    case OpType::kSqrt: return run_unary(node, inputs, outputs, pool);

    // Pure shape changes: the row-major data is the same.
    case OpType::kIdentity:
    case OpType::kFlatten:
    case OpType::kReshape:
    case OpType::kSqueeze:
    case OpType::kUnsqueeze:
      return copy_data(node, required_tensor(node, inputs, 0), output_tensor(node, outputs, 0));

    case OpType::kCast:
      return run_cast(node, required_tensor(node, inputs, 0), output_tensor(node, outputs, 0));

    case OpType::kConstant: {
      const Tensor v = constant_value(node);
      Tensor& out = output_tensor(node, outputs, 0);
      expect_output(node, out, v.dtype(), v.shape());
      return copy_data(node, v, out);
    }

    case OpType::kTranspose: {
      const Tensor& in = required_tensor(node, inputs, 0);
      Tensor& out = output_tensor(node, outputs, 0);
      const std::vector<std::int64_t> perm = transpose_perm(node, in.rank());
      Shape shape(perm.size());
      for (std::size_t i = 0; i < perm.size(); ++i)
        shape[i] = in.dim(static_cast<std::size_t>(perm[i]));
      expect_output(node, out, in.dtype(), shape);
      return with_type(
          in, out, [&](const auto* x, auto* y) { transpose_loop(x, y, in.shape(), perm, pool); });
    }

    case OpType::kConcat: {
      std::vector<ValueInfo> infos(inputs.size());
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        const Tensor& t = required_tensor(node, inputs, i);
        infos[i].dtype = t.dtype();
        infos[i].shape = t.shape();
      }
      std::int64_t axis = 0;
      const Shape shape = concat_shape(node, infos, &axis);
      Tensor& out = output_tensor(node, outputs, 0);
      expect_output(node, out, infos[0].dtype, shape);
      if (out.dtype() == DType::kFloat32) {
        concat_loop(inputs, out.f32().data(), shape, static_cast<std::size_t>(axis));
      } else {
        concat_loop(inputs, out.i64().data(), shape, static_cast<std::size_t>(axis));
      }
      return;
    }

    case OpType::kSlice: {
      const Tensor& in = required_tensor(node, inputs, 0);
      Tensor& out = output_tensor(node, outputs, 0);
      const SlicePlan p =
          slice_plan(node, in.shape(), optional_tensor(inputs, 1), optional_tensor(inputs, 2),
                     optional_tensor(inputs, 3), optional_tensor(inputs, 4));
      expect_output(node, out, in.dtype(), p.out);
      return with_type(in, out,
                       [&](const auto* x, auto* y) { slice_loop(x, y, in.shape(), p, pool); });
    }

    case OpType::kPad: {
      const Tensor& in = required_tensor(node, inputs, 0);
      Tensor& out = output_tensor(node, outputs, 0);
      const bool new_style = node.opset >= 11;
      const PadPlan p = pad_plan(node, in.shape(), new_style ? optional_tensor(inputs, 1) : nullptr,
                                 new_style ? optional_tensor(inputs, 3) : nullptr);
      expect_output(node, out, in.dtype(), p.out);
      const Tensor* cv = new_style ? optional_tensor(inputs, 2) : nullptr;
      if (cv && (cv->numel() != 1 || cv->dtype() != in.dtype())) {
        throw_error(ErrorCategory::kInternal, node.label() + ": constant_value is not a scalar");
      }
      if (in.dtype() == DType::kFloat32) {
        const float v = cv ? cv->f32()[0] : node.attrs.get_float("value", 0.0f);
        pad_loop(in.f32().data(), out.f32().data(), in.shape(), p, v, pool);
      } else {
        const std::int64_t v = cv ? cv->i64()[0] : float_to_int64(node.attrs.get_float("value", 0));
        pad_loop(in.i64().data(), out.i64().data(), in.shape(), p, v, pool);
      }
      return;
    }

    case OpType::kGather:
      return run_gather(node, required_tensor(node, inputs, 0), required_tensor(node, inputs, 1),
                        output_tensor(node, outputs, 0));

    default: break;
  }
  fail(node, "is not an element-wise or data-movement op");
}

}  // namespace blindfold::model::detail
