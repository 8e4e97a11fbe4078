// How a request carries a bearer token and how a refusal names it (RFC 6750): the one reading of
// `Authorization: Bearer` and of a token cookie, shared by the proxy's `jwt` filter and the bus
// API's access check.
#pragma once

#include <string>
#include <string_view>

#include "http/headers.hpp"

namespace ferry::auth {

// The token of `Authorization: Bearer TOKEN` (the scheme case-insensitive); when there is none
// and `cookie` names one, that cookie's value (RFC 6265 section 5.4; quotes removed); "" when
// neither. The view points into `headers`.
std::string_view RequestToken(const http::Headers& headers, std::string_view cookie);

// The WWW-Authenticate value of a 401 (RFC 6750 section 3): `Bearer realm="R"`, and with
// `error="invalid_token"` and the description when a token was refused. The description is
// made a safe quoted-string (printable ASCII without '"' and '\').
std::string BearerChallenge(std::string_view realm, std::string_view refusal = {});

}  // namespace ferry::auth
