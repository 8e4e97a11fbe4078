// An in-memory FileSystem for tests that models what a power cut does to a disk, in the manner
// of LevelDB's fault_injection_test: each file keeps its current bytes (the page cache) and the
// bytes of its last fsync; each directory keeps its current entries and those of its last
// directory fsync. SimulateCrash() throws away everything not fsynced: unsynced bytes, and
// files created, renamed or removed in a directory that was not fsynced since.
// It can also arm a crash point (the Nth mutating call from now "loses power": it and every
// later call fail with kIo and change nothing), fail the next fsync with EIO, fill the disk
// (appends past a byte budget write a prefix and fail with ENOSPC), and slow fsyncs down.
// Thread safety: every method may be called from any thread (one mutex inside).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>

#include "bus/log/file_system.hpp"

namespace ferry::bus {

class FaultInjectionFileSystem final : public FileSystem {
 public:
  // What a simulated crash keeps of the bytes written since a file's last fsync.
  enum class CrashMode {
    kDropUnsynced,      // none of them (LevelDB's model)
    kKeepRandomPrefix,  // a random prefix of them: a torn write, the tail cut at any byte
  };

  explicit FaultInjectionFileSystem(std::uint64_t seed = 1);

  Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path) override;
  Result<std::unique_ptr<RandomAccessFile>> OpenReadable(const std::string& path) override;
  Result<void> SyncDir(const std::string& dir) override;
  Result<void> Rename(const std::string& from, const std::string& to) override;
  Result<void> Remove(const std::string& path) override;
  Result<std::vector<std::string>> List(const std::string& dir) override;
  Result<std::uint64_t> FileSize(const std::string& path) override;
  Result<void> Truncate(const std::string& path, std::uint64_t size) override;
  Result<void> CreateDirs(const std::string& dir) override;
  Result<std::unique_ptr<FileLock>> Lock(const std::string& path) override;

  // The `ops`-th mutating call from now (append, fsync, create, rename, remove, truncate;
  // 1 = the next one) fails and the "machine" stays down until SimulateCrash(). An append
  // that hits the crash point writes a random prefix of its bytes first.
  void ArmCrashAfter(std::uint64_t ops);
  // Forgets an armed crash point that was not reached.
  void DisarmCrash();
  // True once an armed crash point was reached.
  bool down() const;
  // Power comes back: unsynced state is dropped per `mode`, the crash point is disarmed,
  // locks are released, and handles opened before stay usable but no longer see the files.
  // Also works when not down.
  void SimulateCrash(CrashMode mode);

  // The next `count` file fsyncs fail with EIO (kIo) and change nothing.
  void FailNextSyncs(int count);
  // Total bytes all files may hold; appends beyond it write what fits and fail with ENOSPC.
  // Zeros written ahead (WritableFile::ZeroAhead) count, and appends over them need no room.
  void SetSpaceLimit(std::optional<std::uint64_t> bytes);
  // Off: WritableFile::ZeroAhead writes nothing and fails, so that a space limit meets the
  // very next append (tests of a full disk). On by default.
  void SetZeroAhead(bool on);
  // Each file fsync sleeps this long first (a slow disk, so group commit has time to batch).
  void SetSyncDelay(std::chrono::microseconds delay);
  // While paused, file fsyncs block (before taking effect) until ResumeSyncs().
  void PauseSyncs();
  void ResumeSyncs();
  // While paused: waits until a file fsync is blocked by the pause.
  void AwaitPausedSync();

  std::uint64_t file_syncs() const;  // successful file fsyncs so far
  std::uint64_t dir_syncs() const;   // successful directory fsyncs so far

  // Test helpers that bypass faults: flip bits of a byte in both the current and the synced
  // copy (damage found on disk), and read a file's current bytes.
  Result<void> CorruptByte(const std::string& path, std::uint64_t offset, std::uint8_t xor_mask);
  Result<std::string> Contents(const std::string& path) const;

  struct Node;  // a file's bytes; shared by the handles and the directory maps

 private:
  friend class FaultWritableFile;
  friend class FaultReadableFile;
  friend class FaultFileLock;

  // Counts a mutating call toward the crash point; false once the machine is down.
  bool Step();
  std::uint64_t UsedBytes() const;

  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  std::set<std::string> dirs_;
  std::map<std::string, std::shared_ptr<Node>> files_;         // current entries, by path
  std::map<std::string, std::shared_ptr<Node>> synced_files_;  // as of each dir's last fsync
  std::optional<std::uint64_t> crash_countdown_;
  bool down_ = false;
  int failing_syncs_ = 0;
  std::optional<std::uint64_t> space_limit_;
  bool zero_ahead_ = true;
  std::chrono::microseconds sync_delay_{0};
  bool syncs_paused_ = false;
  int syncs_blocked_ = 0;  // fsyncs waiting for ResumeSyncs
  std::condition_variable resume_cv_;
  std::condition_variable blocked_cv_;
  std::uint64_t file_syncs_ = 0;
  std::uint64_t dir_syncs_ = 0;
  std::map<std::string, std::uint64_t> locks_;  // held locks: path -> holder token
  std::uint64_t next_lock_token_ = 1;
};

}  // namespace ferry::bus
