// The notices of a worker's IoWatches (io_watch.hpp), from one timer. A watch is posted with its
// notice time and withdrawn when its operation ends; the timer wakes at the earliest notice
// still to come, gives every notice that is due, and sleeps again until the next one. Posting a
// watch re-arms the timer only when its notice is earlier than the pending wake-up by more than
// kSlack, so a steady stream of watched requests (the usual case: each answered before its
// notice) costs one timer wake-up per notice interval, not a timer per request. Notices may come
// up to kSlack late.
// Thread safety: one worker's event loop. The board must outlive no watch: watches unlink
// themselves, and the board's destructor unlinks the ones left.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "runtime/io_watch.hpp"

namespace boost::asio {
class io_context;
}

namespace ferry::runtime {

class NoticeBoard {
 public:
  using TimePoint = IoWatch::TimePoint;
  static constexpr std::chrono::milliseconds kSlack{1};

  explicit NoticeBoard(boost::asio::io_context& io);
  ~NoticeBoard();
  NoticeBoard(const NoticeBoard&) = delete;
  NoticeBoard& operator=(const NoticeBoard&) = delete;

  // Posts `watch` (its NoticeAt already set): OnNotice comes once its time passed, unless it is
  // withdrawn or destroyed first. A watch is on one board at a time; posting it again moves it.
  void Post(IoWatch& watch);

 private:
  struct Timer;  // the asio timer and the state its handler checks (notice_board.cpp)
  void Wake();   // the timer's handler: the due notices, then the next wake-up
  void WaitUntil(TimePoint at);

  NoticeLink list_;  // the sentinel of the circular list of posted watches
  std::unique_ptr<Timer> timer_;
};

}  // namespace ferry::runtime
