// mpc2: two parties (server, client) with an offline dealer. Protocol
// descriptions and references are in mpc2.h; this file adds the wire formats.
//
// Wire formats (all integers little-endian):
//  - "mpc2/seed"   helper -> party: the party's 32-byte seed, once.
//  - "mpc2/pre"    helper -> party: one query's bundle:
//        "BFM2" | u32 version (2) | u64 query number | u64 body length | body
//    The body is one record per interactive operation (matmul, mul_weights,
//    mul, relu), in program order:
//        u64 (op << 56 | 56-bit digest of the operation's shape) |
//        u64 payload length | payload
//    The record header is not needed for correctness (lengths follow from
//    the program) but lets a party name the mismatch exactly when it and the
//    helper ran different programs, instead of computing with misaligned
//    correlations.
//    Payloads: matmul / mul_weights: server C_s (u64 x outputs), client
//    nothing; mul: server nothing, client c1 (u64 x n); relu of n > 0
//    elements at width `bits` (Protocol::relu):
//        u64 bits (2..64) | u64 length | ReluGateDealt::to_both
//    and for the client also u64 length | to_party1. to_both holds
//    DcfCorrections::serialized_size(bits - 1, n) bytes (fss.h: about
//    32.25 (bits - 1) + 16 per gate), to_party1 16 n. A relu of n = 0 has an
//    empty payload. The relu digest covers n and bits. Version 1 had no
//    width (always 64 bits).
//  - "mpc2/weights" server -> client: E = W - A (u64 x size), once per tensor.
//  - "mpc2/F"      client -> server: F = X_c - B (u64 x k*n).
//  - "mpc2/mul"    each way: x_p - a_p | y_p - b_p (u64 x 2n).
//  - "mpc2/relu"   each way: x_p + r_p (u64 x n).
//  - "mpc2/reveal" server -> client: the server's share (u64 x n).
//
// PRG draw order per query q (Prg(seed_p, q), shared by party p and the
// helper), op by op:
//  - matmul / mul_weights: client: B, then C_c. Server: nothing.
//  - mul: server: a0 | b0 | c0 in one fill; client: a1 | b1.
//  - relu: nothing from Prg(seed_p, q). The ReLU gates' material is drawn
//    from a stream of its own, Prg(seed_p, kReluStream + q) (kReluStream =
//    2^62), by fss::relu_gate_gen / ReluGateKey::load_borrowed for the
//    query's relu records in order. Being separate from the stream of the
//    other operations, whose sizes a party learns only when it runs the
//    program, it lets the parties check every relu record and expand their
//    keys in receive_preprocessing (offline), the keys evaluating in place
//    on the bundle's bytes (the Query owns them, so they outlive the keys).
#include "mpc/mpc2.h"

#include <openssl/crypto.h>

#include <bit>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>

#include "core/error.h"
#include "mpc/fss.h"

namespace blindfold::mpc {

static_assert(std::endian::native == std::endian::little,
              "mpc2 sends u64 arrays as raw little-endian bytes");

namespace {

constexpr char kTagSeed[] = "mpc2/seed";
constexpr char kTagPre[] = "mpc2/pre";
constexpr char kTagWeights[] = "mpc2/weights";
constexpr char kTagF[] = "mpc2/F";
constexpr char kTagMul[] = "mpc2/mul";
constexpr char kTagRelu[] = "mpc2/relu";
constexpr char kTagReveal[] = "mpc2/reveal";

constexpr std::uint8_t kMagic[4] = {'B', 'F', 'M', '2'};
constexpr std::uint32_t kVersion = 2;
constexpr std::size_t kHeaderBytes = 24;
constexpr std::size_t kRecordBytes = 16;
// Bundles travel as "mpc2/pre" frames of exactly kFrameBytes, the last one
// shorter (at least one frame; the first holds the whole header). A relu
// costs 2 KiB per element, so one bundle of a batched network can exceed
// the channels' default 256 MiB message cap.
constexpr std::size_t kFrameBytes = std::size_t{16} << 20;
constexpr u64 kDigestMask = (u64{1} << 56) - 1;
// Weight masks use the upper half of the stream space, queries the lower.
constexpr u64 kMaskStream = u64{1} << 63;
// ReLU gate material of query q: stream kReluStream + q (q < kReluStream).
constexpr u64 kReluStream = u64{1} << 62;

enum Op : u64 { kOpMatmul = 1, kOpMulWeights = 2, kOpMul = 3, kOpRelu = 4 };

const char* op_name(u64 op) {
  switch (op) {
    case kOpMatmul: return "matmul";
    case kOpMulWeights: return "mul_weights";
    case kOpMul: return "mul";
    case kOpRelu: return "relu";
    default: return "unknown operation";
  }
}

// A shape digest (not cryptographic: it only detects desynchronisation).
u64 digest(std::initializer_list<u64> params) {
  u64 h = 0x6d706332ULL;
  for (u64 v : params) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
  }
  return h & kDigestMask;
}

[[noreturn]] void internal(const std::string& msg) { throw Error(ErrorCategory::kInternal, "mpc2 " + msg); }
[[noreturn]] void bad_message(const std::string& msg) {
  throw Error(ErrorCategory::kBadMessage, "mpc2 " + msg);
}

std::size_t mul_size(std::size_t a, std::size_t b, const char* op) {
  std::size_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) internal(std::string(op) + ": size overflow");
  return r;
}

u64 load_u64(const std::uint8_t* p) {
  u64 v;
  std::memcpy(&v, p, 8);
  return v;
}

void put_u64(net::Bytes& out, u64 v) {
  std::uint8_t b[8];
  std::memcpy(b, &v, 8);
  out.insert(out.end(), b, b + 8);
}

std::span<const std::uint8_t> bytes_of(std::span<const u64> v) {
  return {reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * sizeof(u64)};
}

void draw(Prg& prg, std::span<u64> out) {
  prg.fill({reinterpret_cast<std::uint8_t*>(out.data()), out.size() * sizeof(u64)});
}

void copy_from(std::span<const std::uint8_t> in, std::span<u64> out) {
  if (!out.empty()) std::memcpy(out.data(), in.data(), out.size() * sizeof(u64));
}

// Receives `tag` and checks that it holds exactly out.size() u64.
void recv_u64s(net::Channel& ch, const char* tag, const char* op, const char* from, std::span<u64> out) {
  net::Bytes b = ch.recv(tag);
  if (b.size() != out.size() * sizeof(u64)) {
    bad_message(std::string(op) + ": the " + from + "'s message '" + tag + "' has " +
                std::to_string(b.size()) + " bytes, expected " + std::to_string(out.size() * sizeof(u64)));
  }
  copy_from(b, out);
}

void check_share(const Shared& x, const char* op) {
  if (x.s0.size() != x.n || !x.s1.empty()) {
    internal(std::string(op) + ": a share of " + std::to_string(x.s0.size()) + " values for n = " +
             std::to_string(x.n) + " (not an mpc2 party's Shared)");
  }
}

void check_trunc_bits(int bits) {
  if (bits < 0 || bits > 63) internal("trunc: " + std::to_string(bits) + " bits");
}

void check_idx(std::span<const std::uint32_t> idx, std::size_t n, std::size_t size, const char* op) {
  if (idx.size() != n) {
    internal(std::string(op) + ": " + std::to_string(idx.size()) + " indices for " + std::to_string(n) +
             " values");
  }
  for (std::uint32_t i : idx) {
    if (i >= size) {
      internal(std::string(op) + ": weight index " + std::to_string(i) + " out of range (" +
               std::to_string(size) + " weights)");
    }
  }
}

void wipe(std::vector<u64>& v) {
  if (!v.empty()) OPENSSL_cleanse(v.data(), v.size() * sizeof(u64));
}

// Appends a record header.
void begin_record(net::Bytes& out, u64 op, u64 dig, std::size_t len) {
  put_u64(out, (op << 56) | dig);
  put_u64(out, len);
}

}  // namespace

// ===========================================================================
// Party (server / client)
// ===========================================================================

// A relu record's key, made offline. It views the bundle's bytes: moving
// the bytes (a vector) from the Bundle into the Query keeps them in place.
struct ReluRecordKey {
  std::size_t record = 0;  // offset of the record header in the bundle
  fss::ReluGateKey key;
};

struct Mpc2Party::Bundle {
  std::uint64_t number = 0;
  net::Bytes bytes;  // header included
  std::deque<ReluRecordKey> relu;  // one per non-empty relu record, in order
};

struct Mpc2Party::Query {
  Query(const Seed& seed, Bundle&& b)
      : number(b.number), prg(seed, b.number), bytes(std::move(b.bytes)), relu(std::move(b.relu)),
        pos(kHeaderBytes) {}

  std::uint64_t number;
  Prg prg;
  net::Bytes bytes;  // must outlive `relu` (declared first: destroyed last)
  std::deque<ReluRecordKey> relu;
  std::size_t next_relu = 0;  // relu[next_relu] is the next relu record's key
  std::size_t pos;
  std::size_t last_record = 0;  // offset of the record opened last

  // Opens the next record, which must be `op` for the shape `dig`, and
  // returns its payload.
  std::span<const std::uint8_t> record(u64 op, u64 dig) {
    const std::string name = op_name(op);
    if (bytes.size() - pos < kRecordBytes) {
      bad_message(name + ": the helper's bundle for query " + std::to_string(number) +
                  " has no more operations (the helper and this party ran different programs)");
    }
    const u64 head = load_u64(bytes.data() + pos);
    const u64 len = load_u64(bytes.data() + pos + 8);
    if ((head >> 56) != op) {
      bad_message(name + ": the helper's bundle for query " + std::to_string(number) + " holds a " +
                  op_name(head >> 56) + " here (the helper and this party ran different programs)");
    }
    if ((head & kDigestMask) != dig) {
      bad_message(name + ": the helper's bundle for query " + std::to_string(number) +
                  " was made for other sizes or weights of this operation (the helper and this party "
                  "ran different programs)");
    }
    // Checked by receive_preprocessing; kept here for the reader's sake.
    if (len > bytes.size() - pos - kRecordBytes) bad_message(name + ": record longer than the bundle");
    const std::span<const std::uint8_t> payload(bytes.data() + pos + kRecordBytes, static_cast<std::size_t>(len));
    last_record = pos;
    pos += kRecordBytes + static_cast<std::size_t>(len);
    return payload;
  }
};

namespace {

void expect_payload(std::span<const std::uint8_t> payload, std::size_t want, const char* op) {
  if (payload.size() != want) {
    bad_message(std::string(op) + ": the helper's record has " + std::to_string(payload.size()) +
                " bytes, expected " + std::to_string(want));
  }
}

// Reads one u64-length-prefixed chunk of `payload` at `pos`.
std::span<const std::uint8_t> chunk(std::span<const std::uint8_t> payload, std::size_t& pos, const char* op) {
  if (payload.size() - pos < 8) bad_message(std::string(op) + ": the helper's record is truncated");
  const u64 len = load_u64(payload.data() + pos);
  pos += 8;
  if (len > payload.size() - pos) {
    bad_message(std::string(op) + ": the helper's record announces a " + std::to_string(len) +
                "-byte part with " + std::to_string(payload.size() - pos) + " bytes left");
  }
  auto out = payload.subspan(pos, static_cast<std::size_t>(len));
  pos += static_cast<std::size_t>(len);
  return out;
}

}  // namespace

Mpc2Party::Mpc2Party(int party, net::Channel& peer, net::Channel& helper, Mpc2Options options)
    : party_(party), peer_(peer), helper_(helper), options_(options) {
  if (party != 0 && party != 1) internal("party must be 0 (server) or 1 (client), got " + std::to_string(party));
  if (options.frac_bits < 0 || options.frac_bits > 62) {
    throw Error(ErrorCategory::kBadInput, "mpc2: frac_bits must be in [0, 62], got " +
                                              std::to_string(options.frac_bits));
  }
  net::Bytes s = helper_.recv(kTagSeed);
  if (s.size() != seed_.size()) {
    const std::size_t got = s.size();
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
    bad_message("seed: the helper's seed message has " + std::to_string(got) + " bytes, expected " +
                std::to_string(seed_.size()));
  }
  std::memcpy(seed_.data(), s.data(), seed_.size());
  OPENSSL_cleanse(s.data(), s.size());
}

Mpc2Party::~Mpc2Party() {
  OPENSSL_cleanse(seed_.data(), seed_.size());
  for (auto& w : weights_) wipe(w);
  for (auto& a : masks_) wipe(a);
  wipe(scratch_);
}

Mpc2Party::Query& Mpc2Party::in_query(const char* op) {
  if (!query_) internal(std::string(op) + " outside a query (call begin_query first)");
  return *query_;
}

void Mpc2Party::check_handle(int w, const char* op) const {
  if (w < 0 || static_cast<std::size_t>(w) >= weights_.size()) {
    internal(std::string(op) + ": unknown weight handle " + std::to_string(w));
  }
}

namespace {

// The number of gates whose DCF corrections on d = bits - 1 levels take
// exactly `size` bytes, or 0 if there is none. serialized_size(d, g) =
// (32 d + 16) g + ceil(d g / 4), so 4 size lies in [K g, K g + 3] with
// K = 129 d + 64 > 3, and g = floor(4 size / K), computed without forming
// 4 size (size = q K + m: g = 4 q + floor(4 m / K)); checked by
// recomputing the size.
std::size_t relu_gates_of(int bits, std::size_t size) {
  const int d = bits - 1;
  const std::size_t k = 129 * static_cast<std::size_t>(d) + 64;
  const std::size_t gates = 4 * (size / k) + 4 * (size % k) / k;
  if (gates == 0) return 0;
  try {
    if (fss::DcfCorrections::serialized_size(d, gates) != size) return 0;
  } catch (const Error&) {  // too many to size: not a valid count either
    return 0;
  }
  return gates;
}

// Checks one non-empty relu record payload (at `at`, `len` bytes, in `b`)
// and makes the party's key on it: u64 bits | u64 length | DCF corrections
// (the gate count follows from their length and the width), and for the
// client u64 length | its shares. The key views `b`'s bytes.
fss::ReluGateKey relu_key(int party, const net::Bytes& b, std::size_t at, std::size_t len, Prg& prg) {
  static constexpr char kOp[] = "preprocessing: relu";
  const std::span<const std::uint8_t> payload(b.data() + at, len);
  if (payload.size() < 8) bad_message(std::string(kOp) + ": the helper's record is truncated");
  const u64 width = load_u64(payload.data());
  if (width < 2 || width > 64) {
    bad_message(std::string(kOp) + ": gate width of " + std::to_string(width) + " bits (2..64)");
  }
  const int bits = static_cast<int>(width);
  std::size_t pos = 8;
  const auto to_both = chunk(payload, pos, kOp);
  std::span<const std::uint8_t> to_party1;
  if (party == 1) to_party1 = chunk(payload, pos, kOp);
  if (pos != payload.size()) bad_message(std::string(kOp) + ": the helper's record has trailing bytes");
  const std::size_t gates = relu_gates_of(bits, to_both.size());
  if (gates == 0) {
    bad_message(std::string(kOp) + ": DCF corrections of " + std::to_string(to_both.size()) +
                " bytes, not the size of any number of " + std::to_string(bits) + "-bit gates");
  }
  try {
    return fss::ReluGateKey::load_borrowed(party, gates, bits, prg, to_both, to_party1);
  } catch (const Error& e) {
    if (e.category() == ErrorCategory::kBadMessage) bad_message(std::string(kOp) + ": " + e.what());
    throw;
  }
}

}  // namespace

void Mpc2Party::receive_preprocessing() {
  retired_.reset();  // the last query's material, freed offline (see end_query)
  net::Bytes b = helper_.recv(kTagPre);
  if (b.size() < kHeaderBytes) {
    bad_message("preprocessing: bundle of " + std::to_string(b.size()) + " bytes, shorter than its header");
  }
  if (b.size() > kFrameBytes) {
    bad_message("preprocessing: bundle frame of " + std::to_string(b.size()) + " bytes, more than " +
                std::to_string(kFrameBytes));
  }
  if (std::memcmp(b.data(), kMagic, 4) != 0) bad_message("preprocessing: not an mpc2 bundle (bad magic)");
  std::uint32_t version;
  std::memcpy(&version, b.data() + 4, 4);
  if (version != kVersion) {
    bad_message("preprocessing: bundle version " + std::to_string(version) + ", expected " +
                std::to_string(kVersion));
  }
  const u64 number = load_u64(b.data() + 8);
  const u64 body = load_u64(b.data() + 16);
  const u64 expected = next_query_ + bundles_.size();
  if (number != expected) {
    bad_message("preprocessing: bundle for query " + std::to_string(number) + ", expected query " +
                std::to_string(expected));
  }
  // Continuation frames: each frame but the last has exactly kFrameBytes.
  if (body > std::numeric_limits<std::size_t>::max() - kHeaderBytes) {
    bad_message("preprocessing: bundle header announces " + std::to_string(body) + " bytes");
  }
  const std::size_t total = kHeaderBytes + static_cast<std::size_t>(body);
  std::size_t frame = b.size();
  // Reserve for the announced size only once a continuation frame is due (a
  // full first frame): a short frame announcing a huge body is refused
  // below without allocating for it (found by fuzz/mpc2_pre_fuzz).
  if (frame == kFrameBytes && frame < total) b.reserve(std::min<std::size_t>(total, std::size_t{1} << 30));
  while (frame == kFrameBytes && b.size() <= total) {  // a full frame: another one follows
    net::Bytes f = helper_.recv(kTagPre);
    frame = f.size();
    if (frame > kFrameBytes || frame > total - b.size()) {
      bad_message("preprocessing: bundle frame of " + std::to_string(frame) + " bytes after " +
                  std::to_string(b.size()) + " of an announced " + std::to_string(total));
    }
    b.insert(b.end(), f.begin(), f.end());
  }
  if (b.size() != total) {
    bad_message("preprocessing: bundle header announces " + std::to_string(body) + " bytes, the body has " +
                std::to_string(b.size() - kHeaderBytes));
  }
  if (number >= kReluStream) bad_message("preprocessing: query number " + std::to_string(number) + " out of range");
  // Walk the records so that a malformed bundle is refused now, not mid-query,
  // and make the relu keys (checks, PRG expansion) now: they depend on no input.
  auto bundle = std::make_unique<Bundle>();
  Prg relu_prg(seed_, kReluStream + number);
  std::size_t pos = kHeaderBytes;
  while (pos < b.size()) {
    if (b.size() - pos < kRecordBytes) bad_message("preprocessing: truncated record header");
    const u64 op = load_u64(b.data() + pos) >> 56;
    const u64 len = load_u64(b.data() + pos + 8);
    if (op < kOpMatmul || op > kOpRelu) bad_message("preprocessing: unknown operation " + std::to_string(op));
    if (len > b.size() - pos - kRecordBytes) {
      bad_message(std::string("preprocessing: ") + op_name(op) + " record of " + std::to_string(len) +
                  " bytes overruns the bundle");
    }
    if (op == kOpRelu && len != 0) {
      bundle->relu.push_back({pos, relu_key(party_, b, pos + kRecordBytes, static_cast<std::size_t>(len), relu_prg)});
    }
    pos += kRecordBytes + static_cast<std::size_t>(len);
  }
  bundle->number = number;
  bundle->bytes = std::move(b);
  bundles_.push_back(std::move(bundle));
}

void Mpc2Party::begin_query() {
  if (query_) internal("begin_query: query " + std::to_string(query_->number) + " is still in progress");
  if (bundles_.empty()) internal("begin_query: no preprocessing stored (receive_preprocessing first)");
  std::unique_ptr<Bundle> b = std::move(bundles_.front());
  bundles_.pop_front();
  if (b->number != next_query_) {
    bad_message("begin_query: stored bundle is for query " + std::to_string(b->number) + ", expected " +
                std::to_string(next_query_));
  }
  query_ = std::make_unique<Query>(seed_, std::move(*b));
  ++next_query_;
}

void Mpc2Party::end_query() {
  if (!query_) internal("end_query without begin_query");
  std::unique_ptr<Query> q = std::move(query_);
  if (q->pos != q->bytes.size()) {
    bad_message("end_query: query " + std::to_string(q->number) + " used " + std::to_string(q->pos) +
                " of the " + std::to_string(q->bytes.size()) +
                " bytes of the helper's bundle (the helper and this party ran different programs)");
  }
  // Freeing a query (its bundle, and wiping its spent relu keys) takes
  // tens of milliseconds for a large batch: keep it until the next
  // receive_preprocessing (offline) instead. At most one query is kept.
  retired_ = std::move(q);
}

int Mpc2Party::register_weights(std::span<const u64> w, std::size_t n) {
  if (weights_.size() >= (std::size_t{1} << 31) - 1) internal("register_weights: too many tensors");
  const int h = static_cast<int>(weights_.size());
  if (party_ == 0) {
    if (w.size() != n) {
      internal("register_weights: " + std::to_string(w.size()) + " values for n = " + std::to_string(n));
    }
    std::vector<u64> a(n), e(n);
    Prg mask(seed_, kMaskStream + static_cast<u64>(h));
    draw(mask, a);
    ring_sub(w, a, e);
    peer_.send(kTagWeights, bytes_of(e));
    wipe(e);
    weights_.emplace_back(w.begin(), w.end());
    masks_.push_back(std::move(a));
  } else {
    if (!w.empty()) internal("register_weights: the client holds no weights");
    std::vector<u64> e(n);
    recv_u64s(peer_, kTagWeights, "register_weights", "server", e);
    weights_.push_back(std::move(e));
  }
  return h;
}

Shared Mpc2Party::input(std::span<const u64> x, std::size_t n) {
  Shared out;
  out.n = n;
  if (party_ == 1) {
    if (x.size() != n) internal("input: " + std::to_string(x.size()) + " values for n = " + std::to_string(n));
    out.s0.assign(x.begin(), x.end());
  } else {
    if (!x.empty()) internal("input: the server holds no input");
    out.s0.assign(n, 0);
  }
  return out;
}

void Mpc2Party::add_public(Shared& x, std::span<const u64> c) {
  check_share(x, "add_public");
  if (c.size() != x.n) {
    internal("add_public: " + std::to_string(c.size()) + " constants for " + std::to_string(x.n) + " values");
  }
  if (party_ == 0) ring_add(x.s0, c, x.s0);
}

Shared Mpc2Party::add_weights(int w, const Shared& x, std::span<const std::uint32_t> idx) {
  check_handle(w, "add_weights");
  check_share(x, "add_weights");
  const std::vector<u64>& wt = weights_[static_cast<std::size_t>(w)];
  check_idx(idx, x.n, wt.size(), "add_weights");
  Shared out = x;
  if (party_ == 0) {
    for (std::size_t i = 0; i < x.n; ++i) out.s0[i] += wt[idx[i]];
  }
  return out;
}

Shared Mpc2Party::mul_weights(int w, const Shared& x, std::span<const std::uint32_t> idx) {
  static constexpr char kOp[] = "mul_weights";
  Query& q = in_query(kOp);
  check_handle(w, kOp);
  check_share(x, kOp);
  const std::vector<u64>& wt = weights_[static_cast<std::size_t>(w)];  // server W, client E
  check_idx(idx, x.n, wt.size(), kOp);
  const std::size_t n = x.n;
  const auto payload = q.record(kOpMulWeights, digest({static_cast<u64>(w), n}));
  Shared out;
  out.n = n;
  out.s0.resize(n);
  u64* z = out.s0.data();
  const u64* xs = x.s0.data();
  if (party_ == 0) {
    // Z_s = C_s + W[idx] o X_s + A[idx] o F.
    expect_payload(payload, mul_size(n, 8, kOp), kOp);
    copy_from(payload, out.s0);
    for (std::size_t i = 0; i < n; ++i) z[i] += wt[idx[i]] * xs[i];
    scratch_.resize(n);
    recv_u64s(peer_, kTagF, kOp, "client", scratch_);
    const std::vector<u64>& a = masks_[static_cast<std::size_t>(w)];
    const u64* f = scratch_.data();
    for (std::size_t i = 0; i < n; ++i) z[i] += a[idx[i]] * f[i];
  } else {
    // B then C_c from the query PRG; F = X_c - B; Z_c = C_c + E[idx] o X_c.
    expect_payload(payload, 0, kOp);
    scratch_.resize(n);
    draw(q.prg, scratch_);
    draw(q.prg, out.s0);
    u64* f = scratch_.data();
    for (std::size_t i = 0; i < n; ++i) f[i] = xs[i] - f[i];
    peer_.send(kTagF, bytes_of(scratch_));
    for (std::size_t i = 0; i < n; ++i) z[i] += wt[idx[i]] * xs[i];
  }
  return out;
}

Shared Mpc2Party::matmul(int w, const Shared& x, std::size_t m, std::size_t k, std::size_t n) {
  static constexpr char kOp[] = "matmul";
  Query& q = in_query(kOp);
  check_handle(w, kOp);
  check_share(x, kOp);
  const std::vector<u64>& wt = weights_[static_cast<std::size_t>(w)];  // server W, client E
  const std::size_t mk = mul_size(m, k, kOp), kn = mul_size(k, n, kOp), mn = mul_size(m, n, kOp);
  if (wt.size() != mk) {
    internal("matmul: weights " + std::to_string(w) + " have " + std::to_string(wt.size()) +
             " values, not m*k = " + std::to_string(mk));
  }
  if (x.n != kn) internal("matmul: input of " + std::to_string(x.n) + " values, not k*n = " + std::to_string(kn));
  const auto payload = q.record(kOpMatmul, digest({static_cast<u64>(w), m, k, n}));
  Shared out;
  out.n = mn;
  out.s0.resize(mn);
  const bool any = mn != 0 && k != 0;
  if (party_ == 0) {
    // Z_s = C_s + W X_s + A F; W X_s is computed while the client works.
    expect_payload(payload, mul_size(mn, 8, kOp), kOp);
    copy_from(payload, out.s0);
    if (any) ring_matmul(wt, x.s0, out.s0, m, k, n, /*accumulate=*/true);
    scratch_.resize(kn);
    recv_u64s(peer_, kTagF, kOp, "client", scratch_);
    if (any) ring_matmul(masks_[static_cast<std::size_t>(w)], scratch_, out.s0, m, k, n, true);
  } else {
    // B then C_c from the query PRG; F = X_c - B; Z_c = C_c + E X_c.
    expect_payload(payload, 0, kOp);
    scratch_.resize(kn);
    draw(q.prg, scratch_);
    draw(q.prg, out.s0);
    u64* f = scratch_.data();
    const u64* xs = x.s0.data();
    for (std::size_t i = 0; i < kn; ++i) f[i] = xs[i] - f[i];
    peer_.send(kTagF, bytes_of(scratch_));
    if (any) ring_matmul(wt, x.s0, out.s0, m, k, n, true);
  }
  return out;
}

Shared Mpc2Party::mul(const Shared& x, const Shared& y) {
  static constexpr char kOp[] = "mul";
  Query& q = in_query(kOp);
  check_share(x, kOp);
  check_share(y, kOp);
  if (x.n != y.n) internal("mul: operands of " + std::to_string(x.n) + " and " + std::to_string(y.n) + " values");
  const std::size_t n = x.n;
  const auto payload = q.record(kOpMul, digest({n}));
  Shared out;
  out.n = n;
  out.s0.resize(n);
  // scratch: a | b | (server: c) | own (x-a | y-b) | peer's (x-a | y-b)
  const std::size_t own_at = party_ == 0 ? 3 * n : 2 * n;
  scratch_.resize(own_at + 4 * n);
  u64* s = scratch_.data();
  if (party_ == 0) {
    expect_payload(payload, 0, kOp);
    draw(q.prg, {s, 3 * n});
    copy_from(bytes_of({s + 2 * n, n}), out.s0);  // (no memcpy of null pointers when n = 0)
  } else {
    expect_payload(payload, mul_size(n, 8, kOp), kOp);
    draw(q.prg, {s, 2 * n});
    copy_from(payload, out.s0);
  }
  const u64* a = s;
  const u64* b = s + n;
  u64* own = s + own_at;
  u64* peer = own + 2 * n;
  const u64* xs = x.s0.data();
  const u64* ys = y.s0.data();
  for (std::size_t i = 0; i < n; ++i) {
    own[i] = xs[i] - a[i];
    own[n + i] = ys[i] - b[i];
  }
  peer_.send(kTagMul, bytes_of({own, 2 * n}));
  recv_u64s(peer_, kTagMul, kOp, party_ == 0 ? "client" : "server", {peer, 2 * n});
  // d = x - a, e = y - b (opened); z_p = c_p + d b_p + e a_p (+ d e on the server).
  u64* z = out.s0.data();
  const bool server = party_ == 0;
  for (std::size_t i = 0; i < n; ++i) {
    const u64 d = own[i] + peer[i];
    const u64 e = own[n + i] + peer[n + i];
    z[i] += d * b[i] + e * a[i] + (server ? d * e : 0);
  }
  return out;
}

void Mpc2Party::trunc(Shared& x, int bits) {
  check_trunc_bits(bits);
  check_share(x, "trunc");
  if (bits == 0) return;
  if (party_ == 0) {
    ring_sar(x.s0, bits, x.s0);  // x0 -> x0 >> f (arithmetic)
  } else {
    // x1 -> -((-x1) >> f), fused into one pass.
    for (u64& v : x.s0) v = u64{0} - static_cast<u64>(static_cast<std::int64_t>(u64{0} - v) >> bits);
  }
}

void Mpc2Party::relu(const Shared& x, Shared* drelu, Shared* relu, int bits) {
  check_relu_bits(bits);
  static constexpr char kOp[] = "relu";
  Query& q = in_query(kOp);
  check_share(x, kOp);
  const std::size_t n = x.n;
  // A gate width other than the helper's would fail the digest below; name
  // both widths instead (the key of the next record, if it is a relu's).
  const bool keyed = q.next_relu < q.relu.size();
  if (keyed && q.relu[q.next_relu].record == q.pos && q.relu[q.next_relu].key.bits() != bits) {
    bad_message("relu: the helper's gates are " + std::to_string(q.relu[q.next_relu].key.bits()) +
                " bits wide, this party asks for " + std::to_string(bits) +
                " bits (the helper and this party ran different programs)");
  }
  const auto payload = q.record(kOpRelu, digest({n, static_cast<u64>(bits)}));
  if (n == 0) {
    expect_payload(payload, 0, kOp);
    if (drelu) *drelu = Shared{};
    if (relu) *relu = Shared{};
    return;
  }
  // The key was checked and expanded by receive_preprocessing. It stays in
  // the Query (spent), freed and wiped with it after end_query.
  if (!keyed || q.relu[q.next_relu].record != q.last_record) {
    bad_message("relu: the helper's record for " + std::to_string(n) + " gates is empty");
  }
  const fss::ReluGateKey& key = q.relu[q.next_relu++].key;
  if (key.count() != n || key.bits() != bits) {
    bad_message("relu: the helper's record holds " + std::to_string(key.count()) + " gates of " +
                std::to_string(key.bits()) + " bits, expected " + std::to_string(n) + " of " +
                std::to_string(bits));
  }
  // Open xhat = x + r: send x_p + r_p, receive the peer's.
  scratch_.resize(2 * n);
  u64* own = scratch_.data();
  u64* peer = own + n;
  const auto r = key.r_share();
  const u64* xs = x.s0.data();
  for (std::size_t i = 0; i < n; ++i) own[i] = xs[i] + r[i];
  peer_.send(kTagRelu, bytes_of({own, n}));
  recv_u64s(peer_, kTagRelu, kOp, party_ == 0 ? "client" : "server", {peer, n});
  for (std::size_t i = 0; i < n; ++i) own[i] += peer[i];
  // x may alias *drelu or *relu: write the outputs last.
  Shared d, y;
  if (drelu) {
    d.n = n;
    d.s0.resize(n);
  }
  if (relu) {
    y.n = n;
    y.s0.resize(n);
  }
  key.eval({own, n}, d.s0, y.s0);
  if (drelu) *drelu = std::move(d);
  if (relu) *relu = std::move(y);
}

std::vector<u64> Mpc2Party::reveal_to_client(const Shared& x) {
  check_share(x, "reveal_to_client");
  if (party_ == 0) {
    peer_.send(kTagReveal, bytes_of(x.s0));
    return {};
  }
  std::vector<u64> out(x.n);
  recv_u64s(peer_, kTagReveal, "reveal_to_client", "server", out);
  ring_add(out, x.s0, out);
  return out;
}

// ===========================================================================
// Dealer (helper)
// ===========================================================================

namespace {

// One party's bundle body under construction: owned bytes and shared
// segments (the DCF correction words, identical for both parties, are held
// once).
struct BundleOut {
  std::vector<std::shared_ptr<const net::Bytes>> parts;
  net::Bytes cur;  // appended to after the parts

  void share(std::shared_ptr<const net::Bytes> seg) {
    if (!cur.empty()) {
      parts.push_back(std::make_shared<const net::Bytes>(std::move(cur)));
      cur = net::Bytes();
    }
    parts.push_back(std::move(seg));
  }
  std::size_t size() const {
    std::size_t n = cur.size();
    for (const auto& p : parts) n += p->size();
    return n;
  }
};

// Cuts a byte stream into "mpc2/pre" frames of kFrameBytes (the last shorter).
class FrameSender {
 public:
  explicit FrameSender(net::Channel& ch) : ch_(ch) {}
  void add(std::span<const std::uint8_t> s) {
    while (!s.empty()) {
      if (buf_.empty() && s.size() >= kFrameBytes) {
        ch_.send(kTagPre, s.first(kFrameBytes));
        s = s.subspan(kFrameBytes);
        continue;
      }
      const std::size_t n = std::min(kFrameBytes - buf_.size(), s.size());
      buf_.insert(buf_.end(), s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
      s = s.subspan(n);
      if (buf_.size() == kFrameBytes) {
        ch_.send(kTagPre, buf_);
        buf_.clear();
      }
    }
  }
  // The last frame; sent even when empty if the stream was a multiple of
  // kFrameBytes, so that the receiver sees a frame shorter than kFrameBytes.
  void finish() { ch_.send(kTagPre, buf_); }

 private:
  net::Channel& ch_;
  net::Bytes buf_;
};

void send_bundle(net::Channel& ch, std::uint64_t number, const BundleOut& body) {
  net::Bytes head(kMagic, kMagic + 4);
  std::uint8_t v[4];
  std::memcpy(v, &kVersion, 4);
  head.insert(head.end(), v, v + 4);
  put_u64(head, number);
  put_u64(head, body.size());
  FrameSender out(ch);
  out.add(head);
  for (const auto& p : body.parts) out.add(*p);
  out.add(body.cur);
  out.finish();
}

}  // namespace

struct Mpc2Dealer::Query {
  Query(const Seed& s0, const Seed& s1, std::uint64_t q)
      : number(q), prg0(s0, q), prg1(s1, q), relu0(s0, kReluStream + q), relu1(s1, kReluStream + q) {}
  std::uint64_t number;
  Prg prg0, prg1;    // shared with the server / the client
  Prg relu0, relu1;  // the same, for the ReLU gates' material
  BundleOut server, client;
};

Mpc2Dealer::Mpc2Dealer(net::Channel& to_server, net::Channel& to_client, Mpc2Options options)
    : to_server_(to_server), to_client_(to_client), options_(options) {
  if (options.frac_bits < 0 || options.frac_bits > 62) {
    throw Error(ErrorCategory::kBadInput, "mpc2: frac_bits must be in [0, 62], got " +
                                              std::to_string(options.frac_bits));
  }
  seed_server_ = random_seed();
  seed_client_ = random_seed();
  to_server_.send(kTagSeed, std::span<const std::uint8_t>(seed_server_));
  to_client_.send(kTagSeed, std::span<const std::uint8_t>(seed_client_));
}

Mpc2Dealer::~Mpc2Dealer() {
  OPENSSL_cleanse(seed_server_.data(), seed_server_.size());
  OPENSSL_cleanse(seed_client_.data(), seed_client_.size());
  for (auto& a : masks_) wipe(a);
  wipe(scratch_);
}

Mpc2Dealer::Query& Mpc2Dealer::in_query(const char* op) {
  if (!query_) internal(std::string("helper ") + op + " outside a query (call begin_query first)");
  return *query_;
}

void Mpc2Dealer::check_handle(int w, const char* op) const {
  if (w < 0 || static_cast<std::size_t>(w) >= masks_.size()) {
    internal(std::string(op) + ": unknown weight handle " + std::to_string(w));
  }
}

void Mpc2Dealer::begin_query() {
  if (query_) internal("helper begin_query: query " + std::to_string(query_->number) + " is still in progress");
  if (next_query_ >= kReluStream) internal("helper begin_query: too many queries");
  query_ = std::make_unique<Query>(seed_server_, seed_client_, next_query_);
  ++next_query_;
}

void Mpc2Dealer::end_query() {
  if (!query_) internal("helper end_query without begin_query");
  std::unique_ptr<Query> q = std::move(query_);
  send_bundle(to_server_, q->number, q->server);
  send_bundle(to_client_, q->number, q->client);
}

int Mpc2Dealer::register_weights(std::span<const u64> w, std::size_t n) {
  if (!w.empty()) internal("register_weights: the helper must not be given the weights");
  if (masks_.size() >= (std::size_t{1} << 31) - 1) internal("register_weights: too many tensors");
  const int h = static_cast<int>(masks_.size());
  std::vector<u64> a(n);
  Prg mask(seed_server_, kMaskStream + static_cast<u64>(h));
  draw(mask, a);
  masks_.push_back(std::move(a));
  return h;
}

Shared Mpc2Dealer::input(std::span<const u64> x, std::size_t n) {
  if (!x.empty()) internal("input: the helper must not be given the input");
  Shared out;
  out.n = n;
  return out;
}

void Mpc2Dealer::add_public(Shared& x, std::span<const u64> c) {
  if (!c.empty() && c.size() != x.n) {
    internal("add_public: " + std::to_string(c.size()) + " constants for " + std::to_string(x.n) + " values");
  }
}

Shared Mpc2Dealer::add_weights(int w, const Shared& x, std::span<const std::uint32_t> idx) {
  check_handle(w, "add_weights");
  check_idx(idx, x.n, masks_[static_cast<std::size_t>(w)].size(), "add_weights");
  Shared out;
  out.n = x.n;
  return out;
}

Shared Mpc2Dealer::mul_weights(int w, const Shared& x, std::span<const std::uint32_t> idx) {
  static constexpr char kOp[] = "mul_weights";
  Query& q = in_query(kOp);
  check_handle(w, kOp);
  const std::vector<u64>& a = masks_[static_cast<std::size_t>(w)];
  check_idx(idx, x.n, a.size(), kOp);
  const std::size_t n = x.n;
  const u64 dig = digest({static_cast<u64>(w), n});
  // Client PRG: B, C_c. Server gets C_s = A[idx] o B - C_c.
  scratch_.resize(2 * n);
  draw(q.prg1, scratch_);
  const u64* b = scratch_.data();
  u64* c = scratch_.data() + n;
  for (std::size_t i = 0; i < n; ++i) c[i] = a[idx[i]] * b[i] - c[i];
  begin_record(q.server.cur, kOpMulWeights, dig, mul_size(n, 8, kOp));
  const auto cs = bytes_of({c, n});
  q.server.cur.insert(q.server.cur.end(), cs.begin(), cs.end());
  begin_record(q.client.cur, kOpMulWeights, dig, 0);
  Shared out;
  out.n = n;
  return out;
}

Shared Mpc2Dealer::matmul(int w, const Shared& x, std::size_t m, std::size_t k, std::size_t n) {
  static constexpr char kOp[] = "matmul";
  Query& q = in_query(kOp);
  check_handle(w, kOp);
  const std::vector<u64>& a = masks_[static_cast<std::size_t>(w)];
  const std::size_t mk = mul_size(m, k, kOp), kn = mul_size(k, n, kOp), mn = mul_size(m, n, kOp);
  if (a.size() != mk) {
    internal("matmul: weights " + std::to_string(w) + " have " + std::to_string(a.size()) +
             " values, not m*k = " + std::to_string(mk));
  }
  if (x.n != kn) internal("matmul: input of " + std::to_string(x.n) + " values, not k*n = " + std::to_string(kn));
  const u64 dig = digest({static_cast<u64>(w), m, k, n});
  // Client PRG: B (k x n), C_c (m x n). Server gets C_s = A B - C_c.
  scratch_.resize(kn + 2 * mn);
  u64* b = scratch_.data();
  u64* cc = b + kn;
  u64* ab = cc + mn;
  draw(q.prg1, {b, kn});
  draw(q.prg1, {cc, mn});
  if (mn != 0 && k != 0) {
    ring_matmul(a, {b, kn}, {ab, mn}, m, k, n, false);
  } else {
    std::fill(ab, ab + mn, u64{0});
  }
  ring_sub({ab, mn}, {cc, mn}, {ab, mn});
  begin_record(q.server.cur, kOpMatmul, dig, mul_size(mn, 8, kOp));
  const auto cs = bytes_of({ab, mn});
  q.server.cur.insert(q.server.cur.end(), cs.begin(), cs.end());
  begin_record(q.client.cur, kOpMatmul, dig, 0);
  Shared out;
  out.n = mn;
  return out;
}

Shared Mpc2Dealer::mul(const Shared& x, const Shared& y) {
  static constexpr char kOp[] = "mul";
  Query& q = in_query(kOp);
  if (x.n != y.n) internal("mul: operands of " + std::to_string(x.n) + " and " + std::to_string(y.n) + " values");
  const std::size_t n = x.n;
  const u64 dig = digest({n});
  // Server PRG: a0 | b0 | c0; client PRG: a1 | b1; client gets c1 = ab - c0.
  scratch_.resize(5 * n);
  u64* s0 = scratch_.data();
  u64* s1 = s0 + 3 * n;
  draw(q.prg0, {s0, 3 * n});
  draw(q.prg1, {s1, 2 * n});
  u64* c1 = s1;  // a1 is dead after its use below: reuse it for c1
  for (std::size_t i = 0; i < n; ++i) {
    const u64 a = s0[i] + s1[i];
    const u64 b = s0[n + i] + s1[n + i];
    c1[i] = a * b - s0[2 * n + i];
  }
  begin_record(q.server.cur, kOpMul, dig, 0);
  begin_record(q.client.cur, kOpMul, dig, mul_size(n, 8, kOp));
  const auto cb = bytes_of({c1, n});
  q.client.cur.insert(q.client.cur.end(), cb.begin(), cb.end());
  Shared out;
  out.n = n;
  return out;
}

void Mpc2Dealer::trunc(Shared& x, int bits) { check_trunc_bits(bits); }

void Mpc2Dealer::relu(const Shared& x, Shared* drelu, Shared* relu, int bits) {
  check_relu_bits(bits);
  static constexpr char kOp[] = "relu";
  Query& q = in_query(kOp);
  const std::size_t n = x.n;
  const u64 dig = digest({n, static_cast<u64>(bits)});
  if (n == 0) {
    begin_record(q.server.cur, kOpRelu, dig, 0);
    begin_record(q.client.cur, kOpRelu, dig, 0);
  } else {
    fss::ReluGateDealt dealt = fss::relu_gate_gen(n, bits, q.relu0, q.relu1);
    const std::size_t both = dealt.to_both.size(), p1 = dealt.to_party1.size();
    auto shared = std::make_shared<const net::Bytes>(std::move(dealt.to_both));
    begin_record(q.server.cur, kOpRelu, dig, 16 + both);
    put_u64(q.server.cur, static_cast<u64>(bits));
    put_u64(q.server.cur, both);
    q.server.share(shared);
    begin_record(q.client.cur, kOpRelu, dig, 24 + both + p1);
    put_u64(q.client.cur, static_cast<u64>(bits));
    put_u64(q.client.cur, both);
    q.client.share(std::move(shared));
    put_u64(q.client.cur, p1);
    q.client.cur.insert(q.client.cur.end(), dealt.to_party1.begin(), dealt.to_party1.end());
  }
  Shared out;
  out.n = n;
  if (drelu) *drelu = out;
  if (relu) *relu = out;
}

std::vector<u64> Mpc2Dealer::reveal_to_client(const Shared& x) { return {}; }

}  // namespace blindfold::mpc
