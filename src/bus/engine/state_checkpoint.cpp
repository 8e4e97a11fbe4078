#include "bus/engine/state_checkpoint.hpp"

#include "bus/engine/wire.hpp"

namespace ferry::bus {
namespace {

enum class Item : std::uint8_t {
  kSettled = 1,  // first, last
  kEntry = 2,    // sequence, attempt, nacks, flags, [retry_at_us]
  kDead = 3,     // sequence, attempts, at_us, reason, id, key
};

// Bits of an entry's flags.
constexpr std::uint64_t kInFlight = 1;
constexpr std::uint64_t kRevived = 2;
constexpr std::uint64_t kHasRetry = 4;

// Items, cut into parts of at most max_part_bytes (one item may make a part on its own).
class PartWriter {
 public:
  explicit PartWriter(std::size_t max_part_bytes) : max_(max_part_bytes) {}
  void Add(const std::string& item) {
    if (!current_.empty() && current_.size() + item.size() > max_) Flush();
    current_ += item;
  }
  std::vector<std::string> Finish() {
    Flush();
    return std::move(parts_);
  }

 private:
  void Flush() {
    if (current_.empty()) return;
    parts_.push_back(std::move(current_));
    current_.clear();
  }
  std::size_t max_;
  std::string current_;
  std::vector<std::string> parts_;
};

Result<void> DecodeItems(std::string_view text, StateCheckpoint* out) {
  auto bad = [] { return Fail(ErrorCode::kInvalidArgument, "bad bus checkpoint part"); };
  wire::Reader in(text);
  while (!in.empty()) {
    auto tag = in.Varint();
    if (!tag) return bad();
    switch (static_cast<Item>(*tag)) {
      case Item::kSettled: {
        auto first = in.Varint();
        auto last = in.Varint();
        if (!first || !last || *last < *first) return bad();
        out->settled.Insert(*first, *last);
        break;
      }
      case Item::kEntry: {
        StateCheckpoint::Entry e;
        auto sequence = in.Varint();
        auto attempt = in.Varint();
        auto nacks = in.Varint();
        auto flags = in.Varint();
        if (!sequence || !attempt || !nacks || !flags) return bad();
        e.sequence = *sequence;
        e.attempt = static_cast<std::uint32_t>(*attempt);
        e.nacks = static_cast<std::uint32_t>(*nacks);
        e.in_flight = (*flags & kInFlight) != 0;
        e.revived = (*flags & kRevived) != 0;
        if ((*flags & kHasRetry) != 0) {
          auto retry = in.Signed();
          if (!retry) return bad();
          e.retry_at_us = *retry;
        }
        out->entries.push_back(e);
        break;
      }
      case Item::kDead: {
        StateCheckpoint::DeadLetter d;
        auto sequence = in.Varint();
        auto attempts = in.Varint();
        auto at = in.Signed();
        auto reason = in.String();
        auto id = in.String();
        auto key = in.String();
        if (!sequence || !attempts || !at || !reason || !id || !key) return bad();
        d.sequence = *sequence;
        d.attempts = static_cast<std::uint32_t>(*attempts);
        d.at_us = *at;
        d.reason = std::move(*reason);
        d.id = std::move(*id);
        d.key = std::move(*key);
        out->dead.push_back(std::move(d));
        break;
      }
      default:
        return bad();
    }
  }
  return Ok();
}

}  // namespace

std::vector<StateRecord> EncodeCheckpoint(const StateCheckpoint& cp, std::size_t max_part_bytes) {
  PartWriter parts(max_part_bytes);
  std::string item;
  for (const auto& [first, last] : cp.settled.ranges()) {
    item.clear();
    wire::PutVarint(&item, static_cast<std::uint64_t>(Item::kSettled));
    wire::PutVarint(&item, first);
    wire::PutVarint(&item, last);
    parts.Add(item);
  }
  for (const StateCheckpoint::Entry& e : cp.entries) {
    item.clear();
    wire::PutVarint(&item, static_cast<std::uint64_t>(Item::kEntry));
    wire::PutVarint(&item, e.sequence);
    wire::PutVarint(&item, e.attempt);
    wire::PutVarint(&item, e.nacks);
    wire::PutVarint(&item, (e.in_flight ? kInFlight : 0u) | (e.revived ? kRevived : 0u) |
                               (e.retry_at_us ? kHasRetry : 0u));
    if (e.retry_at_us) wire::PutSigned(&item, *e.retry_at_us);
    parts.Add(item);
  }
  for (const StateCheckpoint::DeadLetter& d : cp.dead) {
    item.clear();
    wire::PutVarint(&item, static_cast<std::uint64_t>(Item::kDead));
    wire::PutVarint(&item, d.sequence);
    wire::PutVarint(&item, d.attempts);
    wire::PutSigned(&item, d.at_us);
    wire::PutString(&item, d.reason);
    wire::PutString(&item, d.id);
    wire::PutString(&item, d.key);
    parts.Add(item);
  }
  std::vector<std::string> texts = parts.Finish();
  std::vector<StateRecord> records;
  records.reserve(texts.size() + 1);
  records.push_back({.type = StateRecord::Type::kCheckpoint,
                     .sequence = texts.size(),
                     .floor = cp.floor,
                     .text = cp.options});
  for (std::size_t i = 0; i < texts.size(); ++i) {
    records.push_back({.type = StateRecord::Type::kCheckpointPart,
                       .sequence = i,
                       .floor = cp.floor,
                       .text = std::move(texts[i])});
  }
  return records;
}

CheckpointAssembler::Fed CheckpointAssembler::Feed(const StateRecord& r) {
  using Type = StateRecord::Type;
  if (r.type == Type::kCheckpoint) {
    if (reading_) Abandon();
    current_ = StateCheckpoint{.floor = r.floor, .options = r.text};
    reading_ = true;
    parts_expected_ = r.sequence;
    parts_read_ = 0;
  } else if (r.type == Type::kCheckpointPart) {
    // A part with no checkpoint begun belongs to one abandoned before: ignore it.
    if (!reading_) return Fed::kConsumed;
    if (r.sequence != parts_read_ || parts_read_ >= parts_expected_) {
      Abandon();
      return Fed::kConsumed;
    }
    if (auto decoded = DecodeItems(r.text, &current_); !decoded) {
      Abandon();
      return Fed::kConsumed;
    }
    ++parts_read_;
  } else {
    if (reading_) Abandon();
    return Fed::kOther;
  }
  if (parts_read_ < parts_expected_) return Fed::kConsumed;
  reading_ = false;
  return Fed::kComplete;
}

StateCheckpoint CheckpointAssembler::Take() {
  StateCheckpoint out = std::move(current_);
  current_ = {};
  return out;
}

void CheckpointAssembler::Abandon() {
  reading_ = false;
  current_ = {};
  ++abandoned_;
}

}  // namespace ferry::bus
