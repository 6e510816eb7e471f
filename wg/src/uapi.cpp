// wireguard-go's UAPI text protocol: builder and parser, pure.

#include "hearth/wg/uapi.hpp"

#include <charconv>
#include <limits>

namespace hearth::wg::uapi {
namespace {

std::error_code bad_message() { return std::make_error_code(std::errc::bad_message); }

template <class T>
bool parse_number(std::string_view text, T& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string build_set(const Device& d) {
  std::string out = "set=1\n";
  if (d.private_key) out += "private_key=" + key_to_hex(*d.private_key) + "\n";
  if (d.listen_port) out += "listen_port=" + std::to_string(*d.listen_port) + "\n";
  if (d.fwmark) out += "fwmark=" + std::to_string(*d.fwmark) + "\n";
  if (d.replace_peers) out += "replace_peers=true\n";
  for (const Peer& p : d.peers) {
    out += "public_key=" + key_to_hex(p.public_key) + "\n";
    if (p.remove) {
      out += "remove=true\n";
      continue;
    }
    if (p.preshared_key) out += "preshared_key=" + key_to_hex(*p.preshared_key) + "\n";
    if (p.endpoint && p.endpoint->address.family != 0) {
      out += "endpoint=" + p.endpoint->to_string() + "\n";
    }
    if (p.persistent_keepalive) {
      out += "persistent_keepalive_interval=" + std::to_string(*p.persistent_keepalive) + "\n";
    }
    if (p.replace_allowed_ips) out += "replace_allowed_ips=true\n";
    for (const IpPrefix& a : p.allowed_ips) out += "allowed_ip=" + a.to_string() + "\n";
  }
  out += "\n";
  return out;
}

bool reply_complete(std::string_view text) {
  return text == "\n" || (text.size() >= 2 && text.substr(text.size() - 2) == "\n\n");
}

std::error_code parse_get(std::string_view text, Device& d) {
  Peer* peer = nullptr;
  bool have_errno = false;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return bad_message();  // every line ends with '\n'
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (line.empty()) break;  // the blank line that ends the answer
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) return bad_message();
    const std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    bool ok = true;
    if (key == "errno") {
      int e = 0;
      if (!parse_number(value, e)) return bad_message();
      if (e != 0) return std::error_code(e, std::system_category());
      have_errno = true;
    } else if (key == "private_key") {
      auto k = key_from_hex(value);
      ok = k.has_value();
      if (ok) {
        d.private_key = *k;
        d.public_key = public_key_of(*k);
      }
    } else if (key == "listen_port") {
      std::uint16_t port = 0;
      ok = parse_number(value, port);
      d.listen_port = port;
    } else if (key == "fwmark") {
      std::uint32_t mark = 0;
      ok = parse_number(value, mark);
      d.fwmark = mark;
    } else if (key == "public_key") {
      auto k = key_from_hex(value);
      ok = k.has_value();
      if (ok) {
        d.peers.emplace_back();
        peer = &d.peers.back();
        peer->public_key = *k;
      }
    } else if (peer == nullptr) {
      ok = true;  // an unknown device-level key: skipped
    } else if (key == "preshared_key") {
      auto k = key_from_hex(value);
      ok = k.has_value();
      // All zeros: no preshared key (how wireguard-go prints "none").
      if (ok && !key_is_zero(*k)) peer->preshared_key = *k;
    } else if (key == "endpoint") {
      auto ep = parse_socket_endpoint(value);
      ok = ep.has_value();
      if (ok) peer->endpoint = *ep;
    } else if (key == "persistent_keepalive_interval") {
      std::uint16_t s = 0;
      ok = parse_number(value, s);
      peer->persistent_keepalive = s;
    } else if (key == "allowed_ip") {
      auto a = parse_prefix(value);
      ok = a.has_value();
      if (ok) peer->allowed_ips.push_back(*a);
    } else if (key == "last_handshake_time_sec") {
      ok = parse_number(value, peer->last_handshake_sec);
    } else if (key == "last_handshake_time_nsec") {
      ok = parse_number(value, peer->last_handshake_nsec);
    } else if (key == "rx_bytes") {
      ok = parse_number(value, peer->rx_bytes);
    } else if (key == "tx_bytes") {
      ok = parse_number(value, peer->tx_bytes);
    }
    if (!ok) return bad_message();
  }
  return have_errno ? std::error_code() : bad_message();
}

std::error_code parse_set_reply(std::string_view text) {
  Device ignored;
  return parse_get(text, ignored);
}

}  // namespace hearth::wg::uapi
