#pragma once
// Per-host request statistics for /metrics (issue 13): a duration histogram by
// status class, and body bytes, labelled by host.
//
// The label set is bounded: a host label is one of the hostname patterns
// configured in [[origins]] (as written there, "*.home.example.com" included),
// or "other" for every request whose Host matches none of them (no raw Host
// headers, no paths). At most kMaxHosts patterns get their own label.
//
// Lock-free on the data path: a request finds its slot through an immutable
// index published with an atomic pointer, then bumps relaxed atomics.
// configure() runs on the control thread (start-up and reload); slots are never
// reused, so a hostname removed by a reload keeps its (frozen) series.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/common/route_match.hpp"

namespace hearth::edge {

class RequestStats {
 public:
  static constexpr std::size_t kMaxHosts = 128;
  // Upper bounds in seconds (Prometheus' defaults); +Inf is implied.
  static constexpr std::array<double, 11> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1,    2.5,   5,    10};
  static constexpr std::size_t kClasses = 5;  // 1xx .. 5xx

  RequestStats();
  ~RequestStats();
  RequestStats(const RequestStats&) = delete;
  RequestStats& operator=(const RequestStats&) = delete;

  // The hostname patterns of [[origins]] (lower case). Control thread only.
  void configure(const std::vector<std::string>& hostnames);

  // One finished request. host_header: the Host (or authority) as the client
  // sent it; status 0 (no answer) counts bytes only.
  void observe(std::string_view host_header, unsigned status, std::chrono::nanoseconds duration,
               std::uint64_t bytes_in, std::uint64_t bytes_out);

  // Appends hearth_http_request_duration_seconds and hearth_host_bytes_total.
  void render(std::string& out) const;

 private:
  struct Slot {
    std::string name;  // written before the slot is published, then constant
    std::array<std::array<std::atomic<std::uint64_t>, kBuckets.size()>, kClasses> buckets{};
    std::array<std::atomic<std::uint64_t>, kClasses> count{};
    std::array<std::atomic<std::uint64_t>, kClasses> sum_us{};
    std::atomic<std::uint64_t> bytes_in{0};
    std::atomic<std::uint64_t> bytes_out{0};
  };
  struct Index {
    RouteTable<std::size_t> table;  // pattern -> slot, path "/"
  };

  std::size_t slot_for(std::string_view host_header) const;

  std::unique_ptr<Slot[]> slots_;     // [0] is "other"
  std::atomic<std::size_t> used_{1};  // slots with a name
  std::atomic<const Index*> index_{nullptr};
  std::mutex configure_mu_;                      // control plane only
  std::vector<std::unique_ptr<Index>> indexes_;  // every index ever published (freed at exit)
};

}  // namespace hearth::edge
