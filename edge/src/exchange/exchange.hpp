#pragma once
// One request, whichever protocol carried it (see downstream.hpp): request
// checks, route pick, the tunnel stream (kept from the previous exchange or
// new), retry rules, interim and 101 responses, the response relay with
// backpressure (one read in flight per direction, the next only after the
// opposite write completed), local error replies, the access-log line and
// metrics. The config snapshot is taken here, per exchange.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "exchange/downstream.hpp"
#include "hearth/edge/registry.hpp"
#include "hearth/tunnel/mux.hpp"

namespace hearth::edge {

class EdgeShared;

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
