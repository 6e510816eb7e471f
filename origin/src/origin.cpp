// hearth-origin process: dials N tunnel connections out to the edge, keeps
// them up (backoff with full jitter), and connects each stream the edge opens
// to the local service its route names.

#include "hearth/origin/origin.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "hearth/common/admin.hpp"
#include "hearth/common/crypto.hpp"
#include "hearth/common/dashboard.hpp"
#include "hearth/common/error_text.hpp"
#include "hearth/common/log.hpp"
#include "hearth/common/process_metrics.hpp"
#include "hearth/common/proxy_protocol.hpp"
#include "hearth/common/route_match.hpp"
#include "hearth/common/sd_notify.hpp"
#include "hearth/common/version.hpp"
#include "hearth/common/workers.hpp"
#include "hearth/config/parse.hpp"
#include "hearth/origin/health.hpp"
#include "hearth/tunnel/handshake.hpp"
#include "hearth/tunnel/mux.hpp"
#include "wireguard.hpp"

namespace hearth::origin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
// The most a pipe step moves: a busy download reads the service 64 KiB at a
// time (a quarter of the reads, writes and coroutine round trips of 16 KiB).
constexpr std::size_t kPipeChunk = 64 * 1024;
// Pipe buffers start small and double while reads fill them: most WebSockets
// are idle most of the time.
constexpr std::size_t kPipeInitial = 512;
// A connection that stayed up this long resets the reconnect backoff.
constexpr auto kHealthyPeriod = std::chrono::seconds(5);
// How long a drained tunnel waits for the edge to close after our FIN.
constexpr auto kLinger = std::chrono::milliseconds(2000);

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log::error("session.bug", {{"what", ex.what()}});
  }
}

// Signals the end of one tunnel connection to the dialer waiting on it.
struct CloseWaiter {
  explicit CloseWaiter(asio::any_io_executor ex) : timer(ex) {
    timer.expires_at(std::chrono::steady_clock::time_point::max());
  }
  asio::steady_timer timer;
  std::string reason;
};

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
  }
  return out + "\"";
}

// The routes in force and the config they point into (a reload swaps both).
struct RouteSet {
  std::shared_ptr<const config::OriginConfig> cfg;
  RouteTable<const config::Route*> table;
};

std::shared_ptr<const RouteSet> make_route_set(std::shared_ptr<const config::OriginConfig> cfg) {
  auto rs = std::make_shared<RouteSet>();
  rs->cfg = std::move(cfg);
  for (const auto& r : rs->cfg->routes) rs->table.add(r.host, r.path, &r);
  return rs;
}

// Per tunnel connection index: what the edge said about it.
struct LinkState {
  std::uint16_t version = 0;                  // 0: not up
  std::vector<tunnel::RefusedRoute> refused;  // from WELCOME / the last PUBLISHED
  bool dialing = false;                       // a dial loop runs for this index
};

class Origin {
 public:
  explicit Origin(std::shared_ptr<const config::OriginConfig> cfg)
      : cfg_(std::move(cfg)), signals_(control_) {
    unsigned n = cfg_->workers ? cfg_->workers : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<asio::io_context>(1));
    tunnel_ctx_ = tunnel::make_tunnel_tls_context(false, cfg_->key_pem);
    service_tls_ = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    service_tls_verify_ = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    service_tls_verify_->set_default_verify_paths();
    service_tls_verify_->set_verify_mode(asio::ssl::verify_peer);
    routes_ = make_route_set(cfg_);
    conns_.resize(cfg_->connections);
    links_.resize(cfg_->connections);
    health_ =
        std::make_unique<HealthMonitor>(control_.get_executor(), [this] { publish_all("health"); });
    since_.resize(cfg_->connections);
    if (cfg_->wireguard) wireguard_ = std::make_unique<OriginWireguard>(*cfg_);  // issue 10
  }

  int run();

 private:
  asio::awaitable<void> dial_loop(unsigned index, asio::io_context::executor_type ex);
  asio::awaitable<bool> connect_once(unsigned index, asio::io_context::executor_type ex);
  asio::awaitable<config::Endpoint> dial_target(asio::io_context::executor_type ex);
  asio::awaitable<void> handle_stream(tunnel::TunnelStream ts, tunnel::Open meta);
  template <class Service>
  asio::awaitable<void> pipe(tunnel::TunnelStream& ts, Service& svc, bool websocket,
                             std::chrono::milliseconds idle);
  template <class Service>
  asio::awaitable<void> tunnel_to_service(tunnel::TunnelStream& ts, Service& svc, bool websocket);
  template <class Service>
  asio::awaitable<void> service_to_tunnel(tunnel::TunnelStream& ts, Service& svc, bool websocket,
                                          std::chrono::milliseconds idle);
  admin::Response admin_response(std::string_view path);
  // Live reload (issue 13), on the control thread.
  std::shared_ptr<const config::OriginConfig> config() const {
    std::lock_guard lock(cfg_mu_);
    return cfg_;
  }
  std::shared_ptr<const RouteSet> routes() const {
    std::lock_guard lock(cfg_mu_);
    return routes_;
  }
  void reload();
  void set_connections(unsigned n);
  tunnel::Publish make_publish(const config::OriginConfig& cfg);
  void publish_all(std::string_view why);
  void roll_v1_tunnels(std::vector<unsigned> indices);
  void on_published(unsigned index, tunnel::Published p);
  void log_refused(unsigned index, const std::vector<tunnel::RefusedRoute>& refused);
  std::string routes_json();
  std::string health_metrics();
  asio::awaitable<void> admin_loop(tcp::acceptor& acc);
  void on_signal(error_code ec, int sig);
  void begin_drain();
  void stop_all(bool drained = false);
  void stop_when_closed(std::vector<std::shared_ptr<tunnel::Connection>> conns,
                        std::chrono::steady_clock::time_point deadline);

  mutable std::mutex cfg_mu_;  // guards cfg_ and routes_ (swapped by reload)
  std::shared_ptr<const config::OriginConfig> cfg_;
  std::shared_ptr<const RouteSet> routes_;
  // Workers are declared first so they are destroyed last: the control
  // context's pending accepts hold sockets bound to worker contexts, and
  // destroying those operations must find the workers' services alive.
  std::vector<std::unique_ptr<asio::io_context>> workers_;
  asio::io_context control_{1};
  asio::signal_set signals_;
  std::shared_ptr<asio::ssl::context> tunnel_ctx_;
  std::shared_ptr<asio::ssl::context> service_tls_;
  std::shared_ptr<asio::ssl::context> service_tls_verify_;
  std::unique_ptr<tcp::acceptor> admin_acc_;
  std::unique_ptr<HealthMonitor> health_;  // on control_

  std::mutex mu_;  // guards conns_ and links_ (control plane only)
  std::vector<std::shared_ptr<tunnel::Connection>> conns_;
  std::vector<LinkState> links_;
  std::atomic<std::uint32_t> publish_seq_{0};
  // A version-1 edge refuses a version-2 HELLO: then speak 1 until a tunnel drops.
  std::atomic<std::uint16_t> hello_version_{tunnel::kProtocolVersion};
  std::vector<std::chrono::system_clock::time_point> since_;  // when conns_[i] came up
  // Bytes of closed tunnels, so hearth_bytes_total never goes down (guarded by mu_).
  std::uint64_t closed_bytes_in_ = 0, closed_bytes_out_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> live_{0};
  std::atomic<std::uint64_t> streams_total_{0};
  std::atomic<std::uint64_t> streams_failed_{0};
  std::unique_ptr<asio::steady_timer> drain_timer_;
  std::unique_ptr<sd::Watchdog> watchdog_;  // systemd: STATUS= and WATCHDOG=1
  std::string service_status();
  std::unique_ptr<OriginWireguard> wireguard_;  // [wireguard] (issue 10)
};

// tunnel_over_wireguard (issue 10): the edge's WireGuard address once the link has a fresh
// handshake (waiting up to connect_timeout for the first one), else the public address.
asio::awaitable<config::Endpoint> Origin::dial_target(asio::io_context::executor_type ex) {
  auto cfg_ = config();  // a reload may swap the member meanwhile
  if (!cfg_->tunnel_over_wireguard || !wireguard_) co_return cfg_->edge;
  const auto deadline = std::chrono::steady_clock::now() + cfg_->connect_timeout;
  while (!wireguard_->healthy() && std::chrono::steady_clock::now() < deadline && !stopping_) {
    asio::steady_timer t(ex, std::chrono::milliseconds(100));
    co_await t.async_wait(tuple_awaitable);
  }
  if (wireguard_->healthy()) co_return wireguard_->tunnel_endpoint(cfg_->edge);
  log::warn("tunnel.wireguard_fallback",
            {{"edge", cfg_->edge.to_string()},
             {"detail", "the WireGuard link is not up: dialing the public address"}});
  co_return cfg_->edge;
}

asio::awaitable<void> Origin::dial_loop(unsigned index, asio::io_context::executor_type ex) {
  std::mt19937_64 rng(std::random_device{}() ^ (std::uint64_t{index} << 32));
  auto backoff = config()->reconnect_min;
  for (;;) {
    if (stopping_) co_return;
    if (index >= config()->connections) {  // a reload lowered `connections`
      std::lock_guard lock(mu_);
      links_[index].dialing = false;
      co_return;
    }
    auto started = std::chrono::steady_clock::now();
    bool was_up = co_await connect_once(index, ex);
    if (stopping_) co_return;
    auto cfg = config();
    if (was_up && std::chrono::steady_clock::now() - started >= kHealthyPeriod) {
      backoff = cfg->reconnect_min;
    }
    // Full jitter (AWS architecture blog): uniform in [0, backoff], so many
    // origins that lost the same edge do not come back in lock step.
    std::uniform_int_distribution<std::int64_t> dist(0, backoff.count());
    std::chrono::milliseconds delay(dist(rng));
    if (was_up && backoff == cfg->reconnect_min) delay = std::chrono::milliseconds(0);
    log::info("tunnel.retry", {{"index", index}, {"delay_ms", delay.count()}});
    asio::steady_timer t(ex, delay);
    co_await t.async_wait(tuple_awaitable);
    backoff = std::min(backoff * 2, cfg->reconnect_max);
  }
}

asio::awaitable<bool> Origin::connect_once(unsigned index, asio::io_context::executor_type ex) {
  auto cfg_ = config();  // this attempt's view (a reload may swap it meanwhile)
  const config::Endpoint target = co_await dial_target(ex);
  const std::string edge = target.to_string();
  const std::string conn_id = "o" + std::to_string(index);
  tcp::resolver resolver(ex);
  auto [rec, results] =
      co_await resolver.async_resolve(target.host, std::to_string(target.port), tuple_awaitable);
  if (rec) {
    log::warn("tunnel.connect_failed",
              {{"conn", conn_id}, {"edge", edge}, {"error", rec.message()}});
    co_return false;
  }
  beast::tcp_stream tcp_stream(ex);
  tcp_stream.expires_after(cfg_->connect_timeout);
  auto [cec, ep] = co_await tcp_stream.async_connect(results, tuple_awaitable);
  if (cec) {
    log::warn("tunnel.connect_failed",
              {{"conn", conn_id}, {"edge", edge}, {"error", cec.message()}});
    co_return false;
  }
  error_code ignored;
  tcp_stream.socket().set_option(tcp::no_delay(true), ignored);
  // The connect deadline also bounds the TLS handshake and the HELLO exchange.
  tunnel::TlsStream tls(tcp_stream.release_socket(), tunnel_ctx_->native_handle(),
                        TlsSocket::Buffers::keep);
  tls.expires_after(cfg_->connect_timeout);
  auto [hec] = co_await tls.async_handshake(asio::ssl::stream_base::client, tuple_awaitable);
  if (hec) {
    log::warn("tunnel.connect_failed",
              {{"conn", conn_id}, {"edge", edge}, {"error", "TLS handshake: " + hec.message()}});
    co_return false;
  }
  auto pin = tunnel::peer_pin(tls);
  if (!pin || !crypto::pins_equal(*pin, cfg_->edge_pin)) {
    log::error("tunnel.refused",
               {{"conn", conn_id},
                {"edge", edge},
                {"reason", "edge key pin " + (pin ? *pin : std::string("(none)")) +
                               " does not match edge_pin " + cfg_->edge_pin}});
    co_return false;
  }
  tunnel::Hello hello;
  hello.origin_name = cfg_->name;
  hello.software = std::string("hearth-origin/") + kVersion;
  hello.connection_index = index;
  hello.version = hello_version_.load();
  for (const auto& r : cfg_->routes) hello.routes.push_back({r.host, r.path});
  auto hp = tunnel::encode_payload(hello);
  auto wec = co_await tunnel::write_one_frame(tls, tunnel::FrameType::hello, hp);
  beast::flat_buffer buf;
  tunnel::RawFrame reply;
  error_code fec = wec;
  if (!fec) fec = co_await tunnel::read_one_frame(tls, buf, reply);
  if (fec) {
    log::warn("tunnel.connect_failed",
              {{"conn", conn_id}, {"edge", edge}, {"error", "handshake: " + fec.message()}});
    co_return false;
  }
  if (reply.header.type == tunnel::FrameType::reject) {
    auto reason = tunnel::decode_reason(reply.payload);
    // A version-1 edge: "unsupported protocol version 2". Speak 1 to it.
    if (reason && hello.version > tunnel::kProtocolVersion1 &&
        reason->rfind("unsupported protocol version", 0) == 0) {
      hello_version_.store(tunnel::kProtocolVersion1);
      log::warn("tunnel.version_fallback",
                {{"conn", conn_id},
                 {"edge", edge},
                 {"version", tunnel::kProtocolVersion1},
                 {"detail", "older edge: route changes reconnect tunnels one at a time"}});
      co_return false;
    }
    log::error("tunnel.refused", {{"conn", conn_id},
                                  {"edge", edge},
                                  {"reason", reason ? *reason : std::string("(unreadable)")}});
    co_return false;
  }
  auto welcome = reply.header.type == tunnel::FrameType::welcome
                     ? tunnel::decode_welcome(reply.payload)
                     : std::nullopt;
  if (!welcome || welcome->version > hello.version) {
    log::warn("tunnel.connect_failed",
              {{"conn", conn_id}, {"edge", edge}, {"error", "expected WELCOME"}});
    co_return false;
  }
  const std::uint16_t version = welcome->version;

  tunnel::ConnectionOptions opts;
  opts.keepalive_interval = cfg_->keepalive_interval;
  opts.keepalive_timeout = cfg_->keepalive_timeout;
  opts.opener = false;
  opts.log_id = conn_id;
  auto conn = std::make_shared<tunnel::Connection>(ex, std::move(tls), std::move(buf), opts);
  auto waiter = std::make_shared<CloseWaiter>(ex);
  if (version >= 2) {
    conn->set_control_handler([this, index](tunnel::FrameType type,
                                            std::span<const std::uint8_t> payload) {
      if (type != tunnel::FrameType::published) return false;
      auto p = tunnel::decode_published(payload);
      if (!p) return false;
      asio::post(control_,
                 [this, index, p = std::move(*p)]() mutable { on_published(index, std::move(p)); });
      return true;
    });
  }
  conn->start(
      [this](tunnel::TunnelStream ts, tunnel::Open meta) {
        auto stream_ex = ts.get_executor();
        asio::co_spawn(stream_ex, handle_stream(std::move(ts), std::move(meta)), log_exception);
      },
      [waiter](const std::string& reason) {
        waiter->reason = reason;
        waiter->timer.cancel();
      });
  {
    std::lock_guard lock(mu_);
    conns_[index] = conn;
    links_[index].version = version;
    links_[index].refused = welcome->refused;
    since_[index] = std::chrono::system_clock::now();
  }
  live_.fetch_add(1);
  log::info("tunnel.up", {{"conn", conn_id},
                          {"edge", edge},
                          {"index", index},
                          {"version", version},
                          {"refused", welcome->refused.size()}});
  if (!welcome->refused.empty()) log_refused(index, welcome->refused);
  // Health (and any reload since this HELLO was built) goes out in a PUBLISH.
  if (version >= 2) {
    asio::post(control_, [this, conn, hello_cfg = cfg_] {
      auto cfg = config();
      bool any_check = false;
      for (const auto& r : cfg->routes) any_check = any_check || !r.health_check.empty();
      if (cfg != hello_cfg || any_check) {
        conn->send_control(tunnel::FrameType::publish, tunnel::encode_payload(make_publish(*cfg)));
      }
    });
  }
  if (stopping_) conn->go_away("origin is shutting down");
  co_await waiter->timer.async_wait(tuple_awaitable);
  live_.fetch_sub(1);
  {
    std::lock_guard lock(mu_);
    if (conns_[index] == conn) {
      conns_[index].reset();
      links_[index].version = 0;
      links_[index].refused.clear();
    }
    closed_bytes_in_ += conn->bytes_in();
    closed_bytes_out_ += conn->bytes_out();
  }
  hello_version_.store(tunnel::kProtocolVersion);  // the edge may have been upgraded
  // Our own shutdown closing the tunnel is no warning (issue 13: a clean stop logs none).
  const auto level = stopping_ ? log::Level::info : log::Level::warn;
  if (log::enabled(level)) {
    log::write(level, "tunnel.down",
               {{"conn", conn_id}, {"edge", edge}, {"reason", waiter->reason}});
  }
  co_return true;
}

asio::awaitable<void> Origin::handle_stream(tunnel::TunnelStream ts, tunnel::Open meta) {
  streams_total_.fetch_add(1, std::memory_order_relaxed);
  auto ex = ts.get_executor();
  auto rs = routes();  // keeps the route (and its config) alive for this stream
  const auto& cfg_ = rs->cfg;
  const config::Route* const* route = rs->table.lookup(meta.host, meta.path);
  if (!route) {
    streams_failed_.fetch_add(1, std::memory_order_relaxed);
    log::warn("stream.no_route", {{"stream", ts.id()}, {"host", meta.host}, {"path", meta.path}});
    ts.reset(tunnel::ResetCode::no_route, "no route");
    co_return;
  }
  const config::Route& r = **route;
  const auto idle = meta.kind == tunnel::StreamKind::websocket ? cfg_->websocket_idle_timeout
                                                               : cfg_->idle_timeout;

  beast::tcp_stream svc(ex);
  error_code cec;
  svc.expires_after(cfg_->service_connect_timeout);
  // Services are nearly always addresses (127.0.0.1:3000): connect without a
  // trip through getaddrinfo on Asio's resolver thread.
  auto addr = asio::ip::make_address(r.service.host, cec);
  if (!cec) {
    std::tie(cec) =
        co_await svc.async_connect(tcp::endpoint(addr, r.service.port), tuple_awaitable);
  } else {
    tcp::resolver resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(
        r.service.host, std::to_string(r.service.port), tuple_awaitable);
    cec = rec;
    if (!cec) std::tie(cec, std::ignore) = co_await svc.async_connect(results, tuple_awaitable);
  }
  if (cec) {
    streams_failed_.fetch_add(1, std::memory_order_relaxed);
    auto code = cec == asio::error::connection_refused ? tunnel::ResetCode::refused
                                                       : tunnel::ResetCode::unreachable;
    log::warn("stream.service_failed",
              {{"stream", ts.id()}, {"service", r.service.to_string()}, {"error", cec.message()}});
    ts.reset(code, cec.message());
    co_return;
  }
  error_code ignored;
  svc.socket().set_option(tcp::no_delay(true), ignored);
  log::debug("stream.open", {{"stream", ts.id()},
                             {"host", meta.host},
                             {"path", meta.path},
                             {"client", meta.client},
                             {"service", r.service.to_string()}});
  const bool websocket = meta.kind == tunnel::StreamKind::websocket;
  if (r.proxy_protocol != 0) {  // issue 9: the real client first, before any TLS
    const auto peer = svc.socket().remote_endpoint(ignored);
    const auto header = proxy_protocol::header_for_client(r.proxy_protocol, meta.client,
                                                          {peer.address(), peer.port()});
    auto [wec, wn] = co_await asio::async_write(svc, asio::buffer(header), tuple_awaitable);
    if (wec) {
      streams_failed_.fetch_add(1, std::memory_order_relaxed);
      ts.reset(tunnel::ResetCode::unreachable, "PROXY header: " + wec.message());
      co_return;
    }
  }
  if (!r.service.tls) {
    co_await pipe(ts, svc, websocket, idle);
    co_return;
  }
  beast::ssl_stream<beast::tcp_stream> tls(std::move(svc),
                                           r.tls_verify ? *service_tls_verify_ : *service_tls_);
  if (r.tls_verify) {
    tls.set_verify_callback(asio::ssl::host_name_verification(r.service.host));
  }
  SSL_set_tlsext_host_name(tls.native_handle(), r.service.host.c_str());
  beast::get_lowest_layer(tls).expires_after(cfg_->service_connect_timeout);
  auto [hec] = co_await tls.async_handshake(asio::ssl::stream_base::client, tuple_awaitable);
  if (hec) {
    streams_failed_.fetch_add(1, std::memory_order_relaxed);
    log::warn("stream.service_failed", {{"stream", ts.id()},
                                        {"service", r.service.to_string()},
                                        {"error", "TLS: " + hec.message()}});
    ts.reset(tunnel::ResetCode::unreachable, "TLS handshake with the service failed");
    co_return;
  }
  co_await pipe(ts, tls, websocket, idle);
}

template <class Service>
asio::awaitable<void> Origin::pipe(tunnel::TunnelStream& ts, Service& svc, bool websocket,
                                   std::chrono::milliseconds idle) {
  co_await (tunnel_to_service(ts, svc, websocket) && service_to_tunnel(ts, svc, websocket, idle));
  error_code ignored;
  beast::get_lowest_layer(svc).socket().close(ignored);
  ts.close();
}

// Edge -> service. For HTTP the edge's FIN (end of request) is not passed on
// as a TCP half-close: some servers take a half-close for an aborted client,
// and the service learns where the request ends from HTTP framing. For a
// WebSocket it is: the client went away, and the service must learn it (else
// the connection lingers until websocket_idle_timeout), as nginx does.
template <class Service>
asio::awaitable<void> Origin::tunnel_to_service(tunnel::TunnelStream& ts, Service& svc,
                                                bool websocket) {
  std::vector<char> buf(kPipeInitial);
  for (;;) {
    auto [ec, n] = co_await ts.async_read_some(asio::buffer(buf), tuple_awaitable);
    if (ec) {
      if (ec != asio::error::eof) {
        beast::get_lowest_layer(svc).cancel();
      } else if (websocket) {
        error_code ignored;
        beast::get_lowest_layer(svc).socket().shutdown(tcp::socket::shutdown_send, ignored);
      }
      co_return;
    }
    beast::get_lowest_layer(svc).expires_never();
    auto [wec, wn] = co_await asio::async_write(svc, asio::buffer(buf.data(), n), tuple_awaitable);
    if (wec) {
      ts.reset(tunnel::ResetCode::cancel, "service write failed");
      co_return;
    }
    if (n == buf.size() && buf.size() < kPipeChunk) buf.resize(buf.size() * 2);
  }
}

template <class Service>
asio::awaitable<void> Origin::service_to_tunnel(tunnel::TunnelStream& ts, Service& svc,
                                                bool websocket, std::chrono::milliseconds idle) {
  std::vector<char> buf(kPipeInitial);
  for (;;) {
    beast::get_lowest_layer(svc).expires_after(idle);
    auto [ec, n] = co_await svc.async_read_some(asio::buffer(buf), tuple_awaitable);
    if (n > 0) {
      auto [wec, wn] = co_await asio::async_write(ts, asio::buffer(buf.data(), n), tuple_awaitable);
      if (wec) {
        beast::get_lowest_layer(svc).cancel();
        co_return;
      }
      if (n == buf.size() && buf.size() < kPipeChunk) buf.resize(buf.size() * 2);
    }
    if (ec) {
      // stream_truncated: a TLS service closed without close_notify; the
      // HTTP framing above tells the edge whether anything was cut short.
      if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
        ts.shutdown_send();
        // An HTTP service that closed is done with the stream, even if the
        // edge kept it open for a next request (keep-alive): end it, which
        // also ends tunnel_to_service's read (FIN, then RESET if the edge
        // still had its side open).
        if (!websocket) ts.close();
      } else {
        ts.reset(
            ec == beast::error::timeout ? tunnel::ResetCode::timeout : tunnel::ResetCode::cancel,
            ec.message());
      }
      co_return;
    }
  }
}

// The STATUS= line: "2 of 2 tunnels up to vps.example.com:7443, 3 streams", or
// "draining: 3 streams left".
std::string Origin::service_status() {
  std::size_t streams = 0;
  {
    std::lock_guard lock(mu_);
    for (const auto& c : conns_) {
      if (c) streams += c->active_streams();
    }
  }
  if (stopping_) return "draining: " + std::to_string(streams) + " streams left";
  return std::to_string(live_.load()) + " of " + std::to_string(cfg_->connections) +
         " tunnels up to " + cfg_->edge.to_string() + ", " + std::to_string(streams) + " streams";
}

admin::Response Origin::admin_response(std::string_view path) {
  admin::Response r;
  int live = live_.load();
  std::size_t streams = 0;
  std::uint64_t in = 0, out = 0;
  std::string tunnels, rtt_series, uptime_series;
  std::uint64_t total_in = 0, total_out = 0;
  {
    std::lock_guard lock(mu_);
    total_in = closed_bytes_in_;
    total_out = closed_bytes_out_;
    auto now = std::chrono::system_clock::now();
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      const auto& c = conns_[i];
      if (!c) continue;
      streams += c->active_streams();
      in += c->bytes_in();
      out += c->bytes_out();
      auto up = std::chrono::duration_cast<std::chrono::seconds>(now - since_[i]).count();
      if (!tunnels.empty()) tunnels += ',';
      tunnels +=
          "{\"index\":" + std::to_string(i) + ",\"usable\":" + (c->usable() ? "true" : "false") +
          ",\"streams\":" + std::to_string(c->active_streams()) +
          ",\"rtt_us\":" + std::to_string(c->rtt_us()) + ",\"uptime_s\":" + std::to_string(up) +
          ",\"bytes_in\":" + std::to_string(c->bytes_in()) +
          ",\"bytes_out\":" + std::to_string(c->bytes_out()) +
          ",\"version\":" + std::to_string(links_[i].version) + ",\"refused\":[";
      for (std::size_t k = 0; k < links_[i].refused.size(); ++k) {
        const auto& rr = links_[i].refused[k];
        tunnels += (k ? "," : "") + std::string("{\"host\":") + json_string(rr.host) +
                   ",\"path\":" + json_string(rr.path) + ",\"reason\":" + json_string(rr.reason) +
                   "}";
      }
      tunnels += "]}";
      char rtt[32];
      std::snprintf(rtt, sizeof rtt, "%.6f", static_cast<double>(c->rtt_us()) / 1e6);
      rtt_series += "hearth_tunnel_rtt_seconds{index=\"" + std::to_string(i) + "\"} " + rtt + "\n";
      uptime_series += "hearth_tunnel_uptime_seconds{index=\"" + std::to_string(i) + "\"} " +
                       std::to_string(up) + "\n";
    }
  }
  if (path == "/") {
    r.content_type = "text/html; charset=utf-8";
    r.body = std::string(dashboard_html());
  } else if (path == "/healthz") {
    r.body = "ok\n";
  } else if (path == "/readyz") {
    r.status = live > 0 && !stopping_ ? 200 : 503;
    r.body = r.status == 200 ? "ready\n" : "no live tunnel\n";
    if (r.status == 200 && wireguard_ && !wireguard_->healthy()) {  // issue 10
      r.status = 503;
      r.body = "wireguard link unhealthy (no handshake with the edge for 3 minutes)\n";
    }
  } else if (path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4";
    r.body =
        "# HELP hearth_tunnel_connections Live tunnel connections to the edge.\n"
        "# TYPE hearth_tunnel_connections gauge\nhearth_tunnel_connections " +
        std::to_string(live) +
        "\n# HELP hearth_streams_active Streams open over all tunnels.\n"
        "# TYPE hearth_streams_active gauge\nhearth_streams_active " +
        std::to_string(streams) +
        "\n# HELP hearth_streams_total Streams the edge opened.\n"
        "# TYPE hearth_streams_total counter\nhearth_streams_total " +
        std::to_string(streams_total_.load()) +
        "\n# HELP hearth_streams_failed_total Streams that found no route or no local service.\n"
        "# TYPE hearth_streams_failed_total counter\nhearth_streams_failed_total " +
        std::to_string(streams_failed_.load()) +
        "\n# HELP hearth_bytes_total Bytes carried over the tunnels, by direction.\n"
        "# TYPE hearth_bytes_total counter\nhearth_bytes_total{direction=\"in\"} " +
        std::to_string(total_in + in) + "\nhearth_bytes_total{direction=\"out\"} " +
        std::to_string(total_out + out) +
        "\n# HELP hearth_tunnel_rtt_seconds Round-trip time of the last keepalive ping, per "
        "tunnel connection.\n# TYPE hearth_tunnel_rtt_seconds gauge\n" +
        rtt_series +
        "# HELP hearth_tunnel_uptime_seconds Seconds since the tunnel connection came up.\n"
        "# TYPE hearth_tunnel_uptime_seconds gauge\n" +
        uptime_series + health_metrics();
    append_process_metrics(r.body);
    if (wireguard_) r.body += wireguard_->prometheus();
  } else if (path == "/status") {
    r.content_type = "application/json";
    auto cfg = config();
    r.body = "{\"origin\":\"" + cfg->name + "\",\"edge\":\"" + cfg->edge.to_string() +
             "\",\"live\":" + std::to_string(live) +
             ",\"connections\":" + std::to_string(cfg->connections) +
             ",\"draining\":" + (stopping_ ? "true" : "false") +
             ",\"streams_total\":" + std::to_string(streams_total_.load()) +
             ",\"streams_failed\":" + std::to_string(streams_failed_.load()) + ",\"tunnels\":[" +
             tunnels + "],\"routes\":" + routes_json() +
             ",\"recent_errors\":" + recent_events_json() +
             (wireguard_ ? ",\"wireguard\":" + wireguard_->status_json() : "") + "}\n";
  } else {
    r.status = 404;
    r.body = "not found\n";
  }
  return r;
}

asio::awaitable<void> Origin::admin_loop(tcp::acceptor& acc) {
  for (;;) {
    auto [ec, sock] = co_await acc.async_accept(tuple_awaitable);
    if (ec) {
      if (!acc.is_open()) co_return;
      continue;
    }
    admin::Handler handler = [this](std::string_view p) { return admin_response(p); };
    asio::co_spawn(control_, admin::session(std::move(sock), std::move(handler), cfg_->admin_token),
                   log_exception);
  }
}

// --- Live reload, publish and health (issue 13) ------------------------------

void Origin::reload() {
  auto old = config();
  auto result = config::load_origin_config(old->source);
  if (!result.config) {
    for (const auto& p : result.problems) {
      log::error("reload.problem", {{"problem", p.to_string()}});
    }
    log::error("reload.failed", {{"file", old->source.string()}, {"kept", "previous config"}});
    return;
  }
  config::OriginConfig next = std::move(*result.config);
  // What a running origin cannot change: who it is, where it dials, its
  // admin listener and threads. Those keep their running values.
  std::string kept;
  auto keep = [&](bool differs, std::string_view key) {
    if (differs) kept += (kept.empty() ? "" : ",") + std::string(key);
  };
  keep(next.name != old->name, "origin.name");
  keep(next.edge != old->edge, "origin.edge");
  keep(next.edge_pin != old->edge_pin, "origin.edge_pin");
  keep(next.key_pem != old->key_pem, "origin.key_file");
  keep(next.listen_admin != old->listen_admin, "origin.listen_admin");
  keep(next.workers != old->workers, "origin.workers");
  next.name = old->name;
  next.edge = old->edge;
  next.edge_pin = old->edge_pin;
  next.key_pem = old->key_pem;
  next.key_file = old->key_file;
  next.listen_admin = old->listen_admin;
  next.workers = old->workers;
  if (!kept.empty()) {
    log::warn("reload.restart_needed",
              {{"keys", kept}, {"detail", "restart hearth-origin to change these"}});
  }
  auto cfg = std::make_shared<const config::OriginConfig>(std::move(next));
  {
    std::lock_guard lock(cfg_mu_);
    cfg_ = cfg;
    routes_ = make_route_set(cfg);
  }
  health_->configure(cfg->routes);
  set_connections(cfg->connections);
  publish_all("reload");
  log::info("reload.done", {{"file", cfg->source.string()},
                            {"routes", cfg->routes.size()},
                            {"connections", cfg->connections}});
}

void Origin::set_connections(unsigned n) {
  std::vector<std::shared_ptr<tunnel::Connection>> surplus;
  std::vector<unsigned> start;
  {
    std::lock_guard lock(mu_);
    if (conns_.size() < n) {
      conns_.resize(n);
      links_.resize(n);
      since_.resize(n);
    }
    for (unsigned i = 0; i < conns_.size(); ++i) {
      if (i >= n && conns_[i]) surplus.push_back(conns_[i]);
      if (i < n && !links_[i].dialing) {
        links_[i].dialing = true;
        start.push_back(i);
      }
    }
  }
  for (unsigned i : start) {
    auto& w = *workers_[i % workers_.size()];
    asio::co_spawn(w, dial_loop(i, w.get_executor()), log_exception);
  }
  // Fewer connections: the surplus drains like a shutdown (GOAWAY, then a
  // graceful close once idle, or after drain_timeout); its dial loop ends.
  auto drain = config()->drain_timeout;
  for (auto& c : surplus) {
    c->go_away("origin needs fewer connections");
    c->when_idle([c] { c->close_gracefully("connections reduced", kLinger); });
    auto t = std::make_shared<asio::steady_timer>(control_, drain);
    t->async_wait([t, c](error_code) { c->close("connections reduced"); });
  }
  if (!start.empty() || !surplus.empty()) {
    log::info("reload.connections",
              {{"connections", n}, {"started", start.size()}, {"stopping", surplus.size()}});
  }
}

tunnel::Publish Origin::make_publish(const config::OriginConfig& cfg) {
  tunnel::Publish p;
  p.seq = publish_seq_.fetch_add(1) + 1;
  for (const auto& r : cfg.routes)
    p.routes.push_back({r.host, r.path, health_->health(r.host, r.path)});
  return p;
}

void Origin::publish_all(std::string_view why) {
  if (stopping_) return;
  auto cfg = config();
  std::vector<std::shared_ptr<tunnel::Connection>> v2;
  std::vector<unsigned> v1;
  {
    std::lock_guard lock(mu_);
    for (unsigned i = 0; i < conns_.size(); ++i) {
      if (!conns_[i] || conns_[i]->closed()) continue;
      if (links_[i].version >= 2) {
        v2.push_back(conns_[i]);
      } else if (why == "reload" && i < cfg->connections) {
        v1.push_back(i);
      }
    }
  }
  auto p = make_publish(*cfg);
  auto payload = tunnel::encode_payload(p);
  for (auto& c : v2) c->send_control(tunnel::FrameType::publish, payload);
  log::info("publish.sent",
            {{"why", why}, {"seq", p.seq}, {"routes", p.routes.size()}, {"tunnels", v2.size()}});
  // An older edge hears routes only in HELLO: reconnect its tunnels, one at a time.
  if (!v1.empty()) roll_v1_tunnels(std::move(v1));
}

void Origin::roll_v1_tunnels(std::vector<unsigned> indices) {
  if (indices.empty() || stopping_) return;
  unsigned index = indices.front();
  indices.erase(indices.begin());
  std::shared_ptr<tunnel::Connection> conn;
  {
    std::lock_guard lock(mu_);
    if (index < conns_.size()) conn = conns_[index];
  }
  if (!conn) {
    roll_v1_tunnels(std::move(indices));
    return;
  }
  log::info("publish.reconnect", {{"index", index}, {"detail", "older edge: new HELLO"}});
  auto cfg = config();
  conn->go_away("routes changed");
  conn->when_idle([conn] { conn->close_gracefully("routes changed", kLinger); });
  // Next one once this index is up again with a new connection (bounded).
  auto deadline =
      std::chrono::steady_clock::now() + cfg->drain_timeout + cfg->connect_timeout + kLinger;
  auto t = std::make_shared<asio::steady_timer>(control_);
  auto poll = std::make_shared<std::function<void()>>();
  // The lambda holds itself weakly: the pending timer handler (or the caller)
  // keeps it alive, so a shutdown that destroys that handler unrun frees it,
  // and the connection it holds, instead of leaking a self-reference.
  std::weak_ptr<std::function<void()>> self = poll;
  *poll = [this, t, self, conn, index, deadline, indices = std::move(indices)]() mutable {
    auto me = self.lock();
    if (!me) return;
    bool replaced = false;
    {
      std::lock_guard lock(mu_);
      replaced = index < conns_.size() && conns_[index] && conns_[index] != conn;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline - kLinger - config()->connect_timeout) conn->close("routes changed");
    if (replaced || now >= deadline || stopping_) {
      // Continue from a fresh handler: this lambda must not destroy itself
      // (resetting *me ends it) while it runs.
      asio::post(control_, [this, me, rest = std::move(indices)]() mutable {
        *me = nullptr;
        roll_v1_tunnels(std::move(rest));
      });
      return;
    }
    t->expires_after(std::chrono::milliseconds(100));
    t->async_wait([me](error_code ec) {
      if (!ec && *me) (*me)();
    });
  };
  (*poll)();
}

void Origin::log_refused(unsigned index, const std::vector<tunnel::RefusedRoute>& refused) {
  std::string list;
  for (const auto& r : refused) list += (list.empty() ? "" : ",") + r.host + r.path;
  log::warn("publish.refused", {{"conn", "o" + std::to_string(index)},
                                {"refused", list},
                                {"reason", refused.empty() ? "" : refused.front().reason}});
}

void Origin::on_published(unsigned index, tunnel::Published p) {
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    if (index >= links_.size()) return;
    changed = links_[index].refused != p.refused;
    links_[index].refused = p.refused;
  }
  log::info("publish.acknowledged",
            {{"conn", "o" + std::to_string(index)}, {"seq", p.seq}, {"refused", p.refused.size()}});
  if (changed && !p.refused.empty()) log_refused(index, p.refused);
}

std::string Origin::routes_json() {
  auto cfg = config();
  std::set<std::pair<std::string, std::string>> refused;
  {
    std::lock_guard lock(mu_);
    for (const auto& l : links_) {
      for (const auto& r : l.refused) refused.insert({r.host, r.path});
    }
  }
  auto checks = health_->entries();
  std::string out = "[";
  for (std::size_t i = 0; i < cfg->routes.size(); ++i) {
    const auto& r = cfg->routes[i];
    std::string health = "unknown", error;
    for (const auto& e : checks) {
      if (e.host == r.host && e.path == r.path) {
        health = std::string(tunnel::to_string(e.health));
        error = e.last_error;
      }
    }
    out += (i ? "," : "") + std::string("{\"host\":") + json_string(r.host) +
           ",\"path\":" + json_string(r.path) +
           ",\"service\":" + json_string(r.service.to_string()) +
           ",\"health_check\":" + json_string(r.health_check) +
           ",\"health\":" + json_string(health) + ",\"health_error\":" + json_string(error) +
           ",\"refused\":" + (refused.count({r.host, r.path}) ? "true" : "false") + "}";
  }
  return out + "]";
}

std::string Origin::health_metrics() {
  auto checks = health_->entries();
  std::size_t refused = 0;
  {
    std::lock_guard lock(mu_);
    std::set<std::pair<std::string, std::string>> set;
    for (const auto& l : links_) {
      for (const auto& r : l.refused) set.insert({r.host, r.path});
    }
    refused = set.size();
  }
  std::string out =
      "# HELP hearth_publish_refused_routes Routes the edge refused to serve (hostname not "
      "allowed for this origin).\n# TYPE hearth_publish_refused_routes gauge\n"
      "hearth_publish_refused_routes " +
      std::to_string(refused) + "\n";
  out +=
      "# HELP hearth_route_healthy Health check state per route: 1 healthy, 0 unhealthy, "
      "-1 not decided yet.\n# TYPE hearth_route_healthy gauge\n";
  for (const auto& e : checks) {
    int v = e.health == tunnel::RouteHealth::healthy     ? 1
            : e.health == tunnel::RouteHealth::unhealthy ? 0
                                                         : -1;
    out += "hearth_route_healthy{host=" + json_string(e.host) + ",path=" + json_string(e.path) +
           "} " + std::to_string(v) + "\n";
  }
  return out;
}

void Origin::on_signal(error_code ec, int sig) {
  if (ec) return;
  if (sig == SIGHUP) {
    sd::notify("RELOADING=1\n" + sd::monotonic_usec());
    reload();
    sd::notify("READY=1");
    signals_.async_wait([this](error_code e, int s) { on_signal(e, s); });
    return;
  }
  log::info("signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  begin_drain();
}

void Origin::begin_drain() {
  if (stopping_.exchange(true)) return;
  sd::notify("STOPPING=1\nSTATUS=" + service_status());
  std::vector<std::shared_ptr<tunnel::Connection>> conns;
  {
    std::lock_guard lock(mu_);
    for (auto& c : conns_) {
      if (c) conns.push_back(c);
    }
  }
  // GOAWAY: the edge sends new streams elsewhere; in-flight ones finish.
  auto remaining = std::make_shared<std::atomic<std::size_t>>(conns.size());
  for (auto& c : conns) {
    c->go_away("origin is shutting down");
    c->when_idle([this, remaining] {
      if (remaining->fetch_sub(1) == 1) asio::post(control_, [this] { stop_all(true); });
    });
  }
  log::info("drain.start",
            {{"connections", conns.size()}, {"timeout_ms", config()->drain_timeout.count()}});
  if (conns.empty()) {
    stop_all();
    return;
  }
  drain_timer_ = std::make_unique<asio::steady_timer>(control_, config()->drain_timeout);
  drain_timer_->async_wait([this](error_code e) {
    if (!e) {
      log::warn("drain.timeout", {{"detail", "resetting streams still open"}});
      stop_all();
    }
  });
}

void Origin::stop_all(bool drained) {
  std::vector<std::shared_ptr<tunnel::Connection>> conns;
  {
    std::lock_guard lock(mu_);
    for (auto& c : conns_) {
      if (c) conns.push_back(c);
    }
  }
  // Drained connections close gracefully: their last frames (a stream's
  // final bytes and FIN) may still be in the socket, and an abrupt close
  // with unread input would reset the connection and lose them.
  for (auto& c : conns) {
    if (drained) {
      c->close_gracefully("origin stopped", kLinger);
    } else {
      c->close("origin stopped");
    }
  }
  error_code ignored;
  health_->stop();
  if (drain_timer_) drain_timer_->cancel();
  if (admin_acc_) admin_acc_->close(ignored);
  signals_.cancel(ignored);
  // Stop the workers once every connection is closed (bounded by kLinger).
  auto deadline = std::chrono::steady_clock::now() + kLinger + std::chrono::milliseconds(50);
  stop_when_closed(std::move(conns), deadline);
}

void Origin::stop_when_closed(std::vector<std::shared_ptr<tunnel::Connection>> conns,
                              std::chrono::steady_clock::time_point deadline) {
  bool all = std::all_of(conns.begin(), conns.end(), [](const auto& c) { return c->closed(); });
  auto t = std::make_shared<asio::steady_timer>(control_, std::chrono::milliseconds(all ? 50 : 10));
  t->async_wait([this, t, all, deadline, conns = std::move(conns)](error_code) mutable {
    if (all || std::chrono::steady_clock::now() >= deadline) {
      // A moment for the closes to reach the sockets, then stop.
      for (auto& w : workers_) w->stop();
      control_.stop();
      return;
    }
    stop_when_closed(std::move(conns), deadline);
  });
}

int Origin::run() {
  if (cfg_->listen_admin) {
    try {
      admin_acc_ = std::make_unique<tcp::acceptor>(control_);
      tcp::endpoint ep(asio::ip::make_address(cfg_->listen_admin->host), cfg_->listen_admin->port);
      admin_acc_->open(ep.protocol());
      admin_acc_->set_option(asio::socket_base::reuse_address(true));
      admin_acc_->bind(ep);
      admin_acc_->listen();
      log::info("listening", {{"kind", "admin"}, {"addr", cfg_->listen_admin->to_string()}});
      asio::co_spawn(control_, admin_loop(*admin_acc_), log_exception);
    } catch (const std::exception& e) {
      log::error(
          "listen.failed",
          {{"kind", "admin"}, {"addr", cfg_->listen_admin->to_string()}, {"error", error_text(e)}});
      return 2;
    }
  }
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  signals_.async_wait([this](error_code e, int s) { on_signal(e, s); });

  health_->configure(cfg_->routes);
  for (unsigned i = 0; i < cfg_->connections; ++i) {
    links_[i].dialing = true;
    auto& w = *workers_[i % workers_.size()];
    asio::co_spawn(w, dial_loop(i, w.get_executor()), log_exception);
  }
  log::info("origin.started", {{"name", cfg_->name},
                               {"edge", cfg_->edge.to_string()},
                               {"connections", cfg_->connections},
                               {"routes", cfg_->routes.size()},
                               {"workers", workers_.size()}});
  // systemd (Type=notify): ready once the config is loaded and the dialers run.
  watchdog_ =
      std::make_unique<sd::Watchdog>(control_, workers_, [this] { return service_status(); });
  sd::notify("READY=1");
  watchdog_->start();
  auto control_guard = asio::make_work_guard(control_);
  if (wireguard_) wireguard_->start(control_);
  run_contexts(control_, workers_);
  watchdog_.reset();
  if (wireguard_) wireguard_->shutdown();  // removes the link unless persist
  log::info("origin.stopped");
  return 0;
}

}  // namespace

int run(std::shared_ptr<const config::OriginConfig> config) {
  std::unique_ptr<Origin> origin;
  try {
    origin = std::make_unique<Origin>(std::move(config));
  } catch (const std::exception& e) {
    log::error("origin.start_failed", {{"error", error_text(e)}});
    return 2;
  }
  return origin->run();
}

}  // namespace hearth::origin
