#pragma once
// HTTP/2 request head -> the neutral HTTP/1.1 head the exchange (and the
// tunnel, and the service) speak. Pure: fuzzed by tests/fuzz/h2_head_fuzz.cpp.

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::edge {

struct H2Field {
  std::string name;  // as decoded by HPACK (lower case, pseudo headers start with ':')
  std::string value;
};

struct H2HeadError {
  boost::beast::http::status status;
  std::string reason;  // for the log line
};

// Translates one request's header list into `out` (cleared first), HTTP/1.1:
//  - :method and :path become the request line (origin-form, or "*");
//    :authority becomes Host (it wins over a host field, RFC 9113 8.3.1);
//  - several cookie fields are joined with "; " (RFC 9113 8.2.3);
//  - without content-length and without END_STREAM on HEADERS, the body is
//    sent chunked ("Transfer-Encoding: chunked");
//  - an extended CONNECT (RFC 8441, :protocol = websocket) becomes
//    "GET :path" with "Connection: Upgrade", "Upgrade: websocket" and
//    Sec-WebSocket-Key = ws_key (HTTP/2 has none; the service needs one);
//    Sec-WebSocket-Version/-Protocol/-Extensions pass through;
//  - a CONNECT without :protocol becomes "CONNECT authority", which
//    check_request_head refuses like its HTTP/1.1 form.
// Errors (400): pseudo header after a regular one, unknown, repeated or
// missing pseudo headers, :protocol without CONNECT or not "websocket",
// connection-specific fields (connection, keep-alive, proxy-connection,
// transfer-encoding, upgrade, te other than "trailers"), a name that is not
// a lower-case token, a value with CR, LF or NUL.
std::optional<H2HeadError> h2_to_http1_head(std::span<const H2Field> fields, bool end_stream,
                                            std::string_view ws_key,
                                            boost::beast::http::request_header<>& out,
                                            bool& websocket);

}  // namespace hearth::edge
