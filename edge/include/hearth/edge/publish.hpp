#pragma once
// Partial publish (issue 13): which of the routes an origin asked for the edge
// serves. Pure functions over values, unit-tested; the registry applies them
// at HELLO, at each PUBLISH and again on every reload, so an edit of
// [[origins]] takes effect on live tunnels.

#include <map>
#include <string>
#include <vector>

#include "hearth/tunnel/frame.hpp"

namespace hearth::edge {

// origin name -> hostnames its [[origins]] entry allows.
using Grants = std::map<std::string, std::vector<std::string>>;

struct FilteredRoutes {
  std::vector<tunnel::RouteAdvert> served;
  std::vector<tunnel::RouteHealth> health;  // parallel to served
  std::vector<tunnel::RefusedRoute> refused;
};

// True when one of `allowed` (exact or "*.suffix") covers `host`.
bool host_allowed(const std::vector<std::string>& allowed, std::string_view host);

// Splits `requested` into served and refused against `allowed`. A refused
// route carries a reason meant for the home operator's log.
FilteredRoutes filter_routes(const std::vector<tunnel::PublishRoute>& requested,
                             const std::vector<std::string>& allowed, std::string_view origin);

// HELLO routes as a PUBLISH route list (health unknown until a PUBLISH says).
std::vector<tunnel::PublishRoute> from_hello(const std::vector<tunnel::RouteAdvert>& routes);

}  // namespace hearth::edge
