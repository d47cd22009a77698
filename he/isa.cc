#include "he/isa.h"

namespace blindfold::he {
namespace {

struct CpuFeatures {
  bool avx512 = false;
  bool ifma = false;
};

CpuFeatures detect() noexcept {
  CpuFeatures f;
#if defined(__x86_64__)
  __builtin_cpu_init();
  // libgcc also checks that the OS saves the AVX-512 state (XCR0).
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
  f.ifma = f.avx512 && __builtin_cpu_supports("avx512ifma");
#endif
  return f;
}

}  // namespace

bool isa_supported(Isa isa) noexcept {
  static const CpuFeatures features = detect();
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx512: return features.avx512;
    case Isa::kAvx512Ifma: return features.ifma;
  }
  return false;
}

std::string_view isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Ifma: return "avx512ifma";
  }
  return "unknown";
}

}  // namespace blindfold::he
