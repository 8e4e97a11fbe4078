// A receipt names one delivery: the message's sequence, the attempt and a random nonce drawn
// for that delivery ("<sequence>.<attempt>.<nonce as 16 hex digits>"). Consumers treat it as
// opaque. Values only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::bus {

struct Receipt {
  std::uint64_t sequence = 0;
  std::uint32_t attempt = 0;
  std::uint64_t nonce = 0;
};

std::string FormatReceipt(const Receipt& receipt);
// nullopt if `text` is not a receipt FormatReceipt could have written.
std::optional<Receipt> ParseReceipt(std::string_view text);

}  // namespace ferry::bus
