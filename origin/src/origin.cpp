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
#include <thread>

#include "hearth/common/admin.hpp"
#include "hearth/common/crypto.hpp"
#include "hearth/common/dashboard.hpp"
#include "hearth/common/error_text.hpp"
#include "hearth/common/log.hpp"
#include "hearth/common/process_metrics.hpp"
#include "hearth/common/route_match.hpp"
#include "hearth/common/sd_notify.hpp"
#include "hearth/common/version.hpp"
#include "hearth/common/workers.hpp"
#include "hearth/tunnel/handshake.hpp"
#include "hearth/tunnel/mux.hpp"

namespace hearth::origin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kPipeChunk = 16 * 1024;
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
    for (const auto& r : cfg_->routes) routes_.add(r.host, r.path, &r);
    conns_.resize(cfg_->connections);
    since_.resize(cfg_->connections);
  }

  int run();

 private:
  asio::awaitable<void> dial_loop(unsigned index, asio::io_context::executor_type ex);
  asio::awaitable<bool> connect_once(unsigned index, asio::io_context::executor_type ex);
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
  asio::awaitable<void> admin_loop(tcp::acceptor& acc);
  void on_signal(error_code ec, int sig);
  void begin_drain();
  void stop_all(bool drained = false);
  void stop_when_closed(std::vector<std::shared_ptr<tunnel::Connection>> conns,
                        std::chrono::steady_clock::time_point deadline);

  std::shared_ptr<const config::OriginConfig> cfg_;
  // Workers are declared first so they are destroyed last: the control
  // context's pending accepts hold sockets bound to worker contexts, and
  // destroying those operations must find the workers' services alive.
  std::vector<std::unique_ptr<asio::io_context>> workers_;
  asio::io_context control_{1};
  asio::signal_set signals_;
  std::shared_ptr<asio::ssl::context> tunnel_ctx_;
  std::shared_ptr<asio::ssl::context> service_tls_;
  std::shared_ptr<asio::ssl::context> service_tls_verify_;
  RouteTable<const config::Route*> routes_;
  std::unique_ptr<tcp::acceptor> admin_acc_;

  std::mutex mu_;  // guards conns_ (control plane only)
  std::vector<std::shared_ptr<tunnel::Connection>> conns_;
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
};

asio::awaitable<void> Origin::dial_loop(unsigned index, asio::io_context::executor_type ex) {
  std::mt19937_64 rng(std::random_device{}() ^ (std::uint64_t{index} << 32));
  auto backoff = cfg_->reconnect_min;
  for (;;) {
    if (stopping_) co_return;
    auto started = std::chrono::steady_clock::now();
    bool was_up = co_await connect_once(index, ex);
    if (stopping_) co_return;
    if (was_up && std::chrono::steady_clock::now() - started >= kHealthyPeriod) {
      backoff = cfg_->reconnect_min;
    }
    // Full jitter (AWS architecture blog): uniform in [0, backoff], so many
    // origins that lost the same edge do not come back in lock step.
    std::uniform_int_distribution<std::int64_t> dist(0, backoff.count());
    std::chrono::milliseconds delay(dist(rng));
    if (was_up && backoff == cfg_->reconnect_min) delay = std::chrono::milliseconds(0);
    log::info("tunnel.retry", {{"index", index}, {"delay_ms", delay.count()}});
    asio::steady_timer t(ex, delay);
    co_await t.async_wait(tuple_awaitable);
    backoff = std::min(backoff * 2, cfg_->reconnect_max);
  }
}

asio::awaitable<bool> Origin::connect_once(unsigned index, asio::io_context::executor_type ex) {
  const std::string edge = cfg_->edge.to_string();
  const std::string conn_id = "o" + std::to_string(index);
  tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(
      cfg_->edge.host, std::to_string(cfg_->edge.port), tuple_awaitable);
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
  tunnel::TlsStream tls(std::move(tcp_stream), *tunnel_ctx_);
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
    log::error("tunnel.refused", {{"conn", conn_id},
                                  {"edge", edge},
                                  {"reason", reason ? *reason : std::string("(unreadable)")}});
    co_return false;
  }
  if (reply.header.type != tunnel::FrameType::welcome || !tunnel::decode_welcome(reply.payload)) {
    log::warn("tunnel.connect_failed",
              {{"conn", conn_id}, {"edge", edge}, {"error", "expected WELCOME"}});
    co_return false;
  }

  tunnel::ConnectionOptions opts;
  opts.keepalive_interval = cfg_->keepalive_interval;
  opts.keepalive_timeout = cfg_->keepalive_timeout;
  opts.opener = false;
  opts.log_id = conn_id;
  auto conn = std::make_shared<tunnel::Connection>(ex, std::move(tls), std::move(buf), opts);
  auto waiter = std::make_shared<CloseWaiter>(ex);
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
    since_[index] = std::chrono::system_clock::now();
  }
  live_.fetch_add(1);
  log::info("tunnel.up", {{"conn", conn_id}, {"edge", edge}, {"index", index}});
  if (stopping_) conn->go_away("origin is shutting down");
  co_await waiter->timer.async_wait(tuple_awaitable);
  live_.fetch_sub(1);
  {
    std::lock_guard lock(mu_);
    if (conns_[index] == conn) conns_[index].reset();
    closed_bytes_in_ += conn->bytes_in();
    closed_bytes_out_ += conn->bytes_out();
  }
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
  const config::Route* const* route = routes_.lookup(meta.host, meta.path);
  if (!route) {
    streams_failed_.fetch_add(1, std::memory_order_relaxed);
    log::warn("stream.no_route", {{"stream", ts.id()}, {"host", meta.host}, {"path", meta.path}});
    ts.reset(tunnel::ResetCode::no_route, "no route");
    co_return;
  }
  const config::Route& r = **route;
  const auto idle = meta.kind == 1 ? cfg_->websocket_idle_timeout : cfg_->idle_timeout;

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
  const bool websocket = meta.kind == 1;
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
          ",\"bytes_out\":" + std::to_string(c->bytes_out()) + "}";
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
        uptime_series;
    append_process_metrics(r.body);
  } else if (path == "/status") {
    r.content_type = "application/json";
    std::string routes;
    for (const auto& rt : cfg_->routes) {
      if (!routes.empty()) routes += ',';
      routes += "{\"host\":" + json_string(rt.host) + ",\"path\":" + json_string(rt.path) +
                ",\"service\":" + json_string(rt.service.to_string()) + "}";
    }
    r.body = "{\"origin\":\"" + cfg_->name + "\",\"edge\":\"" + cfg_->edge.to_string() +
             "\",\"live\":" + std::to_string(live) +
             ",\"connections\":" + std::to_string(cfg_->connections) +
             ",\"draining\":" + (stopping_ ? "true" : "false") +
             ",\"streams_total\":" + std::to_string(streams_total_.load()) +
             ",\"streams_failed\":" + std::to_string(streams_failed_.load()) + ",\"tunnels\":[" +
             tunnels + "],\"routes\":[" + routes + "],\"recent_errors\":" + recent_events_json() +
             "}\n";
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

void Origin::on_signal(error_code ec, int sig) {
  if (ec) return;
  if (sig == SIGHUP) {
    sd::notify("RELOADING=1\n" + sd::monotonic_usec());
    sd::notify("READY=1");
    log::warn("reload.unsupported", {{"detail", "restart hearth-origin to change routes"}});
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
            {{"connections", conns.size()}, {"timeout_ms", cfg_->drain_timeout.count()}});
  if (conns.empty()) {
    stop_all();
    return;
  }
  drain_timer_ = std::make_unique<asio::steady_timer>(control_, cfg_->drain_timeout);
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

  for (unsigned i = 0; i < cfg_->connections; ++i) {
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
  run_contexts(control_, workers_);
  watchdog_.reset();
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
