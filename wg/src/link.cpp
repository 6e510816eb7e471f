// Link: backend choice, provisioning, supervision, status, clean-up.

#include "hearth/wg/link.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "hearth/common/log.hpp"

namespace hearth::wg {
namespace {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string label(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c != '\n') out += c;
  }
  return out;
}

bool is_permission(const std::error_code& ec) {
  return ec == std::errc::operation_not_permitted || ec == std::errc::permission_denied;
}

}  // namespace

std::optional<SocketEndpoint> resolve_endpoint(const std::string& host, std::uint16_t port) {
  if (auto ip = parse_ip(host)) return SocketEndpoint{*ip, port};
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
    return std::nullopt;
  }
  std::optional<SocketEndpoint> v4, v6;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    char buf[64] = {};
    if (::getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) !=
        0) {
      continue;
    }
    if (auto ip = parse_ip(buf)) {
      auto& slot = ip->family == AF_INET ? v4 : v6;
      if (!slot) slot = SocketEndpoint{*ip, port};
    }
  }
  ::freeaddrinfo(res);
  return v4 ? v4 : v6;
}

Link::Link(LinkSpec spec) : spec_(std::move(spec)) {
  std::string mode = spec_.backend;
  if (const char* env = std::getenv("HEARTH_WG_BACKEND"); env != nullptr && *env != '\0') {
    mode = env;
  }
  status_.interface = spec_.interface;
  std::string why_not_kernel;
  if (mode != "userspace") {
    auto kernel = make_kernel_backend();
    auto ec = kernel->add_link(spec_.interface);
    Device probe;
    if (ec == std::errc::file_exists && !kernel->get_device(spec_.interface, probe)) {
      ec = {};  // ours from a previous run (persist = true), or made by hand: reuse it
    }
    if (!ec) {
      backend_ = std::move(kernel);
    } else if (is_permission(ec)) {
      throw std::runtime_error("cannot create WireGuard interface " + spec_.interface + ": " +
                               ec.message() +
                               " (hearth needs CAP_NET_ADMIN for [wireguard]: see the "
                               "systemd drop-in wireguard.conf in the README)");
    } else {
      why_not_kernel = ec.message();
      if (mode == "kernel") {
        throw std::runtime_error("cannot create kernel WireGuard interface " + spec_.interface +
                                 ": " + why_not_kernel);
      }
    }
  }
  if (!backend_) {
    const std::string program = find_wireguard_go();
    if (program.empty()) {
      throw std::runtime_error(
          "no WireGuard available for interface " + spec_.interface +
          ": the kernel has no "
          "wireguard module (" +
          (why_not_kernel.empty() ? "not tried" : why_not_kernel) +
          ") and wireguard-go is not installed; install one of them: `modprobe wireguard` "
          "(Linux 5.6+), or `apt install wireguard-go`");
    }
    backend_ = make_userspace_backend(program, spec_.persist);
  }
  status_.backend = std::string(backend_->name());
  log::info("wireguard.backend",
            {{"interface", spec_.interface},
             {"backend", status_.backend},
             {"reason", backend_->name() == "kernel" ? "the kernel has WireGuard"
                                                     : "no kernel WireGuard: " + why_not_kernel}});
  if (auto ec = provision_locked()) {
    if (backend_->name() == "kernel" || backend_->alive(spec_.interface)) {
      backend_->del_link(spec_.interface);
    }
    if (is_permission(ec)) {
      throw std::runtime_error("cannot configure WireGuard interface " + spec_.interface + ": " +
                               ec.message() + " (hearth needs CAP_NET_ADMIN for [wireguard])");
    }
    throw std::runtime_error("cannot set up WireGuard interface " + spec_.interface + ": " +
                             ec.message());
  }
  refresh_locked();
}

Link::~Link() { shutdown(); }

std::error_code Link::provision_locked() {
  const std::string& ifname = spec_.interface;
  if (!backend_->alive(ifname)) {
    if (auto ec = backend_->add_link(ifname); ec && ec != std::errc::file_exists) return ec;
  }
  Device d;
  d.name = ifname;
  d.private_key = spec_.private_key;
  d.listen_port = spec_.listen_port;
  d.replace_peers = true;
  d.peers = spec_.peers;
  for (auto& p : d.peers) p.replace_allowed_ips = true;
  if (auto ec = backend_->set_device(d)) return ec;
  for (const auto& a : spec_.addresses) {
    if (auto ec = add_address(ifname, a); ec && ec != std::errc::file_exists) return ec;
  }
  if (auto ec = set_link_up(ifname)) return ec;
  for (const auto& p : spec_.peers) {
    for (const auto& a : p.allowed_ips) {
      if (a.cidr == 0) {
        // A default route through one peer would take over the host's traffic.
        log::warn("wireguard.route_skipped", {{"prefix", a.to_string()}});
        continue;
      }
      if (auto ec = add_route(ifname, a); ec && ec != std::errc::file_exists) return ec;
    }
  }
  log::info("wireguard.up", {{"interface", ifname},
                             {"backend", std::string(backend_->name())},
                             {"peers", spec_.peers.size()},
                             {"listen_port", spec_.listen_port ? *spec_.listen_port : 0}});
  return {};
}

void Link::refresh_locked() {
  Device d;
  auto ec = backend_->get_device(spec_.interface, d);
  status_.up = !ec;
  status_.error = ec ? ec.message() : "";
  if (ec) return;
  if (d.public_key) status_.public_key = key_to_base64(*d.public_key);
  status_.listen_port = d.listen_port.value_or(0);
  const std::int64_t now = ::time(nullptr);
  status_.peers.clear();
  for (const auto& p : d.peers) {
    PeerStatus s;
    s.public_key = key_to_base64(p.public_key);
    if (p.endpoint) s.endpoint = p.endpoint->to_string();
    for (const auto& a : p.allowed_ips) s.allowed_ips.push_back(a.to_string());
    if (p.last_handshake_sec > 0)
      s.handshake_age_s = std::max<std::int64_t>(0, now - p.last_handshake_sec);
    s.rx_bytes = p.rx_bytes;
    s.tx_bytes = p.tx_bytes;
    s.healthy = s.handshake_age_s >= 0 && s.handshake_age_s <= handshake_stale_after.count();
    status_.peers.push_back(std::move(s));
  }
}

void Link::set_peers(std::vector<Peer> peers) {
  std::lock_guard lock(mu_);
  if (shut_) return;
  // Not replace_peers: that would drop the sessions (and learned endpoints) of the peers
  // that stay. Removed ones are removed, the others updated in place.
  Device d;
  d.name = spec_.interface;
  std::vector<IpPrefix> removed_routes;
  for (const auto& old : spec_.peers) {
    const bool kept = std::any_of(peers.begin(), peers.end(),
                                  [&](const Peer& p) { return p.public_key == old.public_key; });
    if (!kept) {
      removed_routes.insert(removed_routes.end(), old.allowed_ips.begin(), old.allowed_ips.end());
      Peer gone;
      gone.public_key = old.public_key;
      gone.remove = true;
      d.peers.push_back(gone);
    }
  }
  spec_.peers = std::move(peers);
  for (auto p : spec_.peers) {
    p.replace_allowed_ips = true;
    d.peers.push_back(std::move(p));
  }
  if (auto ec = backend_->set_device(d)) {
    log::error("wireguard.set_peers_failed",
               {{"interface", spec_.interface}, {"error", ec.message()}});
    return;
  }
  // Routes of removed peers go with them (unless a remaining peer has the same prefix).
  for (const auto& old : removed_routes) {
    const bool still = std::any_of(spec_.peers.begin(), spec_.peers.end(), [&](const Peer& p) {
      return std::find(p.allowed_ips.begin(), p.allowed_ips.end(), old) != p.allowed_ips.end();
    });
    if (!still && old.cidr != 0) del_route(spec_.interface, old);
  }
  for (const auto& p : spec_.peers) {
    for (const auto& a : p.allowed_ips) {
      if (a.cidr != 0) add_route(spec_.interface, a);
    }
  }
  log::info("wireguard.peers", {{"interface", spec_.interface}, {"peers", spec_.peers.size()}});
  refresh_locked();
}

void Link::tick() {
  std::lock_guard lock(mu_);
  if (shut_) return;
  Device probe;
  const bool alive =
      backend_->alive(spec_.interface) && !backend_->get_device(spec_.interface, probe);
  if (!alive) {
    log::warn("wireguard.down", {{"interface", spec_.interface},
                                 {"backend", std::string(backend_->name())},
                                 {"action", "re-creating it"}});
    status_.up = false;
    if (auto ec = provision_locked()) {
      status_.error = ec.message();
      log::error("wireguard.repair_failed",
                 {{"interface", spec_.interface}, {"error", ec.message()}});
      return;
    }
    ++status_.repairs;
    log::info("wireguard.repaired", {{"interface", spec_.interface}, {"repairs", status_.repairs}});
  }
  refresh_locked();
}

LinkStatus Link::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

std::string Link::backend_name() const {
  std::lock_guard lock(mu_);
  return status_.backend;
}

void Link::shutdown() {
  std::lock_guard lock(mu_);
  if (shut_ || !backend_) return;
  shut_ = true;
  if (spec_.persist) {
    log::info("wireguard.kept", {{"interface", spec_.interface}, {"reason", "persist = true"}});
    return;
  }
  auto ec = backend_->del_link(spec_.interface);
  log::info("wireguard.removed",
            {{"interface", spec_.interface}, {"error", ec ? ec.message() : std::string()}});
}

namespace {
std::string name_of(const PeerStatus& p, const std::map<std::string, std::string>* names) {
  if (names != nullptr) {
    if (auto it = names->find(p.public_key); it != names->end()) return it->second;
  }
  return p.public_key;
}
}  // namespace

std::string status_json(const LinkStatus& s, const std::map<std::string, std::string>* names) {
  std::string out =
      "{\"interface\":" + json_string(s.interface) + ",\"backend\":" + json_string(s.backend) +
      ",\"up\":" + (s.up ? "true" : "false") + ",\"public_key\":" + json_string(s.public_key) +
      ",\"listen_port\":" + std::to_string(s.listen_port) +
      ",\"repairs\":" + std::to_string(s.repairs);
  if (!s.error.empty()) out += ",\"error\":" + json_string(s.error);
  out += ",\"peers\":[";
  for (std::size_t i = 0; i < s.peers.size(); ++i) {
    const auto& p = s.peers[i];
    if (i) out += ',';
    out += "{\"name\":" + json_string(name_of(p, names)) +
           ",\"public_key\":" + json_string(p.public_key) +
           ",\"endpoint\":" + json_string(p.endpoint) + ",\"allowed_ips\":[";
    for (std::size_t j = 0; j < p.allowed_ips.size(); ++j) {
      out += (j ? "," : "") + json_string(p.allowed_ips[j]);
    }
    out += "],\"handshake_age_s\":" +
           (p.handshake_age_s < 0 ? std::string("null") : std::to_string(p.handshake_age_s)) +
           ",\"rx_bytes\":" + std::to_string(p.rx_bytes) +
           ",\"tx_bytes\":" + std::to_string(p.tx_bytes) +
           ",\"healthy\":" + (p.healthy ? "true" : "false") + "}";
  }
  return out + "]}";
}

std::string prometheus(const LinkStatus& s, const std::map<std::string, std::string>* names) {
  const std::string iface = "interface=\"" + label(s.interface) + "\"";
  std::string out;
  out += "# HELP hearth_wireguard_up 1 while the WireGuard interface exists and answers.\n";
  out += "# TYPE hearth_wireguard_up gauge\n";
  out += "hearth_wireguard_up{" + iface + ",backend=\"" + label(s.backend) + "\"} " +
         (s.up ? "1" : "0") + "\n";
  out += "# TYPE hearth_wireguard_repairs_total counter\n";
  out += "hearth_wireguard_repairs_total{" + iface + "} " + std::to_string(s.repairs) + "\n";
  out +=
      "# HELP hearth_wireguard_peer_healthy 1 when the peer's last handshake is at most 180 s "
      "old.\n";
  out += "# TYPE hearth_wireguard_peer_healthy gauge\n";
  for (const auto& p : s.peers) {
    out += "hearth_wireguard_peer_healthy{" + iface + ",peer=\"" + label(name_of(p, names)) +
           "\"} " + (p.healthy ? "1" : "0") + "\n";
  }
  out +=
      "# HELP hearth_wireguard_peer_handshake_age_seconds Seconds since the last handshake (-1: "
      "never).\n";
  out += "# TYPE hearth_wireguard_peer_handshake_age_seconds gauge\n";
  for (const auto& p : s.peers) {
    out += "hearth_wireguard_peer_handshake_age_seconds{" + iface + ",peer=\"" +
           label(name_of(p, names)) + "\"} " + std::to_string(p.handshake_age_s) + "\n";
  }
  out += "# HELP hearth_wireguard_peer_bytes_total Bytes through the link, by direction.\n";
  out += "# TYPE hearth_wireguard_peer_bytes_total counter\n";
  for (const auto& p : s.peers) {
    const std::string peer = iface + ",peer=\"" + label(name_of(p, names)) + "\"";
    out += "hearth_wireguard_peer_bytes_total{" + peer + ",direction=\"rx\"} " +
           std::to_string(p.rx_bytes) + "\n";
    out += "hearth_wireguard_peer_bytes_total{" + peer + ",direction=\"tx\"} " +
           std::to_string(p.tx_bytes) + "\n";
  }
  return out;
}

}  // namespace hearth::wg
