#pragma once
// Typed, validated, immutable configuration. Parsed once from TOML (see
// parse.hpp); shared as std::shared_ptr<const EdgeConfig/OriginConfig>, and a
// reload swaps the pointer.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace hearth::config {

using Duration = std::chrono::milliseconds;

// "host:port". host is an IP literal (IPv6 in brackets in the text form) or a DNS name.
struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const;  // re-adds brackets for IPv6
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// A local service an origin route points to: "http://host:port" or "https://host:port".
struct ServiceUrl {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const;
  friend bool operator==(const ServiceUrl&, const ServiceUrl&) = default;
};

enum class LogFormat { text, json };

struct CertificateConfig {
  std::filesystem::path cert;  // PEM chain, leaf first
  std::filesystem::path key;   // PEM private key
};

// [[origins]] in edge.toml: who may dial in, and which hostnames it may publish.
struct OriginGrant {
  std::string name;
  std::vector<std::string> hostnames;  // lower case; exact or "*.suffix"
};

struct EdgeConfig {
  std::filesystem::path source;  // the file this was read from (for messages)

  Endpoint listen_https;
  std::optional<Endpoint> listen_http;
  Endpoint listen_tunnel;
  std::optional<Endpoint> listen_admin;
  std::filesystem::path state_dir;

  std::vector<CertificateConfig> certificates;  // [[tls.certificates]]; first is default
  std::vector<OriginGrant> origins;             // [[origins]]

  // [edge] tuning keys, all optional. Defaults follow nginx/HAProxy habits.
  unsigned workers = 0;                                   // 0: one per core
  Duration handshake_timeout = std::chrono::seconds(10);  // TLS handshake (clients, origins)
  Duration header_timeout = std::chrono::seconds(30);     // reading one request head
  Duration idle_timeout = std::chrono::seconds(75);       // keep-alive idle, body stalls
  Duration websocket_idle_timeout = std::chrono::hours(24 * 7);  // upgraded streams
  Duration drain_timeout = std::chrono::seconds(30);
  Duration keepalive_interval = std::chrono::seconds(10);  // tunnel pings
  Duration keepalive_timeout = std::chrono::seconds(30);   // tunnel silent -> dead
  std::uint64_t max_body_size = 100ull * 1024 * 1024;     // 0: unlimited
  std::uint32_t max_header_size = 32 * 1024;
  std::uint32_t max_connections = 20000;  // concurrent client connections

  // HTTP/2 front end (issue 8). The header-list limit is max_header_size.
  bool http2 = true;                                      // ALPN h2 + http/1.1; false: http/1.1
  std::uint32_t h2_max_concurrent_streams = 128;          // SETTINGS_MAX_CONCURRENT_STREAMS
  std::uint32_t h2_initial_window_size = 256 * 1024;      // per-stream receive window
  std::uint32_t h2_connection_window_size = 1024 * 1024;  // whole-connection receive window
};

// [[routes]] in origin.toml.
struct Route {
  std::string host;         // lower case; exact or "*.suffix"
  std::string path = "/";   // prefix, starts with '/'
  ServiceUrl service;
  bool tls_verify = false;  // for https services: verify the local service's certificate
};

struct OriginConfig {
  std::filesystem::path source;

  std::string name;
  Endpoint edge;
  std::string edge_pin;                   // "sha256:<base64>"
  std::string key_pem;                    // loaded from key_file, or inline `key`
  std::filesystem::path key_file;         // empty when the key was inline
  unsigned connections = 2;               // parallel tunnel connections
  std::optional<Endpoint> listen_admin;   // optional admin listener
  std::vector<Route> routes;

  unsigned workers = 0;  // 0: one per core
  Duration connect_timeout = std::chrono::seconds(10);   // dial + TLS handshake to the edge
  Duration service_connect_timeout = std::chrono::seconds(5);
  Duration idle_timeout = std::chrono::seconds(75);
  Duration websocket_idle_timeout = std::chrono::hours(24 * 7);
  Duration drain_timeout = std::chrono::seconds(30);
  Duration keepalive_interval = std::chrono::seconds(10);
  Duration keepalive_timeout = std::chrono::seconds(30);
  Duration reconnect_min = std::chrono::milliseconds(100);
  Duration reconnect_max = std::chrono::seconds(30);
};

}  // namespace hearth::config
