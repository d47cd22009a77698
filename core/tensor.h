// Dense, row-major tensors of float32 or int64: the values that flow through
// a model graph. Shapes are checked for overflow and against a size cap, so a
// hostile model or input file cannot ask for an absurd allocation.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace blindfold {

enum class DType : std::uint8_t { kFloat32, kInt64 };

std::string_view dtype_name(DType t) noexcept;

using Shape = std::vector<std::int64_t>;

/// Largest element count one tensor may have (2^31): 8 GiB of float32. A
/// larger request is refused as bad input before any allocation.
inline constexpr std::int64_t kMaxTensorElements = std::int64_t{1} << 31;
/// Largest rank accepted anywhere.
inline constexpr std::size_t kMaxRank = 8;

/// Element count of a shape. Throws Error(kBadInput) for a negative
/// dimension, a rank above kMaxRank, overflow, or more than kMaxTensorElements.
std::int64_t checked_numel(const Shape& shape);

/// "[1, 3, 28, 28]".
std::string shape_to_string(const Shape& shape);

/// Row-major strides of a shape (in elements).
std::vector<std::int64_t> strides_of(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  /// Zero-filled tensor. Throws on an invalid shape (see checked_numel).
  Tensor(DType dtype, Shape shape);
  static Tensor from_floats(Shape shape, std::vector<float> data);
  static Tensor from_ints(Shape shape, std::vector<std::int64_t> data);
  static Tensor scalar(float v) { return from_floats({}, {v}); }

  DType dtype() const noexcept { return dtype_; }
  const Shape& shape() const noexcept { return shape_; }
  std::size_t rank() const noexcept { return shape_.size(); }
  std::int64_t dim(std::size_t i) const { return shape_.at(i); }
  std::int64_t numel() const noexcept { return numel_; }
  bool empty() const noexcept { return numel_ == 0; }

  /// Reshapes in place, reusing the buffer when it is large enough (the
  /// executor relies on this to avoid per-run allocations). Contents are
  /// unspecified afterwards.
  void reset(DType dtype, const Shape& shape);
  /// Same element count, new shape; contents kept.
  void reshape(const Shape& shape);

  std::span<float> f32();
  std::span<const float> f32() const;
  std::span<std::int64_t> i64();
  std::span<const std::int64_t> i64() const;
  /// The elements as the bytes they lie in, whatever the dtype (for
  /// serializers, and for wiping a tensor that held a secret).
  std::span<std::uint8_t> bytes();
  std::span<const std::uint8_t> bytes() const;

  /// Values as int64 whatever the dtype (floats truncated): for shape-like
  /// parameters. Throws if a float is not integral.
  std::vector<std::int64_t> to_int_vector() const;
  /// Values as float whatever the dtype.
  std::vector<float> to_float_vector() const;

 private:
  DType dtype_ = DType::kFloat32;
  Shape shape_;
  std::int64_t numel_ = 0;
  std::vector<float> f32_;
  std::vector<std::int64_t> i64_;
};

}  // namespace blindfold
