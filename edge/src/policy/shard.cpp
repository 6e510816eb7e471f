// PolicyShard: token buckets and the Basic credential cache; PolicyTable: the
// edge's striped, locked set of them, shared by the workers.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "hearth/edge/policy.hpp"

namespace hearth::edge::policy {
namespace {

constexpr auto kAuthCacheTtl = std::chrono::minutes(5);

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

Clock::duration from_seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

std::uint64_t hash_client(const ClientKey& key) noexcept {
  std::uint64_t a = 0, b = 0;
  std::memcpy(&a, key.data(), 8);
  std::memcpy(&b, key.data() + 8, 8);
  // A multiply only carries low bits upwards (an IPv4 key's low 16 bits of b are the
  // mapped prefix's zeros), so finish with splitmix64's mixer.
  std::uint64_t h = (a * 0x9e3779b97f4a7c15ull) ^ (b * 0xc2b2ae3d27d4eb4full);
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h;
}

std::size_t PolicyShard::KeyHash::operator()(const Key& k) const noexcept {
  std::uint64_t h = hash_client(k.client) ^ (k.policy * 0x94d049bb133111ebull);
  h ^= h >> 31;
  return static_cast<std::size_t>(h);
}

std::size_t PolicyShard::AuthHash::operator()(
    const std::array<std::uint8_t, 32>& k) const noexcept {
  std::size_t h = 0;
  std::memcpy(&h, k.data(), sizeof h);  // already a SHA-256
  return h;
}

PolicyShard::PolicyShard(std::size_t max_entries, std::size_t auth_entries)
    : max_entries_(std::max<std::size_t>(max_entries, 2)),
      auth_entries_(std::max<std::size_t>(auth_entries, 1)) {}

PolicyShard::Bucket& PolicyShard::bucket(const Key& key, const config::RateLimit& limit,
                                         Clock::time_point now) {
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_entries_) evict(now);
    it = buckets_.emplace(key, Bucket{static_cast<double>(limit.burst), now, now}).first;
    return it->second;
  }
  Bucket& b = it->second;
  const double burst = limit.burst;
  // A reload may have lowered the burst: never hold more than it.
  b.tokens = std::min(burst, b.tokens + seconds(now - b.last) * limit.per_second);
  b.last = now;
  return b;
}

PolicyShard::Take PolicyShard::take(std::uint64_t policy_id, const ClientKey& client,
                                    const config::RateLimit& limit, Clock::time_point now) {
  Bucket& b = bucket(Key{policy_id, client}, limit, now);
  Take t;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
  } else {
    t.allowed = false;
    t.retry_after =
        static_cast<unsigned>(std::max(1.0, std::ceil((1.0 - b.tokens) / limit.per_second)));
  }
  b.full_at = now + from_seconds((limit.burst - b.tokens) / limit.per_second);
  return t;
}

void PolicyShard::charge(std::uint64_t policy_id, const ClientKey& client,
                         const config::RateLimit& limit, Clock::time_point now) {
  Bucket& b = bucket(Key{policy_id, client}, limit, now);
  b.tokens = std::max(0.0, b.tokens - 1.0);
  b.full_at = now + from_seconds((limit.burst - b.tokens) / limit.per_second);
}

void PolicyShard::refund(std::uint64_t policy_id, const ClientKey& client,
                         const config::RateLimit& limit) {
  auto it = buckets_.find(Key{policy_id, client});
  if (it == buckets_.end()) return;
  Bucket& b = it->second;
  b.tokens = std::min<double>(limit.burst, b.tokens + 1.0);
  b.full_at = b.last + from_seconds((limit.burst - b.tokens) / limit.per_second);
}

// Called when the table is full. A bucket that has refilled completely is
// exactly what a new one would be: dropping it changes no decision. If that
// frees less than an eighth of the table (every client is busy), the least
// recently used eighth goes too; such a client then starts again from a full
// bucket, the only way a bounded table can be wrong.
void PolicyShard::evict(Clock::time_point now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    it = it->second.full_at <= now ? buckets_.erase(it) : std::next(it);
  }
  const std::size_t target = max_entries_ - max_entries_ / 8;
  if (buckets_.size() < target) return;
  std::vector<Clock::time_point> times;
  times.reserve(buckets_.size());
  for (const auto& [k, b] : buckets_) times.push_back(b.last);
  const std::size_t drop = buckets_.size() - target + 1;
  std::nth_element(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(drop - 1),
                   times.end());
  const auto cutoff = times[drop - 1];
  std::size_t dropped = 0;
  for (auto it = buckets_.begin(); it != buckets_.end() && dropped < drop;) {
    if (it->second.last <= cutoff) {
      it = buckets_.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
}

bool PolicyShard::auth_cached(const std::array<std::uint8_t, 32>& key,
                              Clock::time_point now) const {
  auto it = auth_.find(key);
  return it != auth_.end() && now - it->second < kAuthCacheTtl;
}

void PolicyShard::auth_remember(const std::array<std::uint8_t, 32>& key, Clock::time_point now) {
  if (auth_.size() >= auth_entries_) {
    for (auto it = auth_.begin(); it != auth_.end();) {
      it = now - it->second >= kAuthCacheTtl ? auth_.erase(it) : std::next(it);
    }
    if (auth_.size() >= auth_entries_) auth_.clear();
  }
  auth_[key] = now;
}

PolicyTable::PolicyTable(std::size_t max_entries, std::size_t auth_entries) {
  stripes_.reserve(kStripes);
  for (std::size_t i = 0; i < kStripes; ++i) {
    stripes_.push_back(std::make_unique<Stripe>((max_entries + kStripes - 1) / kStripes,
                                                (auth_entries + kStripes - 1) / kStripes));
  }
}

std::size_t PolicyTable::stripe_index(const ClientKey& client) noexcept {
  return static_cast<std::size_t>(hash_client(client) % kStripes);
}

PolicyTable::Stripe& PolicyTable::stripe_of(const ClientKey& client) {
  return *stripes_[stripe_index(client)];
}

PolicyTable::Stripe& PolicyTable::stripe_of(const std::array<std::uint8_t, 32>& auth_key) {
  return *stripes_[auth_key[0] % kStripes];  // already a SHA-256
}

PolicyShard::Take PolicyTable::take(std::uint64_t policy_id, const ClientKey& client,
                                    const config::RateLimit& limit, Clock::time_point now) {
  Stripe& s = stripe_of(client);
  std::lock_guard lock(s.mu);
  return s.shard.take(policy_id, client, limit, now);
}

void PolicyTable::charge(std::uint64_t policy_id, const ClientKey& client,
                         const config::RateLimit& limit, Clock::time_point now) {
  Stripe& s = stripe_of(client);
  std::lock_guard lock(s.mu);
  s.shard.charge(policy_id, client, limit, now);
}

void PolicyTable::refund(std::uint64_t policy_id, const ClientKey& client,
                         const config::RateLimit& limit) {
  Stripe& s = stripe_of(client);
  std::lock_guard lock(s.mu);
  s.shard.refund(policy_id, client, limit);
}

bool PolicyTable::auth_cached(const std::array<std::uint8_t, 32>& key, Clock::time_point now) {
  Stripe& s = stripe_of(key);
  std::lock_guard lock(s.mu);
  return s.shard.auth_cached(key, now);
}

void PolicyTable::auth_remember(const std::array<std::uint8_t, 32>& key, Clock::time_point now) {
  Stripe& s = stripe_of(key);
  std::lock_guard lock(s.mu);
  s.shard.auth_remember(key, now);
}

std::size_t PolicyTable::size() {
  std::size_t n = 0;
  for (auto& s : stripes_) {
    std::lock_guard lock(s->mu);
    n += s->shard.size();
  }
  return n;
}

}  // namespace hearth::edge::policy
