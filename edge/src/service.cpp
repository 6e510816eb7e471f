#include "service.hpp"

#include <set>

namespace hearth::edge {

std::string service_status(const EdgeShared& shared) {
  const auto& m = shared.metrics;
  auto in_flight = m.requests_in_flight.load(std::memory_order_relaxed);
  auto ws = m.websockets_active.load(std::memory_order_relaxed);
  if (shared.draining.load()) {
    return "draining: " + std::to_string(in_flight) + " requests, " + std::to_string(ws) +
           (ws == 1 ? " WebSocket" : " WebSockets") + " left";
  }
  auto snap = shared.registry.snapshot();
  std::set<std::string> origins;
  for (const auto& t : snap->tunnels) origins.insert(t->origin);
  std::string names;
  for (const auto& o : origins) names += (names.empty() ? "" : ", ") + o;
  std::string out =
      std::to_string(snap->tunnels.size()) + (snap->tunnels.size() == 1 ? " tunnel" : " tunnels");
  if (!names.empty()) out += " (" + names + ")";
  out += ", " + std::to_string(m.client_connections.load(std::memory_order_relaxed)) +
         " client connections, " + std::to_string(in_flight) + " requests in flight";
  return out;
}

std::vector<std::string> configured_hostnames(const config::EdgeConfig& cfg) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& o : cfg.origins) {
    for (const auto& h : o.hostnames) {
      if (seen.insert(h).second) out.push_back(h);
    }
  }
  return out;
}

}  // namespace hearth::edge
