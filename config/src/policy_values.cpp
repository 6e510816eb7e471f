// Policy values (issue 9): rates, CIDR ranges, htpasswd files. Pure functions.

#include <arpa/inet.h>
#include <crypt.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "hearth/config/policy.hpp"

namespace hearth::config {

bool CidrRange::contains(const std::array<std::uint8_t, 16>& address) const {
  const unsigned full = prefix_len / 8;
  if (std::memcmp(address.data(), bytes.data(), full) != 0) return false;
  const unsigned rest = prefix_len % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (address[full] & mask) == bytes[full];
}

std::optional<double> parse_rate(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  const std::string_view number = text.substr(0, slash);
  const std::string_view unit = text.substr(slash + 1);
  double value = 0;
  for (char c : number) {
    if (!((c >= '0' && c <= '9') || c == '.')) return std::nullopt;
  }
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size()) return std::nullopt;
  double seconds = 0;
  if (unit == "s") {
    seconds = 1;
  } else if (unit == "m") {
    seconds = 60;
  } else if (unit == "h") {
    seconds = 3600;
  } else {
    return std::nullopt;
  }
  const double rate = value / seconds;
  if (!(rate > 0) || !std::isfinite(rate) || rate > 1e9) return std::nullopt;
  return rate;
}

std::optional<std::array<std::uint8_t, 16>> parse_address16(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  const std::string s(text);
  std::array<std::uint8_t, 16> out{};
  if (s.find(':') == std::string::npos) {
    in_addr v4{};
    if (::inet_pton(AF_INET, s.c_str(), &v4) != 1) return std::nullopt;
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, s.c_str(), &v6) != 1) return std::nullopt;
  std::memcpy(out.data(), &v6, 16);
  return out;
}

std::optional<CidrRange> parse_cidr(std::string_view text) {
  CidrRange range;
  range.text = std::string(text);
  const auto slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  const bool v4 = address.find(':') == std::string_view::npos;
  auto bytes = parse_address16(address);
  if (!bytes) return std::nullopt;
  unsigned len = v4 ? 32 : 128;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    unsigned n = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc() || end != digits.data() + digits.size() || n > len) return std::nullopt;
    len = n;
  }
  range.prefix_len = v4 ? len + 96 : len;
  range.bytes = *bytes;
  // Host bits must be zero: "192.0.2.1/24" is more likely a typo than intent.
  for (unsigned bit = range.prefix_len; bit < 128; ++bit) {
    if (range.bytes[bit / 8] & (0x80 >> (bit % 8))) return std::nullopt;
  }
  return range;
}

namespace {

bool crypt_chars(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '/';
  });
}

// A complete hash, not just a setting: "$2y$CC$" + 53 characters (cost 04..31),
// or "$y$params$salt$43 characters".
bool hash_shape_ok(std::string_view hash, bool bcrypt) {
  if (bcrypt) {
    if (hash.size() != 60 || hash[6] != '$') return false;
    const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
    return hash[4] >= '0' && hash[4] <= '9' && hash[5] >= '0' && hash[5] <= '9' && cost >= 4 &&
           cost <= 31 && crypt_chars(hash.substr(7));
  }
  const std::string_view rest = hash.substr(3);  // after "$y$"
  const auto a = rest.find('$');
  if (a == std::string_view::npos) return false;
  const auto b = rest.find('$', a + 1);
  if (b == std::string_view::npos) return false;
  return crypt_chars(rest.substr(0, a)) && crypt_chars(rest.substr(a + 1, b - a - 1)) &&
         rest.substr(b + 1).size() == 43 && crypt_chars(rest.substr(b + 1));
}

}  // namespace

HtpasswdResult parse_htpasswd(std::string_view text) {
  HtpasswdResult result;
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      result.error = HtpasswdError{line_no, "expected user:hash"};
      return result;
    }
    std::string_view user = line.substr(0, colon);
    std::string_view hash = line.substr(colon + 1);
    // htpasswd writes exactly "user:hash"; tolerate trailing fields (",comment" is not one).
    if (auto extra = hash.find(':'); extra != std::string_view::npos) hash = hash.substr(0, extra);
    const bool bcrypt =
        hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$");
    const bool yescrypt = hash.starts_with("$y$");
    if (!bcrypt && !yescrypt) {
      result.error = HtpasswdError{
          line_no, "user \"" + std::string(user) +
                       "\": unsupported hash (only bcrypt $2y$ and yescrypt $y$; e.g. "
                       "`htpasswd -B` or `mkpasswd -m yescrypt`)"};
      return result;
    }
    const std::string setting(hash);
    if (!hash_shape_ok(hash, bcrypt) || crypt_checksalt(setting.c_str()) != CRYPT_SALT_OK) {
      result.error =
          HtpasswdError{line_no, "user \"" + std::string(user) + "\": malformed or disabled hash"};
      return result;
    }
    for (const auto& u : result.users) {
      if (u.user == user) {
        result.error = HtpasswdError{line_no, "user \"" + std::string(user) + "\" listed twice"};
        return result;
      }
    }
    result.users.push_back(HtpasswdUser{std::string(user), setting});
  }
  return result;
}

}  // namespace hearth::config
