// Helpers shared by the net/ tests (not part of the library).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "core/error.h"

namespace blindfold::net::testing_util {

/// The Error `f` throws; a test failure (and a placeholder) if it throws none.
inline Error error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error thrown";
  return Error(ErrorCategory::kInternal, "none");
}

inline bool contains(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

}  // namespace blindfold::net::testing_util
