#pragma once
// Which origins are connected and what they published. Shared by all worker
// threads: the route table is an immutable snapshot rebuilt when a tunnel comes
// or goes (rare), so a request only copies one shared_ptr under a short lock.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hearth/common/route_match.hpp"
#include "hearth/tunnel/frame.hpp"
#include "hearth/tunnel/mux.hpp"

namespace hearth::edge {

struct TunnelInfo {
  std::uint64_t id = 0;
  std::string origin;
  std::string peer;
  std::uint32_t connection_index = 0;
  std::vector<tunnel::RouteAdvert> routes;
  std::shared_ptr<tunnel::Connection> conn;
  std::chrono::system_clock::time_point since;
};

// The tunnels that currently serve one published (host, path).
struct RouteGroup {
  std::vector<std::shared_ptr<const TunnelInfo>> tunnels;
};

struct RouteSnapshot {
  RouteTable<std::shared_ptr<RouteGroup>> table;
  std::vector<std::shared_ptr<const TunnelInfo>> tunnels;
};

enum class PickResult { ok, unknown_host, offline };

class Registry {
 public:
  Registry();

  void add(std::shared_ptr<const TunnelInfo> t);
  void remove(std::uint64_t id);
  // Drops every tunnel (at exit: connections hold callbacks that hold the
  // registry, a cycle only this breaks).
  void clear();

  std::shared_ptr<const RouteSnapshot> snapshot() const;

  // Choose a live tunnel for (host, path): the least loaded usable connection
  // among those publishing the best-matching route; ties rotate. A connection
  // served by the calling thread counts kRemotePenalty streams lighter than
  // one on another worker (each stream operation across workers costs two
  // thread wake-ups), so sessions stay on their worker unless it is clearly
  // busier. A route whose origins all went away stays known, so clients get
  // 503, not 404. `group`, when given, receives the matched route group: it
  // identifies "the same route in the same registry state" (a session may
  // reuse its stream for the next request only then).
  PickResult pick(std::string_view host, std::string_view path,
                  std::shared_ptr<const TunnelInfo>& out,
                  std::shared_ptr<const RouteGroup>* group = nullptr) const;
  // The group (host, path) matches now, or null.
  std::shared_ptr<const RouteGroup> group_for(std::string_view host, std::string_view path) const;

  static constexpr std::size_t kRemotePenalty = 4;

  std::size_t size() const;

 private:
  void rebuild_locked();

  mutable std::mutex mu_;
  std::map<std::uint64_t, std::shared_ptr<const TunnelInfo>> live_;
  // (host, path) pairs ever published since start: keeps 503 for offline origins.
  std::map<std::pair<std::string, std::string>, bool> known_;
  std::shared_ptr<const RouteSnapshot> snap_;
  mutable std::atomic<std::uint64_t> rotate_{0};
};

}  // namespace hearth::edge
