// Per-host request metrics (issue 13): bounded labels, cumulative buckets.

#include "hearth/edge/request_stats.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

using hearth::edge::RequestStats;
using namespace std::chrono_literals;

TEST_CASE("request stats: configured hosts, wildcard, other", "[metrics]") {
  RequestStats stats;
  stats.configure({"app.example.com", "*.home.example.com"});
  stats.observe("App.Example.com:443", 200, 3ms, 10, 1000);
  stats.observe("app.example.com", 200, 300ms, 0, 5);
  stats.observe("nas.home.example.com", 503, 1ms, 0, 0);
  stats.observe("evil.test", 404, 1ms, 0, 7);
  stats.observe("not a host!", 400, 1ms, 0, 0);
  stats.observe("app.example.com", 0, 1ms, 3, 0);  // no answer: bytes only
  std::string out;
  stats.render(out);
  CHECK(out.find("# TYPE hearth_http_request_duration_seconds histogram") != std::string::npos);
  CHECK(out.find("hearth_http_request_duration_seconds_bucket{host=\"app.example.com\","
                 "code_class=\"2xx\",le=\"0.005\"} 1\n") != std::string::npos);
  CHECK(out.find("hearth_http_request_duration_seconds_bucket{host=\"app.example.com\","
                 "code_class=\"2xx\",le=\"0.5\"} 2\n") != std::string::npos);
  CHECK(out.find("hearth_http_request_duration_seconds_count{host=\"app.example.com\","
                 "code_class=\"2xx\"} 2\n") != std::string::npos);
  CHECK(out.find("{host=\"*.home.example.com\",code_class=\"5xx\"} 1\n") != std::string::npos);
  CHECK(out.find(
            "hearth_http_request_duration_seconds_count{host=\"other\",code_class=\"4xx\"} 2\n") !=
        std::string::npos);
  CHECK(out.find("hearth_host_bytes_total{host=\"app.example.com\",direction=\"in\"} 13\n") !=
        std::string::npos);
  CHECK(out.find("hearth_host_bytes_total{host=\"other\",direction=\"out\"} 7\n") !=
        std::string::npos);
  CHECK(out.find("evil") == std::string::npos);

  // A reload that drops a host: its series stay (frozen), new requests go to "other".
  stats.configure({"*.home.example.com", "new.example.com"});
  stats.observe("app.example.com", 200, 1ms, 0, 0);
  out.clear();
  stats.render(out);
  CHECK(out.find("hearth_http_request_duration_seconds_count{host=\"app.example.com\","
                 "code_class=\"2xx\"} 2\n") != std::string::npos);
  CHECK(out.find(
            "hearth_http_request_duration_seconds_count{host=\"other\",code_class=\"2xx\"} 1\n") !=
        std::string::npos);
  CHECK(out.find("host=\"new.example.com\"") != std::string::npos);
}

TEST_CASE("request stats: the label set is capped", "[metrics]") {
  RequestStats stats;
  std::vector<std::string> many;
  for (std::size_t i = 0; i < RequestStats::kMaxHosts + 50; ++i) {
    many.push_back("h" + std::to_string(i) + ".example.com");
  }
  stats.configure(many);
  stats.observe("h1.example.com", 200, 1ms, 0, 0);
  stats.observe(many.back(), 200, 1ms, 0, 0);  // beyond the cap: "other"
  std::string out;
  stats.render(out);
  CHECK(out.find("{host=\"other\",code_class=\"2xx\"} 1\n") != std::string::npos);
  CHECK(out.find("host=\"" + many.back() + "\"") == std::string::npos);
}
