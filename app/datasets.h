// Labelled evaluation data read from Debian's packages at run time:
// Fashion-MNIST (dataset-fashion-mnist, IDX files) and scikit-learn's
// bundled breast-cancer table (python3-sklearn). Nothing is downloaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace blindfold::app {

struct Dataset {
  std::string name;
  Tensor inputs;            // [N, ...] float32, preprocessed as the models expect
  std::vector<int> labels;  // N labels
  int num_classes = 0;
  std::string source;  // where it was read from
};

/// "fmnist" (the 10,000 test images, pixels / 255, [N,1,28,28]) or "cancer"
/// (the held-out test rows listed in models/cancer-logreg.test-indices.txt,
/// raw features, [N,30]). `limit` > 0 keeps the first `limit` samples.
/// Throws Error(kBadInput) for an unknown name, kIo when the package is
/// missing, kBadMessage when a file is malformed.
Dataset load_dataset(const std::string& name, std::int64_t limit, const std::string& models_dir);

/// Rows [begin, end) of a dataset's inputs as a tensor.
Tensor slice_rows(const Tensor& t, std::int64_t begin, std::int64_t end);

/// Predicted labels from model outputs: argmax over the last axis for more
/// than one output column, otherwise probability > 0.5.
std::vector<int> predicted_labels(const Tensor& outputs);

}  // namespace blindfold::app
