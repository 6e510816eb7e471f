// PROXY protocol v1/v2 codec (issue 9).

#include "hearth/common/proxy_protocol.hpp"

#include <catch2/catch.hpp>
#include <string>

namespace pp = hearth::proxy_protocol;
using boost::asio::ip::make_address;

TEST_CASE("proxy_protocol v1: parse", "[proxy_protocol][common]") {
  auto p = pp::parse("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n");
  REQUIRE(p.status == pp::Status::complete);
  CHECK(p.consumed == 45);
  CHECK(p.header.version == 1);
  CHECK_FALSE(p.header.local);
  CHECK(p.header.source == pp::Endpoint{make_address("192.0.2.1"), 56324});
  CHECK(p.header.destination == pp::Endpoint{make_address("198.51.100.2"), 443});
  auto v6 = pp::parse("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n");
  REQUIRE(v6.status == pp::Status::complete);
  CHECK(v6.header.source.address == make_address("2001:db8::1"));
  auto unknown = pp::parse("PROXY UNKNOWN ffff::1 whatever\r\n");
  REQUIRE(unknown.status == pp::Status::complete);
  CHECK(unknown.header.local);
  CHECK(pp::parse("PROXY TCP4 192.0.2.1 198.51.100.2 56324").status == pp::Status::need_more);
  CHECK(pp::parse("PRO").status == pp::Status::need_more);
  CHECK(pp::parse("GET / HTTP/1.1\r\n").status == pp::Status::absent);
  CHECK(pp::parse(std::string("\x16\x03\x01", 3)).status == pp::Status::absent);  // TLS
  for (const char* bad :
       {"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 x\r\n",
        "PROXY TCP4 2001:db8::1 1.2.3.4 1 2\r\n", "PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n", "PROXY TCP4 1.2.3.4 1.2.3.5 01 2\r\n",
        "PROXY UDP4 1.2.3.4 1.2.3.5 1 2\r\n", "PROXY TCP4 1.2.3.4  1.2.3.5 1 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n\r\n", "PROXY \x01\r\n"}) {
    INFO(bad);
    CHECK(pp::parse(bad).status == pp::Status::invalid);
  }
  CHECK(pp::parse("PROXY TCP4 " + std::string(120, '1')).status == pp::Status::invalid);
}

TEST_CASE("proxy_protocol v2: round trip and malformed headers", "[proxy_protocol][common]") {
  const pp::Endpoint src{make_address("192.0.2.1"), 40000};
  const pp::Endpoint dst{make_address("198.51.100.2"), 443};
  auto bytes = pp::encode_v2(src, dst);
  CHECK(bytes.size() == 28);
  auto p = pp::parse(bytes + "rest");
  REQUIRE(p.status == pp::Status::complete);
  CHECK(p.consumed == 28);
  CHECK(p.header.version == 2);
  CHECK(p.header.source == src);
  CHECK(p.header.destination == dst);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    INFO(i);
    CHECK(pp::parse(bytes.substr(0, i)).status == pp::Status::need_more);
  }
  const pp::Endpoint src6{make_address("2001:db8::7"), 1};
  auto b6 = pp::encode_v2(src6, dst);  // mixed: written as IPv6, dst IPv4-mapped
  auto p6 = pp::parse(b6);
  REQUIRE(p6.status == pp::Status::complete);
  CHECK(p6.consumed == 52);
  CHECK(p6.header.source == src6);
  CHECK(p6.header.destination.address == make_address("::ffff:198.51.100.2"));
  // A mapped source next to an IPv4 destination is written as IPv4.
  auto mapped = pp::parse(pp::encode_v2({make_address("::ffff:192.0.2.9"), 5}, dst));
  CHECK(mapped.header.source.address == make_address("192.0.2.9"));
  // LOCAL, TLVs, and what is refused.
  std::string local = bytes;
  local[12] = 0x20;
  auto l = pp::parse(local);
  REQUIRE(l.status == pp::Status::complete);
  CHECK(l.header.local);
  std::string tlv = bytes;
  tlv[15] = 12 + 5;
  tlv += std::string("\x04\x00\x02zz", 5);
  auto t = pp::parse(tlv);
  REQUIRE(t.status == pp::Status::complete);
  CHECK(t.consumed == 33);
  std::string bad_version = bytes;
  bad_version[12] = 0x31;
  CHECK(pp::parse(bad_version).status == pp::Status::invalid);
  std::string bad_cmd = bytes;
  bad_cmd[12] = 0x22;
  CHECK(pp::parse(bad_cmd).status == pp::Status::invalid);
  std::string short_block = bytes;
  short_block[15] = 4;
  CHECK(pp::parse(short_block).status == pp::Status::invalid);
  std::string huge = bytes;
  huge[14] = 0x7f;
  CHECK(pp::parse(huge).status == pp::Status::invalid);
  std::string unspec = bytes;
  unspec[13] = 0x00;
  CHECK(pp::parse(unspec).header.local);
  std::string bad_family = bytes;
  bad_family[13] = 0x41;
  CHECK(pp::parse(bad_family).status == pp::Status::invalid);
}

TEST_CASE("proxy_protocol v1: encode", "[proxy_protocol][common]") {
  CHECK(pp::encode_v1({make_address("192.0.2.1"), 5}, {make_address("::ffff:10.0.0.1"), 443}) ==
        "PROXY TCP4 192.0.2.1 10.0.0.1 5 443\r\n");
  CHECK(pp::encode_v1({make_address("2001:db8::1"), 5}, {make_address("10.0.0.1"), 443}) ==
        "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 5 443\r\n");
  auto round =
      pp::parse(pp::encode_v1({make_address("2001:db8::1"), 5}, {make_address("2001:db8::2"), 6}));
  REQUIRE(round.status == pp::Status::complete);
  CHECK(round.header.destination.port == 6);
}

TEST_CASE("proxy_protocol: header for the OPEN frame's client field", "[proxy_protocol][common]") {
  const pp::Endpoint svc{make_address("127.0.0.1"), 3000};
  CHECK(pp::parse_client_field("192.0.2.1 5000") == pp::Endpoint{make_address("192.0.2.1"), 5000});
  CHECK(pp::parse_client_field("2001:db8::1 1") == pp::Endpoint{make_address("2001:db8::1"), 1});
  CHECK_FALSE(pp::parse_client_field("192.0.2.1"));  // an edge before issue 9: no port
  CHECK_FALSE(pp::parse_client_field("192.0.2.1 99999"));
  CHECK_FALSE(pp::parse_client_field(""));
  CHECK(pp::header_for_client(1, "192.0.2.1 5000", svc) ==
        "PROXY TCP4 192.0.2.1 127.0.0.1 5000 3000\r\n");
  CHECK(pp::header_for_client(1, "192.0.2.1", svc) == "PROXY UNKNOWN\r\n");
  auto v2 = pp::parse(pp::header_for_client(2, "192.0.2.1 5000", svc));
  REQUIRE(v2.status == pp::Status::complete);
  CHECK(v2.header.source == pp::Endpoint{make_address("192.0.2.1"), 5000});
  auto local = pp::parse(pp::header_for_client(2, "?", svc));
  REQUIRE(local.status == pp::Status::complete);
  CHECK(local.header.local);
  CHECK(local.consumed == 16);
}
