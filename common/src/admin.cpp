#include "hearth/common/admin.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>

namespace hearth::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

bool equal_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

bool authorized(std::string_view authorization, std::string_view token) {
  if (token.empty()) return true;
  while (!authorization.empty() && authorization.front() == ' ') authorization.remove_prefix(1);
  while (!authorization.empty() && authorization.back() == ' ') authorization.remove_suffix(1);
  if (iequals_prefix(authorization, "bearer ")) {
    return equal_secret(authorization.substr(7), token);
  }
  if (iequals_prefix(authorization, "basic ")) {
    std::string_view b64 = authorization.substr(6);
    if (b64.empty() || b64.size() > 8192 || b64.size() % 4 != 0) return false;
    std::string decoded(b64.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                            reinterpret_cast<const unsigned char*>(b64.data()),
                            static_cast<int>(b64.size()));
    if (n < 0) return false;
    std::size_t len = static_cast<std::size_t>(n);
    if (b64.back() == '=') --len;
    if (b64.size() > 1 && b64[b64.size() - 2] == '=') --len;
    decoded.resize(len);
    auto colon = decoded.find(':');  // any user name; the password is the token
    return colon != std::string::npos &&
           equal_secret(std::string_view(decoded).substr(colon + 1), token);
  }
  return false;
}

asio::awaitable<void> session(asio::ip::tcp::socket sock, Handler handler, std::string token) {
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
    if (!authorized(req[http::field::authorization], token)) {
      res.result(http::status::unauthorized);
      res.set(http::field::content_type, "text/plain");
      res.insert(http::field::www_authenticate, "Bearer realm=\"hearth admin\"");
      res.insert(http::field::www_authenticate, "Basic realm=\"hearth admin\", charset=\"UTF-8\"");
      res.body() = "admin token required (Authorization: Bearer TOKEN)\n";
    } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
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
