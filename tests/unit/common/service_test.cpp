// Issue 13 pure pieces in common: the admin token check, the status tables,
// error texts without Boost source locations, the sd_notify datagram.

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "hearth/common/admin.hpp"
#include "hearth/common/error_text.hpp"
#include "hearth/common/sd_notify.hpp"
#include "hearth/common/status_cli.hpp"

using hearth::admin::authorized;

TEST_CASE("admin token: bearer and basic, constant answers", "[admin]") {
  const std::string token = "0123456789abcdef-token";
  CHECK(authorized("", ""));  // no token configured: open
  CHECK(authorized("Bearer anything", ""));
  CHECK(authorized("Bearer 0123456789abcdef-token", token));
  CHECK(authorized("bearer 0123456789abcdef-token", token));
  CHECK_FALSE(authorized("", token));
  CHECK_FALSE(authorized("Bearer 0123456789abcdef-toke", token));
  CHECK_FALSE(authorized("Bearer 0123456789abcdef-tokenX", token));
  CHECK_FALSE(authorized("Token 0123456789abcdef-token", token));
  // "admin:0123456789abcdef-token" and ":0123456789abcdef-token"
  CHECK(authorized("Basic YWRtaW46MDEyMzQ1Njc4OWFiY2RlZi10b2tlbg==", token));
  CHECK(authorized("Basic OjAxMjM0NTY3ODlhYmNkZWYtdG9rZW4=", token));
  CHECK_FALSE(authorized("Basic MDEyMzQ1Njc4OWFiY2RlZi10b2tlbg==", token));  // no colon
  CHECK_FALSE(authorized("Basic !!!!", token));
  CHECK_FALSE(authorized("Basic YWRtaW46d3Jvbmc=", token));  // admin:wrong
}

TEST_CASE("error_text cuts Boost's throw site", "[errors]") {
  try {
    throw boost::system::system_error(boost::asio::error::address_in_use, "bind");
  } catch (const std::exception& e) {
    const std::string text = hearth::error_text(e);
    CHECK(text.find("bind: ") == 0);
    CHECK(text.find(".hpp") == std::string::npos);
    CHECK(text.find(" at ") == std::string::npos);
    CHECK(text.find("[") == std::string::npos);
  }
  CHECK(hearth::error_text(std::runtime_error("plain [x]")) == "plain [x]");
}

TEST_CASE("status tables for the edge and the origin", "[status]") {
  const std::string edge = R"({"draining":false,"client_connections":3,"requests_in_flight":1,
    "websockets_active":0,"bytes":{"in":1000,"out":2500000},
    "tunnels":[{"id":4,"origin":"nas","peer":"198.51.100.7:40112","connection_index":0,
      "usable":true,"streams":2,"rtt_us":24100,"bytes_in":10,"bytes_out":20,"uptime_s":3700,
      "routes":[{"host":"app.example.com","path":"/"},{"host":"app.example.com","path":"/ws"}]}],
    "version":"0.1.0","requests_total":12,
    "certificates":[{"names":["app.example.com"],"not_after":4102444800,"file":"/etc/c.pem"}],
    "recent_errors":[{"ts":"t","level":"warn","event":"tunnel.refused","text":"why=x"}]})";
  const std::string out = hearth::render_status(edge);
  CHECK(out.find("edge 0.1.0: serving, 1 tunnel from 1 origin,") == 0);
  CHECK(out.find("TUNNELS") != std::string::npos);
  CHECK(out.find("198.51.100.7:40112") != std::string::npos);
  CHECK(out.find("24.1 ms") != std::string::npos);
  CHECK(out.find("1h 1m") != std::string::npos);
  CHECK(out.find("/ws") != std::string::npos);
  CHECK(out.find("2100-01-01") != std::string::npos);
  CHECK(out.find("tunnel.refused") != std::string::npos);
  CHECK(out.find("HEALTH") == std::string::npos);  // no route reports health

  const std::string origin = R"({"origin":"nas","edge":"vps:7443","live":1,"connections":2,
    "draining":false,"streams_total":5,"streams_failed":1,
    "tunnels":[{"index":1,"usable":true,"streams":0,"rtt_us":-1,"uptime_s":5}],
    "routes":[{"host":"a.test","path":"/","service":"http://127.0.0.1:3000","health":"healthy"}],
    "recent_errors":[]})";
  const std::string o = hearth::render_status(origin);
  CHECK(o.find("origin nas -> vps:7443: connected, 1 of 2 tunnels up, 5 streams (1 failed)") == 0);
  CHECK(o.find("http://127.0.0.1:3000") != std::string::npos);
  CHECK(o.find("HEALTH") != std::string::npos);
  CHECK(o.find("healthy") != std::string::npos);
  CHECK_THROWS(hearth::render_status("not json"));
}

TEST_CASE("sd_notify sends one datagram to NOTIFY_SOCKET", "[sd_notify]") {
  char dir[] = "/tmp/hearth-sd-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/notify";
  int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);

  ::unsetenv("NOTIFY_SOCKET");
  CHECK_FALSE(hearth::sd::enabled());
  CHECK_FALSE(hearth::sd::notify("READY=1"));
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  CHECK(hearth::sd::enabled());
  CHECK(hearth::sd::notify("READY=1\nSTATUS=up"));
  char buf[256];
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  REQUIRE(n > 0);
  CHECK(std::string(buf, static_cast<std::size_t>(n)) == "READY=1\nSTATUS=up");
  CHECK(hearth::sd::monotonic_usec().rfind("MONOTONIC_USEC=", 0) == 0);

  ::setenv("WATCHDOG_USEC", "500000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  auto wd = hearth::sd::watchdog_interval();
  REQUIRE(wd);
  CHECK(wd->count() == 500000);
  ::setenv("WATCHDOG_PID", "1", 1);  // meant for another process
  CHECK_FALSE(hearth::sd::watchdog_interval());
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  ::unsetenv("NOTIFY_SOCKET");
  ::close(fd);
  ::unlink(path.c_str());
  ::rmdir(dir);
}
