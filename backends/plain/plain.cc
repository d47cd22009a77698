#include "backends/plain/plain.h"

#include <chrono>

#include "core/error.h"

namespace blindfold::backends {

TrustModel PlainBackend::trust_model() const {
  TrustModel t;
  t.summary = "on-device: the model owner ships the weights; the input never leaves the client";
  t.input = "client only";
  t.weights = "client (the weights are shipped to it)";
  t.output = "client only";
  t.trusted = "the client's own device";
  t.adversary = "n/a (no other party)";
  t.security_bits = 0;
  return t;
}

Support PlainBackend::supports(const model::Graph&) const {
  return Support::yes();
}

void PlainBackend::setup(const model::Graph& graph, const BackendOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  ThreadPool* pool = &ThreadPool::global();
  if (options.threads != 0) {
    own_pool_ = std::make_unique<ThreadPool>(options.threads);
    pool = own_pool_.get();
  }
  executor_ = std::make_unique<model::Executor>(graph, *pool);
  setup_cost_.ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  setup_cost_.bytes = 0;
}

std::vector<Tensor> PlainBackend::infer(const std::vector<Tensor>& inputs, RunMetrics* metrics) {
  if (!executor_) throw_error(ErrorCategory::kInternal, "plain backend used before setup");
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Tensor> out = executor_->run(inputs);
  if (metrics) {
    metrics->offline = {};
    metrics->online.ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    metrics->online.bytes = 0;
    metrics->rounds = 0;
  }
  return out;
}

}  // namespace blindfold::backends
