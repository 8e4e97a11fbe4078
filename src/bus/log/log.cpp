#include "bus/log/log.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "bus/log/record_format.hpp"

namespace ferry::bus {
namespace {

std::int64_t SystemClockUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

LogOptions WithDefaults(LogOptions options) {
  if (!options.clock_us) options.clock_us = &SystemClockUs;
  return options;
}

}  // namespace

Log::Log(std::shared_ptr<FileSystem> fs, LogOptions options)
    : fs_(std::move(fs)), options_(WithDefaults(std::move(options))) {}

Result<std::unique_ptr<Log>> Log::Open(std::shared_ptr<FileSystem> fs, LogOptions options) {
  if (options.dir.empty()) return Fail(ErrorCode::kInvalidArgument, "bus log: no directory");
  if (options.segment_bytes == 0) {
    return Fail(ErrorCode::kInvalidArgument, "bus log: segment_bytes must be positive");
  }
  if (options.durability == Durability::kInterval && options.sync_interval.count() <= 0) {
    return Fail(ErrorCode::kInvalidArgument, "bus log: sync_interval must be positive");
  }
  if (options.max_record_bytes > kMaxFramePayload) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("bus log: max_record_bytes over {}", kMaxFramePayload));
  }
  std::unique_ptr<Log> log(new Log(std::move(fs), std::move(options)));
  if (auto r = log->Recover(); !r) return tl::unexpected(r.error());
  log->sync_thread_ = std::thread([raw = log.get()] { raw->SyncLoop(); });
  return log;
}

Log::~Log() { (void)Close(); }

Result<std::uint64_t> Log::Append(std::string_view payload, std::uint32_t flags) {
  return Append(payload, flags, nullptr);
}

Result<std::uint64_t> Log::Append(std::string_view payload, std::uint32_t flags,
                                  AckCallback on_ack) {
  std::unique_lock lock(mu_);
  if (closing_ || failure_) return tl::unexpected(ClosedError());
  if (payload.size() > options_.max_record_bytes) {
    ++stats_.rejected_too_large;
    return Fail(ErrorCode::kResourceExhausted,
                fmt::format("record of {} bytes is over the limit of {}", payload.size(),
                            options_.max_record_bytes));
  }
  const std::uint64_t frame = kRecordHeaderSize + payload.size();
  if (options_.max_total_bytes != 0 && total_bytes_ + frame > options_.max_total_bytes) {
    ++stats_.rejected_full;
    return Fail(ErrorCode::kFull,
                fmt::format("{} log {} holds {} bytes and its limit (max_bytes) is {}: retry "
                            "once consumers have freed space",
                            kLogFullMessage, options_.dir, total_bytes_, options_.max_total_bytes));
  }
  Flushed flushed;
  const auto fail = [&](const Error& error) -> Result<std::uint64_t> {
    lock.unlock();
    DeliverFlushed(flushed);
    return tl::unexpected(error);
  };
  const std::uint64_t active_size = active_ ? active_->Size() + buffer_.size() : 0;
  if (!active_ || (active_size > 0 && active_size + frame > options_.segment_bytes)) {
    // What is buffered belongs to the segment being closed.
    if (auto r = FlushLocked(flushed); !r) return fail(r.error());
    if (auto r = RollLocked(); !r) return fail(r.error());
  }
  const std::uint64_t sequence = next_sequence_++;
  const std::int64_t timestamp = options_.clock_us();
  buffered_.push_back({.sequence = sequence,
                       .offset = active_->Size() + buffer_.size(),
                       .frame_bytes = frame,
                       .timestamp_us = timestamp});
  EncodeRecord({.sequence = sequence, .timestamp_us = timestamp, .flags = flags}, payload,
               &buffer_);
  total_bytes_ += frame;
  ++stats_.appends;
  stats_.appended_bytes += frame;
  const bool has_ack = static_cast<bool>(on_ack);
  if (has_ack) buffered_acks_.emplace_back(sequence, std::move(on_ack));
  if (!options_.coalesce_writes || buffer_.size() >= kMaxBufferedBytes) {
    if (auto r = FlushLocked(flushed); !r) {
      // This record failed with the rest; its caller hears it from the result, not the ack.
      if (has_ack && !flushed.rejected_acks.empty()) flushed.rejected_acks.pop_back();
      return fail(r.error());
    }
  }
  lock.unlock();
  DeliverFlushed(flushed);
  return sequence;
}

Result<void> Log::FlushLocked(Flushed& out) {
  if (buffered_.empty()) return Ok();
  const std::uint64_t start = buffered_.front().offset;
  const std::uint64_t first = buffered_.front().sequence;
  const std::uint64_t last = buffered_.back().sequence;
  // Zeros ahead of the records (WritableFile::ZeroAhead), in steps that grow with the segment
  // from 64 KiB to zero_ahead_bytes: a busy log changes its file's size about once per MiB
  // instead of at every fsync, and a quiet one holds few zeros. A full disk only costs the
  // speed-up: the append below still gets the space there is.
  if (const std::uint64_t most = std::min(options_.zero_ahead_bytes, options_.segment_bytes);
      most > 0 && active_->ZeroedAhead() < buffer_.size()) {
    constexpr std::uint64_t kFirstStep = 64 * 1024;
    const std::uint64_t step = std::min(most, std::max(active_->Size(), kFirstStep));
    (void)active_->ZeroAhead(buffer_.size() + step);
  }
  const auto written = active_->Append(buffer_);
  if (written) {
    Segment& segment = *segments_.rbegin()->second;
    for (const Buffered& b : buffered_) {
      segment.AddRecord(b.sequence, b.offset, b.frame_bytes, b.timestamp_us);
    }
    written_sequence_ = last;
    if (options_.durability == Durability::kBatch) {
      for (auto& ack : buffered_acks_) pending_acks_.push_back(std::move(ack));
      sync_cv_.notify_one();
    } else {
      out.acks = std::move(buffered_acks_);
    }
    buffered_acks_.clear();
    buffer_.clear();
    if (buffer_.capacity() > 2 * kMaxBufferedBytes) std::string().swap(buffer_);  // a huge record
    buffered_.clear();
    return Ok();
  }
  // None of it counts: cut back whatever part reached the file, and give the sequences out
  // again (nobody was told of them).
  for (auto& [sequence, ack] : buffered_acks_) out.rejected_acks.push_back(std::move(ack));
  buffered_acks_.clear();
  const std::uint64_t records = buffered_.size();
  const std::uint64_t bytes = buffer_.size();
  buffer_.clear();
  buffered_.clear();
  next_sequence_ = first;
  total_bytes_ -= bytes;
  stats_.appends -= records;
  stats_.appended_bytes -= bytes;
  if (written.error().code() != ErrorCode::kResourceExhausted) {
    ++stats_.write_errors;
    FailLocked(written.error());
    out.rejection = ClosedError();
    return tl::unexpected(ClosedError());
  }
  stats_.no_space_errors += records;
  const Error no_space(ErrorCode::kNoSpace,
                       fmt::format("{}: {}", kNoSpaceMessage, written.error().message()));
  // Disk full: cut the partial frames off so nothing after them is misread, and stay open.
  if (auto t = active_->Truncate(start); !t) {
    FailLocked(t.error());
    out.rejection = ClosedError();
    return tl::unexpected(ClosedError());
  }
  out.rejection = no_space;
  out.rejected_first = first;
  out.rejected_last = last;
  out.listener = reject_listener_;
  return tl::unexpected(no_space);
}

void Log::DeliverFlushed(Flushed& out) {
  for (auto& [sequence, ack] : out.acks) ack(sequence);
  if (!out.rejection) return;
  for (auto& ack : out.rejected_acks) ack(tl::unexpected(*out.rejection));
  if (out.rejected_first != 0 && out.listener) {
    out.listener(out.rejected_first, out.rejected_last, *out.rejection);
  }
}

Result<void> Log::Flush() {
  Flushed flushed;
  Result<void> r = Ok();
  {
    std::lock_guard lock(mu_);
    if (closed_ || failure_) return tl::unexpected(ClosedError());
    r = FlushLocked(flushed);
  }
  DeliverFlushed(flushed);
  return r;
}

Result<void> Log::Roll() {
  Flushed flushed;
  Result<void> r = Ok();
  {
    std::lock_guard lock(mu_);
    if (closing_ || failure_) return tl::unexpected(ClosedError());
    if (!active_ || active_->Size() + buffer_.size() == 0) return Ok();
    r = FlushLocked(flushed);
    if (r) r = RollLocked();
  }
  DeliverFlushed(flushed);
  return r;
}

Result<void> Log::RollLocked() {
  const std::uint64_t base = next_sequence_;
  if (segments_.contains(base)) {
    return Fail(ErrorCode::kInternal, fmt::format("segment {} exists already", base));
  }
  const std::string path = JoinPath(options_.dir, Segment::FileName(base));
  auto writable = fs_->OpenWritable(path);
  if (!writable) return tl::unexpected(writable.error());
  auto readable = fs_->OpenReadable(path);
  if (!readable) return tl::unexpected(readable.error());
  if (active_) unsynced_closed_.push_back(std::move(active_));
  active_ = std::move(*writable);
  segments_.emplace(base, std::make_shared<Segment>(base, path, std::move(*readable),
                                                    options_.index_interval_bytes));
  // The new file's directory entry must be durable before any record in it counts as durable.
  dir_dirty_ = true;
  ++stats_.segments_created;
  return Ok();
}

void Log::FailLocked(const Error& error) {
  if (failure_) return;
  spdlog::error("bus log {}: failed closed: {}", options_.dir, error.message());
  failure_ = Error(ErrorCode::kIo,
                   fmt::format("log {} failed closed after: {}", options_.dir, error.message()));
  sync_cv_.notify_all();
  durable_cv_.notify_all();
}

Error Log::ClosedError() const {
  if (failure_) return *failure_;
  return Error(ErrorCode::kFailedPrecondition, fmt::format("log {} is closed", options_.dir));
}

bool Log::HasSyncWorkLocked() const {
  return written_sequence_ > durable_sequence_ || dir_dirty_ || !unsynced_closed_.empty();
}

void Log::SyncLoop() {
  std::unique_lock lock(mu_);
  const bool batch = options_.durability == Durability::kBatch;
  const auto ready = [&] {
    if (closing_ || sync_requested_ || !background_.empty()) return true;
    if (failure_) return !failure_delivered_;
    return batch && HasSyncWorkLocked();
  };
  // kInterval: a round is due when the timer fires, or when asked (Sync, WaitDurable, close);
  // a background task alone neither brings the fsync forward nor puts it off.
  auto next_timed_round = std::chrono::steady_clock::now() + options_.sync_interval;
  for (;;) {
    bool sync_due = true;
    if (batch) {
      sync_cv_.wait(lock, ready);
    } else {
      if (sync_cv_.wait_until(lock, next_timed_round, ready)) {
        sync_due = closing_ || sync_requested_ || failure_.has_value();
      }
      if (sync_due) next_timed_round = std::chrono::steady_clock::now() + options_.sync_interval;
    }
    if (failure_) {
      if (!failure_delivered_) DeliverFailure(lock);
      sync_requested_ = false;
      DropBackgroundTasks(lock);
      if (closing_) return;
      continue;
    }
    if (sync_due && HasSyncWorkLocked()) {
      SyncRound(lock);
    } else if (sync_due) {
      sync_requested_ = false;
      durable_cv_.notify_all();
      if (closing_) {
        DropBackgroundTasks(lock);
        return;
      }
    }
    if (!background_.empty() && !closing_ && !failure_) RunBackgroundTasks(lock);
  }
}

void Log::RunInBackground(BackgroundTask task) {
  Error closed(ErrorCode::kInternal, "");
  {
    std::lock_guard lock(mu_);
    if (!closing_ && !failure_) {
      background_.push_back(std::move(task));
      sync_cv_.notify_one();
      return;
    }
    closed = ClosedError();
  }
  task(tl::unexpected(std::move(closed)));
}

void Log::RunBackgroundTasks(std::unique_lock<std::mutex>& lock) {
  std::deque<BackgroundTask> tasks = std::move(background_);
  background_.clear();
  lock.unlock();
  for (const auto& task : tasks) task(Ok());
  lock.lock();
}

void Log::DropBackgroundTasks(std::unique_lock<std::mutex>& lock) {
  if (background_.empty()) return;
  std::deque<BackgroundTask> tasks = std::move(background_);
  background_.clear();
  const Error closed = ClosedError();
  lock.unlock();
  for (const auto& task : tasks) task(tl::unexpected(closed));
  lock.lock();
}

// One group commit: fsync everything written so far, then acknowledge it. Appends go on while
// the fsyncs run; they wait for the next round, which starts as soon as this one ends.
void Log::SyncRound(std::unique_lock<std::mutex>& lock) {
  const std::uint64_t target = written_sequence_;
  auto closed_files = std::move(unsynced_closed_);
  unsynced_closed_.clear();
  const std::shared_ptr<WritableFile> active = active_;
  const bool sync_dir = dir_dirty_;
  dir_dirty_ = false;
  sync_requested_ = false;
  lock.unlock();

  // Rolled-away segments first, then the directory (so the newer segments exist), then the
  // active segment: only then is everything up to `target` on disk.
  const auto started = std::chrono::steady_clock::now();
  Result<void> status = Ok();
  for (const auto& file : closed_files) {
    if (status) status = file->Sync();
  }
  if (status && sync_dir) status = fs_->SyncDir(options_.dir);
  if (status && active) status = active->Sync();

  lock.lock();
  if (!status) {
    ++stats_.sync_errors;
    FailLocked(status.error());  // never retried: the page cache may have dropped the bytes
    return;
  }
  const std::uint64_t batch = target - std::min(target, durable_sequence_);
  ++stats_.sync_rounds;
  stats_.synced_records += batch;
  stats_.max_sync_batch = std::max(stats_.max_sync_batch, batch);
  const auto duration = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  stats_.sync_micros += static_cast<std::uint64_t>(duration.count());
  durable_sequence_ = std::max(durable_sequence_, target);
  std::vector<std::pair<std::uint64_t, AckCallback>> acks;
  while (!pending_acks_.empty() && pending_acks_.front().first <= target) {
    acks.push_back(std::move(pending_acks_.front()));
    pending_acks_.pop_front();
  }
  const DurableListener listener = durable_listener_;
  const std::uint64_t durable = durable_sequence_;
  lock.unlock();
  durable_cv_.notify_all();
  if (options_.on_sync_round) options_.on_sync_round({.records = batch, .duration = duration});
  for (auto& [sequence, ack] : acks) ack(sequence);
  if (listener) listener(durable, Ok());
  lock.lock();
}

void Log::DeliverFailure(std::unique_lock<std::mutex>& lock) {
  failure_delivered_ = true;
  auto acks = std::move(pending_acks_);
  pending_acks_.clear();
  // Buffered records will never be written either.
  for (auto& ack : buffered_acks_) acks.push_back(std::move(ack));
  buffered_acks_.clear();
  buffer_.clear();
  buffered_.clear();
  const Error error = *failure_;
  const DurableListener listener = durable_listener_;
  const std::uint64_t durable = durable_sequence_;
  lock.unlock();
  durable_cv_.notify_all();
  for (auto& [sequence, ack] : acks) ack(tl::unexpected(error));
  if (listener) listener(durable, tl::unexpected(error));
  lock.lock();
}

Result<void> Log::WaitDurable(std::uint64_t sequence) {
  bool buffered = false;
  {
    std::lock_guard lock(mu_);
    buffered = !buffered_.empty() && sequence >= buffered_.front().sequence;
  }
  if (buffered) {
    if (auto r = Flush(); !r) return r;
  }
  std::unique_lock lock(mu_);
  if (sequence > written_sequence_) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("sequence {} not written", sequence));
  }
  durable_cv_.wait(lock, [&] { return durable_sequence_ >= sequence || failure_ || closed_; });
  if (durable_sequence_ >= sequence) return Ok();
  return tl::unexpected(ClosedError());
}

Result<void> Log::Sync() {
  if (auto r = Flush(); !r) return r;
  std::unique_lock lock(mu_);
  if (closing_ || failure_) return tl::unexpected(ClosedError());
  const std::uint64_t target = written_sequence_;
  sync_requested_ = true;
  sync_cv_.notify_one();
  durable_cv_.wait(lock, [&] {
    return (durable_sequence_ >= target && !sync_requested_) || failure_ || closed_;
  });
  if (durable_sequence_ >= target) return Ok();
  return tl::unexpected(ClosedError());
}

void Log::SetDurableListener(DurableListener listener) {
  std::lock_guard lock(mu_);
  durable_listener_ = std::move(listener);
}

void Log::SetRejectListener(RejectListener listener) {
  std::lock_guard lock(mu_);
  reject_listener_ = std::move(listener);
}

Result<void> Log::Close() {
  Flushed flushed;
  {
    std::lock_guard lock(mu_);
    if (closed_) return failure_ ? Result<void>(tl::unexpected(*failure_)) : Ok();
    // What is buffered is written, and the sync thread's last round makes it durable. A full
    // disk rejects it (reported as usual); that does not fail the close.
    if (!failure_ && !closing_) (void)FlushLocked(flushed);
    closing_ = true;
  }
  DeliverFlushed(flushed);
  sync_cv_.notify_all();
  if (sync_thread_.joinable()) sync_thread_.join();
  std::lock_guard lock(mu_);
  closed_ = true;
  active_.reset();
  unsynced_closed_.clear();
  dir_lock_.reset();
  durable_cv_.notify_all();
  if (failure_) return tl::unexpected(*failure_);
  return Ok();
}

std::uint64_t Log::first_sequence() const {
  std::lock_guard lock(mu_);
  for (const auto& [base, segment] : segments_) {
    if (segment->records() > 0) return base;
  }
  return buffered_.empty() ? next_sequence_ : buffered_.front().sequence;
}

std::uint64_t Log::last_sequence() const {
  std::lock_guard lock(mu_);
  return buffered_.empty() ? written_sequence_ : buffered_.back().sequence;
}

std::uint64_t Log::durable_sequence() const {
  std::lock_guard lock(mu_);
  return durable_sequence_;
}

std::uint64_t Log::acknowledged_sequence() const {
  std::lock_guard lock(mu_);
  return options_.durability == Durability::kBatch ? durable_sequence_ : written_sequence_;
}

std::uint64_t Log::total_bytes() const {
  std::lock_guard lock(mu_);
  return total_bytes_;
}

std::size_t Log::segment_count() const {
  std::lock_guard lock(mu_);
  return segments_.size();
}

Result<void> Log::status() const {
  std::lock_guard lock(mu_);
  if (failure_) return tl::unexpected(*failure_);
  return Ok();
}

LogStats Log::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace ferry::bus
