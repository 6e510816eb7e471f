#pragma once
// State shared by the edge's listeners and sessions (internal header).

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hearth/config/config.hpp"
#include "hearth/edge/metrics.hpp"
#include "hearth/edge/registry.hpp"

namespace hearth::edge {

namespace asio = boost::asio;

// HTTPS contexts, one per [[tls.certificates]] entry, chosen by SNI.
struct HttpsTls {
  struct Entry {
    std::shared_ptr<asio::ssl::context> ctx;
    X509* leaf = nullptr;  // owned by ctx
  };
  std::vector<Entry> entries;  // [0] is the default
  asio::ssl::context& default_context() { return *entries.front().ctx; }
};

// Throws std::runtime_error naming the file when a certificate or key is unusable.
std::shared_ptr<HttpsTls> make_https_tls(const config::EdgeConfig& cfg);

class EdgeWireguard;  // wireguard.hpp (issue 10)

class EdgeShared {
 public:
  std::shared_ptr<const config::EdgeConfig> config() const {
    std::lock_guard lock(mu_);
    return config_;
  }
  std::shared_ptr<HttpsTls> https() const {
    std::lock_guard lock(mu_);
    return https_;
  }
  void swap(std::shared_ptr<const config::EdgeConfig> cfg, std::shared_ptr<HttpsTls> tls) {
    std::lock_guard lock(mu_);
    config_ = std::move(cfg);
    if (tls) https_ = std::move(tls);
  }

  Registry registry;
  Metrics metrics;
  std::atomic<bool> draining{false};
  std::atomic<std::uint64_t> next_id{1};
  std::uint16_t https_port = 443;  // actual bound port, for redirects
  std::shared_ptr<EdgeWireguard> wireguard;  // null without [wireguard] (issue 10)

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const config::EdgeConfig> config_;
  std::shared_ptr<HttpsTls> https_;
};

asio::awaitable<void> https_session(std::shared_ptr<EdgeShared> shared, asio::ip::tcp::socket sock);
asio::awaitable<void> http_redirect_session(std::shared_ptr<EdgeShared> shared,
                                            asio::ip::tcp::socket sock);
asio::awaitable<void> admin_session(std::shared_ptr<EdgeShared> shared, asio::ip::tcp::socket sock);

}  // namespace hearth::edge
