// [policy] / [[policies]] in edge.toml (issue 9): values, inheritance, errors with file:line:key.

#include <crypt.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "hearth/common/crypto.hpp"
#include "hearth/config/parse.hpp"
#include "test_files.hpp"

using hearth::config::load_edge_config;
using hearth::config::parse_cidr;
using hearth::config::parse_htpasswd;
using hearth::config::parse_rate;
using hearth::test::dump;
using hearth::test::find_problem;
using hearth::test::TempDir;
using hearth::test::write_text;
using namespace std::chrono_literals;

namespace {

std::string make_hash(const char* prefix, const char* password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE(crypt_gensalt_rn(prefix, 0, nullptr, 0, salt, sizeof salt) != nullptr);
  crypt_data data{};
  const char* out = crypt_r(password, salt, &data);
  REQUIRE(out != nullptr);
  return out;
}

struct Dir {
  TempDir dir;
  std::filesystem::path file = dir / "edge.toml";
  Dir() {
    const auto ck = hearth::crypto::self_signed_server_certificate({"example.com"});
    REQUIRE(ck);
    write_text(dir / "a.pem", ck->cert_pem);
    write_text(dir / "a.key", ck->key_pem);
    std::filesystem::permissions(dir / "a.key",
                                 std::filesystem::perms::owner_read |
                                     std::filesystem::perms::owner_write);  // the key-mode check
  }
  auto load(const std::string& policies) {
    write_text(file,
               "[edge]\n"                               // 1
               "listen_https = \"127.0.0.1:0\"\n"       // 2
               "listen_tunnel = \"127.0.0.1:0\"\n"      // 3
               "state_dir = \"state\"\n"                // 4
               "[[tls.certificates]]\n"                 // 5
               "cert = \"a.pem\"\n"                     // 6
               "key = \"a.key\"\n"                      // 7
               "[[origins]]\n"                          // 8
               "name = \"nas\"\n"                       // 9
               "hostnames = [\"app.example.com\"]\n" +  // 10
                   policies);                           // 11...
    return load_edge_config(file);
  }
};

}  // namespace

TEST_CASE("policy values: rate, cidr", "[config][policy]") {
  CHECK(parse_rate("10/s") == 10.0);
  CHECK(parse_rate("120/m") == 2.0);
  CHECK(parse_rate("36/h") == 0.01);
  CHECK(parse_rate("2.5/s") == 2.5);
  for (auto bad : {"", "10", "/s", "10/x", "0/s", "-1/s", "1e3/s", "10/s ", " 10/s", "nan/s"}) {
    INFO(bad);
    CHECK_FALSE(parse_rate(bad));
  }
  auto v4 = parse_cidr("192.0.2.0/24");
  REQUIRE(v4);
  CHECK(v4->prefix_len == 120);
  CHECK(v4->contains(*hearth::config::parse_address16("192.0.2.77")));
  CHECK_FALSE(v4->contains(*hearth::config::parse_address16("192.0.3.1")));
  CHECK_FALSE(v4->contains(*hearth::config::parse_address16("2001:db8::1")));
  auto v6 = parse_cidr("2001:db8::/32");
  REQUIRE(v6);
  CHECK(v6->contains(*hearth::config::parse_address16("2001:db8:ffff::1")));
  CHECK_FALSE(v6->contains(*hearth::config::parse_address16("2001:db9::1")));
  auto one = parse_cidr("127.0.0.1");
  REQUIRE(one);
  CHECK(one->prefix_len == 128);
  auto any = parse_cidr("0.0.0.0/0");
  REQUIRE(any);
  CHECK(any->contains(*hearth::config::parse_address16("203.0.113.9")));
  CHECK_FALSE(any->contains(*hearth::config::parse_address16("::1")));  // IPv4 only
  for (auto bad : {"192.0.2.1/24", "192.0.2.0/33", "10.0.0.0/", "::/129", "host/8", "1.2.3/8",
                   "10.0.0.0/08x", ""}) {
    INFO(bad);
    CHECK_FALSE(parse_cidr(bad));
  }
}

TEST_CASE("htpasswd: bcrypt and yescrypt; anything else is refused with its line",
          "[config][policy]") {
  const auto b = make_hash("$2b$", "pw");
  const auto y = make_hash("$y$", "pw");
  std::string by = "$2y$" + b.substr(4);  // htpasswd -B writes $2y$
  auto ok = parse_htpasswd("# users\n\nalice:" + by + "\nbob:" + y + "\r\n");
  REQUIRE_FALSE(ok.error);
  REQUIRE(ok.users.size() == 2);
  CHECK(ok.users[0].user == "alice");
  CHECK(ok.users[1].hash == y);
  auto md5 = parse_htpasswd("alice:" + by + "\ncarol:$apr1$abc$defghijklmnopqrstuvw\n");
  REQUIRE(md5.error);
  CHECK(md5.error->line == 2);
  auto plain = parse_htpasswd("dave:secret\n");
  REQUIRE(plain.error);
  CHECK(plain.error->line == 1);
  auto twice = parse_htpasswd("a:" + y + "\na:" + y + "\n");
  REQUIRE(twice.error);
  CHECK(twice.error->line == 2);
  CHECK(parse_htpasswd("nocolon\n").error);
  CHECK(parse_htpasswd("x:$2y$99$garbage\n").error);
}

TEST_CASE("edge.toml: seed 000 policies, inheritance and defaults", "[config][policy]") {
  Dir d;
  write_text(d.dir / "htpasswd", "admin:" + make_hash("$y$", "secret") + "\n");
  write_text(d.dir / "429.html", "<h1>slow down</h1>");
  const auto r = d.load(R"(
[policy]
rate = "100/s"
burst = 50
security_headers = true
max_body_size = "100MB"
error_pages = { 429 = "429.html" }

[[policies]]
host = "app.example.com"
path = "/api"
rate = "10/s"
burst = 20

[[policies]]
host = "*.example.com"
path = "/admin"
basic_auth_file = "htpasswd"
allow = ["192.0.2.0/24", "2001:db8::/32"]
deny = ["192.0.2.66"]
hsts = "max-age=63072000"
hsts_preload = true
rate = "off"
response_header_timeout = "5s"
idle_timeout = "10s"
websocket_idle_timeout = "7d"
add_response_headers = { "Cache-Control" = "no-store" }
remove_response_headers = ["Server", "X-Powered-By"]
add_request_headers = { "X-From-Edge" = "1" }
remove_request_headers = ["Cookie"]
)");
  INFO(dump(r.problems));
  REQUIRE(r.config);
  const auto& c = *r.config;
  REQUIRE(c.default_policy);
  CHECK(c.default_policy->id == "default");
  REQUIRE(c.default_policy->rate);
  CHECK(c.default_policy->rate->per_second == 100.0);
  CHECK(c.default_policy->rate->burst == 50u);
  CHECK(c.default_policy->security_headers);
  CHECK(c.default_policy->hsts == "max-age=31536000; includeSubDomains");
  CHECK(c.default_policy->max_body_size == 100'000'000u);
  CHECK(c.default_policy->error_pages.at(429) == "<h1>slow down</h1>");
  REQUIRE(c.policies.size() == 2);
  const auto& api = c.policies[0];
  CHECK(api.id == "app.example.com /api");
  CHECK(api.rate->per_second == 10.0);
  CHECK(api.rate->burst == 20u);
  CHECK(api.security_headers);  // inherited
  CHECK(api.max_body_size == 100'000'000u);
  const auto& admin = c.policies[1];
  CHECK(admin.host == "*.example.com");
  CHECK_FALSE(admin.rate);
  REQUIRE(admin.basic_auth);
  CHECK(admin.basic_auth->users.size() == 1);
  CHECK(admin.allow.size() == 2);
  CHECK(admin.deny.size() == 1);
  CHECK(admin.hsts == "max-age=63072000; preload");
  CHECK(admin.response_header_timeout == 5s);
  CHECK(admin.idle_timeout == 10s);
  CHECK(admin.websocket_idle_timeout == std::chrono::hours(24 * 7));
  REQUIRE(admin.add_response_headers.size() == 1);
  CHECK(admin.add_response_headers[0].name == "Cache-Control");
  CHECK(admin.remove_response_headers == std::vector<std::string>{"server", "x-powered-by"});
  CHECK(admin.remove_request_headers == std::vector<std::string>{"cookie"});
}

TEST_CASE("edge.toml: policy problems name file, line and key", "[config][policy]") {
  Dir d;
  write_text(d.dir / "bad.htpasswd", "# x\nalice:{SHA}abc\n");
  const auto r = d.load(R"(
[policy]
rate = "10 per second"
[[policies]]
host = "app.example.com"
path = "/a/../b"
burst = 5
rate = "off"
[[policies]]
host = "app.example.com"
basic_auth_file = "bad.htpasswd"
allow = ["10.0.0.1/8"]
add_response_headers = { "Content-Length" = "1" }
error_pages = { 200 = "x.html" }
colour = "red"
[[policies]]
path = "/x"
)");
  REQUIRE_FALSE(r.config);
  INFO(dump(r.problems));
  const auto* rate = find_problem(r.problems, "policy.rate");
  REQUIRE(rate);
  CHECK(rate->line == 13);
  const auto* path = find_problem(r.problems, "policies[0].path");
  REQUIRE(path);
  CHECK(path->line == 16);
  CHECK(find_problem(r.problems, "policies[0].burst"));
  const auto* auth = find_problem(r.problems, "policies[1].basic_auth_file");
  REQUIRE(auth);
  CHECK(auth->line == 21);
  CHECK(auth->message.find("bad.htpasswd:2:") != std::string::npos);
  CHECK(find_problem(r.problems, "policies[1].allow[0]"));
  CHECK(find_problem(r.problems, "policies[1].add_response_headers.Content-Length"));
  CHECK(find_problem(r.problems, "policies[1].error_pages.200"));
  CHECK(find_problem(r.problems, "policies[1].colour"));
  CHECK(find_problem(r.problems, "policies[2].host"));
}
