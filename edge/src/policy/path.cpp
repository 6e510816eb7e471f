// Path normalization before any path-scoped policy and before routing, in the
// spirit of Envoy's normalize_path + merge_slashes: RFC 3986 6.2.2 (decode
// percent-encoded unreserved characters, upper-case the other escapes) and
// 5.2.4 (remove dot segments), plus "//" merging.

#include <string>
#include <vector>

#include "hearth/edge/policy.hpp"

namespace hearth::edge::policy {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Percent escapes: unreserved decoded, others kept upper-case; nullopt on a
// broken escape or %00. slashes_too: %2F and %5C become '/', and so does '\'.
std::optional<std::string> decode(std::string_view path, bool slashes_too) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '%') {
      if (i + 2 >= path.size()) return std::nullopt;
      const int hi = hex_value(path[i + 1]);
      const int lo = hex_value(path[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      const auto v = static_cast<unsigned char>(hi * 16 + lo);
      if (v == 0) return std::nullopt;
      if (is_unreserved(v)) {
        out += static_cast<char>(v);
      } else if (slashes_too && (v == '/' || v == '\\')) {
        out += '/';
      } else {
        out += '%';
        out += kHex[v >> 4];
        out += kHex[v & 15];
      }
      i += 2;
    } else if (slashes_too && c == '\\') {
      out += '/';
    } else {
      out += c;
    }
  }
  return out;
}

// "//" merged, "." and ".." removed; ".." at the root stays at the root. A
// trailing '/' (or a final "." / "..") keeps the result a directory.
std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> segments;
  bool trailing = false;
  std::size_t i = 0;
  while (i <= path.size()) {
    const std::size_t slash = path.find('/', i);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    const std::string_view seg = path.substr(i, end - i);
    const bool last = slash == std::string_view::npos;
    if (seg.empty()) {
      trailing = last;  // "a/" ends in a directory
    } else if (seg == ".") {
      trailing = true;
    } else if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
      trailing = true;
    } else {
      segments.push_back(seg);
      trailing = false;
    }
    if (last) break;
    i = slash + 1;
  }
  std::string out;
  out.reserve(path.size() + 1);
  for (const auto& seg : segments) {
    out += '/';
    out += seg;
  }
  if (out.empty() || trailing) out += '/';
  return out;
}

}  // namespace

std::optional<NormalizedTarget> normalize_target(std::string_view target) {
  if (target == "*") return NormalizedTarget{"*", "*"};
  if (target.empty() || target.front() != '/') return std::nullopt;
  const std::size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query =
      q == std::string_view::npos ? std::string_view() : target.substr(q);
  // Most paths are normalized already: no escape, no backslash, no empty,
  // "." or ".." segment (each of which needs one of these substrings). They
  // are their own normal form; skip the copies (4 allocations a request).
  if (path.find_first_of("%\\") == std::string_view::npos &&
      path.find("//") == std::string_view::npos && path.find("/.") == std::string_view::npos) {
    return NormalizedTarget{std::string(target), std::string(path)};
  }
  auto decoded = decode(path, false);
  if (!decoded) return std::nullopt;
  NormalizedTarget out;
  out.forward = remove_dot_segments(*decoded);
  // The match form starts from the forward form: decoding is idempotent on it
  // (unreserved are already decoded), so only the slash escapes change.
  auto loose = decode(out.forward, true);
  if (!loose) return std::nullopt;
  out.match = remove_dot_segments(*loose);
  out.forward.append(query);
  return out;
}

}  // namespace hearth::edge::policy
