// The MPC plan: a model lowered to steps over secret-shared values, as data.
// The server builds it from the Graph; the client and the helper receive it
// (serialized, without the weights: only their sizes) and run the same steps,
// so all parties issue the same mpc::Protocol calls in the same order.
//
// What the plan reveals to the client and the helper: the architecture (op
// types, shapes, kernel geometry) and the fixed-point parameters; never a
// weight. docs/THREAT_MODEL.md says so.
//
// Fixed point: every value between steps is at scale 2^f. Products (Conv,
// Gemm, Mul) are computed at 2^2f, biases added at 2^2f, then truncated.
//
// Comparison widths: every comparison (ReLU, the MaxPool tournament, the
// label policy's arg max) happens on values at scale 2^f and is given a width
// (mpc::Protocol::relu's `bits`). Without an input bound every width is 64,
// exact for any input. With a declared bound |input| <= B (the model's
// "blindfold.input_bound" metadata, or the server's option) the server, who
// holds the weights, bounds every value by interval propagation from B and
// sizes each comparison for it (comparison_bits); the client refuses to share
// an input outside the bound (check_input), so the promise of each width
// holds for every query. The widths and B travel in the plan: they reveal
// about the weights only a rounded log2 of per-layer bounds.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
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
  /// kRelu, kMaxPool: the comparison width (2..64, mpc::Protocol::relu):
  /// every compared value lies in [-2^(bits-1), 2^(bits-1)) at scale 2^f.
  /// kRelu compares its input; kMaxPool's tournament compares differences of
  /// two window elements (and, with relu_after, the window maximum). 64 for
  /// the other kinds (unused).
  int cmp_bits = 64;
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
  /// The bound |input| <= input_bound (real units) the widths are sized for;
  /// 0: none (every width 64). The client enforces it (check_input).
  double input_bound = 0;
  /// Output::kLabel: width of the arg max's pairwise comparisons (differences
  /// of two logits; the logit itself for a single output). The one-hot count
  /// that follows compares small integers at onehot_count_bits(k).
  int argmax_bits = 64;

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
/// the weight tensors (float, in registration order) through `weights`
/// (may be null). `input_bound` > 0 sizes the comparisons for inputs with
/// |x| <= input_bound (size_comparisons); 0 leaves every width at 64.
/// Throws Error(kBadInput) for a negative or non-finite bound.
Plan lower(const model::Graph& graph, int frac_bits, std::vector<Tensor>* weights, double input_bound);

/// The model's metadata key declaring the input bound.
inline constexpr const char* kInputBoundKey = "blindfold.input_bound";

/// The value of the graph's "blindfold.input_bound" metadata: a positive
/// finite decimal; 0 when absent. Anything else throws Error(kBadModel)
/// naming the key and the value.
double declared_input_bound(const model::Graph& graph);

/// Width of a comparison of values |v| <= bound (real units) at scale
/// 2^frac_bits: ceil(log2(bound * 2^f + 2^10)) + 2 (the sign and one bit of
/// margin), at least 12; 64 for a non-finite or negative bound, or one where
/// the formula exceeds 64.
int comparison_bits(double bound, int frac_bits);

/// Width of the label policy's one-hot count comparison over k classes:
/// count - (k-1) lies in [-(k-1), 0] (exact integers, unscaled), whatever
/// the input.
int onehot_count_bits(std::int64_t k);

/// Interval bound propagation over the plan's steps in real units: |value of
/// slot s| <= result[s] for every input with |x| <= input_bound, including
/// the fixed-point encoding of weights and input and the +-1 ulp of each
/// truncation (not a truncation's rare failure, which is wrong anyway).
/// Conv/Dense: max over output rows of sum_j (|w_ij| + 2^-f/2) * B + |b_i|;
/// ReLU, MaxPool: B; AvgPool: B (and rounding of 1/count); Add/Sub: sum;
/// Mul: product; MulWeights: max|c| * B; AddWeights: B + max|c|. `weights`
/// are the float tensors in registration order. Slots never written: 0.
std::vector<double> slot_bounds(const Plan& plan, const std::vector<Tensor>& weights, double input_bound);

/// Sets plan.input_bound and every width from slot_bounds (kRelu: the input's
/// bound; kMaxPool: twice it; arg max: twice the output's bound, or the bound
/// itself for a single output). input_bound 0: every width 64.
void size_comparisons(Plan& plan, const std::vector<Tensor>& weights, double input_bound);

/// The client's check before it shares an input batch: with a bound in the
/// plan, every value must be finite and |x| <= plan.input_bound, else
/// Error(kBadInput) naming the value, its index and the bound.
void check_input(const Plan& plan, std::span<const float> x);

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
