// Internal to model/: the split of the op set between the neural-network ops
// (convolutions, pooling, matrix products, normalisations: ops_nn.cc) and
// the element-wise and data-movement ops (ops_basic.cc). Each file owns both
// shape inference and the kernel of its ops.
#pragma once

#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "model/graph.h"
#include "model/shape_inference.h"

namespace blindfold::model::detail {

/// Conv, MaxPool, AveragePool, GlobalAveragePool, Gemm, MatMul,
/// BatchNormalization, LayerNormalization, Softmax, ReduceMean.
bool is_nn_op(OpType op);

std::vector<TypedShape> infer_nn(const Node& node, std::span<const ValueInfo> inputs);
void run_nn(const Node& node, std::span<const Tensor* const> inputs,
            std::span<Tensor* const> outputs, ThreadPool& pool);

/// Every other op.
std::vector<TypedShape> infer_basic(const Node& node, std::span<const ValueInfo> inputs);
void run_basic(const Node& node, std::span<const Tensor* const> inputs,
               std::span<Tensor* const> outputs, ThreadPool& pool);

/// Test hook: caps the SIMD level of the NN kernels (0 baseline, 1 AVX2,
/// 2 AVX-512; default: the best the CPU has) so one machine tests every
/// variant. Not for production use.
void set_nn_simd_cap_for_testing(int level);

/// Helpers shared by both files.
/// Throws kBadModel "<node label>: <msg>".
[[noreturn]] void fail(const Node& node, const std::string& msg);
/// Throws kUnsupported "<node label>: <msg>": a valid ONNX construct this
/// engine does not implement (e.g. 3-D pooling, Cast to double). Malformed
/// models use fail().
[[noreturn]] void unsupported(const Node& node, const std::string& msg);
/// Checks the number of (present or omitted) inputs lies in [lo, hi].
void expect_inputs(const Node& node, std::span<const ValueInfo> inputs, std::size_t lo,
                   std::size_t hi);
/// Normalises a possibly negative axis against `rank`; throws naming the node.
std::int64_t normalize_axis(const Node& node, std::int64_t axis, std::int64_t rank);

}  // namespace blindfold::model::detail
