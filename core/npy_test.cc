#include "core/npy.h"

#include <gtest/gtest.h>

#include "core/error.h"

using namespace blindfold;

TEST(Npy, RoundTripFloatAndInt) {
  const Tensor f = Tensor::from_floats({2, 3}, {1, 2, 3, 4, 5, 6.5f});
  const Tensor g = parse_npy(to_npy(f));
  EXPECT_EQ(g.shape(), f.shape());
  EXPECT_EQ(g.f32()[5], 6.5f);
  const Tensor i = Tensor::from_ints({4}, {1, -2, 3, 1LL << 40});
  const Tensor j = parse_npy(to_npy(i));
  EXPECT_EQ(j.dtype(), DType::kInt64);
  EXPECT_EQ(j.i64()[3], 1LL << 40);
  const Tensor e = parse_npy(to_npy(Tensor(DType::kFloat32, {0, 3})));
  EXPECT_EQ(e.numel(), 0);
}

TEST(Npy, MalformedRefused) {
  const std::string good = to_npy(Tensor::from_floats({2}, {1, 2}));
  EXPECT_THROW(parse_npy(good.substr(0, good.size() - 1)), Error);  // short payload
  EXPECT_THROW(parse_npy(good + "x"), Error);                       // long payload
  EXPECT_THROW(parse_npy("\x93NUMPX"), Error);
  std::string bad_shape = good;
  bad_shape.replace(bad_shape.find("(2,)"), 4, "&2, ");
  EXPECT_THROW(parse_npy(bad_shape), Error);
  std::string big_endian = good;
  big_endian.replace(big_endian.find("<f4"), 3, ">f4");
  EXPECT_THROW(parse_npy(big_endian), Error);
}
