#pragma once
// One request, whichever protocol carried it (see downstream.hpp): request
// checks, route pick, the tunnel stream (kept from the previous exchange or
// new), retry rules, interim and 101 responses, the response relay with
// backpressure (one read in flight per direction, the next only after the
// opposite write completed), local error replies, the access-log line and
// metrics. The config snapshot is taken here, per exchange.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exchange/downstream.hpp"
#include "hearth/edge/registry.hpp"
#include "hearth/tunnel/mux.hpp"

namespace hearth::edge {

class EdgeShared;
struct Metrics;

// One line of the access log (and the request metrics), as views: the
// exchange fills it from its own strings, an upgraded pipe from its copies.
struct AccessLine {
  std::chrono::steady_clock::time_point started;
  std::uint64_t conn_id = 0;
  std::string_view client_ip;
  std::string_view proto;
  std::string_view method;
  std::string_view authority;
  std::string_view target;  // origin-form, as the client sent it
  std::string_view request_id;
  std::string_view origin;
  std::string_view reason;
  unsigned status = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
};
void log_access(Metrics& m, const config::EdgeConfig& cfg, const AccessLine& line);

// An HTTP/1.1 upgrade after its 101 went out. The exchange hands the tunnel
// stream to the front end, which splices it to the client socket once the
// request's coroutine frames, parser and buffers are gone: an idle WebSocket
// then holds little more than its sockets (issue 11).
struct UpgradedPipe {
  tunnel::TunnelStream stream;
  std::string from_service;                       // bytes the service sent right behind its 101
  std::string from_client;                        // bytes the client sent right behind its request
  std::chrono::milliseconds idle_timeout{};       // websocket_idle_timeout, or the policy's
  std::shared_ptr<const config::EdgeConfig> cfg;  // the exchange's snapshot, for the log
  // The access-log line written when the pipe ends (AccessLine's strings).
  std::chrono::steady_clock::time_point started;
  std::uint64_t conn_id = 0;
  std::string client_ip, method, authority, target, request_id, origin;
  unsigned status = 101;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
};

// A tunnel stream and what it was opened for. Between exchanges it stays open
// (parked) for the next request to the same route, so the origin keeps one
// service connection per slot (HTTP/1.1: one per client connection; HTTP/2:
// a small pool per connection).
struct UpstreamSlot {
  // The tunnel-side buffer is bounded (a service streaming an endless chunk
  // extension gets the client a 502 instead of growing memory).
  UpstreamSlot();

  std::optional<tunnel::TunnelStream> stream;
  std::shared_ptr<const TunnelInfo> tunnel;
  std::shared_ptr<const RouteGroup> group;
  // tunnel -> edge; bounded (a response head is at most 64 KiB, body reads
  // ask for 64 KiB): a service's endless chunk line cannot grow it.
  boost::beast::flat_buffer buf{192 * 1024};
  // Set when the exchange handed its upgraded stream over (Downstream::hands_off_upgrade).
  std::unique_ptr<UpgradedPipe> upgraded;

  bool parked() const { return stream.has_value(); }
  void clear() {
    stream.reset();
    tunnel.reset();
    group.reset();
  }
};

struct ExchangeEnv {
  std::shared_ptr<EdgeShared> shared;
  std::uint64_t conn_id = 0;
  std::string client_ip;
  // DNS names the certificate on this connection covers; when set, a request
  // for another authority gets 421 (HTTP/2 coalesces connections across them).
  std::shared_ptr<const std::vector<std::string>> cert_names;
  std::uint16_t client_port = 0;  // travels in the OPEN frame (PROXY protocol to the service)
  // client_ip is one of the listener's trusted_proxies (issue 9): its
  // X-Forwarded-For names the client.
  bool peer_trusted = false;
};

// Runs one exchange to its end. True when the client connection may carry
// another request (HTTP/1.1 keep-alive); the HTTP/2 front end ignores it.
boost::asio::awaitable<bool> run_exchange(ExchangeEnv env, Downstream& down, UpstreamSlot& slot);

}  // namespace hearth::edge
