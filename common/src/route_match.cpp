#include "hearth/common/route_match.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <cstring>

namespace hearth {
namespace {

constexpr std::size_t kMaxLabel = 63;
constexpr std::size_t kMaxName = 253;
// Longest textual IPv6 address: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".
constexpr std::size_t kMaxIpv6Text = 45;

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_hex_digit(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// '_' is not valid in host names (RFC 1123) but is common in DNS records that
// people do point browsers at; it cannot confuse parsing, so accept it.
bool is_name_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) {
      return false;
    }
  }
  return true;
}

// RFC 3986 port = *DIGIT; we also bound it to what TCP can carry.
bool valid_port(std::string_view port) {
  if (port.size() > 5) {
    return false;
  }
  std::uint32_t value = 0;
  for (char c : port) {
    if (!is_digit(c)) {
      return false;
    }
    value = value * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return value <= 65535;
}

// inet_pton is the authority on what an IPv6 address is; the character check
// first keeps out zone ids ("%eth0") and anything it might be lenient about.
bool valid_ipv6(std::string_view text) {
  if (text.empty() || text.size() > kMaxIpv6Text) {
    return false;
  }
  std::array<char, kMaxIpv6Text + 1> buffer{};
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!is_hex_digit(c) && c != ':' && c != '.') {
      return false;
    }
    buffer[i] = c;
  }
  in6_addr address{};
  return inet_pton(AF_INET6, buffer.data(), &address) == 1;
}

bool valid_dns_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxName) {
    return false;
  }
  std::size_t label_start = 0;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i < name.size() && name[i] != '.') {
      if (!is_name_char(name[i])) {
        return false;
      }
      continue;
    }
    const std::string_view label = name.substr(label_start, i - label_start);
    if (label.empty() || label.size() > kMaxLabel || label.front() == '-' || label.back() == '-') {
      return false;
    }
    label_start = i + 1;
  }
  return true;
}

}  // namespace

std::optional<std::string> normalize_host(std::string_view host_header) {
  std::string_view name;
  if (!host_header.empty() && host_header.front() == '[') {
    const std::size_t close = host_header.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view rest = host_header.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !valid_port(rest.substr(1)))) {
      return std::nullopt;
    }
    if (!valid_ipv6(host_header.substr(1, close - 1))) {
      return std::nullopt;
    }
    name = host_header.substr(0, close + 1);
  } else {
    name = host_header;
    const std::size_t colon = name.find(':');
    if (colon != std::string_view::npos) {
      // A second ':' means a bare IPv6 address (or garbage); valid_port rejects it.
      if (!valid_port(name.substr(colon + 1))) {
        return std::nullopt;
      }
      name = name.substr(0, colon);
    }
    if (name.size() > 1 && name.back() == '.') {
      name.remove_suffix(1);
    }
    if (!valid_dns_name(name)) {
      return std::nullopt;
    }
  }
  std::string result(name);
  for (char& c : result) {
    c = to_lower(c);
  }
  return result;
}

bool host_matches(std::string_view pattern, std::string_view host) {
  if (pattern.size() > 2 && pattern.starts_with("*.")) {
    const std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && iequals(host.substr(host.size() - suffix.size()), suffix);
  }
  if (pattern.empty() || pattern == "*") {
    return false;
  }
  return iequals(pattern, host);
}

bool path_matches(std::string_view prefix, std::string_view path_and_query) {
  const std::string_view path = path_and_query.substr(0, path_and_query.find('?'));
  if (prefix.empty() || prefix == "/") {
    return true;
  }
  if (!path.starts_with(prefix)) {
    return false;
  }
  if (prefix.back() == '/' || path.size() == prefix.size()) {
    return true;
  }
  return path[prefix.size()] == '/';
}

}  // namespace hearth
