#include "hearth/origin/health.hpp"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "hearth/common/log.hpp"

namespace hearth::origin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

bool HealthState::record(bool passed) {
  auto before = state_;
  if (passed) {
    fails_ = 0;
    if (++passes_ >= rise_) state_ = tunnel::RouteHealth::healthy;
  } else {
    passes_ = 0;
    if (++fails_ >= fall_) state_ = tunnel::RouteHealth::unhealthy;
  }
  return state_ != before;
}

struct HealthMonitor::Probe {
  Probe(asio::any_io_executor ex, config::Route r)
      : route(std::move(r)), state(route.health_rise, route.health_fall), timer(ex) {}
  config::Route route;
  mutable std::mutex mu;  // state and last_error: read by the admin thread
  HealthState state;
  std::string last_error;
  std::atomic<bool> stopped{false};
  asio::steady_timer timer;
};

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

bool same_check(const config::Route& a, const config::Route& b) {
  return a.host == b.host && a.path == b.path && a.service == b.service &&
         a.health_check == b.health_check && a.health_interval == b.health_interval &&
         a.health_timeout == b.health_timeout && a.health_rise == b.health_rise &&
         a.health_fall == b.health_fall;
}

void log_spawn_error(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log::error("health.bug", {{"what", ex.what()}});
  }
}

// GET the check path; "" when it passes, else why not.
template <class Stream>
asio::awaitable<std::string> http_check(Stream& s, std::string host, std::string path) {
  http::request<http::empty_body> req{http::verb::get, path, 11};
  // A wildcard route's host is not a name to send: use its suffix.
  if (host.rfind("*.", 0) == 0) host.erase(0, 2);
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "hearth-health-check");
  req.set(http::field::connection, "close");
  auto [wec, wn] = co_await http::async_write(s, req, tuple_awaitable);
  if (wec) co_return "write: " + wec.message();
  beast::flat_buffer buf;
  http::response_parser<http::empty_body> parser;
  parser.header_limit(16 * 1024);
  auto [rec, rn] = co_await http::async_read_header(s, buf, parser, tuple_awaitable);
  if (rec) co_return "read: " + rec.message();
  unsigned status = parser.get().result_int();
  if (!health_status_passes(status)) co_return "HTTP " + std::to_string(status);
  co_return std::string();
}

asio::awaitable<std::string> probe_once(const config::Route& r) {
  auto ex = co_await asio::this_coro::executor;
  beast::tcp_stream s(ex);
  s.expires_after(r.health_timeout);  // one deadline for connect, request and answer
  error_code ec;
  auto addr = asio::ip::make_address(r.service.host, ec);
  if (!ec) {
    std::tie(ec) = co_await s.async_connect(tcp::endpoint(addr, r.service.port), tuple_awaitable);
  } else {
    tcp::resolver resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(
        r.service.host, std::to_string(r.service.port), tuple_awaitable);
    ec = rec;
    if (!ec) std::tie(ec, std::ignore) = co_await s.async_connect(results, tuple_awaitable);
  }
  if (ec) co_return "connect: " + ec.message();
  if (r.health_check == "tcp") co_return std::string();
  if (!r.service.tls) co_return co_await http_check(s, r.host, r.health_check);
  // An https service: the check speaks TLS too (not verified: it probes
  // liveness; the proxied traffic does what tls_verify says).
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  beast::ssl_stream<beast::tcp_stream> tls(std::move(s), ctx);
  SSL_set_tlsext_host_name(tls.native_handle(), r.service.host.c_str());
  auto [hec] = co_await tls.async_handshake(asio::ssl::stream_base::client, tuple_awaitable);
  if (hec) co_return "TLS: " + hec.message();
  co_return co_await http_check(tls, r.host, r.health_check);
}

asio::awaitable<void> run_probe(std::shared_ptr<HealthMonitor::Probe> p,
                                std::shared_ptr<std::function<void()>> on_change) {
  while (!p->stopped.load()) {
    std::string err = co_await probe_once(p->route);
    if (p->stopped.load()) co_return;
    bool changed = false;
    tunnel::RouteHealth now{};
    {
      std::lock_guard lock(p->mu);
      changed = p->state.record(err.empty());
      now = p->state.state();
      if (!err.empty()) p->last_error = err;
    }
    if (changed) {
      auto level = now == tunnel::RouteHealth::unhealthy ? log::Level::warn : log::Level::info;
      if (log::enabled(level)) {
        log::write(level, "health.changed",
                   {{"host", p->route.host},
                    {"path", p->route.path},
                    {"service", p->route.service.to_string()},
                    {"check", p->route.health_check},
                    {"health", tunnel::to_string(now)},
                    {"error", err}});
      }
      (*on_change)();
    } else if (!err.empty()) {
      log::debug("health.failed",
                 {{"host", p->route.host}, {"path", p->route.path}, {"error", err}});
    }
    p->timer.expires_after(p->route.health_interval);
    co_await p->timer.async_wait(tuple_awaitable);
  }
}

}  // namespace

HealthMonitor::HealthMonitor(asio::any_io_executor ex, std::function<void()> on_change)
    : ex_(std::move(ex)),
      on_change_(std::make_shared<std::function<void()>>(std::move(on_change))) {}

HealthMonitor::~HealthMonitor() { stop(); }

void HealthMonitor::configure(const std::vector<config::Route>& routes) {
  std::vector<std::shared_ptr<Probe>> next;
  for (const auto& r : routes) {
    if (r.health_check.empty()) continue;
    std::shared_ptr<Probe> kept;
    for (auto& p : probes_) {
      if (p && same_check(p->route, r)) kept = std::move(p);
    }
    if (!kept) {
      kept = std::make_shared<Probe>(ex_, r);
      asio::co_spawn(ex_, run_probe(kept, on_change_), log_spawn_error);
    }
    next.push_back(std::move(kept));
  }
  for (auto& p : probes_) {
    if (!p) continue;
    p->stopped.store(true);
    p->timer.cancel();
  }
  probes_ = std::move(next);
}

void HealthMonitor::stop() {
  for (auto& p : probes_) {
    p->stopped.store(true);
    p->timer.cancel();
  }
  probes_.clear();
}

tunnel::RouteHealth HealthMonitor::health(std::string_view host, std::string_view path) const {
  for (const auto& p : probes_) {
    if (p->route.host == host && p->route.path == path) {
      std::lock_guard lock(p->mu);
      return p->state.state();
    }
  }
  return tunnel::RouteHealth::unknown;
}

std::vector<HealthMonitor::Entry> HealthMonitor::entries() const {
  std::vector<Entry> out;
  for (const auto& p : probes_) {
    std::lock_guard lock(p->mu);
    out.push_back(
        {p->route.host, p->route.path, p->route.health_check, p->state.state(), p->last_error});
  }
  return out;
}

}  // namespace hearth::origin
