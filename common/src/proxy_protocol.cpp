// PROXY protocol v1/v2 codec (see proxy_protocol.hpp).

#include "hearth/common/proxy_protocol.hpp"

#include <array>
#include <charconv>
#include <cstring>

namespace hearth::proxy_protocol {
namespace {

using boost::asio::ip::address;
using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;

constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);
constexpr std::string_view kV1Signature = "PROXY ";
constexpr std::size_t kV1Max = 107;

Parsed fail(std::string why) {
  Parsed p;
  p.status = Status::invalid;
  p.error = std::move(why);
  return p;
}

std::optional<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

std::optional<address> parse_ip(std::string_view s, bool v6) {
  if (s.empty() || s.size() > 45) return std::nullopt;
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || c == '.' ||
                    (v6 && (c == ':' || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
    if (!ok) return std::nullopt;
  }
  boost::system::error_code ec;
  if (v6) {
    auto a = boost::asio::ip::make_address_v6(std::string(s), ec);
    if (ec) return std::nullopt;
    return address(a);
  }
  auto a = boost::asio::ip::make_address_v4(std::string(s), ec);
  if (ec) return std::nullopt;
  return address(a);
}

Parsed parse_v1(std::string_view data) {
  const auto end = data.find("\r\n");
  if (end == std::string_view::npos) {
    if (data.size() >= kV1Max) return fail("v1 header without CRLF in 107 bytes");
    // Only printable characters may come before the CRLF.
    for (char c : data) {
      if (c != '\r' && (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)) {
        return fail("v1 header with a control character");
      }
    }
    Parsed p;
    p.status = Status::need_more;
    return p;
  }
  if (end + 2 > kV1Max) return fail("v1 header over 107 bytes");
  std::string_view line = data.substr(kV1Signature.size(), end - kV1Signature.size());
  std::array<std::string_view, 5> f{};
  std::size_t n = 0;
  while (!line.empty() && n < f.size()) {
    const auto sp = line.find(' ');
    f[n++] = line.substr(0, sp);
    line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  }
  Parsed p;
  p.consumed = end + 2;
  p.header.version = 1;
  if (n >= 1 && f[0] == "UNKNOWN") {  // the rest of the line is ignored (spec 2.1)
    p.status = Status::complete;
    p.header.local = true;
    return p;
  }
  if (n != 5 || !line.empty() || (f[0] != "TCP4" && f[0] != "TCP6")) {
    return fail("v1 header: expected TCP4|TCP6 src dst sport dport");
  }
  const bool v6 = f[0] == "TCP6";
  auto src = parse_ip(f[1], v6);
  auto dst = parse_ip(f[2], v6);
  auto sport = parse_port(f[3]);
  auto dport = parse_port(f[4]);
  if (!src || !dst || !sport || !dport) return fail("v1 header: bad address or port");
  p.status = Status::complete;
  p.header.source = {*src, *sport};
  p.header.destination = {*dst, *dport};
  return p;
}

std::uint16_t be16(const char* p) {
  return static_cast<std::uint16_t>((static_cast<unsigned char>(p[0]) << 8) |
                                    static_cast<unsigned char>(p[1]));
}

Parsed parse_v2(std::string_view data) {
  if (data.size() < 16) {
    Parsed p;
    p.status = Status::need_more;
    return p;
  }
  const auto ver_cmd = static_cast<unsigned char>(data[12]);
  const auto fam = static_cast<unsigned char>(data[13]);
  const std::size_t len = be16(data.data() + 14);
  if ((ver_cmd >> 4) != 2) return fail("v2 header: version is not 2");
  const unsigned cmd = ver_cmd & 0x0f;
  if (cmd > 1) return fail("v2 header: unknown command");
  if (16 + len > kMaxHeaderSize) return fail("v2 header over 4096 bytes");
  if (data.size() < 16 + len) {
    Parsed p;
    p.status = Status::need_more;
    return p;
  }
  Parsed p;
  p.consumed = 16 + len;
  p.header.version = 2;
  const char* a = data.data() + 16;
  if (cmd == 0) {  // LOCAL: addresses (if any) are ignored
    p.status = Status::complete;
    p.header.local = true;
    return p;
  }
  if (fam == 0x11) {  // TCP over IPv4
    if (len < 12) return fail("v2 header: short IPv4 address block");
    address_v4::bytes_type s{}, d{};
    std::memcpy(s.data(), a, 4);
    std::memcpy(d.data(), a + 4, 4);
    p.header.source = {address(address_v4(s)), be16(a + 8)};
    p.header.destination = {address(address_v4(d)), be16(a + 10)};
  } else if (fam == 0x21) {  // TCP over IPv6
    if (len < 36) return fail("v2 header: short IPv6 address block");
    address_v6::bytes_type s{}, d{};
    std::memcpy(s.data(), a, 16);
    std::memcpy(d.data(), a + 16, 16);
    p.header.source = {address(address_v6(s)), be16(a + 32)};
    p.header.destination = {address(address_v6(d)), be16(a + 34)};
  } else if ((fam >> 4) > 3 || (fam & 0x0f) > 2) {
    return fail("v2 header: unknown address family");
  } else {
    p.header.local = true;  // UNSPEC, UDP, unix sockets: no TCP client address
  }
  p.status = Status::complete;
  return p;
}

bool is_v4(const address& a) { return a.is_v4() || a.to_v6().is_v4_mapped(); }

address_v4 as_v4(const address& a) {
  return a.is_v4() ? a.to_v4()
                   : boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
}

address_v6 as_v6(const address& a) {
  return a.is_v6() ? a.to_v6()
                   : boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, a.to_v4());
}

}  // namespace

Parsed parse(std::string_view data) {
  const std::size_t n1 = std::min(data.size(), kV1Signature.size());
  if (data.substr(0, n1) == kV1Signature.substr(0, n1)) {
    if (data.size() < kV1Signature.size()) return Parsed{};  // need_more
    return parse_v1(data);
  }
  const std::size_t n2 = std::min(data.size(), kV2Signature.size());
  if (data.substr(0, n2) == kV2Signature.substr(0, n2)) {
    if (data.size() < kV2Signature.size()) return Parsed{};
    return parse_v2(data);
  }
  Parsed p;
  p.status = Status::absent;
  return p;
}

std::string encode_v1(const Endpoint& source, const Endpoint& destination) {
  const bool v4 = is_v4(source.address) && is_v4(destination.address);
  std::string out = v4 ? "PROXY TCP4 " : "PROXY TCP6 ";
  out += v4 ? as_v4(source.address).to_string() : as_v6(source.address).to_string();
  out += ' ';
  out += v4 ? as_v4(destination.address).to_string() : as_v6(destination.address).to_string();
  out += ' ' + std::to_string(source.port) + ' ' + std::to_string(destination.port) + "\r\n";
  return out;
}

std::string encode_v2(const Endpoint& source, const Endpoint& destination) {
  const bool v4 = is_v4(source.address) && is_v4(destination.address);
  std::string out(kV2Signature);
  out += static_cast<char>(0x21);              // version 2, PROXY
  out += static_cast<char>(v4 ? 0x11 : 0x21);  // TCP over IPv4 / IPv6
  const std::size_t len = v4 ? 12 : 36;
  out += static_cast<char>(len >> 8);
  out += static_cast<char>(len & 0xff);
  auto put = [&](const auto& bytes) {
    out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  };
  if (v4) {
    put(as_v4(source.address).to_bytes());
    put(as_v4(destination.address).to_bytes());
  } else {
    put(as_v6(source.address).to_bytes());
    put(as_v6(destination.address).to_bytes());
  }
  for (std::uint16_t port : {source.port, destination.port}) {
    out += static_cast<char>(port >> 8);
    out += static_cast<char>(port & 0xff);
  }
  return out;
}

std::optional<Endpoint> parse_client_field(std::string_view field) {
  const auto sp = field.rfind(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  const std::string_view ip = field.substr(0, sp);
  auto port = parse_port(field.substr(sp + 1));
  auto a = parse_ip(ip, ip.find(':') != std::string_view::npos);
  if (!a || !port) return std::nullopt;
  return Endpoint{*a, *port};
}

std::string header_for_client(int version, std::string_view client_field,
                              const Endpoint& destination) {
  const auto source = parse_client_field(client_field);
  if (!source) {
    if (version == 1) return "PROXY UNKNOWN\r\n";
    std::string local(kV2Signature);
    local += static_cast<char>(0x20);  // LOCAL
    local += std::string("\0\0\0", 3);
    return local;
  }
  return version == 1 ? encode_v1(*source, destination) : encode_v2(*source, destination);
}

}  // namespace hearth::proxy_protocol
