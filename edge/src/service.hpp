#pragma once
// What the edge tells its service manager (internal header): the STATUS= line.

#include <string>

#include "shared.hpp"

namespace hearth::edge {

// "2 tunnels (nas), 14 client connections, 3 requests in flight", or while
// draining "draining: 3 requests, 1 WebSocket left".
std::string service_status(const EdgeShared& shared);

}  // namespace hearth::edge
