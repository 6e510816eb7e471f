#include "hearth/tunnel/errors.hpp"

namespace hearth::tunnel {
namespace {

class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "hearth.tunnel"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::stream_reset:
        return "stream reset by peer";
      case Errc::connection_lost:
        return "tunnel connection lost";
      case Errc::protocol_error:
        return "tunnel protocol error";
      case Errc::timeout:
        return "timed out";
      case Errc::refused:
        return "service refused the connection";
      case Errc::no_route:
        return "no route for this host and path";
      case Errc::unreachable:
        return "service unreachable";
      case Errc::draining:
        return "tunnel is draining";
      case Errc::rejected:
        return "refused by the edge";
      case Errc::pin_mismatch:
        return "edge key does not match edge_pin";
    }
    return "unknown tunnel error";
  }
};

}  // namespace

const boost::system::error_category& category() {
  static const Category c;
  return c;
}

boost::system::error_code error_for(ResetCode code) {
  switch (code) {
    case ResetCode::refused:
      return Errc::refused;
    case ResetCode::no_route:
      return Errc::no_route;
    case ResetCode::unreachable:
      return Errc::unreachable;
    case ResetCode::timeout:
      return Errc::timeout;
    case ResetCode::draining:
      return Errc::draining;
    case ResetCode::protocol:
      return Errc::protocol_error;
    default:
      return Errc::stream_reset;
  }
}

}  // namespace hearth::tunnel
