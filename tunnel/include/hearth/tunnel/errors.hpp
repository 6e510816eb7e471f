#pragma once
#include <boost/system/error_code.hpp>

#include "hearth/tunnel/frame.hpp"

namespace hearth::tunnel {

enum class Errc {
  stream_reset = 1,  // the peer reset the stream (cancel, protocol, internal)
  connection_lost,   // the tunnel connection closed under the stream
  protocol_error,    // the peer broke the framing rules
  timeout,           // a deadline passed
  refused,           // the home service refused the connection
  no_route,          // the origin has no route for the host/path
  unreachable,       // the home service could not be reached
  draining,          // the tunnel is going away; retry elsewhere
  rejected,          // the edge refused the origin (key, name, hostnames)
  pin_mismatch,      // the edge's key does not match edge_pin
};

const boost::system::error_category& category();
inline boost::system::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}
boost::system::error_code error_for(ResetCode code);

}  // namespace hearth::tunnel

namespace boost::system {
template <>
struct is_error_code_enum<hearth::tunnel::Errc> : std::true_type {};
}  // namespace boost::system
