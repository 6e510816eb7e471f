#include "hearth/edge/metrics.hpp"

#include <chrono>
#include <cstdio>

#include "hearth/common/process_metrics.hpp"
#include "hearth/edge/registry.hpp"

namespace hearth::edge {
namespace {

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

tunnel::RouteHealth route_health(const TunnelInfo& t, const tunnel::RouteAdvert& r) {
  for (std::size_t i = 0; i < t.routes.size() && i < t.health.size(); ++i) {
    if (t.routes[i] == r) return t.health[i];
  }
  return tunnel::RouteHealth::unknown;
}

}  // namespace

std::string Metrics::prometheus(const Registry& registry) const {
  auto snap = registry.snapshot();
  std::size_t streams = 0;
  for (const auto& t : snap->tunnels) streams += t->conn->active_streams();
  std::string out;
  out.reserve(2048);
  out += "# HELP hearth_tunnel_connections Live tunnel connections from origins.\n";
  out += "# TYPE hearth_tunnel_connections gauge\n";
  out += "hearth_tunnel_connections " + std::to_string(snap->tunnels.size()) + "\n";
  out += "# HELP hearth_streams_active Streams open over all tunnels.\n";
  out += "# TYPE hearth_streams_active gauge\n";
  out += "hearth_streams_active " + std::to_string(streams) + "\n";
  out += "# HELP hearth_http_requests_total Requests answered, by status code.\n";
  out += "# TYPE hearth_http_requests_total counter\n";
  for (std::size_t code = 100; code < requests_by_code.size(); ++code) {
    auto n = requests_by_code[code].load(std::memory_order_relaxed);
    if (n == 0) continue;
    out += "hearth_http_requests_total{code=\"" + std::to_string(code) + "\"} " +
           std::to_string(n) + "\n";
  }
  out += "# HELP hearth_bytes_total Body bytes relayed for clients.\n";
  out += "# TYPE hearth_bytes_total counter\n";
  out += "hearth_bytes_total{direction=\"in\"} " + std::to_string(bytes_from_clients.load()) + "\n";
  out += "hearth_bytes_total{direction=\"out\"} " + std::to_string(bytes_to_clients.load()) + "\n";
  out += "# HELP hearth_client_connections Open client connections (HTTPS).\n";
  out += "# TYPE hearth_client_connections gauge\n";
  out += "hearth_client_connections " + std::to_string(client_connections.load()) + "\n";
  out += "# HELP hearth_requests_in_flight Requests being answered now.\n";
  out += "# TYPE hearth_requests_in_flight gauge\n";
  out += "hearth_requests_in_flight " + std::to_string(requests_in_flight.load()) + "\n";
  out += "# HELP hearth_websockets_active Upgraded (WebSocket) connections open now.\n";
  out += "# TYPE hearth_websockets_active gauge\n";
  out += "hearth_websockets_active " + std::to_string(websockets_active.load()) + "\n";
  out += "# HELP hearth_tunnel_streams_opened_total Tunnel streams opened for client requests.\n";
  out += "# TYPE hearth_tunnel_streams_opened_total counter\n";
  out +=
      "hearth_tunnel_streams_opened_total " + std::to_string(tunnel_streams_opened.load()) + "\n";
  out += "# HELP hearth_h2_connections Open client connections speaking HTTP/2.\n";
  out += "# TYPE hearth_h2_connections gauge\n";
  out += "hearth_h2_connections " + std::to_string(h2_connections.load()) + "\n";
  out +=
      "# HELP hearth_tunnels_refused_total Tunnel handshakes refused (key, name, hostnames, "
      "TLS).\n";
  out += "# TYPE hearth_tunnels_refused_total counter\n";
  out += "hearth_tunnels_refused_total " + std::to_string(tunnels_refused.load()) + "\n";
  out +=
      "# HELP hearth_connections_rejected_total Client connections closed at accept: over "
      "max_connections.\n";
  out += "# TYPE hearth_connections_rejected_total counter\n";
  out += "hearth_connections_rejected_total " + std::to_string(connections_rejected.load()) + "\n";
  out +=
      "# HELP hearth_proxy_protocol_refused_total Client connections closed for their PROXY "
      "header: from a peer not in trusted_proxies, malformed, or not in time.\n";
  out += "# TYPE hearth_proxy_protocol_refused_total counter\n";
  out +=
      "hearth_proxy_protocol_refused_total " + std::to_string(proxy_headers_refused.load()) + "\n";
  out += registry.prometheus();  // publish and health families (issue 13)
  // Issue 13: per-tunnel RTT and uptime, per-host requests, process metrics.
  auto now = std::chrono::system_clock::now();
  out +=
      "# HELP hearth_tunnel_rtt_seconds Round-trip time of the last keepalive ping, per tunnel.\n";
  out += "# TYPE hearth_tunnel_rtt_seconds gauge\n";
  for (const auto& t : snap->tunnels) {
    char v[32];
    std::snprintf(v, sizeof v, "%.6f", static_cast<double>(t->conn->rtt_us()) / 1e6);
    out += "hearth_tunnel_rtt_seconds{origin=" + json_escape(t->origin) + ",tunnel=\"t" +
           std::to_string(t->id) + "\"} " + v + "\n";
  }
  out += "# HELP hearth_tunnel_uptime_seconds Seconds since the tunnel connection came up.\n";
  out += "# TYPE hearth_tunnel_uptime_seconds gauge\n";
  for (const auto& t : snap->tunnels) {
    auto up = std::chrono::duration_cast<std::chrono::seconds>(now - t->since).count();
    out += "hearth_tunnel_uptime_seconds{origin=" + json_escape(t->origin) + ",tunnel=\"t" +
           std::to_string(t->id) + "\"} " + std::to_string(up) + "\n";
  }
  request_stats.render(out);
  append_process_metrics(out);
  // Issue 9: connection limits at accept.
  static constexpr const char* kRefusedReasons[] = {"",
                                                    "max_connections",
                                                    "max_connection_rate",
                                                    "max_connections_per_ip",
                                                    "connection_rate_per_ip",
                                                    "table_full"};
  out += "# HELP hearth_connections_refused_total Client connections closed at accept, by limit.\n";
  out += "# TYPE hearth_connections_refused_total counter\n";
  for (std::size_t i = 1; i < connections_refused.size(); ++i) {
    out += std::string("hearth_connections_refused_total{reason=\"") + kRefusedReasons[i] + "\"} " +
           std::to_string(connections_refused[i].load()) + "\n";
  }
  out += "# HELP hearth_connection_table_entries Client IPs (/64) tracked at accept.\n";
  out += "# TYPE hearth_connection_table_entries gauge\n";
  out +=
      "hearth_connection_table_entries " + std::to_string(connection_table_entries.load()) + "\n";
  return out;
}

std::string Metrics::status_json(const Registry& registry, bool draining,
                                 std::string_view extra_fields) const {
  auto snap = registry.snapshot();
  std::string out = "{\"draining\":";
  out += draining ? "true" : "false";
  out += ",\"client_connections\":" + std::to_string(client_connections.load());
  out += ",\"requests_in_flight\":" + std::to_string(requests_in_flight.load());
  out += ",\"websockets_active\":" + std::to_string(websockets_active.load());
  out += ",\"bytes\":{\"in\":" + std::to_string(bytes_from_clients.load()) +
         ",\"out\":" + std::to_string(bytes_to_clients.load()) + "}";
  out += ",\"tunnels\":[";
  bool first = true;
  auto now = std::chrono::system_clock::now();
  for (const auto& t : snap->tunnels) {
    if (!first) out += ',';
    first = false;
    out +=
        "{\"id\":" + std::to_string(t->id) + ",\"origin\":" + json_escape(t->origin) +
        ",\"peer\":" + json_escape(t->peer) +
        ",\"connection_index\":" + std::to_string(t->connection_index) +
        ",\"version\":" + std::to_string(t->version) +
        ",\"usable\":" + (t->conn->usable() ? "true" : "false") +
        ",\"streams\":" + std::to_string(t->conn->active_streams()) +
        ",\"rtt_us\":" + std::to_string(t->conn->rtt_us()) +
        ",\"bytes_in\":" + std::to_string(t->conn->bytes_in()) +
        ",\"bytes_out\":" + std::to_string(t->conn->bytes_out()) + ",\"uptime_s\":" +
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - t->since).count()) +
        ",\"routes\":[";
    bool rf = true;
    for (const auto& r : t->routes) {
      if (!rf) out += ',';
      rf = false;
      out += "{\"host\":" + json_escape(r.host) + ",\"path\":" + json_escape(r.path) +
             ",\"health\":" + json_escape(tunnel::to_string(route_health(*t, r))) + "}";
    }
    out += "],\"refused\":[";
    for (std::size_t i = 0; i < t->refused.size(); ++i) {
      const auto& r = t->refused[i];
      out += (i ? "," : "") + std::string("{\"host\":") + json_escape(r.host) +
             ",\"path\":" + json_escape(r.path) + ",\"reason\":" + json_escape(r.reason) + "}";
    }
    out += "]}";
  }
  out += "]";
  out += extra_fields;
  out += "}\n";
  return out;
}

}  // namespace hearth::edge
