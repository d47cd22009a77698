#include "he/ckks_params.h"

#include <cmath>

namespace blindfold::he {

CkksParameters CkksParameters::n8192_default() {
  CkksParameters p;
  p.n = 8192;
  p.chain_bits = {60, 40, 40};
  return p;
}

CkksParameters CkksParameters::n16384_default() {
  CkksParameters p;
  p.n = 16384;
  p.chain_bits = {60, 40, 40, 40, 40, 40, 40};
  return p;
}

std::string CkksParameters::describe() const {
  std::string s = "N=" + std::to_string(n) + " {";
  for (std::size_t i = 0; i < chain_bits.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(chain_bits[i]);
  }
  s += "|";
  for (int j = 0; j < special_primes; ++j) {
    if (j) s += ",";
    s += std::to_string(special_bits);
  }
  s += "}";
  if (dnum) s += " dnum=" + std::to_string(dnum);
  return s;
}

}  // namespace blindfold::he
