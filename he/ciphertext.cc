#include "he/ciphertext.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace blindfold::he {
namespace {

void check_drop(int from, int to) {
  if (to < 0 || to > from) {
    throw_error(ErrorCategory::kBadInput,
                "cannot drop from level " + std::to_string(from) + " to " + std::to_string(to));
  }
}

}  // namespace

void Plaintext::drop_to_level(int level) {
  check_drop(level_, level);
  level_ = level;
  data_.resize(primes() * n_);
}

void Ciphertext::drop_to_level(int level) {
  check_drop(level_, level);
  const std::size_t old_primes = primes();
  const std::size_t new_primes = static_cast<std::size_t>(level + 1);
  // Polynomial k moves from k * old_primes rows to k * new_primes rows; the
  // destination never overtakes the source, so copying forward is safe. The
  // seed stays valid: each row of c1 is expanded independently of the level.
  for (std::size_t k = 1; k < size_; ++k) {
    std::copy(data_.begin() + static_cast<std::ptrdiff_t>(k * old_primes * n_),
              data_.begin() + static_cast<std::ptrdiff_t>((k * old_primes + new_primes) * n_),
              data_.begin() + static_cast<std::ptrdiff_t>(k * new_primes * n_));
  }
  level_ = level;
  data_.resize(size_ * new_primes * n_);
}

void Ciphertext::resize(std::size_t size) {
  seed_.reset();
  size_ = size;
  data_.resize(size * primes() * n_, 0);
}

}  // namespace blindfold::he
