// Endpoint, ServiceUrl and host-name rules: pure functions over strings.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>

#include "detail.hpp"
#include "hearth/config/parse.hpp"

namespace hearth::config {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_ipv4(std::string_view text) {
  if (text.empty() || text.size() > 15) {
    return false;
  }
  const std::string s(text);
  in_addr addr{};
  return ::inet_pton(AF_INET, s.c_str(), &addr) == 1;
}

bool is_ipv6(std::string_view text) {
  if (text.empty() || text.size() > 45) {
    return false;
  }
  const std::string s(text);
  in6_addr addr{};
  return ::inet_pton(AF_INET6, s.c_str(), &addr) == 1;
}

// 1..5 digits, no sign, at most 65535.
std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5 || !std::all_of(text.begin(), text.end(), is_digit)) {
    return std::nullopt;
  }
  unsigned value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  if (value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

struct HostPort {
  std::string host;  // lower case, no brackets
  std::optional<std::uint16_t> port;
};

// "host:port", "[v6]:port"; with port_optional also "host" and "[v6]".
std::optional<HostPort> split_host_port(std::string_view text, bool port_optional) {
  HostPort out;
  std::string_view port_text;
  bool has_port = false;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view host = text.substr(1, close - 1);
    if (!is_ipv6(host)) {
      return std::nullopt;
    }
    out.host = detail::to_lower(host);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return std::nullopt;
      }
      has_port = true;
      port_text = rest.substr(1);
    }
  } else {
    const std::size_t colon = text.rfind(':');
    std::string_view host = text;
    if (colon != std::string_view::npos) {
      host = text.substr(0, colon);
      has_port = true;
      port_text = text.substr(colon + 1);
    }
    // An IPv6 literal needs brackets; a ':' left in the host means it had none.
    if (host.find(':') != std::string_view::npos || !detail::valid_host_name(host)) {
      return std::nullopt;
    }
    out.host = detail::to_lower(host);
  }
  if (has_port) {
    out.port = parse_port(port_text);
    if (!out.port) {
      return std::nullopt;
    }
  } else if (!port_optional) {
    return std::nullopt;
  }
  return out;
}

std::string host_for_text(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

namespace detail {

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

bool valid_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  std::string_view last_label;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = host.find('.', start);
    const std::string_view label =
        host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (const char c : label) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-';
      if (!ok) {
        return false;
      }
    }
    last_label = label;
    if (dot == std::string_view::npos) {
      break;
    }
    start = dot + 1;
  }
  // No top-level domain is all digits: such a name is meant as an IPv4 address.
  if (std::all_of(last_label.begin(), last_label.end(), is_digit)) {
    return is_ipv4(host);
  }
  return true;
}

bool valid_origin_name(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
           c == '_' || c == '-';
  });
}

}  // namespace detail

std::string Endpoint::to_string() const { return host_for_text(host) + ":" + std::to_string(port); }

std::string ServiceUrl::to_string() const {
  return std::string(tls ? "https://" : "http://") + host_for_text(host) + ":" +
         std::to_string(port);
}

std::optional<Endpoint> parse_endpoint(std::string_view text) {
  auto hp = split_host_port(text, /*port_optional=*/false);
  if (!hp) {
    return std::nullopt;
  }
  return Endpoint{std::move(hp->host), *hp->port};
}

std::optional<ServiceUrl> parse_service_url(std::string_view text) {
  ServiceUrl url;
  const std::string scheme_end = "://";
  const std::size_t sep = text.find(scheme_end);
  if (sep == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string scheme = detail::to_lower(text.substr(0, sep));
  if (scheme == "http") {
    url.tls = false;
  } else if (scheme == "https") {
    url.tls = true;
  } else {
    return std::nullopt;
  }
  std::string_view authority = text.substr(sep + scheme_end.size());
  if (!authority.empty() && authority.back() == '/') {
    authority.remove_suffix(1);
  }
  // Paths, queries, fragments and user info are not part of a service address.
  if (authority.find_first_of("/?#@") != std::string_view::npos) {
    return std::nullopt;
  }
  auto hp = split_host_port(authority, /*port_optional=*/true);
  if (!hp) {
    return std::nullopt;
  }
  url.host = std::move(hp->host);
  url.port = hp->port.value_or(url.tls ? 443 : 80);
  if (url.port == 0) {
    return std::nullopt;
  }
  return url;
}

bool valid_hostname_pattern(std::string_view pattern) {
  if (pattern.substr(0, 2) == "*.") {
    const std::string_view suffix = pattern.substr(2);
    return detail::valid_host_name(suffix) && !is_ipv4(suffix);
  }
  return detail::valid_host_name(pattern);
}

}  // namespace hearth::config
