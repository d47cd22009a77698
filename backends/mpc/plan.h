// The MPC plan: a model lowered to steps over secret-shared values, as data.
// The server builds it from the Graph; the client and the helper receive it
// (serialized, without the weights: only their sizes) and run the same steps,
// so all parties issue the same mpc::Protocol calls in the same order.
//
// What the plan reveals to the client and the helper: the architecture (op
// types, shapes, kernel geometry) and the fixed-point parameters; never a
// weight. docs/THREAT_MODELS.md says so.
//
// Fixed point: every value between steps is at scale 2^f. Products (Conv,
// Gemm, Mul) are computed at 2^2f, biases added at 2^2f, then truncated.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/tensor.h"
#include "model/graph.h"
#include "mpc/protocol.h"

namespace blindfold::backends::mpcplan {

enum class StepKind {
  kConv,        // 2-D convolution (groups 1) with secret weights (+ bias)
  kDense,       // x [B,K] -> [B,M] with secret W (M x K) (+ bias)
  kRelu,
  kMaxPool,     // 2-D, optional ReLU after (Relu->MaxPool reordered: equal, cheaper)
  kAvgPool,     // 2-D average (GlobalAveragePool too)
  kMul,         // shared x shared, same shape
  kAdd,         // shared + shared, same shape
  kSub,         // shared - shared, same shape
  kMulWeights,  // shared x secret constant (ONNX broadcast), also Div by a constant
  kAddWeights,  // shared + secret constant (ONNX broadcast), also Sub of a constant
};

/// 2-D window geometry (NCHW).
struct Geometry {
  std::int64_t c = 0, h = 0, w = 0;       // input channels and size
  std::int64_t oc = 0, oh = 0, ow = 0;    // output channels and size
  std::int64_t kh = 0, kw = 0, sh = 1, sw = 1, dh = 1, dw = 1;
  std::int64_t pt = 0, pl = 0, pb = 0, pr = 0;  // pads: top, left, bottom, right
  bool count_include_pad = false;               // AveragePool
};

struct Step {
  StepKind kind = StepKind::kRelu;
  std::string node;           // the ONNX node it comes from (errors, printing)
  int in0 = -1, in1 = -1;     // value slots
  int out = -1;
  int weight = -1, bias = -1; // weight handles (registration order)
  Geometry g;                 // kConv, kMaxPool, kAvgPool
  std::int64_t k = 0, m = 0;  // kDense: K inputs, M outputs
  bool relu_after = false;    // kMaxPool
  /// kMulWeights / kAddWeights: per-sample shape of the shared input and the
  /// shape of the constant (broadcast to it).
  Shape in_shape, w_shape;
};

/// A weight tensor the server registers, in order.
struct WeightSpec {
  std::string node;
  std::int64_t size = 0;
  int scale_bits = 0;  // fixed-point scale the server encodes it at (f or 2f)
};

/// What the client does with the revealed output.
enum class Finish { kNone, kSigmoid, kSoftmax };

struct Plan {
  int frac_bits = 12;
  int slots = 0;                    // value slots
  int input_slot = 0;
  Shape input_shape;                // per sample (without the batch dimension)
  int output_slot = 0;
  Shape output_shape;               // per sample
  Finish finish = Finish::kNone;    // plaintext op the client applies after reveal
  std::int64_t softmax_axis = -1;
  std::vector<WeightSpec> weights;
  std::vector<Step> steps;

  /// JSON (no weights); parse() validates every field of a plan from a peer
  /// and throws Error(kBadMessage) naming the problem.
  std::string serialize() const;
  static Plan parse(const std::string& json);
  /// Human-readable listing (one step per line) with the estimated rounds.
  std::string describe() const;
};

/// Whether the graph can be lowered; never throws.
Support lowerable(const model::Graph& graph);

/// Lowers `graph`; throws Error(kUnsupported) naming the node. Also returns
/// the weight tensors (float, in registration order) through `weights`.
Plan lower(const model::Graph& graph, int frac_bits, std::vector<Tensor>* weights);

/// Output policy: what the client learns.
enum class Output { kLogits, kLabel };

/// Registers the weights in order: the server passes the float tensors,
/// the others nullptr. Returns the handles.
std::vector<int> register_weights(mpc::Protocol& p, const Plan& plan,
                                  const std::vector<Tensor>* weights);

/// Runs one query of `batch` samples. `input` is the batch tensor on the
/// client and nullptr elsewhere. Returns the output tensor on the client
/// ([batch, ...output_shape]; for Output::kLabel a one-hot tensor), an
/// empty optional elsewhere.
std::optional<Tensor> run(mpc::Protocol& p, const Plan& plan, const std::vector<int>& handles,
                          std::int64_t batch, const Tensor* input, Output output);

}  // namespace blindfold::backends::mpcplan
