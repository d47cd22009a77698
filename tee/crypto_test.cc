#include "tee/crypto.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "core/error.h"
#include "tee/test_util.h"

namespace blindfold::tee {
namespace {

using testutil::read_testdata;

TEST(TeeCrypto, HexAndTime) {
  auto b = from_hex("00A0ff");
  ASSERT_TRUE(b);
  EXPECT_EQ(to_hex(*b), "00a0ff");
  EXPECT_FALSE(from_hex("0"));
  EXPECT_FALSE(from_hex("zz"));
  auto t = parse_time("2025-06-19T10:56:11Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_time(*t), "2025-06-19T10:56:11Z");
  EXPECT_TRUE(parse_time("2025-06-19T10:56:11.123Z"));
  EXPECT_FALSE(parse_time("2025-02-30T10:56:11Z"));
  EXPECT_FALSE(parse_time("2025-06-19 10:56:11"));
  EXPECT_EQ(tcb_status_name(*parse_tcb_status("ConfigurationAndSWHardeningNeeded")),
            "ConfigurationAndSWHardeningNeeded");
  EXPECT_FALSE(parse_tcb_status("Fine"));
}

TEST(TeeCrypto, IntelRootIsSelfSignedAndSnpChainVerifies) {
  Bytes root_der = read_testdata("dcap-qvl/TrustedRootCA.der");
  Certificate root = Certificate::from_der(root_der, "Intel root");
  EXPECT_NE(root.subject().find("Intel SGX Root CA"), std::string::npos);
  Time t = *parse_time("2025-07-01T00:00:00Z");
  verify_chain(root, {}, root, {}, t, "Intel root");
  // Expired: the root is valid until 2049; before its notBefore (2018) it is not.
  EXPECT_THROW(verify_chain(root, {}, root, {}, *parse_time("2010-01-01T00:00:00Z"), "Intel root"),
               Error);

  Bytes pem = read_testdata("go-sev-guest/ask_ark_milan.pem");
  auto chain = Certificate::chain_from_pem(
      std::string_view(reinterpret_cast<const char*>(pem.data()), pem.size()), "ASK/ARK");
  ASSERT_EQ(chain.size(), 2u);
  Certificate vcek = Certificate::from_der(read_testdata("go-sev-guest/vcek.testcer"), "VCEK");
  verify_chain(vcek, std::span(chain.data(), 1), chain[1], {}, t, "VCEK");
  EXPECT_THROW(verify_chain(vcek, {}, chain[1], {}, t, "VCEK"), Error);
  EXPECT_THROW(Certificate::from_der(Bytes{0x30, 0x03, 1, 2, 3}, "junk"), Error);
}

}  // namespace
}  // namespace blindfold::tee
