// Scalar linear combinations of many residue vectors modulo one prime, with
// lazy reduction: out_r = sum_j w_rj * in_j mod q for an m x k matrix of
// scalars. This is the kernel of CryptoNets-style batched inference
// (Gilad-Bachrach et al., ICML 2016; Boemer et al. 2019, nGraph-HE2): every
// weight is a scalar, so a linear layer over ciphertexts is, per RNS limb and
// per polynomial, a matrix product of integers mod q. Each product is
// accumulated unreduced and the sum reduced once:
//  - scalar: 128-bit accumulators (sums of up to 2^(127 - 2 L) products of L-bit
//    residues), reduced by Barrett at the end;
//  - AVX-512 IFMA52 (2^20 <= q < 2^50): vpmadd52luq / vpmadd52huq add the low
//    and the high 52 bits of each 52 x 52-bit product into two 64-bit lanes
//    (at most 4095 terms before they could overflow), and the pair
//    lo + hi * 2^52 is reduced at the end (Shoup for hi * 2^52, a
//    double-precision quotient estimate for the 64-bit words; Boemer et al.
//    2021, "Intel HEXL", for the IFMA products).
// Register-blocked over 6 outputs x 16 coefficients: each input vector is
// loaded once per 6 outputs, the weights are broadcast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "he/isa.h"
#include "he/modarith.h"

namespace blindfold::he {

/// out[r][c] = sum_{j < k} w[r * k + j] * in[j][c] mod q, for r < m = out.size(),
/// k = in.size(), c < n. Inputs and weights in [0, q); outputs in [0, q). With `accumulate`, the
/// sum is added (mod q) to out's current values (in [0, q)) instead of replacing them. Rows of `in`
/// and `out` are n words each and must not overlap one another. k = 0 writes zeros (or leaves out
/// unchanged with `accumulate`). Throws Error(kBadInput) unless w.size() == m * k.
void lincomb(std::span<const std::uint64_t* const> in, std::span<const std::uint64_t> w,
             const Modulus& q, std::span<std::uint64_t* const> out, std::size_t n,
             bool accumulate = false);
/// Pinned variant: kScalar, kAvx512Ifma (throws Error(kUnsupported) if the CPU
/// lacks it, kBadInput if q is outside [2^20, 2^50)); kAvx512 has no variant
/// of its own and runs the scalar code (the 64-bit high products AVX-512F
/// lacks would cost more than the scalar mulx).
void lincomb(std::span<const std::uint64_t* const> in, std::span<const std::uint64_t> w,
             const Modulus& q, std::span<std::uint64_t* const> out, std::size_t n, bool accumulate,
             Isa isa);

/// The variant lincomb() picks for q on this CPU.
Isa lincomb_isa(const Modulus& q) noexcept;

}  // namespace blindfold::he
