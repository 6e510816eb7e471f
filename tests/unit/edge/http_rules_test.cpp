#include "hearth/edge/http_rules.hpp"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <catch2/catch.hpp>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hearth/config/config.hpp"

namespace http = boost::beast::http;
using namespace hearth::edge;
using namespace std::string_literals;

namespace {

// Request heads are built the way the proxy gets them: raw bytes through Beast's
// parser, so every test sees exactly what Beast lets through.
struct Parsed {
  boost::system::error_code ec;
  std::optional<http::request<http::empty_body>> req;
};

Parsed parse(std::string_view raw) {
  http::request_parser<http::empty_body> parser;
  parser.eager(false);
  // The session sets its own limit from max_body_size (0: unlimited); the rules
  // here must hold for any limit.
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  parser.header_limit(64 * 1024);  // room for the long request-targets below
  Parsed parsed;
  parser.put(boost::asio::buffer(raw.data(), raw.size()), parsed.ec);
  if (!parsed.ec && parser.is_header_done()) {
    parsed.req = parser.get();
  } else if (!parsed.ec) {
    parsed.ec = http::error::need_more;
  }
  return parsed;
}

http::request<http::empty_body> parse_ok(std::string_view raw) {
  Parsed parsed = parse(raw);
  INFO("beast: " << parsed.ec.message());
  REQUIRE_FALSE(parsed.ec);
  return *parsed.req;
}

// Beast accepts the head, and check_request_head refuses it with `status`.
void require_rejected(std::string_view raw, http::status status = http::status::bad_request) {
  const auto req = parse_ok(raw);
  const auto rejected = check_request_head(req);
  REQUIRE(rejected);
  CHECK(rejected->status == status);
  CHECK_FALSE(rejected->reason.empty());
}

void require_accepted(std::string_view raw) {
  const auto req = parse_ok(raw);
  const auto rejected = check_request_head(req);
  INFO((rejected ? rejected->reason : std::string("accepted")));
  CHECK_FALSE(rejected);
}

// Beast 1.81 refuses the head itself, with `expected`.
void require_beast_rejects(std::string_view raw, http::error expected) {
  const Parsed parsed = parse(raw);
  INFO(raw);
  CHECK(parsed.ec == expected);
}

std::string post_with(std::string_view framing) {
  return "POST /upload HTTP/1.1\r\nHost: a.example.com\r\n" + std::string(framing) + "\r\n";
}

template <bool isRequest>
std::string serialize(const http::header<isRequest>& head) {
  std::ostringstream out;
  out << head;
  return out.str();
}

}  // namespace

TEST_CASE("check_request_head accepts ordinary requests", "[http_rules]") {
  require_accepted("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_accepted("GET /x?y=1 HTTP/1.1\r\nHost: A.Example.com:443\r\n\r\n");
  require_accepted("GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n");
  require_accepted("GET / HTTP/1.0\r\n\r\n");  // Host is optional in HTTP/1.0
  require_accepted("GET / HTTP/1.0\r\nHost: a.example.com\r\n\r\n");
  require_accepted(post_with("Content-Length: 0\r\n"));
  require_accepted(post_with("Content-Length: 18446744073709551615\r\n"));
  require_accepted(post_with("Content-Length: 007\r\n"));
  require_accepted(post_with("Transfer-Encoding: chunked\r\n"));
  require_accepted("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n");
}

TEST_CASE("check_request_head refuses Content-Length with Transfer-Encoding", "[http_rules]") {
  // Beast refuses CL+TE when it recognizes the TE as chunked, in either order...
  require_beast_rejects(post_with("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
                        http::error::bad_transfer_encoding);
  require_beast_rejects(post_with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
                        http::error::bad_content_length);
  // ...and a non-chunked TE after a CL...
  require_beast_rejects(post_with("Content-Length: 5\r\nTransfer-Encoding: gzip\r\n"),
                        http::error::bad_transfer_encoding);
  // ...but not a CL after a TE that it does not take for chunked.
  require_rejected(post_with("Transfer-Encoding: gzip\r\nContent-Length: 5\r\n"));
  require_rejected(post_with("Transfer-Encoding: chunked, chunked\r\nContent-Length: 5\r\n"));
  require_rejected(post_with("Transfer-Encoding: chunked, gzip\r\nContent-Length: 0\r\n"));

  // The rule itself, on heads Beast would never produce.
  http::request<http::empty_body> req{http::verb::post, "/", 11};
  req.set(http::field::host, "a.example.com");
  req.set(http::field::content_length, "5");
  req.set(http::field::transfer_encoding, "chunked");
  CHECK(check_request_head(req)->status == http::status::bad_request);
}

TEST_CASE("check_request_head refuses repeated or non-decimal Content-Length", "[http_rules]") {
  // Beast merges equal values; a peer that takes the first or the last of a list
  // could still disagree, so any repetition is refused.
  require_rejected(post_with("Content-Length: 5\r\nContent-Length: 5\r\n"));
  require_rejected(post_with("Content-Length: 5, 5\r\n"));
  require_rejected(post_with("Content-Length: 5,5\r\n"));
  require_rejected(post_with("Content-Length: 0\r\nContent-Length: 0\r\n"));

  // Beast already refuses differing values and non-numbers.
  require_beast_rejects(post_with("Content-Length: 5\r\nContent-Length: 6\r\n"),
                        http::error::multiple_content_length);
  require_beast_rejects(post_with("Content-Length: 5, 6\r\n"),
                        http::error::multiple_content_length);
  require_beast_rejects(post_with("Content-Length: +5\r\n"), http::error::bad_content_length);
  require_beast_rejects(post_with("Content-Length: -1\r\n"), http::error::bad_content_length);
  require_beast_rejects(post_with("Content-Length: 0x10\r\n"), http::error::bad_content_length);
  require_beast_rejects(post_with("Content-Length: 5 5\r\n"), http::error::bad_content_length);
  require_beast_rejects(post_with("Content-Length: \r\n"), http::error::bad_content_length);
  require_beast_rejects(post_with("Content-Length: 18446744073709551616\r\n"),
                        http::error::bad_content_length);
  // Folded into "5 5": still refused.
  require_beast_rejects(post_with("Content-Length: 5\r\n 5\r\n"), http::error::bad_content_length);

  // The rule itself, on values Beast would have refused.
  for (const char* value :
       {"", "+5", "-1", "5x", "0x10", "5,5", "18446744073709551616", "99999999999999999999999"}) {
    http::request<http::empty_body> req{http::verb::post, "/", 11};
    req.set(http::field::host, "a.example.com");
    req.set(http::field::content_length, value);
    INFO(value);
    REQUIRE(check_request_head(req));
    CHECK(check_request_head(req)->status == http::status::bad_request);
  }
}

TEST_CASE("check_request_head requires exactly one final chunked coding", "[http_rules]") {
  require_accepted(post_with("Transfer-Encoding: chunked\r\n"));
  require_accepted(post_with("Transfer-Encoding: Chunked\r\n"));
  require_accepted(post_with("Transfer-Encoding: CHUNKED\r\n"));
  require_accepted(post_with("Transfer-Encoding:    chunked\r\n"));
  require_accepted(post_with("Transfer-Encoding:\tchunked\t\r\n"));
  // Well framed, but a coding besides chunked: 501 (a service may only know
  // chunked, and the edge does not decode the others). Several field lines are
  // one list.
  require_rejected(post_with("Transfer-Encoding: gzip, chunked\r\n"),
                   http::status::not_implemented);
  require_rejected(post_with("Transfer-Encoding: gzip,chunked\r\n"), http::status::not_implemented);
  require_rejected(post_with("Transfer-Encoding: gzip \t,\t chunked\r\n"),
                   http::status::not_implemented);
  require_rejected(post_with("Transfer-Encoding: identity, chunked\r\n"),
                   http::status::not_implemented);
  require_rejected(post_with("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
                   http::status::not_implemented);

  // What Beast 1.81 takes for "no body": the body would reach the service as the
  // next request.
  require_rejected(post_with("Transfer-Encoding: gzip\r\n"));
  require_rejected(post_with("Transfer-Encoding: identity\r\n"));
  require_rejected(post_with("Transfer-Encoding: chunked, gzip\r\n"));
  require_rejected(post_with("Transfer-Encoding: chunked, chunked\r\n"));
  require_rejected(post_with("Transfer-Encoding: chunked,chunked\r\n"));
  require_rejected(post_with("Transfer-Encoding: chunked, identity\r\n"));
  require_rejected(post_with("Transfer-Encoding: xchunked\r\n"));
  require_rejected(post_with("Transfer-Encoding: chunkedx\r\n"));
  require_rejected(post_with("Transfer-Encoding: \"chunked\"\r\n"));
  require_rejected(post_with("Transfer-Encoding: gzip\r\nTransfer-Encoding: gzip\r\n"));
  // Beast sets chunked for these, but they are not plain token lists.
  require_rejected(post_with("Transfer-Encoding: chunked,\r\n"));
  require_rejected(post_with("Transfer-Encoding: , chunked\r\n"));
  require_rejected(post_with("Transfer-Encoding: gzip,,chunked\r\n"));
  require_rejected(post_with("Transfer-Encoding: gzip;q=1, chunked\r\n"));
  require_rejected(post_with("Transfer-Encoding: chunked;x=1\r\n"));
  require_rejected(post_with("Transfer-Encoding: gzip chunked\r\n"));
  require_rejected(post_with("Transfer-Encoding:\r\n"));
  // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
  require_rejected("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");

  // Beast refuses a second line once it has seen chunked.
  require_beast_rejects(post_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
                        http::error::bad_transfer_encoding);
  require_beast_rejects(post_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
                        http::error::bad_transfer_encoding);
}

TEST_CASE("check_request_head and Transfer-Encoding whitespace tricks", "[http_rules]") {
  // A vertical tab or form feed is a control character: Beast refuses the value.
  require_beast_rejects(post_with("Transfer-Encoding: \x0b"
                                  "chunked\r\n"),
                        http::error::bad_value);
  require_beast_rejects(post_with("Transfer-Encoding: chunked\x0c\r\n"), http::error::bad_value);
  require_beast_rejects(post_with("Transfer-Encoding: chun\0ked\r\n"s), http::error::bad_value);
  // Whitespace before the colon makes the name invalid.
  require_beast_rejects(post_with("Transfer-Encoding : chunked\r\n"), http::error::bad_field);
  // Bare LF line endings are refused, so there is no LF/CRLF disagreement.
  require_beast_rejects("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n",
                        http::error::bad_version);
  require_beast_rejects(post_with("Transfer-Encoding: chunked\n"), http::error::bad_value);

  // Beast 1.81 accepts obs-fold and joins the lines with one space (RFC 9112
  // 5.2 allows that instead of a 400); the proxy re-serializes the head, so the
  // service never sees the fold. The joined value goes through the same rule.
  require_accepted(post_with("Transfer-Encoding:\r\n chunked\r\n"));
  require_rejected(post_with("Transfer-Encoding: gzip,\r\n\tchunked\r\n"),
                   http::status::not_implemented);
  require_rejected(post_with("Transfer-Encoding: chunked\r\n , chunked\r\n"));
  require_rejected(post_with("Transfer-Encoding: chunked\r\n gzip\r\n"));
  const auto folded = parse_ok(post_with("Transfer-Encoding: gzip,\r\n\tchunked\r\n"));
  CHECK(folded[http::field::transfer_encoding] == "gzip, chunked");
  CHECK(folded.chunked());

  // A header line that starts with a space is a fold of the previous line, not a
  // header of its own: " Transfer-Encoding: chunked" after Host lands inside the
  // Host value, which is then invalid...
  const auto into_host = parse_ok(post_with(" Transfer-Encoding: chunked\r\n"));
  CHECK(into_host[http::field::host] == "a.example.com Transfer-Encoding: chunked");
  CHECK(into_host.count(http::field::transfer_encoding) == 0);
  require_rejected(post_with(" Transfer-Encoding: chunked\r\n"));
  // ...and after any other header it is part of that header's value: neither
  // Beast nor the re-serialized head sent to the service has a Transfer-Encoding.
  auto into_other = parse_ok(post_with("X-Note: a\r\n Transfer-Encoding: chunked\r\n"));
  CHECK_FALSE(check_request_head(into_other));
  CHECK(into_other["X-Note"] == "a Transfer-Encoding: chunked");
  CHECK(into_other.count(http::field::transfer_encoding) == 0);
  CHECK_FALSE(into_other.chunked());
  prepare_upstream_request(into_other, {"192.0.2.7", "https", "a.example.com", "id", false});
  CHECK(serialize(into_other).find("\r\nTransfer-Encoding") == std::string::npos);
}

TEST_CASE("check_request_head enforces Host", "[http_rules]") {
  require_rejected("GET / HTTP/1.1\r\n\r\n");
  require_rejected("GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET / HTTP/1.1\r\nHost: a.example.com\r\nhost: b.example.com\r\n\r\n");
  require_rejected("GET / HTTP/1.0\r\nHost: a.example.com\r\nHost: b.example.com\r\n\r\n");
  require_rejected("GET / HTTP/1.1\r\nHost:\r\n\r\n");
  require_rejected("GET / HTTP/1.1\r\nHost: a.example.com, b.example.com\r\n\r\n");
  require_rejected("GET / HTTP/1.1\r\nHost: a example.com\r\n\r\n");
  require_rejected("GET / HTTP/1.1\r\nHost: a.example.com:x\r\n\r\n");
  require_rejected("GET / HTTP/1.1\r\nHost: user@a.example.com\r\n\r\n");
  require_rejected("GET / HTTP/1.1\r\nHost: a.example.com/x\r\n\r\n");
  require_rejected("GET / HTTP/1.0\r\nHost: -bad-\r\n\r\n");
  // Host spread over a fold is joined by Beast ("a. example.com") and then invalid.
  require_rejected("GET / HTTP/1.1\r\nHost: a.\r\n example.com\r\n\r\n");
  require_beast_rejects("GET / HTTP/1.1\r\nHost : a.example.com\r\n\r\n", http::error::bad_field);
}

TEST_CASE("check_request_head accepts only the request-target forms we serve", "[http_rules]") {
  require_accepted("OPTIONS * HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_accepted("GET http://a.example.com/x?y HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_accepted("GET HTTPS://A.example.com:8443/ HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_accepted("GET http://a.example.com HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_accepted("GET http://[::1]:8080/ HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  // HTTP/1.0 in absolute-form needs no Host: the target names it.
  require_accepted("GET http://a.example.com/ HTTP/1.0\r\n\r\n");

  require_rejected("GET * HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("CONNECT a.example.com:443 HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET a.example.com/x HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET ftp://a.example.com/ HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET http:/x HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET http:// HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET http:///x HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET http://bad_host!/ HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET http://u:p@a.example.com/ HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET http://a.example.com?x HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET /a#b HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET http://a.example.com/#b HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_rejected("GET ?x HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
}

TEST_CASE("check_request_head refuses other HTTP versions with 505", "[http_rules]") {
  // Beast refuses them while parsing the request line...
  require_beast_rejects("GET / HTTP/2.0\r\nHost: a.example.com\r\n\r\n", http::error::bad_version);
  require_beast_rejects("GET / HTTP/1.2\r\nHost: a.example.com\r\n\r\n", http::error::bad_version);
  require_beast_rejects("GET / HTTP/0.9\r\nHost: a.example.com\r\n\r\n", http::error::bad_version);
  require_beast_rejects("GET /\r\n\r\n", http::error::bad_target);
  // ...and the rule holds for heads built by hand.
  for (unsigned version : {9u, 12u, 20u, 99u}) {
    http::request<http::empty_body> req{http::verb::get, "/", version};
    req.set(http::field::host, "a.example.com");
    const auto rejected = check_request_head(req);
    REQUIRE(rejected);
    CHECK(rejected->status == http::status::http_version_not_supported);
  }
}

TEST_CASE("requested_authority, request_host and origin_form_target", "[http_rules]") {
  auto req = parse_ok("GET /x HTTP/1.1\r\nHost: A.Example.com:8443\r\n\r\n");
  CHECK(requested_authority(req) == "A.Example.com:8443");
  CHECK(request_host(req) == "a.example.com");

  // RFC 9112 3.2.2: the absolute-form authority wins over Host.
  req = parse_ok("GET http://B.example.com:80/p?q HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  CHECK(requested_authority(req) == "B.example.com:80");
  CHECK(request_host(req) == "b.example.com");

  req = parse_ok("GET / HTTP/1.0\r\n\r\n");
  CHECK(requested_authority(req).empty());
  CHECK_FALSE(request_host(req));

  CHECK(origin_form_target("/p?q") == "/p?q");
  CHECK(origin_form_target("*") == "*");
  CHECK(origin_form_target("http://h/p?q") == "/p?q");
  CHECK(origin_form_target("HTTPS://h:1/") == "/");
  CHECK(origin_form_target("http://h") == "/");
  CHECK(origin_form_target("http://h?q") == "?q");  // refused by check_request_head
}

TEST_CASE("is_websocket_upgrade", "[http_rules]") {
  auto upgrade = [](std::string_view extra, std::string_view start = "GET /ws HTTP/1.1") {
    return is_websocket_upgrade(
        parse_ok(std::string(start) + "\r\nHost: a.example.com\r\n" + std::string(extra) + "\r\n"));
  };
  CHECK(upgrade("Connection: Upgrade\r\nUpgrade: websocket\r\n"));
  CHECK(upgrade("Connection: upgrade\r\nUpgrade: WebSocket\r\n"));
  CHECK(upgrade("Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"));
  CHECK(upgrade("Connection: keep-alive\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"));
  CHECK(upgrade("Connection: Upgrade\r\nUpgrade: h2c, websocket\r\n"));
  CHECK(upgrade("Connection: Upgrade\r\nUpgrade: websocket/13\r\n"));
  CHECK(upgrade("Upgrade: websocket\r\nConnection:\tUPGRADE \r\n"));

  CHECK_FALSE(upgrade("Upgrade: websocket\r\n"));
  CHECK_FALSE(upgrade("Connection: Upgrade\r\n"));
  CHECK_FALSE(upgrade("Connection: Upgrade\r\nUpgrade: h2c\r\n"));
  CHECK_FALSE(upgrade("Connection: Upgraded\r\nUpgrade: websocket\r\n"));
  CHECK_FALSE(upgrade("Connection: keep-alive\r\nUpgrade: websocket\r\n"));
  CHECK_FALSE(upgrade("Connection: Upgrade\r\nUpgrade: websockets\r\n"));
  CHECK_FALSE(upgrade("Connection: Upgrade\r\nUpgrade: websocket\r\n", "POST /ws HTTP/1.1"));
  CHECK_FALSE(upgrade("Connection: Upgrade\r\nUpgrade: websocket\r\n", "GET /ws HTTP/1.0"));
}

TEST_CASE("prepare_upstream_request replaces forwarding headers", "[http_rules]") {
  auto req = parse_ok(
      "GET /x HTTP/1.1\r\nHost: a.example.com\r\n"
      "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n"
      "X-Forwarded-Proto: http\r\nX-Forwarded-Host: evil.example\r\n"
      "X-Forwarded-Port: 1\r\nForwarded: for=6.6.6.6\r\nX-Request-ID: spoofed\r\n"
      "Accept: */*\r\n\r\n");
  prepare_upstream_request(req, {"192.0.2.7", "https", "a.example.com", "abc123", false});

  CHECK(req.count("X-Forwarded-For") == 1);
  CHECK(req["X-Forwarded-For"] == "192.0.2.7");
  CHECK(req["X-Forwarded-Proto"] == "https");
  CHECK(req["X-Forwarded-Host"] == "a.example.com");
  CHECK(req.count("X-Request-ID") == 1);
  CHECK(req["X-Request-ID"] == "abc123");
  CHECK(req.count("X-Forwarded-Port") == 0);
  CHECK(req.count(http::field::forwarded) == 1);
  CHECK(req[http::field::forwarded] == "for=192.0.2.7;host=a.example.com;proto=https");
  CHECK(req[http::field::connection] == "close");
  CHECK(req[http::field::accept] == "*/*");
  CHECK(req[http::field::host] == "a.example.com");
  CHECK(req.target() == "/x");
}

TEST_CASE("prepare_upstream_request removes hop-by-hop headers", "[http_rules]") {
  auto req = parse_ok(
      "POST /x HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 3\r\n"
      "Connection: keep-alive, X-Secret\r\nConnection: x-other\r\n"
      "X-Secret: 1\r\nX-Other: 2\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
      "TE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nProxy-Authorization: Basic eDp5\r\n"
      "Authorization: Bearer t\r\nCookie: c=1\r\n\r\n");
  prepare_upstream_request(req, {"192.0.2.7", "https", "a.example.com", "id", false});

  for (const char* gone : {"X-Secret", "X-Other", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
                           "Upgrade", "Proxy-Authorization"}) {
    INFO(gone);
    CHECK(req.count(gone) == 0);
  }
  CHECK(req.count(http::field::connection) == 1);
  CHECK(req[http::field::connection] == "close");
  CHECK(req[http::field::content_length] == "3");
  CHECK(req[http::field::authorization] == "Bearer t");
  CHECK(req[http::field::cookie] == "c=1");
}

TEST_CASE("prepare_upstream_request never lets Connection remove framing", "[http_rules]") {
  // "Connection: Content-Length" would otherwise make the service read no body
  // while the edge streams one: a smuggled request.
  auto req = parse_ok(
      "POST /x HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 3\r\n"
      "Connection: Content-Length, Host, X-Forwarded-For, X-Request-ID, Connection, ,\r\n"
      "\r\n");
  prepare_upstream_request(req, {"192.0.2.7", "https", "a.example.com", "id", false});
  CHECK(req[http::field::content_length] == "3");
  CHECK(req[http::field::host] == "a.example.com");
  CHECK(req["X-Forwarded-For"] == "192.0.2.7");
  CHECK(req["X-Request-ID"] == "id");
  CHECK(req[http::field::connection] == "close");

  auto chunked = parse_ok(
      "POST /x HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: gzip, chunked\r\n"
      "Connection: transfer-encoding\r\n\r\n");
  prepare_upstream_request(chunked, {"192.0.2.7", "https", "a.example.com", "id", false});
  CHECK(chunked[http::field::transfer_encoding] == "gzip, chunked");
  CHECK(chunked.count(http::field::content_length) == 0);
}

TEST_CASE("prepare_upstream_request keeps the upstream connection for HTTP/1.1 only",
          "[http_rules]") {
  ForwardInfo keep{"192.0.2.7", "https", "a.example.com", "id", false, true};
  auto req = parse_ok(
      "GET /x HTTP/1.1\r\nHost: a.example.com\r\nConnection: close, X-Secret\r\n"
      "X-Secret: 1\r\n\r\n");
  prepare_upstream_request(req, keep);
  CHECK(req.count(http::field::connection) == 0);  // persistent by default in 1.1
  CHECK(req.count("X-Secret") == 0);

  auto old = parse_ok("GET /x HTTP/1.0\r\nHost: a.example.com\r\nConnection: keep-alive\r\n\r\n");
  prepare_upstream_request(old, keep);
  CHECK(old[http::field::connection] == "close");  // no 1.0 keep-alive upstream

  auto ws = parse_ok(
      "GET /ws HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade\r\n"
      "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n");
  prepare_upstream_request(ws, {"192.0.2.7", "https", "a.example.com", "id", true, true});
  CHECK(ws[http::field::connection] == "Upgrade");
}

TEST_CASE("prepare_upstream_request for a WebSocket upgrade", "[http_rules]") {
  auto req = parse_ok(
      "GET /ws HTTP/1.1\r\nHost: a.example.com\r\nConnection: keep-alive, Upgrade\r\n"
      "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n");
  REQUIRE(is_websocket_upgrade(req));
  prepare_upstream_request(req, {"192.0.2.7", "https", "a.example.com", "id", true});
  CHECK(req.count(http::field::connection) == 1);
  CHECK(req[http::field::connection] == "Upgrade");
  CHECK(req[http::field::upgrade] == "websocket");
  CHECK(req[http::field::sec_websocket_key] == "dGhlIHNhbXBsZSBub25jZQ==");
  CHECK(req[http::field::sec_websocket_version] == "13");
  CHECK(req[http::field::sec_websocket_protocol] == "chat");
  CHECK(is_websocket_upgrade(req));
}

TEST_CASE("prepare_upstream_request turns absolute-form into origin-form", "[http_rules]") {
  auto req =
      parse_ok("GET http://B.example.com:8080/p?q=1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  const ForwardInfo info{"192.0.2.7", "https", std::string(requested_authority(req)), "id", false};
  prepare_upstream_request(req, info);
  CHECK(req.target() == "/p?q=1");
  CHECK(req[http::field::host] == "B.example.com:8080");
  CHECK(req["X-Forwarded-Host"] == "B.example.com:8080");

  auto bare = parse_ok("GET https://b.example.com HTTP/1.0\r\n\r\n");
  prepare_upstream_request(bare, info);
  CHECK(bare.target() == "/");
  CHECK(bare[http::field::host] == "b.example.com");
}

TEST_CASE("prepare_upstream_request leaves out empty or unsafe values", "[http_rules]") {
  auto req = parse_ok(
      "GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Forwarded-Host: evil\r\n"
      "X-Request-ID: spoofed\r\n\r\n");
  prepare_upstream_request(req, {"", "https", "a\r\nX-Injected: 1", "", false});
  CHECK(req.count("X-Forwarded-For") == 0);
  CHECK(req.count("X-Forwarded-Host") == 0);
  CHECK(req.count("X-Request-ID") == 0);
  CHECK(req.count("X-Injected") == 0);
  CHECK(serialize(req).find("X-Injected") == std::string::npos);
}

TEST_CASE("prepare_upstream_request output serializes to a clean head", "[http_rules]") {
  auto req = parse_ok(
      "POST /api HTTP/1.1\r\nHost: a.example.com\r\nConnection: keep-alive\r\n"
      "Transfer-Encoding: chunked\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n");
  prepare_upstream_request(req, {"2001:db8::1", "https", "a.example.com", "rid", false});
  CHECK(serialize(req) ==
        "POST /api HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n"
        "X-Real-IP: 2001:db8::1\r\nX-Forwarded-For: 2001:db8::1\r\n"
        "Forwarded: for=\"[2001:db8::1]\";host=a.example.com;proto=https\r\n"
        "X-Forwarded-Proto: https\r\n"
        "X-Forwarded-Host: a.example.com\r\nX-Request-ID: rid\r\nConnection: close\r\n\r\n");
}

namespace {

http::response<http::empty_body> parse_response(std::string_view raw) {
  http::response_parser<http::empty_body> parser;
  parser.eager(false);
  parser.skip(true);  // as for a HEAD: we only want the head
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(raw.data(), raw.size()), ec);
  INFO("beast: " << ec.message());
  REQUIRE_FALSE(ec);
  REQUIRE(parser.is_header_done());
  return parser.get();
}

}  // namespace

TEST_CASE("prepare_downstream_response strips hop-by-hop headers", "[http_rules]") {
  auto res = parse_response(
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Internal\r\n"
      "X-Internal: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
      "TE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nSet-Cookie: a=1\r\n\r\n");
  prepare_downstream_response(res, false);
  for (const char* gone :
       {"Connection", "X-Internal", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade"}) {
    INFO(gone);
    CHECK(res.count(gone) == 0);
  }
  CHECK(res[http::field::content_length] == "5");
  CHECK(res[http::field::set_cookie] == "a=1");
}

TEST_CASE("prepare_downstream_response keeps framing named in Connection", "[http_rules]") {
  auto res = parse_response(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
      "Connection: Transfer-Encoding, Content-Length\r\n\r\n");
  prepare_downstream_response(res, false);
  CHECK(res[http::field::transfer_encoding] == "chunked");
  CHECK(res.count(http::field::connection) == 0);

  auto sized =
      parse_response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: content-length\r\n\r\n");
  prepare_downstream_response(sized, false);
  CHECK(sized[http::field::content_length] == "2");
}

TEST_CASE("prepare_downstream_response keeps a WebSocket 101 intact", "[http_rules]") {
  const std::string raw =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade, X-Internal\r\n"
      "Upgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
      "X-Internal: 1\r\nKeep-Alive: timeout=5\r\n\r\n";
  auto res = parse_response(raw);
  prepare_downstream_response(res, true);
  CHECK(res[http::field::connection] == "Upgrade, X-Internal");
  CHECK(res[http::field::upgrade] == "websocket");
  CHECK(res[http::field::sec_websocket_accept] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(res.count("X-Internal") == 0);
  CHECK(res.count(http::field::keep_alive) == 0);

  // Not a WebSocket exchange: a 101 is stripped like anything else.
  auto other = parse_response(raw);
  prepare_downstream_response(other, false);
  CHECK(other.count(http::field::connection) == 0);
  CHECK(other.count(http::field::upgrade) == 0);

  // The service refused the upgrade: not a 101, so Connection/Upgrade go.
  auto refused = parse_response(
      "HTTP/1.1 403 Forbidden\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Content-Length: 0\r\n\r\n");
  prepare_downstream_response(refused, true);
  CHECK(refused.count(http::field::connection) == 0);
  CHECK(refused.count(http::field::upgrade) == 0);
}

TEST_CASE("effective_request_id keeps only safe client values", "[http_rules]") {
  CHECK(effective_request_id("abc-123", "gen") == "abc-123");
  CHECK(effective_request_id("A.b_c:d+e/f=g-h", "gen") == "A.b_c:d+e/f=g-h");
  CHECK(effective_request_id("x", "gen") == "x");
  CHECK(effective_request_id(std::string(128, 'a'), "gen") == std::string(128, 'a'));
  CHECK(effective_request_id(std::string(129, 'a'), "gen") == "gen");
  CHECK(effective_request_id("", "gen") == "gen");
  CHECK(effective_request_id("a b", "gen") == "gen");
  CHECK(effective_request_id("a,b", "gen") == "gen");
  CHECK(effective_request_id("<script>", "gen") == "gen");
  CHECK(effective_request_id("a\r\nb", "gen") == "gen");
  CHECK(effective_request_id("caf\xc3\xa9", "gen") == "gen");
}

TEST_CASE("generate_request_id gives 32 lowercase hex characters", "[http_rules]") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = generate_request_id();
    REQUIRE(id.size() == 32);
    REQUIRE(id.find_first_not_of("0123456789abcdef") == std::string::npos);
    seen.insert(id);
  }
  CHECK(seen.size() == 1000);
  CHECK(effective_request_id(*seen.begin(), "gen") == *seen.begin());

  // Each thread has its own seeded generator.
  std::string other;
  std::thread([&] { other = generate_request_id(); }).join();
  CHECK(other.size() == 32);
  CHECK(seen.count(other) == 0);
}

TEST_CASE("make_error_response", "[http_rules]") {
  auto res = make_error_response(http::status::bad_gateway, 11, false, std::nullopt, "rid-1");
  CHECK(res.result() == http::status::bad_gateway);
  CHECK(res.version() == 11);
  CHECK(res[http::field::content_type] == "text/html; charset=utf-8");
  CHECK(res[http::field::cache_control] == "no-store");
  CHECK(res[http::field::server] == "hearth");
  CHECK(res["X-Request-ID"] == "rid-1");
  CHECK(res.count(http::field::retry_after) == 0);
  CHECK_FALSE(res.keep_alive());
  CHECK(res[http::field::connection] == "close");
  CHECK(res[http::field::content_length] == std::to_string(res.body().size()));
  CHECK(res.body().find("<h1>502 Bad Gateway</h1>") != std::string::npos);
  CHECK(res.body().find("The home service did not answer.") != std::string::npos);
  CHECK(res.body().find("rid-1") != std::string::npos);

  auto offline = make_error_response(http::status::service_unavailable, 11, true, 5u, "r");
  CHECK(offline[http::field::retry_after] == "5");
  CHECK(offline.keep_alive());
  CHECK(offline.count(http::field::connection) == 0);
  CHECK(offline.body().find("<h1>503 Service Unavailable</h1>") != std::string::npos);
  CHECK(offline.body().find("offline, retry shortly") != std::string::npos);

  auto missing = make_error_response(http::status::not_found, 10, true, std::nullopt, "");
  CHECK(missing[http::field::connection] == "keep-alive");
  CHECK(missing.count("X-Request-ID") == 0);
  CHECK(missing.body().find("No service is published for this host.") != std::string::npos);
  CHECK(missing.body().find("Request ID") == std::string::npos);

  for (auto status :
       {http::status::bad_request, http::status::request_timeout, http::status::payload_too_large,
        http::status::request_header_fields_too_large, http::status::internal_server_error,
        http::status::gateway_timeout, http::status::http_version_not_supported}) {
    auto r = make_error_response(status, 11, false, std::nullopt, "r");
    INFO(static_cast<unsigned>(status));
    CHECK(r.body().find("<h1>" + std::to_string(static_cast<unsigned>(status))) !=
          std::string::npos);
    CHECK(r.body().find("</h1><p>") != std::string::npos);  // every one of these has a hint
  }
  // No hint for others; an unknown code still renders.
  auto forbidden = make_error_response(http::status::forbidden, 11, false, std::nullopt, "r");
  CHECK(forbidden.body().find("</h1><p>Request ID") != std::string::npos);
  auto unknown = make_error_response(static_cast<http::status>(599), 11, false, std::nullopt, "r");
  CHECK(unknown.body().find("<h1>599 ") != std::string::npos);
  CHECK(unknown.body().find("<unknown") == std::string::npos);  // escaped
}

TEST_CASE("make_error_response escapes the request id", "[http_rules]") {
  auto res = make_error_response(http::status::bad_gateway, 11, false, std::nullopt,
                                 "<b>\"x\"&\r\nX-Injected: 1");
  CHECK(res.count("X-Request-ID") == 0);  // not header-safe
  CHECK(res.body().find("&lt;b&gt;&quot;x&quot;&amp;") != std::string::npos);
  CHECK(res.body().find("<b>") == std::string::npos);
}

TEST_CASE("make_redirect_to_https", "[http_rules]") {
  auto req = parse_ok("GET /a/b?c=1 HTTP/1.1\r\nHost: Tallow.Example.com:80\r\n\r\n");
  auto res = make_redirect_to_https(req, std::nullopt);
  CHECK(res.result() == http::status::moved_permanently);
  CHECK(res[http::field::location] == "https://tallow.example.com/a/b?c=1");
  CHECK(res[http::field::server] == "hearth");
  CHECK(res[http::field::content_length] == "0");
  CHECK(res.keep_alive());

  CHECK(make_redirect_to_https(req, 443)[http::field::location] ==
        "https://tallow.example.com/a/b?c=1");
  CHECK(make_redirect_to_https(req, 8443)[http::field::location] ==
        "https://tallow.example.com:8443/a/b?c=1");

  auto v6 = parse_ok("GET / HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n");
  auto v6_res = make_redirect_to_https(v6, 8443);
  CHECK(v6_res[http::field::location] == "https://[::1]:8443/");
  CHECK_FALSE(v6_res.keep_alive());

  auto absolute = parse_ok("GET http://b.example.com/x HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  CHECK(make_redirect_to_https(absolute, std::nullopt)[http::field::location] ==
        "https://b.example.com/x");

  auto star = parse_ok("OPTIONS * HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  CHECK(make_redirect_to_https(star, std::nullopt)[http::field::location] ==
        "https://a.example.com/");

  auto no_host = parse_ok("GET / HTTP/1.0\r\n\r\n");
  auto bad = make_redirect_to_https(no_host, std::nullopt);
  CHECK(bad.result() == http::status::bad_request);
  CHECK(bad.count(http::field::location) == 0);
  CHECK_FALSE(bad.keep_alive());
}

TEST_CASE("is_acme_challenge", "[http_rules]") {
  CHECK(is_acme_challenge("/.well-known/acme-challenge/abc_DEF-123"));
  CHECK(is_acme_challenge("/.well-known/acme-challenge/"));
  CHECK(is_acme_challenge("http://a.example.com/.well-known/acme-challenge/t"));
  CHECK_FALSE(is_acme_challenge("/.well-known/acme-challenge"));
  CHECK_FALSE(is_acme_challenge("/.well-known/acme-challengex/t"));
  CHECK_FALSE(is_acme_challenge("/x/.well-known/acme-challenge/t"));
  CHECK_FALSE(is_acme_challenge("/.WELL-KNOWN/acme-challenge/t"));
  CHECK_FALSE(is_acme_challenge("*"));
  CHECK_FALSE(is_acme_challenge(""));
}

TEST_CASE("client_ip_string shows IPv4-mapped addresses as IPv4", "[http_rules]") {
  using boost::asio::ip::make_address;
  CHECK(client_ip_string(make_address("192.0.2.1")) == "192.0.2.1");
  CHECK(client_ip_string(make_address("::ffff:192.0.2.1")) == "192.0.2.1");
  CHECK(client_ip_string(make_address("2001:db8::1")) == "2001:db8::1");
  CHECK(client_ip_string(make_address("::1")) == "::1");
  CHECK(client_ip_string(make_address("::")) == "::");
}

// --- issue 8: HTTP/1.1 defects found under attack ---------------------------

TEST_CASE("check_request_head answers 501 only for well-framed other codings", "[http_rules]") {
  // A coding list that does not end in exactly one chunked stays a 400: the body
  // length cannot be known (RFC 9112 6.3), so the connection must close.
  require_rejected(post_with("Transfer-Encoding: chunked, gzip\r\n"), http::status::bad_request);
  require_rejected(post_with("Transfer-Encoding: gzip\r\n"), http::status::bad_request);
  require_rejected(post_with("Transfer-Encoding: gzip, chunked, chunked\r\n"),
                   http::status::bad_request);
  require_rejected(post_with("Transfer-Encoding: deflate, gzip, chunked\r\n"),
                   http::status::not_implemented);
  require_accepted(post_with("Transfer-Encoding: chunked\r\n"));
}

TEST_CASE("check_request_head refuses TRACE and TRACK with 405", "[http_rules]") {
  require_rejected("TRACE / HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
                   http::status::method_not_allowed);
  require_rejected("TRACE * HTTP/1.1\r\nHost: a.example.com\r\n\r\n", http::status::bad_request);
  require_rejected("TRACK / HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
                   http::status::method_not_allowed);
  require_rejected("TRACE / HTTP/1.0\r\n\r\n", http::status::method_not_allowed);
  require_accepted("OPTIONS * HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_accepted("TRACEX / HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  require_accepted(
      "trace / HTTP/1.1\r\nHost: a.example.com\r\n\r\n");  // methods are case-sensitive

  const auto res = make_error_response(http::status::method_not_allowed, 11, false, {}, "id");
  CHECK(res.result() == http::status::method_not_allowed);
  CHECK(res[http::field::allow].find("GET") != std::string_view::npos);
  CHECK(res[http::field::allow].find("TRACE") == std::string_view::npos);
}

TEST_CASE("check_request_head refuses a WebSocket upgrade that carries a body", "[http_rules]") {
  const std::string upgrade =
      "GET /ws HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
  require_accepted(upgrade + "\r\n");
  require_accepted(upgrade + "Content-Length: 0\r\n\r\n");
  require_accepted(upgrade + "Content-Length: 000\r\n\r\n");
  require_rejected(upgrade + "Content-Length: 1\r\n\r\n");
  require_rejected(upgrade + "Content-Length: 010\r\n\r\n");
  require_rejected(upgrade + "Content-Length: 48\r\n\r\n");
  require_rejected(upgrade + "Transfer-Encoding: chunked\r\n\r\n");
  // Not a WebSocket upgrade (the body is a body and is forwarded as one).
  require_accepted(
      "POST /x HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
      "Content-Length: 5\r\n\r\n");
  require_accepted(
      "POST /x HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Content-Length: 5\r\n\r\n");
  // Connection lists and case do not hide the upgrade.
  require_rejected(
      "GET /ws HTTP/1.1\r\nHost: a.example.com\r\nConnection: keep-alive, UPGRADE\r\n"
      "Upgrade: WebSocket\r\nContent-Length: 5\r\n\r\n");
}

TEST_CASE("check_request_limits: 414 over max_uri_size or the tunnel's path limit",
          "[http_rules]") {
  const RequestLimits limits{8192, 0};
  const auto get = [](const std::string& target) {
    return parse_ok("GET " + target + " HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  };
  CHECK_FALSE(check_request_limits(get("/"), limits));
  CHECK_FALSE(check_request_limits(get("/?q=" + std::string(8188, 'a')), limits));  // 8192
  auto rejected = check_request_limits(get("/?q=" + std::string(8189, 'a')), limits);
  REQUIRE(rejected);
  CHECK(rejected->status == http::status::uri_too_long);
  // A long query is fine (the OPEN frame carries the path only)...
  CHECK_FALSE(check_request_limits(get("/p?q=" + std::string(8000, 'a')), limits));
  // ...a path longer than the frame carries is not: it would be cut.
  CHECK_FALSE(check_request_limits(get("/" + std::string(kMaxOpenPath - 1, 'a')), limits));
  rejected = check_request_limits(get("/" + std::string(kMaxOpenPath, 'a')), limits);
  REQUIRE(rejected);
  CHECK(rejected->status == http::status::uri_too_long);
  // Absolute form counts as sent.
  rejected = check_request_limits(get("https://a.example.com/" + std::string(8180, 'a')), limits);
  REQUIRE(rejected);
  CHECK(rejected->status == http::status::uri_too_long);
  CHECK_FALSE(check_request_limits(get("/abc"), RequestLimits{4, 0}));
  CHECK(check_request_limits(get("/abcd"), RequestLimits{4, 0}));
}

TEST_CASE("check_request_limits: 413 for a Content-Length over max_body_size", "[http_rules]") {
  const auto post = [](std::string_view length) {
    return parse_ok(post_with("Content-Length: " + std::string(length) + "\r\n"));
  };
  CHECK_FALSE(check_request_limits(post("100"), {8192, 100}));
  auto rejected = check_request_limits(post("101"), {8192, 100});
  REQUIRE(rejected);
  CHECK(rejected->status == http::status::payload_too_large);
  CHECK(check_request_limits(post("18446744073709551615"), {8192, 100})->status ==
        http::status::payload_too_large);
  CHECK_FALSE(check_request_limits(post("18446744073709551615"), {8192, 0}));  // 0: unlimited
  CHECK_FALSE(check_request_limits(parse_ok(post_with("Transfer-Encoding: chunked\r\n")),
                                   {8192, 1}));  // chunked: the parser's body_limit
}

TEST_CASE("open_path is the origin-form path without the query", "[http_rules]") {
  CHECK(open_path("/a/b?token=x") == "/a/b");
  CHECK(open_path("/a/b") == "/a/b");
  CHECK(open_path("/?") == "/");
  CHECK(open_path("http://h.example/p?q") == "/p");
  CHECK(open_path("http://h.example?q") == "/");
  CHECK(open_path("*") == "*");
}

TEST_CASE("client_body_error_status", "[http_rules]") {
  using boost::system::error_code;
  CHECK(client_body_error_status(http::error::body_limit) == http::status::payload_too_large);
  for (const auto e :
       {http::error::bad_chunk, http::error::bad_chunk_extension, http::error::buffer_overflow,
        http::error::bad_field, http::error::bad_value}) {
    CHECK(client_body_error_status(e) == http::status::bad_request);
  }
  CHECK_FALSE(client_body_error_status(error_code{}));
  CHECK_FALSE(client_body_error_status(http::error::end_of_stream));
  CHECK_FALSE(client_body_error_status(http::error::partial_message));
  CHECK_FALSE(client_body_error_status(boost::asio::error::eof));
  CHECK_FALSE(client_body_error_status(boost::asio::error::connection_reset));
  CHECK_FALSE(client_body_error_status(boost::beast::error::timeout));
}

namespace {

// Feeds a chunked body through a request parser reading into a flat_buffer of
// client_read_buffer_limit(), the way the session reads: the error it ends with.
boost::system::error_code feed_chunked(std::string_view body, std::uint32_t max_header_size) {
  http::request_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  boost::beast::flat_buffer buffer(client_read_buffer_limit(max_header_size));
  std::string input = post_with("Transfer-Encoding: chunked\r\n") + std::string(body);
  char sink[4096];
  std::size_t fed = 0;
  boost::system::error_code ec;
  while (!parser.is_done()) {
    if (buffer.size() == 0 || ec == http::error::need_more) {
      const std::size_t room = buffer.max_size() - buffer.size();
      if (room == 0) {
        return http::error::buffer_overflow;
      }
      if (fed == input.size()) {
        return http::error::need_more;
      }
      const std::size_t n = std::min({room, input.size() - fed, std::size_t{65536}});
      auto space = buffer.prepare(n);
      std::memcpy(space.data(), input.data() + fed, n);
      buffer.commit(n);
      fed += n;
    }
    parser.get().body().data = sink;
    parser.get().body().size = sizeof sink;
    ec = {};
    buffer.consume(parser.put(buffer.data(), ec));
    if (ec && ec != http::error::need_more && ec != http::error::need_buffer) {
      return ec;
    }
  }
  return {};
}

}  // namespace

TEST_CASE("client_read_buffer_limit bounds chunk lines and trailers", "[http_rules]") {
  CHECK(client_read_buffer_limit(32 * 1024) >= 32 * 1024 + kMaxChunkLine + 64 * 1024);
  // Ordinary chunked bodies, extensions and trailers within the limits pass.
  CHECK_FALSE(feed_chunked("5\r\nhello\r\n0\r\n\r\n", 32 * 1024));
  CHECK_FALSE(feed_chunked(
      "5;name=" + std::string(kMaxChunkLine - 16, 'v') + "\r\nhello\r\n0\r\n\r\n", 32 * 1024));
  CHECK_FALSE(feed_chunked(
      "5\r\nhello\r\n0\r\nX-Trailer: " + std::string(16 * 1024, 't') + "\r\n\r\n", 32 * 1024));
  // A chunk extension or trailer section that never ends stops at the buffer's limit.
  CHECK(feed_chunked("5;x=" + std::string(8 * 1024 * 1024, 'v'), 32 * 1024) ==
        http::error::buffer_overflow);
  CHECK(feed_chunked("5\r\nhello\r\n0\r\nX-Trailer: " + std::string(8 * 1024 * 1024, 't'),
                     32 * 1024) == http::error::buffer_overflow);
  // Malformed chunk sizes are parse errors, never a size.
  CHECK(client_body_error_status(feed_chunked("-10\r\n", 32 * 1024)) == http::status::bad_request);
  CHECK(client_body_error_status(feed_chunked("0x10\r\n0123456789abcdef\r\n0\r\n\r\n",
                                              32 * 1024)) == http::status::bad_request);
  CHECK(client_body_error_status(feed_chunked("100000000000000000000\r\n", 32 * 1024)) ==
        http::status::bad_request);
}

TEST_CASE("prepare_upstream_request drops spoofable client identity", "[http_rules]") {
  auto req = parse_ok(
      "GET /x HTTP/1.1\r\nHost: a.example.com\r\nX_Forwarded_For: 6.6.6.6\r\n"
      "X-Real-IP: 6.6.6.6\r\nX-Real-IP: 7.7.7.7\r\nTrue-Client-IP: 6.6.6.6\r\n"
      "CF-Connecting-IP: 6.6.6.6\r\nx_real_ip: 6.6.6.6\r\nUser_Agent: u\r\n_: x\r\n"
      "Accept-Language: en\r\nX-Custom-Header: kept\r\n\r\n");
  prepare_upstream_request(req, {"192.0.2.7", "https", "a.example.com", "abc123", false});
  CHECK(req.count("X-Real-IP") == 1);
  CHECK(req["X-Real-IP"] == "192.0.2.7");
  CHECK(req.count("True-Client-IP") == 0);
  CHECK(req.count("CF-Connecting-IP") == 0);
  CHECK(req["X-Custom-Header"] == "kept");
  CHECK(req["Accept-Language"] == "en");
  for (const auto& field : req) {
    INFO(field.name_string());
    CHECK(field.name_string().find('_') == std::string_view::npos);
  }
  CHECK(req["X-Forwarded-For"] == "192.0.2.7");
}

TEST_CASE("redact_query hides the values of secret parameters", "[http_rules]") {
  const std::vector<std::string> names{"token",  "access_token", "key", "password",
                                       "secret", "sig",          "code"};
  CHECK(redact_query("/cb?code=abc&state=xyz", names) == "/cb?code=REDACTED&state=xyz");
  CHECK(redact_query("/p?token=t1&a=1&access_token=t2", names) ==
        "/p?token=REDACTED&a=1&access_token=REDACTED");
  CHECK(redact_query("/p?a=1;KEY=k;b=2", names) == "/p?a=1;KEY=REDACTED;b=2");
  CHECK(redact_query("/p?Tok%65n=t&pass%77ord=p", names) ==
        "/p?Tok%65n=REDACTED&pass%77ord=REDACTED");
  CHECK(redact_query("/p?token=a&token=b", names) == "/p?token=REDACTED&token=REDACTED");
  CHECK(redact_query("/p?token=a=b", names) == "/p?token=REDACTED");
  // Left alone: other names, no value, no query, the path itself.
  CHECK(redact_query("/p?tokens=a&mytoken=b&token", names) == "/p?tokens=a&mytoken=b&token");
  CHECK(redact_query("/p?token=", names) == "/p?token=");
  CHECK(redact_query("/token=abc/x", names) == "/token=abc/x");
  CHECK(redact_query("/p", names) == "/p");
  CHECK(redact_query("/p?", names) == "/p?");
  CHECK(redact_query("/p?&&", names) == "/p?&&");
  CHECK(redact_query("/p?=x&token=y", names) == "/p?=x&token=REDACTED");
  CHECK(redact_query("/p?token=y", {}) == "/p?token=y");
  // Idempotent: a log line redacted twice reads the same.
  const std::string once = redact_query("/p?sig=abc&code=1&x=2", names);
  CHECK(redact_query(once, names) == once);
  // The default list of the config covers the names the issue lists.
  const hearth::config::EdgeConfig defaults;
  for (const char* name : {"token", "access_token", "key", "password", "secret", "sig", "code"}) {
    INFO(name);
    CHECK(std::find(defaults.log_redact_params.begin(), defaults.log_redact_params.end(), name) !=
          defaults.log_redact_params.end());
  }
}

TEST_CASE("prepare_upstream_request appends to a trusted proxy's forwarding headers",
          "[http_rules]") {
  auto req = parse_ok(
      "GET /x HTTP/1.1\r\nHost: a.example.com:8443\r\n"
      "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 192.0.2.44\r\n"
      "Forwarded: for=198.51.100.1\r\nForwarded: for=192.0.2.44\r\n\r\n");
  ForwardInfo info{"192.0.2.44", "https", "a.example.com:8443", "id", false};
  info.peer_ip = "10.0.0.2";
  info.peer_trusted = true;
  prepare_upstream_request(req, info);
  CHECK(req.count("X-Forwarded-For") == 1);
  CHECK(req["X-Forwarded-For"] == "198.51.100.1, 192.0.2.44, 10.0.0.2");
  CHECK(req["X-Real-IP"] == "192.0.2.44");
  CHECK(req[http::field::forwarded] ==
        "for=198.51.100.1, for=192.0.2.44, for=10.0.0.2;host=\"a.example.com:8443\";proto=https");
}

TEST_CASE("client_behind_proxies walks X-Forwarded-For from the right", "[http_rules]") {
  const auto trusted = [](const boost::asio::ip::address& a) {
    const auto s = a.to_string();
    return s.rfind("10.", 0) == 0 || s == "2001:db8::1";
  };
  const auto client = [&](const std::string& xff) {
    auto req =
        parse_ok("GET / HTTP/1.1\r\nHost: a\r\n" +
                 (xff.empty() ? std::string() : "X-Forwarded-For: " + xff + "\r\n") + "\r\n");
    return client_behind_proxies(req, "10.0.0.2", trusted);
  };
  CHECK(client("") == "10.0.0.2");                                   // no header: the peer
  CHECK(client("203.0.113.5") == "203.0.113.5");                     // one hop
  CHECK(client("6.6.6.6, 203.0.113.5, 10.1.1.1") == "203.0.113.5");  // spoofed left part ignored
  CHECK(client("10.9.9.9, 10.1.1.1") == "10.9.9.9");                 // all trusted: leftmost
  CHECK(client("203.0.113.5, garbage") == "10.0.0.2");               // unreadable: stop at once
  CHECK(client("garbage, 10.1.1.1") == "10.1.1.1");
  CHECK(client(" 2001:db8::2 , 2001:db8::1") == "2001:db8::2");
  CHECK(client("::ffff:203.0.113.5") == "203.0.113.5");  // mapped shown as IPv4
}

TEST_CASE("forwarded_element quotes what is not a token", "[http_rules]") {
  CHECK(forwarded_element("192.0.2.1", "example.com", "https") ==
        "for=192.0.2.1;host=example.com;proto=https");
  CHECK(forwarded_element("2001:db8::1", "example.com:8443", "https") ==
        "for=\"[2001:db8::1]\";host=\"example.com:8443\";proto=https");
  CHECK(forwarded_element("", "", "https") == "proto=https");
  CHECK(forwarded_element("192.0.2.1", "a\"b", "https") ==
        "for=192.0.2.1;host=\"a\\\"b\";proto=https");
}
