#include "core/error.h"

namespace blindfold {

std::string_view category_name(ErrorCategory c) noexcept {
  switch (c) {
    case ErrorCategory::kBadModel: return "bad model";
    case ErrorCategory::kBadInput: return "bad input";
    case ErrorCategory::kBadMessage: return "bad message";
    case ErrorCategory::kInsecureParameters: return "insecure parameters";
    case ErrorCategory::kPeerFailure: return "peer failure";
    case ErrorCategory::kUnsupported: return "unsupported";
    case ErrorCategory::kIo: return "i/o error";
    case ErrorCategory::kInternal: return "internal error";
  }
  return "error";
}

int exit_code(ErrorCategory c) noexcept {
  switch (c) {
    case ErrorCategory::kBadModel: return 2;
    case ErrorCategory::kBadInput: return 3;
    case ErrorCategory::kBadMessage: return 4;
    case ErrorCategory::kInsecureParameters: return 5;
    case ErrorCategory::kPeerFailure: return 6;
    case ErrorCategory::kUnsupported: return 7;
    case ErrorCategory::kIo: return 8;
    case ErrorCategory::kInternal: return 9;
  }
  return 1;
}

}  // namespace blindfold
