// NumPy .npy files: the tensor exchange format of the CLI (`blindfold run
// --input X.npy --output Y.npy`). Reading validates the header, dtype,
// shape and that the payload has exactly the bytes the shape needs.
#pragma once

#include <string>
#include <string_view>

#include "core/tensor.h"

namespace blindfold {

/// Parses .npy bytes. Accepts little-endian float32 ('<f4'), float64 ('<f8',
/// converted to float32) and int64 ('<i8'), C order. Throws Error(kBadInput)
/// naming what is wrong.
Tensor parse_npy(std::string_view bytes);
Tensor read_npy(const std::string& path);

/// Serialises a tensor as .npy version 1.0 ('<f4' or '<i8').
std::string to_npy(const Tensor& t);
void write_npy(const std::string& path, const Tensor& t);

/// Reads a whole file, refusing files above `max_bytes`. Throws kIo.
std::string read_file_bytes(const std::string& path, std::int64_t max_bytes);
/// Writes a file atomically enough for our purposes (write then rename).
void write_file_bytes(const std::string& path, std::string_view bytes);

}  // namespace blindfold
