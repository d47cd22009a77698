// Internal to he/: the AVX-512 entry points and the vector helpers they share.
// The entry points are plain functions (callable from code built for
// x86-64-v3) that call implementations compiled with a `target` attribute;
// callers must check isa_supported() first. Nothing outside he/ includes this.
#pragma once

#include <cstddef>
#include <cstdint>

#include "he/modarith.h"

namespace blindfold::he {
class NttTables;
}

namespace blindfold::he::detail {

/// out[i] = a[i] * b[i] mod q, inputs in [0, q), output in [0, q).
void mul_mod_avx512(const std::uint64_t* a, const std::uint64_t* b, const Modulus& q,
                    std::uint64_t* out, std::size_t n);

/// out[i] = a[i] * w mod q for any 64-bit a[i], w in [0, q), output in [0, q).
void mul_scalar_mod_avx512(const std::uint64_t* a, std::uint64_t w, std::uint64_t w_shoup,
                           const Modulus& q, std::uint64_t* out, std::size_t n);

/// NTTs for n >= 16 (ntt.h states the ranges). `full`: reduce the output to
/// [0, q); otherwise forward leaves [0, 4q) and inverse [0, 2q).
void ntt_forward_avx512(std::uint64_t* a, const NttTables& t, bool full);
void ntt_inverse_avx512(std::uint64_t* a, const NttTables& t, bool full);
/// The IFMA52 variants additionally need q < 2^50.
void ntt_forward_ifma(std::uint64_t* a, const NttTables& t, bool full);
void ntt_inverse_ifma(std::uint64_t* a, const NttTables& t, bool full);

}  // namespace blindfold::he::detail
