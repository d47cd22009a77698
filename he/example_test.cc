// The example of he/ckks.h, run as a test: x -> rotate(x^2, 1) through
// encryption, evaluation, serialization and decryption.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <vector>

#include "he/ckks.h"

namespace blindfold::he {
namespace {

TEST(CkksExample, SquareRotateSerializeDecrypt) {
  const std::vector<std::complex<double>> values = {{0.5, 0.25}, {-1.0, 0.0}, {0.125, -0.75}};

  auto ctx = CkksContext::create(CkksParameters::n8192_default());
  KeyGenerator keygen(ctx);
  const PublicKey pk = keygen.create_public_key();
  const RelinKeys rk = keygen.create_relin_keys();
  const GaloisKeys gk = keygen.create_galois_keys(std::vector<int>{1}, false);
  CkksEncoder encoder(ctx);
  Encryptor encryptor(ctx, pk);
  Evaluator eval(ctx);
  Ciphertext x = encryptor.encrypt(encoder.encode(values, std::exp2(40)));
  Ciphertext y = eval.rescale(eval.relinearize(eval.multiply(x, x), rk));
  y = eval.rotate(y, 1, gk);
  const std::vector<std::uint8_t> wire = save(*ctx, y);
  Decryptor decryptor(ctx, keygen.secret_key());
  const auto out = encoder.decode(decryptor.decrypt(load_ciphertext(*ctx, wire)));

  // Slot j now holds values[j + 1]^2 (zero past the end).
  for (std::size_t j = 0; j < 4; ++j) {
    const std::complex<double> want = j + 1 < values.size() ? values[j + 1] * values[j + 1] : 0.0;
    EXPECT_LT(std::abs(out[j] - want), std::exp2(-20)) << j;
  }
}

}  // namespace
}  // namespace blindfold::he
