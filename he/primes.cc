#include "he/primes.h"

#include <bit>
#include <map>
#include <string>

#include "core/error.h"

namespace blindfold::he {
namespace {

// Products mod an arbitrary 64-bit n (Miller-Rabin must cover n >= 2^61,
// beyond Modulus); speed is irrelevant here.
std::uint64_t mul_mod_any(std::uint64_t a, std::uint64_t b, std::uint64_t n) {
  return static_cast<std::uint64_t>(u128{a} * b % n);
}

std::uint64_t pow_mod_any(std::uint64_t base, std::uint64_t e, std::uint64_t n) {
  std::uint64_t result = 1 % n;
  base %= n;
  while (e != 0) {
    if (e & 1) result = mul_mod_any(result, base, n);
    base = mul_mod_any(base, base, n);
    e >>= 1;
  }
  return result;
}

bool is_power_of_two(std::uint64_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}

}  // namespace

bool is_prime(std::uint64_t n) noexcept {
  constexpr std::uint64_t kBases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  if (n < 2) return false;
  for (std::uint64_t p : kBases) {
    if (n % p == 0) return n == p;
  }
  // n - 1 = d * 2^s with d odd.
  const int s = std::countr_zero(n - 1);
  const std::uint64_t d = (n - 1) >> s;
  for (std::uint64_t a : kBases) {
    std::uint64_t x = pow_mod_any(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool witness = true;
    for (int r = 1; r < s; ++r) {
      x = mul_mod_any(x, x, n);
      if (x == n - 1) {
        witness = false;
        break;
      }
    }
    if (witness) return false;
  }
  return true;
}

std::vector<std::uint64_t> ntt_primes(int bits, std::size_t count, std::size_t n) {
  if (bits < 2 || bits > kMaxPrimeBits) {
    throw_error(ErrorCategory::kBadInput,
                "prime bit size " + std::to_string(bits) + " outside [2, 60]");
  }
  if (!is_power_of_two(n) || n >= (std::uint64_t{1} << kMaxPrimeBits)) {
    throw_error(ErrorCategory::kBadInput,
                "ring degree " + std::to_string(n) + " is not a power of two below 2^60");
  }
  const std::uint64_t step = 2 * static_cast<std::uint64_t>(n);
  const std::uint64_t lower = std::uint64_t{1} << (bits - 1);
  const std::uint64_t upper = std::uint64_t{1} << bits;  // exclusive
  std::vector<std::uint64_t> primes;
  primes.reserve(count);
  if (count == 0) return primes;
  // Largest v = 1 (mod step) with v < upper, then downward.
  for (std::uint64_t v = (upper - 2) / step * step + 1; v > lower; v -= step) {
    if (is_prime(v)) {
      primes.push_back(v);
      if (primes.size() == count) return primes;
    }
    if (v < step) break;  // the next candidate would wrap below zero
  }
  throw_error(ErrorCategory::kBadInput, "only " + std::to_string(primes.size()) + " primes of " +
                                            std::to_string(bits) + " bits are 1 mod " +
                                            std::to_string(step) + "; " + std::to_string(count) +
                                            " requested");
}

std::vector<Modulus> ntt_prime_chain(std::size_t n, std::span<const int> bit_sizes) {
  std::map<int, std::size_t> per_size;
  for (int b : bit_sizes) ++per_size[b];
  std::map<int, std::vector<std::uint64_t>> primes;
  for (const auto& [bits, count] : per_size) primes[bits] = ntt_primes(bits, count, n);
  std::map<int, std::size_t> used;
  std::vector<Modulus> chain;
  chain.reserve(bit_sizes.size());
  for (int b : bit_sizes) chain.emplace_back(primes[b][used[b]++]);
  return chain;
}

bool is_primitive_root(std::uint64_t root, std::uint64_t degree, const Modulus& q) noexcept {
  if (degree < 2 || !is_power_of_two(degree) || root >= q.value()) return false;
  // For a power-of-two degree, order exactly `degree` <=> root^(degree/2) = -1.
  return pow_mod(root, degree / 2, q) == q.value() - 1;
}

std::uint64_t minimal_primitive_root(std::uint64_t degree, const Modulus& q) {
  const std::uint64_t p = q.value();
  if (degree < 2 || !is_power_of_two(degree) || (p - 1) % degree != 0) {
    throw_error(ErrorCategory::kBadInput, "no primitive " + std::to_string(degree) +
                                              "-th root of unity mod " + std::to_string(p) +
                                              ": the degree must be a power of two dividing q-1");
  }
  if (!is_prime(p)) {
    throw_error(ErrorCategory::kBadInput, std::to_string(p) + " is not prime");
  }
  // x^((q-1)/degree) has order dividing degree; it is primitive for exactly
  // the x that are not (degree's 2-part)-th powers, half of all x, so the
  // search ends after a couple of tries.
  std::uint64_t root = 0;
  for (std::uint64_t x = 2; x < p; ++x) {
    const std::uint64_t c = pow_mod(x, (p - 1) / degree, q);
    if (is_primitive_root(c, degree, q)) {
      root = c;
      break;
    }
  }
  // The primitive roots are root^k for odd k in [1, degree); take the least,
  // so the answer depends only on (degree, q), not on the search.
  const std::uint64_t square = mul_mod(root, root, q);
  std::uint64_t best = root;
  std::uint64_t power = root;
  for (std::uint64_t k = 1; k < degree / 2; ++k) {
    power = mul_mod(power, square, q);
    if (power < best) best = power;
  }
  return best;
}

}  // namespace blindfold::he
