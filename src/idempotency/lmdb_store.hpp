// The embedded store: one LMDB environment in a directory, shared by every worker of the node.
// A marker is committed with an fsync before Begin returns, so it survives kill -9 and power
// loss; LMDB's copy-on-write pages mean a crash never leaves a half-written record. The map is
// 1 GiB of address space (a sparse file, grown as used); a full map gives kNoSpace.
// Thread safety: any thread (LMDB serializes write transactions). Open the same directory
// once per process (an LMDB rule): OpenStore's callers keep one store per node.
#pragma once

#include <memory>
#include <string>

#include "idempotency/store.hpp"

struct MDB_env;
struct MDB_txn;
struct MDB_val;

namespace ferry::idempotency {

class LmdbStore final : public Store {
 public:
  // Opens (creating the directory and the environment if missing). A file there that is not
  // an LMDB environment, or a damaged one, is an error that names the directory.
  static Result<std::unique_ptr<LmdbStore>> Open(const std::string& dir);
  ~LmdbStore() override;

  Result<BeginResult> Begin(std::string_view key, const Record& marker,
                            std::int64_t now_ms) override;
  Result<bool> Complete(std::string_view key, const Record& done) override;
  Result<bool> Abandon(std::string_view key, std::uint64_t token) override;
  Result<std::size_t> Purge(std::int64_t now_ms) override;

 private:
  LmdbStore(std::string dir, MDB_env* env, unsigned int dbi)
      : dir_(std::move(dir)), env_(env), dbi_(dbi) {}
  Error Failed(std::string_view what, int rc) const;
  // Whether `key` holds the in-flight marker written with `token` (the exchange that may
  // complete or abandon it).
  Result<bool> HoldsMarker(MDB_txn* txn, MDB_val& key, std::uint64_t token) const;

  std::string dir_;
  MDB_env* env_;
  unsigned int dbi_;
};

}  // namespace ferry::idempotency
