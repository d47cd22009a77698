// libFuzzer target: arbitrary bytes as a .npy file. parse_npy must either
// return a tensor whose size matches its shape or throw blindfold::Error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const blindfold::Tensor t =
        blindfold::parse_npy(std::string_view(reinterpret_cast<const char*>(data), size));
    if (t.numel() != blindfold::checked_numel(t.shape())) std::abort();
  } catch (const blindfold::Error&) {
  }
  return 0;
}
