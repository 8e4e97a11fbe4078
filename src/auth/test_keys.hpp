// Test helpers only (included by *_test.cpp and the fuzz corpus writer): makes keys with
// OpenSSL, writes their public JWKs, and signs compact JWS tokens with them, so tests build
// real tokens, good and forged. Not part of ferry_auth's interface.
#pragma once

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "auth/algorithm.hpp"
#include "auth/base64url.hpp"

namespace ferry::auth::testing {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

inline Pkey MakeRsaKey(unsigned bits = 2048) {
  return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)));
}
inline Pkey MakeEcKey(const char* curve) {
  return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}
inline Pkey MakeEd25519Key() { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")); }

inline std::string BnBytes(const BIGNUM* bn, int length = 0) {
  std::string out(static_cast<std::size_t>(length > 0 ? length : BN_num_bytes(bn)), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  return out;
}

// The public JWK of `key`, with `extra` JSON members appended (`"kid":"a","alg":"RS256"`).
inline std::string PublicJwk(EVP_PKEY* key, std::string_view extra = {}) {
  std::string members;
  if (EVP_PKEY_is_a(key, "RSA")) {
    BIGNUM* n = nullptr;
    BIGNUM* e = nullptr;
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e);
    members = R"("kty":"RSA","n":")" + Base64UrlEncode(BnBytes(n)) + R"(","e":")" +
              Base64UrlEncode(BnBytes(e)) + "\"";
    BN_free(n);
    BN_free(e);
  } else if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, nullptr);
    const std::string name(group);
    const char* crv = name == "prime256v1" ? "P-256" : name == "secp384r1" ? "P-384" : "P-521";
    const int length = name == "prime256v1" ? 32 : name == "secp384r1" ? 48 : 66;
    BIGNUM* x = nullptr;
    BIGNUM* y = nullptr;
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x);
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
    members = std::string(R"("kty":"EC","crv":")") + crv + R"(","x":")" +
              Base64UrlEncode(BnBytes(x, length)) + R"(","y":")" +
              Base64UrlEncode(BnBytes(y, length)) + "\"";
    BN_free(x);
    BN_free(y);
  } else {
    unsigned char raw[32];
    size_t length = sizeof raw;
    EVP_PKEY_get_raw_public_key(key, raw, &length);
    members = R"("kty":"OKP","crv":"Ed25519","x":")" +
              Base64UrlEncode(std::string_view(reinterpret_cast<char*>(raw), length)) + "\"";
  }
  if (!extra.empty()) members += "," + std::string(extra);
  return "{" + members + "}";
}

// The DER SubjectPublicKeyInfo of `key` (what an alg-confusion attacker would HMAC with).
inline std::string PublicKeyDer(EVP_PKEY* key) {
  unsigned char* out = nullptr;
  const int length = i2d_PUBKEY(key, &out);
  std::string der(reinterpret_cast<char*>(out), static_cast<std::size_t>(length));
  OPENSSL_free(out);
  return der;
}

inline const EVP_MD* TestDigest(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::kRS384:
    case Algorithm::kPS384:
    case Algorithm::kES384:
    case Algorithm::kHS384:
      return EVP_sha384();
    case Algorithm::kRS512:
    case Algorithm::kPS512:
    case Algorithm::kES512:
    case Algorithm::kHS512:
      return EVP_sha512();
    case Algorithm::kEdDSA:
      return nullptr;
    default:
      return EVP_sha256();
  }
}

// The raw signature of `input` with `algorithm` (ECDSA as JOSE R||S).
inline std::string Sign(Algorithm algorithm, EVP_PKEY* key, std::string_view input) {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  EVP_PKEY_CTX* key_context = nullptr;
  if (EVP_DigestSignInit(context, &key_context, TestDigest(algorithm), nullptr, key) != 1) {
    throw std::runtime_error("sign init");
  }
  if (algorithm == Algorithm::kPS256 || algorithm == Algorithm::kPS384 ||
      algorithm == Algorithm::kPS512) {
    EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(key_context, RSA_PSS_SALTLEN_DIGEST);
  }
  size_t length = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  EVP_DigestSign(context, nullptr, &length, data, input.size());
  std::string signature(length, '\0');
  EVP_DigestSign(context, reinterpret_cast<unsigned char*>(signature.data()), &length, data,
                 input.size());
  signature.resize(length);
  EVP_MD_CTX_free(context);
  if (EVP_PKEY_is_a(key, "EC")) {
    const auto* der = reinterpret_cast<const unsigned char*>(signature.data());
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(signature.size()));
    const int half = EVP_PKEY_get_bits(key) == 256 ? 32 : EVP_PKEY_get_bits(key) == 384 ? 48 : 66;
    signature = BnBytes(ECDSA_SIG_get0_r(sig), half) + BnBytes(ECDSA_SIG_get0_s(sig), half);
    ECDSA_SIG_free(sig);
  }
  return signature;
}

inline std::string Hmac(Algorithm algorithm, std::string_view secret, std::string_view input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(TestDigest(algorithm), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &length);
  return std::string(reinterpret_cast<char*>(mac), length);
}

// A compact JWS of `header` and `payload` (JSON texts) signed by `key` (or HMAC'd with
// `secret` when key is null).
inline std::string MakeToken(Algorithm algorithm, std::string_view header, std::string_view payload,
                             EVP_PKEY* key, std::string_view secret = {}) {
  const std::string input = Base64UrlEncode(header) + "." + Base64UrlEncode(payload);
  const std::string signature =
      key != nullptr ? Sign(algorithm, key, input) : Hmac(algorithm, secret, input);
  return input + "." + Base64UrlEncode(signature);
}

}  // namespace ferry::auth::testing
