#include "wireguard.hpp"

#include <fstream>

#include "hearth/common/log.hpp"

namespace hearth::origin {
namespace {

// Reaching more of the home than this machine needs forwarding on (and the edge's record
// allowed_ips widened to match): say so once, at start.
void warn_if_no_forwarding(const config::OriginWireguard& w) {
  bool beyond_self = false;
  for (const auto& a : w.allowed_ips) {
    if (!(a.cidr == a.address.size() * 8 && a.address == w.address.address)) beyond_self = true;
  }
  if (!beyond_self) return;
  std::ifstream f("/proc/sys/net/ipv4/ip_forward");
  int on = 0;
  f >> on;
  if (on != 1) {
    log::warn("wireguard.no_forwarding",
              {{"detail",
                "allowed_ips lists more than this origin's address, but "
                "net.ipv4.ip_forward is off: the edge reaches only this machine"}});
  }
}

}  // namespace

wg::Peer OriginWireguard::edge_peer() {
  wg::Peer p;
  p.public_key = cfg_.edge_public_key;
  p.persistent_keepalive = static_cast<std::uint16_t>(
      std::chrono::duration_cast<std::chrono::seconds>(cfg_.persistent_keepalive).count());
  p.allowed_ips = {
      wg::IpPrefix{cfg_.edge_address, static_cast<std::uint8_t>(cfg_.edge_address.size() * 8)}};
  // A name that does not resolve yet (boot, flaky DNS) is retried on each tick.
  p.endpoint = wg::resolve_endpoint(cfg_.edge_endpoint.host, cfg_.edge_endpoint.port);
  endpoint_resolved_ = p.endpoint.has_value();
  if (!endpoint_resolved_) {
    log::warn("wireguard.resolve_failed", {{"edge_endpoint", cfg_.edge_endpoint.to_string()}});
  }
  return p;
}

OriginWireguard::OriginWireguard(const config::OriginConfig& cfg) : cfg_(*cfg.wireguard) {
  wg::LinkSpec spec;
  spec.interface = cfg_.interface;
  spec.private_key = cfg_.private_key;
  spec.addresses = {cfg_.address};
  spec.peers = {edge_peer()};
  spec.persist = cfg_.persist;
  link_ = std::make_unique<wg::Link>(std::move(spec));
  warn_if_no_forwarding(cfg_);
}

void OriginWireguard::start(boost::asio::io_context& control) {
  timer_ = std::make_unique<boost::asio::steady_timer>(control);
  tick();
}

void OriginWireguard::tick() {
  if (!timer_) return;
  if (!endpoint_resolved_) {
    auto peer = edge_peer();
    if (endpoint_resolved_) link_->set_peers({peer});
  }
  link_->tick();
  const bool now = healthy();
  if (now != was_healthy_) {
    const auto s = link_->status();
    const std::string endpoint = s.peers.empty() ? "" : s.peers[0].endpoint;
    if (now) {
      log::info("wireguard.handshake", {{"interface", cfg_.interface}, {"edge", endpoint}});
    } else {
      log::warn("wireguard.unhealthy", {{"interface", cfg_.interface},
                                        {"detail", "no handshake with the edge for 3 minutes"}});
    }
    was_healthy_ = now;
  }
  timer_->expires_after(std::chrono::seconds(1));
  timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

void OriginWireguard::shutdown() {
  if (timer_) timer_->cancel();
  timer_.reset();
  link_->shutdown();
}

bool OriginWireguard::healthy() const {
  const auto s = link_->status();
  return s.up && !s.peers.empty() && s.peers[0].healthy;
}

config::Endpoint OriginWireguard::tunnel_endpoint(const config::Endpoint& edge) const {
  return config::Endpoint{cfg_.edge_address.to_string(), edge.port};
}

std::string OriginWireguard::status_json() const {
  std::map<std::string, std::string> names{{wg::key_to_base64(cfg_.edge_public_key), "edge"}};
  return wg::status_json(link_->status(), &names);
}

std::string OriginWireguard::prometheus() const {
  std::map<std::string, std::string> names{{wg::key_to_base64(cfg_.edge_public_key), "edge"}};
  return wg::prometheus(link_->status(), &names);
}

}  // namespace hearth::origin
