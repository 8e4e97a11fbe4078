#include "mesh/ca.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "mesh/openssl_ptr.hpp"
#include "mesh/spiffe.hpp"

namespace ferry::mesh {
namespace {

namespace fs = std::filesystem;

class CaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            ("ferry_ca_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  X509Ptr ReadCert(const std::string& path) {
    BioPtr bio(BIO_new_file(path.c_str(), "r"));
    EXPECT_TRUE(bio) << path;
    if (!bio) return nullptr;
    return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  }
  static mode_t Mode(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
  }

  std::string dir_;
};

TEST_F(CaTest, InitWritesARootWithTheTrustDomain) {
  ASSERT_TRUE(InitCa(dir_ + "/nested", "example.org"));
  auto root = ReadCert(dir_ + "/nested/ca.pem");
  ASSERT_TRUE(root);
  EXPECT_EQ(SpiffeIdOf(root.get()), "spiffe://example.org");
  EXPECT_EQ(X509_check_ca(root.get()), 1);
  EXPECT_EQ(Mode(dir_ + "/nested/ca.key"), 0600u);
  EXPECT_FALSE(fs::exists(dir_ + "/nested/ca.key.tmp"));
}

TEST_F(CaTest, InitRefusesToOverwrite) {
  ASSERT_TRUE(InitCa(dir_, "example.org"));
  std::ifstream before(dir_ + "/ca.pem");
  std::stringstream first;
  first << before.rdbuf();
  auto again = InitCa(dir_, "other.org");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  std::ifstream after(dir_ + "/ca.pem");
  std::stringstream second;
  second << after.rdbuf();
  EXPECT_EQ(first.str(), second.str());
}

TEST_F(CaTest, InitRefusesABadTrustDomain) {
  auto result = InitCa(dir_, "Not Valid");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir_));
}

TEST_F(CaTest, IssuedLeafVerifiesAndNamesTheService) {
  ASSERT_TRUE(InitCa(dir_, "example.org"));
  auto issued = IssueService(dir_, "orders", std::chrono::hours(2));
  ASSERT_TRUE(issued) << issued.error().message();
  EXPECT_EQ(issued->spiffe_id, "spiffe://example.org/service/orders");
  EXPECT_EQ(Mode(issued->key_path), 0600u);

  auto root = ReadCert(dir_ + "/ca.pem");
  auto leaf = ReadCert(issued->cert_path);
  ASSERT_TRUE(root && leaf);
  EXPECT_EQ(SpiffeIdOf(leaf.get()), "spiffe://example.org/service/orders");
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  EXPECT_TRUE(X509_get_extended_key_usage(leaf.get()) & XKU_SSL_SERVER);
  EXPECT_TRUE(X509_get_extended_key_usage(leaf.get()) & XKU_SSL_CLIENT);
  EXPECT_TRUE(X509_get_key_usage(leaf.get()) & KU_DIGITAL_SIGNATURE);

  std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE, X509_STORE_free>> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root.get());
  std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX, X509_STORE_CTX_free>> ctx(
      X509_STORE_CTX_new());
  ASSERT_EQ(X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr), 1);
  EXPECT_EQ(X509_verify_cert(ctx.get()), 1)
      << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));

  // The ttl is honoured: not after ~ now + 2h, not before a minute back.
  int days = 0;
  int seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(leaf.get())), 1);
  EXPECT_EQ(days, 0);
  EXPECT_NEAR(seconds, 7200, 5);
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(leaf.get()), nullptr), 1);
  EXPECT_NEAR(seconds, 60, 5);

  BioPtr key_bio(BIO_new_file(issued->key_path.c_str(), "r"));
  PkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(key);
  EXPECT_EQ(X509_check_private_key(leaf.get(), key.get()), 1);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
}

TEST_F(CaTest, IssueReplacesAnEarlierCertificate) {
  ASSERT_TRUE(InitCa(dir_, "example.org"));
  ASSERT_TRUE(IssueService(dir_, "a", std::chrono::hours(1)));
  auto first = ReadCert(dir_ + "/a.pem");
  ASSERT_TRUE(IssueService(dir_, "a", std::chrono::hours(1)));
  auto second = ReadCert(dir_ + "/a.pem");
  ASSERT_TRUE(first && second);
  EXPECT_NE(
      ASN1_INTEGER_cmp(X509_get0_serialNumber(first.get()), X509_get0_serialNumber(second.get())),
      0);
}

TEST_F(CaTest, IssueWithoutACaIsNotFound) {
  auto result = IssueService(dir_, "orders", std::chrono::hours(1));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), ErrorCode::kNotFound);
}

TEST_F(CaTest, IssueRefusesBadNamesAndTtls) {
  ASSERT_TRUE(InitCa(dir_, "example.org"));
  EXPECT_EQ(IssueService(dir_, "a/b", std::chrono::hours(1)).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(IssueService(dir_, "a", Duration::zero()).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(CaTest, LeafNeverOutlivesTheRoot) {
  ASSERT_TRUE(InitCa(dir_, "example.org", std::chrono::hours(1)));
  auto issued = IssueService(dir_, "a", std::chrono::hours(48));
  ASSERT_TRUE(issued);
  auto root = ReadCert(dir_ + "/ca.pem");
  auto leaf = ReadCert(issued->cert_path);
  EXPECT_EQ(ASN1_TIME_compare(X509_get0_notAfter(leaf.get()), X509_get0_notAfter(root.get())), 0);
}

TEST_F(CaTest, AuthoritySignsAServerLeafWithNamesAndNoIdentity) {
  ASSERT_TRUE(InitCa(dir_, "example.org"));
  auto ca = Authority::Load(dir_);
  ASSERT_TRUE(ca) << ca.error().message();
  EXPECT_EQ(ca->trust_domain(), "example.org");
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  LeafSpec spec;
  spec.common_name = "ferry-ca";
  spec.dns_names = {"localhost"};
  spec.ip_addresses = {"127.0.0.1"};
  spec.client_auth = false;
  auto leaf = ca->Sign(spec, key.get());
  ASSERT_TRUE(leaf) << leaf.error().message();
  EXPECT_FALSE(leaf->serial.empty());
  BioPtr bio(BIO_new_mem_buf(leaf->cert_pem.data(), static_cast<int>(leaf->cert_pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(cert);
  EXPECT_EQ(SpiffeIdOf(cert.get()), "");
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 9, 0, nullptr), 1);
  EXPECT_EQ(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0), 1);
  EXPECT_NE(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_CLIENT, 0), 1);
}

TEST_F(CaTest, AuthorityRefusesASanThatWouldSmuggleAnother) {
  ASSERT_TRUE(InitCa(dir_, "example.org"));
  auto ca = Authority::Load(dir_);
  ASSERT_TRUE(ca);
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  LeafSpec spec;
  spec.common_name = "a";
  spec.spiffe_id = "spiffe://example.org/service/a,URI:spiffe://example.org/service/admin";
  EXPECT_FALSE(ca->Sign(spec, key.get()));
}

TEST_F(CaTest, AShortLivedLeafIsBackdatedByAQuarterOfItsLife) {
  EXPECT_EQ(BackdateFor(std::chrono::hours(24)), kBackdate);
  EXPECT_EQ(BackdateFor(std::chrono::seconds(20)), std::chrono::seconds(5));
  ASSERT_TRUE(InitCa(dir_, "example.org"));
  auto issued = IssueService(dir_, "a", std::chrono::seconds(20));
  ASSERT_TRUE(issued);
  auto leaf = ReadCert(issued->cert_path);
  int days = 0;
  int seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(leaf.get()),
                           X509_get0_notAfter(leaf.get())),
            1);
  EXPECT_EQ(days, 0);
  EXPECT_GE(seconds, 24);
  EXPECT_LE(seconds, 26);
}

}  // namespace
}  // namespace ferry::mesh
