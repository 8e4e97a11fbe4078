// Certificates for the tls area's unit tests, made in memory with OpenSSL (P-256 keys): a CA,
// and leaves it signs with chosen SANs and validity. Test code only (header-only, included by
// *_test.cpp files).
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ferry::tls::testing {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

struct Issued {
  Key key;
  Cert cert;
  std::string CertPem() const {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, cert.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return out;
  }
  std::string KeyPem() const {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return out;
  }
};

inline void AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("bad extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// `sans`: "DNS:a.example,URI:spiffe://d/service/x"; empty for none. `issuer` null: self-signed
// CA. Valid from now + not_before_s to now + not_after_s.
inline Issued Issue(const std::string& common_name, const std::string& sans, const Issued* issuer,
                    long not_before_s = -60, long not_after_s = 3600) {
  Issued out;
  out.key.reset(EVP_EC_gen("P-256"));
  out.cert.reset(X509_new());
  X509* c = out.cert.get();
  X509_set_version(c, 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
  X509_gmtime_adj(X509_getm_notBefore(c), not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(c), not_after_s);
  X509_set_pubkey(c, out.key.get());
  X509_NAME* name = X509_get_subject_name(c);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509* signer_cert = issuer != nullptr ? issuer->cert.get() : c;
  EVP_PKEY* signer_key = issuer != nullptr ? issuer->key.get() : out.key.get();
  X509_set_issuer_name(c, X509_get_subject_name(signer_cert));
  if (issuer == nullptr) {
    AddExtension(c, c, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(c, c, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(c, signer_cert, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(c, signer_cert, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  if (!sans.empty()) AddExtension(c, signer_cert, NID_subject_alt_name, sans);
  X509_sign(c, signer_key, EVP_sha256());
  return out;
}

}  // namespace ferry::tls::testing
