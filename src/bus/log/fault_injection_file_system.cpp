#include "bus/log/fault_injection_file_system.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

namespace ferry::bus {

struct FaultInjectionFileSystem::Node {
  std::string data;    // what a read sees now (the page cache)
  std::string synced;  // what the last fsync put on the platter
};

namespace {

std::string ParentOf(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

tl::unexpected<Error> Down(std::string_view op, const std::string& path) {
  return Fail(ErrorCode::kIo, fmt::format("{} {}: simulated power loss", op, path));
}

}  // namespace

class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultInjectionFileSystem* fs, std::shared_ptr<FaultInjectionFileSystem::Node> n,
                    std::string path)
      : fs_(fs), node_(std::move(n)), path_(std::move(path)), size_(node_->data.size()) {}

  ~FaultWritableFile() override {
    std::lock_guard lock(fs_->mu_);
    if (node_->data.size() > size_) node_->data.resize(size_);  // not synced: a crash keeps them
  }

  Result<void> Append(std::string_view data) override {
    std::lock_guard lock(fs_->mu_);
    const bool crash_now = fs_->crash_countdown_ == 1;
    if (!fs_->Step()) {
      if (crash_now) {  // the write that was in flight when power went: some prefix landed
        const auto keep = std::uniform_int_distribution<std::size_t>(0, data.size())(fs_->rng_);
        WriteAtEnd(data.substr(0, keep));
      }
      return Down("write", path_);
    }
    if (fs_->space_limit_) {
      const std::uint64_t used = fs_->UsedBytes();
      const std::uint64_t room = used >= *fs_->space_limit_ ? 0 : *fs_->space_limit_ - used;
      const std::uint64_t fits = room + ZeroedAheadLocked();
      if (data.size() > fits) {
        WriteAtEnd(data.substr(0, fits));
        size_ += fits;
        return Fail(ErrorCode::kResourceExhausted,
                    fmt::format("write {}: No space left on device (simulated)", path_));
      }
    }
    WriteAtEnd(data);
    size_ += data.size();
    return Ok();
  }

  Result<void> Sync() override {
    std::chrono::microseconds delay;
    {
      std::lock_guard lock(fs_->mu_);
      delay = fs_->sync_delay_;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    std::unique_lock lock(fs_->mu_);
    if (fs_->syncs_paused_) {
      ++fs_->syncs_blocked_;
      fs_->blocked_cv_.notify_all();
      fs_->resume_cv_.wait(lock, [this] { return !fs_->syncs_paused_; });
      --fs_->syncs_blocked_;
    }
    if (!fs_->Step()) return Down("fdatasync", path_);
    if (fs_->failing_syncs_ > 0) {
      --fs_->failing_syncs_;
      return Fail(ErrorCode::kIo,
                  fmt::format("fdatasync {}: Input/output error (injected)", path_));
    }
    node_->synced = node_->data;
    ++fs_->file_syncs_;
    return Ok();
  }

  Result<void> Truncate(std::uint64_t size) override {
    std::lock_guard lock(fs_->mu_);
    if (!fs_->Step()) return Down("ftruncate", path_);
    node_->data.resize(size, '\0');
    size_ = size;
    return Ok();
  }

  std::uint64_t Size() const override { return size_; }

  Result<void> ZeroAhead(std::uint64_t bytes) override {
    std::lock_guard lock(fs_->mu_);
    const std::uint64_t end = size_ + bytes;
    if (node_->data.size() >= end) return Ok();
    if (!fs_->zero_ahead_) {
      return Fail(ErrorCode::kFailedPrecondition,
                  fmt::format("write {}: zeros ahead turned off (test)", path_));
    }
    if (!fs_->Step()) return Down("write", path_);
    if (fs_->space_limit_ && fs_->UsedBytes() + (end - node_->data.size()) > *fs_->space_limit_) {
      return Fail(ErrorCode::kResourceExhausted,
                  fmt::format("write {}: No space left on device (simulated)", path_));
    }
    node_->data.resize(end, '\0');
    return Ok();
  }

  std::uint64_t ZeroedAhead() const override {
    std::lock_guard lock(fs_->mu_);
    return ZeroedAheadLocked();
  }

 private:
  std::uint64_t ZeroedAheadLocked() const {
    return node_->data.size() > size_ ? node_->data.size() - size_ : 0;
  }
  // Writes at size_, over zeros written ahead, growing the file where it must.
  void WriteAtEnd(std::string_view data) {
    if (node_->data.size() < size_ + data.size()) node_->data.resize(size_ + data.size());
    std::copy(data.begin(), data.end(), node_->data.begin() + static_cast<std::ptrdiff_t>(size_));
  }

  FaultInjectionFileSystem* fs_;
  std::shared_ptr<FaultInjectionFileSystem::Node> node_;
  std::string path_;
  std::uint64_t size_;
};

class FaultReadableFile final : public RandomAccessFile {
 public:
  FaultReadableFile(const FaultInjectionFileSystem* fs,
                    std::shared_ptr<FaultInjectionFileSystem::Node> n)
      : fs_(fs), node_(std::move(n)) {}

  Result<std::size_t> Read(std::uint64_t offset, std::size_t n, char* out) const override {
    std::lock_guard lock(fs_->mu_);
    if (offset >= node_->data.size()) return std::size_t{0};
    const std::size_t count = std::min<std::uint64_t>(n, node_->data.size() - offset);
    std::copy_n(node_->data.data() + offset, count, out);
    return count;
  }

  Result<std::uint64_t> Size() const override {
    std::lock_guard lock(fs_->mu_);
    return static_cast<std::uint64_t>(node_->data.size());
  }

 private:
  const FaultInjectionFileSystem* fs_;
  std::shared_ptr<FaultInjectionFileSystem::Node> node_;
};

class FaultFileLock final : public FileLock {
 public:
  FaultFileLock(FaultInjectionFileSystem* fs, std::string path, std::uint64_t token)
      : fs_(fs), path_(std::move(path)), token_(token) {}
  ~FaultFileLock() override {
    std::lock_guard lock(fs_->mu_);
    const auto it = fs_->locks_.find(path_);
    if (it != fs_->locks_.end() && it->second == token_) fs_->locks_.erase(it);
  }

 private:
  FaultInjectionFileSystem* fs_;
  std::string path_;
  std::uint64_t token_;
};

FaultInjectionFileSystem::FaultInjectionFileSystem(std::uint64_t seed) : rng_(seed) {}

Result<std::unique_ptr<FileLock>> FaultInjectionFileSystem::Lock(const std::string& path) {
  std::lock_guard lock(mu_);
  if (locks_.contains(path)) {
    return Fail(ErrorCode::kFailedPrecondition, fmt::format("{} is locked by another owner", path));
  }
  const std::uint64_t token = next_lock_token_++;
  locks_.emplace(path, token);
  return std::make_unique<FaultFileLock>(this, path, token);
}

bool FaultInjectionFileSystem::Step() {
  if (down_) return false;
  if (crash_countdown_ && --*crash_countdown_ == 0) {
    crash_countdown_.reset();
    down_ = true;
    return false;
  }
  return true;
}

std::uint64_t FaultInjectionFileSystem::UsedBytes() const {
  std::uint64_t used = 0;
  for (const auto& [path, node] : files_) used += node->data.size();
  return used;
}

Result<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::OpenWritable(
    const std::string& path) {
  std::lock_guard lock(mu_);
  if (!Step()) return Down("open", path);
  auto it = files_.find(path);
  if (it == files_.end()) {
    if (!dirs_.contains(ParentOf(path))) {
      return Fail(ErrorCode::kNotFound, fmt::format("open {}: no such directory", path));
    }
    it = files_.emplace(path, std::make_shared<Node>()).first;
  }
  return std::make_unique<FaultWritableFile>(this, it->second, path);
}

Result<std::unique_ptr<RandomAccessFile>> FaultInjectionFileSystem::OpenReadable(
    const std::string& path) {
  std::lock_guard lock(mu_);
  const auto it = files_.find(path);
  if (it == files_.end())
    return Fail(ErrorCode::kNotFound, fmt::format("open {}: no such file", path));
  return std::make_unique<FaultReadableFile>(this, it->second);
}

Result<void> FaultInjectionFileSystem::SyncDir(const std::string& dir) {
  std::lock_guard lock(mu_);
  if (!Step()) return Down("fsync", dir);
  std::erase_if(synced_files_, [&](const auto& entry) { return ParentOf(entry.first) == dir; });
  for (const auto& [path, node] : files_) {
    if (ParentOf(path) == dir) synced_files_[path] = node;
  }
  ++dir_syncs_;
  return Ok();
}

Result<void> FaultInjectionFileSystem::Rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  if (!Step()) return Down("rename", from);
  const auto it = files_.find(from);
  if (it == files_.end())
    return Fail(ErrorCode::kNotFound, fmt::format("rename {}: no such file", from));
  auto node = it->second;
  files_.erase(it);
  files_[to] = std::move(node);
  return Ok();
}

Result<void> FaultInjectionFileSystem::Remove(const std::string& path) {
  std::lock_guard lock(mu_);
  if (!Step()) return Down("unlink", path);
  if (files_.erase(path) == 0) {
    return Fail(ErrorCode::kNotFound, fmt::format("unlink {}: no such file", path));
  }
  return Ok();
}

Result<std::vector<std::string>> FaultInjectionFileSystem::List(const std::string& dir) {
  std::lock_guard lock(mu_);
  if (!dirs_.contains(dir))
    return Fail(ErrorCode::kNotFound, fmt::format("opendir {}: no such directory", dir));
  std::vector<std::string> names;
  for (const auto& [path, node] : files_) {
    if (ParentOf(path) == dir) names.push_back(path.substr(dir.size() + 1));
  }
  for (const std::string& sub : dirs_) {  // subdirectories, as readdir lists them
    if (sub != dir && ParentOf(sub) == dir) names.push_back(sub.substr(dir.size() + 1));
  }
  return names;
}

Result<std::uint64_t> FaultInjectionFileSystem::FileSize(const std::string& path) {
  std::lock_guard lock(mu_);
  const auto it = files_.find(path);
  if (it == files_.end())
    return Fail(ErrorCode::kNotFound, fmt::format("stat {}: no such file", path));
  return static_cast<std::uint64_t>(it->second->data.size());
}

Result<void> FaultInjectionFileSystem::Truncate(const std::string& path, std::uint64_t size) {
  std::lock_guard lock(mu_);
  if (!Step()) return Down("truncate", path);
  const auto it = files_.find(path);
  if (it == files_.end())
    return Fail(ErrorCode::kNotFound, fmt::format("truncate {}: no such file", path));
  it->second->data.resize(size, '\0');
  return Ok();
}

Result<void> FaultInjectionFileSystem::CreateDirs(const std::string& dir) {
  std::lock_guard lock(mu_);
  // Directories themselves are modelled as always durable; only their entries are not.
  for (std::string d = dir; !d.empty() && d != "." && d != "/"; d = ParentOf(d)) {
    dirs_.insert(d);
    if (d.find('/') == std::string::npos) break;
  }
  return Ok();
}

void FaultInjectionFileSystem::ArmCrashAfter(std::uint64_t ops) {
  std::lock_guard lock(mu_);
  crash_countdown_ = std::max<std::uint64_t>(ops, 1);
}

void FaultInjectionFileSystem::DisarmCrash() {
  std::lock_guard lock(mu_);
  crash_countdown_.reset();
}

bool FaultInjectionFileSystem::down() const {
  std::lock_guard lock(mu_);
  return down_;
}

void FaultInjectionFileSystem::SimulateCrash(CrashMode mode) {
  std::lock_guard lock(mu_);
  std::map<std::string, std::shared_ptr<Node>> survivors;
  for (const auto& [path, old] : synced_files_) {
    auto node = std::make_shared<Node>();
    node->data = old->synced;
    // Unsynced writes start where the two copies first differ: past the synced end, or over
    // zeros written ahead and synced.
    const std::size_t common = std::min(old->data.size(), old->synced.size());
    const auto diff = static_cast<std::size_t>(
        std::mismatch(old->data.begin(), old->data.begin() + static_cast<std::ptrdiff_t>(common),
                      old->synced.begin())
            .first -
        old->data.begin());
    if (mode == CrashMode::kKeepRandomPrefix && old->data.size() > diff) {
      const std::size_t extra = old->data.size() - diff;
      const auto keep = std::uniform_int_distribution<std::size_t>(0, extra)(rng_);
      if (node->data.size() < diff + keep) node->data.resize(diff + keep);
      std::copy_n(old->data.begin() + static_cast<std::ptrdiff_t>(diff), keep,
                  node->data.begin() + static_cast<std::ptrdiff_t>(diff));
    }
    // Whatever survived is what the disk holds now, so it counts as synced.
    node->synced = node->data;
    survivors.emplace(path, std::move(node));
  }
  files_ = survivors;
  synced_files_ = std::move(survivors);
  crash_countdown_.reset();
  down_ = false;
  locks_.clear();  // the processes that held them died with the power
}

void FaultInjectionFileSystem::FailNextSyncs(int count) {
  std::lock_guard lock(mu_);
  failing_syncs_ = count;
}

void FaultInjectionFileSystem::SetSpaceLimit(std::optional<std::uint64_t> bytes) {
  std::lock_guard lock(mu_);
  space_limit_ = bytes;
}

void FaultInjectionFileSystem::SetZeroAhead(bool on) {
  std::lock_guard lock(mu_);
  zero_ahead_ = on;
}

void FaultInjectionFileSystem::SetSyncDelay(std::chrono::microseconds delay) {
  std::lock_guard lock(mu_);
  sync_delay_ = delay;
}

void FaultInjectionFileSystem::PauseSyncs() {
  std::lock_guard lock(mu_);
  syncs_paused_ = true;
}

void FaultInjectionFileSystem::AwaitPausedSync() {
  std::unique_lock lock(mu_);
  blocked_cv_.wait(lock, [this] { return syncs_blocked_ > 0; });
}

void FaultInjectionFileSystem::ResumeSyncs() {
  {
    std::lock_guard lock(mu_);
    syncs_paused_ = false;
  }
  resume_cv_.notify_all();
}

std::uint64_t FaultInjectionFileSystem::file_syncs() const {
  std::lock_guard lock(mu_);
  return file_syncs_;
}

std::uint64_t FaultInjectionFileSystem::dir_syncs() const {
  std::lock_guard lock(mu_);
  return dir_syncs_;
}

Result<void> FaultInjectionFileSystem::CorruptByte(const std::string& path, std::uint64_t offset,
                                                   std::uint8_t xor_mask) {
  std::lock_guard lock(mu_);
  const auto it = files_.find(path);
  if (it == files_.end() || offset >= it->second->data.size()) {
    return Fail(ErrorCode::kNotFound, fmt::format("corrupt {}@{}: no such byte", path, offset));
  }
  Node& node = *it->second;
  node.data[offset] = static_cast<char>(node.data[offset] ^ xor_mask);
  if (offset < node.synced.size())
    node.synced[offset] = static_cast<char>(node.synced[offset] ^ xor_mask);
  return Ok();
}

Result<std::string> FaultInjectionFileSystem::Contents(const std::string& path) const {
  std::lock_guard lock(mu_);
  const auto it = files_.find(path);
  if (it == files_.end())
    return Fail(ErrorCode::kNotFound, fmt::format("read {}: no such file", path));
  return it->second->data;
}

}  // namespace ferry::bus
