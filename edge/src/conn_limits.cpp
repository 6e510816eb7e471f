// ConnectionLimiter: the accept-time table (see conn_limits.hpp).

#include "hearth/edge/conn_limits.hpp"

#include <algorithm>

namespace hearth::edge {

std::string_view to_string(AcceptVerdict v) {
  switch (v) {
    case AcceptVerdict::accept:
      return "accept";
    case AcceptVerdict::global_concurrent:
      return "max_connections";
    case AcceptVerdict::global_rate:
      return "max_connection_rate";
    case AcceptVerdict::per_ip_concurrent:
      return "max_connections_per_ip";
    case AcceptVerdict::per_ip_rate:
      return "connection_rate_per_ip";
    case AcceptVerdict::table_full:
      return "table_full";
  }
  return "?";
}

std::size_t ConnectionLimiter::Hash::operator()(const policy::ClientKey& k) const noexcept {
  return static_cast<std::size_t>(policy::hash_client(k));
}

void ConnectionLimiter::refill(Entry& e, const config::RateLimit& limit,
                               Clock::time_point now) const {
  const double dt = std::chrono::duration<double>(now - e.last).count();
  e.tokens = std::min<double>(limit.burst, e.tokens + dt * limit.per_second);
  e.last = now;
}

// An entry with no connection whose bucket is full again says nothing a new
// entry would not: it can go.
bool ConnectionLimiter::idle(const Entry& e, Clock::time_point now) const {
  if (e.connections > 0) return false;
  if (!limits_.rate_per_ip) return true;
  const auto& r = *limits_.rate_per_ip;
  const double dt = std::chrono::duration<double>(now - e.last).count();
  return e.tokens + dt * r.per_second >= r.burst;
}

void ConnectionLimiter::sweep(Clock::time_point now) {
  for (auto it = table_.begin(); it != table_.end();) {
    it = idle(it->second, now) ? table_.erase(it) : std::next(it);
  }
}

AcceptVerdict ConnectionLimiter::admit(const policy::ClientKey& key, Clock::time_point now) {
  // Entries of clients that left go on a full table, and at least every second.
  if (now - last_sweep_ > std::chrono::seconds(1)) {
    sweep(now);
    last_sweep_ = now;
  }
  if (total_ >= limits_.max_connections) return AcceptVerdict::global_concurrent;
  auto it = table_.find(key);
  if (it == table_.end()) {
    if (table_.size() >= limits_.max_tracked) {
      sweep(now);
      if (table_.size() >= limits_.max_tracked) return AcceptVerdict::table_full;
    }
    Entry fresh;
    if (limits_.rate_per_ip) fresh.tokens = limits_.rate_per_ip->burst;
    fresh.last = now;
    it = table_.emplace(key, fresh).first;
  } else if (limits_.rate_per_ip) {
    refill(it->second, *limits_.rate_per_ip, now);
  }
  Entry& e = it->second;
  AcceptVerdict verdict = AcceptVerdict::accept;
  // Every attempt costs a token, also one the concurrency cap then refuses.
  if (limits_.rate_per_ip) {
    if (e.tokens < 1.0) {
      verdict = AcceptVerdict::per_ip_rate;
    } else {
      e.tokens -= 1.0;
    }
  }
  if (verdict == AcceptVerdict::accept && e.connections >= limits_.max_connections_per_ip) {
    verdict = AcceptVerdict::per_ip_concurrent;
  }
  if (verdict == AcceptVerdict::accept && limits_.rate_global) {
    const auto& g = *limits_.rate_global;
    if (global_tokens_ < 0) {
      global_tokens_ = g.burst;
    } else {
      const double dt = std::chrono::duration<double>(now - global_last_).count();
      global_tokens_ = std::min<double>(g.burst, global_tokens_ + dt * g.per_second);
    }
    global_last_ = now;
    if (global_tokens_ < 1.0) {
      verdict = AcceptVerdict::global_rate;
    } else {
      global_tokens_ -= 1.0;
    }
  }
  if (verdict != AcceptVerdict::accept) {
    if (idle(e, now)) table_.erase(it);
    return verdict;
  }
  ++e.connections;
  ++total_;
  return AcceptVerdict::accept;
}

void ConnectionLimiter::release(const policy::ClientKey& key, Clock::time_point now) {
  if (total_ > 0) --total_;
  auto it = table_.find(key);
  if (it == table_.end()) return;
  if (it->second.connections > 0) --it->second.connections;
  if (idle(it->second, now)) table_.erase(it);
  if (now - last_sweep_ > std::chrono::seconds(1)) {
    sweep(now);
    last_sweep_ = now;
  }
}

}  // namespace hearth::edge
