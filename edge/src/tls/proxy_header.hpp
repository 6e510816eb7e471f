#pragma once
// Reading a PROXY protocol header (v1 or v2) off a freshly accepted client
// socket, before TLS or HTTP sees a byte (issue 9). The bytes are peeked, and
// only the header's own bytes are consumed, so whatever follows (a TLS
// ClientHello, an HTTP request) stays in the kernel for the next reader.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "hearth/common/proxy_protocol.hpp"

namespace hearth::edge {

// Who a client connection is from: the TCP peer, or the client a trusted
// load balancer's PROXY header named.
struct ClientPeer {
  std::string ip;  // client_ip_string()
  std::uint16_t port = 0;
  bool trusted = false;              // ip is one of the listener's trusted_proxies
  bool refuse_proxy_header = false;  // the listener takes PROXY, but not from this peer
  // The client's place in the connection limits: given back when the last
  // holder lets go (the session, or an upgraded pipe that outlives it).
  std::shared_ptr<void> admission;
};

struct ProxyRead {
  enum class Result {
    header,   // `header` parsed and consumed
    absent,   // the connection does not start with a PROXY signature; nothing consumed
    refused,  // malformed, too long, closed or timed out: close the connection (`error`)
  };
  Result result = Result::refused;
  bool signature = false;  // the bytes began with a PROXY signature
  proxy_protocol::Header header;
  std::string error;
};

// Waits at most `timeout` for the header. `sock` belongs to the caller, which
// awaits this directly.
boost::asio::awaitable<ProxyRead> read_proxy_header(boost::asio::ip::tcp::socket& sock,
                                                    std::chrono::steady_clock::duration timeout);

struct EdgeShared;

// Counts a connection closed for its PROXY header and logs it, at most once a
// second per thread (with how many were refused since the last line).
void note_proxy_refused(EdgeShared& shared, const std::string& peer, const std::string& error);

// For a listener with proxy_protocol and a peer that is not trusted: false
// (after counting and, at most once a second per thread, logging it) when the
// connection starts with a PROXY header, which then must be closed.
boost::asio::awaitable<bool> no_proxy_header(EdgeShared& shared, boost::asio::ip::tcp::socket& sock,
                                             const ClientPeer& peer,
                                             std::chrono::steady_clock::duration timeout);

}  // namespace hearth::edge
