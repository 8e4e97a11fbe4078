#include "mesh/workload_cert.hpp"

#include <fmt/format.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include "mesh/atomic_file.hpp"
#include "mesh/openssl_ptr.hpp"
#include "mesh/spiffe.hpp"

namespace ferry::mesh {
namespace {

using SystemClock = std::chrono::system_clock;
using StorePtr = std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX, X509_STORE_CTX_free>>;

SystemClock::time_point TimeOf(const ASN1_TIME* time) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(time, &tm) != 1) return {};
  return SystemClock::from_time_t(timegm(&tm));
}

Result<CertificateInfo> Describe(X509* cert) {
  CertificateInfo info;
  info.spiffe_id = SpiffeIdOf(cert);
  info.not_before = TimeOf(X509_get0_notBefore(cert));
  info.not_after = TimeOf(X509_get0_notAfter(cert));
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  char* hex = serial ? BN_bn2hex(serial.get()) : nullptr;
  if (hex == nullptr) return Fail(ErrorCode::kInternal, "serial: " + TakeOpenSslError());
  info.serial = hex;
  OPENSSL_free(hex);
  return info;
}

X509Ptr ParseCert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  return cert;
}

PkeyPtr ParseKey(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  return key;
}

}  // namespace

Result<CertificateInfo> ReadWorkloadCertificate(const std::string& cert_path,
                                                const std::string& key_path) {
  auto cert_pem = ReadWholeFile(cert_path);
  if (!cert_pem) return tl::unexpected(cert_pem.error());
  auto key_pem = ReadWholeFile(key_path);
  if (!key_pem) return tl::unexpected(key_pem.error());
  X509Ptr cert = ParseCert(*cert_pem);
  if (!cert) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("{}: no PEM certificate", cert_path));
  }
  PkeyPtr key = ParseKey(*key_pem);
  OPENSSL_cleanse(key_pem->data(), key_pem->size());
  if (!key) return Fail(ErrorCode::kInvalidArgument, fmt::format("{}: no PEM key", key_path));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("{} is not the key of {}", key_path, cert_path));
  }
  return Describe(cert.get());
}

Result<std::string> TrustDomainOfBundle(const std::string& ca_path) {
  auto pem = ReadWholeFile(ca_path);
  if (!pem) return tl::unexpected(pem.error());
  X509Ptr root = ParseCert(*pem);
  auto id = root ? ParseSpiffeId(SpiffeIdOf(root.get())) : std::nullopt;
  if (!id) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("{}: its first certificate names no trust domain (a Ferry root has "
                            "the URI SAN spiffe://DOMAIN)",
                            ca_path));
  }
  return id->trust_domain;
}

Result<CertificateInfo> CheckIssuedCertificate(const std::string& cert_pem,
                                               const std::string& key_pem,
                                               const std::string& spiffe_id,
                                               const std::string& ca_path) {
  X509Ptr cert = ParseCert(cert_pem);
  if (!cert) return Fail(ErrorCode::kInvalidArgument, "the CA's answer is no PEM certificate");
  PkeyPtr key = ParseKey(key_pem);
  if (!key || X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument, "the CA's certificate is not for the key sent");
  }
  const std::string id = SpiffeIdOf(cert.get());
  if (id != spiffe_id) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("the CA's certificate names '{}', not {}", id, spiffe_id));
  }
  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_load_file(store.get(), ca_path.c_str()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("{}: cannot load the CA bundle: {}", ca_path, TakeOpenSslError()));
  }
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(ctx.get()) != 1) {
    const int error = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("the CA's certificate does not verify against {}: {}", ca_path,
                            X509_verify_cert_error_string(error)));
  }
  return Describe(cert.get());
}

}  // namespace ferry::mesh
