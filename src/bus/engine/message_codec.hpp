// The encoding of a Message as a record of a queue's or topic's log (version byte, then
// length-prefixed fields). Values only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bus/message.hpp"
#include "core/result.hpp"

namespace ferry::bus {

// Flags of a message record (the log record's flags field).
// The bus generated the message's id (the publisher sent none): no publisher can send that id
// again by mistake, so it is not kept in the de-dup index.
inline constexpr std::uint32_t kGeneratedIdFlag = 1;

std::string EncodeMessage(const Message& message);
// The same into `out` (cleared first), so a caller can reuse its capacity.
void EncodeMessageInto(const Message& message, std::string* out);
// kInvalidArgument if `payload` is not an encoded message (or of an unknown version).
Result<Message> DecodeMessage(std::string_view payload);

}  // namespace ferry::bus
