// RNS-CKKS, the whole library in one include: approximate homomorphic
// arithmetic on vectors of complex numbers (Cheon, Kim, Kim and Song 2017,
// "Homomorphic encryption for arithmetic of approximate numbers"; the full-RNS
// variant of Cheon, Han, Kim, Kim and Song 2018; hybrid key switching of Han
// and Ki 2020, "Better bootstrapping for approximate homomorphic encryption";
// parameters checked against the HomomorphicEncryption.org security
// standard). he/ knows nothing of models or networks.
//
//   auto ctx = CkksContext::create(CkksParameters::n8192_default());
//   KeyGenerator keygen(ctx);                 // secret key from the OS CSPRNG
//   const PublicKey pk = keygen.create_public_key();
//   const RelinKeys rk = keygen.create_relin_keys();
//   const GaloisKeys gk = keygen.create_galois_keys(std::vector<int>{1}, false);
//   CkksEncoder encoder(ctx);
//   Encryptor encryptor(ctx, pk);
//   Evaluator eval(ctx);
//   Ciphertext x = encryptor.encrypt(encoder.encode(values, std::exp2(40)));
//   Ciphertext y = eval.rescale(eval.relinearize(eval.multiply(x, x), rk));
//   y = eval.rotate(y, 1, gk);
//   std::vector<std::uint8_t> wire = save(*ctx, y);       // he/serialize.h
//   Decryptor decryptor(ctx, keygen.secret_key());
//   auto out = encoder.decode(decryptor.decrypt(load_ciphertext(*ctx, wire)));
//
// he/example_test.cc runs this example. Errors are blindfold::Error:
// kInsecureParameters for refused parameters, kBadInput for mismatched
// levels, scales or contexts, kBadMessage for hostile bytes.
#pragma once

#include "he/ciphertext.h"
#include "he/ckks_params.h"
#include "he/context.h"
#include "he/encoder.h"
#include "he/encryptor.h"
#include "he/evaluator.h"
#include "he/keys.h"
#include "he/serialize.h"
