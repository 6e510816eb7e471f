// libFuzzer: normalize_host, host_matches, path_matches and RouteTable over
// arbitrary text. Input lines: the first is a Host header value, the second a
// request path, then pairs of (host pattern, path prefix) for the table.
// Besides sanitizer reports it checks that normalize_host's output is canonical
// (a fixed point, lower case, within DNS limits) and that RouteTable::lookup
// agrees with a brute-force reading of its documented rule.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hearth/common/route_match.hpp"

using namespace hearth;

// Abort with the failed property: libFuzzer saves the input that caused it.
#define FUZZ_CHECK(condition)                                                            \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

namespace {

constexpr std::size_t kMaxRoutes = 16;

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  for (;;) {
    const std::size_t newline = text.find('\n');
    lines.push_back(text.substr(0, newline));
    if (newline == std::string_view::npos) {
      return lines;
    }
    text.remove_prefix(newline + 1);
  }
}

void check_normalized(std::string_view input) {
  const std::optional<std::string> host = normalize_host(input);
  if (!host) {
    return;
  }
  FUZZ_CHECK(!host->empty() && host->size() <= 253);
  FUZZ_CHECK(normalize_host(*host) == host);
  for (char c : *host) {
    FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
  }
  FUZZ_CHECK(host_matches(*host, *host));
  FUZZ_CHECK(!host_matches("*." + *host, *host));
  FUZZ_CHECK(host_matches("*." + *host, "x." + *host) || host->front() == '[');
}

// What RouteTable::add does to a pattern and prefix before storing them.
std::pair<std::string, std::string> as_stored(std::string_view pattern, std::string_view prefix) {
  std::string p(pattern);
  for (char& c : p) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  if (p.size() > 1 && p.back() == '.') {
    p.pop_back();
  }
  return {p, prefix.empty() ? "/" : std::string(prefix)};
}

std::size_t specificity(const std::string& pattern) {
  return (pattern.size() > 2 && pattern.starts_with("*.")) ? pattern.size() : 1000 + pattern.size();
}

// Longest prefix wins, and "/" (which matches anything) loses to every other.
std::size_t rank(const std::string& prefix) { return prefix == "/" ? 0 : prefix.size(); }

std::optional<int> brute_force(const std::map<std::pair<std::string, std::string>, int>& routes,
                               std::string_view host, std::string_view path) {
  std::size_t best_host = 0;
  for (const auto& [key, value] : routes) {
    if (host_matches(key.first, host)) {
      best_host = std::max(best_host, specificity(key.first));
    }
  }
  std::optional<int> best;
  std::size_t best_prefix = 0;
  for (const auto& [key, value] : routes) {
    if (best_host != 0 && specificity(key.first) == best_host && host_matches(key.first, host) &&
        path_matches(key.second, path) && (!best || rank(key.second) > best_prefix)) {
      best = value;
      best_prefix = rank(key.second);
    }
  }
  return best;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::string_view> lines =
      split_lines(std::string_view(reinterpret_cast<const char*>(data), size));
  for (std::string_view line : lines) {
    check_normalized(line);
  }
  const std::string_view path = lines.size() > 1 ? lines[1] : "/";
  FUZZ_CHECK(path_matches("/", path));

  RouteTable<int> table;
  std::map<std::pair<std::string, std::string>, int> reference;
  int value = 0;
  for (std::size_t i = 2; i + 1 < lines.size() && reference.size() < kMaxRoutes; i += 2, ++value) {
    table.add(std::string(lines[i]), std::string(lines[i + 1]), value);
    reference[as_stored(lines[i], lines[i + 1])] = value;
    FUZZ_CHECK(table.size() == reference.size());
  }

  // Query with the Host line and with hosts built from the patterns, so that
  // the wildcard and exact branches are reached without guessing names.
  std::vector<std::string> hosts;
  if (auto host = normalize_host(lines[0])) {
    hosts.push_back(*host);
  }
  for (const auto& [key, unused] : reference) {
    const std::string& pattern = key.first;
    const bool wildcard = pattern.size() > 2 && pattern.starts_with("*.");
    for (const std::string& candidate :
         {wildcard ? "a" + pattern.substr(1) : pattern, wildcard ? pattern.substr(2) : pattern}) {
      if (auto host = normalize_host(candidate)) {
        hosts.push_back(*host);
      }
    }
  }
  for (const std::string& host : hosts) {
    for (std::string_view query_path : {path, std::string_view("/"), std::string_view("")}) {
      const int* got = table.lookup(host, query_path);
      FUZZ_CHECK((got ? std::optional<int>(*got) : std::nullopt) ==
                 brute_force(reference, host, query_path));
    }
    for (const auto& [key, unused] : reference) {
      const int* got = table.lookup(host, key.second);
      FUZZ_CHECK((got ? std::optional<int>(*got) : std::nullopt) ==
                 brute_force(reference, host, key.second));
    }
  }
  return 0;
}
