#include "core/tensor.h"

#include <gtest/gtest.h>

#include <atomic>

#include "core/error.h"
#include "core/thread_pool.h"

using namespace blindfold;

TEST(Tensor, NumelChecksOverflowAndCaps) {
  EXPECT_EQ(checked_numel({2, 3, 4}), 24);
  EXPECT_EQ(checked_numel({}), 1);
  EXPECT_EQ(checked_numel({5, 0, 1 << 30}), 0);
  EXPECT_THROW(checked_numel({-1, 2}), Error);
  EXPECT_THROW(checked_numel({1 << 20, 1 << 20}), Error);
  EXPECT_THROW(checked_numel({INT64_MAX, INT64_MAX}), Error);
  EXPECT_THROW(checked_numel(Shape(9, 1)), Error);
}

TEST(Tensor, ResetReusesAndTypedAccessIsChecked) {
  Tensor t(DType::kFloat32, {2, 2});
  EXPECT_EQ(t.f32().size(), 4u);
  EXPECT_THROW(t.i64(), Error);
  t.reset(DType::kInt64, {3});
  EXPECT_EQ(t.i64().size(), 3u);
  EXPECT_THROW(Tensor::from_floats({2}, {1, 2, 3}), Error);
  EXPECT_THROW(t.reshape({4}), Error);
  EXPECT_EQ(Tensor::from_floats({2}, {3, -4}).to_int_vector(), (std::vector<std::int64_t>{3, -4}));
  EXPECT_THROW(Tensor::from_floats({1}, {0.5f}).to_int_vector(), Error);
}

TEST(ThreadPool, CoversRangeOnceAndPropagatesErrors) {
  ThreadPool pool(2);
  for (std::int64_t n : {1, 2, 3, 17, 1000}) {
    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
    pool.parallel_for(n, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) hits[static_cast<std::size_t>(i)]++;
    });
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
  EXPECT_THROW(pool.parallel_for(100,
                                 [](std::int64_t b, std::int64_t) {
                                   if (b == 0) throw Error(ErrorCategory::kInternal, "boom");
                                 }),
               Error);
  // Still usable after an exception, and nested calls run inline.
  std::atomic<int> total{0};
  pool.parallel_for(4, [&](std::int64_t b, std::int64_t e) {
    pool.parallel_for(
        10, [&](std::int64_t b2, std::int64_t e2) { total += static_cast<int>(e2 - b2); });
    (void)b;
    (void)e;
  });
  EXPECT_EQ(total.load(), 20);
}

TEST(ThreadPool, FewerChunksThanWorkers) {
  ThreadPool pool(4);
  for (int rep = 0; rep < 200; ++rep) {
    std::atomic<int> sum{0};
    pool.parallel_for(2, [&](std::int64_t b, std::int64_t e) { sum += static_cast<int>(e - b); });
    EXPECT_EQ(sum.load(), 2);
  }
}
