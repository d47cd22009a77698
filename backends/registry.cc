// The list of backends. A function, not a global registry: nothing to
// initialise, nothing to overwrite.
#include "backends/backend.h"
#include "backends/he/he_backend.h"
#include "backends/mpc/mpc_backend.h"
#include "backends/plain/plain.h"
#include "backends/tee/tee_backend.h"
#include "core/error.h"

namespace blindfold::backends {

std::vector<std::string> backend_names() {
  return {"plain", "he", "mpc2", "mpc3", "tee"};
}

std::unique_ptr<Backend> make_backend(std::string_view name) {
  if (name == "plain") return std::make_unique<PlainBackend>();
  if (name == "he") return std::make_unique<HeBackend>();
  if (name == "mpc2") return std::make_unique<MpcBackend>(2);
  if (name == "mpc3") return std::make_unique<MpcBackend>(3);
  if (name == "tee") return std::make_unique<TeeBackend>();
  std::string known;
  for (const auto& n : backend_names()) known += (known.empty() ? "" : ", ") + n;
  throw_error(ErrorCategory::kBadInput,
              "unknown backend '" + std::string(name) + "' (this build has: " + known + ")");
}

}  // namespace blindfold::backends
