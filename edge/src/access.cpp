#include "access.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <cstdint>

#include "hearth/common/log.hpp"
#include "hearth/tunnel/errors.hpp"

namespace hearth::edge {

namespace {

// xorshift64*, one per thread: sampling needs no lock and no shared state.
double next_uniform() {
  thread_local std::uint64_t state =
      0x9E3779B97F4A7C15ull ^ reinterpret_cast<std::uintptr_t>(&state);
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return static_cast<double>((state * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

bool client_went_away(const boost::system::error_code& ec) {
  namespace asio = boost::asio;
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
         ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
         ec == boost::beast::http::error::end_of_stream || ec == asio::error::broken_pipe;
}

}  // namespace

bool access_log_wanted(const config::EdgeConfig& cfg, unsigned status) {
  if (!cfg.access_log || !log::enabled(log::Level::info)) return false;
  if (cfg.access_log_sample >= 1.0 || status >= 500) return true;
  return next_uniform() < cfg.access_log_sample;
}

std::string_view failure_cause(const boost::system::error_code& upstream,
                               const boost::system::error_code& client, bool timed_out) {
  using tunnel::Errc;
  if (timed_out) return "timeout";
  if (upstream) {
    if (upstream == Errc::connection_lost) return "tunnel_lost";
    if (upstream == Errc::draining) return "origin_draining";
    if (upstream == Errc::no_route) return "no_route";
    if (upstream == Errc::refused) return "service_refused";
    if (upstream == Errc::unreachable) return "service_unreachable";
    if (upstream == Errc::timeout) return "timeout";
    if (upstream == Errc::stream_reset) return "stream_reset";
    return "upstream_error";
  }
  if (client) return client_went_away(client) ? "client_closed" : "client_error";
  return "upstream_error";
}

void log_proxy_failed(std::uint64_t conn, std::string_view request_id, std::string_view origin,
                      const boost::system::error_code& upstream,
                      const boost::system::error_code& client, bool timed_out) {
  const std::string_view cause = failure_cause(upstream, client, timed_out);
  const bool client_side = cause == "client_closed" || cause == "client_error";
  const log::Level level = client_side ? log::Level::info : log::Level::warn;
  if (!log::enabled(level)) return;
  if (upstream && client) {
    log::write(level, "proxy.failed",
               {{"conn", conn},
                {"request_id", request_id},
                {"origin", origin},
                {"cause", cause},
                {"upstream", upstream.message()},
                {"client", client.message()}});
  } else if (upstream) {
    log::write(level, "proxy.failed",
               {{"conn", conn},
                {"request_id", request_id},
                {"origin", origin},
                {"cause", cause},
                {"upstream", upstream.message()}});
  } else if (client) {
    log::write(level, "proxy.failed",
               {{"conn", conn},
                {"request_id", request_id},
                {"origin", origin},
                {"cause", cause},
                {"client", client.message()}});
  } else {
    log::write(level, "proxy.failed",
               {{"conn", conn}, {"request_id", request_id}, {"origin", origin}, {"cause", cause}});
  }
}

}  // namespace hearth::edge
