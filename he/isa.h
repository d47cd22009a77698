// Which instruction-set variant of a he/ kernel runs. Every kernel has a
// portable scalar path; the AVX-512 paths are chosen at run time with
// __builtin_cpu_supports, because the project builds for x86-64-v3 (GCC 12.2
// miscompiles some code when AVX-512 is enabled globally, cmake/arch_check.cc).
#pragma once

#include <string_view>

namespace blindfold::he {

enum class Isa {
  kScalar,      // portable C++ with unsigned __int128 products
  kAvx512,      // AVX-512 F+DQ, 64-bit lanes, 64x64-bit high products emulated
  kAvx512Ifma,  // AVX-512 IFMA52 (Boemer et al. 2021, Intel HEXL): moduli below 2^50
};

/// Whether this CPU (and operating system) can run `isa`. Cached after the
/// first call; thread-safe.
bool isa_supported(Isa isa) noexcept;

/// "scalar", "avx512", "avx512ifma": used in test and benchmark names.
std::string_view isa_name(Isa isa) noexcept;

}  // namespace blindfold::he
