// The he backend's program, client and server session (program.h): the spec
// and the three messages in their binary formats, every field from a peer
// checked before it is used, and the dispatch to the two modes (modes.h).
#include "backends/he/program.h"

#include <string.h>  // explicit_bzero

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <complex>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <set>

#include "backends/he/layers.h"
#include "backends/he/modes.h"
#include "backends/lowering.h"
#include "core/error.h"

namespace blindfold::backends::heplan {

namespace {

constexpr std::uint32_t kVersion = 1;
constexpr char kSpecMagic[4] = {'B', 'F', 'H', 'S'};
constexpr char kKeysMagic[4] = {'B', 'F', 'H', 'K'};
constexpr char kQueryMagic[4] = {'B', 'F', 'H', 'Q'};
constexpr char kResponseMagic[4] = {'B', 'F', 'H', 'R'};

// Bounds on a spec from a peer: far above any model this project ships, far
// below what could exhaust memory by themselves (as backends/mpc/plan.cc).
constexpr std::int64_t kMaxDim = 1 << 16;
constexpr std::int64_t kMaxElements = std::int64_t{1} << 26;  // per sample
constexpr std::size_t kMaxChain = 64;
constexpr std::size_t kMaxDegree = 65536;
constexpr std::int32_t kMaxInputCts = 1 << 12;
constexpr std::uint32_t kMaxCiphertexts = 1u << 20;  // per query or response

[[noreturn]] void bad(const std::string& what) {
  throw_error(ErrorCategory::kBadMessage, what);
}

std::size_t sz(std::int64_t v) {
  return static_cast<std::size_t>(v);
}

void wipe(void* p, std::size_t n) {
  if (n) explicit_bzero(p, n);
}
template <class T>
void wipe(std::vector<T>& v) {
  wipe(v.data(), v.size() * sizeof(T));
}

class Writer {
 public:
  void raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
  void u8(std::uint8_t v) { out.push_back(v); }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void i32(std::int32_t v) { u32(static_cast<std::uint32_t>(v)); }
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void f64(double v) {
    std::uint64_t b;
    std::memcpy(&b, &v, 8);
    u64(b);
  }
  void blob(const std::vector<std::uint8_t>& b) {
    u64(b.size());
    raw(b.data(), b.size());
  }
  void shape(const Shape& s) {
    u32(static_cast<std::uint32_t>(s.size()));
    for (std::int64_t d : s) i64(d);
  }
  std::vector<std::uint8_t> out;
};

class Reader {
 public:
  Reader(std::span<const std::uint8_t> bytes, std::string what)
      : b_(bytes), what_(std::move(what)) {}
  std::size_t remaining() const { return b_.size() - pos_; }
  void need(std::size_t n, const char* field) {
    if (n > remaining()) {
      bad(what_ + ": truncated at " + field + " (" + std::to_string(n) + " bytes needed, " +
          std::to_string(remaining()) + " left)");
    }
  }
  std::span<const std::uint8_t> take(std::size_t n, const char* field) {
    need(n, field);
    auto s = b_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  void magic(const char (&m)[4]) {
    auto s = take(4, "magic");
    if (std::memcmp(s.data(), m, 4) != 0)
      bad(what_ + ": bad magic (expected \"" + std::string(m, 4) + "\")");
    const std::uint32_t v = u32("version");
    if (v != kVersion) bad(what_ + ": unsupported version " + std::to_string(v) + " (expected 1)");
  }
  std::uint8_t u8(const char* f) { return take(1, f)[0]; }
  std::uint32_t u32(const char* f) {
    auto s = take(4, f);
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= std::uint32_t{s[sz(i)]} << (8 * i);
    return v;
  }
  std::uint64_t u64(const char* f) {
    auto s = take(8, f);
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t{s[sz(i)]} << (8 * i);
    return v;
  }
  std::int32_t i32(const char* f) { return static_cast<std::int32_t>(u32(f)); }
  std::int64_t i64(const char* f) { return static_cast<std::int64_t>(u64(f)); }
  double f64(const char* f) {
    const std::uint64_t b = u64(f);
    double v;
    std::memcpy(&v, &b, 8);
    if (!std::isfinite(v)) bad(what_ + ": " + f + " is not finite");
    return v;
  }
  // A u64 length then that many bytes.
  std::span<const std::uint8_t> blob(const char* f) {
    const std::uint64_t n = u64(f);
    if (n > remaining()) {
      bad(what_ + ": " + f + " announces " + std::to_string(n) + " bytes, " +
          std::to_string(remaining()) + " left");
    }
    return take(sz(static_cast<std::int64_t>(n)), f);
  }
  Shape shape(const char* f) {
    const std::uint32_t rank = u32(f);
    if (rank > kMaxRank) bad(what_ + ": " + f + " has rank " + std::to_string(rank));
    Shape s(rank);
    std::int64_t n = 1;
    for (auto& d : s) {
      d = i64(f);
      if (d < 1 || d > kMaxDim) bad(what_ + ": " + f + " has a dimension of " + std::to_string(d));
      n *= d;
      if (n > kMaxElements) bad(what_ + ": " + f + " has more than 2^26 elements");
    }
    return s;
  }
  void end() {
    if (remaining() != 0) bad(what_ + ": " + std::to_string(remaining()) + " trailing bytes");
  }
  const std::string& what() const { return what_; }

 private:
  std::span<const std::uint8_t> b_;
  std::size_t pos_ = 0;
  std::string what_;
};

using lowering::numel;

int input_level_of(const ClientSpec& spec, const he::CkksContext& ctx) {
  return spec.input_level < 0 ? ctx.max_level() : spec.input_level;
}

// Every field of a spec; returns the context its parameters build.
std::shared_ptr<const he::CkksContext> validate(const ClientSpec& s) {
  const std::string w = "client spec";
  const he::CkksParameters& p = s.params;
  if (p.n == 0 || p.n > kMaxDegree || (p.n & (p.n - 1)) != 0)
    bad(w + ": ring degree " + std::to_string(p.n));
  if (p.chain_bits.empty() || p.chain_bits.size() > kMaxChain)
    bad(w + ": modulus chain of " + std::to_string(p.chain_bits.size()) + " primes");
  for (int b : p.chain_bits) {
    if (b < 2 || b > 60) bad(w + ": chain prime of " + std::to_string(b) + " bits");
  }
  if (p.special_primes < 1 || p.special_primes > 8)
    bad(w + ": " + std::to_string(p.special_primes) + " special primes");
  if (p.special_bits < 2 || p.special_bits > 60)
    bad(w + ": special primes of " + std::to_string(p.special_bits) + " bits");
  if (p.dnum < 0 || sz(p.dnum) > p.chain_bits.size()) bad(w + ": dnum " + std::to_string(p.dnum));
  if (!std::isfinite(p.log2_scale) || p.log2_scale < 1 || p.log2_scale > 60)
    bad(w + ": log2 scale out of range");
  if (p.security != he::SecurityLevel::k128 && p.security != he::SecurityLevel::k192 &&
      p.security != he::SecurityLevel::k256) {
    bad(w + ": unknown security level");
  }
  std::shared_ptr<const he::CkksContext> ctx;
  try {
    ctx = he::CkksContext::create(p);
  } catch (const Error& e) {
    bad(w + ": parameters " + p.describe() + " refused: " + e.what());
  }
  const auto slots = static_cast<std::int64_t>(ctx->slots());
  std::set<std::uint64_t> elements;
  for (std::size_t i = 0; i < s.galois_steps.size(); ++i) {
    const int st = s.galois_steps[i];
    if (st == 0 || st <= -slots || st >= slots)
      bad(w + ": rotation step " + std::to_string(st) + " out of range");
    if (i > 0 && st <= s.galois_steps[i - 1]) bad(w + ": rotation steps not sorted and distinct");
    if (!elements.insert(he::galois_element_for_rotation(st, ctx->n())).second) {
      bad(w + ": rotation steps " + std::to_string(st) + " and another are the same rotation");
    }
  }
  if (!std::isfinite(s.log2_input_scale) || s.log2_input_scale < 1 || s.log2_input_scale > 62)
    bad(w + ": input scale out of range");
  if (s.input_level < -1 || s.input_level > ctx->max_level())
    bad(w + ": input level " + std::to_string(s.input_level));
  auto check_shape = [&](const Shape& sh, const char* f) {
    if (sh.size() > kMaxRank) bad(w + ": " + f + " rank");
    std::int64_t n = 1;
    for (std::int64_t d : sh) {
      if (d < 1 || d > kMaxDim) bad(w + ": " + f + " dimension " + std::to_string(d));
      n *= d;
      if (n > kMaxElements) bad(w + ": " + f + " too large");
    }
  };
  check_shape(s.input_shape, "input shape");
  check_shape(s.output_shape, "output shape");
  if (s.max_batch < 1 || s.max_batch > slots) bad(w + ": max batch " + std::to_string(s.max_batch));
  if (!std::isfinite(s.input_bound) || s.input_bound < 0) bad(w + ": input bound");
  if (s.finish != Finish::kNone && s.finish != Finish::kSigmoid && s.finish != Finish::kSoftmax)
    bad(w + ": finish");
  const auto out_rank = static_cast<std::int64_t>(s.output_shape.size());
  if (s.finish == Finish::kSoftmax && (s.softmax_axis < -out_rank || s.softmax_axis >= out_rank)) {
    bad(w + ": softmax axis " + std::to_string(s.softmax_axis));
  }
  if (s.softmax_axis < -kMaxDim || s.softmax_axis > kMaxDim) bad(w + ": softmax axis");
  const std::int64_t in_n = numel(s.input_shape), out_n = numel(s.output_shape);
  if (s.mode == Mode::kLatency) {
    if (s.input_cts < 1 || s.input_cts > kMaxInputCts)
      bad(w + ": " + std::to_string(s.input_cts) + " input ciphertexts");
    if (static_cast<std::int64_t>(s.in_map.size()) != s.input_cts * slots)
      bad(w + ": input map size");
    for (std::int32_t v : s.in_map) {
      if (v < -1 || v >= in_n) bad(w + ": input map entry " + std::to_string(v) + " out of range");
    }
    if (static_cast<std::int64_t>(s.out_ct.size()) != out_n ||
        s.out_slot.size() != s.out_ct.size()) {
      bad(w + ": output map size");
    }
    for (std::size_t k = 0; k < s.out_ct.size(); ++k) {
      if (s.out_ct[k] < 0 || s.out_ct[k] >= static_cast<std::int64_t>(kMaxCiphertexts))
        bad(w + ": output ciphertext index");
      if (s.out_slot[k] < 0 || s.out_slot[k] >= slots) bad(w + ": output slot index");
    }
  } else if (s.mode == Mode::kBatch) {
    if (s.input_cts != 0 && s.input_cts != in_n) bad(w + ": batch mode input ciphertexts");
    if (!s.in_map.empty() || !s.out_ct.empty() || !s.out_slot.empty())
      bad(w + ": batch mode with slot maps");
    if (in_n > static_cast<std::int64_t>(kMaxCiphertexts) ||
        out_n > static_cast<std::int64_t>(kMaxCiphertexts)) {
      bad(w + ": too many ciphertexts");
    }
  } else {
    bad(w + ": unknown mode");
  }
  if (!std::isfinite(s.output_error) || s.output_error < 0 || !std::isfinite(s.output_bound) ||
      s.output_bound < 0) {
    bad(w + ": error budget");
  }
  return ctx;
}

// Query and response: magic | version | u64 samples | u32 count | blobs.
// One reservation for the whole message (a batch query is hundreds of MB:
// growing it by doubling would copy it and fault its pages twice over).
std::vector<std::uint8_t> ct_message(const char (&magic)[4], std::uint64_t samples,
                                     std::vector<std::vector<std::uint8_t>>& blobs) {
  std::size_t total = 4 + 4 + 8 + 4;
  for (const auto& b : blobs) total += 8 + b.size();
  Writer w;
  w.out.reserve(total);
  w.raw(magic, 4);
  w.u32(kVersion);
  w.u64(samples);
  w.u32(static_cast<std::uint32_t>(blobs.size()));
  for (auto& b : blobs) {
    w.blob(b);
    std::vector<std::uint8_t>().swap(b);
  }
  return std::move(w.out);
}

// Runs fn(begin, end) over [0, n) on `pool`, or inline without one.
void run_chunks(ThreadPool* pool, std::int64_t n,
                const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (pool && n > 1) {
    pool->parallel_for(n, fn, 1);
  } else if (n > 0) {
    fn(0, n);
  }
}

struct CtMessage {
  std::int64_t samples = 0;
  std::vector<he::Ciphertext> cts;
};

// Parses a query or response; `expected(samples)` gives the count required.
template <class Expected>
CtMessage parse_ct_message(std::span<const std::uint8_t> bytes, const char (&magic)[4],
                           const char* what, const ClientSpec& spec, const he::CkksContext& ctx,
                           ThreadPool* pool, Expected expected) {
  Reader r(bytes, what);
  r.magic(magic);
  const std::uint64_t samples = r.u64("sample count");
  if (samples < 1 || samples > static_cast<std::uint64_t>(spec.max_batch)) {
    bad(std::string(what) + ": " + std::to_string(samples) + " samples (1.." +
        std::to_string(spec.max_batch) + ")");
  }
  const std::uint32_t count = r.u32("ciphertext count");
  const std::string why = expected(static_cast<std::int64_t>(samples), count);
  if (!why.empty()) bad(std::string(what) + ": " + why);
  // Each ciphertext takes at least 8 bytes of length: refuse a count the
  // bytes cannot hold before reserving for it.
  if (count > kMaxCiphertexts || std::uint64_t{count} * 8 > r.remaining()) {
    bad(std::string(what) + ": " + std::to_string(count) + " ciphertexts announced in " +
        std::to_string(r.remaining()) + " bytes");
  }
  // The lengths first (sequentially), then the ciphertexts (in parallel:
  // a batch query holds hundreds of them).
  std::vector<std::span<const std::uint8_t>> blobs(count);
  for (auto& b : blobs) b = r.blob("ciphertext");
  r.end();
  CtMessage m;
  m.samples = static_cast<std::int64_t>(samples);
  m.cts.resize(count);
  // The threads take the ciphertexts one at a time (a busy core does fewer).
  std::atomic<std::int64_t> next{0};
  const auto n = static_cast<std::int64_t>(count);
  const std::int64_t threads = pool ? std::min<std::int64_t>(pool->size(), n) : 1;
  run_chunks(pool, threads, [&](std::int64_t, std::int64_t) {
    for (std::int64_t i = next++; i < n; i = next++) {
      try {
        m.cts[sz(i)] = he::load_ciphertext(ctx, blobs[sz(i)]);
      } catch (const Error& e) {
        bad(std::string(what) + ": ciphertext " + std::to_string(i) + ": " + e.what());
      }
    }
  });
  return m;
}

double parse_bound(const std::string& v) {
  double d = 0;
  const auto [end, ec] =
      std::from_chars(v.data(), v.data() + v.size(), d, std::chars_format::general);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || !std::isfinite(d) || d <= 0) {
    throw_error(ErrorCategory::kBadModel, "model metadata 'blindfold.input_bound' is '" +
                                              (v.size() > 64 ? v.substr(0, 64) + "..." : v) +
                                              "': expected a positive finite decimal number");
  }
  return d;
}

}  // namespace

// ---- modes ------------------------------------------------------------------

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::kLatency: return "latency";
    case Mode::kBatch: return "batch";
  }
  return "unknown";
}

Mode parse_mode(std::string_view name) {
  if (name == "latency") return Mode::kLatency;
  if (name == "batch") return Mode::kBatch;
  throw_error(ErrorCategory::kBadInput, "unknown he mode '" + std::string(name.substr(0, 64)) +
                                            "' (accepted: latency, batch)");
}

// ---- spec -------------------------------------------------------------------

std::vector<std::uint8_t> ClientSpec::serialize() const {
  Writer w;
  w.raw(kSpecMagic, 4);
  w.u32(kVersion);
  w.u8(static_cast<std::uint8_t>(mode));
  w.u64(params.n);
  w.u32(static_cast<std::uint32_t>(params.chain_bits.size()));
  for (int b : params.chain_bits) w.i32(b);
  w.i32(params.special_primes);
  w.i32(params.special_bits);
  w.i32(params.dnum);
  w.f64(params.log2_scale);
  w.u32(static_cast<std::uint32_t>(params.security));
  w.u32(static_cast<std::uint32_t>(galois_steps.size()));
  for (int s : galois_steps) w.i32(s);
  w.u8(relin_keys ? 1 : 0);
  w.f64(log2_input_scale);
  w.i32(input_level);
  w.shape(input_shape);
  w.shape(output_shape);
  w.i64(max_batch);
  w.f64(input_bound);
  w.u8(static_cast<std::uint8_t>(finish));
  w.i64(softmax_axis);
  w.i32(input_cts);
  w.u64(in_map.size());
  for (std::int32_t v : in_map) w.i32(v);
  w.u64(out_ct.size());
  for (std::int32_t v : out_ct) w.i32(v);
  for (std::int32_t v : out_slot) w.i32(v);
  w.f64(output_error);
  w.f64(output_bound);
  return std::move(w.out);
}

ClientSpec ClientSpec::parse(std::span<const std::uint8_t> bytes) {
  Reader r(bytes, "client spec");
  r.magic(kSpecMagic);
  ClientSpec s;
  const std::uint8_t mode = r.u8("mode");
  if (mode > 1) bad("client spec: unknown mode " + std::to_string(mode));
  s.mode = static_cast<Mode>(mode);
  const std::uint64_t n = r.u64("ring degree");
  if (n == 0 || n > kMaxDegree || (n & (n - 1)) != 0)
    bad("client spec: ring degree " + std::to_string(n));
  s.params.n = static_cast<std::size_t>(n);
  const std::uint32_t chain = r.u32("chain length");
  if (chain == 0 || chain > kMaxChain)
    bad("client spec: modulus chain of " + std::to_string(chain) + " primes");
  s.params.chain_bits.resize(chain);
  for (int& b : s.params.chain_bits) b = r.i32("chain prime bits");
  s.params.special_primes = r.i32("special primes");
  s.params.special_bits = r.i32("special prime bits");
  s.params.dnum = r.i32("dnum");
  s.params.log2_scale = r.f64("log2 scale");
  const std::uint32_t sec = r.u32("security level");
  if (sec != 128 && sec != 192 && sec != 256)
    bad("client spec: security level " + std::to_string(sec));
  s.params.security = static_cast<he::SecurityLevel>(sec);
  const std::uint32_t steps = r.u32("rotation count");
  if (steps > n / 2 || std::uint64_t{steps} * 4 > r.remaining())
    bad("client spec: " + std::to_string(steps) + " rotations");
  s.galois_steps.resize(steps);
  for (int& st : s.galois_steps) st = r.i32("rotation step");
  const std::uint8_t relin = r.u8("relin flag");
  if (relin > 1) bad("client spec: relin flag " + std::to_string(relin));
  s.relin_keys = relin == 1;
  s.log2_input_scale = r.f64("input scale");
  s.input_level = r.i32("input level");
  s.input_shape = r.shape("input shape");
  s.output_shape = r.shape("output shape");
  s.max_batch = r.i64("max batch");
  s.input_bound = r.f64("input bound");
  const std::uint8_t fin = r.u8("finish");
  if (fin > 2) bad("client spec: finish " + std::to_string(fin));
  s.finish = static_cast<Finish>(fin);
  s.softmax_axis = r.i64("softmax axis");
  s.input_cts = r.i32("input ciphertexts");
  const std::uint64_t in_count = r.u64("input map size");
  if (in_count > r.remaining() / 4)
    bad("client spec: input map of " + std::to_string(in_count) + " entries");
  s.in_map.resize(sz(static_cast<std::int64_t>(in_count)));
  for (std::int32_t& v : s.in_map) v = r.i32("input map");
  const std::uint64_t out_count = r.u64("output map size");
  if (out_count > r.remaining() / 8)
    bad("client spec: output map of " + std::to_string(out_count) + " entries");
  s.out_ct.resize(sz(static_cast<std::int64_t>(out_count)));
  s.out_slot.resize(s.out_ct.size());
  for (std::int32_t& v : s.out_ct) v = r.i32("output ciphertexts");
  for (std::int32_t& v : s.out_slot) v = r.i32("output slots");
  s.output_error = r.f64("output error");
  s.output_bound = r.f64("output bound");
  r.end();
  validate(s);
  return s;
}

// ---- program ----------------------------------------------------------------

std::unique_ptr<Program> Program::build(const model::Graph& graph, const ProgramOptions& options) {
  ProgramOptions o = options;
  if (!std::isfinite(o.input_bound) || o.input_bound < 0) {
    throw_error(ErrorCategory::kBadInput, "input bound must be a finite non-negative number");
  }
  if (o.input_bound == 0) {
    const auto it = graph.metadata.find("blindfold.input_bound");
    if (it != graph.metadata.end()) o.input_bound = parse_bound(it->second);
  }
  const Chain chain = lower_chain(graph);
  switch (o.mode) {
    case Mode::kLatency: return build_latency(chain, o);
    case Mode::kBatch: return build_batch(chain, o);
  }
  throw_error(ErrorCategory::kBadInput, "unknown he mode");
}

Support Program::supports(const model::Graph& graph, Mode mode) {
  try {
    const Support s = chain_support(graph);
    if (!s.ok) return s;
    const Chain chain = lower_chain(graph);
    return mode == Mode::kLatency ? latency_support(chain) : batch_support(chain);
  } catch (const std::exception& e) {
    return Support::no("", e.what());
  }
}

// ---- client -----------------------------------------------------------------

struct Client::Impl {
  ClientSpec spec;
  std::shared_ptr<const he::CkksContext> ctx;
  ThreadPool* pool;
  he::KeyGenerator keygen;
  he::CkksEncoder encoder;
  he::Decryptor decryptor;
  std::vector<std::uint8_t> keys;

  Impl(ClientSpec s, std::shared_ptr<const he::CkksContext> c, ThreadPool* p)
      : spec(std::move(s)),
        ctx(std::move(c)),
        pool(p),
        keygen(ctx),
        encoder(ctx),
        decryptor(ctx, keygen.secret_key()) {
    Writer w;
    w.raw(kKeysMagic, 4);
    w.u32(kVersion);
    if (spec.relin_keys) {
      w.blob(he::save(*ctx, keygen.create_relin_keys()));
    } else {
      w.u64(0);
    }
    if (spec.galois_steps.empty()) {
      w.u64(0);
    } else {
      w.blob(he::save(*ctx, keygen.create_galois_keys(spec.galois_steps, false)));
    }
    keys = std::move(w.out);
  }
};

Client::Client(ClientSpec spec, ThreadPool* pool) {
  auto ctx = validate(spec);
  impl_ = std::make_unique<Impl>(std::move(spec), std::move(ctx), pool);
}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

const ClientSpec& Client::spec() const {
  return impl_->spec;
}

std::vector<std::uint8_t> Client::keys_message() const {
  return impl_->keys;
}

std::vector<std::uint8_t> Client::encrypt(const Tensor& batch) const {
  const ClientSpec& s = impl_->spec;
  const he::CkksContext& ctx = *impl_->ctx;
  Shape want{0};
  want.insert(want.end(), s.input_shape.begin(), s.input_shape.end());
  if (batch.dtype() != DType::kFloat32 || batch.rank() != want.size() ||
      !std::equal(want.begin() + 1, want.end(), batch.shape().begin() + 1)) {
    throw_error(ErrorCategory::kBadInput,
                "he client: input of shape " + shape_to_string(batch.shape()) +
                    " (expected float32 [B, " + shape_to_string(s.input_shape).substr(1));
  }
  const std::int64_t samples = batch.dim(0);
  if (samples < 1 || samples > s.max_batch) {
    throw_error(ErrorCategory::kBadInput, "he client: batch of " + std::to_string(samples) +
                                              " (1.." + std::to_string(s.max_batch) +
                                              " per query)");
  }
  const std::int64_t per = numel(s.input_shape);
  const auto x = batch.f32();
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || (s.input_bound > 0 && std::fabs(x[i]) > s.input_bound)) {
      throw_error(ErrorCategory::kBadInput,
                  "he client: input value " + std::to_string(x[i]) + " at index " +
                      std::to_string(i) + " is outside |x| <= " + std::to_string(s.input_bound) +
                      " (the bound the program's error budget assumes)");
    }
  }
  const int level = input_level_of(s, ctx);
  const double scale = std::exp2(s.log2_input_scale);
  const std::size_t slots = ctx.slots();
  const bool latency = s.mode == Mode::kLatency;
  const std::int64_t count = latency ? samples * s.input_cts : per;
  const int log_q = ctx.chain_base(level).product_bits();
  // Per thread: an encryptor (not thread-safe; each with its own seed from
  // the OS CSPRNG) and the buffers of one ciphertext, wiped when done.
  struct Worker {
    Worker(std::shared_ptr<const he::CkksContext> c, const he::SecretKey& key, std::size_t slots)
        : encryptor(std::move(c), key), values(slots, 0.0), u(slots), coeffs(2 * slots) {}
    ~Worker() {
      wipe(values);
      wipe(u);
      wipe(coeffs);
    }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;
    he::Encryptor encryptor;
    std::vector<double> values;
    std::vector<std::complex<double>> u;
    std::vector<std::int64_t> coeffs;
  };
  auto make_worker = [&] {
    return std::make_unique<Worker>(impl_->ctx, impl_->keygen.secret_key(), slots);
  };
  // Ciphertext i, serialized (seeded: half size).
  auto encrypt_one = [&](Worker& w, std::int64_t i) {
    std::vector<double>& values = w.values;
    if (latency) {
      const std::int64_t b = i / s.input_cts, c = i % s.input_cts;
      for (std::size_t k = 0; k < slots; ++k) {
        const std::int32_t idx = s.in_map[sz(c) * slots + k];
        values[k] = idx < 0 ? 0.0 : x[sz(b * per + idx)];
      }
    } else {
      std::fill(values.begin(), values.end(), 0.0);
      for (std::int64_t b = 0; b < samples; ++b) values[sz(b)] = x[sz(b * per + i)];
    }
    // The encoder's coefficients (he/encoder.cc, encode: the inverse special
    // FFT, then m_k = round(scale Re u_k), m_{k + N/2} = round(scale Im u_k);
    // he/encryptor_test.cc checks that their NTT is encode()'s plaintext),
    // kept as integers so that the encryptor adds them to its error before
    // its one NTT per prime.
    for (std::size_t k = 0; k < slots; ++k) w.u[k] = {values[k], 0.0};
    impl_->encoder.fft_special_inverse(w.u);
    double max_abs = 0;
    for (std::size_t k = 0; k < slots; ++k) {
      const double re = std::nearbyint(w.u[k].real() * scale);
      const double im = std::nearbyint(w.u[k].imag() * scale);
      max_abs = std::max({max_abs, std::fabs(re), std::fabs(im)});
      w.coeffs[k] = static_cast<std::int64_t>(re);
      w.coeffs[k + slots] = static_cast<std::int64_t>(im);
    }
    he::Ciphertext ct;
    if (max_abs < 0x1p61 && std::log2(max_abs + 1) < log_q - 1) {
      ct = w.encryptor.encrypt_coefficients(w.coeffs, level, scale);
    } else {
      // Out of range: the encoder's path, which refuses it with its reason.
      he::Plaintext pt = impl_->encoder.encode(std::span<const double>(values), scale, level);
      ct = w.encryptor.encrypt(pt);
      wipe(pt.data().data(), pt.data().size() * sizeof(std::uint64_t));
    }
    return he::save(ctx, ct, true);
  };
  // The query (ct_message's layout: magic | version | u64 samples | u32
  // count | per ciphertext u64 length + bytes) is written in place: every
  // ciphertext serializes to the same length (seeded, one level), learnt
  // from the first, so each thread copies its ciphertexts straight to their
  // offsets while they are in cache, and no second copy of the hundreds of
  // megabytes of a batch query is made.
  // The first worker goes on as chunk 0's (its encryptor's precomputed
  // key constants are reused).
  const std::unique_ptr<Worker> first_worker = make_worker();
  const std::vector<std::uint8_t> first = encrypt_one(*first_worker, 0);
  const std::size_t len = first.size();
  constexpr std::size_t kHead = 4 + 4 + 8 + 4;
  Writer w;
  w.out.reserve(kHead);
  w.raw(kQueryMagic, 4);
  w.u32(kVersion);
  w.u64(static_cast<std::uint64_t>(samples));
  w.u32(static_cast<std::uint32_t>(count));
  w.out.resize(kHead + sz(count) * (8 + len));
  auto place = [&](std::int64_t i, const std::vector<std::uint8_t>& blob) {
    if (blob.size() != len) {
      throw_error(ErrorCategory::kInternal, "he client: ciphertexts of different lengths");
    }
    std::uint8_t* at = w.out.data() + kHead + sz(i) * (8 + len);
    for (int k = 0; k < 8; ++k) at[k] = static_cast<std::uint8_t>(std::uint64_t{len} >> (8 * k));
    std::memcpy(at + 8, blob.data(), len);
  };
  place(0, first);
  // The threads take the ciphertexts one at a time (a busy core does fewer).
  std::atomic<std::int64_t> next{1};
  const std::int64_t threads =
      impl_->pool ? std::min<std::int64_t>(impl_->pool->size(), count - 1) : 1;
  if (count > 1) {
    run_chunks(impl_->pool, threads, [&](std::int64_t begin, std::int64_t) {
      const std::unique_ptr<Worker> own = begin == 0 ? nullptr : make_worker();
      Worker& worker = begin == 0 ? *first_worker : *own;
      for (std::int64_t i = next++; i < count; i = next++) place(i, encrypt_one(worker, i));
    });
  }
  return std::move(w.out);
}

Tensor Client::decrypt(std::span<const std::uint8_t> response) const {
  const ClientSpec& s = impl_->spec;
  const he::CkksContext& ctx = *impl_->ctx;
  const std::int64_t out_n = numel(s.output_shape);
  std::int32_t max_ct = 0;
  for (std::int32_t c : s.out_ct) max_ct = std::max(max_ct, c);
  CtMessage m = parse_ct_message(
      response, kResponseMagic, "he response", s, ctx, impl_->pool,
      [&](std::int64_t samples, std::uint32_t count) -> std::string {
        if (s.mode == Mode::kBatch) {
          return count == static_cast<std::uint64_t>(out_n)
                     ? ""
                     : std::to_string(count) + " ciphertexts (expected " + std::to_string(out_n) +
                           ")";
        }
        if (count % static_cast<std::uint64_t>(samples) != 0 ||
            static_cast<std::int64_t>(count) / samples <= max_ct) {
          return std::to_string(count) + " ciphertexts for " + std::to_string(samples) +
                 " samples (at least " + std::to_string(max_ct + 1) + " per sample)";
        }
        return "";
      });
  const std::size_t per_sample_cts = m.cts.size() / sz(m.samples);
  // The ciphertexts the outputs are read from, each decrypted once.
  std::vector<char> needed(m.cts.size(), 0);
  for (std::int64_t b = 0; b < m.samples; ++b) {
    for (std::int64_t k = 0; k < out_n; ++k) {
      needed[s.mode == Mode::kBatch ? sz(k) : sz(b) * per_sample_cts + sz(s.out_ct[sz(k)])] = 1;
    }
  }
  std::vector<std::int64_t> todo;
  for (std::size_t i = 0; i < needed.size(); ++i) {
    if (needed[i]) todo.push_back(static_cast<std::int64_t>(i));
  }
  std::vector<std::vector<double>> decoded(m.cts.size());
  run_chunks(
      impl_->pool, static_cast<std::int64_t>(todo.size()),
      [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t t = begin; t < end; ++t) {
          const std::size_t i = sz(todo[sz(t)]);
          he::Plaintext pt;
          std::vector<std::complex<double>> v;
          try {
            pt = impl_->decryptor.decrypt(m.cts[i]);
            v = impl_->encoder.decode(pt);
          } catch (const Error& e) {
            bad(std::string("he response: ciphertext ") + std::to_string(i) + ": " + e.what());
          }
          decoded[i].resize(v.size());
          for (std::size_t k = 0; k < v.size(); ++k) decoded[i][k] = v[k].real();
          wipe(v);
          wipe(pt.data().data(), pt.data().size() * sizeof(std::uint64_t));
        }
      });
  Shape shape{m.samples};
  shape.insert(shape.end(), s.output_shape.begin(), s.output_shape.end());
  Tensor out(DType::kFloat32, shape);
  std::vector<double> y(sz(out_n));
  for (std::int64_t b = 0; b < m.samples; ++b) {
    for (std::int64_t k = 0; k < out_n; ++k) {
      if (s.mode == Mode::kBatch) {
        y[sz(k)] = decoded[sz(k)][sz(b)];
      } else {
        y[sz(k)] = decoded[sz(b) * per_sample_cts + sz(s.out_ct[sz(k)])][sz(s.out_slot[sz(k)])];
      }
    }
    apply_finish(s.finish, s.softmax_axis, s.output_shape, y);
    for (std::int64_t k = 0; k < out_n; ++k)
      out.f32()[sz(b * out_n + k)] = static_cast<float>(y[sz(k)]);
  }
  wipe(y);
  for (auto& d : decoded) wipe(d);
  return out;
}

// ---- server session ---------------------------------------------------------

ServerSession::ServerSession(const Program& program, std::span<const std::uint8_t> keys_message,
                             ThreadPool* pool)
    : program_(program), pool_(pool) {
  const ClientSpec& spec = program.spec();
  const auto ctx = program.context();
  if (!ctx) throw_error(ErrorCategory::kInternal, "he program without a context");
  Reader r(keys_message, "he keys message");
  r.magic(kKeysMagic);
  const auto relin = r.blob("relin keys");
  const auto galois = r.blob("Galois keys");
  r.end();
  try {
    if (spec.relin_keys) {
      if (relin.empty()) bad("he keys message: the program needs relinearization keys");
      keys_.relin = he::load_relin_keys(*ctx, relin);
    } else if (!relin.empty()) {
      bad("he keys message: relinearization keys the program does not use");
    }
    if (!galois.empty()) keys_.galois = he::load_galois_keys(*ctx, galois);
  } catch (const Error& e) {
    if (e.category() == ErrorCategory::kBadMessage) throw;
    bad(std::string("he keys message: ") + e.what());
  }
  std::set<std::uint64_t> want;
  for (int st : spec.galois_steps) want.insert(he::galois_element_for_rotation(st, ctx->n()));
  std::set<std::uint64_t> have;
  for (const auto& [g, entry] : keys_.galois.keys) have.insert(g);
  if (have != want) {
    bad("he keys message: Galois keys for " + std::to_string(have.size()) +
        " elements, the program needs exactly " + std::to_string(want.size()) +
        " (its rotation steps)");
  }
}

std::vector<std::uint8_t> ServerSession::answer(std::span<const std::uint8_t> query) const {
  const ClientSpec& s = program_.spec();
  const auto ctx = program_.context();
  const std::int64_t in_n = numel(s.input_shape);
  CtMessage m = parse_ct_message(
      query, kQueryMagic, "he query", s, *ctx, pool_,
      [&](std::int64_t samples, std::uint32_t count) -> std::string {
        const std::int64_t want = s.mode == Mode::kBatch ? in_n : samples * s.input_cts;
        return static_cast<std::int64_t>(count) == want
                   ? ""
                   : std::to_string(count) + " ciphertexts (expected " + std::to_string(want) + ")";
      });
  const int level = input_level_of(s, *ctx);
  const double scale = std::exp2(s.log2_input_scale);
  for (std::size_t i = 0; i < m.cts.size(); ++i) {
    const he::Ciphertext& c = m.cts[i];
    if (c.size() != 2 || c.level() != level || std::fabs(c.scale() - scale) > 1e-9 * scale) {
      bad("he query: ciphertext " + std::to_string(i) + " has size " + std::to_string(c.size()) +
          ", level " + std::to_string(c.level()) + ", scale 2^" +
          std::to_string(std::log2(c.scale())) + " (expected size 2, level " +
          std::to_string(level) + ", scale 2^" + std::to_string(s.log2_input_scale) + ")");
    }
  }
  std::vector<he::Ciphertext> out;
  try {
    if (s.mode == Mode::kBatch) {
      out = program_.evaluate(keys_, std::move(m.cts));
    } else {
      const std::size_t per = sz(s.input_cts);
      for (std::int64_t b = 0; b < m.samples; ++b) {
        std::vector<he::Ciphertext> in(
            std::make_move_iterator(m.cts.begin() + static_cast<std::ptrdiff_t>(sz(b) * per)),
            std::make_move_iterator(m.cts.begin() + static_cast<std::ptrdiff_t>(sz(b + 1) * per)));
        std::vector<he::Ciphertext> r = program_.evaluate(keys_, std::move(in));
        if (b > 0 && r.size() != out.size() / sz(b)) {
          throw_error(ErrorCategory::kInternal, "he program: a different output count per sample");
        }
        for (auto& c : r) out.push_back(std::move(c));
      }
    }
  } catch (const Error& e) {
    if (e.category() == ErrorCategory::kBadInput) bad(std::string("he query: ") + e.what());
    throw;
  }
  if (out.size() > kMaxCiphertexts)
    throw_error(ErrorCategory::kInternal, "he program: too many outputs");
  std::vector<std::vector<std::uint8_t>> blobs(out.size());
  run_chunks(pool_, static_cast<std::int64_t>(out.size()),
             [&](std::int64_t begin, std::int64_t end) {
               for (std::int64_t i = begin; i < end; ++i)
                 blobs[sz(i)] = he::save(*ctx, out[sz(i)], false);
             });
  return ct_message(kResponseMagic, static_cast<std::uint64_t>(m.samples), blobs);
}

}  // namespace blindfold::backends::heplan
