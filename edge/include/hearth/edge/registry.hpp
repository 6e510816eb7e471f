#pragma once
// Which origins are connected and what they published. Shared by all worker
// threads: the route table is an immutable snapshot rebuilt when a tunnel comes
// or goes, publishes, or the edge reloads (rare), so a request only copies one
// shared_ptr under a short lock.
//
// Each tunnel keeps the full route set its origin asked for (HELLO, then each
// PUBLISH); what it serves is that set filtered by the origin's [[origins]]
// hostnames (publish.hpp). A reload re-filters every live tunnel, so a hostname
// added to edge.toml that an origin already asked for is served at once, and a
// removed one stops at once.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hearth/common/route_match.hpp"
#include "hearth/edge/publish.hpp"
#include "hearth/tunnel/frame.hpp"
#include "hearth/tunnel/mux.hpp"

namespace hearth::edge {

// Immutable once in the registry: a publish or a reload replaces it with an
// updated copy (same id and connection).
struct TunnelInfo {
  std::uint64_t id = 0;
  std::string origin;
  std::string peer;
  std::string pin;            // the origin key's pin (a reload may revoke it)
  std::uint16_t version = 1;  // tunnel protocol version of this connection
  std::uint32_t connection_index = 0;
  std::vector<tunnel::RouteAdvert> routes;      // served: requested and allowed
  std::vector<tunnel::RouteHealth> health;      // parallel to routes
  std::vector<tunnel::RefusedRoute> refused;    // requested, not allowed
  std::vector<tunnel::PublishRoute> requested;  // what the origin asked for
  std::uint32_t publish_seq = 0;                // last PUBLISH seen (0: HELLO only)
  std::shared_ptr<tunnel::Connection> conn;
  std::chrono::system_clock::time_point since;
};

// The tunnels that currently serve one published (host, path).
struct RouteGroup {
  std::vector<std::shared_ptr<const TunnelInfo>> tunnels;
  std::vector<tunnel::RouteHealth> health;  // parallel to tunnels: this route on that tunnel
};

struct RouteSnapshot {
  RouteTable<std::shared_ptr<RouteGroup>> table;
  std::vector<std::shared_ptr<const TunnelInfo>> tunnels;
};

// unhealthy: live tunnels publish the route, but the origin's health check
// says its service is down on every one of them (503 + Retry-After, no round
// trip home).
enum class PickResult { ok, unknown_host, offline, unhealthy };

class Registry {
 public:
  Registry();

  // What each origin may publish; re-filters every live tunnel. Returns the
  // tunnels whose served or refused routes changed (to tell their origins).
  std::vector<std::shared_ptr<const TunnelInfo>> set_grants(Grants grants);

  // `t->requested` is filtered by the grants; returns the stored copy.
  std::shared_ptr<const TunnelInfo> add(std::shared_ptr<const TunnelInfo> t);
  // A PUBLISH: replaces the tunnel's requested routes. Null when it is gone.
  std::shared_ptr<const TunnelInfo> republish(std::uint64_t id, tunnel::Publish publish);
  void remove(std::uint64_t id);
  // Drops every tunnel (at exit: connections hold callbacks that hold the
  // registry, a cycle only this breaks).
  void clear();

  std::shared_ptr<const RouteSnapshot> snapshot() const;

  // Choose a live tunnel for (host, path): the least loaded usable connection
  // among those publishing the best-matching route, healthy ones first; ties
  // rotate. A connection served by the calling thread counts kRemotePenalty
  // streams lighter than one on another worker (each stream operation across
  // workers costs two thread wake-ups), so sessions stay on their worker
  // unless it is clearly busier. A route whose origins all went away stays
  // known, so clients get 503, not 404. `group`, when given, receives the
  // matched route group: it identifies "the same route in the same registry
  // state" (a session may reuse its stream for the next request only then).
  PickResult pick(std::string_view host, std::string_view path,
                  std::shared_ptr<const TunnelInfo>& out,
                  std::shared_ptr<const RouteGroup>* group = nullptr) const;
  // The group (host, path) matches now, or null.
  std::shared_ptr<const RouteGroup> group_for(std::string_view host, std::string_view path) const;

  static constexpr std::size_t kRemotePenalty = 4;

  std::size_t size() const;
  // Routes refused since start: each route once per tunnel when it becomes
  // refused (at HELLO, or by a PUBLISH or reload that newly refuses it).
  std::uint64_t refused_total() const { return refused_total_.load(std::memory_order_relaxed); }
  // Prometheus families for publish and health: hearth_publish_refused_total,
  // hearth_publish_refused_routes, hearth_route_healthy.
  std::string prometheus() const;

 private:
  std::shared_ptr<const TunnelInfo> filtered_locked(const TunnelInfo& t);
  void forget_unpublished_locked(const TunnelInfo& before, const TunnelInfo& after);
  void rebuild_locked();

  mutable std::mutex mu_;
  Grants grants_;
  bool have_grants_ = false;  // before the first set_grants: serve what was asked (tests)
  std::map<std::uint64_t, std::shared_ptr<const TunnelInfo>> live_;
  // (host, path) -> the origin that published it since start: keeps 503 for
  // offline origins while that origin may still publish the host.
  std::map<std::pair<std::string, std::string>, std::string> known_;
  std::shared_ptr<const RouteSnapshot> snap_;
  mutable std::atomic<std::uint64_t> rotate_{0};
  std::atomic<std::uint64_t> refused_total_{0};
};

}  // namespace hearth::edge
