#pragma once
// Host and path matching for routing, and a small routing table built on them.
// Pure functions over strings: the edge routes a Host to an origin and the
// origin routes (Host, path) to a local service with the same rules, and unit
// tests and libFuzzer can reach every branch without sockets.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hearth {

// Canonical form of a Host header value (or of the authority of an absolute-form
// request-target): lower case, a trailing ":port" and a trailing '.' removed.
// "[::1]:8443" -> "[::1]"; "Example.COM.:443" -> "example.com".
// nullopt when invalid: empty, a character outside [A-Za-z0-9-_.], an empty label,
// a label that starts or ends with '-', a label over 63 or a name over 253
// characters, a port that is not 0..5 digits <= 65535, a bare (unbracketed) IPv6
// address, or a bracketed literal that is not an IPv6 address (no zone ids).
// An empty port ("example.com:") is allowed: RFC 3986 port = *DIGIT.
std::optional<std::string> normalize_host(std::string_view host_header);

// pattern is exact ("a.example.com") or a wildcard ("*.example.com"), which
// matches "x.example.com" and "x.y.example.com" but NOT "example.com". "*" on its
// own is not a pattern and matches nothing (no accidental catch-all). ASCII
// case-insensitive; host is expected to be normalize_host() output.
bool host_matches(std::string_view pattern, std::string_view host);

// Segment-aware prefix match on the path part of a request-target. "/" (and "")
// match everything; "/signaling" matches "/signaling", "/signaling/",
// "/signaling/x" and "/signaling?q=1" but not "/signalingx". A prefix ending in
// '/' matches anything under it (and not the path without the slash). The query
// (from the first '?') is ignored. No percent-decoding or dot-segment removal:
// the path is compared exactly as the client sent it.
bool path_matches(std::string_view prefix, std::string_view path_and_query);

// Routing table of (host pattern, path prefix) -> T.
//
// lookup() first chooses the most specific host pattern that matches: an exact
// host beats any wildcard, and a longer wildcard suffix beats a shorter one
// ("*.a.example.com" before "*.example.com"). Within that host pattern the
// longest matching path prefix wins. The host choice is final: when the chosen
// host has no matching path prefix, lookup() returns nullptr rather than falling
// back to a less specific host (as with nginx server blocks), so publishing
// "a.example.com/api" never lets "a.example.com/other" reach the service behind
// "*.example.com".
//
// add() keeps entries grouped and sorted, so lookup() is a binary search per
// candidate suffix of the host plus a scan of that host's prefixes, with no
// allocation. Not thread-safe for concurrent add(); build, then share as const.
template <class T>
class RouteTable {
 public:
  // host_pattern is lower-cased and loses a trailing '.'; an empty path_prefix
  // means "/". Adding the same (pattern, prefix) again replaces the value.
  void add(std::string host_pattern, std::string path_prefix, T value);

  // host: normalize_host() output; path: the request-target in origin form
  // (query allowed). nullptr when nothing matches.
  const T* lookup(std::string_view host, std::string_view path) const;

  std::size_t size() const { return size_; }

 private:
  struct Route {
    std::string prefix;
    T value;
  };
  struct Host {
    std::string key;            // exact host, or the suffix ".example.com" of "*.example.com"
    std::vector<Route> routes;  // longest prefix first, "/" last
  };

  static const T* match_path(const Host& host, std::string_view path);
  static const Host* find(const std::vector<Host>& hosts, std::string_view key);

  std::vector<Host> exact_;     // sorted by key
  std::vector<Host> wildcard_;  // sorted by key
  std::size_t size_ = 0;
};

template <class T>
void RouteTable<T>::add(std::string host_pattern, std::string path_prefix, T value) {
  std::transform(host_pattern.begin(), host_pattern.end(), host_pattern.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  if (host_pattern.size() > 1 && host_pattern.back() == '.') {
    host_pattern.pop_back();
  }
  if (path_prefix.empty()) {
    path_prefix = "/";
  }
  const bool is_wildcard = host_pattern.size() > 2 && host_pattern.starts_with("*.");
  std::vector<Host>& hosts = is_wildcard ? wildcard_ : exact_;
  std::string key = is_wildcard ? host_pattern.substr(1) : std::move(host_pattern);

  auto host_it = std::lower_bound(hosts.begin(), hosts.end(), key,
                                  [](const Host& h, const std::string& k) { return h.key < k; });
  if (host_it == hosts.end() || host_it->key != key) {
    host_it = hosts.insert(host_it, Host{std::move(key), {}});
  }
  std::vector<Route>& routes = host_it->routes;
  for (Route& route : routes) {
    if (route.prefix == path_prefix) {
      route.value = std::move(value);
      return;
    }
  }
  // Longest prefix first, so the first match in match_path() is the longest.
  // "/" matches every target, even one that does not start with '/' ("*"), so it
  // ranks last: otherwise a one-character prefix would tie with it.
  auto rank = [](const std::string& prefix) { return prefix == "/" ? 0 : prefix.size(); };
  auto route_it = std::find_if(routes.begin(), routes.end(),
                               [&](const Route& r) { return rank(r.prefix) < rank(path_prefix); });
  routes.insert(route_it, Route{std::move(path_prefix), std::move(value)});
  ++size_;
}

template <class T>
const typename RouteTable<T>::Host* RouteTable<T>::find(const std::vector<Host>& hosts,
                                                        std::string_view key) {
  auto it = std::lower_bound(hosts.begin(), hosts.end(), key,
                             [](const Host& h, std::string_view k) { return h.key < k; });
  if (it == hosts.end() || it->key != key) {
    return nullptr;
  }
  return &*it;
}

template <class T>
const T* RouteTable<T>::match_path(const Host& host, std::string_view path) {
  for (const Route& route : host.routes) {
    if (path_matches(route.prefix, path)) {
      return &route.value;
    }
  }
  return nullptr;
}

template <class T>
const T* RouteTable<T>::lookup(std::string_view host, std::string_view path) const {
  if (const Host* exact = find(exact_, host)) {
    return match_path(*exact, path);
  }
  // Candidate wildcard keys are the host's suffixes that start at a '.', longest
  // first; the label before the dot must be non-empty ("*.example.com" does not
  // match ".example.com").
  for (std::size_t dot = host.find('.', 1); dot != std::string_view::npos;
       dot = host.find('.', dot + 1)) {
    if (const Host* wildcard = find(wildcard_, host.substr(dot))) {
      return match_path(*wildcard, path);
    }
  }
  return nullptr;
}

}  // namespace hearth
