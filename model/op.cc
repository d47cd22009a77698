#include "model/op.h"

namespace blindfold::model {

namespace {
constexpr bool names_unique() {
  for (std::size_t i = 0; i < kOpNames.size(); ++i)
    for (std::size_t j = i + 1; j < kOpNames.size(); ++j)
      if (kOpNames[i] == kOpNames[j]) return false;
  return true;
}
static_assert(names_unique(), "duplicate op name in kOpNames");
}  // namespace

std::optional<OpType> op_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kOpNames.size(); ++i) {
    if (kOpNames[i] == name) return static_cast<OpType>(i);
  }
  return std::nullopt;
}

bool is_unary_elementwise(OpType op) {
  switch (op) {
    case OpType::kRelu:
    case OpType::kSigmoid:
    case OpType::kTanh:
    case OpType::kErf:
    case OpType::kSqrt: return true;
    default: return false;
  }
}

bool is_binary_elementwise(OpType op) {
  switch (op) {
    case OpType::kAdd:
    case OpType::kSub:
    case OpType::kMul:
    case OpType::kDiv:
    case OpType::kPow: return true;
    default: return false;
  }
}

}  // namespace blindfold::model
