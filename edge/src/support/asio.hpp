#pragma once
// The few Asio/Beast helpers every edge session file used to repeat: the
// as_tuple completion token, the "quiet close" test for client errors and
// the co_spawn completion handler that logs an escaped exception.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <exception>

#include "hearth/common/log.hpp"

namespace hearth::edge {

namespace asio = boost::asio;
using boost::system::error_code;

inline constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// stream_truncated: the client closed TCP without a TLS close_notify, which
// browsers do all the time; treat it like EOF, not as an attack.
inline bool is_quiet_close(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
         ec == boost::beast::error::timeout || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == boost::beast::http::error::end_of_stream;
}

// Completion handler for co_spawn: a session never dies silently.
inline void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log::error("session.bug", {{"what", ex.what()}});
  }
}

}  // namespace hearth::edge
