// Pure netlink builders and parsers over byte buffers (libmnl's buffer helpers; no I/O).

#include "hearth/wg/netlink.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/wireguard.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <tuple>

namespace hearth::wg::nl {
namespace {

std::error_code bad_message() { return std::make_error_code(std::errc::bad_message); }

// One message being built in a fixed-size buffer (libmnl writes in place, so the buffer
// never reallocates while nlh points into it).
class Writer {
 public:
  Writer(std::size_t max, std::uint16_t type, std::uint16_t flags, std::uint32_t seq,
         std::uint32_t portid)
      : buf_(max, 0), max_(max) {
    nlh_ = mnl_nlmsg_put_header(buf_.data());
    nlh_->nlmsg_type = type;
    nlh_->nlmsg_flags = flags;
    nlh_->nlmsg_seq = seq;
    nlh_->nlmsg_pid = portid;
  }
  template <class T>
  T* extra() {
    return static_cast<T*>(mnl_nlmsg_put_extra_header(nlh_, sizeof(T)));
  }
  void genl(std::uint8_t cmd, std::uint8_t version) {
    auto* g = extra<genlmsghdr>();
    g->cmd = cmd;
    g->version = version;
  }
  nlmsghdr* nlh() { return nlh_; }
  std::size_t max() const { return max_; }
  bool put(std::uint16_t type, const void* data, std::size_t len) {
    return mnl_attr_put_check(nlh_, max_, type, len, data);
  }
  bool put_u8(std::uint16_t type, std::uint8_t v) {
    return mnl_attr_put_u8_check(nlh_, max_, type, v);
  }
  bool put_u16(std::uint16_t type, std::uint16_t v) {
    return mnl_attr_put_u16_check(nlh_, max_, type, v);
  }
  bool put_u32(std::uint16_t type, std::uint32_t v) {
    return mnl_attr_put_u32_check(nlh_, max_, type, v);
  }
  bool put_u64(std::uint16_t type, std::uint64_t v) {
    return mnl_attr_put_u64_check(nlh_, max_, type, v);
  }
  bool put_strz(std::uint16_t type, std::string_view s) {
    const std::string z(s);
    return mnl_attr_put_strz_check(nlh_, max_, type, z.c_str());
  }
  nlattr* nest(std::uint16_t type) { return mnl_attr_nest_start_check(nlh_, max_, type); }
  void end(nlattr* n) { mnl_attr_nest_end(nlh_, n); }
  void cancel(nlattr* n) { mnl_attr_nest_cancel(nlh_, n); }
  // Before mnl_attr_nest_end a nest's nla_len is not set yet: measure up to the tail.
  bool empty_nest(const nlattr* n) const {
    return static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh_)) -
               reinterpret_cast<const char*>(n) <=
           static_cast<std::ptrdiff_t>(MNL_ATTR_HDRLEN);
  }
  Message finish() {
    buf_.resize(nlh_->nlmsg_len);
    return std::move(buf_);
  }

 private:
  Message buf_;
  std::size_t max_;
  nlmsghdr* nlh_;
};

bool put_endpoint(Writer& w, const SocketEndpoint& ep) {
  if (ep.address.family == AF_INET) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(ep.port);
    std::memcpy(&sin.sin_addr, ep.address.bytes.data(), 4);
    return w.put(WGPEER_A_ENDPOINT, &sin, sizeof sin);
  }
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(ep.port);
  std::memcpy(&sin6.sin6_addr, ep.address.bytes.data(), 16);
  return w.put(WGPEER_A_ENDPOINT, &sin6, sizeof sin6);
}

// The peer's own attributes (everything but its public key and allowed IPs).
bool put_peer_head(Writer& w, const Peer& p, bool read_back) {
  bool ok = true;
  if (!read_back) {
    std::uint32_t flags = 0;
    if (p.remove) flags |= WGPEER_F_REMOVE_ME;
    if (p.replace_allowed_ips) flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
    if (flags != 0) ok = ok && w.put_u32(WGPEER_A_FLAGS, flags);
  }
  if (p.preshared_key) ok = ok && w.put(WGPEER_A_PRESHARED_KEY, p.preshared_key->data(), key_size);
  if (p.endpoint && p.endpoint->address.family != 0) ok = ok && put_endpoint(w, *p.endpoint);
  if (p.persistent_keepalive) {
    ok = ok && w.put_u16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, *p.persistent_keepalive);
  }
  if (read_back) {
    const std::int64_t ts[2] = {p.last_handshake_sec, p.last_handshake_nsec};  // __kernel_timespec
    ok = ok && w.put(WGPEER_A_LAST_HANDSHAKE_TIME, ts, sizeof ts);
    ok = ok && w.put_u64(WGPEER_A_RX_BYTES, p.rx_bytes);
    ok = ok && w.put_u64(WGPEER_A_TX_BYTES, p.tx_bytes);
  }
  return ok;
}

bool put_allowed_ip(Writer& w, const IpPrefix& a) {
  nlattr* n = w.nest(0);
  if (n == nullptr) return false;
  if (!w.put_u16(WGALLOWEDIP_A_FAMILY, static_cast<std::uint16_t>(a.address.family)) ||
      !w.put(WGALLOWEDIP_A_IPADDR, a.address.bytes.data(), a.address.size()) ||
      !w.put_u8(WGALLOWEDIP_A_CIDR_MASK, a.cidr)) {
    w.cancel(n);
    return false;
  }
  w.end(n);
  return true;
}

// Shared by SET_DEVICE requests and GET_DEVICE dumps: the same split, as linux/wireguard.h
// describes it (a peer cut in its allowed IPs carries on in the next message, keyed by its
// public key alone).
std::vector<Message> build_device_messages(const Device& d, std::uint16_t family_id,
                                           std::uint8_t cmd, std::uint16_t flags, std::uint32_t seq,
                                           std::uint32_t portid, std::size_t max_size,
                                           bool read_back) {
  std::vector<Message> out;
  std::size_t peer_i = 0, aip_i = 0;
  bool head_sent = false;
  bool first = true;
  do {
    Writer w(max_size, family_id, flags, seq++, portid);
    w.genl(cmd, WG_GENL_VERSION);
    bool ok = w.put_strz(WGDEVICE_A_IFNAME, d.name);
    if (d.ifindex != 0) ok = ok && w.put_u32(WGDEVICE_A_IFINDEX, d.ifindex);
    if (first) {
      if (!read_back && d.replace_peers)
        ok = ok && w.put_u32(WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS);
      if (d.private_key) ok = ok && w.put(WGDEVICE_A_PRIVATE_KEY, d.private_key->data(), key_size);
      if (read_back && d.public_key) {
        ok = ok && w.put(WGDEVICE_A_PUBLIC_KEY, d.public_key->data(), key_size);
      }
      if (d.listen_port) ok = ok && w.put_u16(WGDEVICE_A_LISTEN_PORT, *d.listen_port);
      if (d.fwmark) ok = ok && w.put_u32(WGDEVICE_A_FWMARK, *d.fwmark);
    }
    if (!ok) throw std::length_error("netlink message too small for the device attributes");
    const auto before = std::tuple(peer_i, aip_i, head_sent);
    if (peer_i < d.peers.size()) {
      nlattr* peers = w.nest(WGDEVICE_A_PEERS);
      if (peers == nullptr) throw std::length_error("netlink message too small for peers");
      for (; peer_i < d.peers.size(); ++peer_i) {
        const Peer& p = d.peers[peer_i];
        nlattr* pn = w.nest(0);
        if (pn == nullptr) break;
        if (!w.put(WGPEER_A_PUBLIC_KEY, p.public_key.data(), key_size) ||
            (!head_sent && !put_peer_head(w, p, read_back))) {
          w.cancel(pn);
          break;
        }
        head_sent = true;
        if (aip_i < p.allowed_ips.size()) {
          nlattr* aips = w.nest(WGPEER_A_ALLOWEDIPS);
          if (aips == nullptr) {
            w.end(pn);
            break;
          }
          while (aip_i < p.allowed_ips.size() && put_allowed_ip(w, p.allowed_ips[aip_i])) ++aip_i;
          if (w.empty_nest(aips)) {
            w.cancel(aips);
          } else {
            w.end(aips);
          }
          if (aip_i < p.allowed_ips.size()) {
            w.end(pn);
            break;
          }
        }
        w.end(pn);
        aip_i = 0;
        head_sent = false;
      }
      if (w.empty_nest(peers)) {
        w.cancel(peers);
      } else {
        w.end(peers);
      }
    }
    if (!first && std::tuple(peer_i, aip_i, head_sent) == before) {
      throw std::length_error("netlink message too small for one peer");
    }
    out.push_back(w.finish());
    first = false;
  } while (peer_i < d.peers.size());
  return out;
}

// --- parsing -------------------------------------------------------------------------

// A copy with the alignment and tail padding libmnl's readers assume (attributes are read
// through struct pointers, and an attribute may end in the message's alignment padding).
std::vector<std::uint32_t> aligned_copy(Bytes bytes) {
  std::vector<std::uint32_t> words(bytes.size() / 4 + 2, 0);
  if (!bytes.empty()) std::memcpy(words.data(), bytes.data(), bytes.size());
  return words;
}

bool payload_is(const nlattr* a, std::size_t len) { return mnl_attr_get_payload_len(a) == len; }

Key key_of(const nlattr* a) {
  Key k{};
  std::memcpy(k.data(), mnl_attr_get_payload(a), key_size);
  return k;
}

struct ParseState {
  bool bad = false;
};

struct AllowedIpState : ParseState {
  int family = -1;
  const nlattr* addr = nullptr;
  int cidr = -1;
};

int allowed_ip_attr(const nlattr* a, void* data) {
  auto* s = static_cast<AllowedIpState*>(data);
  switch (mnl_attr_get_type(a)) {
    case WGALLOWEDIP_A_FAMILY:
      if (!payload_is(a, 2)) return s->bad = true, MNL_CB_ERROR;
      s->family = mnl_attr_get_u16(a);
      break;
    case WGALLOWEDIP_A_IPADDR:
      s->addr = a;
      break;
    case WGALLOWEDIP_A_CIDR_MASK:
      if (!payload_is(a, 1)) return s->bad = true, MNL_CB_ERROR;
      s->cidr = mnl_attr_get_u8(a);
      break;
    default:
      break;
  }
  return MNL_CB_OK;
}

int allowed_ips_entry(const nlattr* a, void* data) {
  auto* peer = static_cast<std::pair<Peer*, bool*>*>(data);
  AllowedIpState s;
  if (mnl_attr_parse_nested(a, allowed_ip_attr, &s) < 0 || s.bad || s.addr == nullptr ||
      s.cidr < 0) {
    return *peer->second = true, MNL_CB_ERROR;
  }
  IpPrefix p;
  if (s.family == AF_INET && payload_is(s.addr, 4) && s.cidr <= 32) {
    p.address.family = AF_INET;
  } else if (s.family == AF_INET6 && payload_is(s.addr, 16) && s.cidr <= 128) {
    p.address.family = AF_INET6;
  } else {
    return *peer->second = true, MNL_CB_ERROR;
  }
  std::memcpy(p.address.bytes.data(), mnl_attr_get_payload(s.addr), p.address.size());
  p.cidr = static_cast<std::uint8_t>(s.cidr);
  peer->first->allowed_ips.push_back(p);
  return MNL_CB_OK;
}

struct PeerState : ParseState {
  Peer peer;
  bool have_key = false;
};

int peer_attr(const nlattr* a, void* data) {
  auto* s = static_cast<PeerState*>(data);
  const auto fail = [&] {
    s->bad = true;
    return MNL_CB_ERROR;
  };
  switch (mnl_attr_get_type(a)) {
    case WGPEER_A_PUBLIC_KEY:
      if (!payload_is(a, key_size)) return fail();
      s->peer.public_key = key_of(a);
      s->have_key = true;
      break;
    case WGPEER_A_PRESHARED_KEY:
      if (!payload_is(a, key_size)) return fail();
      s->peer.preshared_key = key_of(a);
      break;
    case WGPEER_A_ENDPOINT: {
      const std::size_t len = mnl_attr_get_payload_len(a);
      if (len < sizeof(sa_family_t)) return fail();
      sa_family_t family;
      std::memcpy(&family, mnl_attr_get_payload(a), sizeof family);
      SocketEndpoint ep;
      if (family == AF_INET && len == sizeof(sockaddr_in)) {
        sockaddr_in sin;
        std::memcpy(&sin, mnl_attr_get_payload(a), sizeof sin);
        ep.address.family = AF_INET;
        std::memcpy(ep.address.bytes.data(), &sin.sin_addr, 4);
        ep.port = ntohs(sin.sin_port);
      } else if (family == AF_INET6 && len == sizeof(sockaddr_in6)) {
        sockaddr_in6 sin6;
        std::memcpy(&sin6, mnl_attr_get_payload(a), sizeof sin6);
        ep.address.family = AF_INET6;
        std::memcpy(ep.address.bytes.data(), &sin6.sin6_addr, 16);
        ep.port = ntohs(sin6.sin6_port);
      } else {
        return fail();
      }
      s->peer.endpoint = ep;
      break;
    }
    case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
      if (!payload_is(a, 2)) return fail();
      s->peer.persistent_keepalive = mnl_attr_get_u16(a);
      break;
    case WGPEER_A_LAST_HANDSHAKE_TIME: {
      std::int64_t ts[2];
      if (!payload_is(a, sizeof ts)) return fail();
      std::memcpy(ts, mnl_attr_get_payload(a), sizeof ts);
      s->peer.last_handshake_sec = ts[0];
      s->peer.last_handshake_nsec = ts[1];
      break;
    }
    case WGPEER_A_RX_BYTES:
      if (!payload_is(a, 8)) return fail();
      s->peer.rx_bytes = mnl_attr_get_u64(a);
      break;
    case WGPEER_A_TX_BYTES:
      if (!payload_is(a, 8)) return fail();
      s->peer.tx_bytes = mnl_attr_get_u64(a);
      break;
    case WGPEER_A_ALLOWEDIPS: {
      bool bad = false;
      std::pair<Peer*, bool*> ctx{&s->peer, &bad};
      if (mnl_attr_parse_nested(a, allowed_ips_entry, &ctx) < 0 || bad) return fail();
      break;
    }
    default:
      break;  // WGPEER_A_FLAGS, WGPEER_A_PROTOCOL_VERSION, newer ones
  }
  return MNL_CB_OK;
}

struct DeviceState : ParseState {
  Device* device;
};

int peers_entry(const nlattr* a, void* data) {
  auto* s = static_cast<DeviceState*>(data);
  PeerState ps;
  if (mnl_attr_parse_nested(a, peer_attr, &ps) < 0 || ps.bad || !ps.have_key) {
    s->bad = true;
    return MNL_CB_ERROR;
  }
  auto& peers = s->device->peers;
  if (!peers.empty() && peers.back().public_key == ps.peer.public_key) {
    // The same peer, continued from the previous message: more allowed IPs.
    auto& last = peers.back();
    last.allowed_ips.insert(last.allowed_ips.end(), ps.peer.allowed_ips.begin(),
                            ps.peer.allowed_ips.end());
  } else {
    peers.push_back(std::move(ps.peer));
  }
  return MNL_CB_OK;
}

int device_attr(const nlattr* a, void* data) {
  auto* s = static_cast<DeviceState*>(data);
  Device& d = *s->device;
  const auto fail = [&] {
    s->bad = true;
    return MNL_CB_ERROR;
  };
  switch (mnl_attr_get_type(a)) {
    case WGDEVICE_A_IFINDEX:
      if (!payload_is(a, 4)) return fail();
      d.ifindex = mnl_attr_get_u32(a);
      break;
    case WGDEVICE_A_IFNAME: {
      const std::size_t len = mnl_attr_get_payload_len(a);
      const char* p = static_cast<const char*>(mnl_attr_get_payload(a));
      if (len == 0 || len > IFNAMSIZ || p[len - 1] != '\0') return fail();
      d.name.assign(p, ::strnlen(p, len));
      break;
    }
    case WGDEVICE_A_PRIVATE_KEY:
      if (!payload_is(a, key_size)) return fail();
      d.private_key = key_of(a);
      break;
    case WGDEVICE_A_PUBLIC_KEY:
      if (!payload_is(a, key_size)) return fail();
      d.public_key = key_of(a);
      break;
    case WGDEVICE_A_LISTEN_PORT:
      if (!payload_is(a, 2)) return fail();
      d.listen_port = mnl_attr_get_u16(a);
      break;
    case WGDEVICE_A_FWMARK:
      if (!payload_is(a, 4)) return fail();
      d.fwmark = mnl_attr_get_u32(a);
      break;
    case WGDEVICE_A_PEERS:
      if (mnl_attr_parse_nested(a, peers_entry, s) < 0 || s->bad) return fail();
      break;
    default:
      break;
  }
  return MNL_CB_OK;
}

int family_attr(const nlattr* a, void* data) {
  if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID && payload_is(a, 2)) {
    *static_cast<std::uint16_t*>(data) = mnl_attr_get_u16(a);
  }
  return MNL_CB_OK;
}

// nlmsghdr + genlmsghdr present and nlmsg_len within the buffer.
bool genl_message_ok(Bytes message) {
  if (message.size() < NLMSG_HDRLEN + GENL_HDRLEN) return false;
  nlmsghdr h;
  std::memcpy(&h, message.data(), sizeof h);
  return h.nlmsg_len >= NLMSG_HDRLEN + GENL_HDRLEN && h.nlmsg_len <= message.size();
}

}  // namespace

Message build_get_family(std::string_view name, std::uint32_t seq) {
  Writer w(256, GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, seq, 0);
  w.genl(CTRL_CMD_GETFAMILY, 1);
  w.put_strz(CTRL_ATTR_FAMILY_NAME, name.substr(0, GENL_NAMSIZ - 1));
  return w.finish();
}

std::uint16_t parse_family_id(Bytes message) {
  if (!genl_message_ok(message)) return 0;
  auto words = aligned_copy(message);
  auto* nlh = reinterpret_cast<const nlmsghdr*>(words.data());
  std::uint16_t id = 0;
  mnl_attr_parse(nlh, GENL_HDRLEN, family_attr, &id);
  return id;
}

std::vector<Message> build_set_device(const Device& device, std::uint16_t family_id,
                                      std::uint32_t seq, std::size_t max_size) {
  return build_device_messages(device, family_id, WG_CMD_SET_DEVICE, NLM_F_REQUEST | NLM_F_ACK, seq,
                               0, max_size, /*read_back=*/false);
}

Message build_get_device(std::string_view name, std::uint16_t family_id, std::uint32_t seq) {
  Writer w(256, family_id, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP, seq, 0);
  w.genl(WG_CMD_GET_DEVICE, WG_GENL_VERSION);
  w.put_strz(WGDEVICE_A_IFNAME, name.substr(0, IFNAMSIZ - 1));
  return w.finish();
}

std::vector<Message> build_device_dump(const Device& device, std::uint16_t family_id,
                                       std::uint32_t seq, std::uint32_t portid,
                                       std::size_t max_size) {
  // A kernel dump answers with one sequence number for every part.
  auto out = build_device_messages(device, family_id, WG_CMD_GET_DEVICE, NLM_F_MULTI, seq, portid,
                                   max_size, /*read_back=*/true);
  for (auto& m : out) reinterpret_cast<nlmsghdr*>(m.data())->nlmsg_seq = seq;
  Writer done(64, NLMSG_DONE, NLM_F_MULTI, seq, portid);
  *done.extra<std::int32_t>() = 0;
  out.push_back(done.finish());
  return out;
}

std::error_code parse_device_message(Bytes message, Device& device) {
  if (!genl_message_ok(message)) return bad_message();
  auto words = aligned_copy(message);
  auto* nlh = reinterpret_cast<const nlmsghdr*>(words.data());
  DeviceState s;
  s.device = &device;
  if (mnl_attr_parse(nlh, GENL_HDRLEN, device_attr, &s) < 0 || s.bad) return bad_message();
  return {};
}

Message build_new_link(std::string_view name, std::string_view kind, std::uint32_t seq) {
  Writer w(256, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, 0);
  w.extra<ifinfomsg>()->ifi_family = AF_UNSPEC;
  w.put_strz(IFLA_IFNAME, name.substr(0, IFNAMSIZ - 1));
  nlattr* info = w.nest(IFLA_LINKINFO);
  w.put_strz(IFLA_INFO_KIND, kind);
  w.end(info);
  return w.finish();
}

Message build_del_link(std::string_view name, std::uint32_t seq) {
  Writer w(256, RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0);
  w.extra<ifinfomsg>()->ifi_family = AF_UNSPEC;
  w.put_strz(IFLA_IFNAME, name.substr(0, IFNAMSIZ - 1));
  return w.finish();
}

Message build_link_up(std::uint32_t ifindex, std::uint32_t seq) {
  Writer w(256, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0);
  auto* ifi = w.extra<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = static_cast<int>(ifindex);
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  return w.finish();
}

Message build_new_address(std::uint32_t ifindex, const IpPrefix& address, std::uint32_t seq) {
  Writer w(256, RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, 0);
  auto* ifa = w.extra<ifaddrmsg>();
  ifa->ifa_family = static_cast<std::uint8_t>(address.address.family);
  ifa->ifa_prefixlen = address.cidr;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = ifindex;
  // On a point-to-point device IFA_ADDRESS is the peer's address; `ip addr add` without
  // `peer` sets it to the local one, which gives the usual subnet route. So do we.
  w.put(IFA_LOCAL, address.address.bytes.data(), address.address.size());
  w.put(IFA_ADDRESS, address.address.bytes.data(), address.address.size());
  return w.finish();
}

namespace {
Message route_message(std::uint16_t type, std::uint16_t flags, std::uint32_t ifindex,
                      const IpPrefix& prefix, std::uint32_t seq) {
  Writer w(256, type, flags, seq, 0);
  auto* rtm = w.extra<rtmsg>();
  rtm->rtm_family = static_cast<std::uint8_t>(prefix.address.family);
  rtm->rtm_dst_len = prefix.cidr;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_LINK;
  rtm->rtm_type = RTN_UNICAST;
  const IpPrefix net = prefix.network();
  w.put(RTA_DST, net.address.bytes.data(), net.address.size());
  w.put_u32(RTA_OIF, ifindex);
  return w.finish();
}
}  // namespace

Message build_new_route(std::uint32_t ifindex, const IpPrefix& prefix, std::uint32_t seq) {
  return route_message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
                       ifindex, prefix, seq);
}

Message build_del_route(std::uint32_t ifindex, const IpPrefix& prefix, std::uint32_t seq) {
  return route_message(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, ifindex, prefix, seq);
}

namespace {
struct WalkCtx {
  const std::function<std::error_code(Bytes)>* on_data;
  std::error_code error;
};
int walk_data(const nlmsghdr* nlh, void* data) {
  auto* ctx = static_cast<WalkCtx*>(data);
  ctx->error = (*ctx->on_data)(Bytes(reinterpret_cast<const std::uint8_t*>(nlh), nlh->nlmsg_len));
  return ctx->error ? MNL_CB_ERROR : MNL_CB_OK;
}
}  // namespace

namespace {
// Every nlmsghdr's length within the datagram. Checked here, not left to libmnl: its
// mnl_nlmsg_ok compares nlmsg_len as an int, so a length of 2^31 or more passes there (the
// fuzzer found it) and a message would claim gigabytes past the buffer.
bool lengths_ok(Bytes datagram) {
  std::size_t off = 0;
  while (datagram.size() - off >= sizeof(nlmsghdr)) {
    nlmsghdr h;
    std::memcpy(&h, datagram.data() + off, sizeof h);
    if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > datagram.size() - off) return false;
    off += std::min<std::size_t>(NLMSG_ALIGN(h.nlmsg_len), datagram.size() - off);
  }
  return true;
}
}  // namespace

WalkResult walk_datagram(Bytes datagram, std::uint32_t seq, std::uint32_t portid,
                         const std::function<std::error_code(Bytes message)>& on_data) {
  if (!lengths_ok(datagram)) return WalkResult{bad_message(), false, false};
  auto words = aligned_copy(datagram);
  WalkCtx ctx{&on_data, {}};
  errno = 0;
  const int rc = mnl_cb_run(words.data(), datagram.size(), seq, portid, walk_data, &ctx);
  WalkResult r;
  if (rc == MNL_CB_ERROR) {
    if (ctx.error) {
      r.error = ctx.error;
    } else if (errno == EINTR) {
      r.interrupted = true;  // NLM_F_DUMP_INTR
    } else {
      r.error = std::error_code(errno != 0 ? errno : EBADMSG, std::system_category());
    }
  } else if (rc == MNL_CB_STOP) {
    r.done = true;
  }
  return r;
}

bool ends_dump(Bytes datagram) {
  if (!lengths_ok(datagram)) return true;  // nothing more to read from a broken answer
  auto words = aligned_copy(datagram);
  auto* nlh = reinterpret_cast<const nlmsghdr*>(words.data());
  int len = static_cast<int>(datagram.size());
  while (mnl_nlmsg_ok(nlh, len)) {
    if (nlh->nlmsg_type == NLMSG_DONE || nlh->nlmsg_type == NLMSG_ERROR) return true;
    nlh = mnl_nlmsg_next(nlh, &len);
  }
  return false;
}

}  // namespace hearth::wg::nl
