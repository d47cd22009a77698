// Homomorphic operations on CKKS ciphertexts (Cheon, Kim, Kim and Song 2017,
// "Homomorphic encryption for arithmetic of approximate numbers"; RNS form of
// Cheon, Han, Kim, Kim and Song 2018, "A full RNS variant of approximate
// homomorphic encryption"): addition, subtraction, negation, products with
// plaintexts, scalars and ciphertexts, relinearization and rotations by hybrid
// key switching (Han and Ki 2020, "Better bootstrapping for approximate
// homomorphic encryption"; he/keyswitch.h), hoisted rotations (one ModUp for
// many rotations), conjugation, rescaling (division by the last prime with
// rounding) and level drops.
//
// Every operation works on NTT-form data, so all but rescale and key
// switching are element-wise. Operands must come from this evaluator's
// context, sit at the same level, and (for additions) carry the same scale
// up to a relative 2^-40; otherwise Error(kBadInput) is thrown, never a
// silently wrong result. Scales multiply under products and divide by q_l
// under rescaling: the caller keeps them aligned (set_scale on a ciphertext
// declares a scale when it knows better). Stateless and const: one evaluator
// may serve any number of threads. Given a ThreadPool, multiply, rescale and
// key switching (relinearize, rotations) split their RNS limbs over it.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "he/ciphertext.h"
#include "he/context.h"
#include "he/keys.h"

namespace blindfold::he {

class Evaluator {
 public:
  /// `pool`: run independent RNS limbs of the heavier operations on it
  /// (nullptr: the calling thread only). Not owned; must outlive the
  /// evaluator.
  explicit Evaluator(std::shared_ptr<const CkksContext> context, ThreadPool* pool = nullptr);

  const CkksContext& context() const noexcept { return *context_; }

  // ---- additive ----------------------------------------------------------
  /// a + b, a - b: same level and scale; sizes may differ (the result has
  /// the larger size).
  Ciphertext add(const Ciphertext& a, const Ciphertext& b) const;
  Ciphertext sub(const Ciphertext& a, const Ciphertext& b) const;
  void add_inplace(Ciphertext& a, const Ciphertext& b) const;
  void sub_inplace(Ciphertext& a, const Ciphertext& b) const;
  Ciphertext negate(const Ciphertext& a) const;
  /// a + p, a - p: same level and scale.
  Ciphertext add_plain(const Ciphertext& a, const Plaintext& p) const;
  Ciphertext sub_plain(const Ciphertext& a, const Plaintext& p) const;
  /// Adds `value` to every slot (round(value * a.scale()) to the constant
  /// coefficient).
  Ciphertext add_scalar(const Ciphertext& a, double value) const;

  // ---- multiplicative ----------------------------------------------------
  /// a * p (element-wise in NTT form): same level; the scales multiply.
  Ciphertext multiply_plain(const Ciphertext& a, const Plaintext& p) const;
  void multiply_plain_inplace(Ciphertext& a, const Plaintext& p) const;
  /// a * round(value * scale): every slot times `value`; the result's scale
  /// is a.scale() * scale. The one-argument form uses q_level as the scale,
  /// so that a following rescale restores a.scale() exactly.
  Ciphertext multiply_scalar(const Ciphertext& a, double value, double scale) const;
  Ciphertext multiply_scalar(const Ciphertext& a, double value) const;
  /// a * b for two size-2 ciphertexts at the same level: the size-3 tensor
  /// (a0 b0, a0 b1 + a1 b0, a1 b1), scale a.scale() * b.scale(). Throws
  /// Error(kBadInput) when the product's scale would not fit Q_level.
  Ciphertext multiply(const Ciphertext& a, const Ciphertext& b) const;
  Ciphertext square(const Ciphertext& a) const;
  /// Size 3 -> size 2 by key switching s^2 -> s. A size-2 input is returned
  /// unchanged.
  Ciphertext relinearize(const Ciphertext& a, const RelinKeys& keys) const;
  void relinearize_inplace(Ciphertext& a, const RelinKeys& keys) const;

  // ---- modulus -----------------------------------------------------------
  /// Divides by the last prime q_l with rounding and drops it: level l - 1,
  /// scale / q_l. Throws Error(kBadInput) at level 0.
  Ciphertext rescale(const Ciphertext& a) const;
  void rescale_inplace(Ciphertext& a) const;
  /// Drops primes down to `level` without dividing (value and scale kept).
  Ciphertext drop_to_level(const Ciphertext& a, int level) const;
  Plaintext drop_to_level(const Plaintext& p, int level) const;

  // ---- rotations ---------------------------------------------------------
  /// Slots rotated left by `steps` (slot j receives slot j + steps; negative
  /// rotates right), with the Galois key for 5^steps. Size-2 input.
  Ciphertext rotate(const Ciphertext& a, int steps, const GaloisKeys& keys) const;
  /// Several rotations of one ciphertext sharing one decomposition of c1
  /// (hoisting: ModUp once, then per rotation a permutation, an inner
  /// product and ModDown). Results equal rotate()'s in distribution.
  std::vector<Ciphertext> rotate_hoisted(const Ciphertext& a, std::span<const int> steps,
                                         const GaloisKeys& keys) const;
  /// Complex conjugation of every slot.
  Ciphertext conjugate(const Ciphertext& a, const GaloisKeys& keys) const;
  /// The automorphism X -> X^g with its key (rotate and conjugate use it).
  Ciphertext apply_galois(const Ciphertext& a, std::uint64_t galois_element,
                          const GaloisKeys& keys) const;

 private:
  void check(const Ciphertext& a) const;
  void check(const Plaintext& p) const;
  void check_same(const Ciphertext& a, const Ciphertext& b) const;
  void check_same(const Ciphertext& a, const Plaintext& p) const;
  void add_sub_inplace(Ciphertext& a, const Ciphertext& b, bool subtract) const;
  std::vector<Ciphertext> galois_hoisted(const Ciphertext& a,
                                         std::span<const std::uint64_t> elements,
                                         const GaloisKeys& keys) const;

  std::shared_ptr<const CkksContext> context_;
  ThreadPool* pool_;
};

}  // namespace blindfold::he
