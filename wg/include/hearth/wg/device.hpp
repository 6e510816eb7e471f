#pragma once
// A WireGuard device and its peers as plain values: what hearth sets, and what it reads
// back. The same description feeds every backend (kernel generic netlink, wireguard-go's
// UAPI) and comes back from them, so tests can check that it survives a round trip.
// Modelled on wireguard-tools' embeddable library (wg_device / wg_peer / wg_allowedip).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::wg {

constexpr std::size_t key_size = 32;  // WG_KEY_LEN
using Key = std::array<std::uint8_t, key_size>;

// An IPv4 or IPv6 address; family is AF_INET or AF_INET6 (0: none).
struct IpAddress {
  int family = 0;
  std::array<std::uint8_t, 16> bytes{};  // network order; IPv4 uses the first 4
  std::size_t size() const { return family == 10 /*AF_INET6*/ ? 16 : 4; }
  std::string to_string() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// An address with a prefix length: an allowed IP, an interface address or a route.
struct IpPrefix {
  IpAddress address;
  std::uint8_t cidr = 0;
  std::string to_string() const;  // "10.77.0.2/32"
  IpPrefix network() const;       // host bits cleared
  bool contains(const IpAddress& a) const;
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
};

struct SocketEndpoint {
  IpAddress address;
  std::uint16_t port = 0;
  std::string to_string() const;  // "198.18.0.1:51820", "[2001:db8::1]:51820"
  friend bool operator==(const SocketEndpoint&, const SocketEndpoint&) = default;
};

struct Peer {
  Key public_key{};
  std::optional<Key> preshared_key;
  std::optional<SocketEndpoint> endpoint;
  std::optional<std::uint16_t> persistent_keepalive;  // seconds; 0 disables
  std::vector<IpPrefix> allowed_ips;
  bool replace_allowed_ips = false;  // set only
  bool remove = false;               // set only

  // Read back only.
  std::int64_t last_handshake_sec = 0;  // 0: never
  std::int64_t last_handshake_nsec = 0;
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_bytes = 0;

  friend bool operator==(const Peer&, const Peer&) = default;
};

struct Device {
  std::string name;
  std::uint32_t ifindex = 0;
  std::optional<Key> private_key;
  std::optional<Key> public_key;  // read back only
  std::optional<std::uint16_t> listen_port;
  std::optional<std::uint32_t> fwmark;
  bool replace_peers = false;  // set only
  std::vector<Peer> peers;

  friend bool operator==(const Device&, const Device&) = default;
};

// --- text forms ---------------------------------------------------------------

// "10.0.0.1", "2001:db8::1"; nullopt for anything else.
std::optional<IpAddress> parse_ip(std::string_view text);
// "10.77.0.2/24"; without "/n" the full length (32 or 128) when allow_bare.
std::optional<IpPrefix> parse_prefix(std::string_view text, bool allow_bare = false);
// "1.2.3.4:51820" or "[::1]:51820" (IP literals only: resolving names is the caller's job).
std::optional<SocketEndpoint> parse_socket_endpoint(std::string_view text);

// --- keys (Curve25519 / X25519, through OpenSSL) ---------------------------------

// A fresh private key. Throws std::runtime_error if OpenSSL fails.
Key generate_private_key();
// The public half; nullopt if OpenSSL rejects the key.
std::optional<Key> public_key_of(const Key& private_key);
std::string key_to_base64(const Key& key);  // 44 characters, as `wg` prints keys
std::optional<Key> key_from_base64(std::string_view text);
std::string key_to_hex(const Key& key);  // the UAPI's form
std::optional<Key> key_from_hex(std::string_view text);
bool key_is_zero(const Key& key);

}  // namespace hearth::wg
