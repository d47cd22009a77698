#include "app/datasets.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace blindfold::app {

namespace {

constexpr const char* kFmnistDir = "/usr/share/datasets/fashion-mnist";
constexpr const char* kCancerCsv =
    "/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv";

std::string gunzip_file(const std::string& path, std::size_t max_bytes) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) {
    throw_error(ErrorCategory::kIo,
                "cannot open '" + path +
                    "' (is Debian's dataset-fashion-mnist installed? run scripts/setup)");
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      gzclose(f);
      throw_error(ErrorCategory::kBadMessage, "'" + path + "' is not valid gzip data");
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      gzclose(f);
      throw_error(ErrorCategory::kBadMessage, "'" + path + "' is larger than expected");
    }
  }
  gzclose(f);
  return out;
}

std::uint32_t be32(const std::string& b, std::size_t off) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(b[off])) << 24) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(b[off + 1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(b[off + 2])) << 8) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[off + 3]));
}

Dataset load_fmnist(std::int64_t limit) {
  const std::string ipath = std::string(kFmnistDir) + "/t10k-images-idx3-ubyte.gz";
  const std::string lpath = std::string(kFmnistDir) + "/t10k-labels-idx1-ubyte.gz";
  const std::string img = gunzip_file(ipath, 64u << 20);
  const std::string lab = gunzip_file(lpath, 1u << 20);
  if (img.size() < 16 || be32(img, 0) != 2051) {
    throw_error(ErrorCategory::kBadMessage, "'" + ipath + "' is not an IDX image file");
  }
  if (lab.size() < 8 || be32(lab, 0) != 2049) {
    throw_error(ErrorCategory::kBadMessage, "'" + lpath + "' is not an IDX label file");
  }
  const std::int64_t n = be32(img, 4), rows = be32(img, 8), cols = be32(img, 12);
  if (rows != 28 || cols != 28 || static_cast<std::int64_t>(img.size()) != 16 + n * rows * cols ||
      static_cast<std::int64_t>(lab.size()) != 8 + n || be32(lab, 4) != n) {
    throw_error(ErrorCategory::kBadMessage, "Fashion-MNIST test files have inconsistent sizes");
  }
  const std::int64_t keep = limit > 0 ? std::min(limit, n) : n;
  Dataset d;
  d.name = "fmnist";
  d.num_classes = 10;
  d.source = ipath;
  std::vector<float> px(static_cast<std::size_t>(keep * 784));
  for (std::int64_t i = 0; i < keep * 784; ++i) {
    px[static_cast<std::size_t>(i)] =
        static_cast<float>(static_cast<unsigned char>(img[static_cast<std::size_t>(16 + i)])) /
        255.0f;
  }
  d.inputs = Tensor::from_floats({keep, 1, 28, 28}, std::move(px));
  for (std::int64_t i = 0; i < keep; ++i) {
    const int l = static_cast<unsigned char>(lab[static_cast<std::size_t>(8 + i)]);
    if (l > 9) throw_error(ErrorCategory::kBadMessage, "Fashion-MNIST label out of range");
    d.labels.push_back(l);
  }
  return d;
}

Dataset load_cancer(std::int64_t limit, const std::string& models_dir) {
  std::ifstream in(kCancerCsv);
  if (!in) {
    throw_error(ErrorCategory::kIo,
                std::string("cannot open '") + kCancerCsv +
                    "' (is Debian's python3-sklearn installed? run scripts/setup)");
  }
  std::string line;
  std::getline(in, line);  // "569,30,malignant,benign"
  std::vector<std::vector<float>> rows;
  std::vector<int> labels;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<float> r;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) r.push_back(std::stof(cell));
    if (r.size() != 31)
      throw_error(ErrorCategory::kBadMessage, "breast-cancer row without 31 columns");
    labels.push_back(static_cast<int>(r.back()));
    r.pop_back();
    rows.push_back(std::move(r));
  }
  if (rows.size() != 569)
    throw_error(ErrorCategory::kBadMessage, "breast-cancer table does not have 569 rows");
  const std::string ipath = models_dir + "/cancer-logreg.test-indices.txt";
  std::ifstream idx(ipath);
  if (!idx) throw_error(ErrorCategory::kIo, "cannot open the test split '" + ipath + "'");
  std::vector<std::size_t> test;
  std::int64_t v;
  while (idx >> v) {
    if (v < 0 || v >= 569)
      throw_error(ErrorCategory::kBadMessage, "test index out of range in '" + ipath + "'");
    test.push_back(static_cast<std::size_t>(v));
  }
  const std::int64_t n = static_cast<std::int64_t>(test.size());
  const std::int64_t keep = limit > 0 ? std::min(limit, n) : n;
  Dataset d;
  d.name = "cancer";
  d.num_classes = 2;
  d.source = std::string(kCancerCsv) + " (test split " + ipath + ")";
  std::vector<float> x;
  for (std::int64_t i = 0; i < keep; ++i) {
    const auto& r = rows[test[static_cast<std::size_t>(i)]];
    x.insert(x.end(), r.begin(), r.end());
    d.labels.push_back(labels[test[static_cast<std::size_t>(i)]]);
  }
  d.inputs = Tensor::from_floats({keep, 30}, std::move(x));
  return d;
}

}  // namespace

Dataset load_dataset(const std::string& name, std::int64_t limit, const std::string& models_dir) {
  if (name == "fmnist") return load_fmnist(limit);
  if (name == "cancer") return load_cancer(limit, models_dir);
  throw_error(ErrorCategory::kBadInput, "unknown dataset '" + name + "' (known: fmnist, cancer)");
}

Tensor slice_rows(const Tensor& t, std::int64_t begin, std::int64_t end) {
  Shape s = t.shape();
  const std::int64_t row = s[0] ? t.numel() / s[0] : 0;
  s[0] = end - begin;
  const auto src = t.f32();
  return Tensor::from_floats(
      s, std::vector<float>(src.begin() + begin * row, src.begin() + end * row));
}

std::vector<int> predicted_labels(const Tensor& outputs) {
  const Shape& s = outputs.shape();
  if (s.empty())
    throw_error(ErrorCategory::kBadInput, "model output is a scalar, expected [N, classes]");
  const std::int64_t n = s[0];
  const std::int64_t c = n ? outputs.numel() / n : 0;
  const auto v = outputs.f32();
  std::vector<int> out;
  out.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const float* r = v.data() + i * c;
    if (c == 1) {
      out.push_back(r[0] > 0.5f ? 1 : 0);
    } else {
      out.push_back(static_cast<int>(std::max_element(r, r + c) - r));
    }
  }
  return out;
}

}  // namespace blindfold::app
