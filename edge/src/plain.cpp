// Plain-HTTP listeners: the port-80 redirect to HTTPS, and the admin API
// (/healthz, /readyz, /metrics, /status) on the shared admin session.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "acme_glue.hpp"
#include "admin_pages.hpp"
#include "hearth/common/admin.hpp"
#include "hearth/common/log.hpp"
#include "hearth/edge/http_rules.hpp"
#include "shared.hpp"
#include "support/asio.hpp"
#include "wireguard.hpp"

namespace hearth::edge {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

}  // namespace

asio::awaitable<void> http_redirect_session(std::shared_ptr<EdgeShared> shared, tcp::socket sock,
                                            ClientPeer peer) {
  if (peer.refuse_proxy_header &&
      !co_await no_proxy_header(*shared, sock, peer, shared->config()->header_timeout)) {
    co_return;
  }
  beast::tcp_stream stream(std::move(sock));
  beast::flat_buffer buf;
  auto cfg = shared->config();
  for (int i = 0; i < 100; ++i) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(cfg->max_header_size);
    parser.body_limit(0);  // a redirect needs no body; a client that sends one gets closed
    stream.expires_after(cfg->header_timeout);
    auto [ec, n] = co_await http::async_read(stream, buf, parser, tuple_awaitable);
    if (ec) {
      if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
          ec != asio::error::eof && ec != asio::error::connection_reset) {
        auto res = make_error_response(http::status::bad_request, 11, false, std::nullopt, "");
        co_await http::async_write(stream, res, tuple_awaitable);
      }
      break;
    }
    const auto& req = parser.get();
    http::response<http::string_body> res;
    if (is_acme_challenge(req.target())) {
      res = acme_http01_reply(*shared, req);  // issue 12: never redirect a challenge
    } else {
      std::optional<std::uint16_t> port;
      if (shared->https_port != 443) port = shared->https_port;
      res = make_redirect_to_https(req.base(), port);
      res.keep_alive(req.keep_alive());
    }
    shared->metrics.count_request(res.result_int());
    bool keep = res.keep_alive();
    auto [wec, wn] = co_await http::async_write(stream, res, tuple_awaitable);
    if (wec || !keep) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> admin_session(std::shared_ptr<EdgeShared> shared, tcp::socket sock) {
  // A named handler, not a lambda temporary inside the co_await expression:
  // GCC 12 destroys such temporaries twice (an extra shared_ptr release that
  // freed EdgeShared under ASan).
  admin::Handler handler = [shared](std::string_view path) {
    auto r = admin_response(*shared, path);  // admin_pages.cpp
    acme_admin(*shared, path, r.body);       // issue 12: certificates in /status and /metrics
    return r;
  };
  std::string token = shared->config()->admin_token;  // admin_token_file (issue 13)
  co_await admin::session(std::move(sock), std::move(handler), std::move(token));
}

}  // namespace hearth::edge
