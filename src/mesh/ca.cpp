#include "mesh/ca.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "mesh/atomic_file.hpp"
#include "mesh/openssl_ptr.hpp"
#include "mesh/spiffe.hpp"

namespace ferry::mesh {
namespace {

namespace fs = std::filesystem;
using SystemClock = std::chrono::system_clock;

constexpr char kCaCert[] = "ca.pem";
constexpr char kCaKey[] = "ca.key";
// The longest certificate life `issue` accepts (a typo like 87600000h is refused, not signed).
constexpr Duration kMaxTtl = std::chrono::hours(24 * 365 * 100);

std::string PathIn(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

Result<PkeyPtr> NewKey() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return Fail(ErrorCode::kInternal, "key generation: " + TakeOpenSslError());
  return key;
}

Result<std::string> CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return Fail(ErrorCode::kInternal, "PEM encoding: " + TakeOpenSslError());
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);  // NOLINT(google-runtime-int)
  return std::string(data, static_cast<std::size_t>(size));
}

Result<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Fail(ErrorCode::kInternal, "PEM encoding: " + TakeOpenSslError());
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);  // NOLINT(google-runtime-int)
  return std::string(data, static_cast<std::size_t>(size));
}

// A random positive 127-bit serial (RFC 5280: positive, at most 20 octets, unpredictable).
bool SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return false;
  bytes[0] &= 0x7F;
  bytes[0] |= 0x40;  // never a shorter, zero-led number
  BignumPtr number(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  return number && BN_to_ASN1_INTEGER(number.get(), X509_get_serialNumber(cert)) != nullptr;
}

bool SetValidity(X509* cert, SystemClock::time_point not_before,
                 SystemClock::time_point not_after) {
  auto seconds = [](SystemClock::time_point t) {
    return static_cast<time_t>(
        std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
  };
  return ASN1_TIME_set(X509_getm_notBefore(cert), seconds(not_before)) != nullptr &&
         ASN1_TIME_set(X509_getm_notAfter(cert), seconds(not_after)) != nullptr;
}

bool AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

bool SetName(X509_NAME* name, const std::string& organization, const std::string& common_name) {
  auto add = [name](const char* field, const std::string& value) {
    return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                      0) == 1;
  };
  return add("O", organization) && add("CN", common_name);
}

// Loads a PEM object of `path` with `read`; kNotFound when the file is missing.
template <typename Ptr, typename ReadFn>
Result<Ptr> ReadPem(const std::string& path, ReadFn read, const char* what) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    int saved = errno;
    if (saved == ENOENT) {
      return Fail(ErrorCode::kNotFound, fmt::format("{}: no such file (is this a CA directory? "
                                                    "`ferry ca init` makes one)",
                                                    path));
    }
    return Fail(ErrorCode::kIo, fmt::format("{}: {}", path, std::strerror(saved)));
  }
  Ptr object(read(bio.get(), nullptr, nullptr, nullptr));
  if (!object) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("{}: not a PEM {}: {}", path, what, TakeOpenSslError()));
  }
  return object;
}

Result<void> CheckTtl(Duration ttl) {
  if (ttl < std::chrono::seconds(1) || ttl > kMaxTtl) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("ttl {} is out of range (1s to 876000h)", FormatDuration(ttl)));
  }
  return Ok();
}

}  // namespace

Result<void> InitCa(const std::string& dir, const std::string& trust_domain, Duration ttl) {
  if (!IsValidTrustDomain(trust_domain)) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("trust domain '{}' is not valid (1 to 255 of a-z, 0-9, '.', '-', "
                            "'_'; lowercase)",
                            trust_domain));
  }
  if (auto ok = CheckTtl(ttl); !ok) return ok;
  for (const char* name : {kCaCert, kCaKey}) {
    std::error_code ec;
    if (fs::exists(PathIn(dir, name), ec)) {
      return Fail(ErrorCode::kAlreadyExists,
                  fmt::format("{} exists: refusing to overwrite a CA", PathIn(dir, name)));
    }
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Fail(ErrorCode::kIo, fmt::format("{}: {}", dir, ec.message()));

  auto key = NewKey();
  if (!key) return tl::unexpected(key.error());
  X509Ptr cert(X509_new());
  auto now = SystemClock::now();
  std::string common_name = "Ferry mesh CA " + trust_domain;
  std::string san = "URI:" + TrustDomainId(trust_domain);
  bool ok = cert && X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
            SetRandomSerial(cert.get()) &&
            SetName(X509_get_subject_name(cert.get()), trust_domain, common_name) &&
            X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) == 1 &&
            SetValidity(cert.get(), now - kBackdate, now + ttl) &&
            X509_set_pubkey(cert.get(), key->get()) == 1 &&
            AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE") &&
            AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") &&
            AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash") &&
            AddExtension(cert.get(), cert.get(), NID_subject_alt_name, san.c_str()) &&
            X509_sign(cert.get(), key->get(), EVP_sha256()) > 0;
  if (!ok) return Fail(ErrorCode::kInternal, "making the root: " + TakeOpenSslError());

  auto key_pem = KeyPem(key->get());
  if (!key_pem) return tl::unexpected(key_pem.error());
  auto cert_pem = CertPem(cert.get());
  if (!cert_pem) return tl::unexpected(cert_pem.error());
  // The key first: a ca.pem without its key would block a second try as "exists".
  if (auto written = WriteFileAtomically(PathIn(dir, kCaKey), *key_pem, 0600, true); !written) {
    return written;
  }
  return WriteFileAtomically(PathIn(dir, kCaCert), *cert_pem, 0644, true);
}

Duration BackdateFor(Duration ttl) { return std::min<Duration>(kBackdate, ttl / 4); }

struct Authority::Impl {
  std::string dir;
  X509Ptr cert;
  PkeyPtr key;
  std::string trust_domain;
};

Authority::Authority(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Authority::Authority(Authority&&) noexcept = default;
Authority& Authority::operator=(Authority&&) noexcept = default;
Authority::~Authority() = default;

const std::string& Authority::dir() const { return impl_->dir; }
const std::string& Authority::trust_domain() const { return impl_->trust_domain; }

Result<Authority> Authority::Load(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  auto cert = ReadPem<X509Ptr>(PathIn(dir, kCaCert), PEM_read_bio_X509, "certificate");
  if (!cert) return tl::unexpected(cert.error());
  auto key = ReadPem<PkeyPtr>(PathIn(dir, kCaKey), PEM_read_bio_PrivateKey, "private key");
  if (!key) return tl::unexpected(key.error());
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("{}: the key does not match {}", PathIn(dir, kCaKey), kCaCert));
  }
  auto id = ParseSpiffeId(SpiffeIdOf(cert->get()));
  if (!id || !id->path.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("{}: not a Ferry mesh root (no URI SAN spiffe://DOMAIN)",
                            PathIn(dir, kCaCert)));
  }
  impl->cert = std::move(*cert);
  impl->key = std::move(*key);
  impl->trust_domain = id->trust_domain;
  return Authority(std::move(impl));
}

Result<SignedLeaf> Authority::Sign(const LeafSpec& spec, EVP_PKEY* public_key) const {
  if (auto ok = CheckTtl(spec.ttl); !ok) return tl::unexpected(ok.error());
  X509* root = impl_->cert.get();
  // A leaf never outlives its root: a verifier would refuse it from then on anyway.
  const ASN1_TIME* ca_end = X509_get0_notAfter(root);
  if (X509_cmp_time(ca_end, nullptr) <= 0) {
    return Fail(ErrorCode::kFailedPrecondition,
                fmt::format("the CA in {} has expired", impl_->dir));
  }
  auto now = SystemClock::now();
  SignedLeaf out;
  out.not_after = std::chrono::time_point_cast<std::chrono::seconds>(now + spec.ttl);
  struct tm ca_end_tm {};
  if (ASN1_TIME_to_tm(ca_end, &ca_end_tm) == 1) {
    auto end = SystemClock::from_time_t(timegm(&ca_end_tm));
    if (end < out.not_after) out.not_after = end;
  }
  std::string san;
  auto add_san = [&san](const std::string& kind, const std::string& value) {
    // A comma would start another SAN in OpenSSL's config syntax: refuse it, never pass it on.
    if (value.empty() || value.find_first_of(",\n") != std::string::npos) return false;
    if (!san.empty()) san += ",";
    san += kind + ":" + value;
    return true;
  };
  bool sans_ok = spec.spiffe_id.empty() || add_san("URI", spec.spiffe_id);
  for (const std::string& name : spec.dns_names) sans_ok = sans_ok && add_san("DNS", name);
  for (const std::string& ip : spec.ip_addresses) sans_ok = sans_ok && add_san("IP", ip);
  if (!sans_ok || san.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "a leaf needs SANs without commas");
  }
  const char* eku = spec.client_auth ? "serverAuth,clientAuth" : "serverAuth";

  X509Ptr cert(X509_new());
  bool ok = cert && X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
            SetRandomSerial(cert.get()) &&
            SetName(X509_get_subject_name(cert.get()), impl_->trust_domain, spec.common_name) &&
            X509_set_issuer_name(cert.get(), X509_get_subject_name(root)) == 1 &&
            SetValidity(cert.get(), now - BackdateFor(spec.ttl), out.not_after) &&
            X509_set_pubkey(cert.get(), public_key) == 1 &&
            AddExtension(cert.get(), root, NID_basic_constraints, "critical,CA:FALSE") &&
            AddExtension(cert.get(), root, NID_key_usage, "critical,digitalSignature") &&
            AddExtension(cert.get(), root, NID_ext_key_usage, eku) &&
            AddExtension(cert.get(), root, NID_subject_key_identifier, "hash") &&
            AddExtension(cert.get(), root, NID_authority_key_identifier, "keyid:always") &&
            AddExtension(cert.get(), root, NID_subject_alt_name, san.c_str()) &&
            X509_sign(cert.get(), impl_->key.get(), EVP_sha256()) > 0;
  if (!ok) return Fail(ErrorCode::kInternal, "signing: " + TakeOpenSslError());
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  char* hex = serial ? BN_bn2hex(serial.get()) : nullptr;
  if (hex == nullptr) return Fail(ErrorCode::kInternal, "serial: " + TakeOpenSslError());
  out.serial = hex;
  OPENSSL_free(hex);
  auto pem = CertPem(cert.get());
  if (!pem) return tl::unexpected(pem.error());
  out.cert_pem = std::move(*pem);
  return out;
}

Result<Issued> IssueService(const std::string& dir, const std::string& service, Duration ttl) {
  if (!IsValidServiceName(service)) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("service name '{}' is not valid (1 to 128 of A-Z, a-z, 0-9, '.', "
                            "'-', '_')",
                            service));
  }
  if (auto ok = CheckTtl(ttl); !ok) return tl::unexpected(ok.error());
  auto ca = Authority::Load(dir);
  if (!ca) return tl::unexpected(ca.error());
  auto key = NewKey();
  if (!key) return tl::unexpected(key.error());
  Issued issued;
  issued.cert_path = PathIn(dir, service + ".pem");
  issued.key_path = PathIn(dir, service + ".key");
  issued.spiffe_id = ServiceId(ca->trust_domain(), service);
  LeafSpec spec;
  spec.common_name = service;
  spec.spiffe_id = issued.spiffe_id;
  spec.ttl = ttl;
  auto signed_leaf = ca->Sign(spec, key->get());
  if (!signed_leaf) return tl::unexpected(signed_leaf.error());
  issued.not_after = signed_leaf->not_after;

  auto key_pem = KeyPem(key->get());
  if (!key_pem) return tl::unexpected(key_pem.error());
  if (auto written = WriteFileAtomically(issued.key_path, *key_pem, 0600, false); !written) {
    return tl::unexpected(written.error());
  }
  if (auto written = WriteFileAtomically(issued.cert_path, signed_leaf->cert_pem, 0644, false);
      !written) {
    return tl::unexpected(written.error());
  }
  return issued;
}

}  // namespace ferry::mesh
