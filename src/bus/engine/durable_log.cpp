#include "bus/engine/durable_log.hpp"

#include "bus/broker.hpp"

namespace ferry::bus {

// `owner` is reset on destruction (on the bus thread), so a posted pump that runs later does
// nothing; `scheduled` coalesces pumps requested from the sync thread.
struct DurableLog::Shared {
  DurableLog* owner = nullptr;
  std::atomic<bool> scheduled{false};
};

Result<std::unique_ptr<DurableLog>> DurableLog::Open(std::shared_ptr<FileSystem> fs,
                                                     LogOptions options, PostFn post) {
  options.coalesce_writes = true;  // the pump flushes once per loop turn
  auto log = Log::Open(std::move(fs), std::move(options));
  if (!log) return tl::unexpected(log.error());
  std::unique_ptr<DurableLog> self(new DurableLog(std::move(*log), std::move(post)));
  self->log_->SetDurableListener(
      [shared = self->shared_, post = self->post_](std::uint64_t, const Result<void>&) {
        if (shared->scheduled.exchange(true)) return;
        post([shared] {
          shared->scheduled = false;
          if (shared->owner != nullptr) shared->owner->Pump();
        });
      });
  self->log_->SetRejectListener(
      [raw = self.get()](std::uint64_t first, std::uint64_t last, const Error& error) {
        raw->Reject(first, last, error);
      });
  return self;
}

DurableLog::DurableLog(std::unique_ptr<Log> log, PostFn post)
    : log_(std::move(log)), post_(std::move(post)), shared_(std::make_shared<Shared>()) {
  shared_->owner = this;
  pumped_ = log_->acknowledged_sequence();
}

DurableLog::~DurableLog() {
  log_->SetDurableListener(nullptr);
  log_->SetRejectListener(nullptr);
  shared_->owner = nullptr;
  (void)log_->Close();
}

Result<std::uint64_t> DurableLog::Append(std::string_view payload, std::uint32_t flags) {
  auto seq = log_->Append(payload, flags);
  if (!seq) return seq;  // ENOSPC comes with the log's kNoSpaceMessage
  SchedulePump();        // which writes it
  return seq;
}

void DurableLog::Reject(std::uint64_t first, std::uint64_t last, const Error& error) {
  std::vector<Done> failed;
  for (auto* parked : {&parked_, &parked_durable_}) {
    for (auto it = parked->lower_bound(first); it != parked->end(); it = parked->erase(it)) {
      failed.push_back(std::move(it->second));
    }
  }
  if (reject_hook_) reject_hook_(first, last);
  if (failed.empty()) return;
  post_([failed = std::move(failed), error]() mutable {
    for (Done& done : failed) done(tl::unexpected(error));
  });
}

void DurableLog::WhenAcknowledged(std::uint64_t sequence, Done done) {
  parked_.emplace(sequence, std::move(done));
  SchedulePump();
}

void DurableLog::SchedulePump() {
  if (shared_->scheduled.exchange(true)) return;
  post_([shared = shared_] {
    shared->scheduled = false;
    if (shared->owner != nullptr) shared->owner->Pump();
  });
}

void DurableLog::WhenDurable(std::uint64_t sequence, Done done) {
  parked_durable_.emplace(sequence, std::move(done));
  SchedulePump();
}

void DurableLog::Release(std::multimap<std::uint64_t, Done>& parked, std::uint64_t watermark,
                         const Result<void>& status) {
  std::vector<Done> ready;
  auto end = status ? parked.upper_bound(watermark) : parked.end();
  for (auto it = parked.begin(); it != end; ++it) ready.push_back(std::move(it->second));
  // Those past the watermark of a failed log never will be acknowledged.
  std::vector<bool> ok(ready.size(), true);
  if (!status) {
    std::size_t i = 0;
    for (auto it = parked.begin(); it != end; ++it, ++i) ok[i] = it->first <= watermark;
  }
  parked.erase(parked.begin(), end);
  for (std::size_t i = 0; i < ready.size(); ++i) {
    if (ok[i]) {
      ready[i](Ok());
    } else {
      ready[i](tl::unexpected(status.error()));
    }
  }
}

void DurableLog::Pump() {
  // A full disk fails the waiters of what the write held (Reject); any other error failed
  // the log closed, which the status below carries to every waiter.
  (void)log_->Flush();
  const std::uint64_t acked = log_->acknowledged_sequence();
  const Result<void> status = log_->status();
  Release(parked_, acked, status);
  Release(parked_durable_, log_->durable_sequence(), status);
  if (acked > pumped_) {
    pumped_ = acked;
    if (hook_) hook_();
  }
}

LogDurabilityStats DurableLog::Stats() const {
  const LogStats s = log_->stats();
  return {.appends = s.appends,
          .sync_rounds = s.sync_rounds,
          .synced_records = s.synced_records,
          .sync_errors = s.sync_errors,
          .no_space_errors = s.no_space_errors,
          .bytes = log_->total_bytes(),
          .segments = log_->segment_count(),
          .retention_dropped_unconsumed = s.retention_dropped_unconsumed};
}

void DurableLog::DeleteSegmentsBefore(std::uint64_t sequence, RetentionDone done) {
  InBackground([sequence](Log& log) { return log.DeleteSegmentsBefore(sequence); },
               std::move(done));
}

void DurableLog::EnforceRetention(const RetentionPolicy& policy, std::uint64_t protected_sequence,
                                  std::int64_t now_us, RetentionDone done) {
  InBackground([policy, protected_sequence, now_us](
                   Log& log) { return log.EnforceRetention(policy, protected_sequence, now_us); },
               std::move(done));
}

void DurableLog::InBackground(std::function<Result<RetentionResult>(Log&)> work,
                              RetentionDone done) {
  Log* log = log_.get();  // the task runs on the log's own thread, before it is joined
  log_->RunInBackground(
      [log, work = std::move(work), post = post_, done = std::move(done)](Result<void> ready) {
        Result<RetentionResult> result =
            ready ? work(*log) : Result<RetentionResult>(tl::unexpected(ready.error()));
        post([done, result = std::move(result)] { done(result); });
      });
}

}  // namespace ferry::bus
