// Value parsers: durations, sizes, endpoints, service URLs, hostname patterns.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <limits>

#include "hearth/config/parse.hpp"

using hearth::config::Duration;
using hearth::config::Endpoint;
using hearth::config::parse_duration;
using hearth::config::parse_endpoint;
using hearth::config::parse_service_url;
using hearth::config::parse_size;
using hearth::config::ServiceUrl;
using hearth::config::valid_hostname_pattern;
using namespace std::chrono_literals;

TEST_CASE("parse_duration accepts an integer and a unit", "[config][values]") {
  CHECK(parse_duration("250ms") == Duration(250ms));
  CHECK(parse_duration("30s") == Duration(30s));
  CHECK(parse_duration("5m") == Duration(5min));
  CHECK(parse_duration("2h") == Duration(2h));
  CHECK(parse_duration("7d") == Duration(7 * 24h));
  CHECK(parse_duration("0s") == Duration(0));
  CHECK(parse_duration("0ms") == Duration(0));
  CHECK(parse_duration("007s") == Duration(7s));
  CHECK(parse_duration("1000ms") == Duration(1s));
}

TEST_CASE("parse_duration rejects malformed text", "[config][values]") {
  for (const char* bad : {"",     "s",    "ms",   "30",   "-1s",   "+1s",   " 30s", "30s ",
                          "30 s", "1.5s", "30S",  "30Ms", "30sec", "1h30m", "30us", "1w",
                          "1y",   "s30",  "3O s", "\t1s", "1s\n",  "0x10s", "1e3ms"}) {
    INFO("input: \"" << bad << "\"");
    CHECK_FALSE(parse_duration(bad));
  }
  CHECK_FALSE(parse_duration(std::string_view("1s\0", 3)));
}

TEST_CASE("parse_duration rejects overflow", "[config][values]") {
  const auto max = std::numeric_limits<Duration::rep>::max();  // in milliseconds
  CHECK(parse_duration(std::to_string(max) + "ms") == Duration(max));
  CHECK_FALSE(parse_duration("9223372036854775808ms"));
  CHECK(parse_duration(std::to_string(max / 86'400'000) + "d") ==
        Duration((max / 86'400'000) * 86'400'000));
  CHECK_FALSE(parse_duration(std::to_string(max / 86'400'000 + 1) + "d"));
  CHECK_FALSE(parse_duration("9223372036854775807s"));
  CHECK_FALSE(parse_duration("18446744073709551616ms"));          // does not fit 64 bits at all
  CHECK_FALSE(parse_duration("99999999999999999999999999999h"));  // digits overflow
}

TEST_CASE("parse_size: bytes, SI and binary units", "[config][values]") {
  CHECK(parse_size("0") == 0u);
  CHECK(parse_size("512") == 512u);
  CHECK(parse_size("512B") == 512u);
  CHECK(parse_size("64KB") == 64'000u);
  CHECK(parse_size("100MB") == 100'000'000u);
  CHECK(parse_size("1GB") == 1'000'000'000u);
  CHECK(parse_size("2TB") == 2'000'000'000'000u);
  CHECK(parse_size("1KiB") == 1024u);
  CHECK(parse_size("64KiB") == 65536u);
  CHECK(parse_size("100MiB") == 100u * 1024 * 1024);
  CHECK(parse_size("1GiB") == 1024u * 1024 * 1024);
  CHECK(parse_size("1TiB") == 1ull << 40);
  CHECK(parse_size("18446744073709551615") == std::numeric_limits<std::uint64_t>::max());
  CHECK(parse_size("17179869183GiB") == 17179869183ull << 30);
}

TEST_CASE("parse_size rejects malformed text and overflow", "[config][values]") {
  for (const char* bad : {"",
                          "B",
                          "MB",
                          "-1",
                          "+1",
                          "1.5MB",
                          "1 MB",
                          " 1MB",
                          "1MB ",
                          "1mb",
                          "1kb",
                          "1K",
                          "1M",
                          "1KIB",
                          "1kib",
                          "1PB",
                          "1 ",
                          "0x10",
                          "1e6",
                          "18446744073709551616",
                          "17179869184GiB",
                          "18446744073709552KB",
                          "99999999999999999999999"}) {
    INFO("input: \"" << bad << "\"");
    CHECK_FALSE(parse_size(bad));
  }
}

TEST_CASE("parse_endpoint accepts IPv4, bracketed IPv6 and DNS names", "[config][values]") {
  CHECK(parse_endpoint("0.0.0.0:443") == Endpoint{"0.0.0.0", 443});
  CHECK(parse_endpoint("127.0.0.1:65535") == Endpoint{"127.0.0.1", 65535});
  CHECK(parse_endpoint("[::1]:80") == Endpoint{"::1", 80});
  CHECK(parse_endpoint("[::]:7443") == Endpoint{"::", 7443});
  CHECK(parse_endpoint("[2001:db8::1]:8443") == Endpoint{"2001:db8::1", 8443});
  CHECK(parse_endpoint("[::ffff:10.0.0.1]:1") == Endpoint{"::ffff:10.0.0.1", 1});
  CHECK(parse_endpoint("vps.example.com:7443") == Endpoint{"vps.example.com", 7443});
  CHECK(parse_endpoint("localhost:9901") == Endpoint{"localhost", 9901});
  CHECK(parse_endpoint("xn--bcher-kva.example:1") == Endpoint{"xn--bcher-kva.example", 1});
  CHECK(parse_endpoint("a-1.b2.example.com:22") == Endpoint{"a-1.b2.example.com", 22});
  // DNS names are case-insensitive and kept in lower case.
  CHECK(parse_endpoint("VPS.Example.COM:7443") == Endpoint{"vps.example.com", 7443});
  // Port 0 ("any port") parses; the config rejects it where a real port is needed.
  CHECK(parse_endpoint("127.0.0.1:0") == Endpoint{"127.0.0.1", 0});
  CHECK(parse_endpoint("[::1]:0") == Endpoint{"::1", 0});
}

TEST_CASE("parse_endpoint rejects malformed addresses", "[config][values]") {
  for (const char* bad : {"",
                          ":",
                          ":443",
                          "443",
                          "host",
                          "host:",
                          "host:port",
                          "host:-1",
                          "host:+80",
                          "host:65536",
                          "host:100000",
                          "host:080800",
                          "host: 80",
                          "host :80",
                          " host:80",
                          "host:80 ",
                          "::1:80",
                          "::1",
                          "[::1]",
                          "[::1]:",
                          "[::1]80",
                          "[::1:80",
                          "::1]:80",
                          "[1.2.3.4]:80",
                          "[example.com]:80",
                          "[]:80",
                          "[::g]:80",
                          "1.2.3.4.5:80",
                          "256.1.1.1:80",
                          "1.2.3:80",
                          "01.2.3.4:80",
                          "-host.example:80",
                          "host-.example:80",
                          "a..b:80",
                          ".example.com:80",
                          "example.com.:80",
                          "under_score.example:80",
                          "http://host:80",
                          "host:80/",
                          "user@host:80",
                          "ho st:80",
                          "h\xc3\xa9:80",
                          "123:80"}) {
    INFO("input: \"" << bad << "\"");
    CHECK_FALSE(parse_endpoint(bad));
  }
  // Label and name length limits (63 / 253).
  CHECK(parse_endpoint(std::string(63, 'a') + ".example:1"));
  CHECK_FALSE(parse_endpoint(std::string(64, 'a') + ".example:1"));
  std::string long_name;
  for (int i = 0; i < 4; ++i) {
    long_name += std::string(62, 'a') + ".";
  }
  long_name += "abc";  // 4 * 63 + 3 = 255 characters
  CHECK_FALSE(parse_endpoint(long_name + ":1"));
  CHECK(parse_endpoint(long_name.substr(2) + ":1"));  // 253
}

TEST_CASE("Endpoint::to_string re-adds brackets for IPv6", "[config][values]") {
  CHECK(Endpoint{"0.0.0.0", 443}.to_string() == "0.0.0.0:443");
  CHECK(Endpoint{"::1", 80}.to_string() == "[::1]:80");
  CHECK(Endpoint{"vps.example.com", 7443}.to_string() == "vps.example.com:7443");
  for (const char* text : {"0.0.0.0:443", "[::1]:80", "[2001:db8::1]:8443", "vps.example.com:0"}) {
    const auto ep = parse_endpoint(text);
    REQUIRE(ep);
    CHECK(ep->to_string() == text);
    CHECK(parse_endpoint(ep->to_string()) == ep);
  }
}

TEST_CASE("parse_service_url", "[config][values]") {
  CHECK(parse_service_url("http://127.0.0.1:3000") == ServiceUrl{false, "127.0.0.1", 3000});
  CHECK(parse_service_url("https://127.0.0.1:8443") == ServiceUrl{true, "127.0.0.1", 8443});
  CHECK(parse_service_url("http://127.0.0.1:3000/") == ServiceUrl{false, "127.0.0.1", 3000});
  CHECK(parse_service_url("http://[::1]:3000") == ServiceUrl{false, "::1", 3000});
  CHECK(parse_service_url("http://Localhost:3000") == ServiceUrl{false, "localhost", 3000});
  CHECK(parse_service_url("HTTPS://nas.lan:443") == ServiceUrl{true, "nas.lan", 443});
  // Without a port: the scheme's.
  CHECK(parse_service_url("http://localhost") == ServiceUrl{false, "localhost", 80});
  CHECK(parse_service_url("https://localhost/") == ServiceUrl{true, "localhost", 443});
  CHECK(parse_service_url("https://[::1]") == ServiceUrl{true, "::1", 443});

  for (const char* bad : {"",
                          "http://",
                          "http:///",
                          "127.0.0.1:3000",
                          "tcp://127.0.0.1:3000",
                          "ws://127.0.0.1:1",
                          "http:/127.0.0.1:3000",
                          "http//127.0.0.1:3000",
                          "http://127.0.0.1:0",
                          "http://127.0.0.1:65536",
                          "http://127.0.0.1:3000/api",
                          "http://127.0.0.1:3000//",
                          "http://127.0.0.1:3000?x=1",
                          "http://127.0.0.1:3000#f",
                          "http://user@127.0.0.1:3000",
                          "http://127.0.0.1:",
                          "http://::1:3000",
                          "http://[::1]:",
                          "http://bad_host:1",
                          " http://127.0.0.1:3000",
                          "http://127.0.0.1:3000 "}) {
    INFO("input: \"" << bad << "\"");
    CHECK_FALSE(parse_service_url(bad));
  }
}

TEST_CASE("ServiceUrl::to_string", "[config][values]") {
  CHECK(ServiceUrl{false, "127.0.0.1", 3000}.to_string() == "http://127.0.0.1:3000");
  CHECK(ServiceUrl{true, "::1", 8443}.to_string() == "https://[::1]:8443");
  const auto url = parse_service_url("http://localhost");
  REQUIRE(url);
  CHECK(url->to_string() == "http://localhost:80");
  CHECK(parse_service_url(url->to_string()) == url);
}

TEST_CASE("valid_hostname_pattern", "[config][values]") {
  for (const char* good : {"example.com", "tallow.example.com", "*.example.com",
                           "*.home.example.com", "localhost", "*.localhost", "A.Example.COM",
                           "*.EXAMPLE.com", "xn--bcher-kva.example", "10.0.0.1", "a-b.c-d.e"}) {
    INFO("pattern: \"" << good << "\"");
    CHECK(valid_hostname_pattern(good));
  }
  for (const char* bad : {"",
                          "*",
                          "*.",
                          ".example.com",
                          "example.com.",
                          "*example.com",
                          "a.*.example.com",
                          "**.example.com",
                          "*.*.example.com",
                          "example.*",
                          "ex ample.com",
                          "exa_mple.com",
                          "-a.example.com",
                          "a-.example.com",
                          "a..example.com",
                          "example.com:443",
                          "[::1]",
                          "::1",
                          "*.10.0.0.1",
                          "300.0.0.1",
                          "1.2.3",
                          "*.123",
                          "http://example.com",
                          "example.com/"}) {
    INFO("pattern: \"" << bad << "\"");
    CHECK_FALSE(valid_hostname_pattern(bad));
  }
  CHECK(valid_hostname_pattern(std::string(63, 'a') + ".com"));
  CHECK_FALSE(valid_hostname_pattern(std::string(64, 'a') + ".com"));
}
