#pragma once
// systemd's service notification protocol, spoken directly (as HAProxy's
// src/systemd.c does): one datagram of "KEY=VALUE\n" lines to the unix socket
// named by $NOTIFY_SOCKET (a leading '@' means the abstract namespace). No
// libsystemd: the protocol is a dozen lines and stable since systemd 209.
//
// Under Type=notify the service manager waits for READY=1; RELOADING=1 (with
// MONOTONIC_USEC=, which systemd 253+ wants for Type=notify-reload) and
// READY=1 bracket a reload; STOPPING=1 starts a stop; STATUS= is shown by
// `systemctl status`; WATCHDOG=1 feeds WatchdogSec=.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::sd {

// True when $NOTIFY_SOCKET is set (we run under a service manager that listens).
bool enabled();

// Sends `state` (one or more "KEY=VALUE" lines). False when notifications are
// off or the send failed; never throws, never blocks for long (MSG_DONTWAIT).
bool notify(std::string_view state);

// "MONOTONIC_USEC=<CLOCK_MONOTONIC in µs>", for RELOADING=1.
std::string monotonic_usec();

// The watchdog interval from $WATCHDOG_USEC (and $WATCHDOG_PID, when set, must
// be our pid); nullopt when no watchdog is asked for.
std::optional<std::chrono::microseconds> watchdog_interval();

// Feeds the systemd watchdog only while every event loop turns: each tick
// (a quarter of the watchdog interval) posts a heartbeat to every worker
// io_context; WATCHDOG=1 is sent only when all of them ran the previous tick's
// heartbeat. A worker stuck in a handler (a busy loop, a blocking call) stops
// the pings, and systemd restarts the service after WatchdogSec=.
//
// Every `status_every` it also sends STATUS=<status()> when the text changed.
//
// Test hook (documented in tests/integration/README.md): when
// $HEARTH_TEST_STALL_WORKER="DELAY_MS:DURATION_MS" is set, worker 0 is blocked
// for DURATION_MS, DELAY_MS after start, so a test can see the pings stop.
class Watchdog {
 public:
  using StatusFn = std::function<std::string()>;

  // `control` runs the timer; `workers` get the heartbeats. Call start() on
  // the control thread before run_contexts(); stop() before it returns.
  Watchdog(boost::asio::io_context& control,
           std::vector<std::unique_ptr<boost::asio::io_context>>& workers, StatusFn status);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void start();
  void stop();
  // Sends STATUS= now (and remembers it), e.g. after a state change.
  void status_now();
  std::uint64_t pings_sent() const { return pings_; }

 private:
  void tick();
  void maybe_status();

  boost::asio::io_context& control_;
  std::vector<std::unique_ptr<boost::asio::io_context>>& workers_;
  StatusFn status_;
  boost::asio::steady_timer timer_;
  std::optional<std::chrono::microseconds> interval_;
  std::chrono::milliseconds tick_{1000};
  // One heartbeat counter per worker, bumped on the worker, read on control.
  std::unique_ptr<std::atomic<std::uint64_t>[]> beats_;
  std::vector<std::uint64_t> seen_;
  std::string last_status_;
  std::chrono::steady_clock::time_point next_status_{};
  std::chrono::steady_clock::time_point started_{};
  std::optional<std::pair<std::chrono::milliseconds, std::chrono::milliseconds>> stall_;
  bool stall_done_ = false;
  bool stopped_ = false;
  std::uint64_t pings_ = 0;
};

}  // namespace hearth::sd
