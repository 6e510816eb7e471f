#pragma once
// A tiny plain-HTTP admin endpoint (/healthz, /readyz, /metrics, /status),
// shared by the edge and the origin. Bind it to loopback: it has no auth.

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

boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket sock, Handler handler);

}  // namespace hearth::admin
