#pragma once
// The policy engine (issue 9): pure, synchronous checks on a request head and
// the client's address, and the response-head step. No I/O: the only mutable
// state is a PolicyTable (token buckets, credential cache), which the caller
// passes in. Protocol-neutral: it sees a Beast request/response header, which
// both the HTTP/1.1 and the HTTP/2 front ends produce.
//
// The proxy runs, for every request, in this fixed order:
//   1. normalize_target(target)       -> 400 when the target is malformed
//   2. match_policy(cfg, host, match) -> the one policy that applies (or none)
//   3. check_request(...)             -> deny/allow 403, rate 429, auth 401, body 413
//   4. apply_request(...)             -> remove/add request headers
//   ... route on the normalized target, forward ...
//   5. apply_response(...)            -> remove/add response headers, security headers
// and decorate_local_reply(...) on every response the edge writes itself.

#include <array>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hearth/config/config.hpp"

namespace hearth::edge::policy {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

// ---- Path normalization -------------------------------------------------------

struct NormalizedTarget {
  // What routes on and goes to the service: percent-encoded unreserved
  // characters decoded (%61 -> a, %7E -> ~), other escapes kept with upper-case
  // hex (%2f -> %2F), "//" merged, "." and ".." segments resolved (".." never
  // climbs above "/"), the query ("?..." ) kept byte for byte.
  std::string forward;
  // What policies match on: `forward`'s path (no query) with %2F, %5C and '\'
  // also read as '/' and normalized again, so "/admin%2F..%2Fx", "/admin\x" and
  // "/%61dmin" cannot slip past a "/admin" policy whichever way the service
  // reads them.
  std::string match;
};

// `target` in origin form ("/p?q", as origin_form_target() gives) or "*".
// nullopt (answer 400) for anything else, a '%' not followed by two hex digits,
// or an encoded NUL.
std::optional<NormalizedTarget> normalize_target(std::string_view target);

// ---- Matching -----------------------------------------------------------------

// The policy for (host, match path): among [[policies]] whose host pattern
// matches, the most specific host (exact, then the longest wildcard suffix)
// and, within it, the longest path prefix; when no entry for that host has a
// matching prefix, the next less specific host is tried (so an exact-host
// entry for "/api" never exempts the rest of the host from a wildcard entry).
// Then the default [policy]; nullptr when there is none.
const config::Policy* match_policy(const config::EdgeConfig& cfg, std::string_view host,
                                   std::string_view match_path);

// The largest body any policy (or [edge] max_body_size) allows: the limit the
// parser needs before the head (and so the policy) is known. 0: unlimited.
std::uint64_t largest_body_limit(const config::EdgeConfig& cfg);

// ---- Per-client state -----------------------------------------------------------

// 16 bytes: IPv4 as ::ffff:a.b.c.d; IPv6 with the low 64 bits zeroed (/64).
using ClientKey = std::array<std::uint8_t, 16>;

struct ClientInfo {
  std::array<std::uint8_t, 16> address{};  // the full address (IPv4-mapped for IPv4)
  ClientKey key{};                         // what rate limits count: /64 for IPv6
};
ClientInfo client_info(const boost::asio::ip::address& address);

// The one hash of a client key (bucket tables, PolicyTable's stripes, the connection
// limiter), fully mixed: an IPv4 key differs from its neighbours only in its last bytes,
// and every bit of the result depends on them.
std::uint64_t hash_client(const ClientKey& key) noexcept;

// Token buckets keyed by (policy identity, client key), and a cache of
// verified Basic credentials: one single-threaded table, no lock (a stripe of
// PolicyTable, or a test's own). Bounded: at most max_entries
// buckets; when full, buckets that have refilled completely (indistinguishable
// from a new one) are dropped first, then the least recently used.
class PolicyShard {
 public:
  static constexpr std::size_t kDefaultMaxEntries = 65536;
  static constexpr std::size_t kAuthCacheEntries = 4096;

  explicit PolicyShard(std::size_t max_entries = kDefaultMaxEntries,
                       std::size_t auth_entries = kAuthCacheEntries);

  struct Take {
    bool allowed = true;
    unsigned retry_after = 0;  // seconds until a token is back (>= 1 when refused)
  };
  // Takes one token from the bucket (policy_id, client); a new bucket starts full.
  Take take(std::uint64_t policy_id, const ClientKey& client, const config::RateLimit& limit,
            Clock::time_point now);
  // Removes one token without refusing (not below zero): a penalty.
  void charge(std::uint64_t policy_id, const ClientKey& client, const config::RateLimit& limit,
              Clock::time_point now);
  // Gives back one token taken by take() (not above the burst).
  void refund(std::uint64_t policy_id, const ClientKey& client, const config::RateLimit& limit);

  // Cache of Authorization values verified against a user's hash (key: SHA-256
  // of the hash and the header value, never the credentials themselves).
  bool auth_cached(const std::array<std::uint8_t, 32>& key, Clock::time_point now) const;
  void auth_remember(const std::array<std::uint8_t, 32>& key, Clock::time_point now);

  std::size_t size() const { return buckets_.size(); }
  std::size_t max_entries() const { return max_entries_; }

 private:
  struct Key {
    std::uint64_t policy;
    ClientKey client;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept;
  };
  struct Bucket {
    double tokens = 0;
    Clock::time_point last;     // last refill
    Clock::time_point full_at;  // when it will hold `burst` tokens again
  };
  Bucket& bucket(const Key& key, const config::RateLimit& limit, Clock::time_point now);
  void evict(Clock::time_point now);

  std::size_t max_entries_;
  std::size_t auth_entries_;
  std::unordered_map<Key, Bucket, KeyHash> buckets_;
  struct AuthHash {
    std::size_t operator()(const std::array<std::uint8_t, 32>& k) const noexcept;
  };
  std::unordered_map<std::array<std::uint8_t, 32>, Clock::time_point, AuthHash> auth_;
};

// The edge's one table, shared by every worker: kStripes PolicyShards, each
// behind its own mutex, a client's buckets all in the stripe its address picks.
// Shared rather than one per worker so that connections need not be pinned to
// a worker by client address: all of one client's connections (a browser's
// six, a benchmark's 64) spread over the workers like anyone else's, and its
// limits stay exact. A lock is held for one hash-table step, never across a
// password hash or an await; 16 stripes keep workers off each other's locks.
class PolicyTable {
 public:
  static constexpr std::size_t kStripes = 16;
  // Bounds for the whole table (split evenly over the stripes).
  explicit PolicyTable(std::size_t max_entries = PolicyShard::kDefaultMaxEntries,
                       std::size_t auth_entries = PolicyShard::kAuthCacheEntries);

  PolicyShard::Take take(std::uint64_t policy_id, const ClientKey& client,
                         const config::RateLimit& limit, Clock::time_point now);
  void charge(std::uint64_t policy_id, const ClientKey& client, const config::RateLimit& limit,
              Clock::time_point now);
  void refund(std::uint64_t policy_id, const ClientKey& client, const config::RateLimit& limit);
  bool auth_cached(const std::array<std::uint8_t, 32>& key, Clock::time_point now);
  void auth_remember(const std::array<std::uint8_t, 32>& key, Clock::time_point now);

  std::size_t size();  // buckets in all stripes
  static std::size_t stripe_index(const ClientKey& client) noexcept;

 private:
  struct Stripe {
    std::mutex mu;
    PolicyShard shard;
    Stripe(std::size_t max_entries, std::size_t auth_entries) : shard(max_entries, auth_entries) {}
  };
  Stripe& stripe_of(const ClientKey& client);
  Stripe& stripe_of(const std::array<std::uint8_t, 32>& auth_key);

  std::vector<std::unique_ptr<Stripe>> stripes_;
};

// ---- The checks -------------------------------------------------------------------

struct LocalReply {
  http::status status = http::status::forbidden;
  std::optional<unsigned> retry_after;
  std::string www_authenticate;  // set for 401
  std::string reason;            // short, for the log; never credentials
};

// Failed Basic attempts per client and policy, on top of the policy's own
// rate (which they also count against): 10 at once, then one per 6 s.
inline constexpr config::RateLimit kAuthFailureLimit{10.0 / 60.0, 10};

// Steps 3 in order: deny/allow (403), rate (429 + Retry-After), Basic auth
// (401 + WWW-Authenticate; a wrong password also takes a token of the rate and
// of the failure bucket, and a client whose failure bucket is empty gets 429
// before its password is hashed), Content-Length above max_body_size (413).
// nullopt: continue. crypt_r runs here, on the worker, only for credentials not
// in the table's cache.
std::optional<LocalReply> check_request(const config::Policy& policy,
                                        const http::request_header<>& req, const ClientInfo& client,
                                        PolicyTable& table, Clock::time_point now);

// Step 4: remove_request_headers, then add_request_headers (replacing).
void apply_request(const config::Policy& policy, http::request_header<>& req);

// Step 5: remove_response_headers, then add_response_headers (replacing), then
// the security headers the service did not set itself.
void apply_response(const config::Policy& policy, http::response_header<>& res);

// For a response the edge writes itself (policy may be null): the policy's
// error page for that status as the body, and apply_response().
void decorate_local_reply(const config::Policy* policy, http::response<http::string_body>& res);

// ---- The front end's one call per request head ---------------------------------

struct RequestDecision {
  const config::Policy* policy = nullptr;  // the policy of this request (null: none)
  std::optional<LocalReply> reply;         // set: answer this, forward nothing
  // The body limit for this request (the policy's max_body_size, else [edge]
  // max_body_size); 0: unlimited. For the parser, once the head is read.
  std::uint64_t body_limit = 0;
};

// Steps 1 to 4 for a checked request head (check_request_head passed) whose
// host is `host` (request_host()): normalizes the target in place (an
// absolute-form target becomes origin-form, its authority moving to Host, so
// the head that is routed and forwarded carries the normalized path), matches
// the policy and runs its checks; a malformed target is a 400 reply.
RequestDecision on_request_head(const config::EdgeConfig& cfg, std::string_view host,
                                http::request_header<>& req, const ClientInfo& client,
                                PolicyTable& table, Clock::time_point now);

// A stable 64-bit identity for a policy's counters (FNV-1a of Policy::id), so
// SIGHUP, which rebuilds every Policy, keeps the buckets of unchanged ones.
std::uint64_t policy_key(const config::Policy& policy);

}  // namespace hearth::edge::policy
