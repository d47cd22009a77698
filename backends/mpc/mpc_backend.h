// Backends "mpc2" (server + client + a dealer that only does preprocessing)
// and "mpc3" (three computing parties, honest majority): secret-shared
// inference of any model the MPC plan can lower (backends/mpc/plan.h).
//
// The roles are functions over net::Channels (role.h), so the same code runs
// here in-process (three threads over memory channels: tests, `run`, `eval`,
// `bench`) and as separate processes (`blindfold party --backend mpc2 ...`).
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backends/backend.h"
#include "backends/mpc/plan.h"
#include "net/memory.h"

namespace blindfold::backends {

struct MpcSettings {
  int frac_bits = 12;
  mpcplan::Output output = mpcplan::Output::kLogits;
};

class MpcBackend final : public Backend {
 public:
  /// parties: 2 (mpc2, with the dealer) or 3 (mpc3).
  explicit MpcBackend(int parties, MpcSettings settings = {});
  ~MpcBackend() override;

  std::string name() const override { return parties_ == 2 ? "mpc2" : "mpc3"; }
  TrustModel trust_model() const override;
  Support supports(const model::Graph& graph) const override;
  void setup(const model::Graph& graph, const BackendOptions& options) override;
  PhaseCost setup_cost() const override { return setup_cost_; }
  std::vector<Tensor> infer(const std::vector<Tensor>& inputs, RunMetrics* metrics) override;

  /// The lowered plan (after setup).
  const mpcplan::Plan& plan() const { return plan_; }

  /// The three parties' meshes (tests inspect channel statistics).
  net::Mesh& mesh(int party) { return meshes_.at(static_cast<std::size_t>(party)); }

 private:
  struct Parties;
  int parties_;
  MpcSettings settings_;
  mpcplan::Plan plan_;
  std::vector<Tensor> weights_;
  std::vector<net::Mesh> meshes_;
  std::vector<std::shared_ptr<net::RoundCounter>> rounds_;  // one per party
  std::unique_ptr<Parties> p_;
  PhaseCost setup_cost_;
};

/// Trust models of the two backends (also printed by `blindfold party`).
TrustModel mpc_trust_model(int parties);

}  // namespace blindfold::backends
