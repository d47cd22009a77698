#include "he/keys.h"

#include <string>

#include "core/error.h"
#include "he/ntt.h"
#include "he/sampling.h"

namespace blindfold::he {

SecretKey::~SecretKey() {
  wipe();
}

void SecretKey::wipe() noexcept {
  secure_wipe(std::span<std::uint64_t>(data_));
}

SecretKey& SecretKey::operator=(const SecretKey& other) {
  if (this != &other) {
    wipe();
    context_id_ = other.context_id_;
    n_ = other.n_;
    data_ = other.data_;
  }
  return *this;
}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    wipe();
    context_id_ = other.context_id_;
    n_ = other.n_;
    data_ = std::move(other.data_);
  }
  return *this;
}

std::uint64_t galois_element_for_rotation(int steps, std::size_t n) {
  const std::uint64_t m = 2 * n;
  const auto slots = static_cast<std::int64_t>(n / 2);
  std::int64_t k = steps % slots;
  if (k < 0) k += slots;
  // 5 has order N/2 mod 2N, so 5^k for k in [0, N/2) covers every rotation.
  std::uint64_t g = 1;
  for (std::int64_t i = 0; i < k; ++i) g = g * 5 % m;
  return g;
}

std::vector<std::uint32_t> galois_permutation(std::uint64_t galois_element, std::size_t n) {
  if (galois_element % 2 == 0 || galois_element >= 2 * n) {
    throw_error(ErrorCategory::kBadInput,
                "Galois element " + std::to_string(galois_element) + " is not odd in [1, 2N)");
  }
  // Slot i holds the value at psi^(2 brv(i) + 1); m(X^g) there is m's value
  // at psi^((2 brv(i) + 1) g), which slot brv(((2 brv(i) + 1) g mod 2N - 1) / 2)
  // holds.
  const int bits = std::countr_zero(n);
  const std::uint64_t mask = 2 * n - 1;
  std::vector<std::uint32_t> perm(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint64_t e = (2 * std::uint64_t{reverse_bits(i, bits)} + 1) * galois_element & mask;
    perm[i] = reverse_bits(static_cast<std::uint32_t>((e - 1) >> 1), bits);
  }
  return perm;
}

const GaloisKeys::Entry& GaloisKeys::at(std::uint64_t galois_element) const {
  const auto it = keys.find(galois_element);
  if (it == keys.end()) {
    throw_error(ErrorCategory::kBadInput,
                "no Galois key for element " + std::to_string(galois_element));
  }
  return it->second;
}

KeyGenerator::KeyGenerator(std::shared_ptr<const CkksContext> context)
    : context_(std::move(context)), prg_(Prg::from_os()) {
  sample_secret();
}

KeyGenerator::KeyGenerator(std::shared_ptr<const CkksContext> context, const Seed& seed)
    : context_(std::move(context)), prg_(seed) {
  sample_secret();
}

KeyGenerator::KeyGenerator(std::shared_ptr<const CkksContext> context, const SecretKey& secret_key)
    : context_(std::move(context)), prg_(Prg::from_os()), secret_(secret_key) {
  if (secret_.context_id() != context_->id() || secret_.n() != context_->n()) {
    throw_error(ErrorCategory::kBadInput, "secret key of another context");
  }
}

void KeyGenerator::sample_secret() {
  const CkksContext& ctx = *context_;
  const std::size_t n = ctx.n();
  secret_ = SecretKey(ctx.id(), n, ctx.key_size());
  std::vector<std::int8_t> s(n);
  sample_ternary(prg_, s);
  for (std::size_t i = 0; i < ctx.key_size(); ++i) {
    small_to_residues(s, ctx.modulus(i), secret_.row(i));
    ntt_forward(secret_.row(i), ctx.ntt(i));
  }
  secure_wipe(std::span<std::int8_t>(s));
}

PublicKey KeyGenerator::create_public_key() {
  const CkksContext& ctx = *context_;
  const std::size_t n = ctx.n();
  const std::size_t rows = ctx.key_size();
  PublicKey pk;
  pk.context_id = ctx.id();
  prg_.fill(pk.a_seed);
  pk.a.resize(rows * n);
  pk.b.resize(rows * n);
  std::vector<std::int8_t> e(n);
  sample_cbd(prg_, e);
  std::vector<std::uint64_t> tmp(n);
  for (std::size_t i = 0; i < rows; ++i) {
    const Modulus& q = ctx.modulus(i);
    std::span<std::uint64_t> a(pk.a.data() + i * n, n);
    std::span<std::uint64_t> b(pk.b.data() + i * n, n);
    expand_uniform(pk.a_seed, kPublicKeyStream + i, q, a);
    small_to_residues(e, q, tmp);
    ntt_forward(tmp, ctx.ntt(i));
    // b = e - a s.
    mul_mod(a, secret_.row(i), q, b);
    sub_mod(tmp, b, q, b);
  }
  secure_wipe(std::span<std::int8_t>(e));
  secure_wipe(std::span<std::uint64_t>(tmp));
  return pk;
}

KeySwitchKey KeyGenerator::make_switch_key(std::span<const std::uint64_t> s_prime) {
  const CkksContext& ctx = *context_;
  const std::size_t n = ctx.n();
  const std::size_t ks = ctx.key_size();
  const std::size_t chain = ctx.chain_size();
  KeySwitchKey key;
  key.context_id = ctx.id();
  key.n = n;
  key.key_size = ks;
  key.dnum = ctx.dnum();
  prg_.fill(key.a_seed);
  key.a.resize(key.dnum * ks * n);
  key.b.resize(key.dnum * ks * n);
  std::vector<std::int8_t> e(n);
  std::vector<std::uint64_t> tmp(n);
  for (std::size_t j = 0; j < key.dnum; ++j) {
    sample_cbd(prg_, e);
    for (std::size_t i = 0; i < ks; ++i) {
      const Modulus& q = ctx.modulus(i);
      std::span<std::uint64_t> a(key.a.data() + (j * ks + i) * n, n);
      std::span<std::uint64_t> b(key.b.data() + (j * ks + i) * n, n);
      expand_uniform(key.a_seed, kKeySwitchStream + j * ks + i, q, a);
      small_to_residues(e, q, tmp);
      ntt_forward(tmp, ctx.ntt(i));
      mul_mod(a, secret_.row(i), q, b);
      sub_mod(tmp, b, q, b);  // e - a s
      // + g_j s': the gadget is P on the primes of digit j, 0 elsewhere.
      if (i < chain && i / ctx.alpha() == j) {
        mul_scalar_mod(s_prime.subspan(i * n, n), ctx.p_mod(i), q, tmp);
        add_mod(b, tmp, q, b);
      }
    }
  }
  secure_wipe(std::span<std::int8_t>(e));
  secure_wipe(std::span<std::uint64_t>(tmp));
  return key;
}

RelinKeys KeyGenerator::create_relin_keys() {
  const CkksContext& ctx = *context_;
  const std::size_t n = ctx.n();
  std::vector<std::uint64_t> s2(ctx.chain_size() * n);
  for (std::size_t i = 0; i < ctx.chain_size(); ++i) {
    mul_mod(secret_.row(i), secret_.row(i), ctx.modulus(i),
            std::span<std::uint64_t>(s2.data() + i * n, n));
  }
  RelinKeys keys{make_switch_key(s2)};
  secure_wipe(std::span<std::uint64_t>(s2));
  return keys;
}

GaloisKeys KeyGenerator::create_galois_keys(std::span<const int> steps, bool conjugation) {
  const CkksContext& ctx = *context_;
  const std::size_t n = ctx.n();
  std::vector<std::uint64_t> elements;
  for (int s : steps) {
    const std::uint64_t g = galois_element_for_rotation(s, n);
    if (g != 1) elements.push_back(g);
  }
  if (conjugation) elements.push_back(galois_element_for_conjugation(n));
  GaloisKeys keys;
  keys.context_id = ctx.id();
  std::vector<std::uint64_t> sg(ctx.chain_size() * n);
  for (std::uint64_t g : elements) {
    if (keys.has(g)) continue;
    GaloisKeys::Entry entry;
    entry.perm = galois_permutation(g, n);
    for (std::size_t i = 0; i < ctx.chain_size(); ++i) {
      const std::span<const std::uint64_t> s = secret_.row(i);
      std::uint64_t* dst = sg.data() + i * n;
      for (std::size_t c = 0; c < n; ++c) dst[c] = s[entry.perm[c]];
    }
    entry.key = make_switch_key(sg);
    keys.keys.emplace(g, std::move(entry));
  }
  secure_wipe(std::span<std::uint64_t>(sg));
  return keys;
}

GaloisKeys KeyGenerator::create_galois_keys() {
  std::vector<int> steps;
  for (std::size_t s = 1; s < context_->slots(); s <<= 1) {
    steps.push_back(static_cast<int>(s));
    steps.push_back(-static_cast<int>(s));
  }
  return create_galois_keys(steps, true);
}

}  // namespace blindfold::he
