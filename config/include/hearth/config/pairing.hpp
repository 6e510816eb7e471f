#pragma once
// The edge's pairing state under state_dir, and turning join tokens into origin configs.
//
// state_dir layout:
//   tunnel.key            the edge's Ed25519 tunnel key (PKCS#8 PEM, mode 0600)
//   origins/<name>.pins   pins of the keys authorized for origin <name>: one per line,
//                         '#' starts a comment (`hearth-edge invite` records the date there)
//
// Control-plane code: errors are exceptions with messages that name the file.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/common/crypto.hpp"
#include "hearth/config/config.hpp"

namespace hearth::config {

// state_dir/tunnel.key and state_dir/origins/<name>.pins.
std::filesystem::path edge_key_path(const std::filesystem::path& state_dir);
std::filesystem::path pins_path(const std::filesystem::path& state_dir, std::string_view name);

// The edge's tunnel key; created (with state_dir, mode 0700, if needed) on first use.
// Throws std::runtime_error with a clear message on I/O errors or an unusable key file.
std::string load_or_create_edge_key(const std::filesystem::path& state_dir);

// nullopt if tunnel.key does not exist; throws std::runtime_error if it cannot be read
// or is not a PEM private key.
std::optional<std::string> load_edge_key(const std::filesystem::path& state_dir);

// origin name -> authorized pins, from origins/*.pins (names with at least one pin).
// Missing origins/ directory: empty map. Throws std::runtime_error naming file and line
// for a line that is not a pin, or when a file cannot be read.
std::map<std::string, std::vector<std::string>> load_authorized_origins(
    const std::filesystem::path& state_dir);

// Authorize a new key pair for `name` (must be one of cfg.origins, else throw
// std::invalid_argument naming the file and that the origin is not in [[origins]]);
// appends its pin to origins/<name>.pins; returns the join token. edge_address is what
// origins dial ("vps.example.com:7443"); std::invalid_argument if it is not host:port.
std::string invite_origin(const EdgeConfig& cfg, std::string_view name,
                          std::string_view edge_address);

// --- Pairing over time (issue 13) ---------------------------------------------
// state_dir/origins/<name>.seen: "<UTC time> <peer address>", rewritten at each
// tunnel handshake (at most every 10 s per origin, so a reconnect storm stays
// cheap). Never throws: a handshake must not fail over bookkeeping.
void record_last_seen(const std::filesystem::path& state_dir, std::string_view name,
                      std::string_view peer) noexcept;
struct LastSeen {
  std::string when;  // "2026-12-01T22:10:00Z"
  std::string peer;  // "198.51.100.7:40112"
};
std::optional<LastSeen> load_last_seen(const std::filesystem::path& state_dir,
                                       std::string_view name);
// Removes origins/<name>.pins (every key of that origin) and its .seen file.
// False when the origin had no pins file. Throws std::runtime_error on I/O errors.
// A running edge refuses the origin's next handshake at once; its live tunnels
// close on the edge's next reload (SIGHUP).
bool revoke_origin(const std::filesystem::path& state_dir, std::string_view name);

// One [[routes]] entry for write_origin_config: `hearth-origin join --route`.
struct JoinRoute {
  std::string host;
  std::string path = "/";
  std::string service;  // "http://127.0.0.1:3000"
};
// "HOST[/PATH]=URL" -> JoinRoute; std::invalid_argument with a message on bad input.
JoinRoute parse_join_route(std::string_view text);

// Write a ready origin.toml at `out` and the key to `<out-without-ext>.key` beside it
// (mode 0600, key_file relative path in the toml), with [origin] name/edge/edge_pin/
// key_file/connections=2 and `routes`; without routes, one route per hostname the token
// allows, to http://127.0.0.1:3000, marked as the line to edit (an old token without
// hostnames: an example route to edit). Refuses to overwrite existing files unless
// overwrite=true. Creates out's directory if needed. Throws std::runtime_error on I/O
// errors, std::invalid_argument if the token's fields or a route are not valid.
void write_origin_config(const crypto::JoinToken& token, const std::filesystem::path& out,
                         bool overwrite = false, const std::vector<JoinRoute>& routes = {});

// Where write_origin_config puts the key for `out`: "origin.toml" -> "origin.key".
std::filesystem::path origin_key_path_for(const std::filesystem::path& out);

// --- WireGuard link (issue 10) -----------------------------------------------------------
// With [wireguard] in edge.toml, `invite` also generates the origin's WireGuard key pair,
// gives it the next free address in the edge's subnet, and records what the edge needs to
// make it a peer in state_dir/origins/<name>.wg (mode 0600; re-inviting replaces it):
//   # invited 2026-12-01T22:00:00Z
//   public_key=BASE64           the origin's WireGuard public key
//   address=10.77.0.2/32        its address (kept when the origin is invited again)
//   allowed_ips=10.77.0.2/32    what the edge routes to it: edit to reach more of the home
// The origin's private key travels in the join token only.
std::filesystem::path wireguard_record_path(const std::filesystem::path& state_dir,
                                            std::string_view name);
struct WireguardPeerRecord {
  std::string name;
  wg::Key public_key{};
  wg::IpPrefix address;                   // host prefix (/32 or /128)
  std::vector<wg::IpPrefix> allowed_ips;  // default: address
};
// Every origins/*.wg record, by name. Missing directory: none. Throws std::runtime_error
// naming file and line for a line it cannot read.
std::vector<WireguardPeerRecord> load_wireguard_records(const std::filesystem::path& state_dir);
// The WireGuard private key in `file` (one base64 line, as `wg genkey` writes); created
// (mode 0600, its directory 0700) on first use. Throws std::runtime_error on I/O errors.
wg::Key load_or_create_wireguard_key(const std::filesystem::path& file);
// The lowest address in `edge`'s subnet that is neither the network, the broadcast, the
// edge's nor a recorded origin's. Throws std::runtime_error when the subnet is full.
wg::IpAddress next_free_address(const wg::IpPrefix& edge,
                                const std::vector<WireguardPeerRecord>& taken);
// Where write_origin_config puts the WireGuard key: "origin.toml" -> "origin.wg.key".
std::filesystem::path origin_wireguard_key_path_for(const std::filesystem::path& out);

}  // namespace hearth::config
