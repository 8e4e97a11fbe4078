// Rendering a MetricsSnapshot in the Prometheus text exposition format, version 0.0.4
// (Content-Type: text/plain; version=0.0.4; charset=utf-8). Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "observability/metrics_snapshot.hpp"

namespace ferry::observability {

// The Content-Type the admin server answers GET /metrics with.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// # HELP and # TYPE lines, then one line per sample; histograms as cumulative _bucket{le=...}
// lines followed by _sum and _count.
std::string RenderPrometheus(const MetricsSnapshot& snapshot);

// Appends a label value escaped for the text format: backslash, double quote and newline.
void AppendEscapedLabelValue(std::string_view value, std::string& out);

// Appends HELP text escaped for the text format: backslash and newline.
void AppendEscapedHelp(std::string_view help, std::string& out);

// Appends a sample value: shortest round-trip decimal, or +Inf, -Inf, NaN.
void AppendSampleValue(double value, std::string& out);

}  // namespace ferry::observability
