// The HTTPS front door: one coroutine session per client connection, on one
// worker. Each request becomes one tunnel stream: the request head (rewritten)
// and body are relayed into the stream while the response is relayed back,
// concurrently, so Expect: 100-continue and early responses work. A WebSocket
// upgrade turns the exchange into a raw byte pipe once the service sends 101.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "hearth/common/log.hpp"
#include "hearth/common/tls_socket.hpp"
#include "hearth/edge/http_rules.hpp"
#include "hearth/edge/policy.hpp"
#include "hearth/tunnel/errors.hpp"
#include "hearth/tunnel/mux.hpp"
#include "shared.hpp"

namespace hearth::edge {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;
// OpenSSL straight on the socket, buffers released when idle (see tls_socket.hpp):
// an idle WebSocket keeps ~70 KB less than with asio::ssl::stream.
using Tls = hearth::TlsSocket;
using namespace asio::experimental::awaitable_operators;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kRelayChunk = 16 * 1024;  // one TLS record
// Bytes asked of the tunnel stream per read while a body flows: Beast's
// read_size() asks for the buffer's spare capacity (at least 512 bytes), and
// every TunnelStream read is a hop to the connection's executor.
constexpr std::size_t kBodyReadBuffer = 64 * 1024;
// A WebSocket pipe starts with a small buffer and doubles it (up to
// kRelayChunk) while reads fill it: idle sockets are the common case.
constexpr std::size_t kPipeInitial = 512;
constexpr std::uint32_t kResponseHeaderLimit = 64 * 1024;

// RFC 9110 9.2.2: a request the service may have seen can be sent again only
// for these.
bool is_idempotent(http::verb m) {
  switch (m) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::trace:
    case http::verb::put:
    case http::verb::delete_:
      return true;
    default:
      return false;
  }
}

bool is_quiet_close(const error_code& ec) {
  // stream_truncated: the client closed TCP without a TLS close_notify, which
  // browsers do all the time; treat it like EOF, not as an attack.
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
         ec == beast::error::timeout || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == http::error::end_of_stream;
}

class HttpsSession : public std::enable_shared_from_this<HttpsSession> {
 public:
  HttpsSession(std::shared_ptr<EdgeShared> shared, tcp::socket sock,
               std::shared_ptr<HttpsTls> tls_ctx)
      : shared_(std::move(shared)),
        cfg_(shared_->config()),
        tls_ctx_(std::move(tls_ctx)),
        tls_(std::move(sock), tls_ctx_->default_context().native_handle()),
        watchdog_(tls_.get_executor()) {
    error_code ec;
    auto ep = tls_.socket().remote_endpoint(ec);
    if (!ec) {
      client_ip_ = client_ip_string(ep.address());
      client_port_ = ep.port();
      client_ = policy::client_info(ep.address());
    }
    conn_id_ = shared_->next_id.fetch_add(1, std::memory_order_relaxed);
  }

  asio::awaitable<void> run();

 private:
  struct Exchange {
    bool head = false;
    bool websocket = false;
    bool client_keep_alive = true;
    unsigned version = 11;
    bool request_done = false;
    bool response_started = false;
    bool response_done = false;
    bool upgraded = false;
    bool close_after = false;
    unsigned status = 0;
    error_code up_ec;
    error_code down_ec;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::string request_id;
    bool upstream_keep_alive = false;  // we asked the service to keep the connection
    bool upstream_reusable = false;    // ... and its response allows it

    void new_attempt() {  // before a retry on another stream
      request_done = response_started = response_done = upgraded = close_after = false;
      status = 0;
      up_ec = down_ec = {};
      bytes_in = bytes_out = 0;
      upstream_reusable = false;
    }
  };

  asio::awaitable<bool> handle_request(http::request_parser<http::buffer_body>& parser);
  asio::awaitable<void> forward_request(http::request_parser<http::buffer_body>& parser,
                                        Exchange& x);
  asio::awaitable<void> forward_response(Exchange& x);
  asio::awaitable<void> pipe_client_to_tunnel(Exchange& x);
  asio::awaitable<void> pipe_tunnel_to_client(Exchange& x);
  asio::awaitable<bool> send_error(http::status status, Exchange& x, bool keep_alive,
                                   std::optional<unsigned> retry_after = std::nullopt,
                                   std::string www_authenticate = {});
  // This request's policy may shorten or lengthen the [edge] idle timeout.
  std::chrono::milliseconds idle_timeout() const {
    return policy_ && policy_->idle_timeout ? *policy_->idle_timeout : cfg_->idle_timeout;
  }

  // The transport: timeouts, cancel, the socket (beast::tcp_stream's interface).
  Tls& tcp() { return tls_; }
  void touch() { last_activity_ = std::chrono::steady_clock::now(); }
  void arm_watchdog(std::chrono::milliseconds limit);
  void on_watchdog(error_code ec);
  void disarm_watchdog() {
    watchdog_limit_ = {};
    watchdog_.cancel();
  }

  std::shared_ptr<EdgeShared> shared_;
  std::shared_ptr<const config::EdgeConfig> cfg_;
  std::shared_ptr<HttpsTls> tls_ctx_;
  Tls tls_;
  beast::flat_buffer buf_;   // client -> edge
  beast::flat_buffer tbuf_;  // tunnel -> edge
  // The stream of the current exchange; between requests it stays open
  // (parked) for the next request to the same route, so the origin keeps one
  // service connection per client connection.
  std::optional<tunnel::TunnelStream> stream_;
  std::shared_ptr<const TunnelInfo> stream_tunnel_;
  std::shared_ptr<const RouteGroup> stream_group_;
  asio::steady_timer watchdog_;
  std::chrono::milliseconds watchdog_limit_{};
  std::chrono::steady_clock::time_point last_activity_;
  bool timed_out_ = false;
  std::string client_ip_;
  std::uint16_t client_port_ = 0;
  std::uint64_t conn_id_ = 0;
  policy::ClientInfo client_;
  const config::Policy* policy_ = nullptr;  // of the current request; owned by cfg_
};

// Every wait on the tunnel side is bounded by this watchdog: when neither
// direction made progress for `limit`, the stream is reset (which fails the
// pending tunnel operations) and pending client operations are cancelled.
void HttpsSession::arm_watchdog(std::chrono::milliseconds limit) {
  watchdog_limit_ = limit;
  timed_out_ = false;
  touch();
  watchdog_.expires_after(limit);
  watchdog_.async_wait([self = shared_from_this()](error_code ec) { self->on_watchdog(ec); });
}

void HttpsSession::on_watchdog(error_code ec) {
  if (ec || watchdog_limit_.count() == 0) return;
  auto idle = std::chrono::steady_clock::now() - last_activity_;
  if (idle >= watchdog_limit_) {
    timed_out_ = true;
    if (stream_) stream_->reset(tunnel::ResetCode::timeout, "edge idle timeout");
    tcp().cancel();
    return;
  }
  watchdog_.expires_after(watchdog_limit_ -
                          std::chrono::duration_cast<std::chrono::milliseconds>(idle));
  watchdog_.async_wait([self = shared_from_this()](error_code ec2) { self->on_watchdog(ec2); });
}

asio::awaitable<void> HttpsSession::run() {
  auto self = shared_from_this();
  shared_->metrics.client_connections.fetch_add(1, std::memory_order_relaxed);
  struct Guard {
    Metrics& m;
    ~Guard() { m.client_connections.fetch_sub(1, std::memory_order_relaxed); }
  } guard{shared_->metrics};

  tcp().socket().set_option(tcp::no_delay(true));
  tcp().expires_after(cfg_->handshake_timeout);
  auto [hec] = co_await tls_.async_handshake(asio::ssl::stream_base::server, tuple_awaitable);
  if (hec) {
    log::debug("client.handshake_failed",
               {{"conn", conn_id_}, {"client", client_ip_}, {"error", hec.message()}});
    co_return;
  }

  bool first = true;
  for (;;) {
    if (shared_->draining.load(std::memory_order_relaxed)) break;
    http::request_parser<http::buffer_body> parser;
    parser.header_limit(cfg_->max_header_size);
    if (auto limit = policy::largest_body_limit(*cfg_); limit > 0) {
      parser.body_limit(limit);  // the request's own limit is set once its policy is known
    } else {
      parser.body_limit(boost::none);
    }
    policy_ = nullptr;
    tcp().expires_after(first ? cfg_->header_timeout : cfg_->idle_timeout);
    auto [ec, n] = co_await http::async_read_header(tls_, buf_, parser, tuple_awaitable);
    if (ec) {
      if (is_quiet_close(ec) || ec == http::error::partial_message) break;
      Exchange x;
      x.version = 11;
      auto status = ec == http::error::header_limit ? http::status::request_header_fields_too_large
                                                    : http::status::bad_request;
      log::info("client.bad_request",
                {{"conn", conn_id_}, {"client", client_ip_}, {"error", ec.message()}});
      co_await send_error(status, x, false);
      break;
    }
    first = false;
    shared_->metrics.requests_in_flight.fetch_add(1, std::memory_order_relaxed);
    bool keep = co_await handle_request(parser);
    shared_->metrics.requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (!keep) break;
  }

  disarm_watchdog();
  stream_.reset();
  // Bounded close_notify: a client that never answers must not hold us.
  tcp().expires_after(std::chrono::seconds(3));
  co_await tls_.async_shutdown(tuple_awaitable);
  error_code ignored;
  tcp().socket().close(ignored);
}

asio::awaitable<bool> HttpsSession::send_error(http::status status, Exchange& x, bool keep_alive,
                                               std::optional<unsigned> retry_after,
                                               std::string www_authenticate) {
  auto res = make_error_response(status, x.version, keep_alive, retry_after, x.request_id);
  if (!www_authenticate.empty()) res.set(http::field::www_authenticate, www_authenticate);
  policy::decorate_local_reply(policy_, res);  // error page, security headers
  x.status = static_cast<unsigned>(status);
  shared_->metrics.count_request(x.status);
  http::response_serializer<http::string_body> sr{res};
  tcp().expires_after(idle_timeout());
  error_code ec;
  if (x.head) {
    std::tie(ec, std::ignore) = co_await http::async_write_header(tls_, sr, tuple_awaitable);
  } else {
    std::tie(ec, std::ignore) = co_await http::async_write(tls_, sr, tuple_awaitable);
  }
  co_return !ec && keep_alive;
}

asio::awaitable<bool> HttpsSession::handle_request(
    http::request_parser<http::buffer_body>& parser) {
  auto started = std::chrono::steady_clock::now();
  auto& req = parser.get();
  Exchange x;
  x.head = req.method() == http::verb::head;
  x.version = req.version() == 10 ? 10 : 11;
  x.client_keep_alive = req.keep_alive();
  x.request_id = effective_request_id(req["X-Request-ID"], generate_request_id());
  std::string method(req.method_string());
  std::string target(origin_form_target(req.target()));

  // A body we never read leaves the connection unusable for the next request.
  const bool body_pending = !parser.is_done();
  const bool keep_if_error = x.client_keep_alive && !body_pending;

  auto log_request = [&](std::string_view origin) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count();
    log::info("request", {{"conn", conn_id_},
                          {"client", client_ip_},
                          {"method", method},
                          {"host", std::string(requested_authority(req))},
                          {"path", target},
                          {"status", x.status},
                          {"ms", ms},
                          {"in", x.bytes_in},
                          {"out", x.bytes_out},
                          {"origin", origin},
                          {"request_id", x.request_id}});
  };

  if (auto reject = check_request_head(req.base())) {
    log::info("client.rejected", {{"conn", conn_id_},
                                  {"client", client_ip_},
                                  {"reason", reject->reason},
                                  {"request_id", x.request_id}});
    co_await send_error(reject->status, x, false);
    log_request("");
    co_return false;
  }
  auto host = request_host(req.base());
  if (!host) {  // check_request_head guarantees one; stay defensive
    co_await send_error(http::status::bad_request, x, false);
    co_return false;
  }
  // Policies (issue 9), before routing: the target is normalized in place,
  // then the matched policy may answer by itself (403, 429, 401, 413, 400).
  auto gate =
      policy::on_request_head(*cfg_, *host, req.base(), client_, policy::shard_for_this_thread(),
                              std::chrono::steady_clock::now());
  policy_ = gate.policy;
  parser.body_limit(gate.body_limit > 0 ? boost::optional<std::uint64_t>(gate.body_limit)
                                        : boost::none);
  target = origin_form_target(req.target());
  if (gate.reply) {
    log::info("policy.refused", {{"conn", conn_id_},
                                 {"client", client_ip_},
                                 {"policy", policy_ ? policy_->id : ""},
                                 {"status", static_cast<unsigned>(gate.reply->status)},
                                 {"reason", gate.reply->reason},
                                 {"request_id", x.request_id}});
    bool keep = co_await send_error(gate.reply->status, x, keep_if_error, gate.reply->retry_after,
                                    gate.reply->www_authenticate);
    log_request("");
    co_return keep;
  }
  x.websocket = is_websocket_upgrade(req.base());

  // Reuse the parked stream when this request goes to the same route of the
  // same registry state over a tunnel that is still usable.
  std::shared_ptr<const TunnelInfo> tunnel_info;
  bool reused = false;
  if (stream_ && !x.websocket && stream_->reusable() && stream_tunnel_->conn->usable() &&
      shared_->registry.group_for(*host, target) == stream_group_) {
    tunnel_info = stream_tunnel_;
    reused = true;
  } else {
    stream_.reset();
  }

  auto ex = co_await asio::this_coro::executor;
  ForwardInfo info{client_ip_,   "https",     std::string(requested_authority(req)),
                   x.request_id, x.websocket, !x.websocket && req.version() == 11};
  prepare_upstream_request(req.base(), info);
  if (policy_) policy::apply_request(*policy_, req.base());
  x.upstream_keep_alive = info.keep_alive;

  for (int attempt = 0;; ++attempt) {
    if (!reused) {
      std::shared_ptr<const RouteGroup> group;
      auto pick = shared_->registry.pick(*host, target, tunnel_info, &group);
      if (pick == PickResult::unknown_host) {
        bool keep = co_await send_error(http::status::not_found, x, keep_if_error);
        log_request("");
        co_return keep;
      }
      if (pick == PickResult::offline) {
        bool keep = co_await send_error(http::status::service_unavailable, x, keep_if_error, 5);
        log_request("");
        co_return keep;
      }
      stream_ = tunnel_info->conn->open_stream(
          tunnel::Open{*host, target, client_ip_ + " " + std::to_string(client_port_),
                       static_cast<std::uint8_t>(x.websocket ? 1 : 0)},
          ex);
      if (!stream_) {
        bool keep = co_await send_error(http::status::service_unavailable, x, keep_if_error, 1);
        log_request(tunnel_info->origin);
        co_return keep;
      }
      stream_tunnel_ = tunnel_info;
      stream_group_ = std::move(group);
    }
    stream_->set_parked(false);

    // Until the response head arrives, the policy's response_header_timeout.
    arm_watchdog(policy_ && policy_->response_header_timeout ? *policy_->response_header_timeout
                                                             : idle_timeout());
    co_await (forward_request(parser, x) && forward_response(x));

    // Nothing reached the client and no request body was consumed: the
    // request can go again on a fresh stream when the kept one was closed
    // under us (the service's keep-alive timeout) or the origin refused it
    // because it is draining (the edge then picks another live tunnel).
    // (Without a body, forward_request only writes to the stream, so up_ec
    // is a stream error too.) On a kept stream the service may have seen the
    // request before closing, so only idempotent methods go again, as nginx
    // does; a RESET draining means the origin never passed it on.
    error_code stream_ec = x.down_ec ? x.down_ec : x.up_ec;
    bool retry = attempt == 0 && !x.response_started && !timed_out_ && !body_pending && stream_ec &&
                 ((reused && is_idempotent(req.method())) || stream_ec == tunnel::Errc::draining);
    if (!retry) break;
    log::debug("proxy.retry", {{"conn", conn_id_},
                               {"request_id", x.request_id},
                               {"origin", tunnel_info->origin},
                               {"error", stream_ec.message()}});
    x.new_attempt();
    disarm_watchdog();
    stream_.reset();
    reused = false;
  }

  bool keep = false;
  if (x.upgraded) {
    shared_->metrics.websockets_active.fetch_add(1, std::memory_order_relaxed);
    arm_watchdog(policy_ && policy_->websocket_idle_timeout ? *policy_->websocket_idle_timeout
                                                            : cfg_->websocket_idle_timeout);
    tcp().expires_never();
    co_await (pipe_client_to_tunnel(x) && pipe_tunnel_to_client(x));
    shared_->metrics.websockets_active.fetch_sub(1, std::memory_order_relaxed);
  } else if (!x.response_started) {
    // Nothing reached the client yet: answer for the home side.
    http::status status = http::status::bad_gateway;
    std::optional<unsigned> retry;
    auto ec = x.down_ec;
    if (timed_out_) {
      status = http::status::gateway_timeout;
    } else if (ec == tunnel::Errc::draining) {
      status = http::status::service_unavailable;
      retry = 1;
    } else if (ec == tunnel::Errc::no_route) {
      status = http::status::not_found;
    } else if (ec == tunnel::Errc::connection_lost) {
      retry = 5;
    } else if (x.up_ec && !x.down_ec) {
      status = http::status::bad_request;  // the client broke its own request
    }
    if (x.up_ec == http::error::body_limit) status = http::status::payload_too_large;
    if (!(x.up_ec && is_quiet_close(x.up_ec) && !timed_out_)) {
      co_await send_error(status, x, false, retry);
    }
    log::info("proxy.failed", {{"conn", conn_id_},
                               {"request_id", x.request_id},
                               {"origin", tunnel_info->origin},
                               {"upstream", x.down_ec.message()},
                               {"client", x.up_ec.message()}});
  } else {
    shared_->metrics.count_request(x.status);
    keep = x.response_done && x.request_done && x.client_keep_alive && !x.close_after && !x.up_ec &&
           !x.down_ec;
  }
  disarm_watchdog();
  if (keep && x.upstream_reusable && x.response_done && x.request_done && !x.up_ec && !x.down_ec &&
      tbuf_.size() == 0 && stream_->reusable()) {
    stream_->set_parked(true);
  } else {
    stream_.reset();
    stream_tunnel_.reset();
    stream_group_.reset();
  }
  // Large bodies grew the buffers; an idle keep-alive connection gives it back.
  if (buf_.size() == 0 && buf_.capacity() > kRelayChunk) buf_.shrink_to_fit();
  if (tbuf_.size() == 0 && tbuf_.capacity() > kRelayChunk) tbuf_.shrink_to_fit();
  log_request(tunnel_info->origin);
  co_return keep;
}

asio::awaitable<void> HttpsSession::forward_request(http::request_parser<http::buffer_body>& parser,
                                                    Exchange& x) {
  auto self = shared_from_this();
  auto& stream = *stream_;
  http::request_serializer<http::buffer_body> sr{parser.get()};
  auto [wec, wn] = co_await http::async_write_header(stream, sr, tuple_awaitable);
  touch();
  if (wec) {
    x.up_ec = wec;
    co_return;
  }
  if (x.websocket) {
    x.request_done = true;  // the rest of the client's bytes are WebSocket frames
    co_return;
  }
  // The relay buffer is sized to the body (a GET has none): a 16 KiB array
  // in the coroutine frame cost a large malloc per request.
  auto clen = parser.content_length();
  const std::size_t chunk_size =
      parser.is_done() ? 0 : (clen ? std::min<std::size_t>(*clen, kRelayChunk) : kRelayChunk);
  std::unique_ptr<char[]> chunk(chunk_size ? new char[chunk_size] : nullptr);
  if (!parser.is_done() && buf_.capacity() < kBodyReadBuffer) buf_.reserve(kBodyReadBuffer);
  do {
    if (!parser.is_done()) {
      parser.get().body().data = chunk.get();
      parser.get().body().size = chunk_size;
      tcp().expires_after(idle_timeout());
      auto [ec, n] = co_await http::async_read(tls_, buf_, parser, tuple_awaitable);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        x.up_ec = ec;
        stream.reset(tunnel::ResetCode::cancel, "client request failed");
        co_return;
      }
      parser.get().body().size = chunk_size - parser.get().body().size;
      parser.get().body().data = chunk.get();
      parser.get().body().more = !parser.is_done();
      x.bytes_in += parser.get().body().size;
      shared_->metrics.bytes_from_clients.fetch_add(parser.get().body().size,
                                                    std::memory_order_relaxed);
    } else {
      parser.get().body().data = nullptr;
      parser.get().body().size = 0;
    }
    touch();
    auto [ec, n] = co_await http::async_write(stream, sr, tuple_awaitable);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      x.up_ec = ec;
      co_return;
    }
    touch();
  } while (!parser.is_done() && !sr.is_done());
  // A kept stream carries the next request: the end of this one is in its
  // HTTP framing, not in a FIN.
  if (!x.upstream_keep_alive) stream.shutdown_send();
  x.request_done = true;
}

asio::awaitable<void> HttpsSession::forward_response(Exchange& x) {
  auto self = shared_from_this();
  auto& stream = *stream_;
  for (;;) {
    http::response_parser<http::buffer_body> rp;
    rp.header_limit(kResponseHeaderLimit);
    rp.body_limit(boost::none);
    if (x.head) rp.skip(true);
    auto [ec, n] = co_await http::async_read_header(stream, tbuf_, rp, tuple_awaitable);
    touch();
    if (ec) {
      x.down_ec = ec;
      break;
    }
    watchdog_limit_ = idle_timeout();  // the head is here: response_header_timeout is over
    auto& res = rp.get();
    unsigned code = res.result_int();
    if (code / 100 == 1 && code != 101) {
      // Interim response (100 Continue, 103 Early Hints): pass it on.
      http::response<http::empty_body> interim{res.result(), 11};
      for (const auto& f : res.base()) interim.insert(f.name_string(), f.value());
      tcp().expires_after(idle_timeout());
      auto [iec, in] = co_await http::async_write(tls_, interim, tuple_awaitable);
      if (iec) {
        x.down_ec = iec;
        break;
      }
      continue;
    }
    x.status = code;
    if (code == 101) {
      if (!x.websocket) {
        x.down_ec = tunnel::Errc::protocol_error;  // 101 for a request that asked no upgrade
        break;
      }
      prepare_downstream_response(res.base(), true);
      http::response_serializer<http::buffer_body> sr{res};
      tcp().expires_after(idle_timeout());
      auto [uec, un] = co_await http::async_write_header(tls_, sr, tuple_awaitable);
      x.response_started = true;
      if (uec) {
        x.down_ec = uec;
        break;
      }
      x.upgraded = true;
      x.response_done = true;
      break;
    }
    bool no_body = rp.is_done();
    // The service keeps its connection (so may we keep the stream) when it
    // answered 1.1 without "Connection: close" and the body is not delimited
    // by closing.
    x.upstream_reusable = x.upstream_keep_alive && res.version() == 11 && res.keep_alive() &&
                          (no_body || res.has_content_length() || res.chunked());
    prepare_downstream_response(res.base(), false);
    if (policy_) policy::apply_response(*policy_, res.base());
    if (!no_body && !res.has_content_length() && !res.chunked()) {
      // The service delimits the body by closing; re-frame it for the client.
      if (x.version == 11) {
        res.chunked(true);
      } else {
        x.close_after = true;
      }
    }
    res.keep_alive(x.client_keep_alive && !x.close_after);
    http::response_serializer<http::buffer_body> sr{res};
    tcp().expires_after(idle_timeout());
    if (no_body) {
      auto [hec, hn] = co_await http::async_write_header(tls_, sr, tuple_awaitable);
      x.response_started = true;
      if (hec) x.down_ec = hec;
      x.response_done = !hec;
      break;
    }
    bool header_sent = false;
    auto length = rp.content_length();
    const std::size_t chunk_size =
        length ? std::min<std::size_t>(*length, kRelayChunk) : kRelayChunk;
    std::unique_ptr<char[]> chunk(new char[chunk_size]);
    if ((!length || *length > kRelayChunk) && tbuf_.capacity() < kBodyReadBuffer) {
      tbuf_.reserve(kBodyReadBuffer);
    }
    do {
      if (!rp.is_done()) {
        res.body().data = chunk.get();
        res.body().size = chunk_size;
        auto [rec, rn] = co_await http::async_read(stream, tbuf_, rp, tuple_awaitable);
        if (rec == http::error::need_buffer) rec = {};
        if (rec) {
          x.down_ec = rec;
          break;
        }
        res.body().size = chunk_size - res.body().size;
        res.body().data = chunk.get();
        res.body().more = !rp.is_done();
      } else {
        res.body().data = nullptr;
        res.body().size = 0;
      }
      touch();
      x.bytes_out += res.body().size;
      shared_->metrics.bytes_to_clients.fetch_add(res.body().size, std::memory_order_relaxed);
      tcp().expires_after(idle_timeout());
      auto [wec, wn] = co_await http::async_write(tls_, sr, tuple_awaitable);
      header_sent = true;
      x.response_started = true;
      if (wec == http::error::need_buffer) wec = {};
      if (wec) {
        x.down_ec = wec;
        break;
      }
      touch();
    } while (!rp.is_done() || !sr.is_done());
    if (!x.down_ec && header_sent) x.response_done = true;
    break;
  }
  if (!x.request_done && !x.upgraded) {
    // The response is over (or failed) before the request body was read:
    // stop forwarding it. The connection cannot be reused after that.
    x.close_after = true;
    if (x.response_done) stream.reset(tunnel::ResetCode::cancel, "response complete");
    tcp().socket().cancel();
  }
  if (x.down_ec && !x.request_done) stream.reset(tunnel::ResetCode::cancel, "response failed");
}

asio::awaitable<void> HttpsSession::pipe_client_to_tunnel(Exchange& x) {
  auto self = shared_from_this();
  auto& stream = *stream_;
  // Bytes the client sent right behind the upgrade request belong to the pipe.
  if (buf_.size() > 0) {
    auto [ec, n] = co_await asio::async_write(stream, buf_.data(), tuple_awaitable);
    if (ec) co_return;
    buf_.consume(n);
  }
  buf_.shrink_to_fit();  // the pipe reads into its own buffer: free the head's
  std::vector<char> chunk(kPipeInitial);
  for (;;) {
    auto [ec, n] = co_await tls_.async_read_some(asio::buffer(chunk), tuple_awaitable);
    if (ec) {
      if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
        stream.shutdown_send();
      } else {
        stream.reset(tunnel::ResetCode::cancel, "client connection ended");
      }
      co_return;
    }
    touch();
    x.bytes_in += n;
    shared_->metrics.bytes_from_clients.fetch_add(n, std::memory_order_relaxed);
    auto [wec, wn] =
        co_await asio::async_write(stream, asio::buffer(chunk.data(), n), tuple_awaitable);
    if (wec) {
      tcp().cancel();
      co_return;
    }
    if (n == chunk.size() && chunk.size() < kRelayChunk) chunk.resize(chunk.size() * 2);
  }
}

asio::awaitable<void> HttpsSession::pipe_tunnel_to_client(Exchange& x) {
  auto self = shared_from_this();
  auto& stream = *stream_;
  if (tbuf_.size() > 0) {
    auto [ec, n] = co_await asio::async_write(tls_, tbuf_.data(), tuple_awaitable);
    if (ec) {
      stream.reset(tunnel::ResetCode::cancel, "client write failed");
      co_return;
    }
    tbuf_.consume(n);
  }
  tbuf_.shrink_to_fit();
  std::vector<char> chunk(kPipeInitial);
  for (;;) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(chunk), tuple_awaitable);
    if (ec) {
      // The service closed (or the tunnel failed): end the client connection.
      tcp().cancel();
      co_return;
    }
    touch();
    x.bytes_out += n;
    shared_->metrics.bytes_to_clients.fetch_add(n, std::memory_order_relaxed);
    auto [wec, wn] =
        co_await asio::async_write(tls_, asio::buffer(chunk.data(), n), tuple_awaitable);
    if (wec) {
      stream.reset(tunnel::ResetCode::cancel, "client write failed");
      co_return;
    }
    if (n == chunk.size() && chunk.size() < kRelayChunk) chunk.resize(chunk.size() * 2);
  }
}

}  // namespace

asio::awaitable<void> https_session(std::shared_ptr<EdgeShared> shared, tcp::socket sock) {
  auto tls = shared->https();
  auto session = std::make_shared<HttpsSession>(std::move(shared), std::move(sock), std::move(tls));
  co_await session->run();
}

}  // namespace hearth::edge
