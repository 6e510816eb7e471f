// libFuzzer: policy::normalize_target over arbitrary request-targets (issue 9).
// Besides sanitizer reports it checks the properties the policy engine relies
// on: both forms start with '/', hold no "//" and no "." or ".." segment, are
// fixed points (normalizing again changes nothing), never hold a percent
// escape of an unreserved character, keep the query byte for byte; and the
// match form has no %2F, %5C or '\' left, so no spelling of a path escapes a
// prefix policy the canonical spelling would hit; and the fast path for
// already-normal paths gives what the full normalization gives.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "hearth/edge/policy.hpp"

using hearth::edge::policy::normalize_target;

#define FUZZ_CHECK(condition)                                                            \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

namespace {

void check_clean_path(std::string_view path) {
  FUZZ_CHECK(!path.empty() && path.front() == '/');
  FUZZ_CHECK(path.find("//") == std::string_view::npos);
  FUZZ_CHECK(path.find("/./") == std::string_view::npos);
  FUZZ_CHECK(path.find("/../") == std::string_view::npos);
  FUZZ_CHECK(!path.ends_with("/.") && !path.ends_with("/.."));
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') continue;
    FUZZ_CHECK(i + 2 < path.size());
    const char a = path[i + 1], b = path[i + 2];
    FUZZ_CHECK((a >= '0' && a <= '9') || (a >= 'A' && a <= 'F'));
    FUZZ_CHECK((b >= '0' && b <= '9') || (b >= 'A' && b <= 'F'));
    const int v = (a <= '9' ? a - '0' : a - 'A' + 10) * 16 + (b <= '9' ? b - '0' : b - 'A' + 10);
    const bool unreserved = (v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z') ||
                            (v >= '0' && v <= '9') || v == '-' || v == '.' || v == '_' || v == '~';
    FUZZ_CHECK(!unreserved);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view target(reinterpret_cast<const char*>(data), size);
  const auto n = normalize_target(target);
  if (!n || target == "*") return 0;
  const std::size_t q = target.find('?');
  const std::string_view query =
      q == std::string_view::npos ? std::string_view() : target.substr(q);
  FUZZ_CHECK(std::string_view(n->forward).ends_with(query));
  const std::string_view forward_path =
      std::string_view(n->forward).substr(0, n->forward.size() - query.size());
  check_clean_path(forward_path);
  check_clean_path(n->match);
  FUZZ_CHECK(n->match.find("%2F") == std::string::npos);
  FUZZ_CHECK(n->match.find("%5C") == std::string::npos);
  FUZZ_CHECK(n->match.find('\\') == std::string::npos);
  FUZZ_CHECK(n->match.find('?') == std::string::npos);
  // The fast path (a path with nothing to normalize is returned as it is)
  // agrees with the full one: a leading "/." forces the full path and must
  // change nothing.
  const auto slow = normalize_target("/." + std::string(target));
  FUZZ_CHECK(slow && slow->forward == n->forward && slow->match == n->match);
  // Fixed points.
  const auto again = normalize_target(n->forward);
  FUZZ_CHECK(again && again->forward == n->forward && again->match == n->match);
  const auto match_again = normalize_target(n->match);
  FUZZ_CHECK(match_again && match_again->forward == n->match && match_again->match == n->match);
  return 0;
}
