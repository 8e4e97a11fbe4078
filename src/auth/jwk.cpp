#include "auth/jwk.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "auth/base64url.hpp"
#include "auth/json_limits.hpp"

namespace ferry::auth {
namespace {

namespace json = boost::json;

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

Result<std::string> Member(const json::object& object, std::string_view name, bool required) {
  const json::value* value = object.if_contains(name);
  if (value == nullptr) {
    if (required) return Fail(ErrorCode::kInvalidArgument, std::string(name) + " is missing");
    return std::string();
  }
  if (!value->is_string()) {
    return Fail(ErrorCode::kInvalidArgument, std::string(name) + " is not a string");
  }
  return std::string(value->get_string());
}

Result<std::string> Bytes(const json::object& object, std::string_view name) {
  auto text = Member(object, name, true);
  if (!text) return tl::unexpected(text.error());
  auto bytes = Base64UrlDecode(*text);
  if (!bytes || bytes->empty()) {
    return Fail(ErrorCode::kInvalidArgument, std::string(name) + " is not base64url");
  }
  return *bytes;
}

std::shared_ptr<evp_pkey_st> FromData(const char* type, OSSL_PARAM_BLD* builder) {
  std::shared_ptr<evp_pkey_st> out;
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(builder);
  EVP_PKEY_CTX* context = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* key = nullptr;
  if (params != nullptr && context != nullptr && EVP_PKEY_fromdata_init(context) == 1 &&
      EVP_PKEY_fromdata(context, &key, EVP_PKEY_PUBLIC_KEY, params) == 1) {
    out.reset(key, PkeyDeleter{});
  }
  EVP_PKEY_CTX_free(context);
  OSSL_PARAM_free(params);
  return out;
}

Result<std::shared_ptr<evp_pkey_st>> RsaKey(const json::object& object) {
  auto n = Bytes(object, "n");
  if (!n) return tl::unexpected(n.error());
  auto e = Bytes(object, "e");
  if (!e) return tl::unexpected(e.error());
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                           static_cast<int>(n->size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                           static_cast<int>(e->size()), nullptr);
  std::shared_ptr<evp_pkey_st> key;
  // RFC 7518 section 3.3: a key of 2048 bits or larger MUST be used.
  const bool big_enough = bn_n != nullptr && BN_num_bits(bn_n) >= 2048;
  const bool odd_exponent = bn_e != nullptr && BN_is_odd(bn_e) && !BN_is_one(bn_e);
  if (big_enough && odd_exponent) {
    OSSL_PARAM_BLD* builder = OSSL_PARAM_BLD_new();
    if (builder != nullptr && OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
        OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1) {
      key = FromData("RSA", builder);
    }
    OSSL_PARAM_BLD_free(builder);
  }
  BN_free(bn_n);
  BN_free(bn_e);
  if (!big_enough) return Fail(ErrorCode::kInvalidArgument, "RSA modulus under 2048 bits");
  if (!odd_exponent) return Fail(ErrorCode::kInvalidArgument, "RSA exponent is not valid");
  if (!key) return Fail(ErrorCode::kInvalidArgument, "RSA key is not valid");
  return key;
}

struct CurveInfo {
  Curve curve;
  std::string_view name;  // JOSE crv
  const char* group;      // OpenSSL group name
  std::size_t bytes;      // coordinate length
};

constexpr CurveInfo kCurves[] = {
    {Curve::kP256, "P-256", "prime256v1", 32},
    {Curve::kP384, "P-384", "secp384r1", 48},
    {Curve::kP521, "P-521", "secp521r1", 66},
};

// The point must lie on the curve: a key off it is a known way to leak or forge.
bool PublicKeyChecks(const std::shared_ptr<evp_pkey_st>& key) {
  EVP_PKEY_CTX* context = EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr);
  const bool ok = context != nullptr && EVP_PKEY_public_check(context) == 1;
  EVP_PKEY_CTX_free(context);
  return ok;
}

Result<Jwk> EcKey(const json::object& object, Jwk jwk) {
  auto crv = Member(object, "crv", true);
  if (!crv) return tl::unexpected(crv.error());
  const CurveInfo* info = nullptr;
  for (const CurveInfo& candidate : kCurves) {
    if (candidate.name == *crv) info = &candidate;
  }
  if (info == nullptr) return Fail(ErrorCode::kInvalidArgument, "EC curve not supported: " + *crv);
  auto x = Bytes(object, "x");
  if (!x) return tl::unexpected(x.error());
  auto y = Bytes(object, "y");
  if (!y) return tl::unexpected(y.error());
  // RFC 7518 section 6.2.1.2: each coordinate is exactly the curve's length.
  if (x->size() != info->bytes || y->size() != info->bytes) {
    return Fail(ErrorCode::kInvalidArgument, "EC coordinates of the wrong length");
  }
  std::string point = "\x04" + *x + *y;
  OSSL_PARAM_BLD* builder = OSSL_PARAM_BLD_new();
  std::shared_ptr<evp_pkey_st> key;
  if (builder != nullptr &&
      OSSL_PARAM_BLD_push_utf8_string(builder, OSSL_PKEY_PARAM_GROUP_NAME, info->group, 0) == 1 &&
      OSSL_PARAM_BLD_push_octet_string(builder, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) == 1) {
    key = FromData("EC", builder);
  }
  OSSL_PARAM_BLD_free(builder);
  if (!key || !PublicKeyChecks(key)) {
    return Fail(ErrorCode::kInvalidArgument, "EC point is not on the curve");
  }
  jwk.type = KeyType::kEc;
  jwk.curve = info->curve;
  jwk.key = std::move(key);
  return jwk;
}

Result<Jwk> OkpKey(const json::object& object, Jwk jwk) {
  auto crv = Member(object, "crv", true);
  if (!crv) return tl::unexpected(crv.error());
  if (*crv != "Ed25519") {
    return Fail(ErrorCode::kInvalidArgument, "OKP curve not supported: " + *crv);
  }
  auto x = Bytes(object, "x");
  if (!x) return tl::unexpected(x.error());
  if (x->size() != 32) return Fail(ErrorCode::kInvalidArgument, "Ed25519 key is not 32 bytes");
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(x->data()), x->size());
  if (key == nullptr) return Fail(ErrorCode::kInvalidArgument, "Ed25519 key is not valid");
  jwk.type = KeyType::kOkp;
  jwk.curve = Curve::kEd25519;
  jwk.key.reset(key, PkeyDeleter{});
  return jwk;
}

Result<Jwk> KeyFromObject(const json::object& object) {
  auto kty = Member(object, "kty", true);
  if (!kty) return tl::unexpected(kty.error());
  Jwk jwk;
  auto kid = Member(object, "kid", false);
  if (!kid) return tl::unexpected(kid.error());
  jwk.kid = std::move(*kid);
  auto use = Member(object, "use", false);
  if (!use) return tl::unexpected(use.error());
  if (!use->empty() && *use != "sig") {
    return Fail(ErrorCode::kInvalidArgument, "key is for use " + *use + ", not sig");
  }
  auto alg = Member(object, "alg", false);
  if (!alg) return tl::unexpected(alg.error());
  if (!alg->empty()) {
    jwk.alg = AlgorithmFromName(*alg);
    if (!jwk.alg) return Fail(ErrorCode::kInvalidArgument, "key alg not supported: " + *alg);
  }
  if (*kty == "RSA") {
    auto key = RsaKey(object);
    if (!key) return tl::unexpected(key.error());
    jwk.type = KeyType::kRsa;
    jwk.key = std::move(*key);
    return jwk;
  }
  if (*kty == "EC") return EcKey(object, std::move(jwk));
  if (*kty == "OKP") return OkpKey(object, std::move(jwk));
  if (*kty == "oct") {
    auto k = Bytes(object, "k");
    if (!k) return tl::unexpected(k.error());
    jwk.type = KeyType::kOct;
    jwk.secret = std::move(*k);
    return jwk;
  }
  return Fail(ErrorCode::kInvalidArgument, "kty not supported: " + *kty);
}

}  // namespace

Result<Jwk> ParseJwk(std::string_view text) {
  auto value = ParseJsonObject(text, kMaxJwksBytes);
  if (!value) return tl::unexpected(value.error());
  return KeyFromObject(value->get_object());
}

Result<Jwks> ParseJwks(std::string_view text) {
  auto value = ParseJsonObject(text, kMaxJwksBytes);
  if (!value) return tl::unexpected(value.error());
  const json::value* keys = value->get_object().if_contains("keys");
  if (keys == nullptr || !keys->is_array()) {
    return Fail(ErrorCode::kInvalidArgument, "a JWKS is an object with a keys array");
  }
  if (keys->get_array().size() > kMaxJwksKeys) {
    return Fail(ErrorCode::kInvalidArgument, "a JWKS holds at most 100 keys");
  }
  Jwks out;
  for (const json::value& entry : keys->get_array()) {
    Result<Jwk> key = entry.is_object()
                          ? KeyFromObject(entry.get_object())
                          : Result<Jwk>(Fail(ErrorCode::kInvalidArgument, "key is not an object"));
    if (key) {
      out.keys.push_back(std::move(*key));
    } else {
      if (out.skipped++ == 0) out.first_skip = key.error().message();
    }
  }
  return out;
}

}  // namespace ferry::auth
