#include "http/headers.hpp"

#include <array>

namespace ferry::http {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    // Equal bytes, or the same ASCII letter in two cases (they differ only in bit 0x20).
    const char x = a[i];
    const char y = b[i];
    if (x != y && ((x ^ y) != 0x20 || Lower(x) != Lower(y))) return false;
  }
  return true;
}

bool HasToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view item = Trim(list.substr(0, comma));
    if (EqualsIgnoreCase(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool IsToken(std::string_view s) {
  static constexpr auto kTchar = [] {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
    return t;
  }();
  if (s.empty()) return false;
  for (char c : s) {
    if (!kTchar[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

void Headers::Add(std::string_view name, std::string_view value) {
  Slot s{};
  s.name_off = static_cast<std::uint32_t>(arena_.size());
  s.name_len = static_cast<std::uint32_t>(name.size());
  arena_.append(name);
  s.value_off = static_cast<std::uint32_t>(arena_.size());
  s.value_len = static_cast<std::uint32_t>(value.size());
  arena_.append(value);
  s.removed = false;
  slots_.push_back(s);
}

int Headers::Remove(std::string_view name) {
  int removed = 0;
  for (Slot& s : slots_) {
    if (!s.removed && EqualsIgnoreCase(View(s.name_off, s.name_len), name)) {
      s.removed = true;
      ++removed;
    }
  }
  return removed;
}

void Headers::Set(std::string_view name, std::string_view value) {
  Remove(name);
  Add(name, value);
}

std::optional<std::string_view> Headers::Get(std::string_view name) const {
  for (const Slot& s : slots_) {
    if (!s.removed && EqualsIgnoreCase(View(s.name_off, s.name_len), name)) {
      return View(s.value_off, s.value_len);
    }
  }
  return std::nullopt;
}

std::size_t Headers::size() const {
  std::size_t n = 0;
  for (const Slot& s : slots_) n += s.removed ? 0 : 1;
  return n;
}

void Headers::Clear() {
  arena_.clear();
  slots_.clear();
}

}  // namespace ferry::http
