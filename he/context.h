// The CKKS context: everything derived once from CkksParameters and shared,
// read-only, by encoders, keys, encryptors and evaluators. It generates the
// primes deterministically (he/primes.h), builds one NTT table per prime, the
// RNS bases, and the constants of rescaling (Cheon, Han, Kim, Kim and Song
// 2018, "A full RNS variant of approximate homomorphic encryption", SAC 2018)
// and of hybrid key switching (Han and Ki 2020, "Better bootstrapping for
// approximate homomorphic encryption", CT-RSA 2020): P mod q_i, P^-1 mod q_i,
// and the fast base conversion tables of ModUp (each digit to the rest of
// Q_l * P) and ModDown (P to Q_l).
//
// Security is checked here, once: create() refuses parameters whose log2(Q*P)
// exceeds the HE Standard's bound (he/security.h), with the reason;
// create_insecure_for_tests() is the only way around it.
//
// Moduli are indexed in the "key basis": chain primes q_0 .. q_L at indices
// 0 .. L, special primes p_0 .. p_{k-1} at L+1 .. L+k. Immutable after
// construction, so one context may be shared by any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "he/ckks_params.h"
#include "he/modarith.h"
#include "he/ntt.h"
#include "he/rns.h"

namespace blindfold::he {

/// Constants of one fast base conversion (Bajard, Eynard, Hasan and Zucca
/// 2016) from a set S of key-basis moduli to any key-basis modulus t outside
/// S: x'_t = sum_i [x_i * (S/s_i)^-1]_{s_i} * ((S/s_i) mod t) mod t.
struct ConversionTable {
  std::vector<std::size_t> from;  // key-basis indices of S, ascending
  std::vector<std::uint64_t> inv_punctured, inv_punctured_shoup;  // (S/s_i)^-1 mod s_i
  std::vector<std::uint64_t> matrix;       // [t * |S| + i] = (S/s_i) mod t, t any key index
  std::vector<std::uint64_t> neg_product;  // [t] = -S mod t (the centring correction)
  std::vector<double> inv_from;            // 1 / s_i
};

class CkksContext {
 public:
  /// Builds a context. Throws Error(kBadInput) for malformed parameters (with
  /// what is wrong) and Error(kInsecureParameters) when log2(Q*P) exceeds the
  /// HE Standard's bound for N and the requested security level.
  static std::shared_ptr<const CkksContext> create(const CkksParameters& params);
  /// As create() but without the security check: for tests with toy ring
  /// degrees only. secure() tells the two apart.
  static std::shared_ptr<const CkksContext> create_insecure_for_tests(const CkksParameters& params);

  const CkksParameters& parameters() const noexcept { return params_; }
  /// Whether the security check ran and passed.
  bool secure() const noexcept { return secure_; }
  /// Bit length of Q * P (every prime, special ones included).
  int log_qp() const noexcept { return log_qp_; }
  /// A fingerprint of (N, primes, digits): objects carry it so that mixing
  /// objects of two contexts is refused (FNV-1a; not a security feature).
  std::uint64_t id() const noexcept { return id_; }

  std::size_t n() const noexcept { return params_.n; }
  int log_n() const noexcept { return log_n_; }
  /// N/2 complex slots.
  std::size_t slots() const noexcept { return params_.n / 2; }
  /// L: the top level (a fresh ciphertext has L + 1 chain primes).
  int max_level() const noexcept { return static_cast<int>(chain_size()) - 1; }
  std::size_t chain_size() const noexcept { return params_.chain_bits.size(); }
  std::size_t special_size() const noexcept { return static_cast<std::size_t>(k_); }
  std::size_t key_size() const noexcept { return moduli_.size(); }
  double default_scale() const noexcept { return default_scale_; }

  /// Every modulus in key-basis order (chain, then special).
  std::span<const Modulus> key_moduli() const noexcept { return moduli_; }
  const Modulus& modulus(std::size_t key_index) const noexcept { return moduli_[key_index]; }
  const NttTables& ntt(std::size_t key_index) const noexcept { return ntt_[key_index]; }
  /// Key-basis index of special prime j.
  std::size_t special_index(std::size_t j) const noexcept { return chain_size() + j; }

  /// The base q_0 .. q_level (CRT composition for decoding).
  const RnsBase& chain_base(int level) const noexcept {
    return chain_bases_[static_cast<std::size_t>(level)];
  }

  // ---- rescale: divide by q_level -----------------------------------------
  /// q_level^-1 mod q_i and its Shoup constant, for i < level.
  std::uint64_t inv_last(int level, std::size_t i) const noexcept {
    return inv_last_[tri(level) + i];
  }
  std::uint64_t inv_last_shoup(int level, std::size_t i) const noexcept {
    return inv_last_shoup_[tri(level) + i];
  }

  // ---- hybrid key switching -------------------------------------------------
  /// Chain primes per digit (alpha) and number of digits at the top level.
  std::size_t alpha() const noexcept { return alpha_; }
  std::size_t dnum() const noexcept { return dnum_; }
  /// Digits used at `level`: ceil((level + 1) / alpha).
  std::size_t digits_at(int level) const noexcept {
    return (static_cast<std::size_t>(level) + alpha_) / alpha_;
  }
  /// ModUp table of digit d restricted to its first `count` primes (the last
  /// digit below the top level is partial); count in [1, alpha].
  const ConversionTable& mod_up_table(std::size_t digit, std::size_t count) const noexcept {
    return mod_up_[digit * alpha_ + count - 1];
  }
  /// ModDown table: P to every chain prime.
  const ConversionTable& mod_down_table() const noexcept { return mod_down_; }
  /// P mod q_i, P^-1 mod q_i (with Shoup).
  std::uint64_t p_mod(std::size_t i) const noexcept { return p_mod_q_[i]; }
  std::uint64_t inv_p(std::size_t i) const noexcept { return inv_p_mod_q_[i]; }
  std::uint64_t inv_p_shoup(std::size_t i) const noexcept { return inv_p_mod_q_shoup_[i]; }

 private:
  CkksContext(const CkksParameters& params, bool check);
  static std::size_t tri(int level) noexcept {
    const auto l = static_cast<std::size_t>(level);
    return l * (l - 1) / 2;
  }

  CkksParameters params_;
  bool secure_ = false;
  int log_n_ = 0;
  int k_ = 0;
  int log_qp_ = 0;
  std::uint64_t id_ = 0;
  double default_scale_ = 0;
  std::vector<Modulus> moduli_;
  std::vector<NttTables> ntt_;
  std::vector<RnsBase> chain_bases_;
  std::vector<std::uint64_t> inv_last_, inv_last_shoup_;  // triangle: level l has l entries
  std::size_t alpha_ = 1, dnum_ = 1;
  std::vector<ConversionTable> mod_up_;  // [digit * alpha + count - 1]
  ConversionTable mod_down_;
  std::vector<std::uint64_t> p_mod_q_, inv_p_mod_q_, inv_p_mod_q_shoup_;
};

/// The table converting from the key-basis moduli `from` (ascending indices)
/// to every key-basis modulus of `moduli` (rows for members of `from` are
/// left zero). Exposed for tests.
ConversionTable make_conversion_table(std::span<const Modulus> moduli,
                                      std::vector<std::size_t> from);

/// Fast base conversion of one polynomial: `in` holds |from| rows of n
/// coefficients (row i reduced mod moduli[from[i]], coefficient form); for
/// each key index t in `to`, out row r = the conversion to moduli[to[r]], in
/// [0, t). `out` must not overlap `in`; `scratch` needs (|from| + 1) * n
/// words.
///  - centred = false: the plain FastBConv, x + e * S mod t for an integer e
///    in [0, |S|) (Bajard et al. 2016);
///  - centred = true: the centred lift x' in (-S/2, S/2] (x' = x mod S),
///    exact up to the choice at +-S/2: e = round(sum_i y_i / s_i) is
///    computed in double precision and e * S subtracted, as in Halevi,
///    Polyakov and Shoup 2019, section 2.3. Without it, ModDown would leave
///    an error e in {0, .., |S|-1} of mean (|S|-1)/2 per coefficient, whose
///    product with the secret is a random walk concentrated in the slots
///    near zeta = 1.
void fast_convert(const ConversionTable& table, std::span<const Modulus> moduli,
                  std::span<const std::uint64_t* const> in, std::span<const std::size_t> to,
                  std::span<std::uint64_t* const> out, std::size_t n,
                  std::span<std::uint64_t> scratch, bool centred);
/// fast_convert in two steps, so that several threads can share the first:
/// prepare writes the per-source values y_i (and e) to `scratch`; finish
/// converts to the moduli of `to` from them (and from `in`).
void fast_convert_prepare(const ConversionTable& table, std::span<const Modulus> moduli,
                          std::span<const std::uint64_t* const> in, std::size_t n,
                          std::span<std::uint64_t> scratch, bool centred);
void fast_convert_finish(const ConversionTable& table, std::span<const Modulus> moduli,
                         std::span<const std::uint64_t* const> in, std::span<const std::size_t> to,
                         std::span<std::uint64_t* const> out, std::size_t n,
                         std::span<const std::uint64_t> scratch, bool centred);

}  // namespace blindfold::he
