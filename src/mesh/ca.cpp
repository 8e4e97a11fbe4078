#include "mesh/ca.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

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

// Writes `bytes` to `path` through a temporary file in the same directory and a rename, with
// `mode` from the start (a key is never readable by others, not even for a moment).
// `exclusive`: fail with kAlreadyExists if `path` exists.
Result<void> WriteFileAtomically(const std::string& path, const std::string& bytes, mode_t mode,
                                 bool exclusive) {
  std::string temp = path + ".tmp";
  ::unlink(temp.c_str());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Fail(ErrorCode::kIo, fmt::format("{}: {}", temp, std::strerror(errno)));
  // The umask may have taken bits away, never added any; set exactly `mode`.
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t done = 0;
  while (ok && done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (ok && exclusive) {
    // link() fails if the target exists: no window in which another `init` could be replaced.
    ok = ::link(temp.c_str(), path.c_str()) == 0;
    saved = errno;
    ::unlink(temp.c_str());
    if (!ok && saved == EEXIST) {
      return Fail(ErrorCode::kAlreadyExists, fmt::format("{} exists", path));
    }
  } else if (ok) {
    ok = ::rename(temp.c_str(), path.c_str()) == 0;
    saved = errno;
  }
  if (!ok) {
    ::unlink(temp.c_str());
    return Fail(ErrorCode::kIo, fmt::format("{}: {}", path, std::strerror(saved)));
  }
  return Ok();
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

struct LoadedCa {
  X509Ptr cert;
  PkeyPtr key;
  std::string trust_domain;
};

Result<LoadedCa> LoadCa(const std::string& dir) {
  LoadedCa ca;
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
  ca.cert = std::move(*cert);
  ca.key = std::move(*key);
  ca.trust_domain = id->trust_domain;
  return ca;
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

Result<Issued> IssueService(const std::string& dir, const std::string& service, Duration ttl) {
  if (!IsValidServiceName(service)) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("service name '{}' is not valid (1 to 128 of A-Z, a-z, 0-9, '.', "
                            "'-', '_')",
                            service));
  }
  if (auto ok = CheckTtl(ttl); !ok) return tl::unexpected(ok.error());
  auto ca = LoadCa(dir);
  if (!ca) return tl::unexpected(ca.error());

  auto key = NewKey();
  if (!key) return tl::unexpected(key.error());
  Issued issued;
  issued.cert_path = PathIn(dir, service + ".pem");
  issued.key_path = PathIn(dir, service + ".key");
  issued.spiffe_id = ServiceId(ca->trust_domain, service);
  auto now = SystemClock::now();
  issued.not_after = std::chrono::time_point_cast<std::chrono::seconds>(now + ttl);
  // A leaf never outlives its root: a verifier would refuse it from then on anyway.
  const ASN1_TIME* ca_end = X509_get0_notAfter(ca->cert.get());
  if (X509_cmp_time(ca_end, nullptr) <= 0) {
    return Fail(ErrorCode::kFailedPrecondition, fmt::format("the CA in {} has expired", dir));
  }
  struct tm ca_end_tm {};
  if (ASN1_TIME_to_tm(ca_end, &ca_end_tm) == 1) {
    auto end = SystemClock::from_time_t(timegm(&ca_end_tm));
    if (end < issued.not_after) issued.not_after = end;
  }

  X509Ptr cert(X509_new());
  std::string san = "URI:" + issued.spiffe_id;
  bool ok =
      cert && X509_set_version(cert.get(), X509_VERSION_3) == 1 && SetRandomSerial(cert.get()) &&
      SetName(X509_get_subject_name(cert.get()), ca->trust_domain, service) &&
      X509_set_issuer_name(cert.get(), X509_get_subject_name(ca->cert.get())) == 1 &&
      SetValidity(cert.get(), now - kBackdate, issued.not_after) &&
      X509_set_pubkey(cert.get(), key->get()) == 1 &&
      AddExtension(cert.get(), ca->cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
      AddExtension(cert.get(), ca->cert.get(), NID_key_usage, "critical,digitalSignature") &&
      AddExtension(cert.get(), ca->cert.get(), NID_ext_key_usage, "serverAuth,clientAuth") &&
      AddExtension(cert.get(), ca->cert.get(), NID_subject_key_identifier, "hash") &&
      AddExtension(cert.get(), ca->cert.get(), NID_authority_key_identifier, "keyid:always") &&
      AddExtension(cert.get(), ca->cert.get(), NID_subject_alt_name, san.c_str()) &&
      X509_sign(cert.get(), ca->key.get(), EVP_sha256()) > 0;
  if (!ok) return Fail(ErrorCode::kInternal, "signing: " + TakeOpenSslError());

  auto key_pem = KeyPem(key->get());
  if (!key_pem) return tl::unexpected(key_pem.error());
  auto cert_pem = CertPem(cert.get());
  if (!cert_pem) return tl::unexpected(cert_pem.error());
  if (auto written = WriteFileAtomically(issued.key_path, *key_pem, 0600, false); !written) {
    return tl::unexpected(written.error());
  }
  if (auto written = WriteFileAtomically(issued.cert_path, *cert_pem, 0644, false); !written) {
    return tl::unexpected(written.error());
  }
  return issued;
}

}  // namespace ferry::mesh
