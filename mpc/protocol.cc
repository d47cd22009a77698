#include "mpc/protocol.h"

#include <string>

#include "core/error.h"

namespace blindfold::mpc {

const char* party_name(int party) {
  switch (party) {
    case 0: return "server";
    case 1: return "client";
    case 2: return "helper";
    default: return "unknown party";
  }
}

void check_relu_bits(int bits) {
  if (bits < 2 || bits > 64) {
    throw Error(ErrorCategory::kInternal,
                "mpc relu: comparison width " + std::to_string(bits) + " bits (must be 2..64)");
  }
}

namespace {

// Applies fn(in_share, out_share) to each share vector that x has.
template <typename Fn>
Shared map_shares(const Shared& x, std::size_t n, Fn&& fn) {
  Shared out;
  out.n = n;
  if (!x.s0.empty() || x.n == 0) {
    if (x.s0.size() == x.n) {
      out.s0.resize(n);
      fn(x.s0, out.s0);
    }
  }
  if (x.s1.size() == x.n && !x.s1.empty()) {
    out.s1.resize(n);
    fn(x.s1, out.s1);
  }
  return out;
}

void check_same(const Shared& x, const Shared& y, const char* what) {
  if (x.n != y.n || x.s0.size() != y.s0.size() || x.s1.size() != y.s1.size()) {
    throw Error(ErrorCategory::kInternal, std::string("mpc ") + what + ": operands of different sizes (" +
                                              std::to_string(x.n) + " and " + std::to_string(y.n) + ")");
  }
}

}  // namespace

Shared gather(const Shared& x, std::span<const std::uint32_t> idx) {
  return map_shares(x, idx.size(), [&](const std::vector<u64>& in, std::vector<u64>& out) {
    ring_gather(in, idx, out);
  });
}

Shared add(const Shared& x, const Shared& y) {
  check_same(x, y, "add");
  Shared out = x;
  if (!out.s0.empty()) ring_add(out.s0, y.s0, out.s0);
  if (!out.s1.empty()) ring_add(out.s1, y.s1, out.s1);
  return out;
}

Shared sub(const Shared& x, const Shared& y) {
  check_same(x, y, "sub");
  Shared out = x;
  if (!out.s0.empty()) ring_sub(out.s0, y.s0, out.s0);
  if (!out.s1.empty()) ring_sub(out.s1, y.s1, out.s1);
  return out;
}

Shared neg(const Shared& x) {
  Shared out = x;
  if (!out.s0.empty()) ring_neg(out.s0, out.s0);
  if (!out.s1.empty()) ring_neg(out.s1, out.s1);
  return out;
}

Shared mul_public(const Shared& x, u64 c) {
  Shared out = x;
  if (!out.s0.empty()) ring_mul_scalar(out.s0, c, out.s0);
  if (!out.s1.empty()) ring_mul_scalar(out.s1, c, out.s1);
  return out;
}

Shared sum_groups(const Shared& x, std::span<const std::uint32_t> group, std::size_t groups) {
  if (group.size() != x.n) {
    throw Error(ErrorCategory::kInternal, "mpc sum_groups: " + std::to_string(group.size()) +
                                              " group indices for " + std::to_string(x.n) + " values");
  }
  for (std::uint32_t g : group) {
    if (g >= groups) throw Error(ErrorCategory::kInternal, "mpc sum_groups: group index out of range");
  }
  return map_shares(x, groups, [&](const std::vector<u64>& in, std::vector<u64>& out) {
    for (std::size_t i = 0; i < in.size(); ++i) out[group[i]] += in[i];
  });
}

Shared concat(const std::vector<const Shared*>& parts) {
  Shared out;
  bool has0 = false, has1 = false;
  if (!parts.empty()) {
    has0 = !parts[0]->s0.empty() || parts[0]->n == 0;
    has1 = !parts[0]->s1.empty();
  }
  for (const Shared* p : parts) {
    out.n += p->n;
    if (has0 && p->s0.size() == p->n) out.s0.insert(out.s0.end(), p->s0.begin(), p->s0.end());
    if (has1) out.s1.insert(out.s1.end(), p->s1.begin(), p->s1.end());
  }
  if (out.s0.size() != out.n) out.s0.clear();
  if (has1 && out.s1.size() != out.n) {
    throw Error(ErrorCategory::kInternal, "mpc concat: parts with different share layouts");
  }
  return out;
}

}  // namespace blindfold::mpc
