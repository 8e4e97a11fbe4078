#include "app/ca_server.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "app/cert_renewer.hpp"
#include "mesh/csr.hpp"
#include "mesh/workload_cert.hpp"

namespace ferry::app {
namespace {

namespace fs = std::filesystem;

class CaServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            ("ferry_ca_service_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    ASSERT_TRUE(mesh::InitCa(dir_, "example.org"));
    auto ca = mesh::Authority::Load(dir_);
    ASSERT_TRUE(ca);
    service_.emplace(std::move(*ca), std::chrono::hours(1));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Token(const std::string& service) {
    auto token = service_->tokens().Create(service, std::chrono::hours(1));
    EXPECT_TRUE(token);
    return token ? *token : "";
  }
  static mesh::KeyAndCsr Csr(const std::string& service) {
    auto made = mesh::MakeKeyAndCsr("spiffe://example.org/service/" + service);
    EXPECT_TRUE(made);
    return *made;
  }

  std::string dir_;
  std::optional<CaService> service_;
};

TEST_F(CaServiceTest, ATokenGetsOneCertificateForItsService) {
  const std::string token = Token("orders");
  auto csr = Csr("orders");
  auto answer = service_->Sign(csr.csr_pem, "", "Bearer " + token);
  ASSERT_EQ(answer.status, 200) << answer.body;
  auto issued = mesh::CheckIssuedCertificate(
      answer.body, csr.key_pem, "spiffe://example.org/service/orders", dir_ + "/ca.pem");
  ASSERT_TRUE(issued) << issued.error().message();
  auto again = service_->Sign(Csr("orders").csr_pem, "", "bearer " + token);
  EXPECT_EQ(again.status, 401);
  EXPECT_EQ(again.code, "token_invalid");
}

TEST_F(CaServiceTest, NoCredentialsIsTokenMissing) {
  auto answer = service_->Sign(Csr("orders").csr_pem, "", "");
  EXPECT_EQ(answer.status, 401);
  EXPECT_EQ(answer.code, "token_missing");
  EXPECT_EQ(service_->Sign(Csr("orders").csr_pem, "", "Basic abc").code, "token_missing");
}

TEST_F(CaServiceTest, ATokenForAnotherServiceIsRefusedAndKept) {
  const std::string token = Token("orders");
  auto answer = service_->Sign(Csr("billing").csr_pem, "", "Bearer " + token);
  EXPECT_EQ(answer.status, 403);
  EXPECT_EQ(answer.code, "token_wrong_service");
  EXPECT_EQ(service_->Sign(Csr("orders").csr_pem, "", "Bearer " + token).status, 200);
}

TEST_F(CaServiceTest, ACertificateRenewsOnlyItsOwnIdentity) {
  const std::string orders = "spiffe://example.org/service/orders";
  EXPECT_EQ(service_->Sign(Csr("orders").csr_pem, orders, "").status, 200);
  auto other = service_->Sign(Csr("billing").csr_pem, orders, "Bearer " + Token("billing"));
  EXPECT_EQ(other.status, 403);
  EXPECT_EQ(other.code, "identity_mismatch");
}

TEST_F(CaServiceTest, ABadCsrIsRefusedBeforeTheTokenIsSpent) {
  const std::string token = Token("orders");
  auto answer = service_->Sign("garbage", "", "Bearer " + token);
  EXPECT_EQ(answer.status, 400);
  EXPECT_EQ(answer.code, "csr_invalid");
  EXPECT_NE(answer.body.find("\"code\":\"csr_invalid\""), std::string::npos);
  auto foreign = mesh::MakeKeyAndCsr("spiffe://other.org/service/orders");
  ASSERT_TRUE(foreign);
  EXPECT_EQ(service_->Sign(foreign->csr_pem, "", "Bearer " + token).code, "csr_invalid");
  EXPECT_EQ(service_->Sign(Csr("orders").csr_pem, "", "Bearer " + token).status, 200);
}

TEST(CertRenewerTest, RenewsAtTwoThirdsOfTheLife) {
  mesh::CertificateInfo info;
  info.not_before = std::chrono::system_clock::time_point(std::chrono::hours(100));
  info.not_after = info.not_before + std::chrono::hours(24);
  EXPECT_EQ(CertRenewer::RenewAt(info), info.not_before + std::chrono::hours(16));
}

}  // namespace
}  // namespace ferry::app
