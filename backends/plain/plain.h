// The plaintext backend: the model runs where the data is (on-device), in
// float32. It is the reference every private backend is checked against and
// the baseline of every overhead ratio.
#pragma once

#include <memory>

#include "backends/backend.h"
#include "model/executor.h"

namespace blindfold::backends {

class PlainBackend final : public Backend {
 public:
  std::string name() const override { return "plain"; }
  TrustModel trust_model() const override;
  Support supports(const model::Graph& graph) const override;
  void setup(const model::Graph& graph, const BackendOptions& options) override;
  PhaseCost setup_cost() const override { return setup_cost_; }
  std::vector<Tensor> infer(const std::vector<Tensor>& inputs, RunMetrics* metrics) override;

 private:
  std::unique_ptr<ThreadPool> own_pool_;
  std::unique_ptr<model::Executor> executor_;
  PhaseCost setup_cost_;
};

}  // namespace blindfold::backends
