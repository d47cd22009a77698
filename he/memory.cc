#include "he/memory.h"

#include <map>

namespace blindfold::he::detail {
namespace {

constexpr std::align_val_t kAlign{64};

// Set once a thread's cache is destroyed: blocks freed later (by static
// objects destroyed at exit, after the thread-local cache) bypass the cache.
// A trivially destructible thread_local stays usable until the thread ends.
thread_local bool cache_gone = false;

struct Cache {
  std::multimap<std::size_t, void*> blocks;
  std::size_t bytes = 0;
  ~Cache() {
    for (auto& [size, p] : blocks) ::operator delete(p, kAlign);
    blocks.clear();
    cache_gone = true;
  }
};

Cache* cache() {
  if (cache_gone) return nullptr;
  thread_local Cache c;
  return &c;
}

}  // namespace

void* pool_allocate(std::size_t bytes) {
  if (bytes >= kPoolMinBytes) {
    if (Cache* c = cache()) {
      const auto it = c->blocks.find(bytes);
      if (it != c->blocks.end()) {
        void* p = it->second;
        c->blocks.erase(it);
        c->bytes -= bytes;
        return p;
      }
    }
  }
  return ::operator new(bytes, kAlign);
}

void pool_deallocate(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  if (bytes >= kPoolMinBytes) {
    Cache* c = cache();
    if (c != nullptr && c->bytes + bytes <= kPoolMaxBytes) {
      try {
        c->blocks.emplace(bytes, p);
        c->bytes += bytes;
        return;
      } catch (...) {
        // No memory for the map node: free the block instead.
      }
    }
  }
  ::operator delete(p, kAlign);
}

}  // namespace blindfold::he::detail
