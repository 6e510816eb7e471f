#include "hearth/edge/registry.hpp"

namespace hearth::edge {

Registry::Registry() : snap_(std::make_shared<RouteSnapshot>()) {}

void Registry::add(std::shared_ptr<const TunnelInfo> t) {
  std::lock_guard lock(mu_);
  for (const auto& r : t->routes) known_[{r.host, r.path}] = true;
  live_[t->id] = std::move(t);
  rebuild_locked();
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
    for (const auto& r : t->routes) groups[{r.host, r.path}]->tunnels.push_back(t);
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
  for (std::size_t i = 0; i < n; ++i) {
    const auto& t = tunnels[(start + i) % n];
    if (!t->conn->usable()) continue;
    std::size_t load = t->conn->active_streams();
    if (!t->conn->on_this_thread()) load += kRemotePenalty;
    if (!best || load < best_load) {
      best = t.get();
      best_load = load;
      out = t;
    }
  }
  return best ? PickResult::ok : PickResult::offline;
}

}  // namespace hearth::edge
