#pragma once
// Edge side of issue 13's live publish: what a reload does to live tunnels,
// and the PUBLISH handler (internal header).

#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hearth/config/config.hpp"
#include "hearth/edge/publish.hpp"
#include "hearth/edge/registry.hpp"
#include "shared.hpp"

namespace hearth::edge {

Grants grants_of(const config::EdgeConfig& cfg);

// The highest tunnel protocol version this edge speaks: kProtocolVersion, or
// 1 when HEARTH_TUNNEL_MAX_VERSION=1 is set (a test hook that makes the edge
// answer as a version-1 edge did, to test origins against it).
std::uint16_t max_tunnel_version();

// After a reload swapped the config in: every live tunnel is re-filtered
// against the new [[origins]] (origins told with PUBLISHED when their refused
// set changed); a tunnel whose origin left [[origins]] or whose key's pin is no
// longer in state_dir/origins/<name>.pins leaves the route table now, gets
// GOAWAY, and is closed after drain_timeout.
void apply_reload(EdgeShared& shared, const config::EdgeConfig& cfg,
                  const std::map<std::string, std::vector<std::string>>& pins,
                  asio::io_context& control);

// Handles PUBLISH on tunnel `id` (runs on the tunnel's worker).
tunnel::Connection::ControlHandler publish_handler(std::shared_ptr<EdgeShared> shared,
                                                   std::uint64_t id,
                                                   std::weak_ptr<tunnel::Connection> conn);

// Logs a tunnel's refused routes (warn), when there are any.
void log_refused(const TunnelInfo& t, std::string_view when);

}  // namespace hearth::edge
