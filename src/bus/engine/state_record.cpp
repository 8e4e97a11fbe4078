#include "bus/engine/state_record.hpp"

#include <bit>
#include <chrono>
#include <limits>
#include <optional>

#include "bus/engine/wire.hpp"

namespace ferry::bus {

std::string EncodeStateRecord(const StateRecord& r) {
  std::string out;
  out.push_back(static_cast<char>(r.type));
  wire::PutVarint(&out, r.sequence);
  wire::PutVarint(&out, r.floor);
  wire::PutVarint(&out, r.attempt);
  wire::PutSigned(&out, r.time_us);
  wire::PutString(&out, r.text);
  wire::PutString(&out, r.id);
  wire::PutString(&out, r.key);
  return out;
}

Result<StateRecord> DecodeStateRecord(std::string_view payload) {
  auto bad = [] { return Fail(ErrorCode::kInvalidArgument, "not a bus state record"); };
  if (payload.empty()) return bad();
  StateRecord r;
  const auto type = static_cast<std::uint8_t>(payload.front());
  if (type < 1 || type > 9) return bad();
  r.type = static_cast<StateRecord::Type>(type);
  wire::Reader in(payload.substr(1));
  auto sequence = in.Varint();
  auto floor = in.Varint();
  auto attempt = in.Varint();
  auto time_us = in.Signed();
  auto text = in.String();
  auto id = in.String();
  auto key = in.String();
  if (!sequence || !floor || !attempt || !time_us || !text || !id || !key || !in.empty()) {
    return bad();
  }
  r.sequence = *sequence;
  r.floor = *floor;
  r.attempt = static_cast<std::uint32_t>(*attempt);
  r.time_us = *time_us;
  r.text = std::move(*text);
  r.id = std::move(*id);
  r.key = std::move(*key);
  return r;
}

// Durations are stored as microseconds (what the format has always held); in memory they are
// nanoseconds (BusDuration). A stored count that nanoseconds cannot hold is a bad record.
namespace {

std::int64_t StoredMicros(BusDuration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

std::optional<BusDuration> FromStoredMicros(std::int64_t us) {
  constexpr std::int64_t kLimit = std::numeric_limits<BusDuration::rep>::max() / 1000;
  if (us > kLimit || us < -kLimit) return std::nullopt;
  return std::chrono::microseconds(us);
}

}  // namespace

// Version 1: filter and delivery options. Version 2 adds the push after them. Options without a
// push are still written as version 1, so a state log stays readable by a build that predates
// push set over the API unless a push was actually set.
std::string EncodeSubscriptionOptions(const SubscriptionOptions& o) {
  std::string out;
  wire::PutVarint(&out, o.push ? 2 : 1);
  wire::PutString(&out, o.filter.type);
  wire::PutString(&out, o.filter.source);
  wire::PutString(&out, o.filter.subject);
  const DeliveryOptions& d = o.delivery;
  wire::PutSigned(&out, StoredMicros(d.lease));
  wire::PutVarint(&out, d.max_deliveries);
  wire::PutSigned(&out, StoredMicros(d.backoff.initial));
  wire::PutSigned(&out, StoredMicros(d.backoff.max));
  wire::PutVarint(&out, std::bit_cast<std::uint64_t>(d.backoff.multiplier));
  wire::PutVarint(&out, d.window);
  if (o.push) {
    wire::PutString(&out, o.push->service);
    wire::PutString(&out, o.push->path);
    wire::PutSigned(&out, StoredMicros(o.push->timeout));
    wire::PutVarint(&out, o.push->concurrency);
  }
  return out;
}

Result<SubscriptionOptions> DecodeSubscriptionOptions(std::string_view text) {
  auto bad = [] { return Fail(ErrorCode::kInvalidArgument, "bad subscription options record"); };
  wire::Reader in(text);
  const auto version = in.Varint();
  if (version != 1u && version != 2u) return bad();
  SubscriptionOptions o;
  auto type = in.String();
  auto source = in.String();
  auto subject = in.String();
  auto lease = in.Signed();
  auto max_deliveries = in.Varint();
  auto initial = in.Signed();
  auto max = in.Signed();
  auto multiplier = in.Varint();
  auto window = in.Varint();
  if (!type || !source || !subject || !lease || !max_deliveries || !initial || !max ||
      !multiplier || !window) {
    return bad();
  }
  const auto lease_d = FromStoredMicros(*lease);
  const auto initial_d = FromStoredMicros(*initial);
  const auto max_d = FromStoredMicros(*max);
  if (!lease_d || !initial_d || !max_d) return bad();
  o.filter = {std::move(*type), std::move(*source), std::move(*subject)};
  o.delivery.lease = *lease_d;
  o.delivery.max_deliveries = static_cast<std::uint32_t>(*max_deliveries);
  o.delivery.backoff.initial = *initial_d;
  o.delivery.backoff.max = *max_d;
  o.delivery.backoff.multiplier = std::bit_cast<double>(*multiplier);
  o.delivery.window = static_cast<std::uint32_t>(*window);
  if (version == 2u) {
    auto service = in.String();
    auto path = in.String();
    auto timeout = in.Signed();
    auto concurrency = in.Varint();
    if (!service || !path || !timeout || !concurrency ||
        *concurrency > std::numeric_limits<std::uint32_t>::max()) {
      return bad();
    }
    const auto timeout_d = FromStoredMicros(*timeout);
    if (!timeout_d) return bad();
    o.push = PushOptions{std::move(*service), std::move(*path), *timeout_d,
                         static_cast<std::uint32_t>(*concurrency)};
  }
  return o;
}

}  // namespace ferry::bus
