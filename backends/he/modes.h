// Internal to backends/he: the two modes' builders, which Program::build
// (program.cc) dispatches to.
#pragma once

#include <memory>

#include "backends/he/layers.h"
#include "backends/he/program.h"

namespace blindfold::backends::heplan {

/// latency.cc: one sample packed in slots (see program.h).
std::unique_ptr<Program> build_latency(const Chain& chain, const ProgramOptions& options);
Support latency_support(const Chain& chain);

/// batch.cc: one sample per slot, scalar weights (see program.h).
std::unique_ptr<Program> build_batch(const Chain& chain, const ProgramOptions& options);
Support batch_support(const Chain& chain);

}  // namespace blindfold::backends::heplan
