// Graph passes run after import: constant folding (with the plaintext
// kernels), BatchNorm folding into a preceding Conv, and dead-code pruning.
// Each keeps the graph's meaning exactly (up to float rounding) and leaves
// shapes annotated.
#pragma once

#include "model/graph.h"

namespace blindfold::model {

/// Evaluates every node whose inputs are all constants and turns its outputs
/// into constants. Returns the number of nodes folded.
int fold_constants(Graph& graph);

/// Folds BatchNormalization (inference form) into the Conv that feeds it when
/// the Conv's weights are constant and the BatchNorm is its only reader.
/// BatchNorms elsewhere stay as nodes. Returns the number folded.
int fold_batchnorm(Graph& graph);

/// Replaces Identity nodes (and Cast to the same dtype) by their input where
/// the output is not a graph output. Returns the number removed.
int remove_identities(Graph& graph);

/// All of the above, then prune and re-annotate shapes.
void optimize(Graph& graph);

}  // namespace blindfold::model
