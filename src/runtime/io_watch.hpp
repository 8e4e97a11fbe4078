// A watch over the I/O of one operation (an upstream try) by a caller that is busy elsewhere
// meanwhile (the resilience client's lazy hedge: the first try runs in place, a second one starts
// only if the first is slow). The worker's NoticeBoard (notice_board.hpp) calls OnNotice once
// when the notice time passes, from one coarse timer it shares with every watch of the worker:
// a watch costs no timer of its own, so a try that answers in time pays a list link and unlink
// for being watched. A runtime::Deadline over the socket the operation waits on makes Abort end
// the operation: its pending I/O ends with operation_aborted, and aborted() tells the code
// between two I/O calls to stop there (an abort can land while no I/O is pending).
// Thread safety: the worker's event loop only. Lifetime: a Deadline watching it holds a pointer
// until it is destroyed or Watch(nullptr) is called on it: the watch must outlive that. A watch
// leaves its NoticeBoard when destroyed (or on Withdraw).
#pragma once

#include <chrono>

namespace ferry::runtime {

template <typename Socket>
class Deadline;
class NoticeBoard;

// A node of a NoticeBoard's intrusive, circular list (the board holds the sentinel): unlinking
// needs neither the board nor a search.
class NoticeLink {
 public:
  NoticeLink() = default;
  NoticeLink(const NoticeLink&) = delete;
  NoticeLink& operator=(const NoticeLink&) = delete;
  ~NoticeLink() { Unlink(); }

 protected:
  bool linked() const { return next_ != nullptr; }
  void Unlink() {
    if (next_ == nullptr) return;
    prev_->next_ = next_;
    next_->prev_ = prev_;
    prev_ = next_ = nullptr;
  }

 private:
  friend class NoticeBoard;
  NoticeLink* prev_ = nullptr;
  NoticeLink* next_ = nullptr;
};

class IoWatch : private NoticeLink {
 public:
  // steady_clock's, as runtime::Deadline's (not the injectable core Clock: a timer's time).
  using TimePoint = std::chrono::steady_clock::time_point;

  IoWatch() = default;

  // When OnNotice is due (the default, max: never). Set before posting the watch on a board;
  // setting it again (and posting again) asks for one more notice.
  void NoticeAt(TimePoint at) {
    notice_at_ = at;
    noticed_ = false;
  }
  // The notice still to come: its time, or max once it was given (or if none was asked for).
  TimePoint notice_due() const { return noticed_ ? TimePoint::max() : notice_at_; }
  // Takes the watch off its board: no notice comes any more (the watched operation ended).
  void Withdraw() { Unlink(); }
  // Ends the watched operation: the socket's pending operation (if one is) ends with
  // operation_aborted, and the code that watches aborted() starts no more I/O. Idempotent.
  void Abort() {
    aborted_ = true;
    if (target_ != nullptr) cancel_(target_);
  }
  bool aborted() const { return aborted_; }

 protected:
  ~IoWatch() = default;
  // Once, on the event loop, from the board's timer, when the notice time passed before the
  // watch was withdrawn. It must not destroy the watched operation's objects, nor end another
  // watch, itself (spawn or post what it starts).
  virtual void OnNotice() = 0;

 private:
  template <typename Socket>
  friend class Deadline;
  friend class NoticeBoard;
  void Notice() {
    noticed_ = true;
    OnNotice();
  }
  // The socket being waited on now, and how to cancel its pending operations.
  void Attach(void* target, void (*cancel)(void*)) {
    target_ = target;
    cancel_ = cancel;
  }
  void Detach(const void* target) {
    if (target_ == target) target_ = nullptr;
  }

  void* target_ = nullptr;
  void (*cancel_)(void*) = nullptr;
  TimePoint notice_at_ = TimePoint::max();
  bool noticed_ = false;
  bool aborted_ = false;
};

}  // namespace ferry::runtime
