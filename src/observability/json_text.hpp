// JSON text for people as well as parsers: boost::json::serialize, except that numbers with a
// fraction are written the way people write them (1.944, 0.5, 0) and not as Boost.JSON does
// (1.944E0, 5E-1, 0E0). NaN and infinities, which JSON cannot carry, become null.
// Every JSON answer Ferry serves (admin API, bus API) and the CLI prints goes through this.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <string>

namespace ferry::observability {

std::string JsonText(const boost::json::value& value);
// The same for an object, without copying it into a value first.
std::string JsonText(const boost::json::object& object);

}  // namespace ferry::observability
