#pragma once
// State shared by the edge's listeners and sessions (internal header).

#include <openssl/ssl.h>

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
#include "hearth/edge/policy.hpp"
#include "hearth/edge/registry.hpp"
#include "tls/proxy_header.hpp"

namespace hearth::acme {
class ChallengeBoard;
class Manager;
}  // namespace hearth::acme

namespace hearth::edge {

namespace asio = boost::asio;

struct AcmeTls;

// HTTPS contexts, one per [[tls.certificates]] entry, chosen by SNI.
struct HttpsTls {
  struct Entry {
    std::shared_ptr<asio::ssl::context> ctx;
    X509* leaf = nullptr;  // owned by ctx
  };
  std::vector<Entry> entries;           // [0] is the default
  std::shared_ptr<const AcmeTls> acme;  // issue 12: keeps the callbacks' board alive
  asio::ssl::context& default_context() { return *entries.front().ctx; }
};

// Issue 12 (acme_glue.cpp): managed certificates and pending ACME challenges.
struct AcmeTls {
  std::vector<HttpsTls::Entry> entries;         // managed, served after the static ones
  std::shared_ptr<acme::ChallengeBoard> board;  // http-01 tokens, tls-alpn-01 certs
  // For /status and /metrics. Weak: the Manager's timer must die with the control
  // context, and EdgeShared outlives it.
  std::weak_ptr<const acme::Manager> manager;
};
// Appends the managed contexts (or a fallback when there is no certificate at all)
// and hooks the tls-alpn-01 ClientHello callback into every context.
void add_acme_contexts(HttpsTls& tls, std::shared_ptr<const AcmeTls> acme,
                       SSL_CTX_alpn_select_cb_func alpn, void* alpn_arg);

// Throws std::runtime_error naming the file when a certificate or key is unusable.
std::shared_ptr<HttpsTls> make_https_tls(const config::EdgeConfig& cfg,
                                         std::shared_ptr<const AcmeTls> acme = nullptr);

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
  std::shared_ptr<const AcmeTls> acme() const {  // issue 12
    std::lock_guard lock(mu_);
    return acme_;
  }
  void set_acme(std::shared_ptr<const AcmeTls> acme) {
    std::lock_guard lock(mu_);
    acme_ = std::move(acme);
  }

  Registry registry;
  // Rate buckets and the Basic credential cache of every worker (policy.hpp).
  policy::PolicyTable policies;
  Metrics metrics;
  std::atomic<bool> draining{false};
  std::atomic<std::uint64_t> next_id{1};
  std::uint16_t https_port = 443;            // actual bound port, for redirects
  std::shared_ptr<EdgeWireguard> wireguard;  // null without [wireguard] (issue 10)

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const config::EdgeConfig> config_;
  std::shared_ptr<HttpsTls> https_;
  std::shared_ptr<const AcmeTls> acme_;
};

asio::awaitable<void> https_session(std::shared_ptr<EdgeShared> shared, asio::ip::tcp::socket sock,
                                    ClientPeer peer);
asio::awaitable<void> http_redirect_session(std::shared_ptr<EdgeShared> shared,
                                            asio::ip::tcp::socket sock, ClientPeer peer);
asio::awaitable<void> admin_session(std::shared_ptr<EdgeShared> shared, asio::ip::tcp::socket sock);

}  // namespace hearth::edge
