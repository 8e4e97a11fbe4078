// libFuzzer target: arbitrary bytes as the body of a structured-mode publish, through the JSON
// span scanner (src/bus/api/json_span.hpp) and ParsePublish. Checks the scanner's promises, not
// just "no crash": what Boost.JSON accepts it accepts too; every member or element it reports
// is valid JSON text lying inside the input; an event it takes keeps its JSON data byte-exact.
// Seed corpus: tests/fuzz/corpus/bus_json_span/ (replayed by ctest fuzz_replay.bus_json_span).
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bus/api/cloudevents.hpp"
#include "bus/api/json_span.hpp"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool Inside(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ferry::bus;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool valid = IsJsonText(text);

  boost::json::parse_options options;
  options.max_depth = kMaxJsonDepth - 1;
  boost::system::error_code ec;
  const boost::json::value parsed = boost::json::parse(text, ec, {}, options);
  if (!ec) Check(valid);

  if (auto members = JsonObjectMembers(text)) {
    Check(valid);
    for (const JsonMember& m : *members) Check(Inside(m.value, text) && IsJsonText(m.value));
    if (!ec) Check(parsed.is_object() && members->size() >= parsed.as_object().size());
  }
  if (auto elements = JsonArrayElements(text)) {
    Check(valid);
    for (std::string_view e : *elements) Check(Inside(e, text) && IsJsonText(e));
    if (!ec) Check(parsed.is_array() && elements->size() == parsed.as_array().size());
  }

  ferry::http::Headers headers;
  headers.Add("content-type", "application/cloudevents+json");
  auto events = ParsePublish(headers, text, {"/s", "t"});
  if (events) {
    Check(valid && events->size() == 1);
    const Message& m = events->front();
    Check(!m.id.empty() && !m.source.empty() && !m.type.empty());
    if (IsJsonContentType(m.content_type) && !m.data.empty()) Check(IsJsonText(m.data));
  }
  return 0;
}
