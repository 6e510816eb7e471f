#pragma once
// Loading and checking configuration files. Errors name file, line and key.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/config/config.hpp"

namespace hearth::config {

struct Problem {
  std::filesystem::path file;
  int line = 0;    // 1-based; 0 when unknown (e.g. a missing required key: line of its table)
  int column = 0;  // 1-based; 0 when unknown
  std::string key; // dotted path, e.g. "origins[1].hostnames[0]" or "edge.listen_https"
  std::string message;
  // "edge.toml:12:5: origins[1].hostnames[0]: not a valid hostname pattern"
  std::string to_string() const;
};

template <class T>
struct LoadResult {
  std::optional<T> config;        // set only when problems is empty
  std::vector<Problem> problems;  // every problem found, in file order
};

// Parse TOML text. `source` is used in messages and to resolve relative paths
// (relative to the file's directory). Checks types, unknown keys, addresses,
// durations, sizes; and that referenced files exist and are readable
// (certificates, keys). Never throws.
LoadResult<EdgeConfig> parse_edge_config(std::string_view text, const std::filesystem::path& source);
LoadResult<OriginConfig> parse_origin_config(std::string_view text,
                                             const std::filesystem::path& source);

// Read the file, then parse. A missing/unreadable file is one Problem.
LoadResult<EdgeConfig> load_edge_config(const std::filesystem::path& file);
LoadResult<OriginConfig> load_origin_config(const std::filesystem::path& file);

// Value parsers, exposed for unit tests and reuse. std::nullopt on bad input.
std::optional<Duration> parse_duration(std::string_view text);     // "250ms" "30s" "5m" "2h" "7d"
std::optional<std::uint64_t> parse_size(std::string_view text);    // "512", "64KB", "100MB", "1GiB"
std::optional<Endpoint> parse_endpoint(std::string_view text);     // "0.0.0.0:443" "[::1]:80" "h:1"
std::optional<ServiceUrl> parse_service_url(std::string_view text);// "http://127.0.0.1:3000"
bool valid_hostname_pattern(std::string_view pattern);             // "a.example.com" "*.example.com"

}  // namespace hearth::config
