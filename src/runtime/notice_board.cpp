#include "runtime/notice_board.hpp"

#include "runtime/asio.hpp"

namespace ferry::runtime {

// The handler of a wait captures the shared state, not the board: a handler already queued when
// the board is destroyed (or the wait superseded) sees `board` null (or a newer generation) and
// does nothing.
struct NoticeBoard::Timer {
  struct State {
    NoticeBoard* board;
    std::uint64_t generation = 0;             // of the pending wait
    TimePoint wait_until = TimePoint::max();  // max: no wait pending
  };
  explicit Timer(asio::io_context& io, NoticeBoard* board)
      : timer(io), state(std::make_shared<State>(State{board})) {}
  asio::steady_timer timer;
  std::shared_ptr<State> state;
};

NoticeBoard::NoticeBoard(asio::io_context& io) : timer_(std::make_unique<Timer>(io, this)) {
  list_.prev_ = list_.next_ = &list_;
}

NoticeBoard::~NoticeBoard() {
  timer_->state->board = nullptr;
  timer_->timer.cancel();
  while (list_.next_ != &list_) list_.next_->Unlink();
  list_.prev_ = list_.next_ = nullptr;  // (the sentinel's own destructor then has nothing to do)
}

void NoticeBoard::Post(IoWatch& watch) {
  NoticeLink& link = watch;
  link.Unlink();
  link.prev_ = list_.prev_;
  link.next_ = &list_;
  list_.prev_->next_ = &link;
  list_.prev_ = &link;
  const TimePoint at = watch.notice_due();
  if (at == TimePoint::max()) return;
  // A pending wake-up at most kSlack after this notice serves it; a later one is moved up.
  if (timer_->state->wait_until <= at + kSlack) return;
  WaitUntil(at);
}

void NoticeBoard::WaitUntil(TimePoint at) {
  Timer::State& st = *timer_->state;
  if (st.wait_until != TimePoint::max()) timer_->timer.cancel();
  st.wait_until = at;
  const std::uint64_t generation = ++st.generation;
  timer_->timer.expires_at(at);
  timer_->timer.async_wait([state = timer_->state, generation](const error_code&) {
    if (state->board == nullptr || state->generation != generation) return;
    state->wait_until = TimePoint::max();
    state->board->Wake();
  });
}

void NoticeBoard::Wake() {
  const TimePoint now = std::chrono::steady_clock::now();
  TimePoint next = TimePoint::max();
  for (NoticeLink* link = list_.next_; link != &list_;) {
    NoticeLink* const following = link->next_;
    auto& watch = static_cast<IoWatch&>(*link);
    const TimePoint due = watch.notice_due();
    if (due <= now) {
      link->Unlink();
      watch.Notice();
    } else if (due < next) {
      next = due;
    }
    link = following;
  }
  if (next != TimePoint::max()) WaitUntil(next);
}

}  // namespace ferry::runtime
