// Forced include (-include) of mpc/fss.cc in the fuzz build when the compiler
// does not know __builtin_cpu_supports("vaes") (clang before 16; Debian 12
// has clang 14): the builtin is routed through a function that answers
// "vaes" with CPUID (leaf 7, ECX bit 9) and the other features fss.cc asks
// for with the builtin itself. fuzz/CMakeLists.txt adds it only when the
// check fails; GCC and newer clang compile fss.cc unchanged.
#pragma once

#include <cpuid.h>

#include <cstdlib>
#include <cstring>

inline bool blindfold_fuzz_cpu_supports(const char* f) {
  if (std::strcmp(f, "vaes") == 0) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((c >> 9) & 1u);
  }
  if (std::strcmp(f, "avx512f") == 0) return __builtin_cpu_supports("avx512f");
  if (std::strcmp(f, "avx512dq") == 0) return __builtin_cpu_supports("avx512dq");
  if (std::strcmp(f, "avx512vl") == 0) return __builtin_cpu_supports("avx512vl");
  if (std::strcmp(f, "aes") == 0) return __builtin_cpu_supports("aes");
  if (std::strcmp(f, "bmi2") == 0) return __builtin_cpu_supports("bmi2");
  std::abort();  // a feature this shim does not know: add it
}

#define __builtin_cpu_supports(f) blindfold_fuzz_cpu_supports(f)
