// Test helper of the tee/ tests: the real attestation evidence of
// ../shared/testdata/attestation (read from the project root, where ctest
// runs the tests). A missing file fails the test: those vectors are required.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "tee/evidence.h"

namespace blindfold::tee::testutil {

inline Bytes read_testdata(const std::string& rel) {
  const std::string path = "../shared/testdata/attestation/" + rel;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "missing test vector " << path
                  << " (tests read ../shared/testdata from the project root)";
  }
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

}  // namespace blindfold::tee::testutil
