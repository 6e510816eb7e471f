#pragma once
// The admin dashboard (issue 13): one self-contained HTML page (no CDN, no
// external file), embedded in the binary from common/dashboard/index.html at
// build time. It fetches /status every 2 s and renders the edge's or the
// origin's JSON. Plus the JSON bits both /status outputs share.

#include <string>
#include <string_view>

namespace hearth {

std::string_view dashboard_html();

// A JSON string literal (quotes included; control characters escaped).
std::string json_string(std::string_view s);

// log::recent_events() as a JSON array of {"ts","level","event","text"}.
std::string recent_events_json();

}  // namespace hearth
