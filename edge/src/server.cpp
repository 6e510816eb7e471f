// hearth-edge process: workers, listeners, tunnel handshakes, admin, signals.

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <thread>

#include "acme_glue.hpp"
#include "hearth/common/error_text.hpp"
#include "hearth/common/log.hpp"
#include "hearth/common/sd_notify.hpp"
#include "hearth/common/workers.hpp"
#include "hearth/config/pairing.hpp"
#include "hearth/config/parse.hpp"
#include "hearth/edge/conn_limits.hpp"
#include "hearth/edge/edge.hpp"
#include "hearth/edge/http_rules.hpp"
#include "hearth/tunnel/handshake.hpp"
#include "reload.hpp"
#include "service.hpp"
#include "shared.hpp"
#include "support/asio.hpp"
#include "tls/alpn.hpp"
#include "tls/proxy_header.hpp"
#include "tls_policy.hpp"
#include "wireguard.hpp"

namespace hearth::edge {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

int select_certificate(SSL* ssl, int*, void* arg) {
  auto* tls = static_cast<HttpsTls*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  for (const auto& e : tls->entries) {
    if (e.leaf && X509_check_host(e.leaf, name, 0, 0, nullptr) == 1) {
      SSL_set_SSL_CTX(ssl, e.ctx->native_handle());
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

tcp::endpoint resolve_listen(const config::Endpoint& ep) {
  error_code ec;
  auto addr = asio::ip::make_address(ep.host == "*" ? "0.0.0.0" : ep.host, ec);
  if (ec) {
    // A name: resolve once at start-up.
    asio::io_context io;
    tcp::resolver r(io);
    auto results = r.resolve(ep.host, std::to_string(ep.port));
    return *results.begin();
  }
  return {addr, ep.port};
}

}  // namespace

std::shared_ptr<HttpsTls> make_https_tls(const config::EdgeConfig& cfg,
                                         std::shared_ptr<const AcmeTls> acme) {
  auto tls = std::make_shared<HttpsTls>();
  for (const auto& c : cfg.certificates) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    try {
      ctx->use_certificate_chain_file(c.cert.string());
    } catch (const std::exception& e) {
      throw std::runtime_error(c.cert.string() +
                               ": cannot load certificate chain: " + error_text(e));
    }
    try {
      ctx->use_private_key_file(c.key.string(), asio::ssl::context::pem);
    } catch (const std::exception& e) {
      throw std::runtime_error(c.key.string() + ": cannot load private key: " + error_text(e));
    }
    SSL_CTX_set_alpn_select_cb(ctx->native_handle(), select_alpn, alpn_offer(cfg.http2));
    X509* leaf = SSL_CTX_get0_certificate(ctx->native_handle());
    // Issue 9: an RSA and an ECDSA certificate for the same names share a context.
    auto same = std::find_if(tls->entries.begin(), tls->entries.end(), [&](const auto& e) {
      return is_alternate_certificate(e.ctx->native_handle(), e.leaf, leaf);
    });
    if (same != tls->entries.end()) {
      same->ctx->use_certificate_chain_file(c.cert.string());
      same->ctx->use_private_key_file(c.key.string(), asio::ssl::context::pem);
      continue;
    }
    apply_tls_policy(ctx->native_handle(), cfg);  // issue 9: Mozilla intermediate/modern
    tls->entries.push_back({ctx, leaf});
  }
  // Issue 12: managed certificates, with the same ALPN (h2 when enabled) and TLS policy.
  const std::size_t static_entries = tls->entries.size();
  add_acme_contexts(*tls, std::move(acme), select_alpn, alpn_offer(cfg.http2));
  for (std::size_t i = static_entries; i < tls->entries.size(); ++i) {
    apply_tls_policy(tls->entries[i].ctx->native_handle(), cfg);
  }
  if (tls->entries.empty()) throw std::runtime_error("no [[tls.certificates]] configured");
  for (auto& e : tls->entries) {
    SSL_CTX_set_tlsext_servername_callback(e.ctx->native_handle(), select_certificate);
    SSL_CTX_set_tlsext_servername_arg(e.ctx->native_handle(), tls.get());
  }
  return tls;
}

namespace {

class Edge {
 public:
  ~Edge() { alive_.reset(); }  // before any member: see admit_client
  explicit Edge(std::shared_ptr<const config::EdgeConfig> cfg)
      : shared_(std::make_shared<EdgeShared>()), signals_(control_) {
    shared_->swap(cfg, nullptr);
    AcmeService::apply(acme_, control_, shared_, *cfg);  // issue 12: stored certs, orders
    shared_->swap(cfg, make_https_tls(*cfg, shared_->acme()));
    shared_->registry.set_grants(grants_of(*cfg));
    shared_->metrics.request_stats.configure(configured_hostnames(*cfg));
    unsigned n = cfg->workers ? cfg->workers : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<asio::io_context>(1));
    worker_tunnels_ = std::make_unique<std::atomic<int>[]>(n);
    edge_key_ = config::load_or_create_edge_key(cfg->state_dir);
    tunnel_ctx_ = tunnel::make_tunnel_tls_context(true, edge_key_);
    if (cfg->wireguard) shared_->wireguard = std::make_shared<EdgeWireguard>(*cfg);  // issue 10
  }

  int run();

 private:
  asio::io_context& next_worker() { return *workers_[next_worker_++ % workers_.size()]; }
  // Tunnels go to the worker that has the fewest: client sessions prefer a
  // tunnel on their own worker (no cross-thread hop per stream operation), so
  // every worker should have one when there are enough.
  std::size_t tunnel_worker() {
    std::size_t n = workers_.size(), best = next_tunnel_worker_++ % n;
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t i = (best + k) % n;
      if (worker_tunnels_[i].load() < worker_tunnels_[best].load()) best = i;
    }
    return best;
  }
  bool listen(tcp::acceptor& acc, const config::Endpoint& ep, std::string_view kind);
  asio::awaitable<void> accept_loop(tcp::acceptor& acc, int kind);
  void start_client(tcp::socket sock, int kind);  // issue 9: limits, then a worker
  // Issue 9: a trusted load balancer's PROXY header, read on the control thread.
  asio::awaitable<void> proxied_client(tcp::socket sock, int kind, ClientPeer peer);
  void admit_client(tcp::socket sock, int kind, const asio::ip::address& address, ClientPeer peer);
  asio::awaitable<void> tunnel_session(tcp::socket sock, std::size_t worker);
  asio::awaitable<void> reject(tunnel::TlsStream& tls, std::string peer, std::string origin,
                               std::string reason);
  std::map<std::string, std::vector<std::string>> authorized_origins(
      const std::filesystem::path& state_dir);
  void on_signal(error_code ec, int sig);
  void schedule_ticket_key_rotation();  // issue 9: session_tickets keys live < 24 h
  void reload();
  void begin_drain();
  void drain_tick(std::chrono::steady_clock::time_point deadline);
  void stop_all();

  std::shared_ptr<EdgeShared> shared_;
  // Workers are declared first so they are destroyed last: the control
  // context's pending accepts hold sockets bound to worker contexts, and
  // destroying those operations must find the workers' services alive.
  std::vector<std::unique_ptr<asio::io_context>> workers_;
  asio::io_context control_{1};
  std::size_t next_worker_ = 0;
  std::size_t next_tunnel_worker_ = 0;
  std::unique_ptr<std::atomic<int>[]> worker_tunnels_;  // tunnel sessions per worker
  asio::signal_set signals_;
  std::string edge_key_;
  std::shared_ptr<asio::ssl::context> tunnel_ctx_;
  std::unique_ptr<tcp::acceptor> https_acc_, http_acc_, tunnel_acc_, admin_acc_;
  std::unique_ptr<asio::steady_timer> drain_timer_;
  std::unique_ptr<asio::steady_timer> stop_timer_;
  std::unique_ptr<asio::steady_timer> ticket_timer_;
  std::mutex authorized_mu_;
  std::map<std::string, std::vector<std::string>> last_authorized_;
  std::unique_ptr<sd::Watchdog> watchdog_;  // systemd: STATUS= and WATCHDOG=1
  std::unique_ptr<AcmeService> acme_;       // issue 12; null without [acme]
  ConnectionLimiter limiter_;               // control thread only
  // Admissions hold it weakly (admit_client); reset first thing in ~Edge.
  std::shared_ptr<Edge*> alive_ = std::make_shared<Edge*>(this);
  std::chrono::steady_clock::time_point refused_logged_{};
  std::uint64_t refused_unlogged_ = 0;
};

// Read on every handshake so `invite` needs no reload. When the state files
// cannot be read (a half-edited pins file), keep using the last good set
// rather than locking every origin out.
std::map<std::string, std::vector<std::string>> Edge::authorized_origins(
    const std::filesystem::path& state_dir) {
  std::lock_guard lock(authorized_mu_);
  try {
    last_authorized_ = config::load_authorized_origins(state_dir);
  } catch (const std::exception& e) {
    log::error("state.read_failed",
               {{"error", error_text(e)}, {"kept", "last good authorized keys"}});
  }
  return last_authorized_;
}

bool Edge::listen(tcp::acceptor& acc, const config::Endpoint& ep, std::string_view kind) {
  try {
    auto endpoint = resolve_listen(ep);
    acc.open(endpoint.protocol());
    acc.set_option(asio::socket_base::reuse_address(true));
    acc.bind(endpoint);
    acc.listen(asio::socket_base::max_listen_connections);
    auto local = acc.local_endpoint();
    std::string addr = (local.address().is_v6() ? "[" + local.address().to_string() + "]"
                                                : local.address().to_string()) +
                       ":" + std::to_string(local.port());
    log::info("listening", {{"kind", kind}, {"addr", addr}});
    return true;
  } catch (const std::exception& e) {
    log::error("listen.failed",
               {{"kind", kind}, {"addr", ep.to_string()}, {"error", error_text(e)}});
    return false;
  }
}

enum Kind { kHttps, kHttp, kTunnel, kAdmin };

asio::awaitable<void> Edge::accept_loop(tcp::acceptor& acc, int kind) {
  for (;;) {
    std::size_t tunnel_idx = kind == kTunnel ? tunnel_worker() : 0;
    // Client connections are accepted here and moved to their worker by start_client.
    auto& worker = kind == kAdmin || kind == kHttps || kind == kHttp ? control_
                   : kind == kTunnel                                 ? *workers_[tunnel_idx]
                                                                     : next_worker();
    auto [ec, sock] = co_await acc.async_accept(worker, tuple_awaitable);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
      log::warn("accept.failed", {{"error", ec.message()}});
      // EMFILE and friends: back off briefly instead of spinning.
      asio::steady_timer t(control_, std::chrono::milliseconds(100));
      co_await t.async_wait(tuple_awaitable);
      continue;
    }
    if (kind == kHttps || kind == kHttp) {
      start_client(std::move(sock), kind);
      continue;
    }
    auto ex = sock.get_executor();
    switch (kind) {
      case kTunnel:
        worker_tunnels_[tunnel_idx].fetch_add(1);
        asio::co_spawn(ex, tunnel_session(std::move(sock), tunnel_idx), log_exception);
        break;
      case kAdmin:
        asio::co_spawn(ex, admin_session(shared_, std::move(sock)), log_exception);
        break;
    }
  }
}

// Issue 9: the connection limits (conn_limits.hpp) before any TLS work, then
// the next worker in turn (the request policies' buckets are shared by all).
void Edge::start_client(tcp::socket sock, int kind) {
  const auto cfg = shared_->config();
  error_code ec;
  const auto peer = sock.remote_endpoint(ec);
  if (ec) return;
  const auto& trust = kind == kHttps ? cfg->https_trust : cfg->http_trust;
  ClientPeer who{client_ip_string(peer.address()), peer.port(),
                 trust.trusts(policy::client_info(peer.address()).address), false, nullptr};
  if (trust.proxy_protocol) {
    if (who.trusted) {
      // The balancer's header names the client: read it first, so the limits
      // and the worker choice below count the client, not the balancer.
      asio::co_spawn(control_, proxied_client(std::move(sock), kind, std::move(who)),
                     log_exception);
      return;
    }
    who.refuse_proxy_header = true;  // anyone else claiming an address is closed
  }
  admit_client(std::move(sock), kind, peer.address(), std::move(who));
}

asio::awaitable<void> Edge::proxied_client(tcp::socket sock, int kind, ClientPeer peer) {
  const auto read = co_await read_proxy_header(sock, shared_->config()->handshake_timeout);
  if (read.result == ProxyRead::Result::refused) {
    note_proxy_refused(*shared_, peer.ip, read.error);
    error_code ignored;
    sock.close(ignored);
    co_return;
  }
  error_code ec;
  auto address = sock.remote_endpoint(ec).address();
  if (ec) co_return;
  if (read.result == ProxyRead::Result::header && !read.header.local) {
    // The HTTP peer is now the client; it is trusted only if it is a proxy too.
    const auto cfg = shared_->config();
    const auto& trust = kind == kHttps ? cfg->https_trust : cfg->http_trust;
    address = read.header.source.address;
    peer.ip = client_ip_string(address);
    peer.port = read.header.source.port;
    peer.trusted = trust.trusts(policy::client_info(address).address);
  }
  admit_client(std::move(sock), kind, address, std::move(peer));
}

void Edge::admit_client(tcp::socket sock, int kind, const asio::ip::address& address,
                        ClientPeer who) {
  const auto cfg = shared_->config();
  error_code ec;
  const auto key = policy::client_info(address).key;
  limiter_.set_limits({cfg->max_connections, cfg->max_connections_per_ip,
                       cfg->connection_rate_per_ip, cfg->max_connection_rate,
                       cfg->max_tracked_clients});
  const auto now = std::chrono::steady_clock::now();
  const auto verdict = limiter_.admit(key, now);
  shared_->metrics.connection_table_entries.store(static_cast<std::int64_t>(limiter_.tracked()));
  if (verdict != AcceptVerdict::accept) {
    shared_->metrics.connections_rejected.fetch_add(1);
    shared_->metrics.connections_refused[static_cast<std::size_t>(verdict)].fetch_add(1);
    ++refused_unlogged_;
    if (now - refused_logged_ >= std::chrono::seconds(1)) {  // at most one line a second
      log::warn("accept.refused", {{"client", who.ip},
                                   {"limit", to_string(verdict)},
                                   {"refused_since_last_line", refused_unlogged_}});
      refused_logged_ = now;
      refused_unlogged_ = 0;
    }
    sock.close(ec);
    return;
  }
  // Any worker: a client's rate buckets are in the shared PolicyTable, so its
  // connections spread like everyone else's (pinning them by address put a
  // single busy client, or a benchmark, on one core).
  auto& worker = next_worker();
  const auto protocol = sock.local_endpoint(ec).protocol();
  const auto fd = sock.release(ec);
  tcp::socket moved(worker);
  if (!ec) moved.assign(protocol, fd, ec);
  // The place is given back on the control thread when the last holder of
  // who.admission lets go: the session, or an upgraded pipe that outlives it
  // (h1/upgraded_pipe.cpp). Once the Edge is being destroyed (worker
  // contexts dropping their pending sessions) there is nothing to give back to.
  struct Admission {
    std::weak_ptr<Edge*> edge;
    policy::ClientKey key;
    ~Admission() {
      auto alive = edge.lock();
      if (!alive) return;
      Edge* e = *alive;
      asio::post(e->control_, [e, key = key] {
        e->limiter_.release(key, std::chrono::steady_clock::now());
        e->shared_->metrics.connection_table_entries.store(
            static_cast<std::int64_t>(e->limiter_.tracked()));
      });
    }
  };
  auto admission = std::make_shared<Admission>();  // in place: a copy's destructor would release
  admission->edge = alive_;
  admission->key = key;
  who.admission = std::move(admission);
  if (ec) return;
  if (kind == kHttps) {
    asio::co_spawn(worker, https_session(shared_, std::move(moved), std::move(who)), log_exception);
  } else {
    asio::co_spawn(worker, http_redirect_session(shared_, std::move(moved), std::move(who)),
                   log_exception);
  }
}

// Parameters by value (house rule for coroutines): the frame owns them.
asio::awaitable<void> Edge::reject(tunnel::TlsStream& tls, std::string peer, std::string origin,
                                   std::string reason) {
  shared_->metrics.tunnels_refused.fetch_add(1);
  log::warn("tunnel.refused", {{"peer", peer}, {"origin", origin}, {"reason", reason}});
  auto payload = tunnel::encode_reason(reason);
  tls.expires_after(std::chrono::seconds(5));
  co_await tunnel::write_one_frame(tls, tunnel::FrameType::reject, payload);
  co_await tls.async_shutdown(tuple_awaitable);
}

asio::awaitable<void> Edge::tunnel_session(tcp::socket sock, std::size_t worker) {
  struct Count {
    std::atomic<int>& n;
    ~Count() { n.fetch_sub(1); }
  } count{worker_tunnels_[worker]};
  auto cfg = shared_->config();
  error_code ec;
  auto rep = sock.remote_endpoint(ec);
  std::string peer = ec ? "?" : client_ip_string(rep.address()) + ":" + std::to_string(rep.port());
  auto io_ex = sock.get_executor().target<asio::io_context::executor_type>();
  if (!io_ex) co_return;
  auto exec = *io_ex;
  sock.set_option(tcp::no_delay(true), ec);
  tunnel::TlsStream tls(std::move(sock), tunnel_ctx_->native_handle(), TlsSocket::Buffers::keep);
  tls.expires_after(cfg->handshake_timeout);
  auto [hec] = co_await tls.async_handshake(asio::ssl::stream_base::server, tuple_awaitable);
  if (hec) {
    shared_->metrics.tunnels_refused.fetch_add(1);
    log::warn("tunnel.refused",
              {{"peer", peer}, {"reason", "TLS handshake failed: " + hec.message()}});
    co_return;
  }
  auto pin = tunnel::peer_pin(tls);
  if (!pin) {
    co_await reject(tls, peer, "", "no client certificate");
    co_return;
  }
  beast::flat_buffer buf;
  tunnel::RawFrame frame;
  auto rec = co_await tunnel::read_one_frame(tls, buf, frame);
  if (rec || frame.header.type != tunnel::FrameType::hello) {
    shared_->metrics.tunnels_refused.fetch_add(1);
    log::warn("tunnel.refused",
              {{"peer", peer}, {"reason", rec ? "no HELLO: " + rec.message() : "expected HELLO"}});
    co_return;
  }
  auto hello = tunnel::decode_hello(frame.payload);
  if (!hello) {
    co_await reject(tls, peer, "", "malformed HELLO");
    co_return;
  }
  // A newer origin is answered in our version (it falls back); an older one in its own.
  const auto version = std::min(hello->version, max_tunnel_version());
  if (max_tunnel_version() == tunnel::kProtocolVersion1 && hello->version != version) {
    // Exactly what a version-1 edge answers (compatibility tests).
    co_await reject(tls, peer, hello->origin_name,
                    "unsupported protocol version " + std::to_string(hello->version));
    co_return;
  }
  const config::OriginGrant* grant = nullptr;
  for (const auto& g : cfg->origins) {
    if (g.name == hello->origin_name) grant = &g;
  }
  if (!grant) {
    co_await reject(tls, peer, hello->origin_name,
                    "origin '" + hello->origin_name + "' is not listed in [[origins]]");
    co_return;
  }
  // Authorized keys are read on every handshake: `invite` needs no reload.
  auto authorized = authorized_origins(cfg->state_dir);
  bool key_ok = false;
  for (const auto& p : authorized[hello->origin_name]) {
    if (crypto::pins_equal(p, *pin)) key_ok = true;
  }
  if (!key_ok) {
    co_await reject(tls, peer, hello->origin_name,
                    "key " + *pin + " is not authorized for origin '" + hello->origin_name +
                        "' (run: hearth-edge invite " + hello->origin_name + ")");
    co_return;
  }
  // Partial publish: a route whose hostname is not allowed is refused alone.
  // A version-1 origin cannot hear which; when it gets nothing at all it is
  // refused as before, so its log says why.
  auto filtered = filter_routes(from_hello(hello->routes), grant->hostnames, hello->origin_name);
  if (version < 2 && filtered.served.empty() && !filtered.refused.empty()) {
    std::string denied;
    for (const auto& r : filtered.refused) {
      if (denied.find(r.host) == std::string::npos) denied += (denied.empty() ? "" : ", ") + r.host;
    }
    co_await reject(tls, peer, hello->origin_name,
                    "hostnames not allowed for origin '" + hello->origin_name + "': " + denied);
    co_return;
  }
  config::record_last_seen(cfg->state_dir, hello->origin_name, peer);

  std::uint64_t id = shared_->next_id.fetch_add(1);
  tunnel::Welcome welcome{
      .version = version,
      .edge_id = "edge",
      .keepalive_interval_ms = static_cast<std::uint32_t>(cfg->keepalive_interval.count()),
      .refused = filtered.refused};
  auto wp = tunnel::encode_payload(welcome);
  auto wec = co_await tunnel::write_one_frame(tls, tunnel::FrameType::welcome, wp);
  if (wec) {
    log::warn("tunnel.refused", {{"peer", peer}, {"reason", "WELCOME failed: " + wec.message()}});
    co_return;
  }

  tunnel::ConnectionOptions opts;
  opts.keepalive_interval = cfg->keepalive_interval;
  opts.keepalive_timeout = cfg->keepalive_timeout;
  opts.opener = true;
  opts.log_id = "t" + std::to_string(id);
  auto conn = std::make_shared<tunnel::Connection>(exec, std::move(tls), std::move(buf), opts);
  auto info = std::make_shared<TunnelInfo>();
  info->id = id;
  info->origin = hello->origin_name;
  info->peer = peer;
  info->connection_index = hello->connection_index;
  info->requested = from_hello(hello->routes);
  info->pin = *pin;
  info->version = version;
  info->conn = conn;
  info->since = std::chrono::system_clock::now();
  std::string routes;
  for (const auto& r : hello->routes) routes += (routes.empty() ? "" : ",") + r.host + r.path;
  auto shared = shared_;
  std::string origin = hello->origin_name;
  if (version >= 2) conn->set_control_handler(publish_handler(shared_, id, conn));
  conn->start(nullptr, [shared, id, origin, peer](const std::string& reason) {
    shared->registry.remove(id);
    log::info("tunnel.down", {{"conn", "t" + std::to_string(id)},
                              {"origin", origin},
                              {"peer", peer},
                              {"reason", reason}});
  });
  auto stored = shared_->registry.add(info);
  if (shared_->draining.load()) conn->go_away("edge is draining");
  log::info("tunnel.up", {{"conn", opts.log_id},
                          {"origin", hello->origin_name},
                          {"peer", peer},
                          {"index", hello->connection_index},
                          {"software", hello->software},
                          {"version", version},
                          {"routes", routes}});
  log_refused(*stored, "hello");
}

void Edge::reload() {
  auto old = shared_->config();
  auto result = config::load_edge_config(old->source);
  if (!result.config) {
    for (const auto& p : result.problems)
      log::error("reload.problem", {{"problem", p.to_string()}});
    log::error("reload.failed", {{"file", old->source.string()}, {"kept", "previous config"}});
    return;
  }
  auto cfg = std::make_shared<const config::EdgeConfig>(std::move(*result.config));
  std::shared_ptr<HttpsTls> tls;
  try {
    AcmeService::apply(acme_, control_, shared_, *cfg);  // issue 12: order new hostnames
    tls = make_https_tls(*cfg, shared_->acme());
  } catch (const std::exception& e) {
    log::error("reload.failed", {{"error", e.what()}, {"kept", "previous config"}});
    return;
  }
  shared_->swap(cfg, tls);
  apply_reload(*shared_, *cfg, authorized_origins(cfg->state_dir), control_);
  shared_->metrics.request_stats.configure(configured_hostnames(*cfg));
  log::info("reload.done", {{"file", cfg->source.string()},
                            {"certificates", cfg->certificates.size()},
                            {"origins", cfg->origins.size()}});
}

// New HTTPS contexts (so new session-ticket keys) every 12 h; connections in
// progress keep theirs. With session_tickets = false there is nothing to rotate.
void Edge::schedule_ticket_key_rotation() {
  ticket_timer_ = std::make_unique<asio::steady_timer>(control_, std::chrono::hours(12));
  ticket_timer_->async_wait([this](error_code ec) {
    if (ec || shared_->draining.load()) return;
    auto cfg = shared_->config();
    if (cfg->session_tickets) {
      try {
        shared_->swap(cfg, make_https_tls(*cfg));
        log::info("tls.ticket_keys_rotated");
      } catch (const std::exception& e) {
        log::error("tls.ticket_keys_rotation_failed", {{"error", e.what()}});
      }
    }
    schedule_ticket_key_rotation();
  });
}

void Edge::on_signal(error_code ec, int sig) {
  if (ec) return;
  if (sig == SIGHUP) {
    sd::notify("RELOADING=1\n" + sd::monotonic_usec());
    reload();
    sd::notify("READY=1");
    if (watchdog_) watchdog_->status_now();
    signals_.async_wait([this](error_code e, int s) { on_signal(e, s); });
    return;
  }
  log::info("signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  begin_drain();
}

void Edge::begin_drain() {
  if (shared_->draining.exchange(true)) return;
  sd::notify("STOPPING=1\nSTATUS=" + service_status(*shared_));
  error_code ignored;
  for (auto* acc : {https_acc_.get(), http_acc_.get(), tunnel_acc_.get()}) {
    if (acc) acc->close(ignored);
  }
  // Origins hear GOAWAY: no new streams; in-flight ones finish.
  auto snap = shared_->registry.snapshot();
  for (const auto& t : snap->tunnels) t->conn->go_away("edge is shutting down");
  auto deadline = std::chrono::steady_clock::now() + shared_->config()->drain_timeout;
  log::info("drain.start", {{"in_flight", shared_->metrics.requests_in_flight.load()},
                            {"timeout_ms", shared_->config()->drain_timeout.count()}});
  drain_timer_ = std::make_unique<asio::steady_timer>(control_);
  drain_tick(deadline);
}

void Edge::drain_tick(std::chrono::steady_clock::time_point deadline) {
  auto in_flight = shared_->metrics.requests_in_flight.load();
  auto ws = shared_->metrics.websockets_active.load();
  // HTTP/2 connections close themselves once their GOAWAY is out and their streams are done.
  auto h2 = shared_->metrics.h2_connections.load();
  if ((in_flight == 0 && ws == 0 && h2 == 0) || std::chrono::steady_clock::now() >= deadline) {
    log::info("drain.done", {{"in_flight", in_flight}, {"websockets", ws}});
    stop_all();
    return;
  }
  drain_timer_->expires_after(std::chrono::milliseconds(50));
  drain_timer_->async_wait([this, deadline](error_code ec) {
    if (!ec) drain_tick(deadline);
  });
}

void Edge::stop_all() {
  auto snap = shared_->registry.snapshot();
  for (const auto& t : snap->tunnels) t->conn->close("edge stopped");
  error_code ignored;
  if (admin_acc_) admin_acc_->close(ignored);
  signals_.cancel(ignored);
  if (ticket_timer_) ticket_timer_->cancel();
  // Give the closes a moment to reach the sockets before the workers stop.
  stop_timer_ = std::make_unique<asio::steady_timer>(control_, std::chrono::milliseconds(50));
  stop_timer_->async_wait([this](error_code) {
    for (auto& w : workers_) w->stop();
    control_.stop();
  });
}

int Edge::run() {
  auto cfg = shared_->config();
  https_acc_ = std::make_unique<tcp::acceptor>(control_);
  tunnel_acc_ = std::make_unique<tcp::acceptor>(control_);
  if (!listen(*https_acc_, cfg->listen_https, "https")) return 2;
  shared_->https_port = https_acc_->local_endpoint().port();
  if (!listen(*tunnel_acc_, cfg->listen_tunnel, "tunnel")) return 2;
  if (cfg->listen_http) {
    http_acc_ = std::make_unique<tcp::acceptor>(control_);
    if (!listen(*http_acc_, *cfg->listen_http, "http")) return 2;
  }
  if (cfg->listen_admin) {
    admin_acc_ = std::make_unique<tcp::acceptor>(control_);
    if (!listen(*admin_acc_, *cfg->listen_admin, "admin")) return 2;
  }
  asio::co_spawn(control_, accept_loop(*https_acc_, kHttps), log_exception);
  asio::co_spawn(control_, accept_loop(*tunnel_acc_, kTunnel), log_exception);
  if (http_acc_) asio::co_spawn(control_, accept_loop(*http_acc_, kHttp), log_exception);
  if (admin_acc_) asio::co_spawn(control_, accept_loop(*admin_acc_, kAdmin), log_exception);

  schedule_ticket_key_rotation();
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  signals_.async_wait([this](error_code e, int s) { on_signal(e, s); });

  auto pin = crypto::pin_of_private_key_pem(edge_key_);
  log::info("edge.started", {{"workers", workers_.size()},
                             {"edge_pin", pin ? *pin : "?"},
                             {"config", cfg->source.string()}});

  // systemd (Type=notify): ready once every listener is bound.
  watchdog_ = std::make_unique<sd::Watchdog>(control_, workers_,
                                             [this] { return service_status(*shared_); });
  if (shared_->wireguard) shared_->wireguard->start(control_, shared_.get());
  sd::notify("READY=1");
  watchdog_->start();

  run_contexts(control_, workers_);
  watchdog_.reset();
  if (shared_->wireguard) shared_->wireguard->shutdown();  // removes the link unless persist
  shared_->registry.clear();
  log::info("edge.stopped");
  return 0;
}

}  // namespace

int run(std::shared_ptr<const config::EdgeConfig> config) {
  std::unique_ptr<Edge> edge;
  try {
    edge = std::make_unique<Edge>(std::move(config));
  } catch (const std::exception& e) {
    log::error("edge.start_failed", {{"error", error_text(e)}});
    return 2;
  }
  return edge->run();
}

}  // namespace hearth::edge
