#include "he/keyswitch.h"

#include <algorithm>
#include <functional>

#include "core/error.h"
#include "he/ntt.h"

namespace blindfold::he {

void for_each_task(ThreadPool* pool, std::size_t count,
                   const std::function<void(std::size_t)>& fn) {
  if (pool == nullptr || pool->size() <= 1 || count <= 1) {
    for (std::size_t i = 0; i < count; ++i) fn(i);
    return;
  }
  pool->parallel_for(static_cast<std::int64_t>(count), [&](std::int64_t b, std::int64_t e) {
    for (auto i = static_cast<std::size_t>(b); i < static_cast<std::size_t>(e); ++i) fn(i);
  });
}

PolyVector decompose(const CkksContext& ctx, int level, std::span<const std::uint64_t> d,
                     ThreadPool* pool) {
  const std::size_t n = ctx.n();
  const auto l1 = static_cast<std::size_t>(level + 1);
  const std::size_t k = ctx.special_size();
  const std::size_t rows = l1 + k;
  const std::size_t digits = ctx.digits_at(level);
  const std::size_t alpha = ctx.alpha();
  if (d.size() != l1 * n) throw_error(ErrorCategory::kInternal, "decompose: size");

  // Coefficient form of d, for the base conversions.
  PolyVector coeff(l1 * n);
  for_each_task(pool, l1, [&](std::size_t i) {
    std::copy(d.begin() + static_cast<std::ptrdiff_t>(i * n),
              d.begin() + static_cast<std::ptrdiff_t>((i + 1) * n), coeff.begin() + i * n);
    ntt_inverse(std::span<std::uint64_t>(coeff.data() + i * n, n), ctx.ntt(i));
  });
  PolyVector out(digits * rows * n);
  // Per digit, the conversion's per-source values (y_i, e), then tasks: each
  // digit's target rows split into `parts` slices, so that two threads stay
  // busy even with few digits.
  PolyVector prepared(digits * (alpha + 1) * n);
  auto digit_rows = [&](std::size_t j) {
    std::vector<const std::uint64_t*> in_rows;
    const std::size_t lo = j * alpha, hi = std::min(lo + alpha, l1);
    for (std::size_t i = lo; i < hi; ++i) in_rows.push_back(coeff.data() + i * n);
    return in_rows;
  };
  auto digit_scratch = [&](std::size_t j) {
    return std::span<std::uint64_t>(prepared.data() + j * (alpha + 1) * n, (alpha + 1) * n);
  };
  if (alpha > 1) {
    for_each_task(pool, digits, [&](std::size_t j) {
      const std::size_t lo = j * alpha, hi = std::min(lo + alpha, l1);
      fast_convert_prepare(ctx.mod_up_table(j, hi - lo), ctx.key_moduli(), digit_rows(j), n,
                           digit_scratch(j), true);
    });
  }
  const std::size_t parts = pool ? std::max<std::size_t>(1, pool->size()) : 1;
  for_each_task(pool, digits * parts, [&](std::size_t task) {
    const std::size_t j = task / parts, part = task % parts;
    const std::size_t lo = j * alpha;
    const std::size_t hi = std::min(lo + alpha, l1);
    std::uint64_t* block = out.data() + j * rows * n;
    if (part == 0) {
      // The digit's own primes: d itself, already in NTT form.
      std::copy(d.begin() + static_cast<std::ptrdiff_t>(lo * n),
                d.begin() + static_cast<std::ptrdiff_t>(hi * n), block + lo * n);
    }
    std::vector<std::size_t> to;
    std::vector<std::uint64_t*> out_rows;
    std::size_t t = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      if (r >= lo && r < hi) continue;
      if (t++ % parts != part) continue;
      to.push_back(extended_key_index(ctx, level, r));
      out_rows.push_back(block + r * n);
    }
    if (to.empty()) return;
    fast_convert_finish(ctx.mod_up_table(j, hi - lo), ctx.key_moduli(), digit_rows(j), to, out_rows,
                        n, digit_scratch(j), true);
    for (std::size_t r = 0; r < to.size(); ++r) {
      ntt_forward(std::span<std::uint64_t>(out_rows[r], n), ctx.ntt(to[r]));
    }
  });
  return out;
}

void inner_product(const CkksContext& ctx, int level, std::span<const std::uint64_t> decomposed,
                   const KeySwitchKey& key, std::span<const std::uint32_t> perm,
                   std::span<std::uint64_t> acc0, std::span<std::uint64_t> acc1, ThreadPool* pool) {
  const std::size_t n = ctx.n();
  const auto l1 = static_cast<std::size_t>(level + 1);
  const std::size_t rows = l1 + ctx.special_size();
  const std::size_t digits = ctx.digits_at(level);
  if (decomposed.size() != digits * rows * n || acc0.size() != rows * n ||
      acc1.size() != rows * n) {
    throw_error(ErrorCategory::kInternal, "inner_product: sizes");
  }
  // Each product is below 2^120 and there are at most 64 digits, so the sums
  // are exact in 128 bits and reduced once per coefficient.
  for_each_task(pool, rows, [&](std::size_t r) {
    const std::size_t ki = extended_key_index(ctx, level, r);
    const Modulus& q = ctx.modulus(ki);
    std::uint64_t* o0 = acc0.data() + r * n;
    std::uint64_t* o1 = acc1.data() + r * n;
    if (digits == 1 && perm.empty()) {
      const std::span<const std::uint64_t> x = decomposed.subspan(r * n, n);
      mul_mod(x, key.b_row(0, ki), q, {o0, n});
      mul_mod(x, key.a_row(0, ki), q, {o1, n});
      return;
    }
    constexpr std::size_t kBlock = 256;
    u128 s0[kBlock], s1[kBlock];
    for (std::size_t c0 = 0; c0 < n; c0 += kBlock) {
      const std::size_t len = std::min(kBlock, n - c0);
      std::fill(s0, s0 + len, 0);
      std::fill(s1, s1 + len, 0);
      for (std::size_t j = 0; j < digits; ++j) {
        const std::uint64_t* x = decomposed.data() + (j * rows + r) * n;
        const std::uint64_t* b = key.b_row(j, ki).data() + c0;
        const std::uint64_t* a = key.a_row(j, ki).data() + c0;
        if (perm.empty()) {
          x += c0;
          for (std::size_t c = 0; c < len; ++c) {
            s0[c] += u128{x[c]} * b[c];
            s1[c] += u128{x[c]} * a[c];
          }
        } else {
          const std::uint32_t* p = perm.data() + c0;
          for (std::size_t c = 0; c < len; ++c) {
            const std::uint64_t v = x[p[c]];
            s0[c] += u128{v} * b[c];
            s1[c] += u128{v} * a[c];
          }
        }
      }
      for (std::size_t c = 0; c < len; ++c) {
        o0[c0 + c] = barrett_reduce_128(s0[c], q);
        o1[c0 + c] = barrett_reduce_128(s1[c], q);
      }
    }
  });
}

void mod_down(const CkksContext& ctx, int level, std::span<const std::span<std::uint64_t>> ins,
              std::span<const std::span<std::uint64_t>> outs, ThreadPool* pool) {
  const std::size_t n = ctx.n();
  const auto l1 = static_cast<std::size_t>(level + 1);
  const std::size_t k = ctx.special_size();
  const std::size_t polys = ins.size();
  if (outs.size() != polys) throw_error(ErrorCategory::kInternal, "mod_down: counts");
  for (std::size_t p = 0; p < polys; ++p) {
    if (ins[p].size() != (l1 + k) * n || outs[p].size() != l1 * n) {
      throw_error(ErrorCategory::kInternal, "mod_down: sizes");
    }
  }
  // The centred [c]_P in (-P/2, P/2], lifted exactly to each q_i: then
  // (c - [c]_P) / P = round(c / P).
  for_each_task(pool, polys * k, [&](std::size_t task) {
    const std::size_t p = task / k, j = task % k;
    ntt_inverse(ins[p].subspan((l1 + j) * n, n), ctx.ntt(ctx.special_index(j)));
  });
  auto p_rows = [&](std::size_t p) {
    std::vector<const std::uint64_t*> rows(k);
    for (std::size_t j = 0; j < k; ++j) rows[j] = ins[p].data() + (l1 + j) * n;
    return rows;
  };
  PolyVector prepared(polys * (k + 1) * n);
  auto scratch = [&](std::size_t p) {
    return std::span<std::uint64_t>(prepared.data() + p * (k + 1) * n, (k + 1) * n);
  };
  if (k > 1) {
    for_each_task(pool, polys, [&](std::size_t p) {
      fast_convert_prepare(ctx.mod_down_table(), ctx.key_moduli(), p_rows(p), n, scratch(p), true);
    });
  }
  for_each_task(pool, polys * l1, [&](std::size_t task) {
    const std::size_t p = task / l1, i = task % l1;
    PolyVector conv(n);
    std::uint64_t* conv_row[1] = {conv.data()};
    const std::size_t to[1] = {i};
    fast_convert_finish(ctx.mod_down_table(), ctx.key_moduli(), p_rows(p), to, conv_row, n,
                        scratch(p), true);
    const Modulus& q = ctx.modulus(i);
    ntt_forward(conv, ctx.ntt(i));
    // (c - t) * P^-1.
    std::span<std::uint64_t> o = outs[p].subspan(i * n, n);
    sub_mod(ins[p].subspan(i * n, n), conv, q, o);
    mul_scalar_mod(o, ctx.inv_p(i), q, o);
  });
}

void mod_down(const CkksContext& ctx, int level, std::span<std::uint64_t> in,
              std::span<std::uint64_t> out, ThreadPool* pool) {
  const std::span<std::uint64_t> ins[1] = {in};
  const std::span<std::uint64_t> outs[1] = {out};
  mod_down(ctx, level, ins, outs, pool);
}

void switch_key(const CkksContext& ctx, int level, std::span<const std::uint64_t> d,
                const KeySwitchKey& key, std::span<std::uint64_t> out0,
                std::span<std::uint64_t> out1, ThreadPool* pool) {
  const std::size_t n = ctx.n();
  const std::size_t rows = static_cast<std::size_t>(level + 1) + ctx.special_size();
  const PolyVector dec = decompose(ctx, level, d, pool);
  PolyVector acc0(rows * n), acc1(rows * n);
  inner_product(ctx, level, dec, key, {}, acc0, acc1, pool);
  const std::span<std::uint64_t> ins[2] = {acc0, acc1};
  const std::span<std::uint64_t> outs[2] = {out0, out1};
  mod_down(ctx, level, ins, outs, pool);
}

}  // namespace blindfold::he
