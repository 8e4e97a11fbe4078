#include "mesh/csr.hpp"

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "mesh/openssl_ptr.hpp"
#include "mesh/spiffe.hpp"

namespace ferry::mesh {
namespace {

using ExtensionsPtr =
    std::unique_ptr<STACK_OF(X509_EXTENSION), void (*)(STACK_OF(X509_EXTENSION)*)>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, void (*)(GENERAL_NAMES*)>;

void FreeExtensions(STACK_OF(X509_EXTENSION) * s) {
  sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
}
void FreeNames(GENERAL_NAMES* names) { GENERAL_NAMES_free(names); }

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);  // NOLINT(google-runtime-int)
  return std::string(data, static_cast<std::size_t>(size));
}

// The service name of spiffe://<domain>/service/NAME ("" when `id` is not one).
std::string ServiceOf(const std::string& id, std::string_view domain) {
  auto parsed = ParseSpiffeId(id);
  if (!parsed || (!domain.empty() && parsed->trust_domain != domain)) return "";
  std::string service = ServiceNameOf(*parsed);
  return IsValidServiceName(service) ? service : "";
}

Result<void> CheckKey(EVP_PKEY* key) {
  const int bits = EVP_PKEY_get_bits(key);
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    std::size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &length) != 1) {
      ERR_clear_error();
      return Fail(ErrorCode::kInvalidArgument, "the CSR's EC key names no curve");
    }
    const std::string_view name(group, length);
    if (name == "prime256v1" || name == "P-256" || name == "secp384r1" || name == "P-384") {
      return Ok();
    }
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("the CSR's EC key is on curve {}; P-256 or P-384 only", name));
  }
  if (EVP_PKEY_is_a(key, "RSA")) {
    if (bits >= 2048) return Ok();
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("the CSR's RSA key has {} bits; 2048 or more", bits));
  }
  return Fail(ErrorCode::kInvalidArgument,
              "the CSR's key is neither ECDSA (P-256, P-384) nor RSA (2048 bits or more)");
}

// The URI SANs of the CSR's extension request.
std::vector<std::string> UriSans(X509_REQ* req) {
  std::vector<std::string> uris;
  ExtensionsPtr extensions(X509_REQ_get_extensions(req), FreeExtensions);
  if (!extensions) return uris;
  NamesPtr names(static_cast<GENERAL_NAMES*>(
                     X509V3_get_d2i(extensions.get(), NID_subject_alt_name, nullptr, nullptr)),
                 FreeNames);
  if (!names) return uris;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                      static_cast<std::size_t>(ASN1_STRING_length(uri)));
  }
  return uris;
}

}  // namespace

Result<KeyAndCsr> MakeKeyAndCsr(const std::string& spiffe_id) {
  const std::string service = ServiceOf(spiffe_id, "");
  if (service.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("'{}' is not spiffe://DOMAIN/service/NAME", spiffe_id));
  }
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  X509ReqPtr req(X509_REQ_new());
  if (!key || !req) return Fail(ErrorCode::kInternal, "key generation: " + TakeOpenSslError());
  ExtensionsPtr extensions(sk_X509_EXTENSION_new_null(), FreeExtensions);
  const std::string san = "URI:" + spiffe_id;
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str()));
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  bool ok = extensions && ext && X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) == 1 &&
            X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(service.c_str()), -1,
                                       -1, 0) == 1 &&
            sk_X509_EXTENSION_push(extensions.get(), ext.get()) > 0;
  if (ok) ext.release();  // the stack owns it now
  ok = ok && X509_REQ_add_extensions(req.get(), extensions.get()) == 1 &&
       X509_REQ_set_pubkey(req.get(), key.get()) == 1 &&
       X509_REQ_sign(req.get(), key.get(), EVP_sha256()) > 0;
  if (!ok) return Fail(ErrorCode::kInternal, "making the CSR: " + TakeOpenSslError());

  KeyAndCsr out;
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  BioPtr csr_bio(BIO_new(BIO_s_mem()));
  if (!key_bio || !csr_bio ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1 ||
      PEM_write_bio_X509_REQ(csr_bio.get(), req.get()) != 1) {
    return Fail(ErrorCode::kInternal, "PEM encoding: " + TakeOpenSslError());
  }
  out.key_pem = BioText(key_bio.get());
  out.csr_pem = BioText(csr_bio.get());
  return out;
}

Result<CheckedCsr> CheckCsr(std::string_view pem, std::string_view trust_domain) {
  if (pem.size() > kMaxCsrBytes) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("the CSR is over {} bytes", kMaxCsrBytes));
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509ReqPtr req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument,
                "the body is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)");
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (key == nullptr) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument, "the CSR carries no usable public key");
  }
  if (auto ok = CheckKey(key); !ok) return tl::unexpected(ok.error());
  if (X509_REQ_verify(req.get(), key) != 1) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument,
                "the CSR's signature does not verify with its own key");
  }
  const std::vector<std::string> uris = UriSans(req.get());
  if (uris.size() != 1) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("the CSR has {} URI SANs; exactly one, spiffe://{}/service/NAME",
                            uris.size(), trust_domain));
  }
  CheckedCsr out;
  out.service = ServiceOf(uris[0], trust_domain);
  if (out.service.empty()) {
    return Fail(
        ErrorCode::kInvalidArgument,
        fmt::format("the CSR asks for '{}', not spiffe://{}/service/NAME", uris[0], trust_domain));
  }
  out.spiffe_id = uris[0];
  EVP_PKEY_up_ref(key);
  out.public_key = std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
  return out;
}

}  // namespace ferry::mesh
