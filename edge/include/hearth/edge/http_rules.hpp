#pragma once
// HTTP/1.1 rules the edge applies to what it proxies: which request heads are
// refused, how heads are rewritten on the way to the home service and back,
// and the small responses the edge writes itself. Pure functions over Beast
// header values (no I/O), so unit tests and libFuzzer reach every branch; the
// proxy session does the reading and writing.

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/tunnel/frame.hpp"

namespace hearth::edge {

struct RequestReject {
  boost::beast::http::status status;
  std::string reason;  // short, for the log line; not sent to the client
};

// Checks a parsed request head before anything is forwarded; nullopt when it may
// be proxied. Beast 1.81's parser lets several request-smuggling shapes through
// (duplicate or list-valued Content-Length with equal values; Transfer-Encoding
// whose last coding is not "chunked" or that repeats it, which Beast reads as "no
// body"; a Content-Length after such a Transfer-Encoding; missing or repeated
// Host; an obs-folded line that hides a header inside Host), so the session must
// call this right after the header is read and before any body byte is forwarded.
// Refuses with 400:
//  - Content-Length and Transfer-Encoding both present;
//  - Content-Length more than once (even with equal values), or not a plain
//    decimal that fits in 64 bits ("5, 5", "+5", " 5x" are refused);
//  - Transfer-Encoding on an HTTP/1.0 request (RFC 9112 6.1: framing is faulty);
//  - Transfer-Encoding (all field lines joined) that is not a list of plain
//    tokens ending in exactly one "chunked" (case-insensitive, OWS tolerated):
//    "chunked" and "gzip, chunked" pass; "gzip", "chunked, gzip",
//    "chunked, chunked", "chunked;x=1" and empty list elements are refused;
//  - no Host on HTTP/1.1, more than one Host, or a Host that normalize_host()
//    rejects (also on HTTP/1.0, where Host is optional);
//  - a request-target that is not origin-form ("/..."), "*" with OPTIONS, or
//    absolute-form "http(s)://authority[/path][?query]" with a valid authority
//    and no userinfo; a '#' anywhere in the target (fragments are never sent).
//    CONNECT's authority-form is refused: the edge is not a forward proxy;
//  - a WebSocket upgrade (is_websocket_upgrade) that carries a body (a
//    Content-Length other than 0, or chunked): the edge pipes raw bytes after
//    the head, so a service answering 200 would leave the body to be parsed as
//    the client's next request (request smuggling).
// Refuses with 501 a Transfer-Encoding that passes the rules above but is not a
// lone "chunked" ("gzip, chunked"): services may only understand chunked.
// Refuses with 405 TRACE and TRACK (they echo the request, cookies included).
// Refuses with 505 any version but 1.0 and 1.1 (Beast's parser already does;
// this keeps the rule true for heads built by hand).
std::optional<RequestReject> check_request_head(const boost::beast::http::request_header<>& req);

// The authority the client addressed, as sent (port included): for an
// absolute-form target its authority, which RFC 9112 3.2.2 says wins over the
// Host header; otherwise the Host header value. Empty when there is neither.
// This is the value for ForwardInfo::host (X-Forwarded-Host).
std::string_view requested_authority(const boost::beast::http::request_header<>& req);

// normalize_host(requested_authority(req)): the host to route on.
std::optional<std::string> request_host(const boost::beast::http::request_header<>& req);

// The target in origin form, for routing and for the upstream request line:
// "http://h/p?q" -> "/p?q", "http://h" -> "/"; origin-form and "*" unchanged.
// A view into target (or a static "/").
std::string_view origin_form_target(std::string_view target);

// GET over HTTP/1.1 with an "upgrade" token in Connection and a "websocket"
// protocol in Upgrade (case-insensitive, comma lists, every field line counted).
bool is_websocket_upgrade(const boost::beast::http::request_header<>& req);

struct ForwardInfo {
  std::string client_ip;   // the client: X-Real-IP (client_behind_proxies() when trusted)
  std::string proto;       // "https" (or "http")
  std::string host;        // requested_authority(req), as the client sent it
  std::string request_id;  // effective_request_id()
  bool websocket = false;  // is_websocket_upgrade(req)
  // Keep the upstream connection open for the next request (HTTP/1.1 only):
  // the edge reuses one tunnel stream, hence one service connection, per
  // client connection, as nginx's upstream keepalive does.
  bool keep_alive = false;
  // Who handed the request to the edge: the TCP peer, or the source a trusted
  // load balancer's PROXY header names (empty: client_ip). When it is one of
  // trusted_proxies, its X-Forwarded-For and Forwarded are kept and it is
  // appended to them; otherwise they are replaced (issue 9).
  std::string peer_ip{};
  bool peer_trusted = false;
};

// Rewrites a checked request head for the home service:
//  - an absolute-form target becomes origin-form, and Host is set to its
//    authority, so the service sees the host the edge routed on;
//  - X-Forwarded-For and Forwarded (RFC 7239) name the peer: when
//    info.peer_trusted, it is appended to the values the trusted proxy sent;
//    otherwise the client-sent values are dropped. Forwarded's new element is
//    for=peer;host=...;proto=... . Client-sent X-Forwarded-Proto/-Host/-Port
//    are never kept: X-Forwarded-Proto, X-Forwarded-Host and X-Request-ID are
//    set from info (an empty or unsafe value leaves the header out);
//  - client-sent X-Real-IP, True-Client-IP and CF-Connecting-IP are removed,
//    and X-Real-IP is set to client_ip;
//  - every header whose name contains '_' is removed (as nginx does by default):
//    CGI, WSGI and PHP map '-' and '_' to the same variable, so
//    "X_Forwarded_For" would reach them as X-Forwarded-For;
//  - hop-by-hop headers are removed: Connection and every header it names,
//    Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, and Proxy-Authorization
//    (credentials meant for a proxy, i.e. us). Connection may not name
//    Host, Content-Length or Transfer-Encoding away: that would change framing;
//  - then Connection is "Upgrade" with "Upgrade: websocket" for a WebSocket
//    upgrade; absent for an HTTP/1.1 request with info.keep_alive (the stream
//    stays open for the client connection's next request); else "close".
// Content-Length and Transfer-Encoding are left as they are.
void prepare_upstream_request(boost::beast::http::request_header<>& req, const ForwardInfo& info);

// Strips hop-by-hop headers from the service's response: Connection and what it
// names (never Content-Length, Transfer-Encoding), Keep-Alive, Proxy-Connection,
// TE, Trailer, Upgrade. When websocket_101 is true and res is a 101, Connection
// and Upgrade stay exactly as the service sent them. The session then sets its
// own keep-alive with res.keep_alive(...).
void prepare_downstream_response(boost::beast::http::response_header<>& res, bool websocket_101);

// The client's X-Request-ID when it is 1..128 characters of [A-Za-z0-9._:+/=-]
// (safe in headers, logs and HTML), otherwise `generated`.
std::string effective_request_id(std::string_view client_value, std::string_view generated);

// 32 lowercase hex characters from a thread-local PRNG seeded from
// std::random_device. Unique enough for correlating logs; NOT for secrets.
std::string generate_request_id();

// A response the edge writes itself: small HTML body naming the status and a
// hint ("the home server is offline, retry shortly"), Content-Type
// text/html; charset=utf-8, Cache-Control: no-store, Server: hearth,
// X-Request-ID (when request_id is non-empty and header-safe), Retry-After when
// set, Connection per keep_alive and version, Content-Length. The body is sent
// even for HEAD; the session clears it there.
boost::beast::http::response<boost::beast::http::string_body> make_error_response(
    boost::beast::http::status status, unsigned version, bool keep_alive,
    std::optional<unsigned> retry_after_seconds, std::string_view request_id);

// For the plain-HTTP listener: 301 to https://host[:port]/target, where host is
// request_host(req) (port dropped), :port is added unless https_port is nullopt
// or 443, and target is origin_form_target(req.target()) ("*" becomes "/").
// A 400 error response when the request has no valid host to redirect to.
boost::beast::http::response<boost::beast::http::string_body> make_redirect_to_https(
    const boost::beast::http::request_header<>& req, std::optional<std::uint16_t> https_port);

// True for "/.well-known/acme-challenge/..." (ACME http-01), which the plain-HTTP
// listener answers instead of redirecting. Accepts origin- or absolute-form.
bool is_acme_challenge(std::string_view target);

// The client behind trusted proxies, as nginx's real_ip_recursive finds it:
// X-Forwarded-For read from the right, skipping the addresses `trusted`
// accepts; the first one it does not. When every entry is trusted, the
// leftmost; when the header is absent, or an entry is not an address, the
// entries before it are not believed (`peer_ip` or the last trusted entry).
// Only for a request whose peer is itself trusted. Text as client_ip_string().
std::string client_behind_proxies(
    const boost::beast::http::request_header<>& req, std::string_view peer_ip,
    const std::function<bool(const boost::asio::ip::address&)>& trusted);

// One RFC 7239 forwarded-element: for=192.0.2.1;host=example.com;proto=https
// (an IPv6 node as for="[2001:db8::1]", a host that is not a token quoted).
std::string forwarded_element(std::string_view for_ip, std::string_view host,
                              std::string_view proto);

// Text form of a peer address for X-Forwarded-For and logs; an IPv4-mapped IPv6
// address ("::ffff:192.0.2.1", from a dual-stack listener) is shown as IPv4.
std::string client_ip_string(const boost::asio::ip::address& address);

// --- Limits from the edge config (issue 8, HTTP/1.1 defects) --------------

// Longest path the tunnel's OPEN frame carries: origins (older ones included)
// refuse longer strings, and the encoder would cut them.
inline constexpr std::size_t kMaxOpenPath = tunnel::kMaxStringField;
// Longest chunk-size line (size and extensions) or trailer section the edge
// buffers from a client before it answers 400 (see client_read_buffer_limit).
inline constexpr std::size_t kMaxChunkLine = 4096;

struct RequestLimits {
  std::uint64_t max_uri_size = 8 * 1024;  // [edge] max_uri_size
  std::uint64_t max_body_size = 0;        // [edge] max_body_size; 0: unlimited
};

// The limits that need config values, checked after check_request_head():
//  - 414 when the request-target is longer than max_uri_size, or when the path
//    the tunnel carries (open_path()) is longer than kMaxOpenPath, so nothing
//    the edge accepts is ever cut short on the way to the origin;
//  - 413 when Content-Length is over max_body_size (before any byte is sent on).
// A chunked body that grows over max_body_size is the parser's body_limit.
std::optional<RequestReject> check_request_limits(const boost::beast::http::request_header<>& req,
                                                  const RequestLimits& limits);

// What the OPEN frame carries as its path: origin_form_target(target) without
// the query. Origins route on the path alone (the query never matters there),
// and the query, where secrets live, stays out of the origin's logs. The service
// still gets the whole target in the request line.
std::string_view open_path(std::string_view target);

// The status for a failed read of a client's request body: 413 for Beast's
// body_limit, 400 for every other HTTP parse error (a malformed chunk size such
// as "0x10", "-10" or 20 digits, bad chunk extensions or trailers, a chunk line
// or trailer section over the read buffer's limit: buffer_overflow); nullopt for
// transport errors (EOF, reset, timeout), where the client is gone or late.
std::optional<boost::beast::http::status> client_body_error_status(
    const boost::system::error_code& ec);

// Size limit for the flat_buffer the edge reads a client connection into: room
// for a whole head (max_header_size), a chunk-size line or trailer section of up
// to kMaxChunkLine, and one 64 KiB body read. Beast needs a whole chunk line or
// trailer section in the buffer, so without a limit a client streaming an
// endless chunk extension grows it without bound; with it, the read fails with
// buffer_overflow (400, connection closed).
std::size_t client_read_buffer_limit(std::uint32_t max_header_size);

// --- Access logs ------------------------------------------------------------

// target with the value of every query parameter whose name is in `names`
// ([edge] log_redact_params; config::EdgeConfig holds the default list)
// replaced by "REDACTED": "/cb?code=abc&state=x" -> "/cb?code=REDACTED&state=x".
// Names compare case-insensitively after percent-decoding ("Tok%65n" is token);
// parameters are split on '&' and ';'; a parameter without '=' is left alone.
// Everything else, the path included, is kept byte for byte. `names` must be
// lower case (the config loader lowers them).
std::string redact_query(std::string_view target, std::span<const std::string> names);

}  // namespace hearth::edge
