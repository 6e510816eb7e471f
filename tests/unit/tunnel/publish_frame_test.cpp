// Version-2 frames (issue 13): PUBLISH, PUBLISHED and WELCOME's refused list.
#include <catch2/catch.hpp>

#include "hearth/tunnel/frame.hpp"

using namespace hearth::tunnel;

TEST_CASE("PUBLISH round-trips routes with their health", "[frame][publish]") {
  Publish p{7,
            {{"app.example.com", "/", RouteHealth::healthy},
             {"app.example.com", "/api", RouteHealth::unhealthy},
             {"*.home.example.com", "/", RouteHealth::unknown}}};
  auto bytes = encode_payload(p);
  auto back = decode_publish(bytes);
  REQUIRE(back);
  CHECK(*back == p);

  SECTION("an unknown health value is refused") {
    // seq 1, one route "a" "/", health 3
    const std::vector<std::uint8_t> bad{0, 0, 0, 1, 0, 1, 0, 1, 'a', 0, 1, '/', 3};
    CHECK_FALSE(decode_publish(bad));
    auto good = bad;
    good[12] = 2;
    CHECK(decode_publish(good));
  }
  SECTION("truncated or trailing bytes are refused") {
    auto cut = bytes;
    cut.pop_back();
    CHECK_FALSE(decode_publish(cut));
    auto more = bytes;
    more.push_back(0);
    CHECK_FALSE(decode_publish(more));
  }
  SECTION("an empty route set is valid (everything withdrawn)") {
    auto e = decode_publish(encode_payload(Publish{1, {}}));
    REQUIRE(e);
    CHECK(e->routes.empty());
  }
}

TEST_CASE("PUBLISHED round-trips the refused routes", "[frame][publish]") {
  Published p{3, {{"evil.example", "/", "hostname evil.example is not allowed"}}};
  auto back = decode_published(encode_payload(p));
  REQUIRE(back);
  CHECK(*back == p);
  CHECK(decode_published(encode_payload(Published{0, {}})) == Published{0, {}});
  std::vector<std::uint8_t> short_payload{0, 0, 0};
  CHECK_FALSE(decode_published(short_payload));
}

TEST_CASE("WELCOME carries the refused list only from version 2", "[frame][publish]") {
  Welcome v1{kProtocolVersion1, "edge", 10000, {}};
  auto b1 = encode_payload(v1);
  CHECK(b1.size() == 4 + 2 + 2 + 4 + 4);  // magic, version, edge_id, keepalive: as version 1
  CHECK(decode_welcome(b1) == v1);

  Welcome v2{2, "edge", 10000, {{"x.example", "/", "not allowed"}}};
  auto b2 = encode_payload(v2);
  CHECK(decode_welcome(b2) == v2);
  // A version-1 WELCOME with trailing bytes stays malformed (what an old origin checks).
  auto bad = b1;
  bad.push_back(0);
  CHECK_FALSE(decode_welcome(bad));
}

TEST_CASE("PUBLISH and PUBLISHED are connection frames", "[frame][publish]") {
  for (auto type : {FrameType::publish, FrameType::published}) {
    std::uint8_t h[kFrameHeaderSize];
    encode_header({5, type, 0, 0}, h);
    auto d = decode_header(h);
    CHECK(d.status == DecodeStatus::ok);
    encode_header({5, type, 0, 1}, h);
    CHECK(decode_header(h).status == DecodeStatus::error);
  }
  std::uint8_t h[kFrameHeaderSize] = {0, 0, 0, 14, 0, 0, 0, 0, 0};
  CHECK(decode_header(h).status == DecodeStatus::error);  // still unknown
  CHECK(to_string(FrameType::publish) == "PUBLISH");
  CHECK(to_string(RouteHealth::unhealthy) == "unhealthy");
}
