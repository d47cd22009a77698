#include "backends/he/he_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <new>

#include "core/error.h"

namespace blindfold::backends {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

heplan::Mode mode_of(const BackendOptions& options) {
  return heplan::parse_mode(options.he_mode.empty() ? std::string_view("latency")
                                                    : std::string_view(options.he_mode));
}

// Largest message either side accepts on a session channel: a keys message
// carries one key-switching key per rotation (seeded: half of each), which
// at N = 32768 with dozens of rotations reaches hundreds of MB.
constexpr std::uint64_t kMaxSessionMessageBytes = std::uint64_t{1} << 30;

constexpr std::uint8_t kReplyOk = 0, kReplyRefused = 1;
constexpr std::size_t kReplyHeader = 9;  // u8 status | u64 server microseconds

bool has_magic(const net::Bytes& m, const char (&magic)[5]) {
  return m.size() >= 4 && std::memcmp(m.data(), magic, 4) == 0;
}

net::Bytes reply(std::uint8_t status, Clock::time_point t0, std::span<const std::uint8_t> body) {
  const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
  net::Bytes r;
  r.reserve(kReplyHeader + body.size());
  r.push_back(status);
  for (int i = 0; i < 8; ++i) r.push_back(static_cast<std::uint8_t>(us >> (8 * i)));
  r.insert(r.end(), body.begin(), body.end());
  return r;
}

// A reply's status, server time and body; a refusal becomes an Error.
struct Reply {
  double server_ms = 0;
  std::span<const std::uint8_t> body;
};
Reply parse_reply(const net::Bytes& r, const char* what) {
  if (r.size() < kReplyHeader || (r[0] != kReplyOk && r[0] != kReplyRefused)) {
    throw_error(ErrorCategory::kBadMessage, std::string("malformed reply to the ") + what + " (" +
                                                std::to_string(r.size()) + " bytes)");
  }
  std::uint64_t us = 0;
  for (int i = 0; i < 8; ++i)
    us |= static_cast<std::uint64_t>(r[static_cast<std::size_t>(1 + i)]) << (8 * i);
  const std::span<const std::uint8_t> body(r.data() + kReplyHeader, r.size() - kReplyHeader);
  if (r[0] == kReplyRefused) {
    std::string line(body.begin(), body.end());
    for (char& c : line) {
      if (c == '\n' || c == '\r' || static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    if (line.size() > 1000) line = line.substr(0, 1000) + "...";
    throw_error(ErrorCategory::kPeerFailure,
                std::string("the server refused the ") + what + ": " + line);
  }
  return {static_cast<double>(us) / 1000.0, body};
}

std::string one_line(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

}  // namespace

TrustModel he_trust_model() {
  TrustModel t;
  t.summary =
      "CKKS, semi-honest server: it sees only ciphertexts (input and output); the client learns "
      "the architecture";
  t.input = "only the client; the server receives CKKS ciphertexts under the client's key";
  t.weights =
      "only the server; the client learns the architecture (layer shapes, parameters) and the "
      "output, never a weight";
  t.output = "only the client: the server computes it encrypted and never sees it";
  t.trusted =
      "the server follows the protocol (it can return a wrong result undetected); "
      "no circuit privacy: the response's noise is not flooded";
  t.adversary = "semi-honest server";
  t.security_bits = 128;  // RLWE, HomomorphicEncryption.org Standard (he/security.h)
  return t;
}

HeBackend::HeBackend() = default;
HeBackend::~HeBackend() = default;

Support HeBackend::supports(const model::Graph& graph) const {
  return heplan::Program::supports(graph, heplan::Mode::kLatency);
}

Support HeBackend::supports_with(const model::Graph& graph, const BackendOptions& options) const {
  heplan::Mode mode;
  try {
    mode = mode_of(options);
  } catch (const Error& e) {
    return Support::no("", e.what());
  }
  return heplan::Program::supports(graph, mode);
}

void HeBackend::setup(const model::Graph& graph, const BackendOptions& options) {
  const auto t0 = Clock::now();
  session_.reset();
  client_.reset();
  program_.reset();
  heplan::ProgramOptions po;
  po.mode = mode_of(options);
  if (!std::isfinite(options.input_bound) || options.input_bound < 0) {
    throw_error(ErrorCategory::kBadInput,
                "--input-bound must be a positive finite number (0: the model's "
                "blindfold.input_bound metadata)");
  }
  po.input_bound = options.input_bound;
  own_pool_.reset();
  if (options.threads != 0) own_pool_ = std::make_unique<ThreadPool>(options.threads);
  po.pool = own_pool_ ? own_pool_.get() : &ThreadPool::global();
  program_ = heplan::Program::build(graph, po);
  // The client gets the spec as the server would send it.
  const std::vector<std::uint8_t> spec = program_->spec().serialize();
  client_ = std::make_unique<heplan::Client>(heplan::ClientSpec::parse(spec), po.pool);
  const std::vector<std::uint8_t> keys = client_->keys_message();
  session_ = std::make_unique<heplan::ServerSession>(*program_, keys, po.pool);
  key_bytes_ = static_cast<std::int64_t>(keys.size());
  setup_cost_.ms = ms_since(t0);
  setup_cost_.bytes = static_cast<std::int64_t>(spec.size() + keys.size());
}

const heplan::Program& HeBackend::program() const {
  if (!program_) throw_error(ErrorCategory::kInternal, "he: program() before setup");
  return *program_;
}

const heplan::ClientSpec& HeBackend::spec() const {
  return program().spec();
}

std::vector<Tensor> split_queries(const Tensor& x, std::int64_t max_batch) {
  if (x.dtype() != DType::kFloat32)
    throw_error(ErrorCategory::kBadInput, "he: the input must be float32");
  if (x.rank() < 1 || x.dim(0) < 1) {
    throw_error(ErrorCategory::kBadInput,
                "he: the input needs a batch dimension and at least one sample");
  }
  if (max_batch < 1) throw_error(ErrorCategory::kInternal, "he: a query holds at least one sample");
  const std::int64_t n = x.dim(0);
  const std::int64_t per = x.numel() / n;
  const auto src = x.f32();
  std::vector<Tensor> out;
  for (std::int64_t at = 0; at < n; at += max_batch) {
    const std::int64_t k = std::min(max_batch, n - at);
    Shape shape = x.shape();
    shape[0] = k;
    out.push_back(Tensor::from_floats(
        shape, std::vector<float>(src.begin() + at * per, src.begin() + (at + k) * per)));
  }
  return out;
}

Tensor concat_rows(const std::vector<Tensor>& parts) {
  if (parts.empty()) throw_error(ErrorCategory::kInternal, "concat_rows: nothing to concatenate");
  if (parts.size() == 1) return parts[0];
  Shape shape = parts[0].shape();
  std::vector<float> all;
  std::int64_t rows = 0;
  for (const Tensor& t : parts) {
    if (t.rank() != shape.size() ||
        !std::equal(t.shape().begin() + 1, t.shape().end(), shape.begin() + 1)) {
      throw_error(ErrorCategory::kInternal, "concat_rows: parts of different shapes");
    }
    rows += t.dim(0);
    all.insert(all.end(), t.f32().begin(), t.f32().end());
  }
  shape[0] = rows;
  return Tensor::from_floats(shape, std::move(all));
}

std::vector<Tensor> HeBackend::infer(const std::vector<Tensor>& inputs, RunMetrics* metrics) {
  if (!session_) throw_error(ErrorCategory::kInternal, "he: infer before setup");
  if (inputs.size() != 1) throw_error(ErrorCategory::kBadInput, "he: the model takes one input");
  const std::vector<Tensor> queries = split_queries(inputs[0], spec().max_batch);
  double enc_ms = 0, eval_ms = 0, dec_ms = 0;
  std::int64_t query_bytes = 0, response_bytes = 0;
  std::vector<Tensor> outs;
  const auto t0 = Clock::now();
  for (const Tensor& q : queries) {
    const auto a = Clock::now();
    const std::vector<std::uint8_t> query = client_->encrypt(q);
    const auto b = Clock::now();
    const std::vector<std::uint8_t> response = session_->answer(query);
    const auto c = Clock::now();
    outs.push_back(client_->decrypt(response));
    const auto d = Clock::now();
    enc_ms += std::chrono::duration<double, std::milli>(b - a).count();
    eval_ms += std::chrono::duration<double, std::milli>(c - b).count();
    dec_ms += std::chrono::duration<double, std::milli>(d - c).count();
    query_bytes += static_cast<std::int64_t>(query.size());
    response_bytes += static_cast<std::int64_t>(response.size());
  }
  const double total_ms = ms_since(t0);
  if (metrics) {
    RunMetrics m;
    m.online.ms = total_ms;
    m.online.bytes = query_bytes + response_bytes;
    m.rounds = static_cast<std::int64_t>(queries.size());
    m.detail = {{"encrypt_ms", enc_ms},
                {"evaluate_ms", eval_ms},
                {"decrypt_ms", dec_ms},
                {"key_bytes", static_cast<double>(key_bytes_)},
                {"query_bytes", static_cast<double>(query_bytes)},
                {"response_bytes", static_cast<double>(response_bytes)},
                {"queries", static_cast<double>(queries.size())},
                {"max_batch", static_cast<double>(spec().max_batch)}};
    *metrics = std::move(m);
  }
  return {concat_rows(outs)};
}

// ---- session protocol --------------------------------------------------------

ServedSession serve_session(net::Channel& ch, const heplan::Program& program,
                            const std::function<void(const std::string&)>& on_refused,
                            ThreadPool* pool) {
  ch.set_max_message_bytes(kMaxSessionMessageBytes);
  ch.send("he/spec", program.spec().serialize());
  ch.flush();
  std::unique_ptr<heplan::ServerSession> session;
  ServedSession s;
  for (;;) {
    const net::Bytes msg = ch.recv("he/msg");
    const auto t0 = Clock::now();
    auto refuse = [&](const std::string& line) {
      const std::string l = one_line(line);
      ch.send("he/reply", reply(kReplyRefused, t0,
                                std::span<const std::uint8_t>(
                                    reinterpret_cast<const std::uint8_t*>(l.data()), l.size())));
      ch.flush();
      ++s.refused;
      if (on_refused) on_refused(l);
    };
    // Runs `fn` (the work, no channel use), turning its failure into a
    // refusal; true when it succeeded.
    auto guarded = [&](const char* what, const std::function<void()>& fn) {
      try {
        fn();
        return true;
      } catch (const Error& e) {
        refuse(std::string(category_name(e.category())) + ": " + what + " refused: " + e.what());
      } catch (const std::bad_alloc&) {
        refuse(std::string("out of memory: ") + what + " refused");
      }
      return false;
    };
    if (has_magic(msg, "BFHB")) {
      if (msg.size() == 4) return s;
      refuse("bad message: an end-of-session message of " + std::to_string(msg.size()) +
             " bytes (4 expected)");
    } else if (has_magic(msg, "BFHK")) {
      // A refused keys message changes nothing: earlier keys stay in use.
      if (guarded("keys message",
                  [&] { session = std::make_unique<heplan::ServerSession>(program, msg, pool); })) {
        ch.send("he/reply", reply(kReplyOk, t0, {}));
        ch.flush();
      }
    } else if (has_magic(msg, "BFHQ")) {
      if (!session) {
        refuse("bad message: a query before the keys message (send the keys first)");
        continue;
      }
      std::vector<std::uint8_t> response;
      if (guarded("query", [&] { response = session->answer(msg); })) {
        std::uint64_t samples = 0;  // answer() validated the header
        for (int i = 0; i < 8; ++i)
          samples |= static_cast<std::uint64_t>(msg[static_cast<std::size_t>(8 + i)]) << (8 * i);
        ch.send("he/reply", reply(kReplyOk, t0, response));
        ch.flush();
        ++s.queries;
        s.samples += static_cast<std::int64_t>(samples);
      }
    } else {
      refuse("bad message: unknown message of " + std::to_string(msg.size()) +
             " bytes (expected a keys message \"BFHK\", a query \"BFHQ\" or the end \"BFHB\")");
    }
  }
}

RemoteSession::RemoteSession(net::Channel& ch, ThreadPool* pool) : ch_(ch) {
  ch_.set_max_message_bytes(kMaxSessionMessageBytes);
  const net::Bytes spec = ch_.recv("he/spec");
  spec_bytes_ = static_cast<std::int64_t>(spec.size());
  const auto t0 = Clock::now();
  client_ = std::make_unique<heplan::Client>(heplan::ClientSpec::parse(spec), pool);
  const std::vector<std::uint8_t> keys = client_->keys_message();
  key_bytes_ = static_cast<std::int64_t>(keys.size());
  ch_.send("he/msg", keys);
  ch_.flush();
  parse_reply(ch_.recv("he/reply"), "keys message");
  setup_ms_ = ms_since(t0);
}

RemoteSession::~RemoteSession() = default;

const heplan::ClientSpec& RemoteSession::spec() const {
  return client_->spec();
}

Tensor RemoteSession::run(const Tensor& batch, Query* q) {
  Query r;
  r.samples = batch.rank() > 0 ? batch.dim(0) : 0;
  const auto a = Clock::now();
  const std::vector<std::uint8_t> query = client_->encrypt(batch);
  const auto b = Clock::now();
  ch_.send("he/msg", query);
  ch_.flush();
  const net::Bytes raw = ch_.recv("he/reply");
  const auto c = Clock::now();
  const Reply rep = parse_reply(raw, "query");
  Tensor y = client_->decrypt(rep.body);
  const auto d = Clock::now();
  r.encrypt_ms = std::chrono::duration<double, std::milli>(b - a).count();
  r.round_trip_ms = std::chrono::duration<double, std::milli>(c - b).count();
  r.server_ms = rep.server_ms;
  r.decrypt_ms = std::chrono::duration<double, std::milli>(d - c).count();
  r.query_bytes = static_cast<std::int64_t>(query.size());
  r.response_bytes = static_cast<std::int64_t>(rep.body.size());
  if (q) *q = r;
  return y;
}

void RemoteSession::finish() {
  ch_.send("he/msg", std::span<const std::uint8_t>(
                         reinterpret_cast<const std::uint8_t*>(kHeEndOfSession), 4));
  ch_.flush();
}

}  // namespace blindfold::backends
