#include "hearth/wg/device.hpp"

#include <catch2/catch.hpp>

#include "hearth/wg/uapi.hpp"

using namespace hearth::wg;

TEST_CASE("X25519 keys: RFC 7748 vector, base64 and hex forms", "[wg][keys]") {
  const auto alice =
      key_from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  REQUIRE(alice);
  const auto pub = public_key_of(*alice);
  REQUIRE(pub);
  CHECK(key_to_hex(*pub) == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  const std::string b64 = key_to_base64(*pub);
  CHECK(b64.size() == 44);
  CHECK(key_from_base64(b64) == pub);
  CHECK_FALSE(key_from_base64(b64.substr(0, 43)));
  CHECK_FALSE(key_from_base64(std::string(43, '!') + "="));
  CHECK_FALSE(key_from_hex("zz" + std::string(62, '0')));

  const Key a = generate_private_key(), b = generate_private_key();
  CHECK(a != b);
  CHECK_FALSE(key_is_zero(a));
  CHECK(public_key_of(a) != public_key_of(b));
}

TEST_CASE("addresses, prefixes and endpoints", "[wg][keys]") {
  const auto p = parse_prefix("10.77.0.9/24");
  REQUIRE(p);
  CHECK(p->to_string() == "10.77.0.9/24");
  CHECK(p->network().to_string() == "10.77.0.0/24");
  CHECK(p->contains(*parse_ip("10.77.0.200")));
  CHECK_FALSE(p->contains(*parse_ip("10.77.1.1")));
  CHECK_FALSE(parse_prefix("10.77.0.9"));
  CHECK(parse_prefix("10.77.0.9", true)->cidr == 32);
  CHECK(parse_prefix("fd00::1/64")->network().to_string() == "fd00::/64");
  CHECK_FALSE(parse_prefix("10.0.0.1/33"));
  CHECK_FALSE(parse_prefix("10.0.0.1/024"));
  CHECK(parse_socket_endpoint("[2001:db8::1]:51820")->to_string() == "[2001:db8::1]:51820");
  CHECK(parse_socket_endpoint("1.2.3.4:5")->port == 5);
  CHECK_FALSE(parse_socket_endpoint("2001:db8::1:51820"));
  CHECK_FALSE(parse_socket_endpoint("1.2.3.4:65536"));
  CHECK_FALSE(parse_socket_endpoint("host:1"));
}

TEST_CASE("UAPI set request text", "[wg][uapi]") {
  Device d;
  Key priv{}, pub{}, psk{};
  priv.fill(0x11);
  pub.fill(0x22);
  psk.fill(0x33);
  d.private_key = priv;
  d.listen_port = 51820;
  d.replace_peers = true;
  Peer p;
  p.public_key = pub;
  p.preshared_key = psk;
  p.endpoint = parse_socket_endpoint("198.18.0.1:51820");
  p.persistent_keepalive = 25;
  p.replace_allowed_ips = true;
  p.allowed_ips = {*parse_prefix("10.77.0.1/32"), *parse_prefix("fd00::/64")};
  d.peers.push_back(p);
  Peer gone;
  gone.public_key.fill(0x44);
  gone.remove = true;
  d.peers.push_back(gone);
  CHECK(uapi::build_set(d) ==
        "set=1\n"
        "private_key=" +
            std::string(64, '1') +
            "\n"
            "listen_port=51820\n"
            "replace_peers=true\n"
            "public_key=" +
            std::string(64, '2') +
            "\n"
            "preshared_key=" +
            std::string(64, '3') +
            "\n"
            "endpoint=198.18.0.1:51820\n"
            "persistent_keepalive_interval=25\n"
            "replace_allowed_ips=true\n"
            "allowed_ip=10.77.0.1/32\n"
            "allowed_ip=fd00::/64\n"
            "public_key=" +
            std::string(64, '4') +
            "\n"
            "remove=true\n"
            "\n");
  // The set text, answered like a get, reads back as the same device (set-only flags aside).
  std::string as_get = uapi::build_set(d);
  as_get.pop_back();
  as_get += "errno=0\n\n";
  Device back;
  REQUIRE_FALSE(uapi::parse_get(as_get, back));
  CHECK(back.private_key == d.private_key);
  CHECK(back.listen_port == d.listen_port);
  REQUIRE(back.peers.size() == 2);
  CHECK(back.peers[0].allowed_ips == p.allowed_ips);
  CHECK(back.peers[0].endpoint == p.endpoint);
  CHECK(back.peers[0].preshared_key == p.preshared_key);
  CHECK(back.peers[0].persistent_keepalive == p.persistent_keepalive);
}

TEST_CASE("UAPI get answer as wireguard-go prints it", "[wg][uapi]") {
  const std::string answer = "private_key=" + std::string(64, 'a') +
                             "\n"
                             "listen_port=51820\n"
                             "public_key=" +
                             std::string(64, 'b') +
                             "\n"
                             "preshared_key=" +
                             std::string(64, '0') +
                             "\n"
                             "protocol_version=1\n"
                             "endpoint=198.18.0.2:40112\n"
                             "last_handshake_time_sec=1764630000\n"
                             "last_handshake_time_nsec=42\n"
                             "tx_bytes=1234\n"
                             "rx_bytes=5678\n"
                             "persistent_keepalive_interval=0\n"
                             "allowed_ip=10.77.0.2/32\n"
                             "errno=0\n"
                             "\n";
  CHECK(uapi::reply_complete(answer));
  CHECK_FALSE(uapi::reply_complete(answer.substr(0, answer.size() - 1)));
  Device d;
  REQUIRE_FALSE(uapi::parse_get(answer, d));
  CHECK(d.listen_port == 51820);
  CHECK(d.public_key == public_key_of(*key_from_hex(std::string(64, 'a'))));
  REQUIRE(d.peers.size() == 1);
  const Peer& p = d.peers[0];
  CHECK_FALSE(p.preshared_key);  // all zeros: none
  CHECK(p.endpoint->to_string() == "198.18.0.2:40112");
  CHECK(p.last_handshake_sec == 1764630000);
  CHECK(p.last_handshake_nsec == 42);
  CHECK(p.tx_bytes == 1234);
  CHECK(p.rx_bytes == 5678);
  CHECK(p.allowed_ips.at(0).to_string() == "10.77.0.2/32");

  Device e;
  CHECK(uapi::parse_get("errno=19\n\n", e).value() == 19);
  CHECK(uapi::parse_get("listen_port=1\n\n", e) == std::errc::bad_message);  // no errno
  CHECK(uapi::parse_get("public_key=xyz\nerrno=0\n\n", e) == std::errc::bad_message);
  CHECK(uapi::parse_get("listen_port=70000\nerrno=0\n\n", e) == std::errc::bad_message);
  CHECK_FALSE(uapi::parse_set_reply("errno=0\n\n"));
  CHECK(uapi::parse_set_reply("errno=22\n\n").value() == 22);
}

#include "hearth/wg/link.hpp"

TEST_CASE("link status as JSON and Prometheus text", "[wg][status]") {
  LinkStatus s;
  s.interface = "hwg0";
  s.backend = "wireguard-go";
  s.up = true;
  s.listen_port = 51820;
  s.repairs = 2;
  PeerStatus fresh;
  fresh.public_key = "KEY1";
  fresh.endpoint = "198.18.0.2:40112";
  fresh.allowed_ips = {"10.77.0.2/32"};
  fresh.handshake_age_s = 12;
  fresh.rx_bytes = 100;
  fresh.tx_bytes = 200;
  fresh.healthy = true;
  PeerStatus never;
  never.public_key = "KEY2";
  s.peers = {fresh, never};
  const std::map<std::string, std::string> names{{"KEY1", "nas"}};
  const std::string json = status_json(s, &names);
  CHECK(
      json ==
      "{\"interface\":\"hwg0\",\"backend\":\"wireguard-go\",\"up\":true,\"public_key\":\"\","
      "\"listen_port\":51820,\"repairs\":2,\"peers\":[{\"name\":\"nas\",\"public_key\":\"KEY1\","
      "\"endpoint\":\"198.18.0.2:40112\",\"allowed_ips\":[\"10.77.0.2/32\"],\"handshake_age_s\":12,"
      "\"rx_bytes\":100,\"tx_bytes\":200,\"healthy\":true},{\"name\":\"KEY2\",\"public_key\":"
      "\"KEY2\","
      "\"endpoint\":\"\",\"allowed_ips\":[],\"handshake_age_s\":null,\"rx_bytes\":0,\"tx_bytes\":0,"
      "\"healthy\":false}]}");
  const std::string text = prometheus(s, &names);
  CHECK_THAT(text, Catch::Contains(
                       "hearth_wireguard_up{interface=\"hwg0\",backend=\"wireguard-go\"} 1\n"));
  CHECK_THAT(text,
             Catch::Contains("hearth_wireguard_peer_healthy{interface=\"hwg0\",peer=\"nas\"} 1\n"));
  CHECK_THAT(
      text, Catch::Contains("hearth_wireguard_peer_healthy{interface=\"hwg0\",peer=\"KEY2\"} 0\n"));
  CHECK_THAT(
      text,
      Catch::Contains(
          "hearth_wireguard_peer_handshake_age_seconds{interface=\"hwg0\",peer=\"KEY2\"} -1\n"));
  CHECK_THAT(text, Catch::Contains("hearth_wireguard_peer_bytes_total{interface=\"hwg0\",peer="
                                   "\"nas\",direction=\"rx\"} 100\n"));
  CHECK(handshake_stale_after == std::chrono::seconds(180));
}
