// Health check state machine (issue 13): rise passes to healthy, fall failures
// to unhealthy, a single flap changes nothing.
#include "hearth/origin/health.hpp"

#include <catch2/catch.hpp>

using hearth::origin::HealthState;
using hearth::tunnel::RouteHealth;

TEST_CASE("HealthState counts consecutive passes and failures", "[health]") {
  HealthState s(2, 3);
  CHECK(s.state() == RouteHealth::unknown);
  CHECK_FALSE(s.record(true));
  CHECK(s.record(true));  // second pass in a row: healthy
  CHECK(s.state() == RouteHealth::healthy);
  CHECK_FALSE(s.record(false));
  CHECK_FALSE(s.record(false));
  CHECK_FALSE(s.record(true));  // a pass resets the failure count
  CHECK_FALSE(s.record(false));
  CHECK_FALSE(s.record(false));
  CHECK(s.record(false));  // third failure in a row
  CHECK(s.state() == RouteHealth::unhealthy);
  CHECK_FALSE(s.record(true));
  CHECK(s.record(true));
  CHECK(s.state() == RouteHealth::healthy);
}

TEST_CASE("HealthState from unknown straight to unhealthy", "[health]") {
  HealthState s(2, 3);
  s.record(false);
  s.record(false);
  CHECK(s.state() == RouteHealth::unknown);
  CHECK(s.record(false));
  CHECK(s.state() == RouteHealth::unhealthy);
  CHECK(hearth::origin::health_status_passes(204));
  CHECK(hearth::origin::health_status_passes(302));
  CHECK_FALSE(hearth::origin::health_status_passes(404));
  CHECK_FALSE(hearth::origin::health_status_passes(503));
}
