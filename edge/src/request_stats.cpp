#include "hearth/edge/request_stats.hpp"

#include <algorithm>
#include <cstdio>

namespace hearth::edge {

namespace {

constexpr std::array<const char*, RequestStats::kClasses> kClassNames = {"1xx", "2xx", "3xx", "4xx",
                                                                         "5xx"};

std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string seconds(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

std::string bound(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

RequestStats::RequestStats() : slots_(std::make_unique<Slot[]>(kMaxHosts + 1)) {
  slots_[0].name = "other";
}

RequestStats::~RequestStats() = default;

void RequestStats::configure(const std::vector<std::string>& hostnames) {
  std::lock_guard lock(configure_mu_);
  auto index = std::make_unique<Index>();
  std::size_t used = used_.load(std::memory_order_relaxed);
  for (const auto& h : hostnames) {
    std::size_t slot = 0;
    for (std::size_t i = 1; i < used; ++i) {
      if (slots_[i].name == h) slot = i;
    }
    if (slot == 0 && used <= kMaxHosts) {
      slot = used++;
      slots_[slot].name = h;
    }
    if (slot != 0) index->table.add(h, "/", slot);
  }
  used_.store(used, std::memory_order_release);
  index_.store(index.get(), std::memory_order_release);
  indexes_.push_back(std::move(index));
}

std::size_t RequestStats::slot_for(std::string_view host_header) const {
  const Index* index = index_.load(std::memory_order_acquire);
  if (!index) return 0;
  auto host = normalize_host(host_header);
  if (!host) return 0;
  const std::size_t* slot = index->table.lookup(*host, "/");
  return slot ? *slot : 0;
}

void RequestStats::observe(std::string_view host_header, unsigned status,
                           std::chrono::nanoseconds duration, std::uint64_t bytes_in,
                           std::uint64_t bytes_out) {
  Slot& s = slots_[slot_for(host_header)];
  constexpr auto relaxed = std::memory_order_relaxed;
  if (bytes_in) s.bytes_in.fetch_add(bytes_in, relaxed);
  if (bytes_out) s.bytes_out.fetch_add(bytes_out, relaxed);
  if (status < 100 || status > 599) return;
  const std::size_t c = status / 100 - 1;
  const double secs = std::chrono::duration<double>(duration).count();
  for (std::size_t b = 0; b < kBuckets.size(); ++b) {
    if (secs <= kBuckets[b]) {
      s.buckets[c][b].fetch_add(1, relaxed);  // non-cumulative here; summed when rendered
      break;
    }
  }
  s.count[c].fetch_add(1, relaxed);
  s.sum_us[c].fetch_add(
      static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(duration).count()),
      relaxed);
}

void RequestStats::render(std::string& out) const {
  const std::size_t used = used_.load(std::memory_order_acquire);
  constexpr auto relaxed = std::memory_order_relaxed;
  out +=
      "# HELP hearth_http_request_duration_seconds Time from a request's head to its last "
      "response byte, by configured hostname (\"other\" for any other Host) and status class.\n"
      "# TYPE hearth_http_request_duration_seconds histogram\n";
  for (std::size_t i = 0; i < used; ++i) {
    const Slot& s = slots_[i];
    const std::string host = label_value(s.name);
    for (std::size_t c = 0; c < kClasses; ++c) {
      const std::uint64_t count = s.count[c].load(relaxed);
      if (count == 0) continue;
      const std::string labels = "host=\"" + host + "\",code_class=\"" + kClassNames[c] + "\"";
      std::uint64_t cumulative = 0;
      for (std::size_t b = 0; b < kBuckets.size(); ++b) {
        cumulative += s.buckets[c][b].load(relaxed);
        out += "hearth_http_request_duration_seconds_bucket{" + labels + ",le=\"" +
               bound(kBuckets[b]) + "\"} " + std::to_string(cumulative) + "\n";
      }
      // Read after the buckets: +Inf and _count never fall below a bucket.
      const std::uint64_t total = std::max(count, cumulative);
      out += "hearth_http_request_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} " +
             std::to_string(total) + "\n";
      out += "hearth_http_request_duration_seconds_sum{" + labels + "} " +
             seconds(static_cast<double>(s.sum_us[c].load(relaxed)) / 1e6) + "\n";
      out += "hearth_http_request_duration_seconds_count{" + labels + "} " + std::to_string(total) +
             "\n";
    }
  }
  out +=
      "# HELP hearth_host_bytes_total Body bytes relayed for clients, by configured hostname "
      "and direction (in: from clients, out: to clients).\n"
      "# TYPE hearth_host_bytes_total counter\n";
  for (std::size_t i = 0; i < used; ++i) {
    const Slot& s = slots_[i];
    const std::string host = label_value(s.name);
    out += "hearth_host_bytes_total{host=\"" + host + "\",direction=\"in\"} " +
           std::to_string(s.bytes_in.load(relaxed)) + "\n";
    out += "hearth_host_bytes_total{host=\"" + host + "\",direction=\"out\"} " +
           std::to_string(s.bytes_out.load(relaxed)) + "\n";
  }
}

}  // namespace hearth::edge
