#pragma once
// A tiny plain-HTTP admin endpoint (/, /healthz, /readyz, /metrics, /status),
// shared by the edge and the origin. On loopback it needs no auth; anywhere
// else config requires admin_token_file, and every path then needs the token.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <string>
#include <string_view>

namespace hearth::admin {

struct Response {
  unsigned status = 200;
  std::string content_type = "text/plain";
  std::string body;
};

// Called on the session's thread for each GET/HEAD; `path` excludes the query.
using Handler = std::function<Response(std::string_view path)>;

// `token` non-empty: every request must carry "Authorization: Bearer TOKEN"
// (or HTTP Basic with TOKEN as the password, so a browser can open the
// dashboard); anything else gets 401.
boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket sock, Handler handler,
                                     std::string token = {});

// The check above, exposed for tests: does this Authorization value carry token?
bool authorized(std::string_view authorization, std::string_view token);

}  // namespace hearth::admin
