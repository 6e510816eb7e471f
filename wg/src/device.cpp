// Text forms of addresses and keys; X25519 keys through OpenSSL.

#include "hearth/wg/device.hpp"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/socket.h>

#include <charconv>
#include <memory>
#include <stdexcept>

namespace hearth::wg {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};

std::optional<unsigned> parse_uint(std::string_view text, unsigned max) {
  unsigned value = 0;
  if (text.empty() || text.size() > 10 || (text.size() > 1 && text[0] == '0')) {
    return std::nullopt;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value > max) {
    return std::nullopt;
  }
  return value;
}

constexpr std::string_view b64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family != AF_INET && family != AF_INET6) {
    return "";
  }
  ::inet_ntop(family, bytes.data(), buf, sizeof buf);
  return buf;
}

std::string IpPrefix::to_string() const { return address.to_string() + "/" + std::to_string(cidr); }

IpPrefix IpPrefix::network() const {
  IpPrefix out = *this;
  const std::size_t bits = address.size() * 8;
  for (std::size_t bit = cidr; bit < bits; ++bit) {
    out.address.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  return out;
}

bool IpPrefix::contains(const IpAddress& a) const {
  if (a.family != address.family) {
    return false;
  }
  IpPrefix other{a, cidr};
  return other.network().address == network().address;
}

std::string SocketEndpoint::to_string() const {
  const std::string host = address.to_string();
  return (address.family == AF_INET6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<IpAddress> parse_ip(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
    return std::nullopt;
  }
  const std::string s(text);
  IpAddress out;
  if (::inet_pton(AF_INET, s.c_str(), out.bytes.data()) == 1) {
    out.family = AF_INET;
    return out;
  }
  if (::inet_pton(AF_INET6, s.c_str(), out.bytes.data()) == 1) {
    out.family = AF_INET6;
    return out;
  }
  return std::nullopt;
}

std::optional<IpPrefix> parse_prefix(std::string_view text, bool allow_bare) {
  const std::size_t slash = text.find('/');
  auto address = parse_ip(text.substr(0, slash));
  if (!address) {
    return std::nullopt;
  }
  const unsigned max = address->family == AF_INET ? 32 : 128;
  if (slash == std::string_view::npos) {
    if (!allow_bare) {
      return std::nullopt;
    }
    return IpPrefix{*address, static_cast<std::uint8_t>(max)};
  }
  auto cidr = parse_uint(text.substr(slash + 1), max);
  if (!cidr) {
    return std::nullopt;
  }
  return IpPrefix{*address, static_cast<std::uint8_t>(*cidr)};
}

std::optional<SocketEndpoint> parse_socket_endpoint(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return std::nullopt;  // IPv6 needs brackets
    }
  }
  auto address = parse_ip(host);
  auto number = parse_uint(port, 65535);
  if (!address || !number || (text.front() == '[') != (address->family == AF_INET6)) {
    return std::nullopt;
  }
  return SocketEndpoint{*address, static_cast<std::uint16_t>(*number)};
}

Key generate_private_key() {
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    throw std::runtime_error("cannot generate an X25519 key (OpenSSL)");
  }
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(raw);
  Key key{};
  std::size_t len = key.size();
  if (EVP_PKEY_get_raw_private_key(pkey.get(), key.data(), &len) != 1 || len != key.size()) {
    throw std::runtime_error("cannot read an X25519 key (OpenSSL)");
  }
  return key;
}

std::optional<Key> public_key_of(const Key& private_key) {
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_X25519, nullptr, private_key.data(), private_key.size()));
  Key out{};
  std::size_t len = out.size();
  if (!pkey || EVP_PKEY_get_raw_public_key(pkey.get(), out.data(), &len) != 1 ||
      len != out.size()) {
    return std::nullopt;
  }
  return out;
}

std::string key_to_base64(const Key& key) {
  std::string out;
  out.reserve(44);
  for (std::size_t i = 0; i < key.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, key.size() - i);
    std::uint32_t v = static_cast<std::uint32_t>(key[i]) << 16;
    if (n > 1) v |= static_cast<std::uint32_t>(key[i + 1]) << 8;
    if (n > 2) v |= key[i + 2];
    out += b64_alphabet[(v >> 18) & 63];
    out += b64_alphabet[(v >> 12) & 63];
    out += n > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
    out += n > 2 ? b64_alphabet[v & 63] : '=';
  }
  return out;
}

std::optional<Key> key_from_base64(std::string_view text) {
  // 32 bytes: 43 significant characters and one '='; the last character's low 2 bits are 0.
  if (text.size() != 44 || text[43] != '=') {
    return std::nullopt;
  }
  Key key{};
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t out = 0;
  for (std::size_t i = 0; i < 43; ++i) {
    const std::size_t v = b64_alphabet.find(text[i]);
    if (v == std::string_view::npos) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (out < key.size()) {
        key[out++] = static_cast<std::uint8_t>(acc >> bits);
      }
    }
  }
  if (out != key.size() || (acc & ((1u << bits) - 1)) != 0) {
    return std::nullopt;  // non-canonical trailing bits
  }
  return key;
}

std::string key_to_hex(const Key& key) {
  constexpr std::string_view hex = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (const std::uint8_t b : key) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

std::optional<Key> key_from_hex(std::string_view text) {
  if (text.size() != 64) {
    return std::nullopt;
  }
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) {
    const int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    key[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return key;
}

bool key_is_zero(const Key& key) {
  std::uint8_t acc = 0;
  for (const std::uint8_t b : key) acc |= b;
  return acc == 0;
}

}  // namespace hearth::wg
