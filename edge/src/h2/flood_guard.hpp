#pragma once
// The HTTP/2 flood limits of one connection in one place (Envoy's
// protocol_constraints.h): token buckets for the frames a client can send
// at no cost to itself but at a cost to us. Pure; the session feeds it and
// answers GOAWAY(ENHANCE_YOUR_CALM) when a bucket runs dry.

#include <algorithm>
#include <chrono>

namespace hearth::edge {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket(double burst, double per_second, Clock::time_point now)
      : tokens_(burst), burst_(burst), rate_(per_second), last_(now) {}
  // Takes one token; false when none is left.
  bool take(Clock::time_point now) {
    std::chrono::duration<double> dt = now - last_;
    last_ = now;
    tokens_ = std::min(burst_, tokens_ + dt.count() * rate_);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

 private:
  double tokens_, burst_, rate_;
  Clock::time_point last_;
};

class FloodGuard {
 public:
  using Clock = TokenBucket::Clock;
  explicit FloodGuard(Clock::time_point now = Clock::now())
      : resets_(kResetBurst, kResetRate, now),
        control_(kControlBurst, kControlRate, now),
        empty_data_(kEmptyBurst, kEmptyRate, now) {}

  // Rapid reset (CVE-2023-44487): streams the client abandoned (RST_STREAM
  // before its response was complete). Each may have cost a tunnel stream.
  static constexpr double kResetBurst = 100, kResetRate = 20;
  // PING and SETTINGS (each makes us queue an ACK).
  static constexpr double kControlBurst = 100, kControlRate = 10;
  // DATA frames with no payload and no END_STREAM (pure CPU cost).
  static constexpr double kEmptyBurst = 100, kEmptyRate = 10;

  bool on_reset(Clock::time_point now) { return resets_.take(now); }
  bool on_control(Clock::time_point now) { return control_.take(now); }
  bool on_empty_data(Clock::time_point now) { return empty_data_.take(now); }

 private:
  TokenBucket resets_, control_, empty_data_;
};

}  // namespace hearth::edge
