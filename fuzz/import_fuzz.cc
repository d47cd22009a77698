// libFuzzer target: arbitrary bytes as an ONNX model. Import must either
// succeed or throw blindfold::Error; a successful import is also run once at
// batch 1 (inputs zero) when it is small, so kernels see fuzzed shapes too.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "model/executor.h"
#include "model/onnx_import.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace blindfold;
  try {
    const model::Graph g =
        model::import_onnx(std::string_view(reinterpret_cast<const char*>(data), size));
    std::int64_t total = 0;
    for (const auto& v : g.values) {
      if (!v.shape_known) return 0;
      std::int64_t n = 1;
      for (auto d : v.shape) n *= d;
      total += n;
    }
    if (total > (1 << 22)) return 0;  // keep each execution cheap
    std::vector<Tensor> inputs;
    for (int id : g.inputs) inputs.emplace_back(g.value(id).dtype, g.value(id).shape_at(1));
    ThreadPool pool(1);
    model::Executor ex(g, pool);
    ex.run(inputs);
  } catch (const Error&) {
    // Refused with a clear error: the expected outcome for bad bytes.
  }
  return 0;
}
