#include "bus/api/json_span.hpp"

#include <fmt/format.h>

#include <cstdint>

namespace ferry::bus {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A recursive-descent validator that records nothing but positions. Each Parse* leaves pos_
// just past what it read, or returns false with error_ set.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}

  void SkipSpace() {
    while (pos_ < text_.size() && IsSpace(text_[pos_])) ++pos_;
  }
  bool AtEnd() const { return pos_ == text_.size(); }
  std::size_t pos() const { return pos_; }
  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void Advance() { ++pos_; }
  const std::string& error() const { return error_; }

  bool Fail(std::string_view what) {
    if (error_.empty()) error_ = fmt::format("{} at byte {}", what, pos_);
    return false;
  }

  bool ParseValue(std::size_t depth) {
    if (pos_ >= text_.size()) return Fail("unexpected end");
    switch (text_[pos_]) {
      case '{':
        return ParseObject(depth + 1);
      case '[':
        return ParseArray(depth + 1);
      case '"':
        return ParseString();
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return ParseNumber();
    }
  }

  bool ParseString() {
    if (Peek() != '"') return Fail("expected a string");
    ++pos_;
    while (pos_ < text_.size()) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return Fail("control character in a string");
      if (c == '\\') {
        if (pos_ + 1 >= text_.size()) return Fail("unexpected end");
        const char e = text_[pos_ + 1];
        if (e == 'u') {
          if (pos_ + 6 > text_.size()) return Fail("unexpected end");
          for (std::size_t k = 2; k < 6; ++k) {
            if (!IsHex(text_[pos_ + k])) return Fail("bad \\u escape");
          }
          pos_ += 6;
          continue;
        }
        if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' &&
            e != 't') {
          return Fail("bad escape");
        }
        pos_ += 2;
        continue;
      }
      if (c < 0x80) {
        ++pos_;
        continue;
      }
      if (!Utf8Sequence()) return Fail("invalid UTF-8");
    }
    return Fail("unterminated string");
  }

  bool ParseObject(std::size_t depth, std::vector<JsonMember>* members = nullptr) {
    if (depth > kMaxJsonDepth) return Fail("nested too deeply");
    ++pos_;  // '{'
    SkipSpace();
    if (Peek() == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      SkipSpace();
      const std::size_t key_at = pos_;
      if (!ParseString()) return false;
      const std::string_view key = text_.substr(key_at, pos_ - key_at);
      SkipSpace();
      if (Peek() != ':') return Fail("expected ':'");
      ++pos_;
      SkipSpace();
      const std::size_t value_at = pos_;
      if (!ParseValue(depth)) return false;
      if (members) {
        members->push_back({JsonStringValue(key), text_.substr(value_at, pos_ - value_at)});
      }
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') {
        ++pos_;
        return true;
      }
      return Fail("expected ',' or '}'");
    }
  }

  bool ParseArray(std::size_t depth, std::vector<std::string_view>* elements = nullptr) {
    if (depth > kMaxJsonDepth) return Fail("nested too deeply");
    ++pos_;  // '['
    SkipSpace();
    if (Peek() == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      SkipSpace();
      const std::size_t at = pos_;
      if (!ParseValue(depth)) return false;
      if (elements) elements->push_back(text_.substr(at, pos_ - at));
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == ']') {
        ++pos_;
        return true;
      }
      return Fail("expected ',' or ']'");
    }
  }

 private:
  bool Literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return Fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool ParseNumber() {
    const std::size_t start = pos_;
    if (Peek() == '-') ++pos_;
    if (Peek() == '0') {
      ++pos_;
    } else if (IsDigit(Peek())) {
      while (IsDigit(Peek())) ++pos_;
    } else {
      pos_ = start;
      return Fail("unexpected character");
    }
    if (Peek() == '.') {
      ++pos_;
      if (!IsDigit(Peek())) return Fail("bad number");
      while (IsDigit(Peek())) ++pos_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      ++pos_;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (!IsDigit(Peek())) return Fail("bad number");
      while (IsDigit(Peek())) ++pos_;
    }
    return true;
  }

  // One multi-byte UTF-8 sequence at pos_ (RFC 3629: no overlongs, surrogates or values past
  // U+10FFFF).
  bool Utf8Sequence() {
    const auto byte = [this](std::size_t k) {
      return pos_ + k < text_.size() ? static_cast<unsigned char>(text_[pos_ + k]) : 0u;
    };
    const unsigned c = byte(0);
    std::size_t extra;
    unsigned lo = 0x80;
    unsigned hi = 0xbf;  // the bounds of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (byte(1) < lo || byte(1) > hi) return false;
    for (std::size_t k = 2; k <= extra; ++k) {
      if ((byte(k) & 0xc0) != 0x80) return false;
    }
    pos_ += extra + 1;
    return true;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string error_;
};

void SetError(std::string* error, const std::string& what) {
  if (error) *error = what;
}

void AppendUtf8(std::uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

std::uint32_t Hex4(std::string_view s) {
  std::uint32_t v = 0;
  for (char c : s.substr(0, 4)) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
    if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
  }
  return v;
}

}  // namespace

bool IsJsonText(std::string_view text) {
  Scanner s(text);
  s.SkipSpace();
  if (!s.ParseValue(0)) return false;
  s.SkipSpace();
  return s.AtEnd();
}

std::optional<std::vector<JsonMember>> JsonObjectMembers(std::string_view text,
                                                         std::string* error) {
  Scanner s(text);
  s.SkipSpace();
  if (s.Peek() != '{') {
    SetError(error, "not a JSON object");
    return std::nullopt;
  }
  std::vector<JsonMember> members;
  if (!s.ParseObject(1, &members)) {
    SetError(error, s.error());
    return std::nullopt;
  }
  s.SkipSpace();
  if (!s.AtEnd()) {
    SetError(error, fmt::format("unexpected text after the object at byte {}", s.pos()));
    return std::nullopt;
  }
  return members;
}

std::optional<std::vector<std::string_view>> JsonArrayElements(std::string_view text,
                                                               std::string* error) {
  Scanner s(text);
  s.SkipSpace();
  if (s.Peek() != '[') {
    SetError(error, "not a JSON array");
    return std::nullopt;
  }
  std::vector<std::string_view> elements;
  if (!s.ParseArray(1, &elements)) {
    SetError(error, s.error());
    return std::nullopt;
  }
  s.SkipSpace();
  if (!s.AtEnd()) {
    SetError(error, fmt::format("unexpected text after the array at byte {}", s.pos()));
    return std::nullopt;
  }
  return elements;
}

std::string JsonStringValue(std::string_view token) {
  std::string out;
  if (token.size() < 2) return out;
  token = token.substr(1, token.size() - 2);
  out.reserve(token.size());
  for (std::size_t i = 0; i < token.size(); ++i) {
    const char c = token[i];
    if (c != '\\' || i + 1 >= token.size()) {
      out.push_back(c);
      continue;
    }
    const char e = token[++i];
    switch (e) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        // Validated: four hex digits follow, and four more after a "\\u" that follows them.
        std::uint32_t cp = Hex4(token.substr(i + 1));
        i += 4;
        if (cp >= 0xd800 && cp <= 0xdbff && token.substr(i + 1, 2) == "\\u") {
          const std::uint32_t low = Hex4(token.substr(i + 3));
          if (low >= 0xdc00 && low <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            i += 6;
          } else {
            cp = 0xfffd;
          }
        } else if (cp >= 0xd800 && cp <= 0xdfff) {
          cp = 0xfffd;
        }
        AppendUtf8(cp, out);
        break;
      }
      default:  // '"', '\\', '/'
        out.push_back(e);
    }
  }
  return out;
}

}  // namespace ferry::bus
