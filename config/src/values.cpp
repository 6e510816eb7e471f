// Durations and sizes: pure functions over strings.

#include <cstdint>
#include <limits>
#include <utility>

#include "hearth/config/parse.hpp"

namespace hearth::config {
namespace {

struct NumberAndUnit {
  std::uint64_t number = 0;
  std::string_view unit;
};

// Leading decimal digits (at least one) and whatever follows; nullopt on overflow.
std::optional<NumberAndUnit> split_number(std::string_view text) {
  NumberAndUnit out;
  std::size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    const std::uint64_t digit = static_cast<std::uint64_t>(text[i] - '0');
    if (out.number > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
      return std::nullopt;
    }
    out.number = out.number * 10 + digit;
  }
  if (i == 0) {
    return std::nullopt;  // empty, or a sign / space / letter first
  }
  out.unit = text.substr(i);
  return out;
}

std::optional<std::uint64_t> checked_multiply(std::uint64_t a, std::uint64_t b,
                                              std::uint64_t limit) {
  if (b != 0 && a > limit / b) {
    return std::nullopt;
  }
  return a * b;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  static constexpr std::pair<std::string_view, std::uint64_t> units[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
  const auto parts = split_number(text);
  if (!parts) {
    return std::nullopt;
  }
  for (const auto& [name, millis] : units) {
    if (parts->unit == name) {
      const auto limit = static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max());
      const auto total = checked_multiply(parts->number, millis, limit);
      if (!total) {
        return std::nullopt;
      }
      return Duration(static_cast<Duration::rep>(*total));
    }
  }
  return std::nullopt;  // no unit, or an unknown one
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  static constexpr std::pair<std::string_view, std::uint64_t> units[] = {
      {"", 1},
      {"B", 1},
      {"KB", 1'000},
      {"MB", 1'000'000},
      {"GB", 1'000'000'000},
      {"TB", 1'000'000'000'000},
      {"KiB", 1ull << 10},
      {"MiB", 1ull << 20},
      {"GiB", 1ull << 30},
      {"TiB", 1ull << 40},
  };
  const auto parts = split_number(text);
  if (!parts) {
    return std::nullopt;
  }
  for (const auto& [name, factor] : units) {
    if (parts->unit == name) {
      return checked_multiply(parts->number, factor, std::numeric_limits<std::uint64_t>::max());
    }
  }
  return std::nullopt;
}

}  // namespace hearth::config
