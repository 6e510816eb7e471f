#include "hearth/common/admin.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace hearth::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

asio::awaitable<void> session(asio::ip::tcp::socket sock, Handler handler) {
  constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
  beast::tcp_stream stream(std::move(sock));
  beast::flat_buffer buf;
  for (int i = 0; i < 1000; ++i) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(0);
    stream.expires_after(std::chrono::seconds(30));
    auto [ec, n] = co_await http::async_read(stream, buf, parser, tuple_awaitable);
    if (ec) break;
    const auto& req = parser.get();
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "hearth");
    res.set(http::field::cache_control, "no-store");
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.result(http::status::method_not_allowed);
      res.set(http::field::content_type, "text/plain");
      res.body() = "GET only\n";
    } else {
      std::string_view target = req.target();
      if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
      Response r = handler(target);
      res.result(r.status);
      res.set(http::field::content_type, r.content_type);
      res.body() = std::move(r.body);
    }
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    bool keep = res.keep_alive();
    http::response_serializer<http::string_body> sr{res};
    boost::system::error_code wec;
    if (req.method() == http::verb::head) {
      std::tie(wec, std::ignore) = co_await http::async_write_header(stream, sr, tuple_awaitable);
    } else {
      std::tie(wec, std::ignore) = co_await http::async_write(stream, sr, tuple_awaitable);
    }
    if (wec || !keep) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

}  // namespace hearth::admin
