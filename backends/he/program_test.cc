// The he backend's messages: the client spec (round trip and every class of
// malformed spec refused), and Client/ServerSession end to end with
// test-double programs for both packings, bad queries and keys, and random
// bytes into every parser.
#include "backends/he/program.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <type_traits>

#include "backends/he/layers.h"
#include "core/error.h"
#include "he/ckks.h"
#include "model/onnx_import.h"

namespace blindfold::backends::heplan {
namespace {

// N = 4096 at 128-bit: {36, 30 | 36} = 102 bits <= 109.
he::CkksParameters small_params() {
  he::CkksParameters p;
  p.n = 4096;
  p.chain_bits = {36, 30};
  p.special_primes = 1;
  p.special_bits = 36;
  p.log2_scale = 30;
  return p;
}

// Latency: input [3, 5] in two ciphertexts (elements 0..7 in slots 0..7 of
// the first, 8..14 in slots 0..6 of the second); outputs 2 x[1], 2 x[3]
// (the first ciphertext doubled and rotated left by 1), 2 x[8], x[9]^2.
ClientSpec latency_spec() {
  ClientSpec s;
  s.mode = Mode::kLatency;
  s.params = small_params();
  s.galois_steps = {1};
  s.relin_keys = true;
  s.log2_input_scale = 30;
  s.input_shape = {3, 5};
  s.output_shape = {4};
  s.max_batch = 2;
  s.input_bound = 4;
  s.input_cts = 2;
  s.in_map.assign(2 * 2048, -1);
  for (int i = 0; i < 8; ++i) s.in_map[static_cast<std::size_t>(i)] = i;
  for (int i = 0; i < 7; ++i) s.in_map[static_cast<std::size_t>(2048 + i)] = 8 + i;
  s.out_ct = {0, 0, 1, 2};
  s.out_slot = {0, 2, 0, 1};
  s.output_error = 1e-4;
  s.output_bound = 16;
  return s;
}

// Batch: input [3]; outputs x0 * x1 and 0.5 x2, then the sigmoid.
ClientSpec batch_spec() {
  ClientSpec s;
  s.mode = Mode::kBatch;
  s.params = small_params();
  s.relin_keys = true;
  s.log2_input_scale = 30;
  s.input_shape = {3};
  s.output_shape = {2};
  s.max_batch = 2048;
  s.finish = Finish::kSigmoid;
  return s;
}

class DoubleProgram : public Program {
 public:
  explicit DoubleProgram(ClientSpec spec)
      : spec_(std::move(spec)), ctx_(he::CkksContext::create(spec_.params)) {}
  const ClientSpec& spec() const override { return spec_; }
  std::shared_ptr<const he::CkksContext> context() const override { return ctx_; }
  std::string describe() const override { return "test double"; }
  std::vector<he::Ciphertext> evaluate(const EvalKeys& keys,
                                       std::vector<he::Ciphertext> in) const override {
    he::Evaluator ev(ctx_);
    if (spec_.mode == Mode::kLatency) {
      if (in.size() != 2) throw_error(ErrorCategory::kBadInput, "count");
      he::Ciphertext a = ev.rescale(ev.multiply_scalar(in[0], 2.0));
      a = ev.rotate(a, 1, keys.galois);
      he::Ciphertext b = ev.rescale(ev.multiply_scalar(in[1], 2.0));
      he::Ciphertext c = ev.rescale(ev.relinearize(ev.multiply(in[1], in[1]), keys.relin));
      return {a, b, c};
    }
    if (in.size() != 3) throw_error(ErrorCategory::kBadInput, "count");
    he::Ciphertext p = ev.rescale(ev.relinearize(ev.multiply(in[0], in[1]), keys.relin));
    he::Ciphertext h = ev.rescale(ev.multiply_scalar(in[2], 0.5));
    return {p, h};
  }

 private:
  ClientSpec spec_;
  std::shared_ptr<const he::CkksContext> ctx_;
};

Tensor random_batch(std::mt19937& rng, std::int64_t b, Shape shape, float range = 1.0f) {
  Shape full{b};
  full.insert(full.end(), shape.begin(), shape.end());
  std::int64_t n = 1;
  for (auto d : full) n *= d;
  std::uniform_real_distribution<float> u(-range, range);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& f : v) f = u(rng);
  return Tensor::from_floats(full, std::move(v));
}

void expect_bad_message(const std::function<void()>& f, const std::string& what,
                        const std::string& needle = "") {
  try {
    f();
    ADD_FAILURE() << what << ": accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadMessage) << what << ": " << e.what();
    if (!needle.empty()) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << what << ": " << e.what();
    }
  }
}

TEST(HeProgram, ModeNames) {
  EXPECT_STREQ(mode_name(Mode::kLatency), "latency");
  EXPECT_STREQ(mode_name(Mode::kBatch), "batch");
  EXPECT_EQ(parse_mode("batch"), Mode::kBatch);
  EXPECT_EQ(parse_mode("latency"), Mode::kLatency);
  try {
    parse_mode("fast");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBadInput);
    EXPECT_NE(std::string(e.what()).find("latency, batch"), std::string::npos);
  }
}

TEST(HeProgram, SpecRoundTrip) {
  for (ClientSpec s : {latency_spec(), batch_spec()}) {
    s.softmax_axis = -1;
    s.input_level = 1;
    const std::vector<std::uint8_t> bytes = s.serialize();
    const ClientSpec p = ClientSpec::parse(bytes);
    EXPECT_EQ(p.serialize(), bytes);
    EXPECT_EQ(p.mode, s.mode);
    EXPECT_EQ(p.params.n, s.params.n);
    EXPECT_EQ(p.params.chain_bits, s.params.chain_bits);
    EXPECT_EQ(p.params.special_bits, s.params.special_bits);
    EXPECT_EQ(p.galois_steps, s.galois_steps);
    EXPECT_EQ(p.in_map, s.in_map);
    EXPECT_EQ(p.out_ct, s.out_ct);
    EXPECT_EQ(p.out_slot, s.out_slot);
    EXPECT_EQ(p.input_shape, s.input_shape);
    EXPECT_EQ(p.output_shape, s.output_shape);
    EXPECT_EQ(p.finish, s.finish);
    EXPECT_EQ(p.max_batch, s.max_batch);
    EXPECT_EQ(p.input_bound, s.input_bound);
    EXPECT_EQ(p.output_error, s.output_error);
  }
}

TEST(HeProgram, SpecTruncatedAtEveryLengthIsRefused) {
  for (const ClientSpec& s : {latency_spec(), batch_spec()}) {
    const std::vector<std::uint8_t> bytes = s.serialize();
    for (std::size_t len = 0; len < bytes.size(); ++len) {
      try {
        ClientSpec::parse(std::span<const std::uint8_t>(bytes.data(), len));
        ADD_FAILURE() << "accepted a spec truncated to " << len;
      } catch (const Error& e) {
        ASSERT_EQ(e.category(), ErrorCategory::kBadMessage) << len << ": " << e.what();
      }
    }
    std::vector<std::uint8_t> longer = bytes;
    longer.push_back(0);
    expect_bad_message([&] { ClientSpec::parse(longer); }, "trailing byte", "trailing");
  }
}

TEST(HeProgram, MalformedSpecsAreRefused) {
  const std::vector<std::uint8_t> good = latency_spec().serialize();
  {
    auto b = good;
    b[0] = 'X';
    expect_bad_message([&] { ClientSpec::parse(b); }, "magic", "magic");
    b = good;
    b[4] = 2;
    expect_bad_message([&] { ClientSpec::parse(b); }, "version", "version");
    b = good;
    b[8] = 7;
    expect_bad_message([&] { ClientSpec::parse(b); }, "mode", "mode");
  }
  struct Case {
    const char* name;
    std::function<void(ClientSpec&)> edit;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"insecure parameters",
       [](ClientSpec& s) {
         s.params.chain_bits = {60, 60};
       },
       "refused"},
      {"degree not a power of two", [](ClientSpec& s) { s.params.n = 4000; }, "ring degree"},
      {"degree too large", [](ClientSpec& s) { s.params.n = 1 << 20; }, "ring degree"},
      {"prime of 61 bits",
       [](ClientSpec& s) {
         s.params.chain_bits = {61, 30};
       },
       "bits"},
      {"no special prime", [](ClientSpec& s) { s.params.special_primes = 0; }, "special"},
      {"nan scale", [](ClientSpec& s) { s.params.log2_scale = std::nan(""); }, "not finite"},
      {"rotation 0", [](ClientSpec& s) { s.galois_steps = {0}; }, "rotation"},
      {"rotation = slots", [](ClientSpec& s) { s.galois_steps = {2048}; }, "rotation"},
      {"rotation = -slots", [](ClientSpec& s) { s.galois_steps = {-2048}; }, "rotation"},
      {"unsorted rotations",
       [](ClientSpec& s) {
         s.galois_steps = {2, 1};
       },
       "sorted"},
      {"duplicate rotations",
       [](ClientSpec& s) {
         s.galois_steps = {1, 1};
       },
       "sorted"},
      {"the same rotation twice",
       [](ClientSpec& s) {
         s.galois_steps = {-1, 2047};
       },
       "same rotation"},
      {"input level", [](ClientSpec& s) { s.input_level = 2; }, "input level"},
      {"input level -2", [](ClientSpec& s) { s.input_level = -2; }, "input level"},
      {"input scale", [](ClientSpec& s) { s.log2_input_scale = 0; }, "input scale"},
      {"zero dimension",
       [](ClientSpec& s) {
         s.input_shape = {3, 0};
       },
       "dimension"},
      {"huge shape",
       [](ClientSpec& s) {
         s.output_shape = {65536, 65536};
       },
       "2^26"},
      {"max batch 0", [](ClientSpec& s) { s.max_batch = 0; }, "max batch"},
      {"max batch above the slots", [](ClientSpec& s) { s.max_batch = 4096; }, "max batch"},
      {"negative input bound", [](ClientSpec& s) { s.input_bound = -1; }, "input bound"},
      {"infinite error", [](ClientSpec& s) { s.output_error = INFINITY; }, "not finite"},
      {"softmax axis",
       [](ClientSpec& s) {
         s.finish = Finish::kSoftmax;
         s.softmax_axis = 1;
       },
       "softmax"},
      {"no input ciphertext",
       [](ClientSpec& s) {
         s.input_cts = 0;
         s.in_map.clear();
       },
       "input ciphertexts"},
      {"input map size", [](ClientSpec& s) { s.in_map.pop_back(); }, "input map"},
      {"input map past the input", [](ClientSpec& s) { s.in_map[5] = 15; }, "input map entry"},
      {"input map below -1", [](ClientSpec& s) { s.in_map[5] = -2; }, "input map entry"},
      {"output map size",
       [](ClientSpec& s) {
         s.out_ct.pop_back();
         s.out_slot.pop_back();
       },
       "output map"},
      {"negative output ciphertext", [](ClientSpec& s) { s.out_ct[1] = -1; }, "output ciphertext"},
      {"output slot = slots", [](ClientSpec& s) { s.out_slot[1] = 2048; }, "output slot"},
      {"batch mode with maps", [](ClientSpec& s) { s.mode = Mode::kBatch; }, "batch mode"},
  };
  for (const Case& c : cases) {
    ClientSpec s = latency_spec();
    c.edit(s);
    expect_bad_message([&] { ClientSpec::parse(s.serialize()); }, c.name, c.needle);
  }
  // A rank or a count that the bytes cannot hold is refused before any allocation.
  auto b = good;
  b[8 + 1 + 8] = 0xff;  // chain length's low byte
  expect_bad_message([&] { ClientSpec::parse(b); }, "chain length");
}

// The client's keys, its query, the session's answer, the client's decrypt.
std::vector<float> round_trip(const Program& program, const Client& client, const Tensor& x,
                              ThreadPool* pool = nullptr) {
  const ServerSession session(program, client.keys_message(), pool);
  const Tensor y = client.decrypt(session.answer(client.encrypt(x)));
  return std::vector<float>(y.f32().begin(), y.f32().end());
}

TEST(HeProgram, LatencyRoundTripWithATestDouble) {
  DoubleProgram program(latency_spec());
  const Client client(ClientSpec::parse(program.spec().serialize()));
  std::mt19937 rng(1);
  for (std::int64_t b : {1, 2}) {
    const Tensor x = random_batch(rng, b, {3, 5}, 2.0f);
    const std::vector<float> y = round_trip(program, client, x);
    ASSERT_EQ(y.size(), static_cast<std::size_t>(4 * b));
    for (std::int64_t s = 0; s < b; ++s) {
      const float* in = x.f32().data() + s * 15;
      const float want[4] = {2 * in[1], 2 * in[3], 2 * in[8], in[9] * in[9]};
      for (int k = 0; k < 4; ++k)
        EXPECT_NEAR(y[static_cast<std::size_t>(s * 4 + k)], want[k], 1e-4) << s << " " << k;
    }
  }
  // Too many samples, the wrong shape, out of the declared bound: bad input.
  EXPECT_THROW(client.encrypt(random_batch(rng, 3, {3, 5})), Error);
  EXPECT_THROW(client.encrypt(random_batch(rng, 1, {15})), Error);
  EXPECT_THROW(client.encrypt(random_batch(rng, 1, {3, 5}, 100.0f)), Error);
}

TEST(HeProgram, BatchRoundTripWithATestDouble) {
  DoubleProgram program(batch_spec());
  ThreadPool pool(3);
  const Client serial(program.spec());
  const Client pooled(program.spec(), &pool);  // encrypts and decrypts in chunks
  std::mt19937 rng(2);
  for (std::int64_t b : {1, 7, 2048}) {
    const Client& client = b == 7 ? serial : pooled;
    const Tensor x = random_batch(rng, b, {3});
    const std::vector<float> y = round_trip(program, client, x, b == 7 ? nullptr : &pool);
    ASSERT_EQ(y.size(), static_cast<std::size_t>(2 * b));
    for (std::int64_t s = 0; s < b; ++s) {
      const float* in = x.f32().data() + s * 3;
      EXPECT_NEAR(y[static_cast<std::size_t>(2 * s)], 1 / (1 + std::exp(-in[0] * in[1])), 1e-4);
      EXPECT_NEAR(y[static_cast<std::size_t>(2 * s + 1)], 1 / (1 + std::exp(-0.5 * in[2])), 1e-4);
    }
  }
}

TEST(HeProgram, ServerSessionCannotExistWithoutKeys) {
  // A query before keys cannot reach a session: the only constructor takes
  // the keys message, and it refuses anything but the keys the program needs.
  static_assert(!std::is_default_constructible_v<ServerSession>);
  DoubleProgram program(latency_spec());
  expect_bad_message([&] { ServerSession(program, std::vector<std::uint8_t>{}); }, "empty keys");
  const Client client(program.spec());
  // A query where the keys belong is refused as a keys message.
  expect_bad_message(
      [&] {
        ServerSession(program, client.encrypt(Tensor(DType::kFloat32, {1, 3, 5})));
      },
      "query as keys", "magic");
}

TEST(HeProgram, KeysThatDoNotMatchAreRefusedWhereDetectable) {
  DoubleProgram program(latency_spec());
  const Client client(program.spec());
  const std::vector<std::uint8_t> keys = client.keys_message();
  for (std::size_t len = 0; len < keys.size(); len += std::max<std::size_t>(1, keys.size() / 997)) {
    expect_bad_message(
        [&] { ServerSession(program, std::span<const std::uint8_t>(keys.data(), len)); },
        "truncated keys " + std::to_string(len));
  }
  {  // Another context (other parameters): refused by the context id.
    ClientSpec other = latency_spec();
    other.params.chain_bits = {36, 31};
    expect_bad_message([&] { ServerSession(program, Client(other).keys_message()); },
                       "other context", "context");
  }
  {  // The wrong rotations: keys for step 2 only.
    ClientSpec other = latency_spec();
    other.galois_steps = {2};
    expect_bad_message([&] { ServerSession(program, Client(other).keys_message()); }, "wrong steps",
                       "Galois");
    other.galois_steps = {1, 2};
    expect_bad_message([&] { ServerSession(program, Client(other).keys_message()); }, "extra steps",
                       "Galois");
  }
  {  // No relinearization keys where the program multiplies ciphertexts.
    ClientSpec other = latency_spec();
    other.relin_keys = false;
    expect_bad_message([&] { ServerSession(program, Client(other).keys_message()); }, "no relin",
                       "relinearization");
  }
  {  // Another client's keys for the same parameters cannot be told apart
     // (same context id): the session runs, and the first client reads
     // garbage, never the answer.
    const Client mallory(program.spec());
    const ServerSession session(program, mallory.keys_message());
    std::mt19937 rng(4);
    const Tensor x = random_batch(rng, 1, {3, 5});
    const Tensor y = client.decrypt(session.answer(client.encrypt(x)));
    EXPECT_GT(std::fabs(y.f32()[0] - 2 * x.f32()[1]), 1.0);  // rotated under the wrong key
  }
}

TEST(HeProgram, BadQueriesAreRefusedAndTheSessionGoesOn) {
  DoubleProgram program(latency_spec());
  const Client client(program.spec());
  const ServerSession session(program, client.keys_message());
  std::mt19937 rng(5);
  const Tensor x = random_batch(rng, 1, {3, 5});
  const std::vector<std::uint8_t> query = client.encrypt(x);
  auto still_works = [&] {
    const Tensor y = client.decrypt(session.answer(client.encrypt(x)));
    EXPECT_NEAR(y.f32()[0], 2 * x.f32()[1], 1e-4);
  };
  // Truncated: every length up to the first ciphertext's body, then a stride.
  for (std::size_t len = 0; len < query.size(); len += len < 96 ? 1 : 389) {
    expect_bad_message([&] { session.answer(std::span<const std::uint8_t>(query.data(), len)); },
                       "truncated query " + std::to_string(len));
  }
  expect_bad_message(
      [&] { session.answer(std::span<const std::uint8_t>(query.data(), query.size() - 1)); },
      "query short by one");
  still_works();
  {  // Wrong counts: samples 0, samples above the maximum, one ciphertext short.
    auto q = query;
    q[8] = 0;
    expect_bad_message([&] { session.answer(q); }, "zero samples", "samples");
    q[8] = 3;
    expect_bad_message([&] { session.answer(q); }, "three samples", "samples");
    q = query;
    q[16] = 1;
    expect_bad_message([&] { session.answer(q); }, "one ciphertext", "expected 2");
    q[16] = 0xff;
    q[19] = 0xff;
    expect_bad_message([&] { session.answer(q); }, "huge count");
  }
  {  // A ciphertext for other parameters.
    ClientSpec other = latency_spec();
    other.params.chain_bits = {36, 31};
    const Client stranger(other);
    expect_bad_message([&] { session.answer(stranger.encrypt(x)); }, "other parameters", "context");
  }
  {  // Right context, wrong level.
    ClientSpec low = latency_spec();
    low.input_level = 0;
    const Client c(low);
    expect_bad_message([&] { session.answer(c.encrypt(x)); }, "other level", "level");
  }
  {  // A response is not a query; a query is not a response.
    const auto response = session.answer(query);
    expect_bad_message([&] { session.answer(response); }, "response as query", "magic");
    expect_bad_message([&] { client.decrypt(query); }, "query as response", "magic");
    for (std::size_t len = 0; len < response.size(); len += len < 96 ? 1 : 1031) {
      expect_bad_message(
          [&] { client.decrypt(std::span<const std::uint8_t>(response.data(), len)); },
          "truncated response " + std::to_string(len));
    }
  }
  still_works();
}

// Random bytes and random mutations of valid messages into every parser:
// an Error or a result, never a crash (the sanitizer builds make this a
// memory-safety check too).
TEST(HeProgram, RandomBytesNeverCrashAParser) {
  DoubleProgram program(latency_spec());
  const Client client(program.spec());
  const ServerSession session(program, client.keys_message());
  std::mt19937 rng(6);
  const std::vector<std::uint8_t> spec = program.spec().serialize();
  const std::vector<std::uint8_t> keys = client.keys_message();
  const std::vector<std::uint8_t> query = client.encrypt(random_batch(rng, 1, {3, 5}));
  const std::vector<std::uint8_t> response = session.answer(query);
  auto attempt = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error&) {
    }
  };
  auto feed = [&](const std::vector<std::uint8_t>& b) {
    attempt([&] { ClientSpec::parse(b); });
    attempt([&] { ServerSession s(program, b); });
    attempt([&] { session.answer(b); });
    attempt([&] { client.decrypt(b); });
  };
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::uint8_t> b(static_cast<std::size_t>(rng() % 64));
    for (auto& v : b) v = static_cast<std::uint8_t>(byte(rng));
    static const char* magics[] = {"BFHS", "BFHK", "BFHQ", "BFHR"};
    if (b.size() >= 8 && i % 2 == 0) {
      std::memcpy(b.data(), magics[i % 8 / 2], 4);
      b[4] = 1, b[5] = b[6] = b[7] = 0;
    }
    feed(b);
  }
  for (const std::vector<std::uint8_t>* base : {&spec, &keys, &query, &response}) {
    for (int i = 0; i < 150; ++i) {
      std::vector<std::uint8_t> b = *base;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        // Mostly in the headers, where the lengths and counts are.
        const std::size_t at =
            rng() % 2 ? rng() % std::min<std::size_t>(b.size(), 128) : rng() % b.size();
        b[at] = static_cast<std::uint8_t>(byte(rng));
      }
      feed(b);
    }
  }
  const Tensor y = client.decrypt(session.answer(query));
  EXPECT_EQ(y.numel(), 4);
}

}  // namespace
}  // namespace blindfold::backends::heplan

namespace blindfold::backends::heplan {
namespace {

std::string model_path(const std::string& name) {
  const char* r = std::getenv("BLINDFOLD_ROOT");
  return std::string(r ? r : ".") + "/models/" + name + ".onnx";
}

// Program::build dispatches to the modes; the specs they produce are
// accepted by the peer-side parser unchanged; supports() names the node.
TEST(HeProgram, RealProgramsBuildAndTheirSpecsParse) {
  const model::Graph he = model::import_onnx_file(model_path("fmnist-he"));
  for (Mode mode : {Mode::kLatency, Mode::kBatch}) {
    EXPECT_TRUE(Program::supports(he, mode).ok)
        << mode_name(mode) << ": " << Program::supports(he, mode).reason;
    ProgramOptions o;
    o.mode = mode;
    const std::unique_ptr<Program> p = Program::build(he, o);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->spec().mode, mode);
    EXPECT_EQ(p->spec().params.n, 16384u) << p->spec().params.describe();
    const std::vector<std::uint8_t> bytes = p->spec().serialize();
    EXPECT_EQ(ClientSpec::parse(bytes).serialize(), bytes) << mode_name(mode);
    EXPECT_FALSE(p->describe().empty());
  }
  const model::Graph lenet = model::import_onnx_file(model_path("fmnist-lenet"));
  for (Mode mode : {Mode::kLatency, Mode::kBatch}) {
    const Support s = Program::supports(lenet, mode);
    EXPECT_FALSE(s.ok);
    EXPECT_FALSE(s.node.empty());
    EXPECT_NE(s.reason.find("polynomial"), std::string::npos) << s.reason;
    ProgramOptions o;
    o.mode = mode;
    try {
      Program::build(lenet, o);
      ADD_FAILURE() << "lenet built";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kUnsupported);
    }
  }
}

// cancer-logreg end to end in latency mode with the real program: the
// client applies the sigmoid; the probability matches the plaintext one.
TEST(HeProgram, CancerLogregLatencyEndToEnd) {
  const model::Graph g = model::import_onnx_file(model_path("cancer-logreg"));
  ProgramOptions o;
  o.mode = Mode::kLatency;
  o.input_bound = 5000;  // raw features (the largest, "worst area", is about 4.3e3)
  const std::unique_ptr<Program> p = Program::build(g, o);
  const Client client(ClientSpec::parse(p->spec().serialize()));
  const ServerSession session(*p, client.keys_message());
  const Chain chain = lower_chain(g);
  // mean + 2 sd u per feature: a plausible raw sample.
  std::mt19937 rng(9);
  std::vector<float> mean(30, 0.0f), sd(30, 1.0f);
  for (const model::Node& n : g.nodes) {
    for (int v : n.inputs) {
      if (v < 0 || !g.value(v).is_constant() || g.value(v).constant->numel() != 30) continue;
      if (n.op == model::OpType::kSub) mean = g.value(v).constant->to_float_vector();
      if (n.op == model::OpType::kDiv) sd = g.value(v).constant->to_float_vector();
    }
  }
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<float> x(30);
    for (std::size_t i = 0; i < 30; ++i) x[i] = std::max(0.0f, mean[i] + sd[i] * u(rng));
    std::vector<double> want = evaluate_chain(chain, x);
    apply_finish(chain.finish, chain.softmax_axis, chain.output_shape, want);
    const Tensor y =
        client.decrypt(session.answer(client.encrypt(Tensor::from_floats({1, 30}, x))));
    ASSERT_EQ(y.numel(), 1);
    EXPECT_NEAR(y.f32()[0], want[0], 1e-4);
  }
}

}  // namespace
}  // namespace blindfold::backends::heplan
