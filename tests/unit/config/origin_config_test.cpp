// origin.toml: a full valid file, then each kind of problem with its exact file:line and key.

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "hearth/common/crypto.hpp"
#include "hearth/config/parse.hpp"
#include "test_files.hpp"

using hearth::config::load_origin_config;
using hearth::config::parse_origin_config;
using hearth::config::ServiceUrl;
using hearth::test::dump;
using hearth::test::find_problem;
using hearth::test::TempDir;
using hearth::test::write_text;
using namespace std::chrono_literals;

namespace {

const std::string& edge_pin() {
  static const std::string pin =
      *hearth::crypto::pin_of_private_key_pem(hearth::crypto::generate_private_key_pem());
  return pin;
}

// A temp dir with origin.toml's key beside it in keys/origin.key.
struct OriginDir {
  TempDir dir;
  std::filesystem::path file = dir / "origin.toml";
  std::string key_pem = hearth::crypto::generate_private_key_pem();

  OriginDir() {
    write_text(dir / "keys/origin.key", key_pem);
    // A private key others can read is a problem of its own (issue 13).
    std::filesystem::permissions(dir / "keys/origin.key", std::filesystem::perms::owner_read |
                                                              std::filesystem::perms::owner_write);
  }

  auto load(const std::string& text) {
    write_text(file, text);
    return load_origin_config(file);
  }
};

// Line numbers below are counted in this text.
std::string minimal_origin() {
  return "[origin]\n"                         // 1
         "name = \"nas\"\n"                   // 2
         "edge = \"vps.example.com:7443\"\n"  // 3
         "edge_pin = \"" +
         edge_pin() +
         "\"\n"                                    // 4
         "key_file = \"keys/origin.key\"\n"        // 5
         "\n"                                      // 6
         "[[routes]]\n"                            // 7
         "host = \"app.example.com\"\n"            // 8
         "service = \"http://127.0.0.1:3000\"\n";  // 9
}

std::string replace_line(const std::string& doc, int line, const std::string& text) {
  std::size_t begin = 0;
  for (int i = 1; i < line; ++i) {
    begin = doc.find('\n', begin) + 1;
  }
  const std::size_t end = doc.find('\n', begin);
  return doc.substr(0, begin) + text + doc.substr(end);
}

}  // namespace

TEST_CASE("origin.toml: a full valid file", "[config][origin]") {
  OriginDir d;
  const auto r = d.load(R"([origin]
name        = "nas"
edge        = "VPS.example.com:7443"
edge_pin    = ")" + edge_pin() +
                        R"("
key_file    = "keys/origin.key"
connections = 4
listen_admin = "127.0.0.1:0"
workers = 2
connect_timeout = "3s"
service_connect_timeout = "500ms"
idle_timeout = "2m"
websocket_idle_timeout = "1d"
drain_timeout = "10s"
keepalive_interval = "5s"
keepalive_timeout = "20s"
reconnect_min = "50ms"
reconnect_max = "1m"

[[routes]]
host    = "Tallow.Example.com"
path    = "/signaling"
service = "http://127.0.0.1:3001"

[[routes]]
host    = "tallow.example.com"
service = "http://127.0.0.1:3000/"

[[routes]]
host       = "*.home.example.com"
service    = "https://[::1]:8443"
tls_verify = true
proxy_protocol = "v2"
)");
  INFO(dump(r.problems));
  REQUIRE(r.problems.empty());
  REQUIRE(r.config);
  const auto& c = *r.config;
  CHECK(c.source == d.file);
  CHECK(c.name == "nas");
  CHECK(c.edge.to_string() == "vps.example.com:7443");
  CHECK(c.edge_pin == edge_pin());
  CHECK(c.key_pem == d.key_pem);
  CHECK(c.key_file == d.dir / "keys/origin.key");
  CHECK(c.connections == 4);
  REQUIRE(c.listen_admin);
  CHECK(c.listen_admin->port == 0);
  CHECK(c.workers == 2);
  CHECK(c.connect_timeout == 3s);
  CHECK(c.service_connect_timeout == 500ms);
  CHECK(c.idle_timeout == 2min);
  CHECK(c.websocket_idle_timeout == 24h);
  CHECK(c.drain_timeout == 10s);
  CHECK(c.keepalive_interval == 5s);
  CHECK(c.keepalive_timeout == 20s);
  CHECK(c.reconnect_min == 50ms);
  CHECK(c.reconnect_max == 1min);
  REQUIRE(c.routes.size() == 3);
  CHECK(c.routes[0].host == "tallow.example.com");
  CHECK(c.routes[0].path == "/signaling");
  CHECK(c.routes[0].service == ServiceUrl{false, "127.0.0.1", 3001});
  CHECK_FALSE(c.routes[0].tls_verify);
  CHECK(c.routes[1].path == "/");  // the default
  CHECK(c.routes[1].service.port == 3000);
  CHECK(c.routes[2].host == "*.home.example.com");
  CHECK(c.routes[2].service == ServiceUrl{true, "::1", 8443});
  CHECK(c.routes[2].tls_verify);
  CHECK(c.routes[2].proxy_protocol == 2);
  CHECK(c.routes[0].proxy_protocol == 0);
}

TEST_CASE("origin.toml: defaults", "[config][origin]") {
  OriginDir d;
  const auto r = d.load(minimal_origin());
  INFO(dump(r.problems));
  REQUIRE(r.config);
  CHECK(r.config->connections == 2);
  CHECK_FALSE(r.config->listen_admin);
  CHECK(r.config->connect_timeout == 10s);
  CHECK(r.config->reconnect_min == 100ms);
  CHECK(r.config->reconnect_max == 30s);
}

TEST_CASE("origin.toml: inline key", "[config][origin]") {
  OriginDir d;
  const auto r = d.load(replace_line(minimal_origin(), 5, "key = \"\"\"\n" + d.key_pem + "\"\"\""));
  INFO(dump(r.problems));
  REQUIRE(r.config);
  CHECK(r.config->key_pem == d.key_pem);
  CHECK(r.config->key_file.empty());
}

TEST_CASE("origin.toml: the key, exactly one of key_file and key", "[config][origin]") {
  OriginDir d;
  SECTION("both") {
    const auto r =
        d.load(replace_line(minimal_origin(), 5, "key_file = \"keys/origin.key\"\nkey = \"x\""));
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].key == "origin.key");
    CHECK(r.problems[0].line == 6);
    CHECK(r.problems[0].message == "give either key_file or key, not both");
  }
  SECTION("neither: the [origin] line") {
    const auto r = d.load(replace_line(minimal_origin(), 5, ""));
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].key == "origin.key_file");
    CHECK(r.problems[0].line == 1);
    CHECK(r.problems[0].column == 0);
  }
  SECTION("key_file missing") {
    const auto r = d.load(replace_line(minimal_origin(), 5, "key_file = \"nope.key\""));
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].to_string() ==
          d.file.string() +
              ":5:12: origin.key_file: file not found: " + (d.dir / "nope.key").string());
  }
  SECTION("key_file is not a key") {
    write_text(d.dir / "junk.key", "not a key\n");
    const auto r = d.load(replace_line(minimal_origin(), 5, "key_file = \"junk.key\""));
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].key == "origin.key_file");
    CHECK_THAT(r.problems[0].message, Catch::StartsWith("not a PEM private key"));
  }
  SECTION("inline key is not a key") {
    const auto r = d.load(replace_line(minimal_origin(), 5, "key = \"-----BEGIN nothing\""));
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].key == "origin.key");
    CHECK(r.problems[0].line == 5);
  }
}

TEST_CASE("origin.toml: edge address and pin", "[config][origin]") {
  OriginDir d;
  SECTION("port 0 is not a place to dial") {
    const auto r = d.load(replace_line(minimal_origin(), 3, "edge = \"vps.example.com:0\""));
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].key == "origin.edge");
    CHECK(r.problems[0].line == 3);
    CHECK(r.problems[0].column == 8);
    CHECK_THAT(r.problems[0].message, Catch::StartsWith("port 0 is not allowed here"));
  }
  SECTION("bad address") {
    const auto r = d.load(replace_line(minimal_origin(), 3, "edge = \"vps.example.com\""));
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].key == "origin.edge");
    CHECK_THAT(r.problems[0].message, Catch::StartsWith("not a valid address"));
  }
  SECTION("bad pins") {
    for (const std::string& pin :
         {std::string("sha256:"), std::string("abc"), "sha1:" + edge_pin().substr(7),
          edge_pin() + "=", edge_pin().substr(0, 49), edge_pin() + "A"}) {
      INFO("pin: " << pin);
      const auto r = d.load(replace_line(minimal_origin(), 4, "edge_pin = \"" + pin + "\""));
      REQUIRE(r.problems.size() == 1);
      CHECK(r.problems[0].key == "origin.edge_pin");
      CHECK(r.problems[0].line == 4);
    }
  }
  SECTION("connections out of range") {
    for (const char* n : {"0", "65", "-1"}) {
      const auto r = d.load(replace_line(
          minimal_origin(), 5, "key_file = \"keys/origin.key\"\nconnections = " + std::string(n)));
      REQUIRE(r.problems.size() == 1);
      CHECK(r.problems[0].key == "origin.connections");
      CHECK(r.problems[0].line == 6);
      CHECK(r.problems[0].message == "must be between 1 and 64");
    }
  }
  SECTION("bad origin name") {
    const auto r =
        d.load(replace_line(minimal_origin(), 2, "name = \"" + std::string(65, 'a') + "\""));
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].key == "origin.name");
  }
  SECTION("reconnect_min above reconnect_max") {
    const auto r = d.load(replace_line(minimal_origin(), 5,
                                       "key_file = \"keys/origin.key\"\nreconnect_min = \"1m\""));
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].key == "origin.reconnect_min");
    CHECK(r.problems[0].line == 6);
    CHECK(r.problems[0].message == "must be at most origin.reconnect_max");
  }
}

TEST_CASE("origin.toml: duplicate route", "[config][origin]") {
  OriginDir d;
  const auto r = d.load(minimal_origin() +
                        "\n"                                       // 10
                        "[[routes]]\n"                             // 11
                        "host = \"App.Example.com\"\n"             // 12
                        "path = \"/\"\n"                           // 13
                        "service = \"http://127.0.0.1:4000\"\n");  // 14
  INFO(dump(r.problems));
  CHECK_FALSE(r.config);
  REQUIRE(r.problems.size() == 1);
  const auto& p = r.problems[0];
  CHECK(p.key == "routes[1]");
  CHECK(p.line == 11);
  CHECK(p.to_string() == d.file.string() +
                             ":11: routes[1]: duplicate route for host \"app.example.com\" path "
                             "\"/\" (first defined at line 7)");
}

TEST_CASE("origin.toml: same host with different paths is fine", "[config][origin]") {
  OriginDir d;
  const auto r = d.load(minimal_origin() +
                        "[[routes]]\nhost = \"app.example.com\"\npath = \"/api\"\n"
                        "service = \"http://127.0.0.1:4000\"\n");
  INFO(dump(r.problems));
  REQUIRE(r.config);
  REQUIRE(r.config->routes.size() == 2);
  CHECK(r.config->routes[1].path == "/api");
}

TEST_CASE("origin.toml: bad route values", "[config][origin]") {
  OriginDir d;
  const auto r = d.load(minimal_origin() +
                        "[[routes]]\n"                               // 10
                        "host = \"bad host\"\n"                      // 11
                        "path = \"api\"\n"                           // 12
                        "service = \"http://127.0.0.1:4000/api\"\n"  // 13
                        "tls_verify = \"yes\"\n"                     // 14
                        "[[routes]]\n"                               // 15
                        "path = \"/x y\"\n"                          // 16
                        "service = \"tcp://127.0.0.1:1\"\n"          // 17
                        "[[routes]]\n"                               // 18
                        "host = \"c.example.com\"\n");               // 19
  INFO(dump(r.problems));
  CHECK_FALSE(r.config);
  REQUIRE(r.problems.size() == 8);
  CHECK(r.problems[0].key == "routes[1].host");
  CHECK(r.problems[0].line == 11);
  CHECK(r.problems[1].key == "routes[1].path");
  CHECK(r.problems[2].key == "routes[1].service");
  CHECK_THAT(r.problems[2].message, Catch::StartsWith("not a service URL"));
  CHECK(r.problems[3].key == "routes[1].tls_verify");
  CHECK(r.problems[3].message == "expected true or false, got a string");
  CHECK(r.problems[4].key == "routes[2].host");
  CHECK(r.problems[4].line == 15);
  CHECK(r.problems[4].message == "missing required key");
  CHECK(r.problems[5].key == "routes[2].path");
  CHECK(r.problems[5].line == 16);
  CHECK(r.problems[6].key == "routes[2].service");
  CHECK(r.problems[7].key == "routes[3].service");
  CHECK(r.problems[7].line == 18);
  CHECK(r.problems[7].message == "missing required key");
}

TEST_CASE("origin.toml: routes are required", "[config][origin]") {
  OriginDir d;
  const std::string no_routes = minimal_origin().substr(0, minimal_origin().find("[[routes]]"));
  auto r = d.load(no_routes);
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].key == "routes");
  CHECK(r.problems[0].message == "missing [[routes]]: at least one route is required");
  r = d.load(no_routes + "routes = []\n");  // lands inside [origin]: an unknown key there
  REQUIRE(r.problems.size() == 2);
  CHECK(r.problems[0].key == "routes");  // whole-file problems (line 0) come first
  CHECK(r.problems[1].key == "origin.routes");
  CHECK(r.problems[1].line == 7);
  r = d.load("routes = []\n" + no_routes);
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].key == "routes");
  CHECK(r.problems[0].line == 1);
  CHECK(r.problems[0].message == "at least one route is required");
}

TEST_CASE("origin.toml: problems collected across tables", "[config][origin]") {
  OriginDir d;
  std::string doc = replace_line(minimal_origin(), 3, "edge = 7443");
  doc = replace_line(doc, 5, "key_flie = \"keys/origin.key\"");
  doc = replace_line(doc, 9, "service = \"http://127.0.0.1\"\nport = 3000");
  const auto r = d.load(doc);
  INFO(dump(r.problems));
  REQUIRE(r.problems.size() == 4);
  CHECK(r.problems[0].key == "origin.key_file");  // missing: the [origin] line
  CHECK(r.problems[0].line == 1);
  CHECK(r.problems[1].key == "origin.edge");
  CHECK(r.problems[1].line == 3);
  CHECK(r.problems[2].key == "origin.key_flie");
  CHECK(r.problems[2].line == 5);
  CHECK(r.problems[2].message == "unknown key (did you mean \"key_file\"?)");
  CHECK(r.problems[3].key == "routes[0].port");
  CHECK(r.problems[3].line == 10);
}

TEST_CASE("origin.toml: an edge.toml given by mistake", "[config][origin]") {
  const auto r = parse_origin_config("[edge]\nlisten_https = \"0.0.0.0:443\"\n", "edge.toml");
  INFO(dump(r.problems));
  CHECK_FALSE(r.config);
  CHECK(find_problem(r.problems, "origin"));
  CHECK(find_problem(r.problems, "routes"));
  const auto* edge = find_problem(r.problems, "edge");
  REQUIRE(edge);
  CHECK(edge->line == 1);
  CHECK(edge->message == "unknown key");
}

TEST_CASE("origin config: syntax error and missing file", "[config][origin]") {
  OriginDir d;
  auto r = d.load(minimal_origin() + "[[routes]\n");
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].line == 10);
  CHECK(r.problems[0].key.empty());
  CHECK_FALSE(r.config);

  r = load_origin_config(d.dir / "missing.toml");
  REQUIRE(r.problems.size() == 1);
  CHECK_THAT(r.problems[0].message, Catch::StartsWith("file not found"));
}
