#include "core/memory.h"

#include <cstdlib>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace blindfold {

void tune_allocator() noexcept {
#if defined(__GLIBC__)
  // Setting either disables glibc's dynamic thresholds, so set both.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace blindfold
