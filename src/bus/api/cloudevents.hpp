// CloudEvents 1.0 over HTTP for the bus API: what a publish request means (structured mode
// `application/cloudevents+json`, batch mode `application/cloudevents-batch+json`, binary mode
// with ce-* headers, or any other body as the data of a new event), and how a delivery is
// shown to a puller (JSON) or pushed to a subscriber (binary mode, data untouched).
// Pure functions; thread-safe.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bus/engine/message.hpp"
#include "core/result.hpp"
#include "http/headers.hpp"

namespace ferry::bus {

// The events of one publish request. Errors are kInvalidArgument with a message that says
// what is wrong ("malformed CloudEvent: ..."). The Idempotency-Key header, when present, is the
// id of a single event that has none of its own.
Result<std::vector<Message>> ParsePublish(const http::Headers& headers, std::string_view body);
// True for batch mode (content-type application/cloudevents-batch+json): the answer lists a
// result per event, even for a batch of one.
bool IsBatchPublish(const http::Headers& headers);

// The JSON a puller receives for one delivery: id, receipt, attempt, sequence, the CloudEvents
// attributes, and the data (a JSON value when the content type is JSON, a string when it is
// text, `data_base64` otherwise).
boost::json::object DeliveryToJson(const Delivery& delivery);
boost::json::object DeadLetterToJson(const DeadLetter& dead);

// Binary-mode headers for pushing a delivery: ce-specversion, ce-id, ce-source, ce-type,
// ce-subject, ce-time, ce-partitionkey, the other ce-* attributes and content-type.
void AddBinaryModeHeaders(const Delivery& delivery, http::Headers& headers);

std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);
std::string FormatRfc3339(BusTime time);
Result<BusTime> ParseRfc3339(std::string_view text);

}  // namespace ferry::bus
