#include "tee/channel.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "tee/crypto.h"

namespace blindfold::tee {

namespace {

constexpr std::size_t kGcmTagBytes = 16;
constexpr std::size_t kHelloBytes = 1 + kClientNonceBytes + kX25519KeyBytes;
constexpr std::size_t kEvidenceHeadBytes = 1 + kX25519KeyBytes + 4;
constexpr std::string_view kTranscriptLabel = "blindfold tee handshake v1";
constexpr std::string_view kRecordLabel = "blindfold tee record v2";
constexpr std::string_view kClientFinished = "client finished";
constexpr std::string_view kEnclaveFinished = "enclave finished";
constexpr std::string_view kTagHello = "tee-hello";
constexpr std::string_view kTagEvidence = "tee-evidence";
constexpr std::string_view kTagFinished = "tee-finished";
// The largest Finished record: label + 32-byte hash + GCM tag, rounded up.
constexpr std::uint64_t kMaxFinishedBytes = 256;

using Key = std::array<std::uint8_t, 32>;

[[noreturn]] void bad(const std::string& why) {
  throw_error(ErrorCategory::kBadMessage, "attested channel: " + why);
}
[[noreturn]] void internal(const std::string& why) {
  throw_error(ErrorCategory::kInternal, "attested channel: " + why);
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;
struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

// Wipes a secret buffer when it goes out of scope.
template <class T>
struct Wipe {
  T& v;
  ~Wipe() { OPENSSL_cleanse(v.data(), v.size()); }
};

void put_u32(Bytes& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_be64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
}
void append(Bytes& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
}

// An ephemeral X25519 key pair; the private key is wiped by EVP_PKEY_free.
struct X25519Pair {
  PkeyPtr key;
  std::array<std::uint8_t, kX25519KeyBytes> pub{};
};

X25519Pair x25519_generate() {
  X25519Pair p;
  p.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  std::size_t len = p.pub.size();
  if (!p.key || EVP_PKEY_get_raw_public_key(p.key.get(), p.pub.data(), &len) != 1 ||
      len != p.pub.size())
    internal("X25519 key generation failed");
  return p;
}

Key x25519_shared(EVP_PKEY* own, const std::array<std::uint8_t, kX25519KeyBytes>& peer_pub) {
  PkeyPtr peer(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_pub.data(), peer_pub.size()));
  if (!peer) bad("the peer's X25519 key does not parse");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(own, nullptr));
  Key shared{};
  std::size_t len = shared.size();
  // OpenSSL refuses an all-zero result (a small-order peer key) here.
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), shared.data(), &len) != 1 || len != shared.size()) {
    OPENSSL_cleanse(shared.data(), shared.size());
    bad("X25519 with the peer's key failed (a small-order key?)");
  }
  static const Key zero{};
  if (CRYPTO_memcmp(shared.data(), zero.data(), zero.size()) == 0)
    bad("X25519 shared secret is zero");
  return shared;
}

Key hkdf_sha256(const Key& ikm, std::span<const std::uint8_t> salt, std::string_view info) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr));
  Key out{};
  std::size_t len = out.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), salt.data(), static_cast<int>(salt.size())) != 1 ||
      EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), ikm.data(), static_cast<int>(ikm.size())) != 1 ||
      EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), reinterpret_cast<const unsigned char*>(info.data()),
                                  static_cast<int>(info.size())) != 1 ||
      EVP_PKEY_derive(ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    OPENSSL_cleanse(out.data(), out.size());
    internal("HKDF-SHA256 failed");
  }
  return out;
}

Bytes transcript_hash(std::span<const std::uint8_t> hello,
                      std::span<const std::uint8_t> evidence_msg) {
  Bytes t;
  t.reserve(kTranscriptLabel.size() + 8 + hello.size() + evidence_msg.size());
  append(t, kTranscriptLabel);
  put_u32(t, static_cast<std::uint32_t>(hello.size()));
  t.insert(t.end(), hello.begin(), hello.end());
  put_u32(t, static_cast<std::uint32_t>(evidence_msg.size()));
  t.insert(t.end(), evidence_msg.begin(), evidence_msg.end());
  return sha256(t);
}

struct TrafficKeys {
  Key c2s{}, s2c{};
  ~TrafficKeys() {
    OPENSSL_cleanse(c2s.data(), c2s.size());
    OPENSSL_cleanse(s2c.data(), s2c.size());
  }
};

void derive_keys(TrafficKeys& k, EVP_PKEY* own,
                 const std::array<std::uint8_t, kX25519KeyBytes>& peer_pub,
                 std::span<const std::uint8_t> th) {
  Key shared = x25519_shared(own, peer_pub);
  Wipe<Key> wipe{shared};
  k.c2s = hkdf_sha256(shared, th, "blindfold tee c2s v1");
  k.s2c = hkdf_sha256(shared, th, "blindfold tee s2c v1");
}

Bytes finished_payload(std::string_view label, std::span<const std::uint8_t> th) {
  Bytes p;
  append(p, label);
  p.insert(p.end(), th.begin(), th.end());
  return p;
}

// Caps a channel's message size for the duration of the handshake (so a peer
// cannot make us allocate more than a handshake message), then restores it.
class MaxMessageGuard {
 public:
  MaxMessageGuard(net::Channel& ch, std::uint64_t cap) : ch_(ch), saved_(ch.max_message_bytes()) {
    ch_.set_max_message_bytes(std::min(saved_, cap));
  }
  void set(std::uint64_t cap) { ch_.set_max_message_bytes(std::min(saved_, cap)); }
  ~MaxMessageGuard() { ch_.set_max_message_bytes(saved_); }

 private:
  net::Channel& ch_;
  std::uint64_t saved_;
};

std::int64_t traffic_bytes(const net::Channel& ch) {
  return ch.stats().sent.bytes + ch.stats().received.bytes;
}

}  // namespace

// ---- Handshake messages ----

ClientHello parse_client_hello(std::span<const std::uint8_t> msg) {
  if (msg.size() != kHelloBytes)
    bad("tee-hello is " + std::to_string(msg.size()) + " bytes, not " +
        std::to_string(kHelloBytes));
  if (msg[0] != kChannelVersion)
    bad("tee-hello has version " + std::to_string(msg[0]) + ", not " +
        std::to_string(kChannelVersion));
  ClientHello h;
  std::memcpy(h.nonce.data(), msg.data() + 1, h.nonce.size());
  std::memcpy(h.key.data(), msg.data() + 1 + h.nonce.size(), h.key.size());
  return h;
}

Bytes serialize_client_hello(const ClientHello& h) {
  Bytes out;
  out.reserve(kHelloBytes);
  out.push_back(kChannelVersion);
  out.insert(out.end(), h.nonce.begin(), h.nonce.end());
  out.insert(out.end(), h.key.begin(), h.key.end());
  return out;
}

EnclaveEvidence parse_enclave_evidence(std::span<const std::uint8_t> msg) {
  if (msg.size() < kEvidenceHeadBytes) bad("tee-evidence is shorter than its header");
  if (msg[0] != kChannelVersion)
    bad("tee-evidence has version " + std::to_string(msg[0]) + ", not " +
        std::to_string(kChannelVersion));
  EnclaveEvidence e;
  std::memcpy(e.key.data(), msg.data() + 1, e.key.size());
  const std::uint8_t* p = msg.data() + 1 + e.key.size();
  const std::uint32_t len =
      static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
      (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
  if (len == 0 || len > kMaxEvidenceBytes)
    bad("tee-evidence announces " + std::to_string(len) + " evidence bytes");
  if (len != msg.size() - kEvidenceHeadBytes)
    bad("tee-evidence announces " + std::to_string(len) + " evidence bytes but carries " +
        std::to_string(msg.size() - kEvidenceHeadBytes));
  e.evidence.assign(msg.begin() + kEvidenceHeadBytes, msg.end());
  return e;
}

Bytes serialize_enclave_evidence(const EnclaveEvidence& e) {
  if (e.evidence.empty() || e.evidence.size() > kMaxEvidenceBytes)
    throw_error(ErrorCategory::kBadInput, "attested channel: evidence of " +
                                              std::to_string(e.evidence.size()) + " bytes (1.." +
                                              std::to_string(kMaxEvidenceBytes) + " allowed)");
  Bytes out;
  out.reserve(kEvidenceHeadBytes + e.evidence.size());
  out.push_back(kChannelVersion);
  out.insert(out.end(), e.key.begin(), e.key.end());
  put_u32(out, static_cast<std::uint32_t>(e.evidence.size()));
  out.insert(out.end(), e.evidence.begin(), e.evidence.end());
  return out;
}

// ---- Sealed records ----

SealedChannel::SealedChannel(net::Channel& ch, bool client_side,
                             const std::array<std::uint8_t, 32>& send_key,
                             const std::array<std::uint8_t, 32>& recv_key)
    : ch_(ch), client_side_(client_side), send_key_(send_key), recv_key_(recv_key) {}

SealedChannel::~SealedChannel() {
  OPENSSL_cleanse(send_key_.data(), send_key_.size());
  OPENSSL_cleanse(recv_key_.data(), recv_key_.size());
}

namespace {

void put_be32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) {
    p[i] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
}

std::size_t segment_count(std::size_t plaintext_bytes) {
  return plaintext_bytes == 0 ? 1 : (plaintext_bytes + kSegmentBytes - 1) / kSegmentBytes;
}

// The plaintext length a sealed payload of `wire` bytes carries, or nullopt
// when no plaintext length gives that many bytes.
std::optional<std::size_t> record_plaintext_bytes(std::size_t wire) {
  if (wire < kSegmentTagBytes) return std::nullopt;
  const std::size_t n =
      (wire + kSegmentBytes + kSegmentTagBytes - 1) / (kSegmentBytes + kSegmentTagBytes);
  const std::size_t p = wire - n * kSegmentTagBytes;  // wire >= 16 n for every wire >= 16
  if (segment_count(p) != n) return std::nullopt;
  return p;
}

// Nonce and associated data of segment `index` of a record (the format in
// channel.h). The AAD is built once per record; only its index field changes.
class RecordAad {
 public:
  RecordAad(bool from_client, std::uint64_t counter, std::size_t plaintext_bytes,
            std::string_view tag)
      : counter_(counter), aad_(kRecordLabel.begin(), kRecordLabel.end()) {
    aad_.push_back(from_client ? 'C' : 'E');
    std::uint8_t b[8];
    put_be64(b, counter);
    aad_.insert(aad_.end(), b, b + 8);
    put_be64(b, static_cast<std::uint64_t>(plaintext_bytes));
    aad_.insert(aad_.end(), b, b + 8);
    index_at_ = aad_.size();
    aad_.insert(aad_.end(), 4, 0);
    aad_.push_back(static_cast<std::uint8_t>(tag.size()));
    append(aad_, tag);
  }
  // Writes segment `index`'s nonce, and its AAD into `aad` (a copy of the
  // template, so that threads sealing different segments share nothing).
  void segment(std::uint32_t index, std::array<std::uint8_t, 12>& nonce, Bytes& aad) const {
    put_be32(nonce.data(), index);
    put_be64(nonce.data() + 4, counter_);
    aad = aad_;
    put_be32(aad.data() + index_at_, index);
  }

 private:
  std::uint64_t counter_;
  Bytes aad_;
  std::size_t index_at_ = 0;
};

// An AES-256-GCM context under `key` for encryption or decryption, or null
// when OpenSSL fails; each segment then sets only its nonce.
CipherCtxPtr gcm_context(const Key& key, bool encrypt) {
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx || EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nullptr,
                                encrypt ? 1 : 0) != 1)
    return nullptr;
  return ctx;
}

// Runs fn(begin, end) over the segments [0, n): on `pool` when there is one
// and more than one segment, else on this thread.
void for_segments(ThreadPool* pool, std::size_t n,
                  const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (pool && n > 1) {
    pool->parallel_for(static_cast<std::int64_t>(n), fn);
  } else {
    fn(0, static_cast<std::int64_t>(n));
  }
}

}  // namespace

std::size_t sealed_record_bytes(std::size_t plaintext_bytes) {
  return plaintext_bytes + kSegmentTagBytes * segment_count(plaintext_bytes);
}

void SealedChannel::send(std::string_view tag, std::span<const std::uint8_t> plaintext) {
  const std::span<const std::uint8_t> one[1] = {plaintext};
  send_parts(tag, one);
}

void SealedChannel::send_parts(std::string_view tag,
                               std::span<const std::span<const std::uint8_t>> parts) {
  if (broken_) bad("the sealed channel is broken after an earlier error");
  if (send_counter_ == std::numeric_limits<std::uint64_t>::max()) {
    broken_ = true;
    bad("record counter exhausted");
  }
  if (tag.empty() || tag.size() > net::kMaxTagBytes)
    throw_error(ErrorCategory::kBadInput, "attested channel: tag length out of range");
  // Where each part starts in the record's plaintext.
  std::vector<std::size_t> starts(parts.size() + 1, 0);
  for (std::size_t j = 0; j < parts.size(); ++j) starts[j + 1] = starts[j] + parts[j].size();
  const std::size_t total = starts.back();
  if (total > ch_.max_message_bytes() ||
      total / kSegmentBytes >= std::numeric_limits<std::uint32_t>::max())
    throw_error(ErrorCategory::kBadInput, "attested channel: record too large");
  const std::size_t n_seg = segment_count(total);
  tx_.resize(sealed_record_bytes(total));
  const RecordAad aad_of(client_side_, send_counter_, total, tag);

  std::atomic<bool> failed{false};
  for_segments(pool_, n_seg, [&](std::int64_t begin, std::int64_t end) {
    const CipherCtxPtr ctx = gcm_context(send_key_, true);
    if (!ctx) {
      failed = true;
      return;
    }
    std::array<std::uint8_t, 12> nonce;
    Bytes aad;
    std::size_t j = 0;  // the first part that may overlap the segment
    for (std::int64_t i = begin; i < end; ++i) {
      const std::size_t a = static_cast<std::size_t>(i) * kSegmentBytes;
      const std::size_t b = std::min(total, a + kSegmentBytes);
      std::uint8_t* out =
          tx_.data() + static_cast<std::size_t>(i) * (kSegmentBytes + kSegmentTagBytes);
      aad_of.segment(static_cast<std::uint32_t>(i), nonce, aad);
      int len = 0;
      bool ok = EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, nullptr, nonce.data()) == 1 &&
                EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(),
                                  static_cast<int>(aad.size())) == 1;
      while (ok && j < parts.size() && starts[j + 1] <= a) ++j;
      for (std::size_t k = j; ok && k < parts.size() && starts[k] < b; ++k) {
        const std::size_t from = std::max(a, starts[k]);
        const std::size_t to = std::min(b, starts[k + 1]);
        if (from >= to) continue;
        ok = EVP_EncryptUpdate(ctx.get(), out + (from - a), &len,
                               parts[k].data() + (from - starts[k]),
                               static_cast<int>(to - from)) == 1;
      }
      ok = ok && EVP_EncryptFinal_ex(ctx.get(), out + (b - a), &len) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kSegmentTagBytes, out + (b - a)) ==
               1;
      if (!ok) {
        failed = true;
        return;
      }
    }
  });
  if (failed) {
    broken_ = true;
    internal("AES-256-GCM encryption failed");
  }
  ++send_counter_;
  try {
    ch_.send(tag, tx_);
    ch_.flush();
  } catch (...) {
    broken_ = true;
    throw;
  }
}

Bytes SealedChannel::recv(std::string_view tag) {
  Bytes plain;
  recv_into(tag, plain);
  return plain;
}

void SealedChannel::recv_into(std::string_view tag, Bytes& plaintext) {
  // Whatever the plaintext buffer held is the caller's: wiped on failure.
  struct WipeOnFailure {
    Bytes& b;
    bool armed = true;
    ~WipeOnFailure() {
      if (!armed) return;
      if (!b.empty()) OPENSSL_cleanse(b.data(), b.size());
      b.clear();
    }
  } guard{plaintext};
  if (broken_) bad("the sealed channel is broken after an earlier error");
  try {
    ch_.recv_into(tag, rx_);
  } catch (...) {
    broken_ = true;
    throw;
  }
  const std::optional<std::size_t> total = record_plaintext_bytes(rx_.size());
  if (!total) {
    broken_ = true;
    bad("sealed record '" + std::string(tag) + "' has " + std::to_string(rx_.size()) +
        " bytes, which no sequence of sealed segments has");
  }
  if (recv_counter_ == std::numeric_limits<std::uint64_t>::max()) {
    broken_ = true;
    bad("record counter exhausted");
  }
  const std::size_t n_seg = segment_count(*total);
  plaintext.resize(*total);
  const RecordAad aad_of(!client_side_, recv_counter_, *total, tag);

  std::atomic<bool> failed{false};
  for_segments(pool_, n_seg, [&](std::int64_t begin, std::int64_t end) {
    const CipherCtxPtr ctx = gcm_context(recv_key_, false);
    if (!ctx) {
      failed = true;
      return;
    }
    std::array<std::uint8_t, 12> nonce;
    Bytes aad;
    for (std::int64_t i = begin; i < end && !failed; ++i) {
      const std::size_t a = static_cast<std::size_t>(i) * kSegmentBytes;
      const std::size_t n = std::min(*total, a + kSegmentBytes) - a;
      const std::uint8_t* in =
          rx_.data() + static_cast<std::size_t>(i) * (kSegmentBytes + kSegmentTagBytes);
      aad_of.segment(static_cast<std::uint32_t>(i), nonce, aad);
      int len = 0;
      const bool ok = EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, nullptr, nonce.data()) == 1 &&
                      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(),
                                        static_cast<int>(aad.size())) == 1 &&
                      (n == 0 || EVP_DecryptUpdate(ctx.get(), plaintext.data() + a, &len, in,
                                                   static_cast<int>(n)) == 1) &&
                      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kSegmentTagBytes,
                                          const_cast<std::uint8_t*>(in + n)) == 1 &&
                      EVP_DecryptFinal_ex(ctx.get(), plaintext.data() + a + n, &len) == 1;
      if (!ok) failed = true;
    }
  });
  if (failed) {
    broken_ = true;
    bad("sealed record '" + std::string(tag) + "' number " + std::to_string(recv_counter_) +
        " does not authenticate (altered, replayed, reordered or dropped)");
  }
  ++recv_counter_;
  guard.armed = false;
}

// ---- The handshake ----

AttestedSession attest_client(net::Channel& ch, const EvidenceVerifier& verify,
                              const Policy& policy) {
  const auto start = std::chrono::steady_clock::now();
  const std::int64_t bytes_before = traffic_bytes(ch);
  MaxMessageGuard cap(ch, kEvidenceHeadBytes + kMaxEvidenceBytes);

  ClientHello hello;
  os_random(hello.nonce);
  X25519Pair own = x25519_generate();
  hello.key = own.pub;
  const Bytes hello_msg = serialize_client_hello(hello);
  ch.send(kTagHello, hello_msg);
  ch.flush();

  const Bytes evidence_msg = ch.recv(kTagEvidence);
  const EnclaveEvidence ev = parse_enclave_evidence(evidence_msg);

  AttestedSession s;
  s.claims = verify(ev.evidence);
  const auto expected = binding_report_data(ev.key, hello.nonce);
  s.appraisal = appraise(policy, s.claims, expected);
  if (!s.appraisal.accepted()) {
    std::string why;
    for (const auto& f : s.appraisal.failures) why += (why.empty() ? "" : "; ") + f;
    throw_error(ErrorCategory::kBadMessage,
                "attestation: the policy rejects the enclave's evidence: " + why);
  }

  // Accepted: only now derive the keys and confirm them.
  const Bytes th = transcript_hash(hello_msg, evidence_msg);
  TrafficKeys keys;
  derive_keys(keys, own.key.get(), ev.key, th);
  own.key.reset();
  cap.set(kMaxFinishedBytes);
  s.channel = std::make_unique<SealedChannel>(ch, true, keys.c2s, keys.s2c);
  s.channel->send(kTagFinished, finished_payload(kClientFinished, th));
  const Bytes fin = s.channel->recv(kTagFinished);
  const Bytes want = finished_payload(kEnclaveFinished, th);
  if (fin.size() != want.size() || CRYPTO_memcmp(fin.data(), want.data(), want.size()) != 0)
    bad("the enclave's Finished does not match the transcript");

  s.handshake_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  s.handshake_bytes = traffic_bytes(ch) - bytes_before;
  return s;
}

std::unique_ptr<SealedChannel> attest_enclave(net::Channel& ch, const EvidenceProducer& produce) {
  MaxMessageGuard cap(ch, kHelloBytes);
  const Bytes hello_msg = ch.recv(kTagHello);
  const ClientHello hello = parse_client_hello(hello_msg);

  X25519Pair own = x25519_generate();
  EnclaveEvidence ev;
  ev.key = own.pub;
  ev.evidence = produce(binding_report_data(own.pub, hello.nonce));
  const Bytes evidence_msg = serialize_enclave_evidence(ev);
  cap.set(kEvidenceHeadBytes + kMaxEvidenceBytes);  // the limit applies to sending too
  ch.send(kTagEvidence, evidence_msg);
  ch.flush();

  const Bytes th = transcript_hash(hello_msg, evidence_msg);
  TrafficKeys keys;
  derive_keys(keys, own.key.get(), hello.key, th);
  own.key.reset();
  cap.set(kMaxFinishedBytes);
  auto sc = std::make_unique<SealedChannel>(ch, false, keys.s2c, keys.c2s);
  const Bytes fin = sc->recv(kTagFinished);
  const Bytes want = finished_payload(kClientFinished, th);
  if (fin.size() != want.size() || CRYPTO_memcmp(fin.data(), want.data(), want.size()) != 0)
    bad("the client's Finished does not match the transcript");
  sc->send(kTagFinished, finished_payload(kEnclaveFinished, th));
  return sc;
}

}  // namespace blindfold::tee
