#pragma once
// Local service health checks (issue 13). For each route with a
// `health_check`, the origin probes its service every `health_interval`
// (bounded by `health_timeout`): "tcp" passes when the connection opens; a
// path passes on an HTTP 2xx or 3xx answer to GET. `health_rise` passes in a
// row make the route healthy, `health_fall` failures unhealthy. Every change
// is published to the edge (PUBLISH), which answers 503 itself for an
// unhealthy route, or uses a healthy replica.

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/config/config.hpp"
#include "hearth/tunnel/frame.hpp"

namespace hearth::origin {

// Consecutive pass/fail counting. Starts unknown (served, as if healthy).
class HealthState {
 public:
  HealthState(unsigned rise, unsigned fall) : rise_(rise ? rise : 1), fall_(fall ? fall : 1) {}
  // Records one probe; true when the state changed.
  bool record(bool passed);
  tunnel::RouteHealth state() const { return state_; }

 private:
  unsigned rise_, fall_;
  unsigned passes_ = 0, fails_ = 0;
  tunnel::RouteHealth state_ = tunnel::RouteHealth::unknown;
};

// An HTTP health check passes on 2xx and 3xx.
inline bool health_status_passes(unsigned status) { return status >= 200 && status < 400; }

class HealthMonitor {
 public:
  // on_change runs on `ex` after a route's state changed.
  HealthMonitor(boost::asio::any_io_executor ex, std::function<void()> on_change);
  ~HealthMonitor();
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // Starts a probe per route with a health_check; stops the others. A check
  // that did not change (same host, path, service and keys) keeps its state.
  // Call on `ex`.
  void configure(const std::vector<config::Route>& routes);
  void stop();

  // Call on `ex`. unknown for a route without a check.
  tunnel::RouteHealth health(std::string_view host, std::string_view path) const;

  struct Entry {
    std::string host, path, check;
    tunnel::RouteHealth health = tunnel::RouteHealth::unknown;
    std::string last_error;  // of the last failed probe
  };
  std::vector<Entry> entries() const;  // call on `ex`

  struct Probe;  // internal

 private:
  boost::asio::any_io_executor ex_;
  std::shared_ptr<std::function<void()>> on_change_;
  std::vector<std::shared_ptr<Probe>> probes_;  // touched on ex_ only
};

}  // namespace hearth::origin
