#pragma once
// Per-route policies ([policy] and [[policies]] in edge.toml, issue 9): typed,
// validated at load time, immutable afterwards. The edge's policy engine
// (edge/include/hearth/edge/policy.hpp) runs them on every request; nothing
// here does I/O after the config is loaded (htpasswd files and error pages are
// read once, by the parser).

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hearth::config {

// An address range. IPv4 is held IPv4-mapped (::ffff:a.b.c.d), with the prefix
// length counted over 128 bits, so one comparison covers both families and a
// dual-stack listener's mapped peers match IPv4 ranges.
struct CidrRange {
  std::array<std::uint8_t, 16> bytes{};  // network address, host bits zero
  unsigned prefix_len = 0;               // 0..128
  std::string text;                      // as written, for messages
  bool contains(const std::array<std::uint8_t, 16>& address) const;
  friend bool operator==(const CidrRange& a, const CidrRange& b) {
    return a.bytes == b.bytes && a.prefix_len == b.prefix_len;
  }
};

// "10/s", "100/m", "5/h": tokens per second. "off" is represented by nullopt.
struct RateLimit {
  double per_second = 0;
  std::uint32_t burst = 1;  // bucket size: requests allowed at once
  friend bool operator==(const RateLimit&, const RateLimit&) = default;
};

// One htpasswd line: a user and a crypt(3) hash ($2y$/$2b$/$2a$ bcrypt, $y$ yescrypt).
struct HtpasswdUser {
  std::string user;
  std::string hash;
};

struct BasicAuth {
  std::filesystem::path file;
  std::string realm = "hearth";
  std::vector<HtpasswdUser> users;
};

struct HeaderValue {
  std::string name;
  std::string value;
};

// One policy. [[policies]] entries start as a copy of the default [policy]
// and override the keys they set; `host`/`path` say where they apply.
struct Policy {
  std::string id;          // identity for counters across reloads: "default" or "host path"
  std::string host;        // lower case; exact or "*.suffix"; empty for the default policy
  std::string path = "/";  // prefix (segment-aware, like routes)
  int line = 0;            // where it is defined, for messages

  std::optional<RateLimit> rate;  // per client IP (/64 for IPv6)
  bool security_headers = false;  // HSTS, nosniff, Referrer-Policy, X-Frame-Options
  std::string hsts = "max-age=31536000; includeSubDomains";
  std::optional<BasicAuth> basic_auth;
  std::vector<CidrRange> allow;  // empty: everyone (unless denied)
  std::vector<CidrRange> deny;
  std::optional<std::uint64_t> max_body_size;  // default: [edge] max_body_size
  std::optional<std::chrono::milliseconds> response_header_timeout;  // default: idle_timeout
  std::optional<std::chrono::milliseconds> idle_timeout;             // default: [edge] idle_timeout
  std::optional<std::chrono::milliseconds> websocket_idle_timeout;   // default: [edge] value
  std::vector<HeaderValue> add_response_headers;
  std::vector<std::string> remove_response_headers;  // lower case
  std::vector<HeaderValue> add_request_headers;
  std::vector<std::string> remove_request_headers;  // lower case
  std::map<unsigned, std::string> error_pages;      // status -> HTML, read at load time
};

// Value parsers, pure; exposed for the parser, the edge and unit tests.
// "10/s" "100/m" "1/h" "2.5/s": nullopt when malformed or not > 0.
std::optional<double> parse_rate(std::string_view text);
// "192.0.2.0/24", "2001:db8::/32", "192.0.2.7" (a single address: /32 or /128).
// Host bits must be zero ("192.0.2.1/24" is refused: probably a typo).
std::optional<CidrRange> parse_cidr(std::string_view text);
// An address literal in the 16-byte form CidrRange::contains takes.
std::optional<std::array<std::uint8_t, 16>> parse_address16(std::string_view text);

// htpasswd text: "user:hash" per line, '#' comments and blank lines ignored.
// Accepts bcrypt ($2y$, $2b$, $2a$) and yescrypt ($y$) hashes that libcrypt
// can verify. On error: the 1-based line and a message.
struct HtpasswdError {
  int line = 0;
  std::string message;
};
struct HtpasswdResult {
  std::vector<HtpasswdUser> users;
  std::optional<HtpasswdError> error;
};
HtpasswdResult parse_htpasswd(std::string_view text);

}  // namespace hearth::config
