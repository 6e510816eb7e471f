#pragma once
// Typed, validated, immutable configuration. Parsed once from TOML (see
// parse.hpp); shared as std::shared_ptr<const EdgeConfig/OriginConfig>, and a
// reload swaps the pointer.

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "hearth/config/policy.hpp"
#include "hearth/wg/device.hpp"

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
  bool acme = true;                    // [acme]: manage certificates for these hostnames
};

// [acme] in edge.toml (issue 12): certificates for [[origins]] hostnames, from an
// RFC 8555 CA. Absent table: no managed certificates.
struct AcmeConfig {
  std::string email;  // optional contact, "ops@example.com"
  std::string directory = "https://acme-v02.api.letsencrypt.org/directory";
  std::filesystem::path ca_file;  // extra trust for the directory's HTTPS; empty: system only
  std::vector<std::string> challenges{"tls-alpn-01", "http-01"};  // in order of preference
  std::string key_type = "ecdsa-p256";                            // or "rsa-2048"
  std::optional<Duration> renew_before;  // nullopt: when a third of the lifetime is left
  std::string eab_kid;                   // external account binding, with eab_hmac_key
  std::string eab_hmac_key;              // base64url, read from eab_hmac_key_file
  std::filesystem::path dns_hook;        // `HOOK add|remove NAME VALUE` for dns-01
  Duration dns_hook_timeout = std::chrono::minutes(2);
  Duration retry_base = std::chrono::minutes(1);  // first back-off after a failure; doubles
};

// --- WireGuard link (issue 10): [wireguard] in edge.toml and origin.toml ---------------
// The edge's side: one interface, the origins as peers (recorded by `invite` under
// state_dir/origins/NAME.wg), no endpoints of theirs: homes dial out.
struct EdgeWireguard {
  std::string interface = "hwg0";
  std::uint16_t listen_port = 51820;
  wg::IpPrefix address;                    // the edge's address; origins get the next free ones
  std::filesystem::path private_key_file;  // default state_dir/wireguard.key (created, 0600)
  bool persist = false;                    // keep the interface when hearth-edge exits
};
// The origin's side: the edge is its one peer, reached at edge_endpoint with a keepalive.
struct OriginWireguard {
  std::string interface = "hwg0";
  wg::IpPrefix address;  // this origin's, e.g. 10.77.0.2/24
  Duration persistent_keepalive = std::chrono::seconds(25);
  std::vector<wg::IpPrefix> allowed_ips;   // default: address alone (/32)
  std::filesystem::path private_key_file;  // empty when inline private_key
  wg::Key private_key{};
  wg::Key edge_public_key{};
  Endpoint edge_endpoint;      // where the edge's WireGuard listens (public host, listen_port)
  wg::IpAddress edge_address;  // the edge's WireGuard address (tunnel_over_wireguard dials it)
  bool persist = false;
};

// A client listener's view of what sits in front of it (issue 9): a load
// balancer that sends the PROXY protocol, and the proxies whose word about the
// client (PROXY header, X-Forwarded-For) is believed.
struct ListenerTrust {
  bool proxy_protocol = false;             // accept a PROXY v1/v2 header from trusted peers
  std::vector<CidrRange> trusted_proxies;  // default: [edge] trusted_proxies
  bool trusts(const std::array<std::uint8_t, 16>& address) const {
    for (const auto& range : trusted_proxies) {
      if (range.contains(address)) return true;
    }
    return false;
  }
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
  std::optional<AcmeConfig> acme;               // [acme]

  // [edge] tuning keys, all optional. Defaults follow nginx/HAProxy habits.
  unsigned workers = 0;                                          // 0: one per core
  Duration handshake_timeout = std::chrono::seconds(10);         // TLS handshake (clients, origins)
  Duration header_timeout = std::chrono::seconds(30);            // reading one request head
  Duration idle_timeout = std::chrono::seconds(75);              // keep-alive idle, body stalls
  Duration websocket_idle_timeout = std::chrono::hours(24 * 7);  // upgraded streams
  Duration drain_timeout = std::chrono::seconds(30);
  Duration keepalive_interval = std::chrono::seconds(10);  // tunnel pings
  Duration keepalive_timeout = std::chrono::seconds(30);   // tunnel silent -> dead
  std::uint64_t max_body_size = 100ull * 1024 * 1024;      // 0: unlimited
  std::uint32_t max_header_size = 32 * 1024;
  std::uint32_t max_connections = 20000;  // concurrent client connections

  // HTTP/2 front end (issue 8). The header-list limit is max_header_size.
  bool http2 = true;                                      // ALPN h2 + http/1.1; false: http/1.1
  std::uint32_t h2_max_concurrent_streams = 128;          // SETTINGS_MAX_CONCURRENT_STREAMS
  std::uint32_t h2_initial_window_size = 256 * 1024;      // per-stream receive window
  std::uint32_t h2_connection_window_size = 1024 * 1024;  // whole-connection receive window
  // HTTP/1.1 hardening (issue 8).
  std::uint64_t max_uri_size = 8 * 1024;  // request-target; 414 above it
  // Query parameter names (lower case) whose values the access log redacts.
  // clang-format off
  std::vector<std::string> log_redact_params = {
      "token", "access_token", "refresh_token", "id_token", "key", "api_key", "apikey",
      "password", "passwd", "secret", "client_secret", "sig", "signature", "code",
      "x-amz-signature", "x-amz-credential", "x-goog-signature", "auth"};
  // clang-format on
  // Running as a service (issue 13): the access log, and the admin token.
  bool access_log = true;                  // one "request" line per request
  double access_log_sample = 1.0;          // fraction of request lines kept (5xx always)
  std::filesystem::path admin_token_file;  // required when listen_admin is not loopback
  std::string admin_token;                 // its contents, whitespace trimmed
  std::optional<EdgeWireguard> wireguard;  // [wireguard] (issue 10)
  // Policies (issue 9): [policy] applies where no [[policies]] entry matches;
  // each [[policies]] entry is a copy of it with its own keys on top.
  std::optional<Policy> default_policy;
  std::vector<Policy> policies;
  // Connection limits at accept ([edge] keys, issue 9); max_connections above is the global cap.
  std::uint32_t max_connections_per_ip = 256;       // concurrent, per IP (IPv6: per /64)
  std::optional<RateLimit> connection_rate_per_ip;  // new connections per IP; none: no limit
  std::optional<RateLimit> max_connection_rate;     // new connections, all clients
  std::uint32_t max_tracked_clients = 65536;        // bound of the accept-time table
  // TLS policy (issue 9): Mozilla server-side TLS 5.7 "intermediate" (TLS 1.2 + 1.3,
  // AEAD only) or "modern" (TLS 1.3 only); stateless session tickets off by default.
  enum class TlsPolicy { intermediate, modern };
  TlsPolicy tls_policy = TlsPolicy::intermediate;
  bool session_tickets = false;  // true: tickets, keys replaced at least every 24 h
  // Client identity (issue 9): `listen_https = { address = ..., proxy_protocol = true }`
  // (or [edge] proxy_protocol for both), [edge] trusted_proxies or per listener.
  ListenerTrust https_trust;
  ListenerTrust http_trust;
};

// [[routes]] in origin.toml.
struct Route {
  std::string host;        // lower case; exact or "*.suffix"
  std::string path = "/";  // prefix, starts with '/'
  ServiceUrl service;
  bool tls_verify = false;  // for https services: verify the local service's certificate

  // Local service health check (issue 13), all optional. The origin probes the
  // service and tells the edge, which answers 503 itself while it fails.
  std::string health_check;  // "": none; "tcp": connect only; "/path": HTTP GET, 2xx/3xx pass
  Duration health_interval = std::chrono::seconds(5);
  Duration health_timeout = std::chrono::seconds(2);
  unsigned health_rise = 2;  // consecutive passes to become healthy
  unsigned health_fall = 3;  // consecutive failures to become unhealthy
  int proxy_protocol = 0;    // issue 9: 1 or 2 = send a PROXY v1/v2 header to the service first
};

struct OriginConfig {
  std::filesystem::path source;

  std::string name;
  Endpoint edge;
  std::string edge_pin;                  // "sha256:<base64>"
  std::string key_pem;                   // loaded from key_file, or inline `key`
  std::filesystem::path key_file;        // empty when the key was inline
  unsigned connections = 2;              // parallel tunnel connections
  std::optional<Endpoint> listen_admin;  // optional admin listener
  std::vector<Route> routes;

  unsigned workers = 0;                                 // 0: one per core
  Duration connect_timeout = std::chrono::seconds(10);  // dial + TLS handshake to the edge
  Duration service_connect_timeout = std::chrono::seconds(5);
  Duration idle_timeout = std::chrono::seconds(75);
  Duration websocket_idle_timeout = std::chrono::hours(24 * 7);
  Duration drain_timeout = std::chrono::seconds(30);
  Duration keepalive_interval = std::chrono::seconds(10);
  Duration keepalive_timeout = std::chrono::seconds(30);
  Duration reconnect_min = std::chrono::milliseconds(100);
  Duration reconnect_max = std::chrono::seconds(30);

  // Running as a service (issue 13): the admin token.
  std::filesystem::path admin_token_file;  // required when listen_admin is not loopback
  std::string admin_token;                 // its contents, whitespace trimmed
  // WireGuard link (issue 10).
  bool tunnel_over_wireguard = false;        // [origin] key: dial the edge over the link
  std::optional<OriginWireguard> wireguard;  // [wireguard]
};

}  // namespace hearth::config
