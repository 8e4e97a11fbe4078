#include "bus/engine/receipt.hpp"

#include <fmt/format.h>

#include <charconv>

namespace ferry::bus {
namespace {

template <typename T>
bool ParsePart(std::string_view part, T* out, int base) {
  if (part.empty() || part.size() > 20) return false;
  auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), *out, base);
  return ec == std::errc() && end == part.data() + part.size();
}

}  // namespace

std::string FormatReceipt(const Receipt& r) {
  return fmt::format("{}.{}.{:016x}", r.sequence, r.attempt, r.nonce);
}

std::optional<Receipt> ParseReceipt(std::string_view text) {
  const auto first = text.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = text.find('.', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  Receipt r;
  const std::string_view nonce = text.substr(second + 1);
  if (nonce.size() != 16) return std::nullopt;
  if (!ParsePart(text.substr(0, first), &r.sequence, 10) ||
      !ParsePart(text.substr(first + 1, second - first - 1), &r.attempt, 10) ||
      !ParsePart(nonce, &r.nonce, 16) || r.sequence == 0 || r.attempt == 0) {
    return std::nullopt;
  }
  return r;
}

}  // namespace ferry::bus
