#include "bus/engine/message_codec.hpp"

#include "bus/engine/time_util.hpp"
#include "bus/engine/wire.hpp"

namespace ferry::bus {
namespace {

constexpr std::uint64_t kVersion = 1;

}  // namespace

std::string EncodeMessage(const Message& m) {
  std::string out;
  EncodeMessageInto(m, &out);
  return out;
}

void EncodeMessageInto(const Message& m, std::string* out) {
  out->clear();
  out->reserve(m.data.size() + m.id.size() + m.type.size() + m.source.size() + 64);
  wire::PutVarint(out, kVersion);
  wire::PutString(out, m.id);
  wire::PutString(out, m.key);
  wire::PutString(out, m.type);
  wire::PutString(out, m.source);
  wire::PutString(out, m.subject);
  wire::PutString(out, m.content_type);
  wire::PutSigned(out, m.deliver_at ? ToMicros(*m.deliver_at) : 0);
  wire::PutSigned(out, ToMicros(m.published_at));
  wire::PutVarint(out, m.attributes.size());
  for (const auto& [name, value] : m.attributes) {
    wire::PutString(out, name);
    wire::PutString(out, value);
  }
  wire::PutString(out, m.data);
}

Result<Message> DecodeMessage(std::string_view payload) {
  wire::Reader in(payload);
  auto bad = [] { return Fail(ErrorCode::kInvalidArgument, "not an encoded bus message"); };
  if (in.Varint() != kVersion) return bad();
  Message m;
  for (std::string* field : {&m.id, &m.key, &m.type, &m.source, &m.subject, &m.content_type}) {
    auto s = in.String();
    if (!s) return bad();
    *field = std::move(*s);
  }
  auto deliver_at = in.Signed();
  auto published_at = in.Signed();
  auto attributes = in.Varint();
  if (!deliver_at || !published_at || !attributes) return bad();
  if (*deliver_at != 0) m.deliver_at = FromMicros(*deliver_at);
  m.published_at = FromMicros(*published_at);
  for (std::uint64_t i = 0; i < *attributes; ++i) {
    auto name = in.String();
    auto value = in.String();
    if (!name || !value) return bad();
    m.attributes.emplace(std::move(*name), std::move(*value));
  }
  auto data = in.String();
  if (!data || !in.empty()) return bad();
  m.data = std::move(*data);
  return m;
}

}  // namespace ferry::bus
