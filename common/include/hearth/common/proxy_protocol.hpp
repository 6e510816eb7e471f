#pragma once
// The PROXY protocol (HAProxy, versions 1 and 2): a load balancer in front of
// the edge tells the client's address with a header before the first TLS
// byte; the origin tells a service the same way. Pure codec over bytes, for
// unit tests and libFuzzer (issue 9). Spec: haproxy.org/download/2.9/doc/proxy-protocol.txt

#include <boost/asio/ip/address.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hearth::proxy_protocol {

struct Endpoint {
  boost::asio::ip::address address;
  std::uint16_t port = 0;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

struct Header {
  int version = 0;  // 1 or 2
  // v1 "UNKNOWN" or v2 LOCAL (a health check from the balancer itself), or a
  // v2 family other than TCP over IPv4/IPv6: no addresses, use the peer's.
  bool local = false;
  Endpoint source;       // the client
  Endpoint destination;  // the address the client connected to
};

enum class Status {
  complete,   // header parsed; `consumed` bytes belong to it (TLVs included)
  need_more,  // a valid prefix: read more (bounded by kMaxHeaderSize)
  invalid,    // a PROXY signature with a malformed header: close the connection
  absent,     // the bytes do not start with a PROXY signature
};

struct Parsed {
  Status status = Status::need_more;
  Header header;
  std::size_t consumed = 0;
  std::string error;  // for invalid: why (short, for the log)
};

// v1 is at most 107 bytes; v2 headers above this (TLVs) are refused.
inline constexpr std::size_t kMaxHeaderSize = 4096;

// Parses the start of a connection's bytes.
Parsed parse(std::string_view data);

// "PROXY TCP4 src dst sport dport\r\n" (TCP6 for IPv6; an IPv4-mapped address
// is written as IPv4 when both ends are IPv4 or mapped).
std::string encode_v1(const Endpoint& source, const Endpoint& destination);
// The 16-byte v2 preamble + addresses, command PROXY, TCP over IPv4 or IPv6
// (IPv6 when either end is IPv6 and not IPv4-mapped), no TLVs.
std::string encode_v2(const Endpoint& source, const Endpoint& destination);

// The OPEN frame's client field: "address" or "address port" (issue 9). The
// header an origin sends a service for it, `destination` being the service's
// address: v1 "UNKNOWN" / v2 LOCAL when the field names no address and port.
std::optional<Endpoint> parse_client_field(std::string_view field);
std::string header_for_client(int version, std::string_view client_field,
                              const Endpoint& destination);

}  // namespace hearth::proxy_protocol
