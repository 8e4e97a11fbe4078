// Reading of the HTTP/2 keys of a listener's `limits:` block (issue 14) into config::Limits, with
// the loader's strictness. Internal to src/config: loader.cpp's ReadLimits calls it with the
// block's reader, so the keys are known there (an unknown key is still an error).
// Not thread-safe; never throws: problems go to Diagnostics.
#pragma once

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace ferry::config::internal {

// `max_concurrent_streams`, `stream_reset_burst`, `stream_reset_rate` of `limits:`.
void ReadHttp2Limits(MapReader& limits_map, Limits& limits, Diagnostics& diags);

}  // namespace ferry::config::internal
