#include "h2/h2_head.hpp"

#include <catch2/catch.hpp>

#include "h2/flood_guard.hpp"
#include "hearth/edge/http_rules.hpp"
#include "tls/authority.hpp"

namespace http = boost::beast::http;
using namespace hearth::edge;

namespace {

std::vector<H2Field> base(std::string method = "GET", std::string path = "/p?q=1") {
  return {
      {":method", method}, {":scheme", "https"}, {":authority", "app.test:8443"}, {":path", path}};
}

std::optional<H2HeadError> translate(const std::vector<H2Field>& f, bool end,
                                     http::request_header<>& out, bool& ws) {
  return h2_to_http1_head(f, end, "a2V5a2V5a2V5a2V5a2V5aw==", out, ws);
}

}  // namespace

TEST_CASE("h2 head becomes an HTTP/1.1 head with Host from :authority", "[edge][h2]") {
  auto f = base();
  f.push_back({"host", "ignored.example"});
  f.push_back({"cookie", "a=1"});
  f.push_back({"accept", "*/*"});
  f.push_back({"cookie", "b=2"});
  http::request_header<> out;
  bool ws = true;
  REQUIRE_FALSE(translate(f, true, out, ws));
  CHECK_FALSE(ws);
  CHECK(out.version() == 11);
  CHECK(out.method() == http::verb::get);
  CHECK(out.target() == "/p?q=1");
  CHECK(out.count(http::field::host) == 1);
  CHECK(out[http::field::host] == "app.test:8443");
  CHECK(out[http::field::cookie] == "a=1; b=2");
  CHECK(out.count(http::field::transfer_encoding) == 0);
  CHECK_FALSE(check_request_head(out));
}

TEST_CASE("h2 body without content-length is sent chunked", "[edge][h2]") {
  http::request_header<> out;
  bool ws = false;
  REQUIRE_FALSE(translate(base("POST"), false, out, ws));
  CHECK(out[http::field::transfer_encoding] == "chunked");
  auto f = base("POST");
  f.push_back({"content-length", "5"});
  REQUIRE_FALSE(translate(f, false, out, ws));
  CHECK(out.count(http::field::transfer_encoding) == 0);
  CHECK(out[http::field::content_length] == "5");
  CHECK_FALSE(check_request_head(out));
}

TEST_CASE("extended CONNECT becomes a WebSocket upgrade", "[edge][h2]") {
  std::vector<H2Field> f = {{":method", "CONNECT"},    {":protocol", "websocket"},
                            {":scheme", "https"},      {":authority", "app.test"},
                            {":path", "/signaling"},   {"sec-websocket-version", "13"},
                            {"sec-websocket-key", "x"}};
  http::request_header<> out;
  bool ws = false;
  REQUIRE_FALSE(translate(f, false, out, ws));
  CHECK(ws);
  CHECK(out.method() == http::verb::get);
  CHECK(out.target() == "/signaling");
  CHECK(out[http::field::sec_websocket_key] == "a2V5a2V5a2V5a2V5a2V5aw==");
  CHECK(out.count(http::field::sec_websocket_key) == 1);
  CHECK(is_websocket_upgrade(out));
  CHECK_FALSE(check_request_head(out));
}

TEST_CASE("malformed h2 heads are refused", "[edge][h2]") {
  http::request_header<> out;
  bool ws = false;
  auto bad = [&](std::vector<H2Field> f) { return translate(f, true, out, ws).has_value(); };
  auto with = [](H2Field extra) {
    auto f = base();
    f.push_back(extra);
    return f;
  };
  CHECK(bad({{":method", "GET"}, {"accept", "x"}, {":path", "/"}, {":scheme", "https"}}));
  CHECK(bad({{":method", "GET"}, {":scheme", "https"}}));  // no :path
  CHECK(bad({{":method", "GET"}, {":method", "GET"}, {":path", "/"}, {":scheme", "h"}}));
  CHECK(bad(with({":foo", "x"})));
  CHECK(bad(with({"connection", "close"})));
  CHECK(bad(with({"transfer-encoding", "chunked"})));
  CHECK(bad(with({"te", "gzip"})));
  CHECK_FALSE(bad(with({"te", "trailers"})));
  CHECK(bad(with({"x-a", "v\r\nx-b: smuggled"})));
  CHECK(bad(with({"X-Upper", "v"})));
  CHECK(bad(with({":protocol", "websocket"})));  // :protocol needs CONNECT
  CHECK(bad(base("GET", "relative")));
  // CONNECT without :protocol translates, and check_request_head refuses it.
  REQUIRE_FALSE(translate({{":method", "CONNECT"}, {":authority", "a.test:443"}}, true, out, ws));
  CHECK(check_request_head(out));
}

TEST_CASE("certificate names cover exact names and one wildcard label", "[edge][h2]") {
  std::vector<std::string> names{"app.test", "*.home.test"};
  CHECK(certificate_covers(names, "app.test"));
  CHECK(certificate_covers(names, "a.home.test"));
  CHECK_FALSE(certificate_covers(names, "home.test"));
  CHECK_FALSE(certificate_covers(names, "a.b.home.test"));
  CHECK_FALSE(certificate_covers(names, "other.test"));
  CHECK_FALSE(certificate_covers({}, "app.test"));
}

TEST_CASE("flood guard buckets run dry and refill", "[edge][h2]") {
  auto t = FloodGuard::Clock::now();
  FloodGuard g(t);
  int ok = 0;
  for (int i = 0; i < 1000; ++i) ok += g.on_control(t) ? 1 : 0;
  CHECK(ok == static_cast<int>(FloodGuard::kControlBurst));
  CHECK(g.on_control(t + std::chrono::seconds(1)));  // 10/s refill
}
