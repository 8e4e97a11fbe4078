#include "mesh/csr.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include "mesh/openssl_ptr.hpp"

namespace ferry::mesh {
namespace {

// A CSR made with the openssl library directly, for the shapes MakeKeyAndCsr never makes.
std::string Csr(EVP_PKEY* key, const std::string& sans, EVP_PKEY* signer = nullptr) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  if (!sans.empty()) {
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    sk_X509_EXTENSION_push(
        exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, sans.c_str()));
    X509_REQ_add_extensions(req.get(), exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  X509_REQ_set_pubkey(req.get(), key);
  X509_REQ_sign(req.get(), signer != nullptr ? signer : key, EVP_sha256());
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);  // NOLINT(google-runtime-int)
  return std::string(data, static_cast<std::size_t>(n));
}

PkeyPtr Ec(const char* curve) { return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve)); }

TEST(CsrTest, AMadeCsrPassesTheChecks) {
  auto made = MakeKeyAndCsr("spiffe://example.org/service/orders");
  ASSERT_TRUE(made) << made.error().message();
  EXPECT_NE(made->key_pem.find("PRIVATE KEY"), std::string::npos);
  auto checked = CheckCsr(made->csr_pem, "example.org");
  ASSERT_TRUE(checked) << checked.error().message();
  EXPECT_EQ(checked->spiffe_id, "spiffe://example.org/service/orders");
  EXPECT_EQ(checked->service, "orders");
  ASSERT_TRUE(checked->public_key);
  // The key in the CSR is the one written out.
  BioPtr bio(BIO_new_mem_buf(made->key_pem.data(), static_cast<int>(made->key_pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(key);
  EXPECT_EQ(EVP_PKEY_eq(key.get(), checked->public_key.get()), 1);
}

TEST(CsrTest, MakeRefusesWhatIsNotAServiceId) {
  EXPECT_FALSE(MakeKeyAndCsr("spiffe://example.org"));
  EXPECT_FALSE(MakeKeyAndCsr("https://example.org/service/orders"));
}

TEST(CsrTest, AnotherTrustDomainIsRefused) {
  auto made = MakeKeyAndCsr("spiffe://evil.org/service/orders");
  ASSERT_TRUE(made);
  auto checked = CheckCsr(made->csr_pem, "example.org");
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(checked.error().message().find("evil.org"), std::string::npos);
}

TEST(CsrTest, NotACsrIsRefused) {
  EXPECT_FALSE(CheckCsr("", "example.org"));
  EXPECT_FALSE(CheckCsr("hello", "example.org"));
  EXPECT_FALSE(CheckCsr(std::string(kMaxCsrBytes + 1, 'A'), "example.org"));
}

TEST(CsrTest, ASignatureByAnotherKeyIsRefused) {
  auto key = Ec("P-256");
  auto other = Ec("P-256");
  auto checked = CheckCsr(Csr(key.get(), "URI:spiffe://example.org/service/orders", other.get()),
                          "example.org");
  ASSERT_FALSE(checked);
  EXPECT_NE(checked.error().message().find("signature"), std::string::npos);
}

TEST(CsrTest, NoneOrSeveralUriSansAreRefused) {
  auto key = Ec("P-256");
  EXPECT_FALSE(CheckCsr(Csr(key.get(), ""), "example.org"));
  EXPECT_FALSE(CheckCsr(Csr(key.get(), "DNS:orders.example.org"), "example.org"));
  EXPECT_FALSE(CheckCsr(Csr(key.get(),
                            "URI:spiffe://example.org/service/a,"
                            "URI:spiffe://example.org/service/b"),
                        "example.org"));
  EXPECT_FALSE(CheckCsr(Csr(key.get(), "URI:spiffe://example.org/other/a"), "example.org"));
  EXPECT_TRUE(CheckCsr(Csr(key.get(), "URI:spiffe://example.org/service/a,DNS:a.example.org"),
                       "example.org"));
}

TEST(CsrTest, WeakOrOddKeysAreRefused) {
  auto p384 = Ec("P-384");
  EXPECT_TRUE(CheckCsr(Csr(p384.get(), "URI:spiffe://example.org/service/a"), "example.org"));
  auto p521 = Ec("P-521");
  EXPECT_FALSE(CheckCsr(Csr(p521.get(), "URI:spiffe://example.org/service/a"), "example.org"));
  PkeyPtr rsa1024(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(1024)));
  ASSERT_TRUE(rsa1024);
  auto weak = CheckCsr(Csr(rsa1024.get(), "URI:spiffe://example.org/service/a"), "example.org");
  ASSERT_FALSE(weak);
  EXPECT_NE(weak.error().message().find("1024"), std::string::npos);
}

}  // namespace
}  // namespace ferry::mesh
