// Memory for polynomial data: a per-thread cache of large blocks, so that the
// ciphertexts and temporaries of repeated operations reuse memory instead of
// taking fresh pages from the operating system each time (glibc serves every
// block at or above its mmap threshold with a new mapping: at N = 16384 a key
// switch would otherwise spend about a quarter of its time in page faults).
// SEAL's MemoryPool plays the same role.
//
// Blocks of at least kPoolMinBytes are kept on free, up to kPoolMaxBytes per
// thread, and handed out again for a request of exactly the same size; the
// cache is released when its thread exits. A block may be freed by another
// thread than the one that allocated it (it then joins that thread's cache).
// Pooled memory is not wiped: secret keys do not use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace blindfold::he {

inline constexpr std::size_t kPoolMinBytes = 64 * 1024;
inline constexpr std::size_t kPoolMaxBytes = std::size_t{512} << 20;

namespace detail {
void* pool_allocate(std::size_t bytes);
void pool_deallocate(void* p, std::size_t bytes) noexcept;
}  // namespace detail

/// A std::allocator replacement over the pool, 64-byte aligned. Its
/// construct() without arguments default-initializes (leaves integers
/// uninitialized), so vector(n) and resize(n) skip the zero fill; pass a
/// value (vector(n, 0)) where zeros are needed.
template <typename T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() noexcept = default;
  template <typename U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) { return static_cast<T*>(detail::pool_allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { detail::pool_deallocate(p, n * sizeof(T)); }

  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }

  template <typename U>
  bool operator==(const PoolAllocator<U>&) const noexcept {
    return true;
  }
};

/// Polynomial storage: RNS rows of 64-bit residues.
using PolyVector = std::vector<std::uint64_t, PoolAllocator<std::uint64_t>>;

}  // namespace blindfold::he
