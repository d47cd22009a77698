#include "he/rns.h"

#include <bit>
#include <numeric>
#include <string>

#include "core/error.h"

namespace blindfold::he {
namespace {

// Minimal multiword helpers (little-endian 64-bit words) for the CRT
// constants and compose(): sizes are at most kMaxSize + 1 words and none of
// this is on a hot path.

// words *= b; returns the carry out of the top word.
std::uint64_t mul_word_in_place(std::span<std::uint64_t> words, std::uint64_t b) {
  std::uint64_t carry = 0;
  for (std::uint64_t& w : words) {
    const u128 p = u128{w} * b + carry;
    w = static_cast<std::uint64_t>(p);
    carry = static_cast<std::uint64_t>(p >> 64);
  }
  return carry;
}

// acc += a * b, acc.size() > a.size(); the carry runs to the top of acc.
void mul_add(std::span<std::uint64_t> acc, std::span<const std::uint64_t> a, std::uint64_t b) {
  std::uint64_t carry = 0;
  std::size_t i = 0;
  for (; i < a.size(); ++i) {
    const u128 p = u128{a[i]} * b + acc[i] + carry;
    acc[i] = static_cast<std::uint64_t>(p);
    carry = static_cast<std::uint64_t>(p >> 64);
  }
  for (; i < acc.size() && carry != 0; ++i) {
    const u128 s = u128{acc[i]} + carry;
    acc[i] = static_cast<std::uint64_t>(s);
    carry = static_cast<std::uint64_t>(s >> 64);
  }
}

// a >= b, where b may have fewer words (missing words are zero).
bool greater_equal(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b) {
  for (std::size_t i = a.size(); i-- > 0;) {
    const std::uint64_t bi = i < b.size() ? b[i] : 0;
    if (a[i] != bi) return a[i] > bi;
  }
  return true;
}

// a -= b (a >= b), b may have fewer words.
void sub_in_place(std::span<std::uint64_t> a, std::span<const std::uint64_t> b) {
  std::uint64_t borrow = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::uint64_t bi = i < b.size() ? b[i] : 0;
    const std::uint64_t d = a[i] - bi - borrow;
    borrow = (a[i] < bi || (a[i] == bi && borrow)) ? 1 : 0;
    a[i] = d;
  }
}

}  // namespace

RnsBase::RnsBase(std::vector<Modulus> moduli) : moduli_(std::move(moduli)) {
  const std::size_t k = moduli_.size();
  if (k == 0 || k > kMaxSize) {
    throw_error(ErrorCategory::kBadInput,
                "an RNS base needs 1 to 64 moduli, not " + std::to_string(k));
  }
  for (std::size_t i = 0; i < k; ++i) {
    for (std::size_t j = i + 1; j < k; ++j) {
      if (std::gcd(moduli_[i].value(), moduli_[j].value()) != 1) {
        throw_error(ErrorCategory::kBadInput, "RNS moduli " + std::to_string(moduli_[i].value()) +
                                                  " and " + std::to_string(moduli_[j].value()) +
                                                  " are not coprime");
      }
    }
  }
  // Q and each Q/q_i fit in k words: every modulus is below 2^61.
  product_.assign(k, 0);
  product_[0] = 1;
  for (const Modulus& q : moduli_) mul_word_in_place(product_, q.value());
  punctured_.assign(k * k, 0);
  inv_punctured_.resize(k);
  inv_punctured_shoup_.resize(k);
  for (std::size_t i = 0; i < k; ++i) {
    std::span<std::uint64_t> p(punctured_.data() + i * k, k);
    p[0] = 1;
    std::uint64_t mod_qi = 1;  // (Q/q_i) mod q_i
    for (std::size_t j = 0; j < k; ++j) {
      if (j == i) continue;
      mul_word_in_place(p, moduli_[j].value());
      mod_qi = mul_mod(mod_qi, barrett_reduce_64(moduli_[j].value(), moduli_[i]), moduli_[i]);
    }
    inv_punctured_[i] = inv_mod(mod_qi, moduli_[i]);  // coprime, so invertible
    inv_punctured_shoup_[i] = shoup(inv_punctured_[i], moduli_[i]);
  }
}

int RnsBase::product_bits() const noexcept {
  for (std::size_t i = product_.size(); i-- > 0;) {
    if (product_[i] != 0) return static_cast<int>(64 * i) + std::bit_width(product_[i]);
  }
  return 0;
}

void RnsBase::decompose(std::span<const std::uint64_t> value,
                        std::span<std::uint64_t> residues) const {
  if (residues.size() != size()) {
    throw_error(ErrorCategory::kBadInput, "decompose: " + std::to_string(residues.size()) +
                                              " residues for a base of " + std::to_string(size()));
  }
  for (std::size_t i = 0; i < size(); ++i) {
    // Horner from the top word: r = (r * 2^64 + w) mod q_i.
    std::uint64_t r = 0;
    for (std::size_t w = value.size(); w-- > 0;) {
      r = barrett_reduce_128((u128{r} << 64) | value[w], moduli_[i]);
    }
    residues[i] = r;
  }
}

void RnsBase::compose(std::span<const std::uint64_t> residues,
                      std::span<std::uint64_t> value) const {
  const std::size_t k = size();
  if (residues.size() != k || value.size() != k) {
    throw_error(ErrorCategory::kBadInput, "compose: sizes " + std::to_string(residues.size()) +
                                              " and " + std::to_string(value.size()) +
                                              " for a base of " + std::to_string(k));
  }
  // The sum is below k * Q < 2^64 * Q: k + 1 words hold it, and at most k - 1
  // subtractions of Q reduce it.
  std::vector<std::uint64_t> acc(k + 1, 0);
  for (std::size_t i = 0; i < k; ++i) {
    const std::uint64_t y =
        mul_mod_shoup(residues[i], inv_punctured_[i], inv_punctured_shoup_[i], moduli_[i]);
    mul_add(acc, punctured_product(i), y);
  }
  while (greater_equal(acc, product_)) sub_in_place(acc, product_);
  std::copy(acc.begin(), acc.begin() + static_cast<std::ptrdiff_t>(k), value.begin());
}

BaseConverter::BaseConverter(RnsBase from, RnsBase to)
    : from_(std::move(from)), to_(std::move(to)) {
  const std::size_t k = from_.size();
  matrix_.resize(to_.size() * k);
  for (std::size_t j = 0; j < to_.size(); ++j) {
    for (std::size_t i = 0; i < k; ++i) {
      std::uint64_t r = 0;
      const std::span<const std::uint64_t> p = from_.punctured_product(i);
      for (std::size_t w = p.size(); w-- > 0;) {
        r = barrett_reduce_128((u128{r} << 64) | p[w], to_[j]);
      }
      matrix_[j * k + i] = r;
    }
  }
}

void BaseConverter::fast_convert(std::span<const std::uint64_t> in, std::span<std::uint64_t> out,
                                 std::size_t n) const {
  const std::size_t k = from_.size();
  const std::size_t l = to_.size();
  if (in.size() != k * n || out.size() != l * n) {
    throw_error(ErrorCategory::kBadInput,
                "fast_convert: " + std::to_string(in.size()) + " inputs and " +
                    std::to_string(out.size()) + " outputs for " + std::to_string(k) + " -> " +
                    std::to_string(l) + " moduli of " + std::to_string(n) + " coefficients");
  }
  // y_i = [x_i * (Q/q_i)^-1]_{q_i}, one Shoup product per coefficient.
  std::vector<std::uint64_t> y(k * n);
  for (std::size_t i = 0; i < k; ++i) {
    mul_scalar_mod(in.subspan(i * n, n), from_.inv_punctured(i), from_[i],
                   std::span<std::uint64_t>(y.data() + i * n, n));
  }
  // x'_j = sum_i y_i * [(Q/q_i) mod p_j], accumulated exactly in 128 bits
  // (k <= 64 products below 2^122 each) and reduced once.
  for (std::size_t j = 0; j < l; ++j) {
    const std::uint64_t* row = matrix_.data() + j * k;
    std::uint64_t* dst = out.data() + j * n;
    for (std::size_t c = 0; c < n; ++c) {
      u128 acc = 0;
      for (std::size_t i = 0; i < k; ++i) acc += u128{y[i * n + c]} * row[i];
      dst[c] = barrett_reduce_128(acc, to_[j]);
    }
  }
}

}  // namespace blindfold::he
