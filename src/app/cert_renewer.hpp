// CertRenewer: keeps the node's mesh certificate current from `ferry ca serve` (`mesh.renew`,
// docs/security.md#renewal). Before each renewal it makes a new ECDSA P-256 key and a CSR for
// spiffe://DOMAIN/service/<renew.service> (DOMAIN: the trust domain of the mesh.ca root) and
// sends it over TLS (the CA server verified against mesh.ca, by the URL's host), presenting the
// current certificate when it is valid and names that identity, else the bootstrap token of
// renew.token_file. The answer is checked (our key, our identity, verifies against mesh.ca) and
// written as mesh.key (0600) then mesh.cert (temporary file, fsync, rename, directory fsync):
// the node's file watch then swaps the new pair in for new connections, without a restart and
// without dropping the connections it has.
//
// When: at 2/3 of each certificate's life (not_before to not_after), and at once when the
// certificate is missing, expired, does not fit its key or names another identity. Failures
// are logged and retried with backoff (1 s doubling to 60 s). EnsureCertificate is the start's
// blocking first step, so a node without a certificate can get one before it loads its TLS.
// Threading: Start runs the renewals on a thread of its own (blocking file I/O, a private event
// loop for the exchange); Update, Stop and the counters are safe from the node's main thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "config/config.hpp"
#include "core/result.hpp"
#include "core/units.hpp"
#include "mesh/workload_cert.hpp"

namespace ferry::app {

class CertRenewer {
 public:
  // `mesh` must have its renew block set.
  explicit CertRenewer(config::Mesh mesh);
  ~CertRenewer();
  CertRenewer(const CertRenewer&) = delete;
  CertRenewer& operator=(const CertRenewer&) = delete;

  // Blocking: when there is no usable certificate (missing, expired, not fitting its key, or
  // another identity), gets one with the bootstrap token, trying for up to `patience`. Ok when
  // a usable certificate is there in the end; the last error otherwise. `stop` is asked
  // between tries (at least every 100 ms while it waits to try again): true gives up at once,
  // kCancelled (a SIGTERM during a bootstrap must not wait out the patience).
  Result<void> EnsureCertificate(Duration patience, const std::function<bool()>& stop = {});

  // One renewal now (blocking, any thread but the renewer's own while it runs): the new
  // certificate's description, or why it failed. Counts a renewal or a failure.
  Result<mesh::CertificateInfo> RenewOnce();

  void Start();
  void Stop();
  // A reloaded config's mesh block (nullopt, or one without renew: renewals pause).
  void Update(std::optional<config::Mesh> mesh);

  std::uint64_t renewals() const { return renewals_.load(); }
  std::uint64_t failures() const { return failures_.load(); }
  // Unix seconds of the current certificate's not_after (0 until one is known).
  double expiry() const { return expiry_.load(); }

  // When a certificate valid from not_before to not_after is renewed: at 2/3 of its life.
  static std::chrono::system_clock::time_point RenewAt(const mesh::CertificateInfo& info);

  // The exchange in flight, so that Stop ends it at once rather than at its timeout.
  class Interruptible {
   public:
    // false once interrupted (do not start); else `interrupt` may be called until End.
    bool Begin(std::function<void()> interrupt);
    void End();
    // Calls the current `interrupt`, and makes every later Begin return false.
    void Interrupt();

   private:
    std::mutex mutex_;
    std::function<void()> interrupt_;
    bool stopping_ = false;
  };

 private:
  // The current certificate when it is usable for `identity` now; nullopt otherwise.
  std::optional<mesh::CertificateInfo> Current(const config::Mesh& mesh,
                                               const std::string& identity) const;
  Result<mesh::CertificateInfo> Renew(const config::Mesh& mesh);
  void Run();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<config::Mesh> mesh_;  // under mutex_
  bool stopping_ = false;             // under mutex_
  bool updated_ = false;              // under mutex_: Update was called; plan again
  std::thread thread_;
  Interruptible interruptible_;
  std::atomic<std::uint64_t> renewals_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<double> expiry_{0};
};

}  // namespace ferry::app
