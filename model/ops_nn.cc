// Neural-network ops (Conv, pooling, Gemm/MatMul, normalisations, Softmax, ReduceMean):
// ONNX shape inference with full validation, and float32 kernels (SIMD chosen at run time).

// Eigen must not start threads of its own: parallelism comes from the
// Blindfold pool, and two pools on the same cores would oversubscribe them.
#define EIGEN_DONT_PARALLELIZE

// Built with AVX-512 enabled (-march=native), GCC 12 reports the deliberate
// self-initialisation inside its own _mm512_undefined_ps wherever Eigen's
// kernels are inlined: false positives, silenced for the Eigen headers only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/ops_internal.h"
#include "model/window.h"

namespace blindfold::model::detail {

namespace {

using std::int64_t;

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatMap = Eigen::Map<RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using ConstMatMap = Eigen::Map<const RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf>;

// Strides, pads, dilations and kernel sizes above this are refused: no real
// model needs them, and the bound keeps every index computation (products of
// two such values) far from int64 overflow.
constexpr int64_t kMaxWindowValue = kMaxTensorElements;

// Least work per parallel chunk. With a condition-variable pool a round trip
// cost 70-85 us on the 2-core benchmark VM; core/thread_pool's workers now
// poll briefly before sleeping, and a round trip is a few microseconds when
// they are awake. These values were the fastest of 2^18..2^22 and 2^14..2^18
// for fmnist-lenet and fmnist-mlp at batch 1 and 64 (bench/plain_bench.cc).
constexpr double kChunkMinMacs = 1 << 19;
// The same for memory-bound loops (pooling, normalisation, softmax), in
// elements touched.
constexpr double kChunkMinElements = 1 << 15;
// Bound on the im2col buffer of one chunk (floats): larger convolutions are
// processed in bands of output rows, so hostile shapes cannot ask for an
// unbounded scratch allocation.
constexpr int64_t kIm2colMaxFloats = int64_t{1} << 22;

std::string str(int64_t v) {
  return std::to_string(v);
}

// Items per parallel chunk so that each chunk does at least `min_work`.
int64_t grain_for(double work_per_item, double min_work) {
  if (work_per_item <= 0) return std::numeric_limits<int64_t>::max();
  const double g = std::ceil(min_work / work_per_item);
  return g >= 9.0e18 ? std::numeric_limits<int64_t>::max() : std::max<int64_t>(1, int64_t(g));
}

// Ceiling division for b > 0 and any sign of a.
int64_t ceil_div(int64_t a, int64_t b) {
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

// Per-thread scratch that only grows, so steady-state runs do not allocate.
// Slots let one kernel hold several buffers at once.
template <typename T, int kSlot>
T* scratch(int64_t n) {
  thread_local std::vector<T> buf;
  if (static_cast<int64_t>(buf.size()) < n) {
    buf.clear();
    buf.resize(static_cast<std::size_t>(n));
  }
  return buf.data();
}

std::string join(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + str(v[i]);
  return s + "]";
}

int64_t product(const Shape& s, std::size_t begin, std::size_t end) {
  int64_t p = 1;
  for (std::size_t i = begin; i < end; ++i) p *= s[i];
  return p;
}

// ---- inference helpers ------------------------------------------------------

// Other element types are valid ONNX for most of these ops, but the engine
// computes in float32 only.
void require_float(const Node& node, std::span<const ValueInfo> inputs, std::size_t i,
                   const char* what) {
  if (inputs[i].dtype != DType::kFloat32) {
    unsupported(node, std::string("input ") + what + " must be float32, is " +
                          std::string(dtype_name(inputs[i].dtype)));
  }
}

bool has_input(std::span<const ValueInfo> inputs, std::size_t i) {
  return i < inputs.size() && inputs[i].present;
}

// Optional outputs the engine does not compute (valid ONNX, so kUnsupported).
void require_outputs(const Node& node, std::size_t max_outputs, const char* why) {
  if (node.outputs.size() > max_outputs) unsupported(node, why);
}

// The output buffers come from the caller, sized by shape inference; a
// mismatch means the caller ran inference on other shapes, and writing would
// go out of bounds.
Tensor& checked_output(const Node& node, std::span<Tensor* const> outputs, std::size_t i,
                       const Shape& expected) {
  if (i >= outputs.size() || outputs[i] == nullptr) {
    throw_error(ErrorCategory::kInternal,
                node.label() + ": output " + str(int64_t(i)) + " has no buffer");
  }
  Tensor& t = *outputs[i];
  if (t.dtype() != DType::kFloat32 || t.shape() != expected) {
    throw_error(ErrorCategory::kInternal,
                node.label() + ": output buffer is " + std::string(dtype_name(t.dtype())) + " " +
                    shape_to_string(t.shape()) + ", kernel needs float32 " +
                    shape_to_string(expected));
  }
  return t;
}

const Tensor* opt_input(std::span<const Tensor* const> inputs, std::size_t i) {
  return i < inputs.size() ? inputs[i] : nullptr;
}

const Tensor& req_input(const Node& node, std::span<const Tensor* const> inputs, std::size_t i) {
  const Tensor* t = opt_input(inputs, i);
  if (t == nullptr) fail(node, "required input " + str(int64_t(i)) + " is missing");
  return *t;
}

// ---- SIMD matrix kernels ---------------------------------------------------
//
// The build targets AVX2 (x86-64-v3), but AVX-512 doubles the FMA width on
// CPUs that have it, and ONNX Runtime uses it. So the hot kernels are written
// once over GCC vector extensions of width W and instantiated in three entry
// points: AVX-512 and AVX2 (compiled for those targets, chosen at run time)
// and a baseline for any other CPU. Every helper is always_inline so that it
// is compiled with the target of the entry point it ends up in.
// fp-contract=fast turns a * b + c into FMAs: ISO C++ mode leaves it off.

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // wide vectors passed between inlined helpers
#if defined(__clang__)
// Clang contracts a * b + c within a statement by default.
#define BF_FMA_CONTRACT
#else
#define BF_FMA_CONTRACT optimize("fp-contract=fast")
#endif
#define BF_INLINE __attribute__((always_inline)) inline

template <int W>
struct VecOf {
  typedef float T __attribute__((vector_size(W * sizeof(float))));
};
template <int W>
using vf = typename VecOf<W>::T;

template <int W>
BF_INLINE vf<W> vload(const float* p) {
  vf<W> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// The first n (< W) lanes from p, zeros after: never reads past p + n.
template <int W>
BF_INLINE vf<W> vload_n(const float* p, int64_t n) {
  vf<W> v = {};
  std::memcpy(&v, p, static_cast<std::size_t>(n) * sizeof(float));
  return v;
}
template <int W>
BF_INLINE void vstore(float* p, const vf<W>& v) {
  std::memcpy(p, &v, sizeof v);
}
template <int W>
BF_INLINE void vstore_n(float* p, const vf<W>& v, int64_t n) {
  std::memcpy(p, &v, static_cast<std::size_t>(n) * sizeof(float));
}

// C (m x n, row stride ldc) = alpha * A * B (+ C when accumulate).
// A(i, l) = a[i * a_rs + l * a_cs], so either layout of A is read in place.
// B is read in place too: row l of B starts at b + b_off[l] (a table, so that
// a convolution can name shifted windows of its input as the rows of B), or,
// when b_trans, B(l, j) = b[j * ldb + l] (B^T stored row-major: Gemm transB).
struct GemmCall {
  const float* a = nullptr;
  int64_t a_rs = 0, a_cs = 0;
  const float* b = nullptr;
  const int64_t* b_off = nullptr;
  // One past the last float of B's buffer: loads of B may run up to W - 1
  // floats past the columns they need (into the next row), but never past this.
  const float* b_end = nullptr;
  int64_t ldb = 0;
  bool b_trans = false;
  float* c = nullptr;
  int64_t ldc = 0;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  bool accumulate = false;
};

// R rows x NV vectors of C, over l in [k0, k1): a register tile that
// broadcasts one A element per row and loads NV vectors of a B row per step.
// Tail: the last vector holds only `tail` columns.
template <int W, int R, int NV, bool Tail>
BF_INLINE void axpy_tile(const GemmCall& g, int64_t i0, int64_t j0, int64_t k0, int64_t k1,
                         bool acc_c, int64_t tail) {
  vf<W> acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = vf<W>{};
  const float* a = g.a + i0 * g.a_rs + k0 * g.a_cs;
  for (int64_t l = k0; l < k1; ++l, a += g.a_cs) {
    const float* b = g.b + g.b_off[l] + j0;
    vf<W> bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      // A tail vector reads whole vectors while they stay inside B's buffer
      // (the extra lanes feed only columns that are not stored).
      bv[v] = (Tail && v == NV - 1 && b + (v + 1) * W > g.b_end) ? vload_n<W>(b + v * W, tail)
                                                                 : vload<W>(b + v * W);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      // x - 0 folds to a plain broadcast (0 + x would not: signed zeros).
      const vf<W> s = a[r * g.a_rs] - vf<W>{};
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += s * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* c = g.c + (i0 + r) * g.ldc + j0;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      vf<W> out = acc[r][v] * g.alpha;
      if (Tail && v == NV - 1) {
        if (acc_c) out += vload_n<W>(c + v * W, tail);
        vstore_n<W>(c + v * W, out, tail);
      } else {
        if (acc_c) out += vload<W>(c + v * W);
        vstore<W>(c + v * W, out);
      }
    }
  }
}

// The rows left after the full MR-row panels (fewer than MR).
template <int W, int R, int NV, bool Tail>
BF_INLINE void axpy_rows_tail(const GemmCall& g, int64_t i0, int64_t j0, int64_t k0, int64_t k1,
                              bool acc_c, int64_t tail) {
  if constexpr (R >= 1) {
    if (g.m - i0 == R) {
      axpy_tile<W, R, NV, Tail>(g, i0, j0, k0, k1, acc_c, tail);
    } else {
      axpy_rows_tail<W, R - 1, NV, Tail>(g, i0, j0, k0, k1, acc_c, tail);
    }
  }
}

template <int W, int MR, int NV, bool Tail>
BF_INLINE void axpy_rows(const GemmCall& g, int64_t j0, int64_t k0, int64_t k1, bool acc_c,
                         int64_t tail) {
  int64_t i0 = 0;
  for (; i0 + MR <= g.m; i0 += MR) axpy_tile<W, MR, NV, Tail>(g, i0, j0, k0, k1, acc_c, tail);
  axpy_rows_tail<W, MR - 1, NV, Tail>(g, i0, j0, k0, k1, acc_c, tail);
}

// The columns left after the full NV-vector tiles (fewer than NV * W): one
// tile of up to NV vectors, the last one partial if needed.
template <int W, int MR, int NV>
BF_INLINE void axpy_cols_tail(const GemmCall& g, int64_t j0, int64_t k0, int64_t k1, bool acc_c) {
  if constexpr (NV >= 1) {
    const int64_t rest = g.n - j0;
    if (rest <= 0) return;
    if (rest > (NV - 1) * W) {
      const int64_t tail = rest - (NV - 1) * W;
      if (tail == W) {
        axpy_rows<W, MR, NV, false>(g, j0, k0, k1, acc_c, 0);
      } else {
        axpy_rows<W, MR, NV, true>(g, j0, k0, k1, acc_c, tail);
      }
    } else {
      axpy_cols_tail<W, MR, NV - 1>(g, j0, k0, k1, acc_c);
    }
  }
}

template <int W, int MR, int NV>
BF_INLINE void axpy_gemm(const GemmCall& g) {
  // K blocks keep the B rows a column tile touches in L1/L2 across row panels.
  constexpr int64_t kBlock = 256;
  for (int64_t k0 = 0; k0 < g.k; k0 += kBlock) {
    const int64_t k1 = std::min(g.k, k0 + kBlock);
    const bool acc_c = g.accumulate || k0 > 0;
    int64_t j0 = 0;
    for (; j0 + NV * W <= g.n; j0 += NV * W) axpy_rows<W, MR, NV, false>(g, j0, k0, k1, acc_c, 0);
    axpy_cols_tail<W, MR, NV>(g, j0, k0, k1, acc_c);
  }
}

// Sums of four vectors, with shuffles that fold them into one vector.
template <int W>
BF_INLINE void reduce4(const vf<W>& a0, const vf<W>& a1, const vf<W>& a2, const vf<W>& a3,
                       float* out) {
  if constexpr (W == 16) {
    reduce4<8>(__builtin_shufflevector(a0, a0, 0, 1, 2, 3, 4, 5, 6, 7) +
                   __builtin_shufflevector(a0, a0, 8, 9, 10, 11, 12, 13, 14, 15),
               __builtin_shufflevector(a1, a1, 0, 1, 2, 3, 4, 5, 6, 7) +
                   __builtin_shufflevector(a1, a1, 8, 9, 10, 11, 12, 13, 14, 15),
               __builtin_shufflevector(a2, a2, 0, 1, 2, 3, 4, 5, 6, 7) +
                   __builtin_shufflevector(a2, a2, 8, 9, 10, 11, 12, 13, 14, 15),
               __builtin_shufflevector(a3, a3, 0, 1, 2, 3, 4, 5, 6, 7) +
                   __builtin_shufflevector(a3, a3, 8, 9, 10, 11, 12, 13, 14, 15),
               out);
  } else {
    static_assert(W == 8);
    const vf<8> p = __builtin_shufflevector(a0, a1, 0, 1, 2, 3, 8, 9, 10, 11) +
                    __builtin_shufflevector(a0, a1, 4, 5, 6, 7, 12, 13, 14, 15);
    const vf<8> q = __builtin_shufflevector(a2, a3, 0, 1, 2, 3, 8, 9, 10, 11) +
                    __builtin_shufflevector(a2, a3, 4, 5, 6, 7, 12, 13, 14, 15);
    const vf<8> u = __builtin_shufflevector(p, q, 0, 1, 4, 5, 8, 9, 12, 13) +
                    __builtin_shufflevector(p, q, 2, 3, 6, 7, 10, 11, 14, 15);
    const vf<8> w = u + __builtin_shufflevector(u, u, 1, 0, 3, 2, 5, 4, 7, 6);
    out[0] = w[0];
    out[1] = w[2];
    out[2] = w[4];
    out[3] = w[6];
  }
}

// R rows x NC columns of C = A * B^T: dot products of contiguous rows of A
// and of B^T, reduced at the end. Columns past n reuse the last valid B^T
// row and are not stored. For few rows of A (batch-1 fully connected
// layers): with many, gemm() transposes B^T and uses the axpy kernel.
template <int W, int R, int NC>
BF_INLINE void dot_tile(const GemmCall& g, int64_t i0, int64_t j0) {
  static_assert(NC % 4 == 0);
  vf<W> acc[R][NC];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < NC; ++j) acc[r][j] = vf<W>{};
  const int64_t cols = std::min<int64_t>(NC, g.n - j0);
  const float* b[NC];
#pragma GCC unroll 8
  for (int j = 0; j < NC; ++j) b[j] = g.b + (j0 + std::min<int64_t>(j, cols - 1)) * g.ldb;
  const float* a = g.a + i0 * g.a_rs;
  int64_t l = 0;
  for (; l + W <= g.k; l += W) {
    vf<W> bv[NC];
#pragma GCC unroll 8
    for (int j = 0; j < NC; ++j) bv[j] = vload<W>(b[j] + l);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const vf<W> av = vload<W>(a + r * g.a_rs + l);
#pragma GCC unroll 8
      for (int j = 0; j < NC; ++j) acc[r][j] += av * bv[j];
    }
  }
  if (l < g.k) {
    const int64_t n = g.k - l;
    vf<W> bv[NC];
#pragma GCC unroll 8
    for (int j = 0; j < NC; ++j) bv[j] = vload_n<W>(b[j] + l, n);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const vf<W> av = vload_n<W>(a + r * g.a_rs + l, n);
#pragma GCC unroll 8
      for (int j = 0; j < NC; ++j) acc[r][j] += av * bv[j];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float s[NC];
#pragma GCC unroll 2
    for (int q = 0; q < NC; q += 4) {
      reduce4<W>(acc[r][q], acc[r][q + 1], acc[r][q + 2], acc[r][q + 3], s + q);
    }
    float* c = g.c + (i0 + r) * g.ldc + j0;
    for (int64_t j = 0; j < cols; ++j) c[j] = g.alpha * s[j] + (g.accumulate ? c[j] : 0.0f);
  }
}

template <int W, int R, int NC>
BF_INLINE void dot_rows_tail(const GemmCall& g, int64_t i0, int64_t j0) {
  if constexpr (R >= 1) {
    if (g.m - i0 == R) {
      dot_tile<W, R, NC>(g, i0, j0);
    } else {
      dot_rows_tail<W, R - 1, NC>(g, i0, j0);
    }
  }
}

template <int W, int MR, int NC>
BF_INLINE void dot_gemm(const GemmCall& g) {
  // Column groups outside: their NC rows of B^T stay in L1 across all rows.
  for (int64_t j0 = 0; j0 < g.n; j0 += NC) {
    int64_t i0 = 0;
    for (; i0 + MR <= g.m; i0 += MR) dot_tile<W, MR, NC>(g, i0, j0);
    dot_rows_tail<W, MR - 1, NC>(g, i0, j0);
  }
}

// Register tiles: AVX-512 has 32 vector registers (8x3 accumulators + 3 B
// vectors + a broadcast; 4x4 + 4 + 1), AVX2 and older 16 (6x2 + 3; 2x4 + 5).
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), BF_FMA_CONTRACT)) void gemm_avx512(
    const GemmCall& g) {
  if (g.b_trans) {
    dot_gemm<16, 4, 4>(g);
  } else {
    axpy_gemm<16, 8, 3>(g);
  }
}
__attribute__((target("avx2,fma"), BF_FMA_CONTRACT)) void gemm_avx2(const GemmCall& g) {
  if (g.b_trans) {
    dot_gemm<8, 2, 4>(g);
  } else {
    axpy_gemm<8, 6, 2>(g);
  }
}
__attribute__((BF_FMA_CONTRACT)) void gemm_baseline(const GemmCall& g) {
  if (g.b_trans) {
    dot_gemm<8, 2, 4>(g);
  } else {
    axpy_gemm<8, 6, 2>(g);
  }
}

// 2x2 windows, stride 2, no padding (LeNet, VGG): rows of 16 inputs give 8
// outputs through a vertical max/sum and an even/odd lane shuffle.
BF_INLINE vf<8> vmax(vf<8> a, vf<8> b) {
  return a < b ? b : a;
}  // std::max's NaN rule

void pool_2x2_s2(const float* x, int64_t in_h, int64_t in_w, float* y, int64_t oh, int64_t ow,
                 bool is_max) {
  (void)in_h;
  for (int64_t oy = 0; oy < oh; ++oy) {
    const float* r0 = x + 2 * oy * in_w;
    const float* r1 = r0 + in_w;
    float* yr = y + oy * ow;
    int64_t ox = 0;
    for (; ox + 8 <= ow; ox += 8) {
      const vf<8> a0 = vload<8>(r0 + 2 * ox), a1 = vload<8>(r0 + 2 * ox + 8);
      const vf<8> b0 = vload<8>(r1 + 2 * ox), b1 = vload<8>(r1 + 2 * ox + 8);
      const vf<8> v0 = is_max ? vmax(a0, b0) : a0 + b0;
      const vf<8> v1 = is_max ? vmax(a1, b1) : a1 + b1;
      const vf<8> ev = __builtin_shufflevector(v0, v1, 0, 2, 4, 6, 8, 10, 12, 14);
      const vf<8> od = __builtin_shufflevector(v0, v1, 1, 3, 5, 7, 9, 11, 13, 15);
      vstore<8>(yr + ox, is_max ? vmax(ev, od) : (ev + od) * 0.25f);
    }
    for (; ox < ow; ++ox) {
      const float* a = r0 + 2 * ox;
      const float* b = r1 + 2 * ox;
      yr[ox] = is_max ? std::max(std::max(a[0], a[1]), std::max(b[0], b[1]))
                      : ((a[0] + b[0]) + (a[1] + b[1])) * 0.25f;
    }
  }
}

// Stride-1 convolution vectorised over output channels, for layers with few
// channels and narrow rows (LeNet-like), where the virtual-width GEMM wastes
// up to half its work. A register tile is RR output rows x 8 output columns
// x W channels; per kernel tap it loads one weight vector and broadcasts each
// pixel's input. Results go to a pixel-major buffer (pixel, channel) that the
// caller transposes into NCHW.
struct ChConvCall {
  const float* src = nullptr;    // padded input of the group, at the first output row
  int64_t wp = 0;                // its row stride
  const int64_t* off = nullptr;  // per tap (c, i, j): offset of the tap in src
  int64_t k = 0;                 // taps
  const float* wt = nullptr;     // weights, k x mpad (tap-major)
  const float* bias = nullptr;   // mpad values
  int64_t mpad = 0;              // output channels, rounded up to the vector width
  int64_t rows = 0, cols = 0;    // output tile extent: multiples of RR and 8
  float* out = nullptr;          // (rows * cols) x mpad
};

template <int W, int RR>
BF_INLINE void chconv_tile(const ChConvCall& g, int64_t r0, int64_t c0, int64_t cb) {
  vf<W> acc[RR][8];
  const vf<W> bias = vload<W>(g.bias + cb);
#pragma GCC unroll 8
  for (int r = 0; r < RR; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) acc[r][t] = bias;
  const float* src = g.src + r0 * g.wp + c0;
  const float* wt = g.wt + cb;
  for (int64_t l = 0; l < g.k; ++l, wt += g.mpad) {
    const vf<W> wv = vload<W>(wt);
    // One base pointer per tile row: the broadcasts then address
    // base + constant.
    const float* s[RR];
    s[0] = src + g.off[l];
#pragma GCC unroll 8
    for (int r = 1; r < RR; ++r) s[r] = s[r - 1] + g.wp;
#pragma GCC unroll 8
    for (int r = 0; r < RR; ++r)
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) acc[r][t] += (s[r][t] - vf<W>{}) * wv;
  }
#pragma GCC unroll 8
  for (int r = 0; r < RR; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t)
      vstore<W>(g.out + ((r0 + r) * g.cols + c0 + t) * g.mpad + cb, acc[r][t]);
}

template <int W, int RR>
BF_INLINE void chconv(const ChConvCall& g) {
  for (int64_t cb = 0; cb < g.mpad; cb += W)
    for (int64_t r0 = 0; r0 < g.rows; r0 += RR)
      for (int64_t c0 = 0; c0 < g.cols; c0 += 8) chconv_tile<W, RR>(g, r0, c0, cb);
}

// Tiles: AVX-512 3 x 8 accumulators (plus a weight vector), others 1 x 8.
constexpr int64_t kChConvRowsAvx512 = 3;
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), BF_FMA_CONTRACT)) void chconv_avx512(
    const ChConvCall& g) {
  chconv<16, kChConvRowsAvx512>(g);
}
__attribute__((target("avx2,fma"), BF_FMA_CONTRACT)) void chconv_avx2(const ChConvCall& g) {
  chconv<8, 1>(g);
}
__attribute__((BF_FMA_CONTRACT)) void chconv_baseline(const ChConvCall& g) {
  chconv<8, 1>(g);
}

// dst (cols x rows, row stride ldd) = transpose of src (rows x cols, row
// stride lds), by 8 x 8 blocks transposed in registers.
void transpose(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd) {
  int64_t r0 = 0;
  for (; r0 + 8 <= rows; r0 += 8) {
    int64_t c0 = 0;
    for (; c0 + 8 <= cols; c0 += 8) {
      const float* s = src + r0 * lds + c0;
      const vf<8> a0 = vload<8>(s), a1 = vload<8>(s + lds), a2 = vload<8>(s + 2 * lds),
                  a3 = vload<8>(s + 3 * lds), a4 = vload<8>(s + 4 * lds),
                  a5 = vload<8>(s + 5 * lds), a6 = vload<8>(s + 6 * lds),
                  a7 = vload<8>(s + 7 * lds);
      const vf<8> t0 = __builtin_shufflevector(a0, a1, 0, 8, 1, 9, 4, 12, 5, 13);
      const vf<8> t1 = __builtin_shufflevector(a0, a1, 2, 10, 3, 11, 6, 14, 7, 15);
      const vf<8> t2 = __builtin_shufflevector(a2, a3, 0, 8, 1, 9, 4, 12, 5, 13);
      const vf<8> t3 = __builtin_shufflevector(a2, a3, 2, 10, 3, 11, 6, 14, 7, 15);
      const vf<8> t4 = __builtin_shufflevector(a4, a5, 0, 8, 1, 9, 4, 12, 5, 13);
      const vf<8> t5 = __builtin_shufflevector(a4, a5, 2, 10, 3, 11, 6, 14, 7, 15);
      const vf<8> t6 = __builtin_shufflevector(a6, a7, 0, 8, 1, 9, 4, 12, 5, 13);
      const vf<8> t7 = __builtin_shufflevector(a6, a7, 2, 10, 3, 11, 6, 14, 7, 15);
      const vf<8> u0 = __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
      const vf<8> u1 = __builtin_shufflevector(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
      const vf<8> u2 = __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
      const vf<8> u3 = __builtin_shufflevector(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
      const vf<8> u4 = __builtin_shufflevector(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
      const vf<8> u5 = __builtin_shufflevector(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
      const vf<8> u6 = __builtin_shufflevector(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
      const vf<8> u7 = __builtin_shufflevector(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
      float* d = dst + c0 * ldd + r0;
      vstore<8>(d, __builtin_shufflevector(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11));
      vstore<8>(d + ldd, __builtin_shufflevector(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11));
      vstore<8>(d + 2 * ldd, __builtin_shufflevector(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11));
      vstore<8>(d + 3 * ldd, __builtin_shufflevector(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11));
      vstore<8>(d + 4 * ldd, __builtin_shufflevector(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15));
      vstore<8>(d + 5 * ldd, __builtin_shufflevector(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15));
      vstore<8>(d + 6 * ldd, __builtin_shufflevector(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15));
      vstore<8>(d + 7 * ldd, __builtin_shufflevector(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15));
    }
    for (int64_t r = r0; r < r0 + 8; ++r) {
      for (int64_t c = c0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
    }
  }
  for (int64_t r = r0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
  }
}

#pragma GCC diagnostic pop

enum class SimdLevel { kBaseline, kAvx2, kAvx512 };

SimdLevel cpu_simd_level() {
  static const SimdLevel level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
      return SimdLevel::kAvx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::kAvx2;
    return SimdLevel::kBaseline;
  }();
  return level;
}

// Tests lower this to cover every kernel variant on one machine.
std::atomic<int> g_simd_cap{static_cast<int>(SimdLevel::kAvx512)};

SimdLevel simd_level() {
  return static_cast<SimdLevel>(
      std::min(static_cast<int>(cpu_simd_level()), g_simd_cap.load(std::memory_order_relaxed)));
}

void run_gemm_call(const GemmCall& g) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) {
    if (!g.accumulate) {
      for (int64_t i = 0; i < g.m; ++i) std::fill(g.c + i * g.ldc, g.c + i * g.ldc + g.n, 0.0f);
    }
    return;
  }
  switch (simd_level()) {
    case SimdLevel::kAvx512: return gemm_avx512(g);
    case SimdLevel::kAvx2: return gemm_avx2(g);
    case SimdLevel::kBaseline: return gemm_baseline(g);
  }
}

// C (m x n, row stride ldc) = alpha * op(A) * op(B) (+ C when accumulate). A
// is stored row-major as m x k (or k x m when ta), B as k x n (or n x k when
// tb).
void gemm(const float* a, int64_t lda, bool ta, const float* b, int64_t ldb, bool tb, float* c,
          int64_t ldc, int64_t m, int64_t n, int64_t k, float alpha, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (ta && tb && k > 0) {
    // Rare in models (no layout reads both in place): Eigen.
    MatMap cm(c, m, n, Eigen::OuterStride<>(ldc));
    const ConstMatMap am(a, k, m, Eigen::OuterStride<>(lda));
    const ConstMatMap bm(b, n, k, Eigen::OuterStride<>(ldb));
    if (accumulate) {
      cm.noalias() += alpha * am.transpose() * bm.transpose();
    } else {
      cm.noalias() = alpha * am.transpose() * bm.transpose();
    }
    return;
  }
  if (tb && m >= 16 && k * n <= (int64_t{1} << 24)) {
    // The dot-product kernel loads two vectors per two FMAs and is bound by
    // (unaligned) loads; with enough rows, transposing B^T once (k * n
    // moves against m * k * n multiply-adds) pays for the axpy kernel. The
    // copy is bounded (64 MB) so huge weights do not double the memory.
    float* bt = scratch<float, 3>(k * n);
    transpose(b, n, k, ldb, bt, n);
    b = bt;
    ldb = n;
    tb = false;
  }
  GemmCall g;
  g.a = a;
  g.a_rs = ta ? 1 : lda;
  g.a_cs = ta ? lda : 1;
  g.b = b;
  g.ldb = ldb;
  g.b_trans = tb;
  g.c = c;
  g.ldc = ldc;
  g.m = m;
  g.n = n;
  g.k = k;
  g.alpha = alpha;
  g.accumulate = accumulate;
  if (!tb) {
    int64_t* off = scratch<int64_t, 1>(k);
    for (int64_t l = 0; l < k; ++l) off[l] = l * ldb;
    g.b_off = off;
    g.b_end = b + (k - 1) * ldb + n;
  }
  run_gemm_call(g);
}

// gemm() split over the pool by row blocks (or column blocks when the result
// is wide and short, e.g. batch-1 fully connected layers). Small products run
// inline.
void parallel_gemm(ThreadPool& pool, const float* a, int64_t lda, bool ta, const float* b,
                   int64_t ldb, bool tb, float* c, int64_t ldc, int64_t m, int64_t n, int64_t k,
                   float alpha, bool accumulate) {
  const double macs = double(m) * double(n) * double(std::max<int64_t>(k, 1));
  if (pool.size() < 2 || macs < 2 * kChunkMinMacs) {
    gemm(a, lda, ta, b, ldb, tb, c, ldc, m, n, k, alpha, accumulate);
    return;
  }
  if (m >= n) {
    pool.parallel_for(
        m,
        [&](int64_t r0, int64_t r1) {
          gemm(ta ? a + r0 : a + r0 * lda, lda, ta, b, ldb, tb, c + r0 * ldc, ldc, r1 - r0, n, k,
               alpha, accumulate);
        },
        grain_for(macs / double(m), kChunkMinMacs));
  } else {
    pool.parallel_for(
        n,
        [&](int64_t c0, int64_t c1) {
          gemm(a, lda, ta, tb ? b + c0 * ldb : b + c0, ldb, tb, c + c0, ldc, m, c1 - c0, k, alpha,
               accumulate);
        },
        grain_for(macs / double(n), kChunkMinMacs));
  }
}

// ---- sliding windows (Conv, MaxPool, AveragePool) ----------------------------

std::vector<int64_t> spatial_attr(const Node& node, const std::string& name, std::size_t count,
                                  int64_t def, int64_t lo) {
  std::vector<int64_t> v = node.attrs.get_ints(name, {});
  if (v.empty()) return std::vector<int64_t>(count, def);
  if (v.size() != count) {
    fail(node, "attribute '" + name + "' has " + str(int64_t(v.size())) + " values, expected " +
                   str(int64_t(count)) + " for a 2-D window");
  }
  for (int64_t x : v) {
    if (x < lo) {
      fail(node, "attribute '" + name + "' " + join(v) + " must be " +
                     (lo > 0 ? "positive" : "non-negative"));
    }
    if (x > kMaxWindowValue) fail(node, "attribute '" + name + "' " + join(v) + " is too large");
  }
  return v;
}

}  // namespace
}  // namespace blindfold::model::detail

namespace blindfold::model {

// Strides, dilations, pads, auto_pad and ceil_mode against the input size
// (model/window.h).
Window resolve_window(const Node& node, std::int64_t in_h, std::int64_t in_w, std::int64_t k_h,
                      std::int64_t k_w, WindowOp op) {
  using namespace detail;
  Window w;
  w.in[0] = in_h;
  w.in[1] = in_w;
  w.kernel[0] = k_h;
  w.kernel[1] = k_w;
  for (int d = 0; d < 2; ++d) {
    if (w.kernel[d] < 1 || w.kernel[d] > kMaxWindowValue) {
      fail(node, "kernel size " + str(k_h) + "x" + str(k_w) + " is invalid (must be positive)");
    }
  }
  const std::vector<int64_t> strides = spatial_attr(node, "strides", 2, 1, 1);
  const std::vector<int64_t> dilations = spatial_attr(node, "dilations", 2, 1, 1);
  const std::vector<int64_t> pads = spatial_attr(node, "pads", 4, 0, 0);
  const std::string auto_pad = node.attrs.get_string("auto_pad", "NOTSET");
  bool ceil_mode = false;
  if (op != WindowOp::kConv) {
    const int64_t c = node.attrs.get_int("ceil_mode", 0);
    if (c != 0 && c != 1) fail(node, "attribute 'ceil_mode' must be 0 or 1, is " + str(c));
    ceil_mode = c == 1;
  }
  for (int d = 0; d < 2; ++d) {
    const std::size_t ud = static_cast<std::size_t>(d);
    w.stride[d] = strides[ud];
    w.dilation[d] = dilations[ud];
    const int64_t s = w.stride[d];
    const int64_t span = w.span(d);
    const int64_t in = w.in[d];
    if (auto_pad == "NOTSET" || auto_pad.empty()) {
      w.pad_begin[d] = pads[ud];
      w.pad_end[d] = pads[ud + 2];
      if (op != WindowOp::kConv && (w.pad_begin[d] >= w.kernel[d] || w.pad_end[d] >= w.kernel[d])) {
        // Valid ONNX, but onnxruntime refuses it too: windows could lie
        // wholly in padding.
        unsupported(node, "pads " + join(pads) + " must be smaller than the kernel");
      }
      const int64_t room = in + w.pad_begin[d] + w.pad_end[d] - span;
      if (room < 0) {
        fail(node, "kernel extent " + str(span) + " exceeds the padded input size " +
                       str(in + w.pad_begin[d] + w.pad_end[d]));
      }
      w.out[d] = (ceil_mode ? ceil_div(room, s) : room / s) + 1;
      if (ceil_mode && (w.out[d] - 1) * s >= in + w.pad_begin[d]) --w.out[d];
    } else if (auto_pad == "VALID") {
      const int64_t room = in - span;
      if (room < 0) {
        fail(node, "kernel extent " + str(span) + " exceeds the input size " + str(in) +
                       " (auto_pad VALID)");
      }
      w.out[d] = room / s + 1;
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      w.out[d] = ceil_div(in, s);
      const int64_t total = std::max<int64_t>(0, (w.out[d] - 1) * s + span - in);
      // SAME_UPPER puts the odd padding element at the end, SAME_LOWER at the start.
      w.pad_begin[d] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w.pad_end[d] = total - w.pad_begin[d];
    } else {
      fail(node, "unknown auto_pad '" + auto_pad + "'");
    }
    if (w.out[d] < 1) {
      fail(node, "output spatial size would be " + str(w.out[d]) + " for input size " + str(in));
    }
  }
  return w;
}

}  // namespace blindfold::model

namespace blindfold::model::detail {
namespace {

void require_2d_input(const Node& node, const Shape& x) {
  if (x.size() == 4) return;
  if (x.size() == 3 || x.size() == 5) {
    unsupported(node, "only 2-D " + std::string(op_name(node.op)) + " supported (input has rank " +
                          str(int64_t(x.size())) + ")");
  }
  fail(node, "input must have rank 4 (N, C, H, W), has shape " + shape_to_string(x));
}

// ---- Conv -------------------------------------------------------------------

struct ConvGeom {
  int64_t n = 0, c = 0, m = 0, group = 1, cg = 0, mg = 0;
  Window win;
  int64_t k_size() const { return cg * win.kernel[0] * win.kernel[1]; }
  int64_t out_plane() const { return win.out[0] * win.out[1]; }
  int64_t in_plane() const { return win.in[0] * win.in[1]; }
  Shape out_shape() const { return {n, m, win.out[0], win.out[1]}; }
  // 1x1, stride 1, no padding: the input image already is the im2col matrix.
  bool pointwise() const {
    return win.kernel[0] == 1 && win.kernel[1] == 1 && win.stride[0] == 1 && win.stride[1] == 1 &&
           win.pad_begin[0] == 0 && win.pad_begin[1] == 0 && win.pad_end[0] == 0 &&
           win.pad_end[1] == 0;
  }
  // One input channel per group: direct loops beat im2col + a thin GEMM.
  bool depthwise() const { return group > 1 && cg == 1; }
};

ConvGeom conv_geom(const Node& node, const Shape& x, const Shape& w, const Shape* b) {
  require_2d_input(node, x);
  if (w.size() != 4) {
    fail(node, "weight must have rank 4 (M, C/group, kH, kW), has shape " + shape_to_string(w));
  }
  ConvGeom g;
  g.n = x[0];
  g.c = x[1];
  g.m = w[0];
  g.group = node.attrs.get_int("group", 1);
  if (g.group < 1 || g.group > kMaxWindowValue) {
    fail(node, "attribute 'group' must be positive, is " + str(g.group));
  }
  if (g.c % g.group != 0) {
    fail(node, "group " + str(g.group) + " does not divide the " + str(g.c) + " input channels");
  }
  if (g.m % g.group != 0) {
    fail(node, "group " + str(g.group) + " does not divide the " + str(g.m) + " output channels");
  }
  g.cg = g.c / g.group;
  g.mg = g.m / g.group;
  if (w[1] != g.cg) {
    fail(node, "weight " + shape_to_string(w) + " has " + str(w[1]) +
                   " input channels per group, input " + shape_to_string(x) + " with group " +
                   str(g.group) + " needs " + str(g.cg));
  }
  if (node.attrs.has("kernel_shape")) {
    const std::vector<int64_t> ks = node.attrs.get_ints("kernel_shape", {});
    if (ks.size() != 2 || ks[0] != w[2] || ks[1] != w[3]) {
      fail(node,
           "attribute 'kernel_shape' " + join(ks) + " does not match weight " + shape_to_string(w));
    }
  }
  if (b != nullptr && (b->size() != 1 || (*b)[0] != g.m)) {
    fail(node, "bias must have shape [" + str(g.m) + "], has " + shape_to_string(*b));
  }
  g.win = resolve_window(node, x[2], x[3], w[2], w[3], WindowOp::kConv);
  return g;
}

// Copies the receptive fields of output rows [oy0, oy1) of `cg` channels
// into col (cg*kh*kw rows of (oy1-oy0)*ow columns), zeros for padding.
void im2col(const ConvGeom& g, const float* x, int64_t oy0, int64_t oy1, float* col) {
  const Window& w = g.win;
  const int64_t in_h = w.in[0], in_w = w.in[1], ow = w.out[1];
  const int64_t sh = w.stride[0], sw = w.stride[1];
  float* dst = col;
  for (int64_t c = 0; c < g.cg; ++c) {
    const float* xc = x + c * in_h * in_w;
    for (int64_t i = 0; i < w.kernel[0]; ++i) {
      const int64_t y_off = i * w.dilation[0] - w.pad_begin[0];
      for (int64_t j = 0; j < w.kernel[1]; ++j) {
        // Input column of output column ox is ox * sw + x_off; [lo, hi) are
        // the output columns that land inside the image.
        const int64_t x_off = j * w.dilation[1] - w.pad_begin[1];
        const int64_t lo = std::clamp<int64_t>(ceil_div(-x_off, sw), 0, ow);
        const int64_t hi = std::clamp<int64_t>(ceil_div(in_w - x_off, sw), lo, ow);
        for (int64_t oy = oy0; oy < oy1; ++oy, dst += ow) {
          const int64_t iy = oy * sh + y_off;
          if (iy < 0 || iy >= in_h || lo == hi) {
            std::fill(dst, dst + ow, 0.0f);
            continue;
          }
          const float* row = xc + iy * in_w;
          std::fill(dst, dst + lo, 0.0f);
          if (sw == 1) {
            std::memcpy(dst + lo, row + lo + x_off,
                        static_cast<std::size_t>(hi - lo) * sizeof(float));
          } else {
            for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = row[ox * sw + x_off];
          }
          std::fill(dst + hi, dst + ow, 0.0f);
        }
      }
    }
  }
}

// What every chunk of one Conv call shares.
struct ConvPlan {
  const ConvGeom* g = nullptr;
  const float* x = nullptr;
  const float* x_end = nullptr;  // end of the input tensor
  const float* w = nullptr;
  const float* bias = nullptr;
  float* y = nullptr;
  // Stride 1 convolutions skip im2col. Over a "virtual" output grid as wide
  // as the (padded) input, row l = (c, i, j) of the GEMM's B operand is the
  // input shifted by (i * dh, j * dw): a contiguous run of the input, named
  // by the offset table b_off. Virtual columns ow..wp-1 of each row are
  // wasted work, dropped when the result is copied out.
  bool direct = false;
  bool padded = false;  // direct from a zero-padded copy of the input
  int64_t hp = 0, wp = 0;
  const int64_t* b_off = nullptr;
  // Stride 1 with few output channels per group: the channel-vectorised
  // kernel (ChConvCall) instead, from a padded copy with room for the tile
  // overhang (hp, wp then include it). Weights k x mpad per group, bias mpad
  // per group.
  bool chvec = false;
  SimdLevel level = SimdLevel::kBaseline;
  int64_t tile_rows = 1, mpad = 0;
  const float* wt = nullptr;
  const float* bias_pad = nullptr;
};

int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

void chconv_rows(const ConvPlan& p, const float* x, float* y, int64_t oy0, int64_t oy1) {
  const ConvGeom& g = *p.g;
  const Window& win = g.win;
  const int64_t ow = win.out[1], plane = g.out_plane(), k = g.k_size();
  const int64_t ow_pad = round_up(ow, 8);
  const int64_t band =
      std::max<int64_t>(p.tile_rows, kIm2colMaxFloats / std::max<int64_t>(1, ow_pad * p.mpad) /
                                         p.tile_rows * p.tile_rows);
  const int64_t pad_size = g.cg * p.hp * p.wp;
  for (int64_t grp = 0; grp < g.group; ++grp) {
    // Zero-padded copy, with the overhang of partial tiles inside it.
    float* pad = scratch<float, 2>(pad_size);
    std::fill(pad, pad + pad_size, 0.0f);
    const float* src = x + grp * g.cg * g.in_plane();
    for (int64_t c = 0; c < g.cg; ++c) {
      for (int64_t iy = 0; iy < win.in[0]; ++iy) {
        std::copy_n(src + (c * win.in[0] + iy) * win.in[1], win.in[1],
                    pad + (c * p.hp + iy + win.pad_begin[0]) * p.wp + win.pad_begin[1]);
      }
    }
    float* yg = y + grp * g.mg * plane;
    for (int64_t b0 = oy0; b0 < oy1; b0 += band) {
      const int64_t b1 = std::min(oy1, b0 + band);
      ChConvCall call;
      call.src = pad + b0 * p.wp;
      call.wp = p.wp;
      call.off = p.b_off;
      call.k = k;
      call.wt = p.wt + grp * k * p.mpad;
      call.bias = p.bias_pad + grp * p.mpad;
      call.mpad = p.mpad;
      call.rows = round_up(b1 - b0, p.tile_rows);
      call.cols = ow_pad;
      call.out = scratch<float, 0>(call.rows * ow_pad * p.mpad);
      switch (p.level) {
        case SimdLevel::kAvx512: chconv_avx512(call); break;
        case SimdLevel::kAvx2: chconv_avx2(call); break;
        case SimdLevel::kBaseline: chconv_baseline(call); break;
      }
      for (int64_t oy = b0; oy < b1; ++oy) {
        transpose(call.out + (oy - b0) * ow_pad * p.mpad, ow, g.mg, p.mpad, yg + oy * ow, plane);
      }
    }
  }
}

// Output rows [oy0, oy1) of every output channel of image `img`.
void conv_rows(const ConvPlan& p, int64_t img, int64_t oy0, int64_t oy1) {
  const ConvGeom& g = *p.g;
  const Window& win = g.win;
  const int64_t ow = win.out[1], plane = g.out_plane(), k = g.k_size();
  const float* x = p.x + img * g.c * g.in_plane();
  float* y = p.y + img * g.m * plane;
  if (p.chvec) return chconv_rows(p, x, y, oy0, oy1);
  if (p.direct) {
    const int64_t hp = p.hp, wp = p.wp;
    // Bands of rows bound the temporary result.
    const int64_t band = std::max<int64_t>(1, kIm2colMaxFloats / std::max<int64_t>(1, g.mg * wp));
    for (int64_t grp = 0; grp < g.group; ++grp) {
      const float* src = x + grp * g.cg * g.in_plane();
      const float* src_end = p.x_end;
      if (p.padded) {
        float* pad = scratch<float, 2>(g.cg * hp * wp);
        std::fill(pad, pad + g.cg * hp * wp, 0.0f);
        for (int64_t c = 0; c < g.cg; ++c) {
          for (int64_t iy = 0; iy < win.in[0]; ++iy) {
            std::copy_n(src + (c * win.in[0] + iy) * win.in[1], win.in[1],
                        pad + (c * hp + iy + win.pad_begin[0]) * wp + win.pad_begin[1]);
          }
        }
        src = pad;
        src_end = pad + g.cg * hp * wp;
      }
      const float* bias = p.bias ? p.bias + grp * g.mg : nullptr;
      float* yg = y + grp * g.mg * plane;
      for (int64_t b0 = oy0; b0 < oy1; b0 += band) {
        const int64_t b1 = std::min(oy1, b0 + band);
        GemmCall call;
        call.a = p.w + grp * g.mg * k;
        call.a_rs = k;
        call.a_cs = 1;
        call.b = src + b0 * wp;
        call.b_off = p.b_off;
        call.b_end = src_end;
        call.m = g.mg;
        call.n = (b1 - b0 - 1) * wp + ow;
        call.k = k;
        if (wp == ow) {
          // No wasted columns: write the output in place, bias first.
          call.c = yg + b0 * ow;
          call.ldc = plane;
          call.accumulate = bias != nullptr;
          if (bias) {
            for (int64_t m = 0; m < g.mg; ++m) {
              std::fill(yg + m * plane + b0 * ow, yg + m * plane + b1 * ow, bias[m]);
            }
          }
          run_gemm_call(call);
          continue;
        }
        float* tmp = scratch<float, 0>(g.mg * call.n);
        call.c = tmp;
        call.ldc = call.n;
        run_gemm_call(call);
        for (int64_t m = 0; m < g.mg; ++m) {
          const float bv = bias ? bias[m] : 0.0f;
          for (int64_t oy = b0; oy < b1; ++oy) {
            const float* t = tmp + m * call.n + (oy - b0) * wp;
            float* o = yg + m * plane + oy * ow;
            for (int64_t ox = 0; ox < ow; ++ox) o[ox] = t[ox] + bv;
          }
        }
      }
    }
    return;
  }
  if (p.bias != nullptr) {
    for (int64_t m = 0; m < g.m; ++m) {
      std::fill(y + m * plane + oy0 * ow, y + m * plane + oy1 * ow, p.bias[m]);
    }
  }
  // Bands of output rows keep the im2col buffer bounded.
  const int64_t band = std::max<int64_t>(1, kIm2colMaxFloats / std::max<int64_t>(1, k * ow));
  for (int64_t b0 = oy0; b0 < oy1; b0 += band) {
    const int64_t b1 = std::min(oy1, b0 + band);
    const int64_t cols = (b1 - b0) * ow;
    float* col = scratch<float, 0>(k * cols);
    for (int64_t grp = 0; grp < g.group; ++grp) {
      im2col(g, x + grp * g.cg * g.in_plane(), b0, b1, col);
      gemm(p.w + grp * g.mg * k, k, false, col, cols, false, y + grp * g.mg * plane + b0 * ow,
           plane, g.mg, cols, k, 1.0f, p.bias != nullptr);
    }
  }
}

// One output plane of a depthwise convolution: per kernel tap, a scaled row
// of the input is added to each output row (contiguous when stride is 1, so
// the inner loop vectorises).
void depthwise_plane(const ConvGeom& g, const float* x, const float* w, float bias, float* y) {
  const Window& win = g.win;
  const int64_t in_h = win.in[0], in_w = win.in[1], oh = win.out[0], ow = win.out[1];
  const int64_t kh = win.kernel[0], kw = win.kernel[1], sw = win.stride[1];
  int64_t* range = scratch<int64_t, 0>(2 * kw);
  for (int64_t j = 0; j < kw; ++j) {
    const int64_t x_off = j * win.dilation[1] - win.pad_begin[1];
    range[2 * j] = std::clamp<int64_t>(ceil_div(-x_off, sw), 0, ow);
    range[2 * j + 1] = std::clamp<int64_t>(ceil_div(in_w - x_off, sw), range[2 * j], ow);
  }
  for (int64_t oy = 0; oy < oh; ++oy) {
    float* yr = y + oy * ow;
    std::fill(yr, yr + ow, bias);
    for (int64_t i = 0; i < kh; ++i) {
      const int64_t iy = oy * win.stride[0] + i * win.dilation[0] - win.pad_begin[0];
      if (iy < 0 || iy >= in_h) continue;
      const float* xr = x + iy * in_w;
      for (int64_t j = 0; j < kw; ++j) {
        const float wv = w[i * kw + j];
        const int64_t x_off = j * win.dilation[1] - win.pad_begin[1];
        const int64_t lo = range[2 * j], hi = range[2 * j + 1];
        if (sw == 1) {
          const float* xs = xr + (lo + x_off);
          for (int64_t ox = lo; ox < hi; ++ox) yr[ox] += wv * xs[ox - lo];
        } else {
          for (int64_t ox = lo; ox < hi; ++ox) yr[ox] += wv * xr[ox * sw + x_off];
        }
      }
    }
  }
}

void run_conv(const Node& node, std::span<const Tensor* const> inputs,
              std::span<Tensor* const> outputs, ThreadPool& pool) {
  const Tensor& xt = req_input(node, inputs, 0);
  const Tensor& wt = req_input(node, inputs, 1);
  const Tensor* bt = opt_input(inputs, 2);
  const ConvGeom g = conv_geom(node, xt.shape(), wt.shape(), bt ? &bt->shape() : nullptr);
  Tensor& yt = checked_output(node, outputs, 0, g.out_shape());
  const float* x = xt.f32().data();
  const float* w = wt.f32().data();
  const float* bias = bt ? bt->f32().data() : nullptr;
  float* y = yt.f32().data();
  const int64_t in_image = g.c * g.in_plane();
  const int64_t out_image = g.m * g.out_plane();
  const int64_t oh = g.win.out[0];
  if (g.n == 0 || g.m == 0) return;

  if (g.depthwise()) {
    const int64_t kk = g.win.kernel[0] * g.win.kernel[1];
    const double work = double(g.out_plane()) * double(kk);
    pool.parallel_for(
        g.n * g.m,
        [&](int64_t p0, int64_t p1) {
          for (int64_t p = p0; p < p1; ++p) {
            const int64_t img = p / g.m, m = p % g.m;
            const int64_t c = m / g.mg;  // input channel of this output channel
            depthwise_plane(g, x + img * in_image + c * g.in_plane(), w + m * kk,
                            bias ? bias[m] : 0.0f, y + img * out_image + m * g.out_plane());
          }
        },
        grain_for(work, kChunkMinMacs));
    return;
  }

  ConvPlan plan;
  plan.g = &g;
  plan.x = x;
  plan.x_end = x + xt.numel();
  plan.w = w;
  plan.bias = bias;
  plan.y = y;
  const Window& win = g.win;
  plan.direct = win.stride[0] == 1 && win.stride[1] == 1;
  plan.level = simd_level();
  const int64_t vw = plan.level == SimdLevel::kAvx512 ? 16 : 8;
  // The channel-vectorised kernel pays a transpose per output element; it
  // wins where the virtual-width GEMM would waste over a fifth of its work
  // (narrow rows, wide kernels: LeNet's second conv wastes a third).
  const int64_t wp_direct = win.in[1] + win.pad_begin[1] + win.pad_end[1];
  plan.chvec =
      plan.direct && g.mg % vw == 0 && g.mg <= 64 && 5 * (wp_direct - win.out[1]) > wp_direct;
  if (plan.direct) {
    plan.padded = win.pad_begin[0] || win.pad_begin[1] || win.pad_end[0] || win.pad_end[1];
    plan.hp = win.in[0] + win.pad_begin[0] + win.pad_end[0];
    plan.wp = win.in[1] + win.pad_begin[1] + win.pad_end[1];
    if (plan.chvec) {
      plan.tile_rows = plan.level == SimdLevel::kAvx512 ? kChConvRowsAvx512 : 1;
      plan.hp += plan.tile_rows - 1;
      plan.wp += round_up(win.out[1], 8) - win.out[1];
      plan.mpad = round_up(g.mg, vw);
      const int64_t kk = g.k_size();
      float* wt = scratch<float, 4>(g.group * kk * plan.mpad);
      float* bp = scratch<float, 5>(g.group * plan.mpad);
      for (int64_t grp = 0; grp < g.group; ++grp) {
        float* wg = wt + grp * kk * plan.mpad;
        for (int64_t l = 0; l < kk; ++l) {
          for (int64_t m = 0; m < plan.mpad; ++m) {
            wg[l * plan.mpad + m] = m < g.mg ? w[(grp * g.mg + m) * kk + l] : 0.0f;
          }
        }
        for (int64_t m = 0; m < plan.mpad; ++m) {
          bp[grp * plan.mpad + m] = bias && m < g.mg ? bias[grp * g.mg + m] : 0.0f;
        }
      }
      plan.wt = wt;
      plan.bias_pad = bp;
    }
    // Shared read-only by all chunks; filled before any of them starts.
    int64_t* off = scratch<int64_t, 0>(g.k_size());
    int64_t l = 0;
    for (int64_t c = 0; c < g.cg; ++c)
      for (int64_t i = 0; i < win.kernel[0]; ++i)
        for (int64_t j = 0; j < win.kernel[1]; ++j) {
          off[l++] = (c * plan.hp + i * win.dilation[0]) * plan.wp + j * win.dilation[1];
        }
    plan.b_off = off;
  }
  // Work items are (image, output row): a batch splits by images, a single
  // large image by bands of rows, each chunk with its own scratch buffers.
  const double row_macs = double(g.m) * double(g.k_size()) * double(win.out[1]);
  pool.parallel_for(
      g.n * oh,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1;) {
          const int64_t img = r / oh;
          const int64_t oy0 = r % oh;
          const int64_t oy1 = std::min(oh, oy0 + (r1 - r));
          conv_rows(plan, img, oy0, oy1);
          r += oy1 - oy0;
        }
      },
      grain_for(row_macs, kChunkMinMacs));
}

// ---- MaxPool / AveragePool -------------------------------------------------

struct PoolGeom {
  int64_t n = 0, c = 0;
  Window win;
  bool count_include_pad = false;
  Shape out_shape() const { return {n, c, win.out[0], win.out[1]}; }
};

PoolGeom pool_geom(const Node& node, const Shape& x) {
  require_2d_input(node, x);
  if (node.op == OpType::kMaxPool) {
    require_outputs(node, 1, "MaxPool Indices output not supported");
  }
  if (!node.attrs.has("kernel_shape")) fail(node, "attribute 'kernel_shape' is required");
  const std::vector<int64_t> ks = node.attrs.get_ints("kernel_shape", {});
  if (ks.size() != 2) {
    fail(node, "attribute 'kernel_shape' " + join(ks) + " must have 2 values for a 2-D pool");
  }
  PoolGeom g;
  g.n = x[0];
  g.c = x[1];
  if (node.op == OpType::kAveragePool) {
    const int64_t cip = node.attrs.get_int("count_include_pad", 0);
    if (cip != 0 && cip != 1) {
      fail(node, "attribute 'count_include_pad' must be 0 or 1, is " + str(cip));
    }
    g.count_include_pad = cip == 1;
  }
  g.win = resolve_window(node, x[2], x[3], ks[0], ks[1],
                         node.op == OpType::kMaxPool ? WindowOp::kMaxPool : WindowOp::kAveragePool);
  return g;
}

// For each output position along one axis: the first and one-past-last kernel
// taps that fall inside the input, and the number of taps inside the padded
// input (what count_include_pad divides by; taps past the padded edge, which
// ceil_mode can create, never count).
struct TapRange {
  int64_t lo, hi, padded;
};

void tap_ranges(const Window& w, int d, TapRange* out) {
  const int64_t k = w.kernel[d], s = w.stride[d], dil = w.dilation[d];
  const int64_t in = w.in[d], pb = w.pad_begin[d], pe = w.pad_end[d];
  for (int64_t o = 0; o < w.out[d]; ++o) {
    const int64_t base = o * s - pb;  // input index of tap 0
    TapRange r;
    r.lo = std::clamp<int64_t>(ceil_div(-base, dil), 0, k);
    r.hi = std::clamp<int64_t>(ceil_div(in - base, dil), r.lo, k);
    r.padded = std::clamp<int64_t>(ceil_div(in + pe - base, dil), 0, k);
    out[o] = r;
  }
}

// Pooling is separable: each output row first reduces the valid input rows of
// its window into a temporary row (contiguous, vectorised), then reduces
// columns of that row: interior columns (whole window inside the input) with
// one vectorisable pass per kernel column, the few edge columns one by one.
void run_pool(const Node& node, std::span<const Tensor* const> inputs,
              std::span<Tensor* const> outputs, ThreadPool& pool) {
  const Tensor& xt = req_input(node, inputs, 0);
  const PoolGeom g = pool_geom(node, xt.shape());
  Tensor& yt = checked_output(node, outputs, 0, g.out_shape());
  const bool is_max = node.op == OpType::kMaxPool;
  const Window& w = g.win;
  const int64_t in_h = w.in[0], in_w = w.in[1], oh = w.out[0], ow = w.out[1];
  const int64_t kw = w.kernel[1], sw = w.stride[1], dw = w.dilation[1], pl = w.pad_begin[1];
  std::vector<TapRange> rows(static_cast<std::size_t>(oh)), cols(static_cast<std::size_t>(ow));
  tap_ranges(w, 0, rows.data());
  tap_ranges(w, 1, cols.data());
  // Interior columns [cx0, cx1): every tap inside the input.
  int64_t cx0 = 0;
  while (cx0 < ow && !(cols[std::size_t(cx0)].lo == 0 && cols[std::size_t(cx0)].hi == kw)) ++cx0;
  int64_t cx1 = cx0;
  while (cx1 < ow && cols[std::size_t(cx1)].lo == 0 && cols[std::size_t(cx1)].hi == kw) ++cx1;
  // Average pooling divides by (row count) * (column count); keep the
  // column reciprocals.
  std::vector<float> inv_cols;
  if (!is_max) {
    inv_cols.resize(static_cast<std::size_t>(ow));
    for (int64_t ox = 0; ox < ow; ++ox) {
      const TapRange& c = cols[std::size_t(ox)];
      const int64_t n = g.count_include_pad ? c.padded : c.hi - c.lo;
      inv_cols[std::size_t(ox)] = n > 0 ? 1.0f / float(n) : 0.0f;
    }
  }
  const float* x = xt.f32().data();
  float* y = yt.f32().data();
  const float lowest = std::numeric_limits<float>::lowest();
  const double work =
      double(oh) * (double(w.kernel[0]) * double(in_w) + double(ow) * double(w.kernel[1]));
  if (w.kernel[0] == 2 && w.kernel[1] == 2 && w.stride[0] == 2 && w.stride[1] == 2 &&
      w.dilation[0] == 1 && w.dilation[1] == 1 && w.pad_begin[0] == 0 && w.pad_begin[1] == 0 &&
      2 * oh <= in_h && 2 * ow <= in_w) {
    // Every window whole and inside the input (no ceil_mode partial windows).
    pool.parallel_for(
        g.n * g.c,
        [&](int64_t p0, int64_t p1) {
          for (int64_t p = p0; p < p1; ++p) {
            pool_2x2_s2(x + p * in_h * in_w, in_h, in_w, y + p * oh * ow, oh, ow, is_max);
          }
        },
        grain_for(work, kChunkMinElements));
    return;
  }
  pool.parallel_for(
      g.n * g.c,
      [&](int64_t p0, int64_t p1) {
        float* tmp = scratch<float, 0>(in_w);
        for (int64_t p = p0; p < p1; ++p) {
          const float* xp = x + p * in_h * in_w;
          float* yp = y + p * oh * ow;
          for (int64_t oy = 0; oy < oh; ++oy) {
            const TapRange& r = rows[static_cast<std::size_t>(oy)];
            const int64_t base_y = oy * w.stride[0] - w.pad_begin[0];
            float* yr = yp + oy * ow;
            if (r.lo == r.hi) {  // window rows all in padding
              std::fill(yr, yr + ow, is_max ? lowest : 0.0f);
              continue;
            }
            std::copy_n(xp + (base_y + r.lo * w.dilation[0]) * in_w, in_w, tmp);
            for (int64_t i = r.lo + 1; i < r.hi; ++i) {
              const float* xr = xp + (base_y + i * w.dilation[0]) * in_w;
              if (is_max) {
                for (int64_t ix = 0; ix < in_w; ++ix) tmp[ix] = std::max(tmp[ix], xr[ix]);
              } else {
                for (int64_t ix = 0; ix < in_w; ++ix) tmp[ix] += xr[ix];
              }
            }
            // Interior: tap j of output ox is tmp[ox * sw + j * dw - pl].
            if (cx1 > cx0) {
              const float* t0 = tmp + cx0 * sw - pl;
              float* yo = yr + cx0;
              const int64_t n = cx1 - cx0;
              for (int64_t o = 0; o < n; ++o) yo[o] = t0[o * sw];
              for (int64_t j = 1; j < kw; ++j) {
                const float* tj = t0 + j * dw;
                if (is_max) {
                  for (int64_t o = 0; o < n; ++o) yo[o] = std::max(yo[o], tj[o * sw]);
                } else {
                  for (int64_t o = 0; o < n; ++o) yo[o] += tj[o * sw];
                }
              }
            }
            for (int64_t ox = 0; ox < ow; ++ox) {
              if (ox == cx0) ox = cx1;
              if (ox >= ow) break;
              const TapRange& c = cols[static_cast<std::size_t>(ox)];
              const int64_t base_x = ox * sw - pl;
              float v = is_max ? lowest : 0.0f;
              for (int64_t j = c.lo; j < c.hi; ++j) {
                const float t = tmp[base_x + j * dw];
                v = is_max ? std::max(v, t) : v + t;
              }
              yr[ox] = v;
            }
            if (!is_max) {
              const int64_t rn = g.count_include_pad ? r.padded : r.hi - r.lo;
              const float inv_r = 1.0f / float(rn);
              for (int64_t ox = 0; ox < ow; ++ox) yr[ox] *= inv_r * inv_cols[std::size_t(ox)];
            }
          }
        }
      },
      grain_for(work, kChunkMinElements));
}

// ---- GlobalAveragePool --------------------------------------------------------

Shape global_pool_shape(const Node& node, const Shape& x) {
  if (x.size() < 3) {
    fail(node, "input must have rank >= 3 (N, C, spatial...), has shape " + shape_to_string(x));
  }
  Shape out(x.size(), 1);
  out[0] = x[0];
  out[1] = x[1];
  return out;
}

void run_global_average_pool(const Node& node, std::span<const Tensor* const> inputs,
                             std::span<Tensor* const> outputs, ThreadPool& pool) {
  const Tensor& xt = req_input(node, inputs, 0);
  Tensor& yt = checked_output(node, outputs, 0, global_pool_shape(node, xt.shape()));
  const int64_t planes = xt.dim(0) * xt.dim(1);
  const int64_t size = product(xt.shape(), 2, xt.rank());
  const float* x = xt.f32().data();
  float* y = yt.f32().data();
  pool.parallel_for(
      planes,
      [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          y[p] = ConstArrayMap(x + p * size, size).sum() / float(size);
        }
      },
      grain_for(double(size), kChunkMinElements));
}

// ---- Gemm -------------------------------------------------------------------

struct GemmGeom {
  int64_t m = 0, n = 0, k = 0;
  bool ta = false, tb = false;
  float alpha = 1.0f, beta = 1.0f;
  bool has_c = false;
  int64_t c_row_stride = 0, c_col_stride = 0;  // 0 along broadcast dimensions
};

GemmGeom gemm_geom(const Node& node, const Shape& a, const Shape& b, const Shape* c) {
  if (a.size() != 2 || b.size() != 2) {
    fail(node,
         "A and B must be 2-D, have shapes " + shape_to_string(a) + " and " + shape_to_string(b));
  }
  GemmGeom g;
  const int64_t ta = node.attrs.get_int("transA", 0);
  const int64_t tb = node.attrs.get_int("transB", 0);
  if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1)) {
    fail(node, "attributes 'transA' and 'transB' must be 0 or 1");
  }
  g.ta = ta == 1;
  g.tb = tb == 1;
  g.alpha = node.attrs.get_float("alpha", 1.0f);
  g.beta = node.attrs.get_float("beta", 1.0f);
  g.m = g.ta ? a[1] : a[0];
  g.k = g.ta ? a[0] : a[1];
  const int64_t kb = g.tb ? b[1] : b[0];
  g.n = g.tb ? b[0] : b[1];
  if (g.k != kb) {
    fail(node, "inner dimensions differ: op(A) is " + str(g.m) + "x" + str(g.k) + ", op(B) is " +
                   str(kb) + "x" + str(g.n));
  }
  if (c != nullptr) {
    // C broadcasts unidirectionally to (M, N).
    if (c->size() > 2) fail(node, "C must have rank <= 2, has shape " + shape_to_string(*c));
    const int64_t cr = c->size() == 2 ? (*c)[0] : 1;
    const int64_t cc = c->empty() ? 1 : c->back();
    if ((cr != 1 && cr != g.m) || (cc != 1 && cc != g.n)) {
      fail(node, "C " + shape_to_string(*c) + " does not broadcast to [" + str(g.m) + ", " +
                     str(g.n) + "]");
    }
    g.has_c = true;
    g.c_col_stride = cc == 1 ? 0 : 1;
    g.c_row_stride = cr == 1 ? 0 : cc;
  }
  return g;
}

void run_gemm(const Node& node, std::span<const Tensor* const> inputs,
              std::span<Tensor* const> outputs, ThreadPool& pool) {
  const Tensor& at = req_input(node, inputs, 0);
  const Tensor& bt = req_input(node, inputs, 1);
  const Tensor* ct = opt_input(inputs, 2);
  const GemmGeom g = gemm_geom(node, at.shape(), bt.shape(), ct ? &ct->shape() : nullptr);
  Tensor& yt = checked_output(node, outputs, 0, {g.m, g.n});
  float* y = yt.f32().data();
  // Y starts as beta * C (broadcast) and the product accumulates into it.
  const bool use_c = g.has_c && g.beta != 0.0f;
  if (use_c) {
    const float* c = ct->f32().data();
    for (int64_t i = 0; i < g.m; ++i) {
      float* yr = y + i * g.n;
      const float* cr = c + i * g.c_row_stride;
      if (g.c_col_stride == 1) {
        for (int64_t j = 0; j < g.n; ++j) yr[j] = g.beta * cr[j];
      } else {
        std::fill(yr, yr + g.n, g.beta * cr[0]);
      }
    }
  }
  parallel_gemm(pool, at.f32().data(), at.dim(1), g.ta, bt.f32().data(), bt.dim(1), g.tb, y, g.n,
                g.m, g.n, g.k, g.alpha, use_c);
}

// ---- MatMul -----------------------------------------------------------------

struct MatMulGeom {
  int64_t m = 1, n = 1, k = 1;
  Shape batch;                              // broadcast batch dimensions of the output
  std::vector<int64_t> a_stride, b_stride;  // per batch dim, 0 when broadcast
  int64_t batch_count = 1;
  bool b_batched = false;
  Shape out;
};

MatMulGeom matmul_geom(const Node& node, const Shape& a, const Shape& b) {
  if (a.empty() || b.empty()) {
    fail(node, "operands must have rank >= 1, have shapes " + shape_to_string(a) + " and " +
                   shape_to_string(b));
  }
  MatMulGeom g;
  // numpy semantics: a 1-D A is a row vector, a 1-D B a column vector, and
  // the added dimension is dropped from the result.
  const std::size_t ra = a.size(), rb = b.size();
  g.m = ra == 1 ? 1 : a[ra - 2];
  g.k = a[ra - 1];
  const int64_t kb = rb == 1 ? b[0] : b[rb - 2];
  g.n = rb == 1 ? 1 : b[rb - 1];
  if (g.k != kb) {
    fail(node, "inner dimensions differ: " + shape_to_string(a) + " x " + shape_to_string(b));
  }
  const std::size_t ba = ra > 2 ? ra - 2 : 0, bb = rb > 2 ? rb - 2 : 0;
  const std::size_t nb = std::max(ba, bb);
  g.batch.assign(nb, 1);
  g.a_stride.assign(nb, 0);
  g.b_stride.assign(nb, 0);
  int64_t sa = g.m * g.k, sb = g.k * g.n;  // element strides of the innermost batch dim
  for (std::size_t i = 0; i < nb; ++i) {
    const std::size_t d = nb - 1 - i;  // output batch dim, from the right
    const int64_t da = i < ba ? a[ba - 1 - i] : 1;
    const int64_t db = i < bb ? b[bb - 1 - i] : 1;
    if (da != db && da != 1 && db != 1) {
      fail(node, "batch dimensions of " + shape_to_string(a) + " and " + shape_to_string(b) +
                     " do not broadcast");
    }
    g.batch[d] = da == 1 ? db : da;
    g.a_stride[d] = da == 1 ? 0 : sa;
    g.b_stride[d] = db == 1 ? 0 : sb;
    sa *= da;
    sb *= db;
    if (db != 1) g.b_batched = true;
  }
  g.batch_count = product(g.batch, 0, nb);
  g.out = g.batch;
  if (ra != 1) g.out.push_back(g.m);
  if (rb != 1) g.out.push_back(g.n);
  return g;
}

void run_matmul(const Node& node, std::span<const Tensor* const> inputs,
                std::span<Tensor* const> outputs, ThreadPool& pool) {
  const Tensor& at = req_input(node, inputs, 0);
  const Tensor& bt = req_input(node, inputs, 1);
  const MatMulGeom g = matmul_geom(node, at.shape(), bt.shape());
  Tensor& yt = checked_output(node, outputs, 0, g.out);
  const float* a = at.f32().data();
  const float* b = bt.f32().data();
  float* y = yt.f32().data();
  if (g.batch_count == 0 || g.m == 0 || g.n == 0) return;
  if (!g.b_batched) {
    // A shared B: the batch of A folds into the rows of one large product
    // (A and Y are contiguous across the batch).
    parallel_gemm(pool, a, g.k, false, b, g.n, false, y, g.n, g.batch_count * g.m, g.n, g.k, 1.0f,
                  false);
    return;
  }
  // Element offsets into A and B of output batch entry t.
  auto offsets = [&](int64_t t, int64_t& ao, int64_t& bo) {
    ao = bo = 0;
    for (std::size_t d = g.batch.size(); d-- > 0;) {
      const int64_t idx = t % g.batch[d];
      t /= g.batch[d];
      ao += idx * g.a_stride[d];
      bo += idx * g.b_stride[d];
    }
  };
  const int64_t out_stride = g.m * g.n;
  const double macs = double(g.m) * double(g.n) * double(std::max<int64_t>(g.k, 1));
  if (g.batch_count < int64_t(pool.size()) && macs >= 2 * kChunkMinMacs) {
    // Fewer large products than threads: parallelise inside each.
    for (int64_t t = 0; t < g.batch_count; ++t) {
      int64_t ao, bo;
      offsets(t, ao, bo);
      parallel_gemm(pool, a + ao, g.k, false, b + bo, g.n, false, y + t * out_stride, g.n, g.m, g.n,
                    g.k, 1.0f, false);
    }
    return;
  }
  pool.parallel_for(
      g.batch_count,
      [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          int64_t ao, bo;
          offsets(t, ao, bo);
          gemm(a + ao, g.k, false, b + bo, g.n, false, y + t * out_stride, g.n, g.m, g.n, g.k, 1.0f,
               false);
        }
      },
      grain_for(macs, kChunkMinMacs));
}

// ---- BatchNormalization ------------------------------------------------------

void check_batchnorm(const Node& node, const Shape& x, std::span<const Shape* const> params) {
  if (node.attrs.get_int("training_mode", 0) != 0) {
    unsupported(node, "training_mode=1 not supported (inference only)");
  }
  if (node.attrs.has("spatial") && node.attrs.get_int("spatial", 1) != 1) {
    unsupported(node, "spatial=0 not supported");
  }
  require_outputs(node, 1,
                  "only output Y is supported (running mean/variance outputs are training-mode)");
  if (x.size() < 2) fail(node, "input must have rank >= 2 (N, C, ...), has " + shape_to_string(x));
  static const char* const kNames[] = {"scale", "B", "input_mean", "input_var"};
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Shape& p = *params[i];
    if (p.size() != 1 || p[0] != x[1]) {
      fail(node, std::string(kNames[i]) + " must have shape [" + str(x[1]) + "], has " +
                     shape_to_string(p));
    }
  }
}

void run_batchnorm(const Node& node, std::span<const Tensor* const> inputs,
                   std::span<Tensor* const> outputs, ThreadPool& pool) {
  const Tensor& xt = req_input(node, inputs, 0);
  const Tensor* p[4];
  const Shape* ps[4];
  for (std::size_t i = 0; i < 4; ++i) {
    p[i] = &req_input(node, inputs, i + 1);
    ps[i] = &p[i]->shape();
  }
  check_batchnorm(node, xt.shape(), ps);
  Tensor& yt = checked_output(node, outputs, 0, xt.shape());
  const float eps = node.attrs.get_float("epsilon", 1e-5f);
  const int64_t n = xt.dim(0), c = xt.dim(1);
  const int64_t size = product(xt.shape(), 2, xt.rank());
  // y = x * a + b with a = scale / sqrt(var + eps), b = B - mean * a.
  float* ab = scratch<float, 0>(2 * c);
  const float* scale = p[0]->f32().data();
  const float* shift = p[1]->f32().data();
  const float* mean = p[2]->f32().data();
  const float* var = p[3]->f32().data();
  for (int64_t i = 0; i < c; ++i) {
    ab[2 * i] = scale[i] / std::sqrt(var[i] + eps);
    ab[2 * i + 1] = shift[i] - mean[i] * ab[2 * i];
  }
  const float* x = xt.f32().data();
  float* y = yt.f32().data();
  pool.parallel_for(
      n * c,
      [&](int64_t p0, int64_t p1) {
        for (int64_t q = p0; q < p1; ++q) {
          const int64_t ch = q % c;
          ArrayMap(y + q * size, size) =
              ConstArrayMap(x + q * size, size) * ab[2 * ch] + ab[2 * ch + 1];
        }
      },
      grain_for(double(size), kChunkMinElements));
}

// ---- LayerNormalization -------------------------------------------------------

struct LayerNormGeom {
  int64_t axis = 0, outer = 1, inner = 1;
  Shape stat_shape;  // Mean / InvStdDev: X's shape with the normalised dims set to 1
};

// Scale and B broadcast (right-aligned) over the normalised dims only.
void check_norm_param(const Node& node, const Shape& x, int64_t axis, const Shape& p,
                      const char* what) {
  const std::size_t nd = x.size() - static_cast<std::size_t>(axis);
  bool ok = p.size() <= nd;
  for (std::size_t i = 0; ok && i < p.size(); ++i) {
    const int64_t pd = p[p.size() - 1 - i], xd = x[x.size() - 1 - i];
    ok = pd == 1 || pd == xd;
  }
  if (!ok) {
    fail(node, std::string(what) + " " + shape_to_string(p) +
                   " does not broadcast to the normalised dimensions of " + shape_to_string(x));
  }
}

LayerNormGeom layernorm_geom(const Node& node, const Shape& x, const Shape& scale,
                             const Shape* bias) {
  if (x.empty()) fail(node, "input must have rank >= 1");
  LayerNormGeom g;
  const int64_t rank = static_cast<int64_t>(x.size());
  g.axis = normalize_axis(node, node.attrs.get_int("axis", -1), rank);
  check_norm_param(node, x, g.axis, scale, "Scale");
  if (bias != nullptr) check_norm_param(node, x, g.axis, *bias, "B");
  g.outer = product(x, 0, static_cast<std::size_t>(g.axis));
  g.inner = product(x, static_cast<std::size_t>(g.axis), x.size());
  g.stat_shape = x;
  for (std::size_t d = static_cast<std::size_t>(g.axis); d < x.size(); ++d) g.stat_shape[d] = 1;
  return g;
}

// Expands a broadcast Scale/B to one value per normalised element (or returns
// it as is when it already has that many).
const float* expand_norm_param(const Tensor& p, const Shape& x, int64_t axis, int64_t inner,
                               float* buf) {
  if (p.numel() == inner) return p.f32().data();
  const std::vector<int64_t> xs = strides_of(Shape(x.begin() + axis, x.end()));
  const Shape& ps = p.shape();
  const std::vector<int64_t> pst = strides_of(ps);
  const std::size_t nd = xs.size();
  const float* src = p.f32().data();
  for (int64_t e = 0; e < inner; ++e) {
    int64_t off = 0, rest = e;
    for (std::size_t d = 0; d < nd; ++d) {
      const int64_t idx = rest / xs[d];
      rest %= xs[d];
      const std::size_t pd = d + ps.size();  // right-aligned
      if (pd >= nd && ps[pd - nd] != 1) off += idx * pst[pd - nd];
    }
    buf[e] = src[off];
  }
  return buf;
}

void run_layernorm(const Node& node, std::span<const Tensor* const> inputs,
                   std::span<Tensor* const> outputs, ThreadPool& pool) {
  const Tensor& xt = req_input(node, inputs, 0);
  const Tensor& st = req_input(node, inputs, 1);
  const Tensor* bt = opt_input(inputs, 2);
  const LayerNormGeom g = layernorm_geom(node, xt.shape(), st.shape(), bt ? &bt->shape() : nullptr);
  Tensor& yt = checked_output(node, outputs, 0, xt.shape());
  float* mean_out = nullptr;
  float* inv_out = nullptr;
  if (outputs.size() > 1 && outputs[1] != nullptr) {
    mean_out = checked_output(node, outputs, 1, g.stat_shape).f32().data();
  }
  if (outputs.size() > 2 && outputs[2] != nullptr) {
    inv_out = checked_output(node, outputs, 2, g.stat_shape).f32().data();
  }
  const float eps = node.attrs.get_float("epsilon", 1e-5f);
  const float* scale =
      expand_norm_param(st, xt.shape(), g.axis, g.inner, scratch<float, 0>(g.inner));
  const float* bias =
      bt ? expand_norm_param(*bt, xt.shape(), g.axis, g.inner, scratch<float, 1>(g.inner))
         : nullptr;
  const float* x = xt.f32().data();
  float* y = yt.f32().data();
  const int64_t inner = g.inner;
  pool.parallel_for(
      g.outer,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const ConstArrayMap xr(x + r * inner, inner);
          ArrayMap yr(y + r * inner, inner);
          // Two passes (mean, then centred squares) in float with Eigen's
          // vectorised tree reductions: close to numpy's pairwise sums.
          const float mean = inner > 0 ? xr.sum() / float(inner) : 0.0f;
          const float var = inner > 0 ? (xr - mean).square().sum() / float(inner) : 0.0f;
          const float inv = 1.0f / std::sqrt(var + eps);
          if (bias != nullptr) {
            yr = (xr - mean) * inv * ConstArrayMap(scale, inner) + ConstArrayMap(bias, inner);
          } else {
            yr = (xr - mean) * inv * ConstArrayMap(scale, inner);
          }
          if (mean_out) mean_out[r] = mean;
          if (inv_out) inv_out[r] = inv;
        }
      },
      grain_for(3.0 * double(inner), kChunkMinElements));
}

// ---- Softmax ----------------------------------------------------------------

struct SoftmaxGeom {
  int64_t outer = 1, len = 1, inner = 1;
};

SoftmaxGeom softmax_geom(const Node& node, const Shape& x) {
  const int64_t rank = static_cast<int64_t>(x.size());
  SoftmaxGeom g;
  if (node.opset >= 13) {
    const std::size_t axis =
        static_cast<std::size_t>(normalize_axis(node, node.attrs.get_int("axis", -1), rank));
    g.outer = product(x, 0, axis);
    g.len = x[axis];
    g.inner = product(x, axis + 1, x.size());
  } else {
    // Before opset 13 the input is flattened to 2-D at `axis` (default 1)
    // and each row is normalised.
    const std::size_t axis =
        static_cast<std::size_t>(normalize_axis(node, node.attrs.get_int("axis", 1), rank));
    g.outer = product(x, 0, axis);
    g.len = product(x, axis, x.size());
    g.inner = 1;
  }
  return g;
}

void run_softmax(const Node& node, std::span<const Tensor* const> inputs,
                 std::span<Tensor* const> outputs, ThreadPool& pool) {
  const Tensor& xt = req_input(node, inputs, 0);
  const SoftmaxGeom g = softmax_geom(node, xt.shape());
  Tensor& yt = checked_output(node, outputs, 0, xt.shape());
  const float* x = xt.f32().data();
  float* y = yt.f32().data();
  const int64_t len = g.len, inner = g.inner;
  if (len == 0 || inner == 0) return;
  pool.parallel_for(
      g.outer,
      [&](int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; ++o) {
          const float* xb = x + o * len * inner;
          float* yb = y + o * len * inner;
          if (inner == 1) {
            const ConstArrayMap xr(xb, len);
            ArrayMap yr(yb, len);
            yr = (xr - xr.maxCoeff()).exp();
            yr *= 1.0f / yr.sum();
            continue;
          }
          // Softmax along a strided axis: work on whole rows of `inner`
          // elements at a time so every loop stays contiguous.
          ArrayMap mx(scratch<float, 0>(inner), inner);
          ArrayMap sum(scratch<float, 1>(inner), inner);
          mx = ConstArrayMap(xb, inner);
          for (int64_t l = 1; l < len; ++l) mx = mx.max(ConstArrayMap(xb + l * inner, inner));
          sum.setZero();
          for (int64_t l = 0; l < len; ++l) {
            ArrayMap yr(yb + l * inner, inner);
            yr = (ConstArrayMap(xb + l * inner, inner) - mx).exp();
            sum += yr;
          }
          sum = sum.inverse();
          for (int64_t l = 0; l < len; ++l) ArrayMap(yb + l * inner, inner) *= sum;
        }
      },
      grain_for(3.0 * double(len) * double(inner), kChunkMinElements));
}

// ---- ReduceMean ---------------------------------------------------------------

struct ReduceGeom {
  std::vector<bool> reduced;  // per input dim
  bool identity = false;      // noop_with_empty_axes with no axes
  Shape out;
};

// `axes` is nullptr when no axes were given (attribute or input).
ReduceGeom reduce_geom(const Node& node, const Shape& x, const std::vector<int64_t>* axes) {
  const int64_t keepdims = node.attrs.get_int("keepdims", 1);
  const int64_t noop = node.attrs.get_int("noop_with_empty_axes", 0);
  if ((keepdims != 0 && keepdims != 1) || (noop != 0 && noop != 1)) {
    fail(node, "attributes 'keepdims' and 'noop_with_empty_axes' must be 0 or 1");
  }
  ReduceGeom g;
  const int64_t rank = static_cast<int64_t>(x.size());
  const bool empty = axes == nullptr || axes->empty();
  if (empty && noop == 1) {
    g.identity = true;
    g.reduced.assign(x.size(), false);
    g.out = x;
    return g;
  }
  g.reduced.assign(x.size(), empty);
  if (!empty) {
    for (int64_t a : *axes) {
      const std::size_t d = static_cast<std::size_t>(normalize_axis(node, a, rank));
      if (g.reduced[d]) fail(node, "axis " + str(a) + " appears twice in axes " + join(*axes));
      g.reduced[d] = true;
    }
  }
  for (std::size_t d = 0; d < x.size(); ++d) {
    if (!g.reduced[d]) {
      g.out.push_back(x[d]);
    } else if (keepdims == 1) {
      g.out.push_back(1);
    }
  }
  return g;
}

std::vector<int64_t> axes_from_tensor(const Node& node, const Tensor& t) {
  if (t.dtype() != DType::kInt64 || t.rank() > 1) {
    fail(node, "input 'axes' must be a 1-D int64 tensor, is " + std::string(dtype_name(t.dtype())) +
                   " " + shape_to_string(t.shape()));
  }
  return t.to_int_vector();
}

// Reduces one run of collapsed dimensions recursively; the innermost loops are
// contiguous (a sum for a reduced run, a vector add for a kept one).
struct Reducer {
  std::vector<int64_t> dims, in_stride, out_stride;
  std::vector<bool> red;
  const float* x;
  double* acc;
  void run(std::size_t d, int64_t in_off, int64_t out_off) const {
    const int64_t n = dims[d];
    if (d + 1 == dims.size()) {
      const float* src = x + in_off;
      if (red[d]) {
        acc[out_off] += double(ConstArrayMap(src, n).sum());
      } else {
        double* dst = acc + out_off;
        for (int64_t i = 0; i < n; ++i) dst[i] += double(src[i]);
      }
      return;
    }
    for (int64_t i = 0; i < n; ++i) {
      run(d + 1, in_off + i * in_stride[d], out_off + (red[d] ? 0 : i * out_stride[d]));
    }
  }
};

void run_reduce_mean(const Node& node, std::span<const Tensor* const> inputs,
                     std::span<Tensor* const> outputs, ThreadPool& pool) {
  const Tensor& xt = req_input(node, inputs, 0);
  std::vector<int64_t> axes;
  bool have_axes = false;
  if (node.opset >= 18 && opt_input(inputs, 1) != nullptr) {
    axes = axes_from_tensor(node, *inputs[1]);
    have_axes = true;
  } else if (node.attrs.has("axes")) {
    axes = node.attrs.get_ints("axes", {});
    have_axes = true;
  }
  const ReduceGeom g = reduce_geom(node, xt.shape(), have_axes ? &axes : nullptr);
  Tensor& yt = checked_output(node, outputs, 0, g.out);
  const float* x = xt.f32().data();
  float* y = yt.f32().data();
  if (g.identity) {
    std::copy_n(x, xt.numel(), y);
    return;
  }
  // Collapse adjacent dims that are both reduced or both kept (size-1 dims
  // are dropped: they change nothing).
  Reducer r;
  r.x = x;
  int64_t count = 1;
  for (std::size_t d = 0; d < xt.rank(); ++d) {
    const int64_t n = xt.dim(d);
    if (g.reduced[d]) count *= n;
    if (n == 1) continue;
    if (!r.dims.empty() && r.red.back() == g.reduced[d]) {
      r.dims.back() *= n;
    } else {
      r.dims.push_back(n);
      r.red.push_back(g.reduced[d]);
    }
  }
  const int64_t out_n = yt.numel();
  if (out_n == 0) return;
  const float inv = 1.0f / float(count);  // count 0 gives NaN, like numpy's mean of nothing
  if (r.dims.empty() || xt.numel() == 0) {
    for (int64_t i = 0; i < out_n; ++i) y[i] = xt.numel() == 0 ? 0.0f * inv : x[i] * inv;
    return;
  }
  // Collapsed runs alternate kept/reduced, so [reduced] or [kept, reduced]
  // is a reduction over trailing dims only (the common case): independent rows.
  if (r.red.back() && r.dims.size() <= 2) {
    const int64_t len = r.dims.back();
    pool.parallel_for(
        out_n,
        [&](int64_t o0, int64_t o1) {
          for (int64_t o = o0; o < o1; ++o) y[o] = ConstArrayMap(x + o * len, len).sum() * inv;
        },
        grain_for(double(len), kChunkMinElements));
    return;
  }
  const std::size_t nd = r.dims.size();
  r.in_stride.assign(nd, 1);
  r.out_stride.assign(nd, 1);
  for (std::size_t d = nd - 1; d-- > 0;) {
    r.in_stride[d] = r.in_stride[d + 1] * r.dims[d + 1];
    r.out_stride[d] = r.out_stride[d + 1] * (r.red[d + 1] ? 1 : r.dims[d + 1]);
  }
  double* acc = scratch<double, 0>(out_n);
  std::fill(acc, acc + out_n, 0.0);
  r.acc = acc;
  r.run(0, 0, 0);
  for (int64_t i = 0; i < out_n; ++i) y[i] = float(acc[i] * double(inv));
}

}  // namespace

// Test hook (declared in ops_internal.h): caps the SIMD level of the matrix
// kernels (0 baseline, 1 AVX2, 2 AVX-512) so one machine covers every variant.
void set_nn_simd_cap_for_testing(int level) {
  g_simd_cap.store(level, std::memory_order_relaxed);
}

bool is_nn_op(OpType op) {
  switch (op) {
    case OpType::kConv:
    case OpType::kMaxPool:
    case OpType::kAveragePool:
    case OpType::kGlobalAveragePool:
    case OpType::kGemm:
    case OpType::kMatMul:
    case OpType::kBatchNormalization:
    case OpType::kLayerNormalization:
    case OpType::kSoftmax:
    case OpType::kReduceMean: return true;
    default: return false;
  }
}

std::vector<TypedShape> infer_nn(const Node& node, std::span<const ValueInfo> inputs) {
  const DType f32 = DType::kFloat32;
  switch (node.op) {
    case OpType::kConv: {
      expect_inputs(node, inputs, 2, 3);
      require_float(node, inputs, 0, "X");
      require_float(node, inputs, 1, "W");
      const bool has_b = has_input(inputs, 2);
      if (has_b) require_float(node, inputs, 2, "B");
      const ConvGeom g =
          conv_geom(node, inputs[0].shape, inputs[1].shape, has_b ? &inputs[2].shape : nullptr);
      return {{f32, g.out_shape()}};
    }
    case OpType::kMaxPool:
    case OpType::kAveragePool: {
      expect_inputs(node, inputs, 1, 1);
      require_float(node, inputs, 0, "X");
      return {{f32, pool_geom(node, inputs[0].shape).out_shape()}};
    }
    case OpType::kGlobalAveragePool: {
      expect_inputs(node, inputs, 1, 1);
      require_float(node, inputs, 0, "X");
      return {{f32, global_pool_shape(node, inputs[0].shape)}};
    }
    case OpType::kGemm: {
      expect_inputs(node, inputs, 2, 3);
      require_float(node, inputs, 0, "A");
      require_float(node, inputs, 1, "B");
      const bool has_c = has_input(inputs, 2);
      if (has_c) require_float(node, inputs, 2, "C");
      const GemmGeom g =
          gemm_geom(node, inputs[0].shape, inputs[1].shape, has_c ? &inputs[2].shape : nullptr);
      return {{f32, {g.m, g.n}}};
    }
    case OpType::kMatMul: {
      expect_inputs(node, inputs, 2, 2);
      require_float(node, inputs, 0, "A");
      require_float(node, inputs, 1, "B");
      return {{f32, matmul_geom(node, inputs[0].shape, inputs[1].shape).out}};
    }
    case OpType::kBatchNormalization: {
      expect_inputs(node, inputs, 5, 5);
      static const char* const kNames[] = {"X", "scale", "B", "input_mean", "input_var"};
      for (std::size_t i = 0; i < 5; ++i) require_float(node, inputs, i, kNames[i]);
      const Shape* ps[4] = {&inputs[1].shape, &inputs[2].shape, &inputs[3].shape, &inputs[4].shape};
      check_batchnorm(node, inputs[0].shape, ps);
      return {{f32, inputs[0].shape}};
    }
    case OpType::kLayerNormalization: {
      expect_inputs(node, inputs, 2, 3);
      require_float(node, inputs, 0, "X");
      require_float(node, inputs, 1, "Scale");
      const bool has_b = has_input(inputs, 2);
      if (has_b) require_float(node, inputs, 2, "B");
      const LayerNormGeom g = layernorm_geom(node, inputs[0].shape, inputs[1].shape,
                                             has_b ? &inputs[2].shape : nullptr);
      return {{f32, inputs[0].shape}, {f32, g.stat_shape}, {f32, g.stat_shape}};
    }
    case OpType::kSoftmax: {
      expect_inputs(node, inputs, 1, 1);
      require_float(node, inputs, 0, "input");
      softmax_geom(node, inputs[0].shape);
      return {{f32, inputs[0].shape}};
    }
    case OpType::kReduceMean: {
      require_float(node, inputs, 0, "data");
      std::vector<int64_t> axes;
      bool have_axes = false;
      if (node.opset >= 18) {
        expect_inputs(node, inputs, 1, 2);
        if (has_input(inputs, 1)) {
          if (node.attrs.has("axes")) fail(node, "axes given both as attribute and as input");
          if (inputs[1].constant == nullptr) {
            unsupported(node, "input 'axes' must be a constant (output shapes must be static)");
          }
          axes = axes_from_tensor(node, *inputs[1].constant);
          have_axes = true;
        }
      } else {
        expect_inputs(node, inputs, 1, 1);
      }
      if (!have_axes && node.attrs.has("axes")) {
        axes = node.attrs.get_ints("axes", {});
        have_axes = true;
      }
      return {{f32, reduce_geom(node, inputs[0].shape, have_axes ? &axes : nullptr).out}};
    }
    default: fail(node, "is not a neural-network op");
  }
}

void run_nn(const Node& node, std::span<const Tensor* const> inputs,
            std::span<Tensor* const> outputs, ThreadPool& pool) {
  switch (node.op) {
    case OpType::kConv: return run_conv(node, inputs, outputs, pool);
    case OpType::kMaxPool:
    case OpType::kAveragePool: return run_pool(node, inputs, outputs, pool);
    case OpType::kGlobalAveragePool: return run_global_average_pool(node, inputs, outputs, pool);
    case OpType::kGemm: return run_gemm(node, inputs, outputs, pool);
    case OpType::kMatMul: return run_matmul(node, inputs, outputs, pool);
    case OpType::kBatchNormalization: return run_batchnorm(node, inputs, outputs, pool);
    case OpType::kLayerNormalization: return run_layernorm(node, inputs, outputs, pool);
    case OpType::kSoftmax: return run_softmax(node, inputs, outputs, pool);
    case OpType::kReduceMean: return run_reduce_mean(node, inputs, outputs, pool);
    default: fail(node, "is not a neural-network op");
  }
}

}  // namespace blindfold::model::detail
