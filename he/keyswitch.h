// Hybrid key switching (Han and Ki 2020, "Better bootstrapping for
// approximate homomorphic encryption", CT-RSA 2020, section 3; the RNS form
// of Cheon, Han, Kim, Kim and Song 2018), in three steps over NTT-form
// polynomials held in the "extended" basis Q_l * P (rows: chain primes
// q_0 .. q_l, then the special primes p_0 .. p_{k-1}):
//   1. decompose (ModUp): split d mod Q_l into digits [d]_{D_j} of alpha
//      chain primes each and extend every digit to all of Q_l * P by fast
//      base conversion (Bajard et al. 2016); a one-prime digit is lifted
//      centred, from (-q/2, q/2], which halves its noise;
//   2. inner product: sum_j ext_j * (b_j, a_j) with the key's digits,
//      optionally after a Galois permutation of ext (hoisted rotations apply
//      step 1 once and steps 2-3 per rotation);
//   3. mod_down (ModDown): divide by P with rounding, back to Q_l.
// The result (c0', c1') satisfies c0' + c1' s = d s' + small error. Internal
// to he/ (evaluator and encryptor); the layouts are in the comments below.
// Each step runs its independent rows (RNS limbs) on `pool` when one is
// given (nullptr: the calling thread only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "he/context.h"
#include "he/keys.h"
#include "he/memory.h"

namespace blindfold::he {

/// Key-basis index of compact row r of the extended basis at `level`.
inline std::size_t extended_key_index(const CkksContext& ctx, int level, std::size_t r) {
  const auto l1 = static_cast<std::size_t>(level + 1);
  return r < l1 ? r : ctx.chain_size() + (r - l1);
}

/// ModUp of every digit of d (l + 1 rows, NTT form). Output: digits_at(l)
/// blocks of (l + 1 + k) rows, NTT form: [(j * rows + r) * n + c].
PolyVector decompose(const CkksContext& ctx, int level, std::span<const std::uint64_t> d,
                     ThreadPool* pool = nullptr);

/// acc0/acc1 (l + 1 + k rows each) = sum_j ext_j * (b_j, a_j), where ext_j is
/// digit j of `decomposed`, permuted by `perm` when it is non-empty
/// (ext_j[r][c] -> ext_j[r][perm[c]]: the Galois automorphism in NTT form).
void inner_product(const CkksContext& ctx, int level, std::span<const std::uint64_t> decomposed,
                   const KeySwitchKey& key, std::span<const std::uint32_t> perm,
                   std::span<std::uint64_t> acc0, std::span<std::uint64_t> acc1,
                   ThreadPool* pool = nullptr);

/// out (l + 1 rows, NTT form) = round(in / P) for `in` in the extended basis
/// (l + 1 + k rows, NTT form). `out` may be the first l + 1 rows of `in`.
/// `in`'s special rows are overwritten (used as scratch).
void mod_down(const CkksContext& ctx, int level, std::span<std::uint64_t> in,
              std::span<std::uint64_t> out, ThreadPool* pool = nullptr);
/// Several polynomials at once (one parallel job for all their rows).
void mod_down(const CkksContext& ctx, int level, std::span<const std::span<std::uint64_t>> ins,
              std::span<const std::span<std::uint64_t>> outs, ThreadPool* pool = nullptr);

/// Steps 1-3 for one polynomial d (l + 1 rows, NTT form): out0/out1 get
/// l + 1 rows each.
void switch_key(const CkksContext& ctx, int level, std::span<const std::uint64_t> d,
                const KeySwitchKey& key, std::span<std::uint64_t> out0,
                std::span<std::uint64_t> out1, ThreadPool* pool = nullptr);

/// Runs fn(0 .. count-1) on `pool` (inline without one).
void for_each_task(ThreadPool* pool, std::size_t count, const std::function<void(std::size_t)>& fn);

}  // namespace blindfold::he
