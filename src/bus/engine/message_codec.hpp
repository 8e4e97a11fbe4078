// The encoding of a Message as a record of a queue's or topic's log (version byte, then
// length-prefixed fields). Values only.
#pragma once

#include <string>
#include <string_view>

#include "bus/engine/message.hpp"
#include "core/result.hpp"

namespace ferry::bus {

std::string EncodeMessage(const Message& message);
// kInvalidArgument if `payload` is not an encoded message (or of an unknown version).
Result<Message> DecodeMessage(std::string_view payload);

}  // namespace ferry::bus
