#include "idempotency/lmdb_store.hpp"

#include <fmt/format.h>
#include <lmdb.h>

#include <filesystem>
#include <system_error>

namespace ferry::idempotency {
namespace {

constexpr std::size_t kMapSize = std::size_t{1} << 30;
// LMDB's largest key is 511 bytes: a longer scoped key is stored as its digest.
constexpr std::size_t kMaxKey = 511;

// A write transaction that aborts unless committed.
class WriteTxn {
 public:
  explicit WriteTxn(MDB_env* env) { rc_ = mdb_txn_begin(env, nullptr, 0, &txn_); }
  ~WriteTxn() {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
  }
  int rc() const { return rc_; }
  MDB_txn* get() const { return txn_; }
  int Commit() {
    const int rc = mdb_txn_commit(txn_);  // frees the transaction whatever it returns
    txn_ = nullptr;
    return rc;
  }

 private:
  MDB_txn* txn_ = nullptr;
  int rc_ = 0;
};

std::string StoredKey(std::string_view key) {
  if (key.size() <= kMaxKey) return std::string(key);
  return "sha256:" + Fingerprint("", "", key);
}

MDB_val Val(std::string_view bytes) {
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

std::string_view View(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

}  // namespace

Error LmdbStore::Failed(std::string_view what, int rc) const {
  const ErrorCode code = rc == MDB_MAP_FULL ? ErrorCode::kNoSpace : ErrorCode::kIo;
  return Error(code, fmt::format("idempotency store {}: {}: {}", dir_, what, mdb_strerror(rc)));
}

Result<std::unique_ptr<LmdbStore>> LmdbStore::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Fail(ErrorCode::kIo, fmt::format("idempotency store {}: cannot create the directory: {}",
                                            dir, ec.message()));
  }
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc == 0) rc = mdb_env_set_mapsize(env, kMapSize);
  // MDB_NOTLS: transactions are not tied to thread-local reader slots (a thread pool runs them).
  if (rc == 0) rc = mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0600);
  if (rc != 0) {
    if (env != nullptr) mdb_env_close(env);
    std::string why = mdb_strerror(rc);
    if (rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH) {
      why +=
          " (the file is damaged or not an LMDB environment: move the directory away to "
          "start empty, which forgets every stored key)";
    }
    return Fail(ErrorCode::kIo, fmt::format("idempotency store {}: cannot open: {}", dir, why));
  }
  int dead = 0;
  mdb_reader_check(env, &dead);  // reader slots left by a process that died (kill -9)
  MDB_dbi dbi = 0;
  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env, nullptr, 0, &txn);
  if (rc == 0) rc = mdb_dbi_open(txn, nullptr, 0, &dbi);
  if (rc == 0) {
    rc = mdb_txn_commit(txn);
  } else if (txn != nullptr) {
    mdb_txn_abort(txn);
  }
  if (rc != 0) {
    mdb_env_close(env);
    return Fail(ErrorCode::kIo,
                fmt::format("idempotency store {}: cannot open: {}", dir, mdb_strerror(rc)));
  }
  return std::unique_ptr<LmdbStore>(new LmdbStore(dir, env, dbi));
}

LmdbStore::~LmdbStore() { mdb_env_close(env_); }

Result<BeginResult> LmdbStore::Begin(std::string_view key, const Record& marker,
                                     std::int64_t now_ms) {
  const std::string k = StoredKey(key);
  WriteTxn txn(env_);
  if (txn.rc() != 0) return tl::unexpected(Failed("begin", txn.rc()));
  MDB_val mk = Val(k), mv{};
  std::optional<Record> existing;
  int rc = mdb_get(txn.get(), dbi_, &mk, &mv);
  if (rc == 0) {
    existing = Decode(View(mv));
    if (!existing) {
      return Fail(ErrorCode::kIo,
                  fmt::format("idempotency store {}: the record of a key is damaged", dir_));
    }
  } else if (rc != MDB_NOTFOUND) {
    return tl::unexpected(Failed("read", rc));
  }
  BeginResult result = Decide(existing, marker.fingerprint, now_ms);
  if (result.outcome != Outcome::kStarted) return result;  // (the transaction aborts: no write)
  const std::string bytes = Encode(marker);
  mv = Val(bytes);
  if (rc = mdb_put(txn.get(), dbi_, &mk, &mv, 0); rc != 0)
    return tl::unexpected(Failed("write", rc));
  if (rc = txn.Commit(); rc != 0) return tl::unexpected(Failed("commit", rc));
  return result;
}

Result<bool> LmdbStore::HoldsMarker(MDB_txn* txn, MDB_val& key, std::uint64_t token) const {
  MDB_val value{};
  const int rc = mdb_get(txn, dbi_, &key, &value);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != 0) return tl::unexpected(Failed("read", rc));
  const std::optional<Record> existing = Decode(View(value));
  return existing && existing->state == Record::State::kInFlight && existing->token == token;
}

Result<bool> LmdbStore::Complete(std::string_view key, const Record& done) {
  const std::string k = StoredKey(key);
  WriteTxn txn(env_);
  if (txn.rc() != 0) return tl::unexpected(Failed("begin", txn.rc()));
  MDB_val mk = Val(k);
  const Result<bool> owned = HoldsMarker(txn.get(), mk, done.token);
  if (!owned || !*owned) return owned;
  const std::string bytes = Encode(done);
  MDB_val mv = Val(bytes);
  int rc = 0;
  if (rc = mdb_put(txn.get(), dbi_, &mk, &mv, 0); rc != 0)
    return tl::unexpected(Failed("write", rc));
  if (rc = txn.Commit(); rc != 0) return tl::unexpected(Failed("commit", rc));
  return true;
}

Result<bool> LmdbStore::Abandon(std::string_view key, std::uint64_t token) {
  const std::string k = StoredKey(key);
  WriteTxn txn(env_);
  if (txn.rc() != 0) return tl::unexpected(Failed("begin", txn.rc()));
  MDB_val mk = Val(k);
  const Result<bool> owned = HoldsMarker(txn.get(), mk, token);
  if (!owned || !*owned) return owned;
  int rc = 0;
  if (rc = mdb_del(txn.get(), dbi_, &mk, nullptr); rc != 0)
    return tl::unexpected(Failed("delete", rc));
  if (rc = txn.Commit(); rc != 0) return tl::unexpected(Failed("commit", rc));
  return true;
}

Result<std::size_t> LmdbStore::Purge(std::int64_t now_ms) {
  WriteTxn txn(env_);
  if (txn.rc() != 0) return tl::unexpected(Failed("begin", txn.rc()));
  MDB_cursor* cursor = nullptr;
  int rc = mdb_cursor_open(txn.get(), dbi_, &cursor);
  if (rc != 0) return tl::unexpected(Failed("cursor", rc));
  std::size_t removed = 0;
  MDB_val mk{}, mv{};
  for (rc = mdb_cursor_get(cursor, &mk, &mv, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cursor, &mk, &mv, MDB_NEXT)) {
    const std::optional<Record> record = Decode(View(mv));
    // A damaged record is dropped too: its key starts afresh rather than failing forever.
    if (!record || record->expires_at_ms <= now_ms) {
      if (const int del = mdb_cursor_del(cursor, 0); del != 0) {
        mdb_cursor_close(cursor);
        return tl::unexpected(Failed("delete", del));
      }
      ++removed;
    }
  }
  mdb_cursor_close(cursor);
  if (rc != MDB_NOTFOUND) return tl::unexpected(Failed("scan", rc));
  if (removed == 0) return removed;  // (nothing to commit)
  if (rc = txn.Commit(); rc != 0) return tl::unexpected(Failed("commit", rc));
  return removed;
}

}  // namespace ferry::idempotency
