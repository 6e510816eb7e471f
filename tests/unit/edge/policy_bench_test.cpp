// Issue 9 figures, not assertions: run with `hearth_unit_tests "[.policy_bench]" -s`.
// CPU per request of the policy steps (never refusing: rate + security headers +
// cached Basic auth), and heap bytes per tracked client in a PolicyShard.

#include <crypt.h>
#include <malloc.h>

#include <boost/asio/ip/address_v4.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "hearth/edge/policy.hpp"

namespace http = boost::beast::http;
namespace policy = hearth::edge::policy;

TEST_CASE("policy bench: CPU per request and memory per client", "[.policy_bench]") {
  hearth::config::EdgeConfig cfg;
  hearth::config::Policy p;
  p.id = "bench";
  p.host = "app.test";
  p.rate = hearth::config::RateLimit{1e6, 1000000};
  p.security_headers = true;
  hearth::config::BasicAuth auth;
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  crypt_gensalt_rn("$y$", 0, nullptr, 0, salt, sizeof salt);
  crypt_data data{};
  auth.users = {{"bench", crypt_r("pw", salt, &data)}};
  p.basic_auth = auth;
  cfg.policies.push_back(p);
  policy::PolicyTable table;
  const auto client = policy::client_info(boost::asio::ip::make_address("192.0.2.1"));
  constexpr int n = 200000;
  const std::clock_t c0 = std::clock();
  for (int i = 0; i < n; ++i) {
    http::request_header<> req;
    req.method(http::verb::get);
    req.target("/status/204?x=1");
    req.set(http::field::host, "app.test");
    req.set(http::field::authorization, "Basic YmVuY2g6cHc=");
    auto d = policy::on_request_head(cfg, "app.test", req, client, table,
                                     std::chrono::steady_clock::now());
    REQUIRE(!d.reply);
    http::response_header<> res;
    res.result(http::status::no_content);
    policy::apply_response(*d.policy, res);
  }
  const std::clock_t c1 = std::clock();
  // The same loop without the policy calls: the head building it includes.
  for (int i = 0; i < n; ++i) {
    http::request_header<> req;
    req.method(http::verb::get);
    req.target("/status/204?x=1");
    req.set(http::field::host, "app.test");
    req.set(http::field::authorization, "Basic YmVuY2g6cHc=");
    http::response_header<> res;
    res.result(http::status::no_content);
  }
  const std::clock_t c2 = std::clock();
  // CPU time, not wall time: the machine may be shared.
  const double with = 1e9 * static_cast<double>(c1 - c0) / CLOCKS_PER_SEC / n;
  const double without = 1e9 * static_cast<double>(c2 - c1) / CLOCKS_PER_SEC / n;
  std::printf("policy steps: %.0f ns CPU per request (%.0f with head building, %.0f without)\n",
              with - without, with, without);

  policy::PolicyShard big(200000);
  const auto before = mallinfo2().uordblks;
  for (std::uint32_t i = 0; i < 100000; ++i) {
    const auto c = policy::client_info(boost::asio::ip::address_v4(0x0a000000u + i));
    big.take(1, c.key, *p.rate, std::chrono::steady_clock::now());
  }
  const auto after = mallinfo2().uordblks;
  std::printf("PolicyShard: %.1f heap bytes per tracked client (100000 clients)\n",
              static_cast<double>(after - before) / 100000.0);
}
