// Plaintext engine benchmarks: the shipped models end to end at several batch
// sizes and thread counts. `make bench`, or build/bench/blindfold_bench
// --benchmark_filter=lenet.
#include <benchmark/benchmark.h>

#include <string>

#include "model/executor.h"
#include "model/onnx_import.h"

namespace {

using namespace blindfold;

void run_model(benchmark::State& state, const char* file) {
  const model::Graph g =
      model::import_onnx_file(std::string(BLINDFOLD_SOURCE_DIR) + "/models/" + file);
  const std::int64_t batch = state.range(0);
  ThreadPool pool(static_cast<unsigned>(state.range(1)));
  model::Executor ex(g, pool);
  const model::Value& in = g.value(g.inputs[0]);
  Tensor x(in.dtype, in.shape_at(batch));
  for (std::size_t i = 0; i < x.f32().size(); ++i)
    x.f32()[i] = static_cast<float>(i % 255) / 255.0f;
  const std::vector<Tensor> inputs{x};
  for (auto _ : state) {
    auto out = ex.run(inputs);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_plain_fmnist_lenet(benchmark::State& s) {
  run_model(s, "fmnist-lenet.onnx");
}
void BM_plain_fmnist_mlp(benchmark::State& s) {
  run_model(s, "fmnist-mlp.onnx");
}
void BM_plain_fmnist_he(benchmark::State& s) {
  run_model(s, "fmnist-he.onnx");
}

// Args: {batch, threads}
BENCHMARK(BM_plain_fmnist_lenet)
    ->ArgNames({"batch", "threads"})
    ->Args({1, 1})
    ->Args({1, 2})
    ->Args({64, 1})
    ->Args({64, 2})
    ->Args({256, 2})
    ->UseRealTime();
BENCHMARK(BM_plain_fmnist_mlp)
    ->ArgNames({"batch", "threads"})
    ->Args({1, 1})
    ->Args({64, 2})
    ->UseRealTime();
BENCHMARK(BM_plain_fmnist_he)
    ->ArgNames({"batch", "threads"})
    ->Args({1, 1})
    ->Args({64, 2})
    ->UseRealTime();

}  // namespace
