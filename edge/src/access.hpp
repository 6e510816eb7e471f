#pragma once
// The access log's switches and the wording of failure lines (issue 13),
// out of proxy.cpp so its request path only calls them.

#include <boost/system/error_code.hpp>
#include <cstdint>
#include <string_view>

#include "hearth/config/config.hpp"

namespace hearth::edge {

// Whether this request's "request" line is written: access_log on, and the
// request sampled (access_log_sample) unless it was answered 5xx.
bool access_log_wanted(const config::EdgeConfig& cfg, unsigned status);

// One plain word for why a proxied request failed: "timeout", "tunnel_lost",
// "origin_draining", "no_route", "service_refused", "service_unreachable",
// "stream_reset", "client_closed", "client_error" or "upstream_error".
std::string_view failure_cause(const boost::system::error_code& upstream,
                               const boost::system::error_code& client, bool timed_out);

// The "proxy.failed" line: cause=WORD, then upstream= and client= with the
// error texts only when there was such an error (never "Success"). Upstream
// causes are warnings; a client that went away is info.
void log_proxy_failed(std::uint64_t conn, std::string_view request_id, std::string_view origin,
                      const boost::system::error_code& upstream,
                      const boost::system::error_code& client, bool timed_out);

}  // namespace hearth::edge
