#include "auth/jws.hpp"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <boost/json/value.hpp>

#include "auth/base64url.hpp"
#include "auth/json_limits.hpp"

namespace ferry::auth {
namespace {

const EVP_MD* Digest(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::kRS256:
    case Algorithm::kPS256:
    case Algorithm::kES256:
    case Algorithm::kHS256:
      return EVP_sha256();
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
      return nullptr;  // Ed25519 hashes by itself
  }
  return nullptr;
}

bool IsPss(Algorithm a) {
  return a == Algorithm::kPS256 || a == Algorithm::kPS384 || a == Algorithm::kPS512;
}

bool IsRsa(Algorithm a) {
  return a == Algorithm::kRS256 || a == Algorithm::kRS384 || a == Algorithm::kRS512 || IsPss(a);
}

// Curve of an ECDSA algorithm, kNone for the others.
Curve EcCurve(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::kES256:
      return Curve::kP256;
    case Algorithm::kES384:
      return Curve::kP384;
    case Algorithm::kES512:
      return Curve::kP521;
    default:
      return Curve::kNone;
  }
}

std::size_t CoordinateBytes(Curve curve) {
  switch (curve) {
    case Curve::kP256:
      return 32;
    case Curve::kP384:
      return 48;
    case Curve::kP521:
      return 66;
    default:
      return 0;
  }
}

// JOSE carries ECDSA signatures as R||S, fixed length (RFC 7518 section 3.4); OpenSSL verifies
// the DER SEQUENCE of two INTEGERs. "" when the length is wrong.
std::string RawToDer(std::string_view raw, std::size_t half) {
  if (raw.size() != 2 * half) return {};
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
  BIGNUM* r = BN_bin2bn(bytes, static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(bytes + half, static_cast<int>(half), nullptr);
  ECDSA_SIG* sig = ECDSA_SIG_new();
  std::string der;
  if (r != nullptr && s != nullptr && sig != nullptr && ECDSA_SIG_set0(sig, r, s) == 1) {
    r = s = nullptr;  // owned by sig now
    unsigned char* out = nullptr;
    const int length = i2d_ECDSA_SIG(sig, &out);
    if (length > 0)
      der.assign(reinterpret_cast<const char*>(out), static_cast<std::size_t>(length));
    OPENSSL_free(out);
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(sig);
  return der;
}

bool DigestVerify(Algorithm algorithm, EVP_PKEY* key, std::string_view input,
                  std::string_view signature) {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  if (context == nullptr) return false;
  EVP_PKEY_CTX* key_context = nullptr;
  bool ok = EVP_DigestVerifyInit(context, &key_context, Digest(algorithm), nullptr, key) == 1;
  if (ok && IsPss(algorithm)) {
    // RFC 7518 section 3.5: MGF1 with the same hash, a salt as long as the hash.
    ok = EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(key_context, Digest(algorithm)) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(key_context, RSA_PSS_SALTLEN_DIGEST) == 1;
  } else if (ok && IsRsa(algorithm)) {
    ok = EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PADDING) == 1;
  }
  ok =
      ok && EVP_DigestVerify(context, reinterpret_cast<const unsigned char*>(signature.data()),
                             signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                             input.size()) == 1;
  EVP_MD_CTX_free(context);
  return ok;
}

}  // namespace

Result<Jws> ParseJws(std::string_view token) {
  if (token.size() > kMaxTokenBytes) return Fail(ErrorCode::kInvalidArgument, "token too long");
  const std::size_t first = token.find('.');
  const std::size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return Fail(ErrorCode::kInvalidArgument, "a JWS has three parts");
  }
  auto header = Base64UrlDecode(token.substr(0, first));
  auto payload = Base64UrlDecode(token.substr(first + 1, second - first - 1));
  auto signature = Base64UrlDecode(token.substr(second + 1));
  if (!header || !payload || !signature) {
    return Fail(ErrorCode::kInvalidArgument, "a JWS part is not base64url");
  }
  auto value = ParseJsonObject(*header, kMaxTokenBytes);
  if (!value) return Fail(ErrorCode::kInvalidArgument, "header: " + value.error().message());
  const boost::json::object& object = value->get_object();
  Jws jws;
  const boost::json::value* alg = object.if_contains("alg");
  if (alg == nullptr || !alg->is_string()) {
    return Fail(ErrorCode::kInvalidArgument, "header has no alg string");
  }
  jws.header.alg = std::string(alg->get_string());
  if (const boost::json::value* kid = object.if_contains("kid")) {
    if (!kid->is_string()) return Fail(ErrorCode::kInvalidArgument, "header kid is not a string");
    jws.header.kid = std::string(kid->get_string());
  }
  jws.header.has_crit = object.contains("crit");
  jws.signing_input = token.substr(0, second);
  jws.payload = std::move(*payload);
  jws.signature = std::move(*signature);
  return jws;
}

bool KeyFits(Algorithm algorithm, const Jwk& key) {
  if (key.alg && *key.alg != algorithm) return false;
  if (IsHmac(algorithm)) return key.type == KeyType::kOct;
  if (IsRsa(algorithm)) return key.type == KeyType::kRsa;
  if (algorithm == Algorithm::kEdDSA) {
    return key.type == KeyType::kOkp && key.curve == Curve::kEd25519;
  }
  return key.type == KeyType::kEc && key.curve == EcCurve(algorithm);
}

bool VerifySignature(Algorithm algorithm, const Jwk& key, std::string_view input,
                     std::string_view signature) {
  if (!KeyFits(algorithm, key)) return false;
  if (IsHmac(algorithm)) return VerifyHmac(algorithm, key.secret, input, signature);
  if (!key.key) return false;
  if (key.type == KeyType::kEc) {
    const std::string der = RawToDer(signature, CoordinateBytes(key.curve));
    if (der.empty()) return false;
    return DigestVerify(algorithm, key.key.get(), input, der);
  }
  if (algorithm == Algorithm::kEdDSA && signature.size() != 64) return false;
  return DigestVerify(algorithm, key.key.get(), input, signature);
}

bool VerifyHmac(Algorithm algorithm, std::string_view secret, std::string_view input,
                std::string_view signature) {
  if (!IsHmac(algorithm) || secret.empty()) return false;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  if (HMAC(Digest(algorithm), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
           &mac_length) == nullptr) {
    return false;
  }
  return signature.size() == mac_length && CRYPTO_memcmp(mac, signature.data(), mac_length) == 0;
}

}  // namespace ferry::auth
