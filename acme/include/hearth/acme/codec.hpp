#pragma once
// Small pure codecs ACME needs: base64url (RFC 4648 section 5, no padding), SHA-256,
// Retry-After (RFC 9110 section 10.2.3) and RFC 3339 timestamps.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hearth::acme {

std::string base64url_encode(std::string_view bytes);
// Accepts input with or without '=' padding; nullopt on any other character.
std::optional<std::string> base64url_decode(std::string_view text);

std::string sha256(std::string_view bytes);  // 32 raw bytes

// Retry-After: delay-seconds or an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT").
// A date in the past gives 0. nullopt when the value is neither.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

// "2025-01-02T03:04:05Z", fractional seconds and numeric offsets accepted.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);
std::string format_rfc3339(std::chrono::system_clock::time_point t);

}  // namespace hearth::acme
