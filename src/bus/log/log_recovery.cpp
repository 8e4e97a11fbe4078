// Log::Recover: what Open does before the log takes appends.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "bus/log/log.hpp"
#include "bus/log/segment_scanner.hpp"

namespace ferry::bus {
namespace {

// Suffix of segment files recovery moved aside (see below); Open ignores them.
constexpr std::string_view kOrphanSuffix = ".orphan";

struct Scanned {
  std::shared_ptr<Segment> segment;
  SegmentScan scan;
};

Result<Scanned> ScanFile(FileSystem& fs, const std::string& path, std::uint64_t base,
                         std::uint64_t index_interval) {
  auto data = ReadWholeFile(fs, path);
  if (!data) return tl::unexpected(data.error());
  auto readable = fs.OpenReadable(path);
  if (!readable) return tl::unexpected(readable.error());
  Scanned out;
  out.segment = std::make_shared<Segment>(base, path, std::move(*readable), index_interval);
  out.scan = ScanSegment(*data, base, [&](const ScannedRecord& record) {
    out.segment->AddRecord(record.header.sequence, record.offset,
                           kRecordHeaderSize + record.header.length, record.header.timestamp_us);
  });
  return out;
}

}  // namespace

Result<void> Log::Recover() {
  if (auto r = fs_->CreateDirs(options_.dir); !r) return r;
  auto lock = fs_->Lock(JoinPath(options_.dir, "LOCK"));
  if (!lock) return tl::unexpected(lock.error());
  dir_lock_ = std::move(*lock);
  // The log's own directory entry must be durable too, or a power cut can take all of it.
  std::string parent = std::filesystem::path(options_.dir).parent_path().string();
  if (auto r = fs_->SyncDir(parent.empty() ? "." : parent); !r) return r;
  auto names = fs_->List(options_.dir);
  if (!names) return tl::unexpected(names.error());
  std::vector<std::uint64_t> bases;
  for (const auto& name : *names) {
    if (auto base = Segment::ParseFileName(name)) bases.push_back(*base);
  }
  std::sort(bases.begin(), bases.end());
  const auto path_of = [&](std::uint64_t base) {
    return JoinPath(options_.dir, Segment::FileName(base));
  };

  for (std::size_t i = 0; i < bases.size(); ++i) {
    const std::string path = path_of(bases[i]);
    auto scanned = ScanFile(*fs_, path, bases[i], options_.index_interval_bytes);
    if (!scanned) return tl::unexpected(scanned.error());
    auto& [segment, scan] = *scanned;
    for (const SegmentDamage& damage : scan.damage) {
      spdlog::warn("bus log: corrupt record in {} at offset {}: {}; skipped {} bytes", path,
                   damage.offset, damage.reason, damage.length);
      recovery_.corruptions.push_back(
          {path, damage.offset, damage.length, damage.reason, CorruptionReport::Action::kSkipped});
      segment->AddDamage(damage.offset, damage.length);
    }
    // A segment that ends early (cleanly or torn) with a gap before the next one lost unsynced
    // records in a crash. Nothing after them was acknowledged: an ack needs every earlier
    // record fsynced. The later segments hold such records only; they go, and this segment
    // becomes the last. (Rot in the last record, a whole frame with a bad checksum, keeps
    // them: it is damage, not a crash.)
    if (i + 1 < bases.size() && bases[i + 1] > segment->next_sequence() &&
        (scan.tail_bytes == 0 || scan.tail_torn)) {
      for (std::size_t j = bases.size(); j-- > i + 1;) {
        // Moved aside rather than deleted, in case this reasoning ever meets a case it missed.
        const std::string later = path_of(bases[j]);
        auto size = fs_->FileSize(later);
        spdlog::warn("bus log: {} ends before {}: moving {} aside to {}{} (never acknowledged)",
                     path, bases[i + 1], later, later, kOrphanSuffix);
        if (auto r = fs_->Rename(later, later + std::string(kOrphanSuffix)); !r) return r;
        recovery_.corruptions.push_back({later, 0, size ? *size : 0,
                                         "follows records lost in a crash",
                                         CorruptionReport::Action::kTruncated});
      }
      if (auto r = fs_->SyncDir(options_.dir); !r) return r;
      bases.resize(i + 1);
    }
    const bool last = i + 1 == bases.size();
    if (scan.unused_bytes > 0 && last) {
      // Zeros the writer had written ahead (WritableFile::ZeroAhead): cut, so that appends
      // carry on after the last record. Not damage, so not reported.
      spdlog::debug("bus log: {} ends in {} zeroed bytes after offset {}; cut", path,
                    scan.unused_bytes, scan.valid_end);
      if (auto r = fs_->Truncate(path, scan.valid_end); !r) return r;
    }
    if (scan.tail_bytes > 0 && last) {
      // A torn write: the last append before a crash, never acknowledged. Cut it off so new
      // records follow the last good one.
      spdlog::warn("bus log: torn tail in {} at offset {} ({}): truncated {} bytes", path,
                   scan.valid_end, scan.tail_reason, scan.tail_bytes);
      if (auto r = fs_->Truncate(path, scan.valid_end); !r) return r;
      recovery_.truncated_bytes += scan.tail_bytes;
      recovery_.corruptions.push_back({path, scan.valid_end, scan.tail_bytes, scan.tail_reason,
                                       CorruptionReport::Action::kTruncated});
    } else if (scan.tail_bytes > 0) {
      // Damage at the end of an older segment whose successor follows on: keep the bytes for
      // inspection; readers step over them.
      spdlog::warn("bus log: corrupt tail in {} at offset {}: {}; skipped {} bytes", path,
                   scan.valid_end, scan.tail_reason, scan.tail_bytes);
      recovery_.corruptions.push_back({path, scan.valid_end, scan.tail_bytes, scan.tail_reason,
                                       CorruptionReport::Action::kSkipped});
      segment->AddDamage(scan.valid_end, scan.tail_bytes);
    }
    ++recovery_.segments;
    recovery_.records += scan.records;
    total_bytes_ += segment->size();
    next_sequence_ = std::max(next_sequence_, segment->next_sequence());
    segments_.emplace(bases[i], std::move(segment));
  }

  if (!segments_.empty()) {
    auto writable = fs_->OpenWritable(segments_.rbegin()->second->path());
    if (!writable) return tl::unexpected(writable.error());
    active_ = std::move(*writable);
    // Make a truncation durable before new records land behind it.
    if (recovery_.truncated_bytes > 0) {
      if (auto r = active_->Sync(); !r) return r;
    }
  }
  written_sequence_ = next_sequence_ - 1;
  durable_sequence_ = written_sequence_;
  return Ok();
}

}  // namespace ferry::bus
