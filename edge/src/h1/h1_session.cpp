// The HTTP/1.1 front end (Beast): reads request heads on one client
// connection and hands each request to the exchange as a Downstream. Keeps
// one tunnel stream slot per connection (parked between requests), so the
// origin keeps one service connection per client connection.

#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "exchange/exchange.hpp"
#include "hearth/common/log.hpp"
#include "hearth/edge/http_rules.hpp"
#include "hearth/edge/policy.hpp"
#include "support/asio.hpp"
#include "tls/client_conn.hpp"

namespace hearth::edge {
namespace {

namespace beast = boost::beast;
using tcp = asio::ip::tcp;

constexpr std::size_t kRelayChunk = 16 * 1024;
constexpr std::size_t kBodyReadBuffer = 64 * 1024;

class H1Downstream final : public Downstream {
 public:
  H1Downstream(ClientConn& conn, beast::flat_buffer& buf,
               http::request_parser<http::buffer_body>& parser,
               std::shared_ptr<const config::EdgeConfig> cfg)
      : tls_(conn.tls),
        buf_(buf),
        parser_(parser),
        cfg_(std::move(cfg)),
        version_(parser.get().version() == 10 ? 10 : 11),
        keep_alive_(parser.get().keep_alive()),
        head_request_(parser.get().method() == http::verb::head),
        idle_(cfg_->idle_timeout) {}

  const char* protocol() const override { return "h1"; }
  // Four TLS records per relay step: a download costs a quarter of the
  // coroutine round trips and write operations of one record per step.
  std::size_t response_chunk() const override { return 64 * 1024; }
  http::request<http::buffer_body>& request() override { return parser_.get(); }
  bool body_pending() const override { return !parser_.is_done(); }
  void set_idle_timeout(std::chrono::milliseconds limit) override { idle_ = limit; }
  void set_body_limit(std::uint64_t limit) override {
    if (limit > 0) {
      parser_.body_limit(limit);
    } else {
      parser_.body_limit(boost::none);
    }
  }
  std::optional<std::uint64_t> body_length() const override {
    auto n = parser_.content_length();
    return n ? std::optional<std::uint64_t>(*n) : std::nullopt;
  }
  bool client_keep_alive() const override { return keep_alive_ && !close_after_; }
  DownstreamState state() const override { return state_; }
  bool hands_off_upgrade() const override { return true; }

  asio::awaitable<BodyRead> read_body(asio::mutable_buffer b) override;
  asio::awaitable<error_code> write_interim(const http::response_header<>& res) override;
  asio::awaitable<error_code> write_head(http::response_header<>& res, bool end) override;
  asio::awaitable<error_code> write_body(asio::const_buffer data, bool end) override;
  asio::awaitable<error_code> reply(const LocalReply& r, std::string_view request_id) override;
  void stop_reading() override {
    close_after_ = true;
    error_code ignored;
    tls_.socket().cancel(ignored);
  }
  void cancel() override { tls_.cancel(); }
  void abort() override {
    close_after_ = true;
    tls_.cancel();
  }

 private:
  TlsSocket& tls_;
  beast::flat_buffer& buf_;
  http::request_parser<http::buffer_body>& parser_;
  std::shared_ptr<const config::EdgeConfig> cfg_;
  unsigned version_;
  bool keep_alive_;
  bool head_request_;
  std::chrono::milliseconds idle_;  // [edge] idle_timeout, or the request policy's
  bool close_after_ = false;
  bool reserved_ = false;
  DownstreamState state_ = DownstreamState::head_read;
  // The response being relayed: its head waits for the first body bytes, so
  // head and body leave in one TLS record, as before the split.
  http::response<http::buffer_body> res_;
  std::optional<http::response_serializer<http::buffer_body>> sr_;
};

asio::awaitable<BodyRead> H1Downstream::read_body(asio::mutable_buffer b) {
  if (!reserved_) {
    reserved_ = true;
    if (buf_.capacity() < kBodyReadBuffer) buf_.reserve(kBodyReadBuffer);
  }
  // Whatever body bytes are there, at once: read_some parses what arrived
  // instead of waiting for the buffer to fill (a streamed upload keeps moving).
  std::size_t got = 0;
  while (got == 0 && !parser_.is_done()) {
    parser_.get().body().data = b.data();
    parser_.get().body().size = b.size();
    tls_.expires_after(idle_);
    auto [ec, n] = co_await http::async_read_some(tls_, buf_, parser_, tuple_awaitable);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return BodyRead{ec, 0, false};
    got = b.size() - parser_.get().body().size;
  }
  co_return BodyRead{{}, got, parser_.is_done()};
}

asio::awaitable<error_code> H1Downstream::write_interim(const http::response_header<>& res) {
  http::response<http::empty_body> interim{res.result(), 11};
  for (const auto& f : res) interim.insert(f.name_string(), f.value());
  tls_.expires_after(idle_);
  auto [ec, n] = co_await http::async_write(tls_, interim, tuple_awaitable);
  co_return ec;
}

asio::awaitable<error_code> H1Downstream::write_head(http::response_header<>& res, bool end) {
  if (res.result_int() == 101) {
    http::response<http::buffer_body> up{std::move(res)};
    http::response_serializer<http::buffer_body> sr{up};
    tls_.expires_after(idle_);
    auto [ec, n] = co_await http::async_write_header(tls_, sr, tuple_awaitable);
    state_ = DownstreamState::response_started;
    if (ec) co_return ec;
    state_ = DownstreamState::upgraded;
    tls_.expires_never();  // the pipe's idle timer bounds it (upgraded_pipe.cpp)
    co_return error_code{};
  }
  res_.base() = std::move(res);
  if (!end && !res_.has_content_length() && !res_.chunked()) {
    // The service delimits the body by closing; re-frame it for the client.
    if (version_ == 11) {
      res_.chunked(true);
    } else {
      close_after_ = true;
    }
  }
  res_.keep_alive(keep_alive_ && !close_after_);
  sr_.emplace(res_);
  if (!end) co_return error_code{};  // goes out with the first body bytes
  tls_.expires_after(idle_);
  auto [ec, n] = co_await http::async_write_header(tls_, *sr_, tuple_awaitable);
  state_ = DownstreamState::response_started;
  if (!ec) state_ = DownstreamState::response_done;
  co_return ec;
}

asio::awaitable<error_code> H1Downstream::write_body(asio::const_buffer data, bool end) {
  res_.body().data = const_cast<void*>(data.data());
  res_.body().size = data.size();
  res_.body().more = !end;
  tls_.expires_after(idle_);
  auto [ec, n] = co_await http::async_write(tls_, *sr_, tuple_awaitable);
  state_ = DownstreamState::response_started;
  if (ec == http::error::need_buffer) ec = {};
  if (!ec && end && sr_->is_done()) state_ = DownstreamState::response_done;
  co_return ec;
}

asio::awaitable<error_code> H1Downstream::reply(const LocalReply& r, std::string_view request_id) {
  auto res = make_error_response(r.status, version_, r.keep_alive, r.retry_after, request_id);
  if (!r.www_authenticate.empty()) res.set(http::field::www_authenticate, r.www_authenticate);
  policy::decorate_local_reply(r.policy, res);  // error page, security headers (issue 9)
  if (!r.keep_alive) close_after_ = true;
  http::response_serializer<http::string_body> sr{res};
  tls_.expires_after(idle_);
  error_code ec;
  if (head_request_) {
    std::tie(ec, std::ignore) = co_await http::async_write_header(tls_, sr, tuple_awaitable);
  } else {
    std::tie(ec, std::ignore) = co_await http::async_write(tls_, sr, tuple_awaitable);
  }
  state_ = ec ? DownstreamState::aborted : DownstreamState::response_done;
  co_return ec;
}

}  // namespace

asio::awaitable<std::unique_ptr<UpgradedPipe>> run_h1(std::shared_ptr<ClientConn> conn) {
  auto& shared = *conn->shared;
  // client -> edge. Bounded: an endless chunk extension or trailer section
  // ends in buffer_overflow (400) instead of growing memory.
  beast::flat_buffer buf(client_read_buffer_limit(shared.config()->max_header_size));
  UpstreamSlot slot;
  ExchangeEnv env{conn->shared, conn->id,          conn->client_ip,
                  nullptr,      conn->client_port, conn->peer_trusted};
  bool first = true;
  for (;;) {
    if (shared.draining.load(std::memory_order_relaxed)) break;
    // Limits from the config of now: a SIGHUP applies to the next request of a
    // keep-alive connection.
    auto cfg = shared.config();
    http::request_parser<http::buffer_body> parser;
    parser.header_limit(cfg->max_header_size);
    // The largest limit any policy allows; the request's own is set once its
    // policy is known (Downstream::set_body_limit).
    if (auto limit = policy::largest_body_limit(*cfg); limit > 0) {
      parser.body_limit(limit);
    } else {
      parser.body_limit(boost::none);
    }
    conn->tls.expires_after(first ? cfg->header_timeout : cfg->idle_timeout);
    auto [ec, n] = co_await http::async_read_header(conn->tls, buf, parser, tuple_awaitable);
    if (!ec) {
      // A reload while this connection waited for the head applies to this
      // request already: the body limit is re-armed (chunked bodies are
      // checked per chunk from here on) and a Content-Length is checked as
      // Beast's parser would have.
      if (auto now = shared.config(); now != cfg) {
        cfg = std::move(now);
        if (auto limit = policy::largest_body_limit(*cfg); limit > 0) {
          parser.body_limit(limit);
          if (auto len = parser.content_length(); len && *len > limit) {
            ec = http::error::body_limit;
          }
        } else {
          parser.body_limit(boost::none);
        }
      }
    }
    if (ec) {
      if (is_quiet_close(ec) || ec == http::error::partial_message) break;
      auto status = ec == http::error::header_limit ? http::status::request_header_fields_too_large
                    : ec == http::error::body_limit ? http::status::payload_too_large
                                                    : http::status::bad_request;
      log::info("client.bad_request",
                {{"conn", conn->id}, {"client", conn->client_ip}, {"error", ec.message()}});
      auto res = make_error_response(status, 11, false, std::nullopt, "");
      shared.metrics.count_request(static_cast<unsigned>(status));
      conn->tls.expires_after(cfg->idle_timeout);
      co_await http::async_write(conn->tls, res, tuple_awaitable);
      break;
    }
    first = false;
    shared.metrics.requests_in_flight.fetch_add(1, std::memory_order_relaxed);
    H1Downstream down(*conn, buf, parser, cfg);
    bool keep = co_await run_exchange(env, down, slot);
    if (slot.upgraded) {
      // A 101 went out: the pipe takes the connection (and this request's
      // place in requests_in_flight) once this frame is gone.
      if (buf.size() > 0) {
        slot.upgraded->from_client.assign(static_cast<const char*>(buf.data().data()), buf.size());
      }
      co_return std::move(slot.upgraded);
    }
    shared.metrics.requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
    // Large bodies grew the buffer; an idle keep-alive connection gives it back.
    if (buf.size() == 0 && buf.capacity() > kRelayChunk) buf.shrink_to_fit();
    if (!keep) break;
  }
  slot.clear();
  co_return nullptr;
}

}  // namespace hearth::edge
