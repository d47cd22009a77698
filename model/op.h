// The closed set of operators Blindfold understands. Every backend, pass and
// kernel switches over this enum; the name table is checked at compile time
// so the two cannot drift apart (the shape of ggml's enum ggml_op).
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace blindfold::model {

enum class OpType : int {
  kGemm,
  kMatMul,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kConv,
  kRelu,
  kSigmoid,
  kTanh,
  kErf,
  kMaxPool,
  kAveragePool,
  kGlobalAveragePool,
  kPad,
  kFlatten,
  kReshape,
  kTranspose,
  kConcat,
  kSqueeze,
  kUnsqueeze,
  kSlice,
  kGather,
  kBatchNormalization,
  kLayerNormalization,
  kSoftmax,
  kPow,
  kSqrt,
  kReduceMean,
  kConstant,
  kIdentity,
  kCast,
  kCount,  // not an op: the number of ops
};

inline constexpr std::array<std::string_view, static_cast<int>(OpType::kCount)> kOpNames = {
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Conv",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Erf",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Pad",
    "Flatten",
    "Reshape",
    "Transpose",
    "Concat",
    "Squeeze",
    "Unsqueeze",
    "Slice",
    "Gather",
    "BatchNormalization",
    "LayerNormalization",
    "Softmax",
    "Pow",
    "Sqrt",
    "ReduceMean",
    "Constant",
    "Identity",
    "Cast",
};
static_assert(kOpNames.size() == static_cast<std::size_t>(OpType::kCount),
              "every OpType needs exactly one name");
static_assert(kOpNames.back() == "Cast", "name table out of step with OpType");

constexpr std::string_view op_name(OpType op) {
  return kOpNames[static_cast<std::size_t>(op)];
}

/// The op with ONNX name `name`, or nullopt when Blindfold does not support it.
std::optional<OpType> op_from_name(std::string_view name);

/// True for ops applied element by element to one input (Relu, Sigmoid, ...).
bool is_unary_elementwise(OpType op);
/// True for the broadcasting binary ops (Add, Sub, Mul, Div, Pow).
bool is_binary_elementwise(OpType op);

}  // namespace blindfold::model
