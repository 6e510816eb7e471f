#include "reload.hpp"

#include <boost/asio/steady_timer.hpp>
#include <cstdlib>

#include "hearth/common/crypto.hpp"
#include "hearth/common/log.hpp"

namespace hearth::edge {
namespace {

std::string route_list(const std::vector<tunnel::RouteAdvert>& routes) {
  std::string out;
  for (const auto& r : routes) out += (out.empty() ? "" : ",") + r.host + r.path;
  return out;
}

std::string refused_list(const std::vector<tunnel::RefusedRoute>& routes) {
  std::string out;
  for (const auto& r : routes) out += (out.empty() ? "" : ",") + r.host + r.path;
  return out;
}

void send_published(const TunnelInfo& t) {
  if (t.version < 2) return;  // a version-1 origin has no PUBLISHED; the edge log says it
  tunnel::Published p{t.publish_seq, t.refused};
  t.conn->send_control(tunnel::FrameType::published, tunnel::encode_payload(p));
}

void revoke(EdgeShared& shared, const std::shared_ptr<const TunnelInfo>& t, std::string why,
            asio::io_context& control, config::Duration drain) {
  shared.registry.remove(t->id);  // no new requests from now on
  log::warn("tunnel.revoked", {{"conn", "t" + std::to_string(t->id)},
                               {"origin", t->origin},
                               {"peer", t->peer},
                               {"reason", why},
                               {"close_in_ms", drain.count()}});
  t->conn->go_away(why);
  // In-flight streams (a WebSocket) get drain_timeout, then the tunnel closes.
  auto timer = std::make_shared<asio::steady_timer>(control, drain);
  auto conn = t->conn;
  timer->async_wait([timer, conn, why](boost::system::error_code) { conn->close(why); });
}

}  // namespace

std::uint16_t max_tunnel_version() {
  static const std::uint16_t v = [] {
    const char* env = std::getenv("HEARTH_TUNNEL_MAX_VERSION");
    return env && std::string_view(env) == "1" ? tunnel::kProtocolVersion1
                                               : tunnel::kProtocolVersion;
  }();
  return v;
}

Grants grants_of(const config::EdgeConfig& cfg) {
  Grants g;
  for (const auto& o : cfg.origins) g[o.name] = o.hostnames;
  return g;
}

void log_refused(const TunnelInfo& t, std::string_view when) {
  if (t.refused.empty()) return;
  log::warn("publish.refused", {{"conn", "t" + std::to_string(t.id)},
                                {"origin", t.origin},
                                {"when", when},
                                {"refused", refused_list(t.refused)},
                                {"served", route_list(t.routes)},
                                {"reason", t.refused.front().reason}});
}

void apply_reload(EdgeShared& shared, const config::EdgeConfig& cfg,
                  const std::map<std::string, std::vector<std::string>>& pins,
                  asio::io_context& control) {
  auto changed = shared.registry.set_grants(grants_of(cfg));
  for (const auto& t : changed) {
    log::info("publish.changed", {{"conn", "t" + std::to_string(t->id)},
                                  {"origin", t->origin},
                                  {"served", route_list(t->routes)},
                                  {"refused", refused_list(t->refused)}});
    log_refused(*t, "reload");
    send_published(*t);
  }
  auto snap = shared.registry.snapshot();
  for (const auto& t : snap->tunnels) {
    bool listed = false;
    for (const auto& o : cfg.origins) listed = listed || o.name == t->origin;
    if (!listed) {
      revoke(shared, t, "origin '" + t->origin + "' is no longer in [[origins]]", control,
             cfg.drain_timeout);
      continue;
    }
    bool key_ok = false;
    if (auto it = pins.find(t->origin); it != pins.end()) {
      for (const auto& p : it->second) key_ok = key_ok || crypto::pins_equal(p, t->pin);
    }
    if (!key_ok) {
      revoke(shared, t, "key " + t->pin + " of origin '" + t->origin + "' was revoked", control,
             cfg.drain_timeout);
    }
  }
}

tunnel::Connection::ControlHandler publish_handler(std::shared_ptr<EdgeShared> shared,
                                                   std::uint64_t id,
                                                   std::weak_ptr<tunnel::Connection> conn) {
  return [shared, id, conn](tunnel::FrameType type, std::span<const std::uint8_t> payload) {
    if (type != tunnel::FrameType::publish) return false;  // PUBLISHED is edge -> origin only
    auto p = tunnel::decode_publish(payload);
    if (!p) return false;
    auto seq = p->seq;
    auto t = shared->registry.republish(id, std::move(*p));
    if (!t) return true;  // revoked or closing: nothing to serve
    log::info("publish.received", {{"conn", "t" + std::to_string(id)},
                                   {"origin", t->origin},
                                   {"seq", seq},
                                   {"served", route_list(t->routes)},
                                   {"refused", refused_list(t->refused)}});
    log_refused(*t, "publish");
    if (auto c = conn.lock()) {
      tunnel::Published reply{seq, t->refused};
      c->send_control(tunnel::FrameType::published, tunnel::encode_payload(reply));
    }
    return true;
  };
}

}  // namespace hearth::edge
