#include "core/tensor.h"

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace blindfold {

std::string_view dtype_name(DType t) noexcept {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kInt64: return "int64";
  }
  return "?";
}

std::int64_t checked_numel(const Shape& shape) {
  if (shape.size() > kMaxRank) {
    throw_error(ErrorCategory::kBadInput, "tensor rank " + std::to_string(shape.size()) +
                                              " exceeds the maximum of " +
                                              std::to_string(kMaxRank));
  }
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) {
      throw_error(ErrorCategory::kBadInput,
                  "negative dimension in shape " + shape_to_string(shape));
    }
    if (d != 0 && n > kMaxTensorElements / d) {
      throw_error(ErrorCategory::kBadInput,
                  "shape " + shape_to_string(shape) + " has more than 2^31 elements");
    }
    n *= d;
  }
  if (n > kMaxTensorElements) {
    throw_error(ErrorCategory::kBadInput,
                "shape " + shape_to_string(shape) + " has more than 2^31 elements");
  }
  return n;
}

std::string shape_to_string(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) os << ", ";
    os << shape[i];
  }
  os << ']';
  return os.str();
}

std::vector<std::int64_t> strides_of(const Shape& shape) {
  std::vector<std::int64_t> s(shape.size(), 1);
  for (std::size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

Tensor::Tensor(DType dtype, Shape shape) {
  reset(dtype, shape);
}

namespace {
void check_data_size(const Shape& shape, std::size_t have, std::int64_t need) {
  if (static_cast<std::int64_t>(have) != need) {
    throw_error(ErrorCategory::kBadInput, "tensor data has " + std::to_string(have) +
                                              " elements, shape " + shape_to_string(shape) +
                                              " needs " + std::to_string(need));
  }
}
}  // namespace

Tensor Tensor::from_floats(Shape shape, std::vector<float> data) {
  Tensor t;
  t.dtype_ = DType::kFloat32;
  t.numel_ = checked_numel(shape);
  check_data_size(shape, data.size(), t.numel_);
  t.shape_ = std::move(shape);
  t.f32_ = std::move(data);
  return t;
}

Tensor Tensor::from_ints(Shape shape, std::vector<std::int64_t> data) {
  Tensor t;
  t.dtype_ = DType::kInt64;
  t.numel_ = checked_numel(shape);
  check_data_size(shape, data.size(), t.numel_);
  t.shape_ = std::move(shape);
  t.i64_ = std::move(data);
  return t;
}

void Tensor::reset(DType dtype, const Shape& shape) {
  const std::int64_t n = checked_numel(shape);
  dtype_ = dtype;
  shape_ = shape;
  numel_ = n;
  if (dtype == DType::kFloat32) {
    f32_.resize(static_cast<std::size_t>(n));
    i64_.clear();
  } else {
    i64_.resize(static_cast<std::size_t>(n));
    f32_.clear();
  }
}

void Tensor::reshape(const Shape& shape) {
  if (checked_numel(shape) != numel_) {
    throw_error(ErrorCategory::kInternal, "reshape from " + shape_to_string(shape_) + " to " +
                                              shape_to_string(shape) + " changes the size");
  }
  shape_ = shape;
}

std::span<float> Tensor::f32() {
  if (dtype_ != DType::kFloat32) throw_error(ErrorCategory::kInternal, "tensor is not float32");
  return {f32_.data(), static_cast<std::size_t>(numel_)};
}
std::span<const float> Tensor::f32() const {
  if (dtype_ != DType::kFloat32) throw_error(ErrorCategory::kInternal, "tensor is not float32");
  return {f32_.data(), static_cast<std::size_t>(numel_)};
}
std::span<std::int64_t> Tensor::i64() {
  if (dtype_ != DType::kInt64) throw_error(ErrorCategory::kInternal, "tensor is not int64");
  return {i64_.data(), static_cast<std::size_t>(numel_)};
}
std::span<const std::int64_t> Tensor::i64() const {
  if (dtype_ != DType::kInt64) throw_error(ErrorCategory::kInternal, "tensor is not int64");
  return {i64_.data(), static_cast<std::size_t>(numel_)};
}

std::span<std::uint8_t> Tensor::bytes() {
  if (dtype_ == DType::kFloat32) {
    return {reinterpret_cast<std::uint8_t*>(f32_.data()),
            static_cast<std::size_t>(numel_) * sizeof(float)};
  }
  return {reinterpret_cast<std::uint8_t*>(i64_.data()),
          static_cast<std::size_t>(numel_) * sizeof(std::int64_t)};
}
std::span<const std::uint8_t> Tensor::bytes() const {
  return const_cast<Tensor*>(this)->bytes();
}

std::vector<std::int64_t> Tensor::to_int_vector() const {
  if (dtype_ == DType::kInt64) return {i64_.begin(), i64_.begin() + numel_};
  std::vector<std::int64_t> out;
  out.reserve(static_cast<std::size_t>(numel_));
  for (std::int64_t i = 0; i < numel_; ++i) {
    const float v = f32_[static_cast<std::size_t>(i)];
    if (!std::isfinite(v) || std::trunc(v) != v || std::fabs(v) > 9.0e18f) {
      throw_error(ErrorCategory::kBadModel, "expected integer values, found " + std::to_string(v));
    }
    out.push_back(static_cast<std::int64_t>(v));
  }
  return out;
}

std::vector<float> Tensor::to_float_vector() const {
  if (dtype_ == DType::kFloat32) return {f32_.begin(), f32_.begin() + numel_};
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(numel_));
  for (std::int64_t i = 0; i < numel_; ++i)
    out.push_back(static_cast<float>(i64_[static_cast<std::size_t>(i)]));
  return out;
}

}  // namespace blindfold
