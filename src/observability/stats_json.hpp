// Rendering a MetricsSnapshot as the JSON document the admin API serves at GET /stats.
// Pure function; thread-safe.
//
// Shape (families keyed by name; series in label-value order):
//   {"ferry_requests_total": {"type": "counter", "help": "...",
//                             "series": [{"labels": {"route": "a"}, "value": 3}]},
//    "ferry_request_duration_seconds": {"type": "histogram", "help": "...",
//        "series": [{"labels": {}, "count": 2, "sum": 0.3,
//                    "buckets": [{"le": 0.1, "count": 1}, ..., {"le": "+Inf", "count": 2}]}]}}
// Histogram bucket counts are cumulative, as in the Prometheus text. Whole numbers are JSON
// integers; NaN and infinities are null.
#pragma once

#include <boost/json/object.hpp>

#include "observability/metrics_snapshot.hpp"

namespace ferry::observability {

boost::json::object RenderJson(const MetricsSnapshot& snapshot);

}  // namespace ferry::observability
