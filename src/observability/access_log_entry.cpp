#include "observability/access_log_entry.hpp"

#include <charconv>
#include <cstring>

#include "core/ascii_run.hpp"

namespace ferry::observability {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Appends v as exactly `width` digits, zero-padded (v must fit).
void AppendPadded(std::string& out, std::uint64_t v, int width) {
  char buf[20];
  for (int i = width - 1; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out.append(buf, static_cast<std::size_t>(width));
}

void AppendUnsigned(std::string& out, std::uint64_t v) {
  char buf[20];
  const auto result = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, result.ptr);
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not valid (overlongs,
// surrogates and code points above U+10FFFF are invalid too).
std::size_t Utf8SequenceLength(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  const std::size_t left = s.size() - i;
  const auto cont = [&](std::size_t k) { return (byte(k) & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) return left >= 2 && cont(i + 1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (left < 3 || !cont(i + 1) || !cont(i + 2)) return 0;
    if (b0 == 0xE0 && byte(i + 1) < 0xA0) return 0;   // overlong
    if (b0 == 0xED && byte(i + 1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (left < 4 || !cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (b0 == 0xF0 && byte(i + 1) < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && byte(i + 1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

void AppendField(std::string& out, std::string_view key_with_quotes, std::string_view value) {
  out += key_with_quotes;
  out += '"';
  AppendJsonStringContent(value, out);
  out += '"';
}

}  // namespace

void AppendJsonStringContent(std::string_view value, std::string& out) {
  std::size_t i = 0;
  while (i < value.size()) {
    // Copy the longest run that needs no escaping in one append.
    const std::size_t run = AsciiRunEnd(value, i, '"', '\\');  // JSON takes it as it is
    out.append(value.data() + i, run - i);
    i = run;
    if (i == value.size()) break;
    const auto c = static_cast<unsigned char>(value[i]);
    if (c >= 0x80) {
      const std::size_t len = Utf8SequenceLength(value, i);
      if (len == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD
        ++i;
      } else {
        out.append(value.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default: {
        const char escaped[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(escaped, sizeof escaped);
      }
    }
    ++i;
  }
}

void AppendRfc3339(std::chrono::system_clock::time_point time, int fraction_digits,
                   std::string& out) {
  using namespace std::chrono;
  const auto us = floor<microseconds>(time);
  const auto day = floor<days>(us);
  const year_month_day ymd{day};
  const hh_mm_ss hms{us - day};
  AppendPadded(out, static_cast<std::uint64_t>(static_cast<int>(ymd.year())), 4);
  out += '-';
  AppendPadded(out, static_cast<unsigned>(ymd.month()), 2);
  out += '-';
  AppendPadded(out, static_cast<unsigned>(ymd.day()), 2);
  out += 'T';
  AppendPadded(out, static_cast<std::uint64_t>(hms.hours().count()), 2);
  out += ':';
  AppendPadded(out, static_cast<std::uint64_t>(hms.minutes().count()), 2);
  out += ':';
  AppendPadded(out, static_cast<std::uint64_t>(hms.seconds().count()), 2);
  out += '.';
  const auto micros = static_cast<std::uint64_t>(hms.subseconds().count());
  AppendPadded(out, fraction_digits == 3 ? micros / 1000 : micros, fraction_digits == 3 ? 3 : 6);
  out += 'Z';
}

void AppendAccessLogLine(const AccessLogEntry& entry, std::string& out) {
  out += "{\"time\":\"";
  AppendRfc3339(entry.time, 3, out);
  out += '"';
  AppendField(out, ",\"method\":", entry.method);
  AppendField(out, ",\"path\":", entry.path);
  out += ",\"status\":";
  AppendUnsigned(out, static_cast<std::uint64_t>(entry.status < 0 ? 0 : entry.status));
  out += ",\"bytes_received\":";
  AppendUnsigned(out, entry.bytes_received);
  out += ",\"bytes_sent\":";
  AppendUnsigned(out, entry.bytes_sent);
  out += ",\"duration\":";
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(entry.duration).count();
  const auto positive = static_cast<std::uint64_t>(micros < 0 ? 0 : micros);
  AppendUnsigned(out, positive / 1000000);
  out += '.';
  AppendPadded(out, positive % 1000000, 6);
  AppendField(out, ",\"upstream\":", entry.upstream);
  AppendField(out, ",\"request_id\":", entry.request_id);
  AppendField(out, ",\"listener\":", entry.listener);
  AppendField(out, ",\"route\":", entry.route);
  AppendField(out, ",\"client\":", entry.client);
  if (!entry.error.empty()) AppendField(out, ",\"error\":", entry.error);
  out += "}\n";
}

}  // namespace ferry::observability
