// The rules the bus's names and CloudEvents URIs follow, in one place for the config loader
// (bus_loader.cpp) and the bus API (src/bus/api), so the two cannot drift apart.
// Pure functions; thread-safe.
#pragma once

#include <string_view>

namespace ferry::config {

// A queue, topic or subscription name: [A-Za-z0-9][A-Za-z0-9._-]{0,127}. Names become
// directory names under data_dir and metrics labels; the leading letter or digit keeps out "."
// and "..".
bool IsBusName(std::string_view name);

// A non-empty RFC 3986 URI-reference, as CloudEvents' `source` must be: only the characters
// RFC 3986 allows, percent-escapes well formed, and a scheme (if a ':' comes before the first
// '/', '?' or '#') of a letter then letters, digits, '+', '-' or '.'.
bool IsUriReference(std::string_view text);
// An RFC 3986 URI with a scheme (an absolute URI, a fragment allowed), as `dataschema` must be.
bool IsAbsoluteUri(std::string_view text);

}  // namespace ferry::config
