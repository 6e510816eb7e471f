#include "hearth/edge/publish.hpp"

#include "hearth/common/route_match.hpp"

namespace hearth::edge {

bool host_allowed(const std::vector<std::string>& allowed, std::string_view host) {
  for (const auto& pattern : allowed) {
    if (pattern == host || host_matches(pattern, host)) return true;
  }
  return false;
}

FilteredRoutes filter_routes(const std::vector<tunnel::PublishRoute>& requested,
                             const std::vector<std::string>& allowed, std::string_view origin) {
  FilteredRoutes out;
  for (const auto& r : requested) {
    if (host_allowed(allowed, r.host)) {
      out.served.push_back({r.host, r.path});
      out.health.push_back(r.health);
    } else {
      out.refused.push_back({r.host, r.path,
                             "hostname " + r.host + " is not in the hostnames of origin '" +
                                 std::string(origin) + "' in edge.toml [[origins]]"});
    }
  }
  return out;
}

std::vector<tunnel::PublishRoute> from_hello(const std::vector<tunnel::RouteAdvert>& routes) {
  std::vector<tunnel::PublishRoute> out;
  out.reserve(routes.size());
  for (const auto& r : routes) out.push_back({r.host, r.path, tunnel::RouteHealth::unknown});
  return out;
}

}  // namespace hearth::edge
