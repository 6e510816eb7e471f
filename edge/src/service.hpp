#pragma once
// What the edge tells its service manager (internal header): the STATUS= line.

#include <string>
#include <vector>

#include "shared.hpp"

namespace hearth::edge {

// "2 tunnels (nas), 14 client connections, 3 requests in flight", or while
// draining "draining: 3 requests, 1 WebSocket left".
std::string service_status(const EdgeShared& shared);

// Every hostname pattern of [[origins]], once each: the host labels of the
// per-host request metrics.
std::vector<std::string> configured_hostnames(const config::EdgeConfig& cfg);

}  // namespace hearth::edge
