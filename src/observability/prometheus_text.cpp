#include "observability/prometheus_text.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iterator>

namespace ferry::observability {
namespace {

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Writes `{a="x",b="y"` plus, when given, `,le="..."`, then `}`; nothing when there are no labels.
void AppendLabels(const FamilySnapshot& family, const SeriesSnapshot& series, std::string& out,
                  std::string_view le = {}) {
  if (family.label_names.empty() && le.empty()) return;
  out += '{';
  bool first = true;
  for (std::size_t i = 0; i < family.label_names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += family.label_names[i];
    out += "=\"";
    AppendEscapedLabelValue(series.label_values[i], out);
    out += '"';
  }
  if (!le.empty()) {
    if (!first) out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

void AppendHistogram(const FamilySnapshot& family, const SeriesSnapshot& series, std::string& out) {
  std::uint64_t cumulative = 0;
  std::string le;
  for (std::size_t b = 0; b < series.bucket_counts.size(); ++b) {
    cumulative += series.bucket_counts[b];
    le.clear();
    if (b < family.bounds.size()) {
      AppendSampleValue(family.bounds[b], le);
    } else {
      le = "+Inf";
    }
    out += family.name;
    out += "_bucket";
    AppendLabels(family, series, out, le);
    fmt::format_to(std::back_inserter(out), " {}\n", cumulative);
  }
  out += family.name;
  out += "_sum";
  AppendLabels(family, series, out);
  out += ' ';
  AppendSampleValue(series.sum, out);
  out += '\n';
  out += family.name;
  out += "_count";
  AppendLabels(family, series, out);
  fmt::format_to(std::back_inserter(out), " {}\n", cumulative);
}

}  // namespace

void AppendEscapedLabelValue(std::string_view value, std::string& out) {
  for (const char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void AppendEscapedHelp(std::string_view help, std::string& out) {
  for (const char c : help) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void AppendSampleValue(double value, std::string& out) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
}

std::string RenderPrometheus(const MetricsSnapshot& snapshot) {
  std::string out;
  out.reserve(4096);
  for (const FamilySnapshot& family : snapshot) {
    out += "# HELP ";
    out += family.name;
    out += ' ';
    AppendEscapedHelp(family.help, out);
    out += "\n# TYPE ";
    out += family.name;
    out += ' ';
    out += TypeName(family.type);
    out += '\n';
    for (const SeriesSnapshot& series : family.series) {
      if (family.type == MetricType::kHistogram) {
        AppendHistogram(family, series, out);
        continue;
      }
      out += family.name;
      AppendLabels(family, series, out);
      out += ' ';
      AppendSampleValue(series.value, out);
      out += '\n';
    }
  }
  return out;
}

}  // namespace ferry::observability
