#include "config/grpc_loader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

namespace ferry::config::internal {
namespace {

// "/package.Service/Method": two non-empty parts, no white space, no query.
bool IsMethodPath(std::string_view path) {
  if (path.size() < 4 || path.front() != '/') return false;
  const std::size_t slash = path.find('/', 1);
  if (slash == std::string_view::npos || slash == 1 || slash + 1 == path.size()) return false;
  if (path.find('/', slash + 1) != std::string_view::npos) return false;
  return std::none_of(path.begin(), path.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '?' || c == '#' || static_cast<unsigned char>(c) < 0x21;
  });
}

constexpr std::string_view kNames[] = {
    "ok",        "cancelled",      "unknown",           "invalid_argument",   "deadline_exceeded",
    "not_found", "already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
    "aborted",   "out_of_range",   "unimplemented",     "internal",           "unavailable",
    "data_loss", "unauthenticated"};

}  // namespace

std::optional<int> GrpcStatusByName(std::string_view name) {
  for (int code = 1; code < static_cast<int>(std::size(kNames)); ++code) {
    if (kNames[code] == name) return code;
  }
  return std::nullopt;
}

std::string_view GrpcStatusName(int code) {
  return code > 0 && code < static_cast<int>(std::size(kNames)) ? kNames[code] : "";
}

std::optional<GrpcRoute> ReadGrpcRoute(const Field& field, Diagnostics& diags) {
  MapReader map(field, diags);
  if (!map.ok()) return std::nullopt;
  GrpcRoute out;
  if (auto methods = map.Take("idempotent")) {
    if (auto items = ReadSequence(*methods, diags)) {
      for (const Field& item : *items) {
        auto path = ReadString(item, diags);
        if (!path) continue;
        if (!IsMethodPath(*path)) {
          diags.Add(item.mark, Describe(item, fmt::format("'{}' is not a gRPC method: write "
                                                          "/package.Service/Method",
                                                          *path)));
          continue;
        }
        if (std::find(out.idempotent.begin(), out.idempotent.end(), *path) !=
            out.idempotent.end()) {
          diags.Add(item.mark, Describe(item, fmt::format("method '{}' is listed twice", *path)));
          continue;
        }
        out.idempotent.push_back(*path);
      }
    }
  }
  if (auto max = map.Take("max_message_bytes")) {
    if (auto value = ReadSize(*max, std::uint64_t{1} << 32, diags)) out.max_message_bytes = *value;
  }
  map.Finish();
  return out;
}

}  // namespace ferry::config::internal
