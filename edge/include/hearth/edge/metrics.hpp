#pragma once
// Counters for /metrics and /status. Plain atomics: workers bump them without locks.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "hearth/edge/request_stats.hpp"

namespace hearth::edge {

class Registry;

struct Metrics {
  std::array<std::atomic<std::uint64_t>, 600> requests_by_code{};
  std::atomic<std::uint64_t> bytes_from_clients{0};
  std::atomic<std::uint64_t> bytes_to_clients{0};
  std::atomic<std::int64_t> client_connections{0};
  std::atomic<std::int64_t> requests_in_flight{0};
  std::atomic<std::int64_t> websockets_active{0};
  std::atomic<std::uint64_t> tunnels_refused{0};
  std::atomic<std::uint64_t> connections_rejected{0};  // refused at accept (any reason)
  // Issue 9: PROXY headers refused: from an untrusted peer, malformed, or late.
  std::atomic<std::uint64_t> proxy_headers_refused{0};
  std::atomic<std::int64_t> h2_connections{0};          // open HTTP/2 client connections
  std::atomic<std::uint64_t> tunnel_streams_opened{0};  // by client exchanges (both protocols)
  RequestStats request_stats;                           // per-host durations and bytes (issue 13)
  // Issue 9: refusals at accept by reason (AcceptVerdict order, [0] unused), and
  // the size of the accept-time per-IP table.
  std::array<std::atomic<std::uint64_t>, 6> connections_refused{};
  std::atomic<std::int64_t> connection_table_entries{0};

  void count_request(unsigned code) {
    if (code < requests_by_code.size())
      requests_by_code[code].fetch_add(1, std::memory_order_relaxed);
  }
  std::string prometheus(const Registry& registry) const;
  // extra_fields: more ",\"key\":value" members for the top-level object (WireGuard).
  std::string status_json(const Registry& registry, bool draining,
                          std::string_view extra_fields = {}) const;
};

}  // namespace hearth::edge
