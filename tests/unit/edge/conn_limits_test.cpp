// ConnectionLimiter (issue 9): per-IP and global caps at accept, bounded table.

#include "hearth/edge/conn_limits.hpp"

#include <boost/asio/ip/address.hpp>
#include <catch2/catch.hpp>
#include <chrono>

using hearth::edge::AcceptVerdict;
using hearth::edge::ConnectionLimiter;
using hearth::edge::ConnectionLimits;
using namespace std::chrono_literals;

namespace {
hearth::edge::policy::ClientKey key(const char* ip) {
  return hearth::edge::policy::client_info(boost::asio::ip::make_address(ip)).key;
}
}  // namespace

TEST_CASE("ConnectionLimiter: concurrent caps per IP and global", "[conn_limits][edge]") {
  ConnectionLimits limits;
  limits.max_connections = 5;
  limits.max_connections_per_ip = 3;
  ConnectionLimiter lim(limits);
  auto now = ConnectionLimiter::Clock::time_point{} + 1h;
  const auto a = key("192.0.2.1");
  for (int i = 0; i < 3; ++i) CHECK(lim.admit(a, now) == AcceptVerdict::accept);
  CHECK(lim.admit(a, now) == AcceptVerdict::per_ip_concurrent);
  // IPv6 counts per /64.
  CHECK(lim.admit(key("2001:db8::1"), now) == AcceptVerdict::accept);
  CHECK(lim.admit(key("2001:db8::2"), now) == AcceptVerdict::accept);
  CHECK(lim.admit(key("2001:db8:0:1::1"), now) == AcceptVerdict::global_concurrent);
  lim.release(a, now);
  CHECK(lim.admit(key("2001:db8::3"), now) == AcceptVerdict::accept);
  CHECK(lim.admit(key("2001:db8::4"), now) == AcceptVerdict::global_concurrent);
  CHECK(lim.concurrent() == 5u);
  CHECK(lim.tracked() == 2u);
  lim.release(a, now);
  lim.release(a, now);
  CHECK(lim.admit(key("2001:db8::5"), now) == AcceptVerdict::per_ip_concurrent);
  for (int i = 0; i < 3; ++i) lim.release(key("2001:db8::9"), now);
  CHECK(lim.tracked() == 0u);  // no connection, no rate: nothing to remember
  CHECK(lim.concurrent() == 0u);
}

TEST_CASE("ConnectionLimiter: new connections per second, per IP and global",
          "[conn_limits][edge]") {
  ConnectionLimits limits;
  limits.rate_per_ip = hearth::config::RateLimit{2.0, 4};
  limits.rate_global = hearth::config::RateLimit{1.0, 6};
  ConnectionLimiter lim(limits);
  auto now = ConnectionLimiter::Clock::time_point{} + 1h;
  const auto a = key("192.0.2.1");
  int ok = 0;
  for (int i = 0; i < 6; ++i) {
    auto v = lim.admit(a, now);
    ok += v == AcceptVerdict::accept;
    if (v == AcceptVerdict::accept) lim.release(a, now);
  }
  CHECK(ok == 4);
  CHECK(lim.admit(a, now + 500ms) == AcceptVerdict::accept);  // one token back
  CHECK(lim.admit(key("192.0.2.2"), now + 500ms) == AcceptVerdict::accept);
  CHECK(lim.admit(key("192.0.2.3"), now + 500ms) == AcceptVerdict::global_rate);
  // .3 spent a token on its refused attempt: remembered until its bucket refills.
  CHECK(lim.tracked() == 3u);
  lim.release(key("192.0.2.2"), now + 10s);
  CHECK(lim.tracked() == 1u);  // the sweep on release forgot the two without connections
}

TEST_CASE("ConnectionLimiter: the table is bounded", "[conn_limits][edge]") {
  ConnectionLimits limits;
  limits.max_tracked = 100;
  limits.max_connections = 1'000'000;
  ConnectionLimiter lim(limits);
  auto now = ConnectionLimiter::Clock::time_point{} + 1h;
  int full = 0;
  for (unsigned i = 0; i < 1000; ++i) {
    hearth::edge::policy::ClientKey k{};
    k[0] = static_cast<std::uint8_t>(i);
    k[1] = static_cast<std::uint8_t>(i >> 8);
    full += lim.admit(k, now) == AcceptVerdict::table_full;
    REQUIRE(lim.tracked() <= 100u);
  }
  CHECK(full == 900);
}
