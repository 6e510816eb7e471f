#pragma once
// Connection limits at accept (issue 9), before the TLS handshake spends any
// CPU: per client IP (IPv6 per /64) a cap on concurrent connections and a
// token bucket for new connections, plus global caps. Pure and single-threaded:
// the edge keeps one ConnectionLimiter on its control thread, where the
// acceptors run; a closing connection's release() is posted there.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "hearth/config/policy.hpp"
#include "hearth/edge/policy.hpp"

namespace hearth::edge {

struct ConnectionLimits {
  std::uint32_t max_connections = 20000;         // all clients together
  std::uint32_t max_connections_per_ip = 256;    // concurrent, per IP (/64)
  std::optional<config::RateLimit> rate_per_ip;  // new connections per IP
  std::optional<config::RateLimit> rate_global;  // new connections, all clients
  std::size_t max_tracked = 65536;               // table bound (entries)
};

enum class AcceptVerdict {
  accept,
  global_concurrent,  // max_connections reached
  global_rate,        // max_connection_rate
  per_ip_concurrent,  // max_connections_per_ip
  per_ip_rate,        // connection_rate_per_ip
  table_full,         // max_tracked distinct IPs hold connections or recent tokens
};
inline constexpr std::size_t kAcceptVerdicts = 6;
std::string_view to_string(AcceptVerdict v);

class ConnectionLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  struct Hash {
    std::size_t operator()(const policy::ClientKey& k) const noexcept;
  };
  explicit ConnectionLimiter(ConnectionLimits limits = {}) : limits_(limits) {}

  // A reload may change the limits; counts are kept.
  void set_limits(const ConnectionLimits& limits) { limits_ = limits; }

  // On accept: when the verdict is `accept` the connection is counted until
  // release(key).
  AcceptVerdict admit(const policy::ClientKey& key, Clock::time_point now);
  void release(const policy::ClientKey& key, Clock::time_point now);

  std::size_t tracked() const { return table_.size(); }
  std::uint64_t concurrent() const { return total_; }

 private:
  struct Entry {
    std::uint32_t connections = 0;
    double tokens = 0;
    Clock::time_point last;
  };
  bool idle(const Entry& e, Clock::time_point now) const;
  void refill(Entry& e, const config::RateLimit& limit, Clock::time_point now) const;
  void sweep(Clock::time_point now);

  ConnectionLimits limits_;
  std::unordered_map<policy::ClientKey, Entry, Hash> table_;
  std::uint64_t total_ = 0;
  double global_tokens_ = -1;  // < 0: not started
  Clock::time_point global_last_;
  Clock::time_point last_sweep_{};
};

}  // namespace hearth::edge
