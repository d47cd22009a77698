// The `he` backend's program: a model lowered to a CKKS computation that the
// server runs on the client's ciphertexts (non-interactive: one message up,
// one down per query; the server never holds the secret key).
//
// Two modes (issue 6):
//  - latency: one sample per query, packed in the slots of a few
//    ciphertexts; dense layers by the diagonal method with baby-step /
//    giant-step and hoisted rotations (Halevi and Shoup 2014/2018; Juvekar,
//    Vaikuntanathan, Chandrakasan, "GAZELLE", USENIX Security 2018); the
//    first convolution on a packing the client prepares (see the mode's
//    source for the layout and its reference).
//  - batch: one sample per slot position, every weight a scalar (Gilad-
//    Bachrach et al., "CryptoNets", ICML 2016): throughput.
//
// Parts:
//  - ClientSpec: what the server sends the client once per session (no
//    weights): the CKKS parameters chosen for the model's depth at 128-bit
//    security, the rotations it needs keys for, how to pack an input and
//    read an output. Validated on receipt like any message from a peer.
//  - Program: the server's side, built from a Graph (holds the encoded
//    weights); evaluate() maps input ciphertexts to output ciphertexts.
//  - Client: the client's side: keys (the secret key never leaves it),
//    encrypt a batch into one query message, decrypt a response.
//  - ServerSession: the server's side of one session: the client's keys,
//    then any number of queries, each answered by one message.
//
// Wire formats (all little-endian; every loader checks every length):
//  - keys message:  "BFHK" | u32 version (1) | u64 length | relin keys
//                   (he::save, seeded) | u64 length | Galois keys (seeded;
//                   exactly spec.galois_steps, no conjugation)
//  - query:         "BFHQ" | u32 version (1) | u64 samples | u32 count |
//                   count x (u64 length | he::save(ciphertext, seeded))
//  - response:      "BFHR" | u32 version (1) | u64 samples | u32 count |
//                   count x (u64 length | he::save(ciphertext))
//    Latency mode: a query of B samples holds B x input_cts ciphertexts,
//    sample by sample, and the server evaluates each sample on its own; the
//    response holds the B results one after the other (the same count per
//    sample). Batch mode: numel(input_shape) ciphertexts up,
//    numel(output_shape) down, whatever B.
//  - the spec:      "BFHS" | u32 version (1) | the fields of ClientSpec in
//                   declaration order (program.cc, ClientSpec::serialize).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "he/ckks.h"
#include "model/graph.h"

namespace blindfold::backends::heplan {

enum class Mode { kLatency, kBatch };
/// "latency", "batch".
const char* mode_name(Mode mode);
/// Throws Error(kBadInput) naming the accepted values.
Mode parse_mode(std::string_view name);

/// Plaintext op the client applies to the decrypted output.
enum class Finish { kNone, kSigmoid, kSoftmax };

/// What the client needs to run a session. No weights.
struct ClientSpec {
  Mode mode = Mode::kLatency;
  he::CkksParameters params;        // 128-bit per the HE Standard (checked on receipt)
  std::vector<int> galois_steps;    // the rotations the server uses, sorted, distinct
  bool relin_keys = true;           // whether the program multiplies ciphertexts
  double log2_input_scale = 40;     // inputs are encoded at 2^this
  int input_level = -1;             // level inputs are encrypted at (-1: the top)
  Shape input_shape, output_shape;  // per sample (without the batch dimension)
  std::int64_t max_batch = 1;       // samples per query (batch mode: the slot count)
  double input_bound = 0;           // |input| the error budget assumes (0: none declared)
  Finish finish = Finish::kNone;
  std::int64_t softmax_axis = -1;

  // Latency mode. Input ciphertext c, slot s holds input element
  // in_map[c * slots + s] (-1: zero); output element k is slot out_slot[k]
  // of response ciphertext out_ct[k].
  std::int32_t input_cts = 0;
  std::vector<std::int32_t> in_map;
  std::vector<std::int32_t> out_ct, out_slot;
  // Batch mode: query ciphertext i holds input element i of every sample
  // (sample b in slot b, numel(input_shape) ciphertexts); response
  // ciphertext k holds output element k of every sample. input_cts is 0 or
  // numel(input_shape) and the maps are empty (parse() refuses others).

  /// The plan's error budget: the largest absolute error expected at the
  /// output (CKKS noise and encoding), and the largest output magnitude.
  double output_error = 0;
  double output_bound = 0;

  /// Binary (compact for the maps); parse() validates every field of a spec
  /// from a peer (parameters, steps, shapes, maps in range) and throws
  /// Error(kBadMessage) naming the problem.
  std::vector<std::uint8_t> serialize() const;
  static ClientSpec parse(std::span<const std::uint8_t> bytes);
};

/// Keys the server evaluates with (from the client's keys message).
struct EvalKeys {
  he::RelinKeys relin;
  he::GaloisKeys galois;
};

struct ProgramOptions {
  Mode mode = Mode::kLatency;
  ThreadPool* pool = nullptr;  // evaluation threads (nullptr: one thread)
  /// |input| bound for the magnitude and error analysis; 0: the model's
  /// "blindfold.input_bound" metadata; without one the plan assumes 1 and
  /// says so in describe().
  double input_bound = 0;
};

/// The server's program. Immutable after build(); evaluate() is const and
/// may run for several sessions at once.
class Program {
 public:
  virtual ~Program() = default;
  /// Lowers `graph`. Throws Error(kUnsupported) naming the node for anything
  /// the mode cannot evaluate (ReLU, MaxPool, ...: "use a model with
  /// polynomial activations, e.g. models/fmnist-he.onnx"), and
  /// Error(kInsecureParameters or kUnsupported) when no parameter set at
  /// 128-bit security fits the depth and the error budget.
  static std::unique_ptr<Program> build(const model::Graph& graph, const ProgramOptions& options);
  /// Whether build() would succeed for `mode`; never throws.
  static Support supports(const model::Graph& graph, Mode mode);

  virtual const ClientSpec& spec() const = 0;
  virtual std::shared_ptr<const he::CkksContext> context() const = 0;
  /// Human-readable plan: mode, N and the modulus chain (and why that N: the
  /// depth, the smallest N at 128-bit), layers with their level, rotations
  /// and Galois keys, the error budget.
  virtual std::string describe() const = 0;
  /// Input ciphertexts (as the spec says) -> output ciphertexts. Throws
  /// Error(kBadInput) for ciphertexts of the wrong count, context, level or
  /// scale.
  virtual std::vector<he::Ciphertext> evaluate(const EvalKeys& keys,
                                               std::vector<he::Ciphertext> inputs) const = 0;
};

/// The client: owns the secret key.
class Client {
 public:
  /// Builds the context (refusing parameters below 128-bit security) and
  /// generates the secret key from the OS CSPRNG and the evaluation keys.
  /// `pool` (not owned; must outlive the client; nullptr: the calling thread
  /// only) encodes, encrypts and decrypts the ciphertexts of a query in
  /// parallel, one encryptor per chunk. Throws Error(kBadMessage) for a spec
  /// that ClientSpec::parse would refuse.
  explicit Client(ClientSpec spec, ThreadPool* pool = nullptr);
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  const ClientSpec& spec() const;
  /// The keys message (seeded: the uniform halves travel as seeds).
  std::vector<std::uint8_t> keys_message() const;
  /// One query: `batch` is [B, input_shape...] with 1 <= B <= max_batch.
  /// Encrypts with the secret key (seeded ciphertexts: half the size).
  std::vector<std::uint8_t> encrypt(const Tensor& batch) const;
  /// The response to a query of `samples` samples -> [samples,
  /// output_shape...], with the spec's finish applied. Throws
  /// Error(kBadMessage) for a malformed response.
  Tensor decrypt(std::span<const std::uint8_t> response) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The server's side of one session.
class ServerSession {
 public:
  /// Parses and checks the client's keys message against the program's spec
  /// (the context, exactly the Galois steps needed). Throws
  /// Error(kBadMessage) otherwise. There is no session without keys, so a
  /// query before keys has nowhere to go (the transport refuses it).
  /// `pool` (not owned, may be null) loads a query's ciphertexts and saves
  /// the response's in parallel; evaluation uses the program's own pool.
  ServerSession(const Program& program, std::span<const std::uint8_t> keys_message,
                ThreadPool* pool = nullptr);
  /// Answers one query. Throws Error(kBadMessage) for a malformed query
  /// (wrong magic, count, sample count, a ciphertext of other parameters,
  /// truncated bytes); the session stays usable.
  std::vector<std::uint8_t> answer(std::span<const std::uint8_t> query) const;

 private:
  const Program& program_;
  ThreadPool* pool_ = nullptr;
  EvalKeys keys_;
};

}  // namespace blindfold::backends::heplan
