// The protocol-neutral exchange: see exchange.hpp. Ported from the HTTP/1.1
// session (proxy.cpp) so that HTTP/1.1 behaves exactly as before, with two
// changes in the relay core: response and request bodies are forwarded as
// soon as bytes arrive (http::async_read_some, not async_read into a buffer
// that must fill first), and the front end is reached only through
// Downstream.

#include "exchange/exchange.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>

#include "access.hpp"
#include "hearth/common/log.hpp"
#include "hearth/edge/http_rules.hpp"
#include "hearth/edge/policy.hpp"
#include "hearth/tunnel/errors.hpp"
#include "shared.hpp"
#include "support/asio.hpp"
#include "tls/authority.hpp"

namespace hearth::edge {
namespace {

namespace beast = boost::beast;
using namespace asio::experimental::awaitable_operators;

constexpr std::size_t kRelayChunk = 16 * 1024;  // one TLS record / one h2 DATA frame
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

// Every wait on the tunnel side is bounded by this watchdog: when neither
// direction made progress for `limit`, the stream is reset (which fails the
// pending tunnel operations) and pending client operations are cancelled.
// Shared with its timer callbacks, which may run after the exchange ended.
class Watchdog : public std::enable_shared_from_this<Watchdog> {
 public:
  explicit Watchdog(asio::any_io_executor ex) : timer_(std::move(ex)) {}

  // A new limit for the waits still to come (the response head arrived:
  // response_header_timeout gives way to the idle timeout).
  void set_limit(std::chrono::milliseconds limit) {
    if (limit_.count() != 0) limit_ = limit;
  }
  void arm(std::chrono::milliseconds limit, tunnel::TunnelStream* stream, Downstream* down) {
    limit_ = limit;
    stream_ = stream;
    down_ = down;
    fired_ = false;
    touch();
    timer_.expires_after(limit);
    timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_timer(ec); });
  }
  void disarm() {
    limit_ = {};
    stream_ = nullptr;
    down_ = nullptr;
    timer_.cancel();
  }
  void touch() { last_ = std::chrono::steady_clock::now(); }
  bool fired() const { return fired_; }

 private:
  void on_timer(error_code ec) {
    if (ec || limit_.count() == 0) return;
    auto idle = std::chrono::steady_clock::now() - last_;
    if (idle >= limit_) {
      fired_ = true;
      if (stream_) stream_->reset(tunnel::ResetCode::timeout, "edge idle timeout");
      if (down_) down_->cancel();
      return;
    }
    timer_.expires_after(limit_ - std::chrono::duration_cast<std::chrono::milliseconds>(idle));
    timer_.async_wait([self = shared_from_this()](error_code e) { self->on_timer(e); });
  }

  asio::steady_timer timer_;
  std::chrono::milliseconds limit_{};
  std::chrono::steady_clock::time_point last_;
  tunnel::TunnelStream* stream_ = nullptr;
  Downstream* down_ = nullptr;
  bool fired_ = false;
};

// Where each side of one attempt stands.
enum class RequestSide { sending, done, failed };
enum class ResponseSide { waiting, relaying, done, upgraded, failed };

class Exchange {
 public:
  Exchange(ExchangeEnv env, Downstream& down, UpstreamSlot& slot, asio::any_io_executor ex)
      : env_(std::move(env)),
        cfg_(env_.shared->config()),
        m_(env_.shared->metrics),
        down_(down),
        slot_(slot),
        watchdog_(std::make_shared<Watchdog>(std::move(ex))) {}
  ~Exchange() { watchdog_->disarm(); }

  asio::awaitable<bool> run();

 private:
  asio::awaitable<void> forward_request();
  asio::awaitable<void> forward_response();
  asio::awaitable<void> pipe_client_to_tunnel();
  asio::awaitable<void> pipe_tunnel_to_client();
  asio::awaitable<bool> local_reply(http::status status, bool keep_alive,
                                    std::optional<unsigned> retry_after = std::nullopt,
                                    std::string www_authenticate = {});
  // This request's policy may shorten or lengthen the [edge] timeouts (issue 9).
  std::chrono::milliseconds idle_timeout() const {
    return policy_ && policy_->idle_timeout ? *policy_->idle_timeout : cfg_->idle_timeout;
  }
  void log_request(std::string_view origin, std::string_view reason = {});
  // HTTP/1.1 after a 101: the stream and the log line go to slot_.upgraded.
  void hand_off_upgrade(std::string_view origin);
  void new_attempt() {
    req_side_ = RequestSide::sending;
    res_side_ = ResponseSide::waiting;
    status_ = 0;
    up_ec_ = down_ec_ = {};
    client_broke_ = false;
    bytes_in_ = bytes_out_ = 0;
    upstream_reusable_ = false;
  }
  bool response_started() const { return down_.state() != DownstreamState::head_read; }
  void touch() { watchdog_->touch(); }

  ExchangeEnv env_;
  std::shared_ptr<const config::EdgeConfig> cfg_;  // this exchange's snapshot
  Metrics& m_;
  Downstream& down_;
  UpstreamSlot& slot_;
  std::shared_ptr<Watchdog> watchdog_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  // The request, as the client sent it (for the log) and what it asks for.
  std::string method_;
  std::string target_;
  std::string authority_;
  std::string request_id_;
  std::string peer_ip_;  // who handed us the request (the connection's client)
  bool head_ = false;
  bool websocket_ = false;
  bool upstream_keep_alive_ = false;        // we asked the service to keep the connection
  const config::Policy* policy_ = nullptr;  // this request's policy; owned by cfg_

  // One attempt.
  RequestSide req_side_ = RequestSide::sending;
  ResponseSide res_side_ = ResponseSide::waiting;
  unsigned status_ = 0;
  error_code up_ec_;    // client side (or writing to the stream)
  error_code down_ec_;  // service side (or writing to the client)
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
  bool upstream_reusable_ = false;  // ... and the service's response allows it
  bool client_broke_ = false;       // reading the client's body failed
};

void Exchange::log_request(std::string_view origin, std::string_view reason) {
  log_access(
      m_, *cfg_,
      AccessLine{started_, env_.conn_id, env_.client_ip, down_.protocol(), method_, authority_,
                 target_, request_id_, origin, reason, status_, bytes_in_, bytes_out_});
}

void Exchange::hand_off_upgrade(std::string_view origin) {
  auto pipe = std::make_unique<UpgradedPipe>();
  pipe->stream = std::move(*slot_.stream);
  auto& tbuf = slot_.buf;
  if (tbuf.size() > 0) {
    pipe->from_service.assign(static_cast<const char*>(tbuf.data().data()), tbuf.size());
    tbuf.consume(tbuf.size());
  }
  tbuf.shrink_to_fit();
  pipe->idle_timeout = policy_ && policy_->websocket_idle_timeout ? *policy_->websocket_idle_timeout
                                                                  : cfg_->websocket_idle_timeout;
  pipe->cfg = cfg_;
  pipe->started = started_;
  pipe->conn_id = env_.conn_id;
  pipe->client_ip = env_.client_ip;
  pipe->method = std::move(method_);
  pipe->authority = std::move(authority_);
  pipe->target = std::move(target_);
  pipe->request_id = std::move(request_id_);
  pipe->origin = std::string(origin);
  pipe->status = status_;
  pipe->bytes_in = bytes_in_;
  pipe->bytes_out = bytes_out_;
  slot_.clear();
  slot_.upgraded = std::move(pipe);
}

asio::awaitable<bool> Exchange::local_reply(http::status status, bool keep_alive,
                                            std::optional<unsigned> retry_after,
                                            std::string www_authenticate) {
  status_ = static_cast<unsigned>(status);
  m_.count_request(status_);
  // A named local, not a temporary inside the co_await: GCC 12 destroys a
  // temporary with a std::string member twice there (free(): invalid pointer).
  LocalReply reply{status, retry_after, keep_alive, std::move(www_authenticate), policy_};
  auto ec = co_await down_.reply(reply, request_id_);
  co_return !ec && keep_alive;
}

asio::awaitable<bool> Exchange::run() {
  auto& req = down_.request();
  head_ = req.method() == http::verb::head;
  request_id_ = effective_request_id(req["X-Request-ID"], generate_request_id());
  method_ = std::string(req.method_string());
  target_ = std::string(origin_form_target(req.target()));
  authority_ = std::string(requested_authority(req));
  // Behind a trusted proxy (issue 9) the client is the one its
  // X-Forwarded-For names: policies, logs, X-Real-IP and the OPEN frame see
  // that address (its port is unknown: 0), and the proxy becomes the hop
  // appended to X-Forwarded-For and Forwarded.
  peer_ip_ = env_.client_ip;
  if (env_.peer_trusted) {
    const auto& trust = cfg_->https_trust;
    std::string client =
        client_behind_proxies(req.base(), env_.client_ip, [&trust](const asio::ip::address& a) {
          return trust.trusts(policy::client_info(a).address);
        });
    if (client != env_.client_ip) {
      env_.client_ip = std::move(client);
      env_.client_port = 0;
    }
  }

  // A body we never read leaves an HTTP/1.1 connection unusable for the next request.
  const bool body_pending = down_.body_pending();
  const bool keep_if_error = down_.client_keep_alive() && !body_pending;

  if (auto reject = check_request_head(req.base())) {
    log::info("client.rejected", {{"conn", env_.conn_id},
                                  {"client", env_.client_ip},
                                  {"reason", reject->reason},
                                  {"request_id", request_id_}});
    co_await local_reply(reject->status, false);
    if (body_pending) down_.stop_reading();
    log_request("");
    co_return false;
  }
  if (auto reject = check_request_limits(req.base(),
                                         {cfg_->max_uri_size, policy::largest_body_limit(*cfg_)})) {
    log::info("client.rejected", {{"conn", env_.conn_id},
                                  {"client", env_.client_ip},
                                  {"reason", reject->reason},
                                  {"request_id", request_id_}});
    co_await local_reply(reject->status, false);
    if (body_pending) down_.stop_reading();
    log_request("");
    co_return false;
  }
  auto host = request_host(req.base());
  if (!host) {  // check_request_head guarantees one; stay defensive
    co_await local_reply(http::status::bad_request, false);
    co_return false;
  }
  if (env_.cert_names && !certificate_covers(*env_.cert_names, *host)) {
    // A browser reuses an HTTP/2 connection for every name its certificate
    // covers; anything else was not meant for this connection (RFC 9110 15.5.20).
    bool keep = co_await local_reply(http::status::misdirected_request, keep_if_error);
    if (body_pending) down_.stop_reading();
    log_request("");
    co_return keep;
  }
  // Policies (issue 9), before routing: the target is normalized in place,
  // then the matched policy may answer by itself (403, 429, 401, 413, 400).
  {
    error_code aec;
    auto addr = asio::ip::make_address(env_.client_ip, aec);
    auto gate = policy::on_request_head(*cfg_, *host, req.base(), policy::client_info(addr),
                                        env_.shared->policies, std::chrono::steady_clock::now());
    policy_ = gate.policy;
    down_.set_body_limit(gate.body_limit);
    down_.set_idle_timeout(idle_timeout());
    target_ = std::string(origin_form_target(req.target()));
    if (gate.reply) {
      log::info("policy.refused", {{"conn", env_.conn_id},
                                   {"client", env_.client_ip},
                                   {"policy", policy_ ? policy_->id : ""},
                                   {"status", static_cast<unsigned>(gate.reply->status)},
                                   {"reason", gate.reply->reason},
                                   {"request_id", request_id_}});
      bool keep = co_await local_reply(gate.reply->status, keep_if_error, gate.reply->retry_after,
                                       gate.reply->www_authenticate);
      if (body_pending) down_.stop_reading();
      log_request("", gate.reply->reason);
      co_return keep;
    }
    // A Content-Length over this request's own limit: 413 before any byte
    // reaches the service (check_request_limits saw the largest limit only).
    if (auto len = down_.body_length(); gate.body_limit > 0 && len && *len > gate.body_limit) {
      co_await local_reply(http::status::payload_too_large, false);
      if (body_pending) down_.stop_reading();
      log_request("", "body too large");
      co_return false;
    }
  }
  websocket_ = is_websocket_upgrade(req.base());

  // Reuse the parked stream when this request goes to the same route of the
  // same registry state over a tunnel that is still usable.
  std::shared_ptr<const TunnelInfo> tunnel_info;
  bool reused = false;
  if (slot_.stream && !websocket_ && slot_.stream->reusable() && slot_.tunnel->conn->usable() &&
      env_.shared->registry.group_for(*host, target_) == slot_.group) {
    tunnel_info = slot_.tunnel;
    reused = true;
  } else {
    slot_.clear();
  }

  auto ex = co_await asio::this_coro::executor;
  ForwardInfo info{env_.client_ip, "https",          authority_,
                   request_id_,    websocket_,       !websocket_ && req.version() == 11,
                   peer_ip_,       env_.peer_trusted};
  prepare_upstream_request(req.base(), info);
  if (policy_) policy::apply_request(*policy_, req.base());
  upstream_keep_alive_ = info.keep_alive;

  for (int attempt = 0;; ++attempt) {
    if (!reused) {
      std::shared_ptr<const RouteGroup> group;
      auto pick = env_.shared->registry.pick(*host, target_, tunnel_info, &group);
      if (pick == PickResult::unknown_host) {
        bool keep = co_await local_reply(http::status::not_found, keep_if_error);
        if (body_pending) down_.stop_reading();
        log_request("");
        co_return keep;
      }
      if (pick == PickResult::offline) {
        bool keep = co_await local_reply(http::status::service_unavailable, keep_if_error, 5);
        if (body_pending) down_.stop_reading();
        log_request("");
        co_return keep;
      }
      if (pick == PickResult::unhealthy) {  // the origin's health check fails: no trip home
        bool keep = co_await local_reply(http::status::service_unavailable, keep_if_error, 5);
        if (body_pending) down_.stop_reading();
        log_request("", "unhealthy");
        co_return keep;
      }
      slot_.stream = tunnel_info->conn->open_stream(
          tunnel::Open{*host, std::string(open_path(target_)),
                       env_.client_ip + " " + std::to_string(env_.client_port),
                       websocket_ ? tunnel::StreamKind::websocket : tunnel::StreamKind::http},
          ex);
      if (!slot_.stream) {
        bool keep = co_await local_reply(http::status::service_unavailable, keep_if_error, 1);
        if (body_pending) down_.stop_reading();
        log_request(tunnel_info->origin);
        co_return keep;
      }
      m_.tunnel_streams_opened.fetch_add(1, std::memory_order_relaxed);
      slot_.tunnel = tunnel_info;
      slot_.group = std::move(group);
    }
    slot_.stream->set_parked(false);

    // Until the response head arrives, the policy's response_header_timeout.
    watchdog_->arm(policy_ && policy_->response_header_timeout ? *policy_->response_header_timeout
                                                               : idle_timeout(),
                   &*slot_.stream, &down_);
    if (body_pending) {
      co_await (forward_request() && forward_response());
    } else {
      // Without a body, forward_request only writes the head into the
      // stream and never waits on the client, so the two run one after the
      // other: awaitable_operators' && spawns both halves and installs
      // cancellation handlers on every operation inside them (about a dozen
      // heap allocations per request, issue 11).
      co_await forward_request();
      co_await forward_response();
    }

    // Nothing reached the client and no request body was consumed: the
    // request can go again on a fresh stream when the kept one was closed
    // under us (the service's keep-alive timeout) or the origin refused it
    // because it is draining (the edge then picks another live tunnel).
    // (Without a body, forward_request only writes to the stream, so up_ec
    // is a stream error too.) On a kept stream the service may have seen the
    // request before closing, so only idempotent methods go again, as nginx
    // does; a RESET draining means the origin never passed it on.
    error_code stream_ec = down_ec_ ? down_ec_ : up_ec_;
    bool retry = attempt == 0 && !response_started() && !watchdog_->fired() && !body_pending &&
                 stream_ec &&
                 ((reused && is_idempotent(req.method())) || stream_ec == tunnel::Errc::draining);
    if (!retry) break;
    log::debug("proxy.retry", {{"conn", env_.conn_id},
                               {"request_id", request_id_},
                               {"origin", tunnel_info->origin},
                               {"error", stream_ec.message()}});
    new_attempt();
    watchdog_->disarm();
    slot_.stream.reset();
    reused = false;
  }

  bool keep = false;
  if (res_side_ == ResponseSide::upgraded && down_.hands_off_upgrade()) {
    watchdog_->disarm();
    hand_off_upgrade(tunnel_info->origin);
    co_return false;
  }
  if (res_side_ == ResponseSide::upgraded) {
    m_.websockets_active.fetch_add(1, std::memory_order_relaxed);
    watchdog_->arm(policy_ && policy_->websocket_idle_timeout ? *policy_->websocket_idle_timeout
                                                              : cfg_->websocket_idle_timeout,
                   &*slot_.stream, &down_);
    co_await (pipe_client_to_tunnel() && pipe_tunnel_to_client());
    m_.websockets_active.fetch_sub(1, std::memory_order_relaxed);
  } else if (!response_started()) {
    // Nothing reached the client yet: answer for the home side.
    http::status status = http::status::bad_gateway;
    std::optional<unsigned> retry;
    auto ec = down_ec_;
    if (watchdog_->fired()) {
      status = http::status::gateway_timeout;
    } else if (ec == tunnel::Errc::draining) {
      status = http::status::service_unavailable;
      retry = 1;
    } else if (ec == tunnel::Errc::no_route) {
      status = http::status::not_found;
    } else if (ec == tunnel::Errc::connection_lost) {
      retry = 5;
    } else if (up_ec_ && (!down_ec_ || client_broke_)) {
      // The client broke its own request (bad chunk line, trailers past the
      // buffer bound, ...); the stream error that follows is our own reset.
      status = http::status::bad_request;
    }
    if (auto client_status = client_body_error_status(up_ec_)) status = *client_status;
    if (!(up_ec_ && is_quiet_close(up_ec_) && !watchdog_->fired())) {
      co_await local_reply(status, false, retry);
    }
    if (req_side_ != RequestSide::done) down_.stop_reading();
    log_proxy_failed(env_.conn_id, request_id_, tunnel_info->origin, down_ec_, up_ec_,
                     watchdog_->fired());
  } else {
    m_.count_request(status_);
    keep = res_side_ == ResponseSide::done && req_side_ == RequestSide::done &&
           down_.client_keep_alive() && !up_ec_ && !down_ec_;
    // A response cut short must not look complete: HTTP/2 resets the stream.
    if (res_side_ != ResponseSide::done) down_.abort();
  }
  watchdog_->disarm();
  if (keep && upstream_reusable_ && slot_.buf.size() == 0 && slot_.stream->reusable()) {
    slot_.stream->set_parked(true);
  } else {
    slot_.clear();
  }
  // Large bodies grew the buffer; an idle keep-alive connection gives it back.
  if (slot_.buf.size() == 0 && slot_.buf.capacity() > kRelayChunk) slot_.buf.shrink_to_fit();
  log_request(tunnel_info->origin);
  co_return keep;
}

asio::awaitable<void> Exchange::forward_request() {
  auto& stream = *slot_.stream;
  auto& req = down_.request();
  http::request_serializer<http::buffer_body> sr{req};
  auto [wec, wn] = co_await http::async_write_header(stream, sr, tuple_awaitable);
  touch();
  if (wec) {
    up_ec_ = wec;
    req_side_ = RequestSide::failed;
    co_return;
  }
  if (websocket_) {
    req_side_ = RequestSide::done;  // the rest of the client's bytes are WebSocket frames
    co_return;
  }
  // The relay buffer is sized to the body (a GET has none): a 16 KiB array
  // in the coroutine frame cost a large malloc per request.
  bool pending = down_.body_pending();
  auto clen = down_.body_length();
  const std::size_t chunk_size =
      !pending ? 0 : (clen ? std::min<std::size_t>(*clen, kRelayChunk) : kRelayChunk);
  std::unique_ptr<char[]> chunk(chunk_size ? new char[chunk_size] : nullptr);
  do {
    if (pending) {
      auto r = co_await down_.read_body(asio::buffer(chunk.get(), chunk_size));
      if (r.ec) {
        up_ec_ = r.ec;
        client_broke_ = true;
        req_side_ = RequestSide::failed;
        stream.reset(tunnel::ResetCode::cancel, "client request failed");
        co_return;
      }
      pending = !r.end;
      req.body().data = chunk.get();
      req.body().size = r.n;
      req.body().more = pending;
      bytes_in_ += r.n;
      m_.bytes_from_clients.fetch_add(r.n, std::memory_order_relaxed);
    } else {
      req.body().data = nullptr;
      req.body().size = 0;
      req.body().more = false;
    }
    touch();
    auto [ec, n] = co_await http::async_write(stream, sr, tuple_awaitable);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      up_ec_ = ec;
      req_side_ = RequestSide::failed;
      co_return;
    }
    touch();
  } while (pending || !sr.is_done());
  // A kept stream carries the next request: the end of this one is in its
  // HTTP framing, not in a FIN.
  if (!upstream_keep_alive_) stream.shutdown_send();
  req_side_ = RequestSide::done;
}

asio::awaitable<void> Exchange::forward_response() {
  auto& stream = *slot_.stream;
  auto& tbuf = slot_.buf;
  for (;;) {
    http::response_parser<http::buffer_body> rp;
    rp.header_limit(kResponseHeaderLimit);
    rp.body_limit(boost::none);
    if (head_) rp.skip(true);
    auto [ec, n] = co_await http::async_read_header(stream, tbuf, rp, tuple_awaitable);
    touch();
    if (ec) {
      down_ec_ = ec;
      break;
    }
    auto& res = rp.get();
    watchdog_->set_limit(idle_timeout());  // the head is here: response_header_timeout is over
    unsigned code = res.result_int();
    if (code / 100 == 1 && code != 101) {
      // Interim response (100 Continue, 103 Early Hints): pass it on.
      auto iec = co_await down_.write_interim(res.base());
      if (iec) {
        down_ec_ = iec;
        break;
      }
      continue;
    }
    status_ = code;
    if (code == 101) {
      if (!websocket_) {
        down_ec_ = tunnel::Errc::protocol_error;  // 101 for a request that asked no upgrade
        break;
      }
      prepare_downstream_response(res.base(), true);
      if (policy_) policy::apply_response(*policy_, res.base());
      auto uec = co_await down_.write_head(res.base(), false);
      if (uec) {
        down_ec_ = uec;
        break;
      }
      res_side_ = ResponseSide::upgraded;
      break;
    }
    bool no_body = rp.is_done();
    // The service keeps its connection (so may we keep the stream) when it
    // answered 1.1 without "Connection: close" and the body is not delimited
    // by closing.
    upstream_reusable_ = upstream_keep_alive_ && res.version() == 11 && res.keep_alive() &&
                         (no_body || res.has_content_length() || res.chunked());
    prepare_downstream_response(res.base(), false);
    if (policy_) policy::apply_response(*policy_, res.base());
    res_side_ = ResponseSide::relaying;
    if (no_body) {
      auto hec = co_await down_.write_head(res.base(), true);
      if (hec) {
        down_ec_ = hec;
        break;
      }
      res_side_ = ResponseSide::done;
      break;
    }
    auto length = rp.content_length();
    auto hec = co_await down_.write_head(res.base(), false);
    if (hec) {
      down_ec_ = hec;
      break;
    }
    const std::size_t relay_chunk = down_.response_chunk();
    const std::size_t chunk_size =
        length ? std::min<std::size_t>(*length, relay_chunk) : relay_chunk;
    std::unique_ptr<char[]> chunk(new char[chunk_size]);
    if ((!length || *length > kRelayChunk) && tbuf.capacity() < kBodyReadBuffer) {
      tbuf.reserve(kBodyReadBuffer);
    }
    bool failed = false;
    while (!rp.is_done()) {
      // Forward what arrived at once: read_some parses whatever the stream
      // has (coalescing only what is already there) instead of waiting for
      // the chunk to fill, so a service that writes 100 bytes and pauses is
      // seen at once (server-sent events, streamed rendering).
      std::size_t got = 0;
      while (got == 0 && !rp.is_done()) {
        res.body().data = chunk.get();
        res.body().size = chunk_size;
        auto [rec, rn] = co_await http::async_read_some(stream, tbuf, rp, tuple_awaitable);
        if (rec == http::error::need_buffer) rec = {};
        if (rec) {
          down_ec_ = rec;
          failed = true;
          break;
        }
        got = chunk_size - res.body().size;
      }
      if (failed) break;
      touch();
      bytes_out_ += got;
      m_.bytes_to_clients.fetch_add(got, std::memory_order_relaxed);
      auto wec = co_await down_.write_body(asio::const_buffer(chunk.get(), got), rp.is_done());
      if (wec) {
        down_ec_ = wec;
        failed = true;
        break;
      }
      touch();
    }
    if (!failed) res_side_ = ResponseSide::done;
    break;
  }
  if (down_ec_) res_side_ = ResponseSide::failed;
  if (req_side_ != RequestSide::done && res_side_ != ResponseSide::upgraded) {
    // The response is over (or failed) before the request body was read:
    // stop forwarding it. An HTTP/1.1 connection cannot be reused after that.
    if (res_side_ == ResponseSide::done)
      stream.reset(tunnel::ResetCode::cancel, "response complete");
    down_.stop_reading();
  }
  if (down_ec_ && req_side_ != RequestSide::done) {
    stream.reset(tunnel::ResetCode::cancel, "response failed");
  }
}

asio::awaitable<void> Exchange::pipe_client_to_tunnel() {
  auto& stream = *slot_.stream;
  std::vector<char> chunk(kPipeInitial);
  for (;;) {
    auto r = co_await down_.read_body(asio::buffer(chunk));
    if (r.n > 0) {
      touch();
      bytes_in_ += r.n;
      m_.bytes_from_clients.fetch_add(r.n, std::memory_order_relaxed);
      auto [wec, wn] =
          co_await asio::async_write(stream, asio::buffer(chunk.data(), r.n), tuple_awaitable);
      if (wec) {
        down_.abort();
        co_return;
      }
    }
    if (r.ec) {
      stream.reset(tunnel::ResetCode::cancel, "client connection ended");
      co_return;
    }
    if (r.end) {
      stream.shutdown_send();
      co_return;
    }
    if (r.n == chunk.size() && chunk.size() < kRelayChunk) chunk.resize(chunk.size() * 2);
  }
}

asio::awaitable<void> Exchange::pipe_tunnel_to_client() {
  auto& stream = *slot_.stream;
  auto& tbuf = slot_.buf;
  if (tbuf.size() > 0) {
    auto wec = co_await down_.write_body(tbuf.data(), false);
    if (wec) {
      stream.reset(tunnel::ResetCode::cancel, "client write failed");
      co_return;
    }
    tbuf.consume(tbuf.size());
  }
  tbuf.shrink_to_fit();
  std::vector<char> chunk(kPipeInitial);
  for (;;) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(chunk), tuple_awaitable);
    if (ec) {
      // The service closed (or the tunnel failed): end the client's side.
      if (ec == asio::error::eof) {
        co_await down_.write_body({}, true);
      } else {
        down_.abort();
      }
      co_return;
    }
    touch();
    bytes_out_ += n;
    m_.bytes_to_clients.fetch_add(n, std::memory_order_relaxed);
    auto wec = co_await down_.write_body(asio::const_buffer(chunk.data(), n), false);
    if (wec) {
      stream.reset(tunnel::ResetCode::cancel, "client write failed");
      co_return;
    }
    if (n == chunk.size() && chunk.size() < kRelayChunk) chunk.resize(chunk.size() * 2);
  }
}

}  // namespace

void log_access(Metrics& m, const config::EdgeConfig& cfg, const AccessLine& line) {
  auto elapsed = std::chrono::steady_clock::now() - line.started;
  m.request_stats.observe(line.authority, line.status, elapsed, line.bytes_in, line.bytes_out);
  if (!access_log_wanted(cfg, line.status)) return;  // access_log, access_log_sample
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
  log::info("request", {{"conn", line.conn_id},
                        {"client", line.client_ip},
                        {"proto", line.proto},
                        {"method", line.method},
                        {"host", line.authority},
                        {"path", redact_query(line.target, cfg.log_redact_params)},
                        {"status", line.status},
                        {"ms", ms},
                        {"in", line.bytes_in},
                        {"out", line.bytes_out},
                        {"origin", line.origin},
                        {"reason", line.reason},
                        {"request_id", line.request_id}});
}

UpstreamSlot::UpstreamSlot() : buf(client_read_buffer_limit(kResponseHeaderLimit)) {}

asio::awaitable<bool> run_exchange(ExchangeEnv env, Downstream& down, UpstreamSlot& slot) {
  auto ex = co_await asio::this_coro::executor;
  Exchange x(std::move(env), down, slot, ex);
  co_return co_await x.run();
}

}  // namespace hearth::edge
