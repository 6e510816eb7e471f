#include "hearth/common/dashboard.hpp"

#include <cstdio>

#include "hearth/common/log.hpp"

namespace hearth {

namespace detail {
extern const char kDashboardHtml[];
extern const std::size_t kDashboardHtmlSize;
}  // namespace detail

std::string_view dashboard_html() { return {detail::kDashboardHtml, detail::kDashboardHtmlSize}; }

std::string json_string(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string recent_events_json() {
  std::string out = "[";
  for (const auto& e : log::recent_events()) {
    if (out.size() > 1) out += ',';
    out += "{\"ts\":" + json_string(e.ts) + ",\"level\":" + json_string(e.level) +
           ",\"event\":" + json_string(e.event) + ",\"text\":" + json_string(e.text) + "}";
  }
  out += "]";
  return out;
}

}  // namespace hearth
