#pragma once
// The C++ interface edge and origin use: a Backend (kernel generic netlink, or wireguard-go
// through its UAPI socket) behind one small API, and a Link that picks the backend, creates
// and configures the interface (keys, peers, addresses, up, routes), supervises it and
// removes it on exit. Control plane: calls block briefly (bounded by socket timeouts) and
// report std::error_code; Link's constructor throws with what to install or grant.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "hearth/wg/device.hpp"

namespace hearth::wg {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;  // "kernel" or "wireguard-go"
  // Creates the interface (kernel: RTM_NEWLINK kind wireguard; wireguard-go: starts it).
  virtual std::error_code add_link(const std::string& ifname) = 0;
  virtual std::error_code del_link(const std::string& ifname) = 0;
  virtual std::error_code set_device(const Device& device) = 0;
  virtual std::error_code get_device(const std::string& ifname, Device& out) = 0;
  // False once the interface is gone (wireguard-go exited): the Link re-creates it.
  virtual bool alive(const std::string& ifname) = 0;
};

std::unique_ptr<Backend> make_kernel_backend();
// `program`: the wireguard-go binary. keep_running: do not stop it with hearth (persist).
std::unique_ptr<Backend> make_userspace_backend(std::string program, bool keep_running);

// rtnetlink on any interface, for both backends: address, up, route.
std::error_code add_address(const std::string& ifname, const IpPrefix& address);
std::error_code set_link_up(const std::string& ifname);
std::error_code add_route(const std::string& ifname, const IpPrefix& prefix);
std::error_code del_route(const std::string& ifname, const IpPrefix& prefix);

// The wireguard-go binary on PATH (or $HEARTH_WIREGUARD_GO), empty when there is none.
std::string find_wireguard_go();

// Resolves host:port (a DNS name or an IP literal) to one endpoint, IPv4 first.
std::optional<SocketEndpoint> resolve_endpoint(const std::string& host, std::uint16_t port);

struct LinkSpec {
  std::string interface;
  Key private_key{};
  std::optional<std::uint16_t> listen_port;
  std::vector<IpPrefix> addresses;  // on the interface, with their prefix length
  std::vector<Peer> peers;
  bool persist = false;          // keep the interface when hearth exits
  std::string backend = "auto";  // "auto", "kernel", "userspace"; $HEARTH_WG_BACKEND overrides
};

// A handshake older than this marks a peer (and an origin's link) unhealthy.
constexpr std::chrono::seconds handshake_stale_after{180};

struct PeerStatus {
  std::string public_key;  // base64
  std::string endpoint;    // empty until the peer was heard from
  std::vector<std::string> allowed_ips;
  std::int64_t handshake_age_s = -1;  // -1: never
  std::uint64_t rx_bytes = 0, tx_bytes = 0;
  bool healthy = false;  // a handshake within handshake_stale_after
};

struct LinkStatus {
  std::string interface;
  std::string backend;
  bool up = false;  // the interface exists and answers
  std::string error;
  std::string public_key;
  std::uint16_t listen_port = 0;
  std::uint64_t repairs = 0;  // times the link was re-created
  std::vector<PeerStatus> peers;
};

// JSON object and Prometheus lines for /status and /metrics (labels: interface, peer).
// `names` (optional) maps a peer's public key (base64) to a display name (the edge: the
// origin's name), shown as "name" and as the metrics' peer label.
std::string status_json(const LinkStatus& status,
                        const std::map<std::string, std::string>* names = nullptr);
std::string prometheus(const LinkStatus& status,
                       const std::map<std::string, std::string>* names = nullptr);

class Link {
 public:
  // Picks the backend (logged), creates and configures the interface. Throws
  // std::runtime_error saying what to install, or that CAP_NET_ADMIN is missing.
  explicit Link(LinkSpec spec);
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Replaces the peer set (the edge: after an invite or SIGHUP). Applied at once.
  void set_peers(std::vector<Peer> peers);
  // Supervision, called about once a second: re-creates a link that vanished (wireguard-go
  // died, someone deleted the interface) and refreshes the status.
  void tick();
  LinkStatus status() const;
  // Removes the interface (stops wireguard-go) unless persist. Idempotent.
  void shutdown();
  std::string backend_name() const;

 private:
  std::error_code provision_locked();
  void refresh_locked();

  mutable std::mutex mu_;
  LinkSpec spec_;
  std::unique_ptr<Backend> backend_;
  LinkStatus status_;
  bool shut_ = false;
};

}  // namespace hearth::wg
