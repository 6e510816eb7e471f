#include "hearth/edge/registry.hpp"

#include <algorithm>
#include <set>

namespace hearth::edge {
namespace {

std::string prom_label(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// Refusals in `after` that `before` did not have: a re-publish of the same
// set (a health change) is not counted again.
std::size_t newly_refused(const TunnelInfo& before, const TunnelInfo& after) {
  std::size_t n = 0;
  for (const auto& r : after.refused) {
    bool old = false;
    for (const auto& o : before.refused) old = old || (o.host == r.host && o.path == r.path);
    if (!old) ++n;
  }
  return n;
}

}  // namespace

Registry::Registry() : snap_(std::make_shared<RouteSnapshot>()) {}

std::shared_ptr<const TunnelInfo> Registry::filtered_locked(const TunnelInfo& t) {
  auto copy = std::make_shared<TunnelInfo>(t);
  if (!have_grants_) {
    copy->routes.clear();
    copy->health.clear();
    for (const auto& r : t.requested) {
      copy->routes.push_back({r.host, r.path});
      copy->health.push_back(r.health);
    }
    copy->refused.clear();
    return copy;
  }
  auto it = grants_.find(t.origin);
  static const std::vector<std::string> none;
  auto f = filter_routes(t.requested, it == grants_.end() ? none : it->second, t.origin);
  copy->routes = std::move(f.served);
  copy->health = std::move(f.health);
  copy->refused = std::move(f.refused);
  return copy;
}

std::vector<std::shared_ptr<const TunnelInfo>> Registry::set_grants(Grants grants) {
  std::lock_guard lock(mu_);
  grants_ = std::move(grants);
  have_grants_ = true;
  std::vector<std::shared_ptr<const TunnelInfo>> changed;
  for (auto& [id, t] : live_) {
    auto next = filtered_locked(*t);
    if (next->routes != t->routes || next->refused != t->refused) {
      refused_total_.fetch_add(newly_refused(*t, *next), std::memory_order_relaxed);
      forget_unpublished_locked(*t, *next);
      for (const auto& r : next->routes) known_[{r.host, r.path}] = next->origin;
      changed.push_back(next);
    }
    t = std::move(next);
  }
  // A host no grant allows any more is unknown (404), not offline (503).
  for (auto it = known_.begin(); it != known_.end();) {
    auto g = grants_.find(it->second);
    if (g == grants_.end() || !host_allowed(g->second, it->first.first)) {
      it = known_.erase(it);
    } else {
      ++it;
    }
  }
  rebuild_locked();
  return changed;
}

std::shared_ptr<const TunnelInfo> Registry::add(std::shared_ptr<const TunnelInfo> t) {
  std::lock_guard lock(mu_);
  auto stored = filtered_locked(*t);
  refused_total_.fetch_add(stored->refused.size(), std::memory_order_relaxed);
  for (const auto& r : stored->routes) known_[{r.host, r.path}] = stored->origin;
  live_[stored->id] = stored;
  rebuild_locked();
  return stored;
}

std::shared_ptr<const TunnelInfo> Registry::republish(std::uint64_t id, tunnel::Publish publish) {
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  if (it == live_.end()) return nullptr;
  TunnelInfo base = *it->second;
  base.requested = std::move(publish.routes);
  base.publish_seq = publish.seq;
  auto next = filtered_locked(base);
  refused_total_.fetch_add(newly_refused(*it->second, *next), std::memory_order_relaxed);
  forget_unpublished_locked(*it->second, *next);
  for (const auto& r : next->routes) known_[{r.host, r.path}] = next->origin;
  it->second = next;
  rebuild_locked();
  return next;
}

// Routes `before` served and `after` does not: when no other live tunnel of
// the origin serves them, the origin withdrew them (404 from now on), rather
// than went offline (503).
void Registry::forget_unpublished_locked(const TunnelInfo& before, const TunnelInfo& after) {
  for (const auto& r : before.routes) {
    if (std::find(after.routes.begin(), after.routes.end(), r) != after.routes.end()) continue;
    bool elsewhere = false;
    for (const auto& [id, t] : live_) {
      if (id == before.id || t->origin != before.origin) continue;
      if (std::find(t->routes.begin(), t->routes.end(), r) != t->routes.end()) elsewhere = true;
    }
    if (!elsewhere) known_.erase({r.host, r.path});
  }
}

void Registry::remove(std::uint64_t id) {
  std::lock_guard lock(mu_);
  if (live_.erase(id) > 0) rebuild_locked();
}

void Registry::rebuild_locked() {
  auto snap = std::make_shared<RouteSnapshot>();
  std::map<std::pair<std::string, std::string>, std::shared_ptr<RouteGroup>> groups;
  for (const auto& [key, unused] : known_) {
    groups[key] = std::make_shared<RouteGroup>();
  }
  for (const auto& [id, t] : live_) {
    snap->tunnels.push_back(t);
    for (std::size_t i = 0; i < t->routes.size(); ++i) {
      auto& g = groups[{t->routes[i].host, t->routes[i].path}];
      if (!g) g = std::make_shared<RouteGroup>();
      g->tunnels.push_back(t);
      g->health.push_back(i < t->health.size() ? t->health[i] : tunnel::RouteHealth::unknown);
    }
  }
  for (auto& [key, group] : groups) snap->table.add(key.first, key.second, group);
  snap_ = std::move(snap);
}

void Registry::clear() {
  std::lock_guard lock(mu_);
  live_.clear();
  known_.clear();
  snap_ = std::make_shared<RouteSnapshot>();
}

std::shared_ptr<const RouteSnapshot> Registry::snapshot() const {
  std::lock_guard lock(mu_);
  return snap_;
}

std::size_t Registry::size() const {
  std::lock_guard lock(mu_);
  return live_.size();
}

std::shared_ptr<const RouteGroup> Registry::group_for(std::string_view host,
                                                      std::string_view path) const {
  auto snap = snapshot();
  const auto* group = snap->table.lookup(host, path);
  return group ? *group : nullptr;
}

PickResult Registry::pick(std::string_view host, std::string_view path,
                          std::shared_ptr<const TunnelInfo>& out,
                          std::shared_ptr<const RouteGroup>* group_out) const {
  auto group = group_for(host, path);  // keeps the group's tunnels alive
  if (!group) return PickResult::unknown_host;
  const auto& tunnels = group->tunnels;
  if (group_out) *group_out = group;
  if (tunnels.empty()) return PickResult::offline;
  std::size_t n = tunnels.size();
  std::size_t start = rotate_.fetch_add(1, std::memory_order_relaxed) % n;
  const TunnelInfo* best = nullptr;
  std::size_t best_load = 0;
  bool any_usable = false;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t k = (start + i) % n;
    const auto& t = tunnels[k];
    if (!t->conn->usable()) continue;
    any_usable = true;
    // An unhealthy replica is skipped while another one is not.
    if (k < group->health.size() && group->health[k] == tunnel::RouteHealth::unhealthy) continue;
    std::size_t load = t->conn->active_streams();
    if (!t->conn->on_this_thread()) load += kRemotePenalty;
    if (!best || load < best_load) {
      best = t.get();
      best_load = load;
      out = t;
    }
  }
  if (best) return PickResult::ok;
  return any_usable ? PickResult::unhealthy : PickResult::offline;
}

std::string Registry::prometheus() const {
  auto snap = snapshot();
  std::map<std::string, std::set<std::pair<std::string, std::string>>> refused;
  std::map<std::pair<std::string, std::string>, int> healthy;  // -1 unknown, 0 down, 1 up
  for (const auto& t : snap->tunnels) {
    auto& set = refused[t->origin];
    for (const auto& r : t->refused) set.insert({r.host, r.path});
    if (!t->conn->usable()) continue;
    for (std::size_t i = 0; i < t->routes.size(); ++i) {
      auto h = i < t->health.size() ? t->health[i] : tunnel::RouteHealth::unknown;
      int v = h == tunnel::RouteHealth::unhealthy ? 0 : 1;
      auto [it, inserted] = healthy.emplace(std::pair{t->routes[i].host, t->routes[i].path}, v);
      if (!inserted) it->second = std::max(it->second, v);
    }
  }
  std::string out;
  out +=
      "# HELP hearth_publish_refused_total Routes an origin asked for that the edge refused "
      "(hostname not allowed): each route once per tunnel when it becomes refused (HELLO, "
      "PUBLISH or edge reload).\n";
  out += "# TYPE hearth_publish_refused_total counter\n";
  out += "hearth_publish_refused_total " + std::to_string(refused_total()) + "\n";
  out += "# HELP hearth_publish_refused_routes Routes refused right now, by origin.\n";
  out += "# TYPE hearth_publish_refused_routes gauge\n";
  for (const auto& [origin, set] : refused) {
    out += "hearth_publish_refused_routes{origin=\"" + prom_label(origin) + "\"} " +
           std::to_string(set.size()) + "\n";
  }
  out +=
      "# HELP hearth_route_healthy 1 when a live tunnel serves the route and its health "
      "check passes (or it has none), 0 while the check fails on every replica.\n";
  out += "# TYPE hearth_route_healthy gauge\n";
  for (const auto& [key, v] : healthy) {
    out += "hearth_route_healthy{host=\"" + prom_label(key.first) + "\",path=\"" +
           prom_label(key.second) + "\"} " + std::to_string(v) + "\n";
  }
  return out;
}

}  // namespace hearth::edge
