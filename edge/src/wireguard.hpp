#pragma once
// The edge's WireGuard link (issue 10): the [wireguard] interface with every invited origin
// as a peer (state_dir/origins/NAME.wg), kept up by a once-a-second tick on the control
// thread; its state for /status, /metrics and /readyz. Internal header.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "hearth/config/config.hpp"
#include "hearth/wg/link.hpp"

namespace hearth::edge {

class EdgeShared;

class EdgeWireguard {
 public:
  // Loads (or creates) the key and the records, creates the link. Throws std::runtime_error.
  explicit EdgeWireguard(const config::EdgeConfig& cfg);
  // Ticks on `control` until shutdown(): records and [[origins]] are re-read each time, so
  // an invite or a SIGHUP that drops an origin reaches the link within a second.
  void start(boost::asio::io_context& control, EdgeShared* shared);
  void shutdown();

  std::string status_json() const;  // the JSON object
  std::string prometheus() const;
  // Down, or a peer heard from before whose last handshake is older than 3 minutes.
  bool healthy(std::string& why) const;

 private:
  void tick();
  std::vector<wg::Peer> peers_for(const config::EdgeConfig& cfg);

  std::unique_ptr<wg::Link> link_;
  EdgeShared* shared_ = nullptr;  // owns this; a raw pointer, so no ownership cycle
  std::unique_ptr<boost::asio::steady_timer> timer_;
  mutable std::mutex mu_;                     // names_
  std::map<std::string, std::string> names_;  // public key (base64) -> origin name
  std::vector<wg::Peer> applied_;
  std::string records_error_;
  const config::EdgeWireguard started_;  // the [wireguard] the link was made from
  bool warned_reload_ = false;
};

}  // namespace hearth::edge
