// CloudEvents 1.0 over HTTP for the bus API: what a publish request means (structured mode
// `application/cloudevents+json`, batch mode `application/cloudevents-batch+json`, binary mode
// with ce-* headers, or any other body as the data of a new event), and how a delivery is
// shown to a puller (JSON) or pushed to a subscriber (binary mode, data untouched).
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "bus/message.hpp"
#include "core/result.hpp"
#include "http/headers.hpp"

namespace ferry::bus {

// What a delivered event gets for a required attribute its message lacks: a plain-body publish
// carries no source or type. The queue's or topic's `default_source`/`default_type` from the
// config, else the built-in ones (DefaultEventSource, kDefaultEventType).
struct EventDefaults {
  std::string source;
  std::string type;
};
inline constexpr std::string_view kDefaultEventType = "ferry.message";
// "/v1/queues/{name}" or "/v1/topics/{name}": where the event was published.
std::string DefaultEventSource(const Destination& to);

// The events of one publish request. Errors are kInvalidArgument with a message that says
// what is wrong ("malformed CloudEvent: ..."). The Idempotency-Key header, when present, is the
// id of a single event that has none of its own. A plain body gets `defaults`' source and type.
// Data is kept as the bytes sent: a structured event's JSON `data` as its text in the request.
Result<std::vector<Message>> ParsePublish(const http::Headers& headers, std::string_view body,
                                          const EventDefaults& defaults);
// True for batch mode (content-type application/cloudevents-batch+json): the answer lists a
// result per event, even for a batch of one.
bool IsBatchPublish(const http::Headers& headers);

// How a pulled message (or a dead letter) is written.
enum class MessageFormat {
  kFull,   // Ferry's fields, the event's attributes and data beside them (the first API's
           // shape), and `event` (the default)
  kEvent,  // Ferry's fields and `event` only (?format=event): the data once, not twice
};

// The JSON a puller receives for one delivery, appended to `out`: Ferry's fields (id, receipt,
// attempt, sequence, lease_expires, stored_at) and `event`, the CloudEvent alone in structured
// mode, for a CloudEvents SDK; in kFull also the event's attributes and data beside Ferry's
// fields, where a field of Ferry's wins over an extension of the same name. Data is the stored
// bytes: JSON data as it was sent (content type JSON), a string when it is UTF-8 text,
// `data_base64` otherwise. `defaults` fill a missing source or type (records stored before
// publishes got them).
void AppendDeliveryJson(const Delivery& delivery, const EventDefaults& defaults,
                        MessageFormat format, std::string& out);
// The same for an event streamed to a topic route's clients (SSE `data:`, the WebSocket
// envelope's `data`): Ferry's fields id, sequence and stored_at, as kFull writes them.
void AppendStreamedEventJson(std::uint64_t sequence, const Message& message,
                             const EventDefaults& defaults, std::string& out);
// The same for a dead letter: id, sequence, stored_at, attempts, reason, dead_lettered_at.
void AppendDeadLetterJson(const DeadLetter& dead, const EventDefaults& defaults,
                          MessageFormat format, std::string& out);

// Binary-mode headers for pushing a delivery: ce-specversion, ce-id, ce-source, ce-type,
// ce-subject, ce-time, ce-partitionkey, the other ce-* attributes and content-type.
void AddBinaryModeHeaders(const Delivery& delivery, const EventDefaults& defaults,
                          http::Headers& headers);

// A CloudEvents extension attribute name: 1 to 20 lowercase ASCII letters or digits.
bool IsExtensionName(std::string_view name);
// An RFC 3339 date-time (any offset), as CloudEvents' `time` must be.
bool IsRfc3339(std::string_view text);
// Whether a media type (parameters allowed) is JSON: application/json, text/json, */*+json.
bool IsJsonContentType(std::string_view content_type);

std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);
std::string FormatRfc3339(BusTime time);
Result<BusTime> ParseRfc3339(std::string_view text);

}  // namespace ferry::bus
