// Byte formats of CKKS objects: versioned, magic-tagged, little-endian, with
// every residue bit-packed to its prime's bit length (140 bits per
// coefficient for {60, 40, 40} instead of 192: smaller than SEAL's
// uncompressed format). Uniform polynomials are stored as their 32-byte
// seed: a symmetric ciphertext whose c1 is still its seed's expansion
// (Ciphertext::seed) and the `a` parts of public and key-switching keys.
//
// Layout: "BFHE", u16 version (1), u8 object type, u8 flags (bit 0: seeded),
// u64 context id, u32 N, then the object's body (see serialize.cc).
//
// Every loader treats its input as hostile: it checks the magic, version,
// type and flags, that the object belongs to the given context (id and N),
// every count against its bound and against the bytes remaining, that each
// residue is below its modulus, scales finite and positive, and that no byte
// is left over; it throws Error(kBadMessage) with the reason otherwise.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "he/ciphertext.h"
#include "he/context.h"
#include "he/keys.h"

namespace blindfold::he {

inline constexpr std::uint16_t kSerializationVersion = 1;

enum class ObjectType : std::uint8_t {
  kPlaintext = 1,
  kCiphertext = 2,
  kPublicKey = 3,
  kRelinKeys = 4,
  kGaloisKeys = 5,
  kSecretKey = 6,
};

/// A ciphertext, in its seeded (half-size) form when it has a seed and
/// `allow_seeded`. Throws Error(kBadInput) for an object of another context.
std::vector<std::uint8_t> save(const CkksContext& ctx, const Ciphertext& ct,
                               bool allow_seeded = true);
std::vector<std::uint8_t> save(const CkksContext& ctx, const Plaintext& pt);
std::vector<std::uint8_t> save(const CkksContext& ctx, const PublicKey& pk);
std::vector<std::uint8_t> save(const CkksContext& ctx, const RelinKeys& rk);
std::vector<std::uint8_t> save(const CkksContext& ctx, const GaloisKeys& gk);
/// The secret key: for the key owner's own storage only. Named apart so that
/// it is never saved by accident; the bytes are as secret as the key.
std::vector<std::uint8_t> save_secret_key(const CkksContext& ctx, const SecretKey& sk);

Ciphertext load_ciphertext(const CkksContext& ctx, std::span<const std::uint8_t> bytes);
Plaintext load_plaintext(const CkksContext& ctx, std::span<const std::uint8_t> bytes);
PublicKey load_public_key(const CkksContext& ctx, std::span<const std::uint8_t> bytes);
RelinKeys load_relin_keys(const CkksContext& ctx, std::span<const std::uint8_t> bytes);
GaloisKeys load_galois_keys(const CkksContext& ctx, std::span<const std::uint8_t> bytes);
SecretKey load_secret_key(const CkksContext& ctx, std::span<const std::uint8_t> bytes);

}  // namespace blindfold::he
