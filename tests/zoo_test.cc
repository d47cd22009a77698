// ONNX files exported by PyTorch from architectures other than the shipped
// ones (models/train/export_arch_zoo.py: dynamic batch, BatchNorm as its own
// node, Pad before AveragePool, a transformer block, grouped convolutions),
// run through `blindfold run` and compared with PyTorch's outputs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>

#include "core/npy.h"

namespace fs = std::filesystem;

TEST(Zoo, BlindfoldRunMatchesPyTorch) {
  const fs::path zoo = BLINDFOLD_ZOO_DIR;
  ASSERT_TRUE(fs::exists(zoo)) << "run models/train/export_arch_zoo.py first (ctest does)";
  int checked = 0;
  for (const auto& e : fs::directory_iterator(zoo)) {
    if (e.path().extension() != ".onnx") continue;
    const std::string stem = (zoo / e.path().stem()).string();
    const std::string out = stem + ".blindfold.npy";
    const std::string cmd = std::string(BLINDFOLD_BIN) + " run " + e.path().string() + " --input " +
                            stem + ".input.npy --output " + out;
    const int status = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
    const blindfold::Tensor got = blindfold::read_npy(out);
    const blindfold::Tensor want = blindfold::read_npy(stem + ".expected.npy");
    ASSERT_EQ(got.shape(), want.shape()) << e.path();
    float worst = 0;
    for (std::size_t i = 0; i < got.f32().size(); ++i) {
      worst = std::max(worst, std::fabs(got.f32()[i] - want.f32()[i]));
    }
    std::printf("%-28s max |blindfold - pytorch| = %.3g\n", e.path().filename().c_str(), worst);
    EXPECT_LE(worst, 1e-4f) << e.path();
    ++checked;
  }
  EXPECT_GE(checked, 4);
}
