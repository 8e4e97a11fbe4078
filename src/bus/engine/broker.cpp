#include "bus/engine/broker.hpp"

namespace ferry::bus {

bool IsNoSpace(const Error& error) {
  return error.code() == ErrorCode::kResourceExhausted &&
         std::string_view(error.message()).starts_with(kNoSpaceMessage);
}

bool IsFull(const Error& error) {
  return error.code() == ErrorCode::kResourceExhausted &&
         std::string_view(error.message()).starts_with(kLogFullMessage);
}

}  // namespace ferry::bus
