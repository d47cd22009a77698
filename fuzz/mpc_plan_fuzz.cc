// libFuzzer target: arbitrary bytes as the MPC plan a client or helper
// receives from the server (backends/mpc/plan.h, JSON). Plan::parse must
// either throw Error(kBadMessage) or return a plan that serializes, parses
// again without error and serializes to the same text (the second
// serialization is a fixed point), and that describe() can print.
// Seeds: the plans of models/*.onnx (fuzz_seeds.cc); dictionary:
// mpc_plan_fuzz.dict.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "backends/mpc/plan.h"
#include "core/error.h"

using blindfold::backends::mpcplan::Plan;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Plan p;
  try {
    p = Plan::parse(text);
  } catch (const blindfold::Error& e) {
    if (e.category() != blindfold::ErrorCategory::kBadMessage) std::abort();
    return 0;
  }
  // A plan that parsed must survive its own round trip: what the server
  // serializes, a peer parses (any throw here is a bug: abort by escaping).
  const std::string once = p.serialize();
  const Plan q = Plan::parse(once);
  const std::string twice = q.serialize();
  if (once != twice) std::abort();
  (void)p.describe();
  return 0;
}
