// Pairing over time (issue 13): hostnames in the join token, join --route,
// last seen, revoke; and the health check keys of [[routes]].

#include <catch2/catch.hpp>
#include <string>

#include "hearth/common/crypto.hpp"
#include "hearth/config/pairing.hpp"
#include "hearth/config/parse.hpp"
#include "test_files.hpp"

namespace cfg = hearth::config;
namespace crypto = hearth::crypto;
using hearth::test::dump;
using hearth::test::find_problem;
using hearth::test::read_text;
using hearth::test::TempDir;
using hearth::test::write_text;

namespace {

cfg::EdgeConfig edge_config(const std::filesystem::path& state_dir) {
  cfg::EdgeConfig c;
  c.source = "/etc/hearth/edge.toml";
  c.state_dir = state_dir;
  c.origins.push_back(cfg::OriginGrant{"nas", {"app.example.com", "*.home.example.com"}});
  return c;
}

}  // namespace

TEST_CASE("join token: host lines round-trip; tokens without them still decode",
          "[config][pairing][token]") {
  crypto::JoinToken t{"vps.example.com:7443",
                      *crypto::pin_of_private_key_pem(crypto::generate_private_key_pem()),
                      "nas",
                      crypto::generate_private_key_pem(),
                      {"app.example.com", "*.home.example.com"}};
  auto back = crypto::decode_join_token(crypto::encode_join_token(t));
  REQUIRE(back);
  CHECK(back->hostnames == t.hostnames);
  t.hostnames.clear();
  back = crypto::decode_join_token(crypto::encode_join_token(t));
  REQUIRE(back);
  CHECK(back->hostnames.empty());
  // A host line that is not a hostname pattern makes the token invalid.
  t.hostnames = {"bad host"};
  CHECK_FALSE(crypto::decode_join_token(crypto::encode_join_token(t)));
  t.hostnames = {"a.*.example.com"};
  CHECK_FALSE(crypto::decode_join_token(crypto::encode_join_token(t)));
}

TEST_CASE("invite puts the allowed hostnames in the token", "[config][pairing][token]") {
  TempDir dir;
  auto token = crypto::decode_join_token(
      cfg::invite_origin(edge_config(dir / "state"), "nas", "vps.example.com:7443"));
  REQUIRE(token);
  CHECK(token->hostnames == std::vector<std::string>{"app.example.com", "*.home.example.com"});
}

TEST_CASE("join: --route routes, or one route per allowed hostname", "[config][pairing]") {
  TempDir dir;
  auto token = crypto::decode_join_token(
      cfg::invite_origin(edge_config(dir / "state"), "nas", "vps.example.com:7443"));
  REQUIRE(token);

  SECTION("without --route") {
    cfg::write_origin_config(*token, dir / "a/origin.toml");
    auto r = cfg::load_origin_config(dir / "a/origin.toml");
    INFO(dump(r.problems) << read_text(dir / "a/origin.toml"));
    REQUIRE(r.config);
    REQUIRE(r.config->routes.size() == 2);
    CHECK(r.config->routes[0].host == "app.example.com");
    CHECK(r.config->routes[1].host == "*.home.example.com");
    CHECK(r.config->routes[1].service == cfg::ServiceUrl{false, "127.0.0.1", 3000});
  }
  SECTION("with --route") {
    std::vector<cfg::JoinRoute> routes{
        cfg::parse_join_route("app.example.com=http://127.0.0.1:8080"),
        cfg::parse_join_route("App.Example.com/signaling=http://127.0.0.1:3001")};
    cfg::write_origin_config(*token, dir / "b/origin.toml", false, routes);
    auto r = cfg::load_origin_config(dir / "b/origin.toml");
    INFO(dump(r.problems));
    REQUIRE(r.config);
    REQUIRE(r.config->routes.size() == 2);
    CHECK(r.config->routes[0].path == "/");
    CHECK(r.config->routes[0].service.port == 8080);
    CHECK(r.config->routes[1].host == "app.example.com");
    CHECK(r.config->routes[1].path == "/signaling");
    CHECK_THAT(read_text(dir / "b/origin.toml"), !Catch::Contains("EDIT ME"));
  }
  CHECK_THROWS_AS(cfg::parse_join_route("app.example.com"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_join_route("=http://127.0.0.1:1"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_join_route("a b=http://127.0.0.1:1"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_join_route("a.example.com=ftp://x:1"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_join_route("a.example.com/x?y=http://127.0.0.1:1"),
                  std::invalid_argument);
}

TEST_CASE("last seen and revoke", "[config][pairing]") {
  TempDir dir;
  auto c = edge_config(dir / "state");
  cfg::invite_origin(c, "nas", "vps.example.com:7443");
  CHECK_FALSE(cfg::load_last_seen(c.state_dir, "nas"));
  cfg::record_last_seen(c.state_dir, "nas", "198.51.100.7:40112");
  auto seen = cfg::load_last_seen(c.state_dir, "nas");
  REQUIRE(seen);
  CHECK(seen->peer == "198.51.100.7:40112");
  CHECK(seen->when.size() == 20);  // 2026-12-01T22:10:00Z
  // The .seen file is not mistaken for keys.
  CHECK(cfg::load_authorized_origins(c.state_dir).at("nas").size() == 1);

  CHECK(cfg::revoke_origin(c.state_dir, "nas"));
  CHECK(cfg::load_authorized_origins(c.state_dir).count("nas") == 0);
  CHECK_FALSE(cfg::load_last_seen(c.state_dir, "nas"));
  CHECK_FALSE(cfg::revoke_origin(c.state_dir, "nas"));
  CHECK_THROWS(cfg::revoke_origin(c.state_dir, "../x"));
}

TEST_CASE("origin.toml: health check keys", "[config][origin][health]") {
  TempDir dir;
  write_text(dir / "origin.key", crypto::generate_private_key_pem());
  std::filesystem::permissions(dir / "origin.key",
                               std::filesystem::perms::owner_read |
                                   std::filesystem::perms::owner_write);  // the key-mode check
  const std::string head =
      "[origin]\nname = \"nas\"\nedge = \"vps.example.com:7443\"\nedge_pin = \"" +
      *crypto::pin_of_private_key_pem(crypto::generate_private_key_pem()) +
      "\"\nkey_file = \"origin.key\"\n\n[[routes]]\nhost = \"app.example.com\"\n"
      "service = \"http://127.0.0.1:3000\"\n";
  auto load = [&](const std::string& extra) {
    write_text(dir / "origin.toml", head + extra);
    return cfg::load_origin_config(dir / "origin.toml");
  };
  {
    auto r = load("");
    REQUIRE(r.config);
    const auto& route = r.config->routes[0];
    CHECK(route.health_check.empty());
    CHECK(route.health_interval == std::chrono::seconds(5));
    CHECK(route.health_timeout == std::chrono::seconds(2));
    CHECK(route.health_rise == 2);
    CHECK(route.health_fall == 3);
  }
  {
    auto r = load(
        "health_check = \"/healthz\"\nhealth_interval = \"1s\"\nhealth_timeout = \"500ms\"\n"
        "health_rise = 1\nhealth_fall = 2\n");
    INFO(dump(r.problems));
    REQUIRE(r.config);
    const auto& route = r.config->routes[0];
    CHECK(route.health_check == "/healthz");
    CHECK(route.health_interval == std::chrono::seconds(1));
    CHECK(route.health_timeout == std::chrono::milliseconds(500));
    CHECK(route.health_rise == 1);
    CHECK(route.health_fall == 2);
  }
  CHECK(load("health_check = \"tcp\"\n").config);
  {
    auto r = load("health_check = \"healthz\"\n");
    CHECK_FALSE(r.config);
    const auto* p = find_problem(r.problems, "routes[0].health_check");
    REQUIRE(p);
    CHECK(p->line == 10);
  }
  {
    auto r = load("health_timeout = \"10s\"\n");
    CHECK_FALSE(r.config);
    CHECK(find_problem(r.problems, "routes[0].health_timeout"));
  }
  CHECK(find_problem(load("health_fall = 0\n").problems, "routes[0].health_fall"));
}
