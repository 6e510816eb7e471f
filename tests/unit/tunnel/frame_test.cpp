#include "hearth/tunnel/frame.hpp"

#include <catch2/catch.hpp>
#include <cstring>

using namespace hearth::tunnel;

namespace {

std::vector<std::uint8_t> header_bytes(std::uint32_t length, std::uint8_t type, std::uint8_t flags,
                                       std::uint32_t stream) {
  std::vector<std::uint8_t> b(kFrameHeaderSize);
  b[0] = static_cast<std::uint8_t>(length >> 16);
  b[1] = static_cast<std::uint8_t>(length >> 8);
  b[2] = static_cast<std::uint8_t>(length);
  b[3] = type;
  b[4] = flags;
  b[5] = static_cast<std::uint8_t>(stream >> 24);
  b[6] = static_cast<std::uint8_t>(stream >> 16);
  b[7] = static_cast<std::uint8_t>(stream >> 8);
  b[8] = static_cast<std::uint8_t>(stream);
  return b;
}

}  // namespace

TEST_CASE("frame header round trip", "[tunnel][frame]") {
  FrameHeader h{12345, FrameType::data, 0, 0x7fff0001};
  std::uint8_t buf[kFrameHeaderSize];
  encode_header(h, buf);
  auto d = decode_header(std::span<const std::uint8_t>(buf, sizeof buf));
  REQUIRE(d.status == DecodeStatus::ok);
  CHECK(d.header.length == 12345);
  CHECK(d.header.type == FrameType::data);
  CHECK(d.header.stream_id == 0x7fff0001);
}

TEST_CASE("frame header needs 9 bytes", "[tunnel][frame]") {
  auto b = header_bytes(4, 8, 0, 1);
  for (std::size_t n = 0; n < kFrameHeaderSize; ++n) {
    CHECK(decode_header(std::span(b.data(), n)).status == DecodeStatus::need_more);
  }
  CHECK(decode_header(b).status == DecodeStatus::ok);
}

TEST_CASE("frame header rejects malformed headers", "[tunnel][frame]") {
  struct Case {
    std::uint32_t length;
    std::uint8_t type;
    std::uint8_t flags;
    std::uint32_t stream;
    const char* why;
  };
  const Case cases[] = {
      {0, 0, 0, 0, "type 0 unknown"},
      {0, 14, 0, 0, "type past published"},
      {0, 255, 0, 1, "type 255"},
      {4, 8, 1, 1, "reserved flags"},
      {8, 9, 0, 3, "PING on a stream"},
      {0, 1, 0, 7, "HELLO on a stream"},
      {10, 5, 0, 0, "DATA on stream 0"},
      {0, 5, 0, 1, "empty DATA"},
      {kMaxDataPayload + 1, 5, 0, 1, "DATA too large"},
      {1, 6, 0, 1, "FIN with payload"},
      {3, 8, 0, 1, "WINDOW short"},
      {5, 8, 0, 1, "WINDOW long"},
      {7, 9, 0, 0, "PING short"},
      {9, 10, 0, 0, "PONG long"},
      {kMaxControlPayload + 1, 1, 0, 0, "HELLO too large"},
      {kMaxControlPayload + 1, 4, 0, 1, "OPEN too large"},
  };
  for (const auto& c : cases) {
    INFO(c.why);
    auto b = header_bytes(c.length, c.type, c.flags, c.stream);
    auto d = decode_header(b);
    CHECK(d.status == DecodeStatus::error);
    CHECK(!d.error.empty());
  }
}

TEST_CASE("HELLO round trip and strictness", "[tunnel][frame]") {
  Hello h;
  h.origin_name = "nas";
  h.software = "hearth-origin/0.1.0";
  h.connection_index = 3;
  h.routes = {{"app.example.com", "/"}, {"*.home.example.com", "/signaling"}};
  auto p = encode_payload(h);
  auto back = decode_hello(p);
  REQUIRE(back);
  CHECK(*back == h);

  SECTION("every truncation is refused") {
    for (std::size_t n = 0; n < p.size(); ++n) {
      INFO(n);
      CHECK_FALSE(decode_hello(std::span(p.data(), n)));
    }
  }
  SECTION("trailing bytes are refused") {
    p.push_back(0);
    CHECK_FALSE(decode_hello(p));
  }
  SECTION("bad magic is refused") {
    p[0] ^= 0xff;
    CHECK_FALSE(decode_hello(p));
  }
  SECTION("version 0 is refused") {
    p[4] = 0;
    p[5] = 0;
    CHECK_FALSE(decode_hello(p));
  }
  SECTION("a string length past the end is refused") {
    p[6] = 0xff;  // origin_name length high byte
    CHECK_FALSE(decode_hello(p));
  }
}

TEST_CASE("HELLO with too many routes is refused", "[tunnel][frame]") {
  Hello h;
  h.origin_name = "x";
  auto p = encode_payload(h);
  // Patch the route count (last two bytes: zero routes) to 1025.
  p[p.size() - 2] = 0x04;
  p[p.size() - 1] = 0x01;
  CHECK_FALSE(decode_hello(p));
}

TEST_CASE("WELCOME, OPEN, RESET, GOAWAY and REJECT round trip", "[tunnel][frame]") {
  Welcome w{kProtocolVersion, "edge-1", 10000, {}};
  CHECK(decode_welcome(encode_payload(w)) == w);

  Open o{"app.example.com", "/api/v1?x=1", "198.51.100.7", StreamKind::websocket};
  CHECK(decode_open(encode_payload(o)) == o);
  auto op = encode_payload(o);
  op.back() = 2;  // kind 2 does not exist
  CHECK_FALSE(decode_open(op));

  Reset r{ResetCode::refused, "connection refused"};
  CHECK(decode_reset(encode_payload(r)) == r);

  GoAway g{41, "edge is shutting down"};
  CHECK(decode_goaway(encode_payload(g)) == g);

  CHECK(decode_reason(encode_reason("hostnames not allowed: evil.test")) ==
        std::string("hostnames not allowed: evil.test"));
}

TEST_CASE("RESET with an unknown code maps to internal", "[tunnel][frame]") {
  std::vector<std::uint8_t> p = {0, 0, 0, 99, 0, 0};
  auto r = decode_reset(p);
  REQUIRE(r);
  CHECK(r->code == ResetCode::internal);
}

TEST_CASE("WINDOW increments must be positive and bounded", "[tunnel][frame]") {
  std::vector<std::uint8_t> out;
  append_window(out, 5, 65536);
  REQUIRE(out.size() == kFrameHeaderSize + 4);
  auto h = decode_header(out);
  REQUIRE(h.status == DecodeStatus::ok);
  CHECK(h.header.type == FrameType::window);
  CHECK(decode_window(std::span(out).subspan(kFrameHeaderSize)) == 65536u);
  std::vector<std::uint8_t> zero = {0, 0, 0, 0};
  CHECK_FALSE(decode_window(zero));
  std::vector<std::uint8_t> huge = {0x40, 0, 0, 1};
  CHECK_FALSE(decode_window(huge));
}

TEST_CASE("append_frame lays out header and payload", "[tunnel][frame]") {
  std::vector<std::uint8_t> out;
  const std::uint8_t payload[] = {'a', 'b', 'c'};
  append_frame(out, FrameType::data, 9, payload);
  append_frame(out, FrameType::fin, 9, {});
  REQUIRE(out.size() == 2 * kFrameHeaderSize + 3);
  auto first = decode_header(out);
  REQUIRE(first.status == DecodeStatus::ok);
  CHECK(first.header.length == 3);
  CHECK(std::memcmp(out.data() + kFrameHeaderSize, "abc", 3) == 0);
  auto second = decode_header(std::span(out).subspan(kFrameHeaderSize + 3));
  REQUIRE(second.status == DecodeStatus::ok);
  CHECK(second.header.type == FrameType::fin);
  CHECK(second.header.stream_id == 9);
}

TEST_CASE("encoder truncates strings the decoder would refuse", "[tunnel][frame]") {
  Open o{std::string(5000, 'a'), "/", "c", StreamKind::http};
  auto back = decode_open(encode_payload(o));
  REQUIRE(back);
  CHECK(back->host.size() == 4096);
}
