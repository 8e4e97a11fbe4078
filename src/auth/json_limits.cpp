#include "auth/json_limits.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>

namespace ferry::auth {

Result<boost::json::value> ParseJsonObject(std::string_view text, std::size_t max_bytes) {
  if (text.size() > max_bytes) return Fail(ErrorCode::kInvalidArgument, "JSON text too large");
  boost::json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  boost::system::error_code error;
  boost::json::value value = boost::json::parse(text, error, {}, options);
  if (error) return Fail(ErrorCode::kInvalidArgument, "not valid JSON: " + error.message());
  if (!value.is_object()) return Fail(ErrorCode::kInvalidArgument, "JSON text is not an object");
  return value;
}

}  // namespace ferry::auth
