#include "wireguard.hpp"

#include <algorithm>

#include "hearth/common/log.hpp"
#include "hearth/config/pairing.hpp"
#include "shared.hpp"

namespace hearth::edge {
namespace {

wg::LinkSpec spec_of(const config::EdgeConfig& cfg) {
  const auto& w = *cfg.wireguard;
  wg::LinkSpec spec;
  spec.interface = w.interface;
  spec.private_key = config::load_or_create_wireguard_key(w.private_key_file);
  spec.listen_port = w.listen_port;
  spec.addresses = {w.address};
  spec.persist = w.persist;
  return spec;
}

}  // namespace

EdgeWireguard::EdgeWireguard(const config::EdgeConfig& cfg) : started_(*cfg.wireguard) {
  auto spec = spec_of(cfg);
  spec.peers = peers_for(cfg);
  applied_ = spec.peers;
  link_ = std::make_unique<wg::Link>(std::move(spec));
}

// The peers the edge should have: each recorded origin still listed in [[origins]].
// Origins dial out, so no endpoints: WireGuard learns them from the first handshake.
std::vector<wg::Peer> EdgeWireguard::peers_for(const config::EdgeConfig& cfg) {
  std::vector<config::WireguardPeerRecord> records;
  try {
    records = config::load_wireguard_records(cfg.state_dir);
    records_error_.clear();
  } catch (const std::exception& e) {
    if (records_error_ != e.what()) {
      log::error("state.read_failed", {{"error", e.what()}, {"kept", "current WireGuard peers"}});
      records_error_ = e.what();
    }
    return applied_;
  }
  std::vector<wg::Peer> peers;
  std::map<std::string, std::string> names;
  for (const auto& r : records) {
    const bool granted =
        std::any_of(cfg.origins.begin(), cfg.origins.end(),
                    [&](const config::OriginGrant& g) { return g.name == r.name; });
    if (!granted) continue;
    wg::Peer p;
    p.public_key = r.public_key;
    p.allowed_ips = r.allowed_ips;
    peers.push_back(std::move(p));
    names[wg::key_to_base64(r.public_key)] = r.name;
  }
  std::lock_guard lock(mu_);
  names_ = std::move(names);
  return peers;
}

void EdgeWireguard::start(boost::asio::io_context& control, EdgeShared* shared) {
  shared_ = shared;
  timer_ = std::make_unique<boost::asio::steady_timer>(control);
  tick();
}

void EdgeWireguard::tick() {
  if (!timer_) return;
  const auto cfg = shared_->config();
  // SIGHUP re-reads [[origins]] (so peers follow); the interface itself needs a restart.
  const auto& now = cfg->wireguard;
  const bool same = now && now->interface == started_.interface &&
                    now->listen_port == started_.listen_port && now->address == started_.address &&
                    now->private_key_file == started_.private_key_file &&
                    now->persist == started_.persist;
  if (!same && !warned_reload_) {
    log::warn("wireguard.reload_ignored",
              {{"detail", "[wireguard] changed: restart hearth-edge to apply it"}});
    warned_reload_ = true;
  }
  auto peers = peers_for(*cfg);
  if (peers != applied_) {
    link_->set_peers(peers);
    applied_ = std::move(peers);
  }
  link_->tick();
  timer_->expires_after(std::chrono::seconds(1));
  timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

void EdgeWireguard::shutdown() {
  if (timer_) timer_->cancel();
  timer_.reset();
  link_->shutdown();
}

std::string EdgeWireguard::status_json() const {
  const auto status = link_->status();
  std::lock_guard lock(mu_);
  return wg::status_json(status, &names_);
}

std::string EdgeWireguard::prometheus() const {
  const auto status = link_->status();
  std::lock_guard lock(mu_);
  return wg::prometheus(status, &names_);
}

bool EdgeWireguard::healthy(std::string& why) const {
  const auto status = link_->status();
  if (!status.up) {
    why = "wireguard link down: " + status.error;
    return false;
  }
  for (const auto& p : status.peers) {
    if (p.handshake_age_s > wg::handshake_stale_after.count()) {
      std::lock_guard lock(mu_);
      auto it = names_.find(p.public_key);
      why = "wireguard handshake with " + (it != names_.end() ? it->second : p.public_key) +
            " is " + std::to_string(p.handshake_age_s) + "s old";
      return false;
    }
  }
  return true;
}

}  // namespace hearth::edge
