// Configure-time check (CMakeLists.txt): the chosen -march flags must run on
// this CPU and must not hit GCC 12.2's AVX-512 miscompile, in which the
// int64 array {1, 1, 1, 0} is stored as a broadcast {1, 1, 1, 1}
// (seen with -march=native / x86-64-v4 on Cooper Lake, Debian 12's g++ 12.2).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

__attribute__((noinline)) std::vector<std::int64_t> make() {
  return std::vector<std::int64_t>({1, 1, 1, 0});
}

int main() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::puts("no-avx2");
    return 2;
  }
#endif
  const std::vector<std::int64_t> v = make();
  std::int64_t init[4] = {1, 1, 1, 0};
  auto* p = new std::int64_t[4];
  std::memcpy(p, init, sizeof init);
  const bool ok = v[3] == 0 && p[3] == 0;
  delete[] p;
  std::puts(ok ? "ok" : "miscompiled");
  return ok ? 0 : 1;
}
