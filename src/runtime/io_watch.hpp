// A watch over the I/O of one operation (an upstream try) by a caller that is busy elsewhere
// meanwhile (the resilience client's lazy hedge: the first try runs in place, a second one starts
// only if the first is slow). The runtime::Deadline over the socket the operation waits on calls
// OnNotice once when the notice time passes, from its own timer: a watch costs no timer of its
// own, so a try that answers in time pays next to nothing for being watched. Abort ends the
// operation: its pending I/O ends with operation_aborted, and aborted() tells the code between
// two I/O calls to stop there (an abort can land while no I/O is pending).
// Thread safety: the event loop of the watched socket only. Lifetime: a Deadline watching it
// holds a pointer until it is destroyed or Watch(nullptr) is called on it: the watch must
// outlive that.
#pragma once

#include <chrono>

namespace ferry::runtime {

template <typename Socket>
class Deadline;

class IoWatch {
 public:
  // steady_clock's, as runtime::Deadline's (not the injectable core Clock: a timer's time).
  using TimePoint = std::chrono::steady_clock::time_point;

  IoWatch() = default;
  IoWatch(const IoWatch&) = delete;
  IoWatch& operator=(const IoWatch&) = delete;

  // When OnNotice is due (the default, max: never). Set before the watched I/O starts.
  void NoticeAt(TimePoint at) { notice_at_ = at; }
  // The notice still to come: its time, or max once it was given (or if none was asked for).
  TimePoint notice_due() const { return noticed_ ? TimePoint::max() : notice_at_; }
  // Ends the watched operation: the socket's pending operation (if one is) ends with
  // operation_aborted, and the code that watches aborted() starts no more I/O. Idempotent.
  void Abort() {
    aborted_ = true;
    if (target_ != nullptr) cancel_(target_);
  }
  bool aborted() const { return aborted_; }

 protected:
  ~IoWatch() = default;
  // Once, on the event loop, from a timer's handler, when the notice time passed while the
  // watched operation still ran. It must not destroy the watched operation's objects itself
  // (spawn or post what it starts).
  virtual void OnNotice() = 0;

 private:
  template <typename Socket>
  friend class Deadline;
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
