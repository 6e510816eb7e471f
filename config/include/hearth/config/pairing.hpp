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

// Write a ready origin.toml at `out` and the key to `<out-without-ext>.key` beside it
// (mode 0600, key_file relative path in the toml), with [origin] name/edge/edge_pin/
// key_file/connections=2 and one example route. Refuses to overwrite existing files unless
// overwrite=true. Creates out's directory if needed. Throws std::runtime_error on I/O
// errors, std::invalid_argument if the token's fields are not valid.
void write_origin_config(const crypto::JoinToken& token, const std::filesystem::path& out,
                         bool overwrite = false);

// Where write_origin_config puts the key for `out`: "origin.toml" -> "origin.key".
std::filesystem::path origin_key_path_for(const std::filesystem::path& out);

}  // namespace hearth::config
