// An ordered list of HTTP header fields kept in one string arena: two allocations per message
// however many fields it has. Names are compared case-insensitively; order and repeats are kept.
// Thread safety: a value type, owned by one exchange.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::http {

bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// True if the comma-separated list `list` has `token` as one of its elements (case-insensitive).
bool HasToken(std::string_view list, std::string_view token);
// True if `s` is a token (RFC 9110 5.6.2): not empty, and only tchar bytes. Field names are.
bool IsToken(std::string_view s);

class Headers {
 public:
  struct Field {
    std::string_view name;
    std::string_view value;
  };

  void Add(std::string_view name, std::string_view value);
  // Removes every field with this name; returns how many were removed. Views stay valid (the
  // fields are only marked), so Remove may be called from inside ForEach.
  int Remove(std::string_view name);
  // Replaces every field with this name by one field.
  void Set(std::string_view name, std::string_view value);
  // The first field with this name.
  std::optional<std::string_view> Get(std::string_view name) const;
  bool Has(std::string_view name) const { return Get(name).has_value(); }
  std::size_t size() const;
  void Clear();
  // Room for `bytes` of names and values and `fields` fields, so parsing a head of known size
  // allocates once instead of growing field by field.
  void Reserve(std::size_t bytes, std::size_t fields) {
    arena_.reserve(bytes);
    slots_.reserve(fields);
  }

  // Visits live fields in order: fn(Field).
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const Slot& s : slots_) {
      if (!s.removed) fn(Field{View(s.name_off, s.name_len), View(s.value_off, s.value_len)});
    }
  }
  std::size_t arena_bytes() const { return arena_.size(); }

 private:
  struct Slot {
    std::uint32_t name_off, name_len, value_off, value_len;
    bool removed;
  };
  std::string_view View(std::uint32_t off, std::uint32_t len) const {
    return std::string_view(arena_).substr(off, len);
  }
  std::string arena_;
  std::vector<Slot> slots_;
};

}  // namespace ferry::http
