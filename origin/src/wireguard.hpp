#pragma once
// The origin's WireGuard link (issue 10): [wireguard] with the edge as its one peer
// (endpoint the edge's public address, persistent keepalive: the home dials out), kept up
// by a once-a-second tick on the control thread. Internal header.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>

#include "hearth/config/config.hpp"
#include "hearth/wg/link.hpp"

namespace hearth::origin {

class OriginWireguard {
 public:
  // Creates the link. Throws std::runtime_error (what to install, CAP_NET_ADMIN).
  explicit OriginWireguard(const config::OriginConfig& cfg);
  void start(boost::asio::io_context& control);
  void shutdown();

  // A handshake with the edge within the last 3 minutes.
  bool healthy() const;
  // Where the tunnel dials over the link: the edge's WireGuard address, the tunnel port.
  config::Endpoint tunnel_endpoint(const config::Endpoint& edge) const;
  std::string status_json() const;
  std::string prometheus() const;

 private:
  void tick();
  wg::Peer edge_peer();

  const config::OriginWireguard cfg_;
  bool endpoint_resolved_ = false;
  std::unique_ptr<wg::Link> link_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  bool was_healthy_ = false;
};

}  // namespace hearth::origin
