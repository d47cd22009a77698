// The `he` backend's front end: a Graph as a chain of layers that both modes
// (latency, batch) evaluate, with every constant folded where it costs no
// level. backends/he/program.h is the backend's overview.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/he/program.h"
#include "model/graph.h"

namespace blindfold::backends::heplan {

enum class LayerKind {
  kConv,     // 2-D convolution, groups 1: weight [oc, ic, kh, kw], bias [oc]
  kDense,    // weight [m, k] (out x in, row-major), bias [m]
  kPoly,     // y = x * (x + b) per channel (see below): one ct x ct product
  kAvgPool,  // 2-D average: a linear layer with public weights
};

/// One layer. Shapes are per sample, without the batch dimension. Flatten
/// and Reshape are no-ops on the element order (row-major) and are not
/// layers: the next layer's in_shape says what it reads.
struct Layer {
  LayerKind kind = LayerKind::kDense;
  std::string node;                  // the ONNX node it comes from (errors, describe)
  Shape in_shape, out_shape;         // per sample
  std::vector<double> weight, bias;  // kConv, kDense (bias may be empty: zero)
  // kConv, kAvgPool geometry (NCHW).
  std::int64_t kh = 0, kw = 0, sh = 1, sw = 1, dh = 1, dw = 1;
  std::int64_t pt = 0, pl = 0, pb = 0, pr = 0;
  bool count_include_pad = false;  // kAvgPool
  // kPoly: y = x * (x + b[ch]) with ch the channel (axis 0 of the sample:
  // b has in_shape[0] entries, or 1 to broadcast). A model's activation
  // a x^2 + b' x + c (per channel, a != 0) becomes x (x + b'/a) here, with
  // a folded into the next linear layer's weights (column-wise) and c into
  // its bias; a == 0 is linear and folded entirely. The front end refuses
  // an activation with no linear layer after it to absorb a and c (unless
  // a == 1 and c == 0).
  std::vector<double> b;
};

/// A model as the `he` backend sees it.
struct Chain {
  std::vector<Layer> layers;
  Shape input_shape, output_shape;  // per sample
  Finish finish = Finish::kNone;    // Sigmoid/Softmax at the end: applied by the client
  std::int64_t softmax_axis = -1;
};

/// Lowers `graph`: Conv, Gemm/MatMul (constant weights), Add/Sub/Mul/Div by
/// constants (folded into the neighbouring linear layer: an input
/// standardisation (x - mu) / sd before the first Gemm costs nothing),
/// BatchNormalization (folded), the polynomial activation patterns x*x,
/// x*x + c*x, a*x*x + b*x + c (any association the exporter produced),
/// AveragePool/GlobalAveragePool, Flatten/Reshape, and a final
/// Sigmoid/Softmax (the client applies it). Throws Error(kUnsupported)
/// naming the node otherwise; for Relu/MaxPool/other non-polynomial ops the
/// message says "CKKS evaluates polynomials only: use a model with
/// polynomial activations (e.g. models/fmnist-he.onnx)".
Chain lower_chain(const model::Graph& graph);
/// Whether lower_chain would succeed; never throws.
Support chain_support(const model::Graph& graph);

/// Multiplicative depth (levels consumed): 1 per Conv/Dense/AvgPool (a
/// plaintext product and a rescale) and 1 per Poly.
int chain_depth(const Chain& chain);

/// Interval bound propagation: the largest |value| after each layer
/// (result[i] for layer i) given |input| <= input_bound, from the L1 norms
/// of the weight rows, as backends/mpc does for comparison widths.
std::vector<double> chain_bounds(const Chain& chain, double input_bound);

/// The smallest ring degree N (4096..32768) whose HE-Standard bound at
/// 128-bit security (he/security.h) holds q0_bits + depth * scale_bits +
/// special_bits; chain {q0, scale x depth}, one special prime. Throws
/// Error(kInsecureParameters) when even N = 32768 does not fit, naming the
/// bits needed and the largest allowed.
he::CkksParameters choose_parameters(int depth, int scale_bits, int q0_bits, int special_bits);

/// The error budget both modes enforce: a plan is refused unless its
/// expected output error (6 sigma of the tracked noise + worst-case
/// rounding) is at most 2^-10, and at most 2^-10 of the output bound when
/// that bound is below 1 (outputs that small need proportionally less
/// noise). Then every sample whose two largest outputs differ by more than
/// twice the limit keeps its arg max.
double output_error_limit(double output_bound);

/// `v` with `precision` significant digits (the stream's default format),
/// as plans and refusals print their numbers.
std::string format_short(double v, int precision = 3);

/// The plaintext reference of a chain on one sample (numel(input_shape)
/// values, row-major), in double precision: the values the encrypted program
/// approximates, before the finish. Throws Error(kBadInput) on a wrong size.
std::vector<double> evaluate_chain(const Chain& chain, std::span<const float> sample);

/// Applies a finish in place to `values` (one sample of shape `shape`):
/// sigmoid per element, or softmax along `softmax_axis` of `shape` (negative:
/// from the end). The client's last step.
void apply_finish(Finish finish, std::int64_t softmax_axis, const Shape& shape,
                  std::span<double> values);

}  // namespace blindfold::backends::heplan
