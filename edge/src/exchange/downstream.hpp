#pragma once
// The one small interface between a front end (HTTP/1.1 over Beast, HTTP/2
// over nghttp2) and the protocol-neutral exchange (exchange.hpp). A front end
// turns what its client sent into a neutral request head: an HTTP/1.1
// request_header with an origin-form target, Host set, no pseudo headers,
// and framing (Content-Length or chunked) that says whether a body follows.
// Everything after that (checks, routing, the tunnel stream, retries, the
// response, logs and metrics) is the exchange's, once for both protocols.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "hearth/config/config.hpp"

namespace hearth::edge {

namespace http = boost::beast::http;
using boost::system::error_code;

// Where one downstream request stands; the front end keeps it, the exchange
// and the front end both read it (pingora's downstream state, not a bag of
// booleans).
enum class DownstreamState {
  head_read,         // request head known, nothing answered yet
  response_started,  // a final response head went out
  response_done,     // the whole response went out
  upgraded,          // 101 (HTTP/1.1) or 200 to an extended CONNECT (HTTP/2): a byte pipe
  aborted,           // reset (HTTP/2) or connection given up (HTTP/1.1)
};

// A response the edge writes itself (see make_error_response).
struct LocalReply {
  http::status status = http::status::bad_gateway;
  std::optional<unsigned> retry_after;
  bool keep_alive = false;                 // HTTP/1.1: the connection may carry another request
  std::string www_authenticate = {};       // a policy's 401
  const config::Policy* policy = nullptr;  // error page and response headers (issue 9)
};

struct BodyRead {
  error_code ec;
  std::size_t n = 0;
  bool end = false;  // the request body (or the client's side of a pipe) ended cleanly
};

class Downstream {
 public:
  virtual ~Downstream() = default;

  // "h1" / "h2", for logs.
  virtual const char* protocol() const = 0;
  // The neutral request (head and the body slot the exchange's serializer
  // uses). The exchange rewrites the head in place for the service.
  virtual http::request<http::buffer_body>& request() = 0;
  http::request_header<>& head() { return request().base(); }
  // True while request body bytes may still come from the client.
  virtual bool body_pending() const = 0;
  // The request's body limit once its policy is known (0: unlimited); bytes
  // past it fail read_body with http::error::body_limit (413).
  virtual void set_body_limit(std::uint64_t limit) = 0;
  // The request's policy idle_timeout for waits on this client (issue 9).
  virtual void set_idle_timeout(std::chrono::milliseconds limit) = 0;
  // The remaining body length when the client announced it.
  virtual std::optional<std::uint64_t> body_length() const = 0;
  // The client keeps its connection for another request (HTTP/1.1 keep-alive;
  // always true on HTTP/2, where a stream ends, not the connection).
  virtual bool client_keep_alive() const = 0;
  virtual DownstreamState state() const = 0;
  // After a 101 the exchange hands the stream over (UpstreamSlot::upgraded)
  // instead of running the pipe itself: HTTP/1.1, where the upgraded
  // connection is the front end's alone. An HTTP/2 stream shares its
  // connection, so its pipe stays in the exchange.
  virtual bool hands_off_upgrade() const { return false; }

  // Some decoded body bytes (after upgrade: raw pipe bytes), as soon as any
  // are there. n == 0 with end set: the body is over.
  virtual boost::asio::awaitable<BodyRead> read_body(boost::asio::mutable_buffer buf) = 0;
  // A 1xx other than 101 (100 Continue, 103 Early Hints).
  virtual boost::asio::awaitable<error_code> write_interim(const http::response_header<>& res) = 0;
  // The final response head (hop-by-hop headers already removed); end: no
  // body follows (HEAD, 204, 304, empty). A 101 turns the exchange into a pipe.
  virtual boost::asio::awaitable<error_code> write_head(http::response_header<>& res, bool end) = 0;
  // The most response body bytes write_body should be handed at once: what
  // one relay step moves. HTTP/1.1 takes several TLS records per write; an
  // HTTP/2 stream buffers what it is handed, so it stays at one DATA frame.
  virtual std::size_t response_chunk() const = 0;
  // Body bytes (after upgrade: raw pipe bytes); end: the last of them.
  virtual boost::asio::awaitable<error_code> write_body(boost::asio::const_buffer data,
                                                        bool end) = 0;
  // The edge answers by itself (nothing of a response went out before).
  virtual boost::asio::awaitable<error_code> reply(const LocalReply& r,
                                                   std::string_view request_id) = 0;
  // The response is complete while the request body is not: stop reading it
  // (HTTP/1.1: close after this exchange; HTTP/2: RST_STREAM(NO_ERROR) after
  // the response).
  virtual void stop_reading() = 0;
  // The watchdog fired: pending operations fail with operation_aborted; a
  // local reply may still follow.
  virtual void cancel() = 0;
  // Give up: pending operations fail. HTTP/1.1 cancels the connection's
  // operations (it cannot carry another request); HTTP/2 resets this stream only.
  virtual void abort() = 0;
};

}  // namespace hearth::edge
