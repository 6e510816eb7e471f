// [wireguard] in edge.toml and origin.toml (issue 10), and invite -> join with WireGuard.

#include <catch2/catch.hpp>
#include <string>

#include "hearth/common/crypto.hpp"
#include "hearth/config/pairing.hpp"
#include "hearth/config/parse.hpp"
#include "test_files.hpp"

namespace cfg = hearth::config;
namespace crypto = hearth::crypto;
namespace wg = hearth::wg;
using hearth::test::dump;
using hearth::test::file_mode;
using hearth::test::find_problem;
using hearth::test::read_text;
using hearth::test::TempDir;
using hearth::test::write_text;

namespace {

struct EdgeDir {
  TempDir dir;
  EdgeDir() {
    const auto ck = crypto::self_signed_server_certificate({"example.com"});
    REQUIRE(ck);
    write_text(dir / "certs/a.pem", ck->cert_pem);
    write_text(dir / "certs/a.key", ck->key_pem);
    std::filesystem::permissions(dir / "certs/a.key",
                                 std::filesystem::perms::owner_read |
                                     std::filesystem::perms::owner_write);  // the key-mode check
  }
  cfg::LoadResult<cfg::EdgeConfig> load(const std::string& wireguard) {
    write_text(dir / "edge.toml",
               "[edge]\n"                              // 1
               "listen_https = \"127.0.0.1:0\"\n"      // 2
               "listen_tunnel = \"127.0.0.1:0\"\n"     // 3
               "state_dir = \"state\"\n"               // 4
               "[[tls.certificates]]\n"                // 5
               "cert = \"certs/a.pem\"\n"              // 6
               "key = \"certs/a.key\"\n"               // 7
               "[[origins]]\n"                         // 8
               "name = \"nas\"\n"                      // 9
               "hostnames = [\"app.example.com\"]\n"   // 10
               "[[origins]]\n"                         // 11
               "name = \"pi\"\n"                       // 12
               "hostnames = [\"pi.example.com\"]\n" +  // 13
                   wireguard);                         // 14...
    return cfg::load_edge_config(dir / "edge.toml");
  }
};

const std::string edge_wg =
    "[wireguard]\n"                  // 14
    "interface = \"hwg0\"\n"         // 15
    "listen_port = 51820\n"          // 16
    "address = \"10.77.0.1/24\"\n";  // 17

}  // namespace

TEST_CASE("edge [wireguard]: keys, defaults and problems", "[config][wireguard]") {
  EdgeDir d;
  auto r = d.load(edge_wg);
  INFO(dump(r.problems));
  REQUIRE(r.config);
  REQUIRE(r.config->wireguard);
  const auto& w = *r.config->wireguard;
  CHECK(w.interface == "hwg0");
  CHECK(w.listen_port == 51820);
  CHECK(w.address.to_string() == "10.77.0.1/24");
  CHECK(w.private_key_file == r.config->state_dir / "wireguard.key");
  CHECK_FALSE(w.persist);

  CHECK_FALSE(d.load("").config->wireguard);  // no [wireguard]: no link

  write_text(d.dir / "bad.key", "not a key\n");
  auto bad = d.load(
      "[wireguard]\n"  // 14
      "interface = \"a/b\"\n"
      "listen_port = 70000\n"
      "address = \"10.77.0.0/24\"\n"
      "persist = \"yes\"\n"
      "private_key_file = \"bad.key\"\n"
      "listen_prot = 1\n");
  INFO(dump(bad.problems));
  CHECK_FALSE(bad.config);
  for (const auto& [key, line] :
       std::vector<std::pair<std::string, int>>{{"wireguard.interface", 15},
                                                {"wireguard.listen_port", 16},
                                                {"wireguard.address", 17},
                                                {"wireguard.persist", 18},
                                                {"wireguard.private_key_file", 19},
                                                {"wireguard.listen_prot", 20}}) {
    const auto* p = find_problem(bad.problems, key);
    INFO(key);
    REQUIRE(p);
    CHECK(p->line == line);
    CHECK_THAT(p->to_string(), Catch::StartsWith((d.dir / "edge.toml").string() + ":" +
                                                 std::to_string(line) + ":"));
  }
  CHECK_THAT(find_problem(bad.problems, "wireguard.listen_prot")->message,
             Catch::Contains("did you mean \"listen_port\""));

  auto no_room = d.load("[wireguard]\naddress = \"10.77.0.1/31\"\n");
  REQUIRE(find_problem(no_room.problems, "wireguard.address"));
  auto missing = d.load("[wireguard]\ninterface = \"hwg0\"\n");
  REQUIRE(find_problem(missing.problems, "wireguard.address"));
}

namespace {

std::string origin_toml(const std::string& origin_extra, const std::string& wireguard) {
  return "[origin]\n"                                                           // 1
         "name = \"nas\"\n"                                                     // 2
         "edge = \"vps.example.com:7443\"\n"                                    // 3
         "edge_pin = \"sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"  // 4
         "key_file = \"origin.key\"\n" +                                        // 5
         origin_extra +                                                         // 6
         "[[routes]]\n"                                                         // 7
         "host = \"app.example.com\"\n"                                         // 8
         "service = \"http://127.0.0.1:3000\"\n" +                              // 9
         wireguard;                                                             // 10...
}

const std::string wg_public = wg::key_to_base64(*wg::public_key_of(wg::generate_private_key()));

std::string origin_wg(const std::string& extra = "") {
  return "[wireguard]\n"                           // 10
         "address = \"10.77.0.2/24\"\n"            // 11
         "private_key_file = \"origin.wg.key\"\n"  // 12
         "edge_public_key = \"" +
         wg_public +
         "\"\n"                                         // 13
         "edge_endpoint = \"vps.example.com:51820\"\n"  // 14
         "edge_address = \"10.77.0.1\"\n" +             // 15
         extra;                                         // 16...
}

cfg::LoadResult<cfg::OriginConfig> load_origin(TempDir& dir, const std::string& text) {
  write_text(dir / "origin.key", crypto::generate_private_key_pem());
  std::filesystem::permissions(dir / "origin.key",
                               std::filesystem::perms::owner_read |
                                   std::filesystem::perms::owner_write);  // the key-mode check
  write_text(dir / "origin.wg.key", wg::key_to_base64(wg::generate_private_key()) + "\n");
  std::filesystem::permissions(dir / "origin.wg.key",
                               std::filesystem::perms::owner_read |
                                   std::filesystem::perms::owner_write);  // the key-mode check
  write_text(dir / "origin.toml", text);
  return cfg::load_origin_config(dir / "origin.toml");
}

}  // namespace

TEST_CASE("origin [wireguard] and tunnel_over_wireguard", "[config][wireguard]") {
  TempDir dir;
  auto r = load_origin(dir, origin_toml("tunnel_over_wireguard = true\n", origin_wg()));
  INFO(dump(r.problems));
  REQUIRE(r.config);
  CHECK(r.config->tunnel_over_wireguard);
  REQUIRE(r.config->wireguard);
  const auto& w = *r.config->wireguard;
  CHECK(w.interface == "hwg0");
  CHECK(w.address.to_string() == "10.77.0.2/24");
  CHECK(w.persistent_keepalive == std::chrono::seconds(25));
  REQUIRE(w.allowed_ips.size() == 1);
  CHECK(w.allowed_ips[0].to_string() == "10.77.0.2/32");  // default: the address alone
  CHECK(w.edge_endpoint == cfg::Endpoint{"vps.example.com", 51820});
  CHECK(w.edge_address.to_string() == "10.77.0.1");
  CHECK(wg::key_to_base64(w.edge_public_key) == wg_public);
  CHECK(w.private_key_file == dir / "origin.wg.key");

  auto more = load_origin(
      dir, origin_toml("\n", origin_wg("allowed_ips = [\"10.77.0.2\", \"192.168.1.0/24\"]\n"
                                       "persistent_keepalive = \"10s\"\n"
                                       "persist = true\n")));
  INFO(dump(more.problems));
  REQUIRE(more.config);
  CHECK(more.config->wireguard->allowed_ips.size() == 2);
  CHECK(more.config->wireguard->persistent_keepalive == std::chrono::seconds(10));
  CHECK(more.config->wireguard->persist);

  // tunnel_over_wireguard without [wireguard]: named at its line.
  auto lonely = load_origin(dir, origin_toml("tunnel_over_wireguard = true\n", ""));
  const auto* p = find_problem(lonely.problems, "origin.tunnel_over_wireguard");
  REQUIRE(p);
  CHECK(p->line == 6);

  auto bad = load_origin(dir, origin_toml("\n", origin_wg("allowed_ips = [\"nope\"]\n"       // 16
                                                          "persistent_keepalive = \"2d\"\n"  // 17
                                                          "private_key = \"x\"\n")));        // 18
  INFO(dump(bad.problems));
  CHECK_FALSE(bad.config);
  REQUIRE(find_problem(bad.problems, "wireguard.allowed_ips[0]"));
  CHECK(find_problem(bad.problems, "wireguard.allowed_ips[0]")->line == 16);
  REQUIRE(find_problem(bad.problems, "wireguard.persistent_keepalive"));
  CHECK(find_problem(bad.problems, "wireguard.persistent_keepalive")->line == 17);
  REQUIRE(find_problem(bad.problems, "wireguard.private_key"));  // both key forms

  const std::string broken =
      "[wireguard]\naddress = \"10.77.0.2\"\nprivate_key_file = \"origin.wg.key\"\n"
      "edge_public_key = \"short\"\nedge_endpoint = \"vps\"\nedge_address = \"x\"\n";
  auto b = load_origin(dir, origin_toml("\n", broken));
  for (const char* key : {"wireguard.address", "wireguard.edge_public_key",
                          "wireguard.edge_endpoint", "wireguard.edge_address"}) {
    INFO(key << "\n" << dump(b.problems));
    CHECK(find_problem(b.problems, key));
  }
}

TEST_CASE("invite with [wireguard]: addresses, records, token, join",
          "[config][wireguard][pairing]") {
  EdgeDir d;
  auto loaded = d.load(edge_wg);
  REQUIRE(loaded.config);
  const auto& c = *loaded.config;

  const auto nas = crypto::decode_join_token(cfg::invite_origin(c, "nas", "vps.example.com:7443"));
  REQUIRE(nas);
  REQUIRE(nas->has_wireguard());
  CHECK(nas->wg_address == "10.77.0.2/24");
  CHECK(nas->wg_edge_address == "10.77.0.1");
  CHECK(nas->wg_endpoint == "vps.example.com:51820");
  const auto edge_key = cfg::load_or_create_wireguard_key(c.wireguard->private_key_file);
  CHECK(file_mode(c.wireguard->private_key_file) == 0600);
  CHECK(nas->wg_edge_public_key == wg::key_to_base64(*wg::public_key_of(edge_key)));

  const auto pi = crypto::decode_join_token(cfg::invite_origin(c, "pi", "vps.example.com:7443"));
  REQUIRE(pi);
  CHECK(pi->wg_address == "10.77.0.3/24");
  // Invited again: a new key, the same address.
  const auto nas2 = crypto::decode_join_token(cfg::invite_origin(c, "nas", "vps.example.com:7443"));
  REQUIRE(nas2);
  CHECK(nas2->wg_address == "10.77.0.2/24");
  CHECK(nas2->wg_private_key != nas->wg_private_key);

  const auto records = cfg::load_wireguard_records(c.state_dir);
  REQUIRE(records.size() == 2);
  CHECK(records[0].name == "nas");
  CHECK(records[0].address.to_string() == "10.77.0.2/32");
  CHECK(records[0].allowed_ips == std::vector<wg::IpPrefix>{records[0].address});
  CHECK(records[0].public_key == *wg::public_key_of(*wg::key_from_base64(nas2->wg_private_key)));
  CHECK(file_mode(cfg::wireguard_record_path(c.state_dir, "nas")) == 0600);

  // join writes [wireguard] and a 0600 key; the result passes check.
  TempDir home;
  const auto out = home / "origin.toml";
  cfg::write_origin_config(*nas2, out);
  CHECK(file_mode(home / "origin.wg.key") == 0600);
  const auto o = cfg::load_origin_config(out);
  INFO(dump(o.problems) << read_text(out));
  REQUIRE(o.config);
  REQUIRE(o.config->wireguard);
  CHECK(o.config->wireguard->address.to_string() == "10.77.0.2/24");
  CHECK(o.config->wireguard->edge_address.to_string() == "10.77.0.1");
  CHECK(wg::key_to_base64(o.config->wireguard->private_key) == nas2->wg_private_key);
  CHECK_FALSE(o.config->tunnel_over_wireguard);

  // A token without the wg_ lines still decodes and joins without [wireguard].
  crypto::JoinToken plain = *nas2;
  plain.wg_address.clear();
  const auto decoded = crypto::decode_join_token(crypto::encode_join_token(plain));
  REQUIRE(decoded);
  CHECK_FALSE(decoded->has_wireguard());
  // Half the wg_ lines: refused.
  crypto::JoinToken half = *nas2;
  half.wg_private_key = "nope";
  CHECK_FALSE(crypto::decode_join_token(crypto::encode_join_token(half)));

  // Hand-edited allowed_ips, bad lines named.
  write_text(cfg::wireguard_record_path(c.state_dir, "pi"),
             "public_key=" + wg_public +
                 "\naddress=10.77.0.3\nallowed_ips=10.77.0.3/32, 192.168.1.0/24\n");
  CHECK(cfg::load_wireguard_records(c.state_dir).at(1).allowed_ips.size() == 2);
  write_text(cfg::wireguard_record_path(c.state_dir, "pi"),
             "public_key=" + wg_public + "\nadress=1\n");
  CHECK_THROWS_WITH(cfg::load_wireguard_records(c.state_dir), Catch::Contains("pi.wg:2"));
}

TEST_CASE("next free WireGuard address", "[config][wireguard][pairing]") {
  const auto edge = *wg::parse_prefix("10.77.0.1/30");
  std::vector<cfg::WireguardPeerRecord> taken;
  CHECK(cfg::next_free_address(edge, taken).to_string() == "10.77.0.2");
  cfg::WireguardPeerRecord r;
  r.address = *wg::parse_prefix("10.77.0.2/32");
  taken.push_back(r);
  CHECK_THROWS_WITH(cfg::next_free_address(edge, taken),
                    Catch::Contains("no free WireGuard address"));
  CHECK(cfg::next_free_address(*wg::parse_prefix("fd77::1/64"), {}).to_string() == "fd77::2");
  CHECK(cfg::next_free_address(*wg::parse_prefix("10.77.0.5/24"), {}).to_string() == "10.77.0.1");
}
