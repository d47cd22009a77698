// libFuzzer targets for the he/ loaders (he/serialize.h), one executable per
// loader (BF_HE_LOADER selects it, fuzz/CMakeLists.txt builds them all):
// arbitrary bytes against a small fixed test context. A loader must either
// throw Error(kBadMessage) or return an object that saves and loads again
// (and, for the byte-canonical formats, saves to the same bytes).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/error.h"
#include "he/context.h"
#include "he/serialize.h"

#ifndef BF_HE_LOADER
#define BF_HE_LOADER 0
#endif

namespace {

using namespace blindfold::he;

const CkksContext& context() {
  static const auto ctx = [] {
    CkksParameters p;
    p.n = 16;
    p.chain_bits = {50, 40};
    return CkksContext::create_insecure_for_tests(p);
  }();
  return *ctx;
}

template <typename Load>
void check(std::span<const std::uint8_t> in, Load load, bool canonical) {
  const CkksContext& ctx = context();
  try {
    const auto obj = load(ctx, in);
    const std::vector<std::uint8_t> again = [&] {
      if constexpr (std::is_same_v<std::decay_t<decltype(obj)>, SecretKey>) {
        return save_secret_key(ctx, obj);
      } else {
        return save(ctx, obj);
      }
    }();
    if (canonical && !std::equal(in.begin(), in.end(), again.begin(), again.end())) std::abort();
    load(ctx, again);  // must not throw
  } catch (const blindfold::Error& e) {
    if (e.category() != blindfold::ErrorCategory::kBadMessage) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  switch (BF_HE_LOADER) {
    case 0: check(in, load_ciphertext, true); break;
    case 1: check(in, load_plaintext, true); break;
    case 2: check(in, load_public_key, true); break;
    case 3: check(in, load_relin_keys, true); break;
    case 4: check(in, load_galois_keys, false); break;  // saved in element order
    case 5: check(in, load_secret_key, true); break;
    default: std::abort();
  }
  return 0;
}
