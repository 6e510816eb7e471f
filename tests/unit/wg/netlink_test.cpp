// The generic netlink "wireguard" family and rtnetlink messages, checked byte for byte
// against the layouts of linux/netlink.h, linux/genetlink.h, linux/rtnetlink.h and
// linux/wireguard.h (written out here by hand, independently of libmnl), and the dump
// parser against multi-part dumps.

#include "hearth/wg/netlink.hpp"

#include <catch2/catch.hpp>
#include <cstring>

using namespace hearth::wg;
using Bytes = std::vector<std::uint8_t>;

namespace {

// Little-endian: the netlink header and attribute fields are host order (x86-64 here).
void u16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
}
void u32(Bytes& b, std::uint32_t v) {
  u16(b, static_cast<std::uint16_t>(v));
  u16(b, static_cast<std::uint16_t>(v >> 16));
}
void pad(Bytes& b) {
  while (b.size() % 4) b.push_back(0);
}
// struct nlattr { u16 nla_len; u16 nla_type; } + payload, padded to 4.
Bytes attr(std::uint16_t type, const Bytes& payload) {
  Bytes b;
  u16(b, static_cast<std::uint16_t>(4 + payload.size()));
  u16(b, type);
  b.insert(b.end(), payload.begin(), payload.end());
  pad(b);
  return b;
}
Bytes nested(std::uint16_t type, const std::vector<Bytes>& children) {
  Bytes payload;
  for (const auto& c : children) payload.insert(payload.end(), c.begin(), c.end());
  return attr(static_cast<std::uint16_t>(type | 0x8000), payload);  // NLA_F_NESTED
}
Bytes le16(std::uint16_t v) {
  Bytes b;
  u16(b, v);
  return b;
}
Bytes le32(std::uint32_t v) {
  Bytes b;
  u32(b, v);
  return b;
}
Bytes str(const char* s) { return Bytes(s, s + std::strlen(s) + 1); }
Bytes filled(std::size_t n, std::uint8_t v) { return Bytes(n, v); }
// struct nlmsghdr (16) + body.
Bytes message(std::uint16_t type, std::uint16_t flags, std::uint32_t seq, const Bytes& body) {
  Bytes b;
  u32(b, static_cast<std::uint32_t>(16 + body.size()));
  u16(b, type);
  u16(b, flags);
  u32(b, seq);
  u32(b, 0);
  b.insert(b.end(), body.begin(), body.end());
  return b;
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes b;
  for (const auto& p : parts) b.insert(b.end(), p.begin(), p.end());
  return b;
}

Key key_of(std::uint8_t v) {
  Key k;
  k.fill(v);
  return k;
}

IpPrefix prefix(const char* text) { return *parse_prefix(text); }

Device sample_device() {
  Device d;
  d.name = "wg0";
  d.private_key = key_of(0x11);
  d.listen_port = 51820;
  d.replace_peers = true;
  Peer p;
  p.public_key = key_of(0x22);
  p.endpoint = parse_socket_endpoint("1.2.3.4:51820");
  p.persistent_keepalive = 25;
  p.replace_allowed_ips = true;
  p.allowed_ips = {prefix("10.0.0.2/32")};
  d.peers.push_back(p);
  return d;
}

constexpr std::uint16_t family = 0x1d;
constexpr std::uint16_t NLM_F_REQUEST = 1, NLM_F_MULTI = 2, NLM_F_ACK = 4;

}  // namespace

TEST_CASE("WG_CMD_SET_DEVICE matches the linux/wireguard.h layout", "[wg][netlink]") {
  const auto messages = nl::build_set_device(sample_device(), family, 7);
  REQUIRE(messages.size() == 1);
  // sockaddr_in: sin_family (host order), sin_port (network order), sin_addr, 8 zero bytes.
  const Bytes sockaddr = {2, 0, 0xca, 0x6c, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0};
  const Bytes allowed_ip = nested(0, {attr(1, le16(2)),        // WGALLOWEDIP_A_FAMILY AF_INET
                                      attr(2, {10, 0, 0, 2}),  // WGALLOWEDIP_A_IPADDR
                                      attr(3, {32})});         // WGALLOWEDIP_A_CIDR_MASK
  const Bytes peer = nested(0, {attr(1, filled(32, 0x22)),     // WGPEER_A_PUBLIC_KEY
                                attr(3, le32(2)),   // WGPEER_A_FLAGS (3) REPLACE_ALLOWEDIPS
                                attr(4, sockaddr),  // WGPEER_A_ENDPOINT
                                attr(5, le16(25)),  // WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL
                                nested(9, {allowed_ip})});  // WGPEER_A_ALLOWEDIPS
  const Bytes body = cat({{1, 1, 0, 0},                     // genlmsghdr: WG_CMD_SET_DEVICE, v1
                          attr(2, str("wg0")),              // WGDEVICE_A_IFNAME
                          attr(5, le32(1)),                 // WGDEVICE_A_FLAGS REPLACE_PEERS
                          attr(3, filled(32, 0x11)),        // WGDEVICE_A_PRIVATE_KEY
                          attr(6, le16(51820)),             // WGDEVICE_A_LISTEN_PORT
                          nested(8, {peer})});              // WGDEVICE_A_PEERS
  const Bytes expected = message(family, NLM_F_REQUEST | NLM_F_ACK, 7, body);
  CHECK(expected.size() == 192);
  CHECK(messages[0] == expected);
}

TEST_CASE("WG_CMD_GET_DEVICE request and CTRL_CMD_GETFAMILY", "[wg][netlink]") {
  const Bytes get = message(family, NLM_F_REQUEST | NLM_F_ACK | 0x300 /*NLM_F_DUMP*/, 3,
                            cat({{0, 1, 0, 0}, attr(2, str("hwg0"))}));
  CHECK(nl::build_get_device("hwg0", family, 3) == get);

  const Bytes getfamily = message(0x10 /*GENL_ID_CTRL*/, NLM_F_REQUEST | NLM_F_ACK, 9,
                                  cat({{3 /*CTRL_CMD_GETFAMILY*/, 1, 0, 0},
                                       attr(2 /*CTRL_ATTR_FAMILY_NAME*/, str("wireguard"))}));
  CHECK(nl::build_get_family("wireguard", 9) == getfamily);

  // The controller's answer: CTRL_ATTR_FAMILY_ID (1) among other attributes.
  const Bytes reply = message(0x10, 0, 9,
                              cat({{1 /*CTRL_CMD_NEWFAMILY*/, 2, 0, 0},
                                   attr(2, str("wireguard")),
                                   attr(1, le16(0x23)),
                                   attr(3, le32(1))}));
  CHECK(nl::parse_family_id(reply) == 0x23);
  CHECK(nl::parse_family_id(Bytes(reply.begin(), reply.begin() + 10)) == 0);
}

TEST_CASE("rtnetlink link, address and route messages", "[wg][netlink]") {
  const Bytes ifinfomsg(16, 0);  // family AF_UNSPEC, everything else 0
  const Bytes new_link =
      message(16 /*RTM_NEWLINK*/, NLM_F_REQUEST | NLM_F_ACK | 0x400 /*CREATE*/ | 0x200 /*EXCL*/, 1,
              cat({ifinfomsg, attr(3 /*IFLA_IFNAME*/, str("hwg0")),
                   nested(18 /*IFLA_LINKINFO*/, {attr(1 /*IFLA_INFO_KIND*/, str("wireguard"))})}));
  CHECK(nl::build_new_link("hwg0", "wireguard", 1) == new_link);

  CHECK(nl::build_del_link("hwg0", 2) == message(17 /*RTM_DELLINK*/, NLM_F_REQUEST | NLM_F_ACK, 2,
                                                 cat({ifinfomsg, attr(3, str("hwg0"))})));

  // ifinfomsg: family, pad, type u16, index s32, flags u32, change u32.
  Bytes up = {0, 0, 0, 0};
  u32(up, 7);
  u32(up, 1 /*IFF_UP*/);
  u32(up, 1);
  CHECK(nl::build_link_up(7, 3) == message(16, NLM_F_REQUEST | NLM_F_ACK, 3, up));

  // ifaddrmsg: family, prefixlen, flags, scope, index u32; IFA_LOCAL and IFA_ADDRESS.
  Bytes ifa = {2, 24, 0, 0};
  u32(ifa, 7);
  CHECK(nl::build_new_address(7, prefix("10.77.0.2/24"), 4) ==
        message(20 /*RTM_NEWADDR*/, NLM_F_REQUEST | NLM_F_ACK | 0x400 | 0x100 /*REPLACE*/, 4,
                cat({ifa, attr(2 /*IFA_LOCAL*/, {10, 77, 0, 2}),
                     attr(1 /*IFA_ADDRESS*/, {10, 77, 0, 2})})));

  // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags u32.
  Bytes rtm = {2,
               24,
               0,
               0,
               254 /*RT_TABLE_MAIN*/,
               3 /*RTPROT_BOOT*/,
               253 /*RT_SCOPE_LINK*/,
               1 /*RTN_UNICAST*/,
               0,
               0,
               0,
               0};
  CHECK(nl::build_new_route(7, prefix("192.168.1.9/24"), 5) ==
        message(24 /*RTM_NEWROUTE*/, NLM_F_REQUEST | NLM_F_ACK | 0x400 | 0x100, 5,
                cat({rtm, attr(1 /*RTA_DST*/, {192, 168, 1, 0}), attr(4 /*RTA_OIF*/, le32(7))})));
}

namespace {

Device rich_device(std::size_t peers, std::size_t ips_per_peer) {
  Device d;
  d.name = "hwg0";
  d.ifindex = 42;
  d.private_key = key_of(0x01);
  d.public_key = key_of(0x02);
  d.listen_port = 51820;
  d.fwmark = 0x51;
  for (std::size_t i = 0; i < peers; ++i) {
    Peer p;
    p.public_key = key_of(static_cast<std::uint8_t>(0x40 + i));
    if (i % 2 == 0) p.preshared_key = key_of(static_cast<std::uint8_t>(0x80 + i));
    p.endpoint = parse_socket_endpoint(i % 3 == 2 ? "[2001:db8::7]:4242" : "198.18.0.2:40000");
    p.persistent_keepalive = static_cast<std::uint16_t>(i % 2 ? 25 : 0);
    p.last_handshake_sec = 1700000000 + static_cast<std::int64_t>(i);
    p.last_handshake_nsec = 123456789;
    p.rx_bytes = 1000 * i + 1;
    p.tx_bytes = (std::uint64_t{1} << 40) + i;
    for (std::size_t j = 0; j < ips_per_peer; ++j) {
      IpPrefix a;
      if (j % 4 == 3) {
        a = prefix("fd00::/64");
        a.address.bytes[15] = static_cast<std::uint8_t>(j);
        a.cidr = 128;
      } else {
        a = prefix("10.77.0.0/32");
        a.address.bytes[2] = static_cast<std::uint8_t>(i);
        a.address.bytes[3] = static_cast<std::uint8_t>(j);
      }
      p.allowed_ips.push_back(a);
    }
    d.peers.push_back(p);
  }
  return d;
}

struct Parsed {
  Device device;
  nl::WalkResult last;
  std::size_t data_messages = 0;
};

// Every message as its own datagram, as a kernel dump arrives.
Parsed parse_dump(const std::vector<nl::Message>& parts, std::uint32_t seq, std::uint32_t portid) {
  Parsed out;
  for (const auto& m : parts) {
    out.last = nl::walk_datagram(m, seq, portid, [&](nl::Bytes msg) {
      ++out.data_messages;
      return nl::parse_device_message(msg, out.device);
    });
    if (out.last.error || out.last.done || out.last.interrupted) break;
  }
  return out;
}

}  // namespace

TEST_CASE("a device survives a multi-part dump round trip", "[wg][netlink]") {
  const Device d = rich_device(5, 37);
  for (const std::size_t max : {std::size_t{512}, std::size_t{1024}, nl::default_message_size}) {
    const auto parts = nl::build_device_dump(d, family, 11, 4242, max);
    for (const auto& m : parts) CHECK(m.size() <= max);
    if (max == 512) CHECK(parts.size() > 6);
    const auto parsed = parse_dump(parts, 11, 4242);
    CHECK(parsed.last.done);
    CHECK_FALSE(parsed.last.error);
    CHECK(parsed.data_messages == parts.size() - 1);  // the last is NLMSG_DONE
    CHECK(parsed.device == d);
  }
}

TEST_CASE("several messages in one datagram are all walked", "[wg][netlink]") {
  const Device d = rich_device(3, 20);
  const auto parts = nl::build_device_dump(d, family, 5, 0, 600);
  Bytes datagram;
  for (const auto& m : parts) datagram.insert(datagram.end(), m.begin(), m.end());
  Device out;
  auto r = nl::walk_datagram(datagram, 5, 0,
                             [&](nl::Bytes m) { return nl::parse_device_message(m, out); });
  CHECK(r.done);
  CHECK(out == d);
}

TEST_CASE("SET_DEVICE splits peers across messages when a buffer fills", "[wg][netlink]") {
  Device d = rich_device(4, 300);
  d.public_key.reset();
  d.replace_peers = true;
  for (auto& p : d.peers) {
    p.replace_allowed_ips = true;
    p.last_handshake_sec = p.last_handshake_nsec = 0;
    p.rx_bytes = p.tx_bytes = 0;
  }
  const auto messages = nl::build_set_device(d, family, 100, 4096);
  REQUIRE(messages.size() > 4);
  Device merged;
  merged.replace_peers = true;
  std::uint32_t seq = 100;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    CHECK(m.size() <= 4096);
    std::uint32_t got_seq;
    std::memcpy(&got_seq, m.data() + 8, 4);
    CHECK(got_seq == seq++);
    // WGDEVICE_A_FLAGS and the private key only in the first message.
    Device one;
    REQUIRE_FALSE(nl::parse_device_message(m, one));
    CHECK(one.name == "hwg0");
    CHECK(one.private_key.has_value() == (i == 0));
    const Bytes flags_attr = attr(5, le32(1));
    const bool has_flags =
        std::search(m.begin(), m.end(), flags_attr.begin(), flags_attr.end()) != m.end();
    CHECK(has_flags == (i == 0));
    REQUIRE_FALSE(nl::parse_device_message(m, merged));
  }
  for (auto& p : merged.peers) p.replace_allowed_ips = true;  // flags are not read back
  merged.name = d.name;
  CHECK(merged.peers.size() == d.peers.size());
  CHECK(merged == d);
}

TEST_CASE("dump control messages: DUMP_INTR, errors, ACK, seq and portid", "[wg][netlink]") {
  const auto parts = nl::build_device_dump(rich_device(2, 3), family, 8, 77, 4096);
  const auto noop = [](nl::Bytes) { return std::error_code(); };

  auto interrupted = parts[0];
  interrupted[6] |= 0x10;  // NLM_F_DUMP_INTR in nlmsg_flags (bytes 6-7)
  CHECK(nl::walk_datagram(interrupted, 8, 77, noop).interrupted);
  CHECK(nl::ends_dump(parts.back()));
  CHECK_FALSE(nl::ends_dump(parts.front()));

  CHECK(nl::walk_datagram(parts[0], 9, 77, noop).error);  // wrong seq
  CHECK(nl::walk_datagram(parts[0], 8, 78, noop).error);  // wrong portid

  // struct nlmsgerr: int error, then the offending request's header.
  Bytes err_body = le32(static_cast<std::uint32_t>(-1));  // -EPERM
  err_body.resize(4 + 16, 0);
  const auto eperm = nl::walk_datagram(message(2 /*NLMSG_ERROR*/, 0, 8, err_body), 8, 0, noop);
  CHECK(eperm.error == std::errc::operation_not_permitted);
  Bytes ack_body(20, 0);
  const auto ack = nl::walk_datagram(message(2, 0, 8, ack_body), 8, 0, noop);
  CHECK(ack.done);
  CHECK_FALSE(ack.error);
}

TEST_CASE("malformed WG_CMD_GET_DEVICE messages are refused, never trusted", "[wg][netlink]") {
  const auto good = nl::build_device_dump(rich_device(1, 2), family, 1, 0, 4096)[0];
  Device d;
  CHECK_FALSE(nl::parse_device_message(good, d));

  // A short public key.
  const Bytes short_key =
      message(family, 0, 1, cat({{0, 1, 0, 0}, nested(8, {nested(0, {attr(1, filled(31, 1))})})}));
  CHECK(nl::parse_device_message(short_key, d) == std::errc::bad_message);
  // A peer without a public key.
  const Bytes keyless =
      message(family, 0, 1, cat({{0, 1, 0, 0}, nested(8, {nested(0, {attr(5, le16(1))})})}));
  CHECK(nl::parse_device_message(keyless, d) == std::errc::bad_message);
  // An allowed IP whose address does not match its family, or a mask too long.
  const auto aip = [](std::uint16_t fam, Bytes addr, std::uint8_t cidr) {
    return message(
        family, 0, 1,
        cat({{0, 1, 0, 0},
             nested(8, {nested(0, {attr(1, filled(32, 1)),
                                   nested(9, {nested(0, {attr(1, le16(fam)), attr(2, addr),
                                                         attr(3, {cidr})})})})})}));
  };
  Device ok;
  CHECK_FALSE(nl::parse_device_message(aip(2, {1, 2, 3, 4}, 32), ok));
  CHECK(ok.peers.at(0).allowed_ips.at(0) == prefix("1.2.3.4/32"));
  CHECK(nl::parse_device_message(aip(10, {1, 2, 3, 4}, 32), d) == std::errc::bad_message);
  CHECK(nl::parse_device_message(aip(2, {1, 2, 3, 4}, 33), d) == std::errc::bad_message);
  // nlmsg_len beyond the buffer, or every truncation of a good message.
  Bytes longer = good;
  longer[0] = static_cast<std::uint8_t>(longer[0] + 8);
  CHECK(nl::parse_device_message(longer, d) == std::errc::bad_message);
  for (std::size_t n = 0; n < good.size(); ++n) {
    Device t;
    (void)nl::parse_device_message(nl::Bytes(good.data(), n), t);  // no crash, no overread (ASan)
  }
}

TEST_CASE("a netlink length of 2^31 or more is refused (found by wg_fuzz)", "[wg][netlink]") {
  // libmnl's mnl_nlmsg_ok compares nlmsg_len as an int: 0x85858585 would pass there.
  Bytes datagram(64, 0x85);
  const auto r = nl::walk_datagram(datagram, 0, 0, [](nl::Bytes) { return std::error_code(); });
  CHECK(r.error == std::errc::bad_message);
  CHECK(nl::ends_dump(datagram));
  Bytes zero_len(20, 0);
  CHECK(nl::walk_datagram(zero_len, 0, 0, [](nl::Bytes) { return std::error_code(); }).error);
}

TEST_CASE("RTM_DELROUTE mirrors RTM_NEWROUTE", "[wg][netlink]") {
  auto added = nl::build_new_route(7, prefix("10.77.0.3/32"), 5);
  auto removed = nl::build_del_route(7, prefix("10.77.0.3/32"), 5);
  REQUIRE(added.size() == removed.size());
  CHECK(removed[4] == 25);  // RTM_DELROUTE
  CHECK(removed[6] == (NLM_F_REQUEST | NLM_F_ACK));
  CHECK(
      std::equal(added.begin() + 16, added.end(), removed.begin() + 16));  // same rtmsg, attributes
}
