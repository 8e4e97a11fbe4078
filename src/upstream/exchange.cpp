#include "upstream/exchange.hpp"

#include <fmt/format.h>

namespace ferry::upstream {

Task<Result<std::string_view>> StringBody::Read() {
  if (read_) co_return std::string_view();
  read_ = true;
  co_return data_;
}

Task<Result<std::string_view>> BodyReader::NoBody() { co_return std::string_view(); }

Task<Result<std::string>> BodyReader::ReadAll(std::uint64_t max_bytes) {
  std::string body;
  if (const auto n = length(); n && *n <= max_bytes) body.reserve(*n);
  for (;;) {
    auto piece = co_await ReadSome();
    if (!piece) co_return tl::unexpected(piece.error());
    if (piece->empty()) co_return body;
    if (body.size() + piece->size() > max_bytes) {
      Abandon();
      co_return Fail(ErrorCode::kResourceExhausted,
                     fmt::format("response body over {} bytes", max_bytes));
    }
    body.append(*piece);
  }
}

Task<Result<void>> BodyReader::Drain(std::uint64_t max_bytes) {
  std::uint64_t total = 0;
  for (;;) {
    auto piece = co_await ReadSome();
    if (!piece) co_return tl::unexpected(piece.error());
    if (piece->empty()) co_return Ok();
    total += piece->size();
    if (total > max_bytes) {
      Abandon();
      co_return Fail(ErrorCode::kResourceExhausted,
                     fmt::format("response body over {} bytes", max_bytes));
    }
  }
}

}  // namespace ferry::upstream
