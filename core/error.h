// The one error type of Blindfold. Library code never ends the process: it
// throws an Error carrying a category, and the CLI and servers convert it at
// the boundary (exit code and one clear line, or an error message to a peer).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace blindfold {

enum class ErrorCategory {
  kBadModel,            // a model file or graph that cannot be imported or run
  kBadInput,            // user input: tensors, files, flags, datasets
  kBadMessage,          // bytes from a peer or from disk that fail validation
  kInsecureParameters,  // a parameter set below the required security level
  kPeerFailure,         // a peer went away, timed out or reported an error
  kUnsupported,         // a valid request this build or backend cannot serve
  kIo,                  // the operating system refused (open, read, write)
  kInternal,            // a broken invariant: a bug in Blindfold
};

/// Name of a category as printed by the CLI ("bad model", ...).
std::string_view category_name(ErrorCategory c) noexcept;

/// Process exit code the CLI uses for a category (2..9; 1 is left for
/// unexpected exceptions).
int exit_code(ErrorCategory c) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCategory category, const std::string& what)
      : std::runtime_error(what), category_(category) {}
  ErrorCategory category() const noexcept { return category_; }

 private:
  ErrorCategory category_;
};

[[noreturn]] inline void throw_error(ErrorCategory c, const std::string& what) {
  throw Error(c, what);
}

}  // namespace blindfold
