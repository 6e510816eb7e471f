// Edge state (tunnel key, authorized origins) and invite -> join -> load.

#include "hearth/config/pairing.hpp"

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>

#include "hearth/common/crypto.hpp"
#include "hearth/config/parse.hpp"
#include "test_files.hpp"

namespace cfg = hearth::config;
namespace crypto = hearth::crypto;
using hearth::test::dump;
using hearth::test::file_mode;
using hearth::test::read_text;
using hearth::test::TempDir;
using hearth::test::write_text;

namespace {

cfg::EdgeConfig edge_config(const std::filesystem::path& state_dir) {
  cfg::EdgeConfig c;
  c.source = "/etc/hearth/edge.toml";
  c.state_dir = state_dir;
  c.origins.push_back(cfg::OriginGrant{"nas", {"tallow.example.com"}});
  c.origins.push_back(cfg::OriginGrant{"pi", {"pi.example.com"}});
  return c;
}

}  // namespace

TEST_CASE("edge key: created once with private modes, then reused", "[config][pairing]") {
  TempDir dir;
  const auto state = dir / "var/lib/hearth";
  CHECK_FALSE(cfg::load_edge_key(state));

  const std::string key = cfg::load_or_create_edge_key(state);
  CHECK(crypto::pin_of_private_key_pem(key));
  CHECK(file_mode(state) == 0700);
  CHECK(file_mode(cfg::edge_key_path(state)) == 0600);
  CHECK(cfg::edge_key_path(state) == state / "tunnel.key");
  CHECK(read_text(state / "tunnel.key") == key);

  CHECK(cfg::load_or_create_edge_key(state) == key);
  CHECK(cfg::load_edge_key(state) == key);
  // No temporary files left behind.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(state)) {
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("edge key: an existing state_dir keeps its mode", "[config][pairing]") {
  TempDir dir;
  std::filesystem::create_directories(dir / "state");
  std::filesystem::permissions(dir / "state", std::filesystem::perms(0750));
  cfg::load_or_create_edge_key(dir / "state");
  CHECK(file_mode(dir / "state") == 0750);
}

TEST_CASE("edge key: unusable files are errors that name the file", "[config][pairing]") {
  TempDir dir;
  write_text(dir / "tunnel.key", "garbage\n");
  try {
    cfg::load_edge_key(dir.path());
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), Catch::Contains((dir / "tunnel.key").string()));
    CHECK_THAT(e.what(), Catch::Contains("not a PEM private key"));
  }
  CHECK_THROWS_AS(cfg::load_or_create_edge_key(dir.path()), std::runtime_error);

  // state_dir under a regular file cannot be created.
  write_text(dir / "file", "x");
  CHECK_THROWS_AS(cfg::load_or_create_edge_key(dir / "file/state"), std::runtime_error);
}

TEST_CASE("authorized origins: pins files, comments, bad lines", "[config][pairing]") {
  TempDir dir;
  CHECK(cfg::load_authorized_origins(dir.path()).empty());  // no origins/ yet

  const auto pin1 = *crypto::pin_of_private_key_pem(crypto::generate_private_key_pem());
  const auto pin2 = *crypto::pin_of_private_key_pem(crypto::generate_private_key_pem());
  write_text(cfg::pins_path(dir.path(), "nas"), "# nas, invited 2024-01-01\n" + pin1 + "\n\n  " +
                                                    pin2 + "  # laptop\r\n" + pin1 + "\n");
  write_text(cfg::pins_path(dir.path(), "empty"), "# revoked everything\n");
  write_text(dir / "origins/README", "not a pins file\n");
  write_text(dir / "origins/bad name.pins", pin1 + "\n");  // not an origin name: ignored

  const auto origins = cfg::load_authorized_origins(dir.path());
  REQUIRE(origins.size() == 1);
  REQUIRE(origins.count("nas") == 1);
  CHECK(origins.at("nas") == std::vector<std::string>{pin1, pin2});  // duplicates dropped

  write_text(cfg::pins_path(dir.path(), "pi"), pin1 + "\nsha256:nope\n");
  try {
    cfg::load_authorized_origins(dir.path());
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), Catch::StartsWith((dir / "origins/pi.pins").string() + ":2: not a pin"));
  }
}

TEST_CASE("invite: unknown origin names the file and [[origins]]", "[config][pairing]") {
  TempDir dir;
  const auto c = edge_config(dir / "state");
  try {
    cfg::invite_origin(c, "nope", "vps.example.com:7443");
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()) ==
          "/etc/hearth/edge.toml: origin \"nope\" is not in [[origins]] (configured: nas pi)");
  }
  CHECK_THROWS_AS(cfg::invite_origin(c, "nas", "vps.example.com"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::invite_origin(c, "nas", "vps.example.com:0"), std::invalid_argument);
  CHECK_FALSE(std::filesystem::exists(dir / "state"));  // nothing written on refusal
}

TEST_CASE("invite: records the pin and returns a token for the edge key", "[config][pairing]") {
  TempDir dir;
  const auto c = edge_config(dir / "state");
  const std::string text = cfg::invite_origin(c, "nas", "vps.example.com:7443");
  const auto token = crypto::decode_join_token(text);
  REQUIRE(token);
  CHECK(token->edge == "vps.example.com:7443");
  CHECK(token->origin_name == "nas");
  CHECK(token->edge_pin == crypto::pin_of_private_key_pem(*cfg::load_edge_key(c.state_dir)));

  const auto origin_pin = *crypto::pin_of_private_key_pem(token->origin_key_pem);
  auto origins = cfg::load_authorized_origins(c.state_dir);
  CHECK(origins.at("nas") == std::vector<std::string>{origin_pin});
  CHECK(file_mode(c.state_dir / "origins") == 0700);
  CHECK(file_mode(cfg::pins_path(c.state_dir, "nas")) == 0600);
  CHECK_THAT(read_text(cfg::pins_path(c.state_dir, "nas")), Catch::StartsWith("# invited "));

  // A second invite adds a second key; the edge key stays the same.
  const auto again =
      crypto::decode_join_token(cfg::invite_origin(c, "nas", "vps.example.com:7443"));
  REQUIRE(again);
  CHECK(again->edge_pin == token->edge_pin);
  CHECK(again->origin_key_pem != token->origin_key_pem);
  origins = cfg::load_authorized_origins(c.state_dir);
  CHECK(origins.at("nas").size() == 2);
  CHECK(origins.count("pi") == 0);
}

TEST_CASE("invite -> join -> load_origin_config round trip", "[config][pairing]") {
  TempDir edge_dir;
  TempDir origin_dir;
  const auto c = edge_config(edge_dir / "state");
  const std::string text = cfg::invite_origin(c, "nas", "[::1]:7443");
  const auto token = crypto::decode_join_token(text);
  REQUIRE(token);

  const auto out = origin_dir / "etc/hearth/origin.toml";  // directories created as needed
  cfg::write_origin_config(*token, out);
  const auto key_file = origin_dir / "etc/hearth/origin.key";
  CHECK(cfg::origin_key_path_for(out) == key_file);
  CHECK(file_mode(key_file) == 0600);
  CHECK(read_text(key_file) == token->origin_key_pem);

  const std::string toml = read_text(out);
  CHECK_THAT(toml, Catch::Contains("key_file    = \"origin.key\""));
  // One route per hostname the edge allows (issue 13), its service marked to edit.
  CHECK_THAT(toml, Catch::Contains("host    = \"tallow.example.com\""));
  CHECK_THAT(toml, Catch::Contains("# EDIT ME"));
  CHECK_THAT(toml, !Catch::Contains("app.example.com"));
  CHECK_THAT(toml, Catch::Contains("connections = 2"));

  const auto r = cfg::load_origin_config(out);
  INFO(dump(r.problems) << toml);
  REQUIRE(r.problems.empty());
  REQUIRE(r.config);
  const auto& o = *r.config;
  CHECK(o.name == "nas");
  CHECK(o.edge == cfg::Endpoint{"::1", 7443});
  CHECK(o.edge_pin == token->edge_pin);
  CHECK(crypto::pins_equal(o.edge_pin,
                           *crypto::pin_of_private_key_pem(*cfg::load_edge_key(c.state_dir))));
  CHECK(o.key_pem == token->origin_key_pem);
  CHECK(o.key_file == key_file);
  CHECK(o.connections == 2);
  REQUIRE(o.routes.size() == 1);
  CHECK(o.routes[0].host == "tallow.example.com");
  CHECK(o.routes[0].path == "/");
  CHECK(o.routes[0].service == cfg::ServiceUrl{false, "127.0.0.1", 3000});

  // The edge authorizes exactly the key the origin now holds.
  const auto origins = cfg::load_authorized_origins(c.state_dir);
  CHECK(origins.at("nas") == std::vector<std::string>{*crypto::pin_of_private_key_pem(o.key_pem)});
}

TEST_CASE("write_origin_config: refuses to overwrite unless asked", "[config][pairing]") {
  TempDir dir;
  TempDir edge_dir;
  const auto token =
      crypto::decode_join_token(cfg::invite_origin(edge_config(edge_dir / "s"), "pi", "h.lan:1"));
  REQUIRE(token);
  const auto out = dir / "origin.toml";

  SECTION("existing config") {
    write_text(out, "# mine\n");
    CHECK_THROWS_WITH(cfg::write_origin_config(*token, out),
                      Catch::Contains("refusing to overwrite") && Catch::Contains(out.string()));
    CHECK(read_text(out) == "# mine\n");
    CHECK_FALSE(std::filesystem::exists(dir / "origin.key"));
  }
  SECTION("existing key") {
    write_text(dir / "origin.key", "old key\n");
    CHECK_THROWS_AS(cfg::write_origin_config(*token, out), std::runtime_error);
    CHECK(read_text(dir / "origin.key") == "old key\n");
    CHECK_FALSE(std::filesystem::exists(out));
  }
  SECTION("overwrite=true replaces both, and tightens the key's mode") {
    write_text(out, "# mine\n");
    write_text(dir / "origin.key", "old key\n");
    std::filesystem::permissions(dir / "origin.key", std::filesystem::perms(0644));
    cfg::write_origin_config(*token, out, /*overwrite=*/true);
    CHECK(file_mode(dir / "origin.key") == 0600);
    CHECK(read_text(dir / "origin.key") == token->origin_key_pem);
    CHECK(cfg::load_origin_config(out).config);
  }
}

TEST_CASE("write_origin_config: key file names and bad tokens", "[config][pairing]") {
  CHECK(cfg::origin_key_path_for("/etc/hearth/origin.toml") == "/etc/hearth/origin.key");
  CHECK(cfg::origin_key_path_for("nas") == "nas.key");
  CHECK(cfg::origin_key_path_for("x.key") == "x.key.key");

  TempDir dir;
  TempDir edge_dir;
  const auto good =
      *crypto::decode_join_token(cfg::invite_origin(edge_config(edge_dir / "s"), "nas", "h:1"));
  auto token = good;
  token.edge = "h:0";
  CHECK_THROWS_AS(cfg::write_origin_config(token, dir / "a.toml"), std::invalid_argument);
  token = good;
  token.origin_name = "a\"b";
  CHECK_THROWS_AS(cfg::write_origin_config(token, dir / "a.toml"), std::invalid_argument);
  token = good;
  token.origin_key_pem = "nope";
  CHECK_THROWS_AS(cfg::write_origin_config(token, dir / "a.toml"), std::invalid_argument);
  CHECK(std::filesystem::is_empty(dir.path()));

  // A file name with characters TOML must escape still round-trips.
  const auto odd = dir / "sub dir/we\"ird \\na\nme.toml";
  cfg::write_origin_config(good, odd);
  const auto r = cfg::load_origin_config(odd);
  INFO(dump(r.problems));
  REQUIRE(r.config);
  CHECK(r.config->key_file == dir / "sub dir/we\"ird \\na\nme.key");
}
