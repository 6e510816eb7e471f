#include "h2/h2_head.hpp"

#include <boost/beast/http/field.hpp>
#include <cctype>

namespace hearth::edge {
namespace {

namespace http = boost::beast::http;

bool is_token_lower(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// RFC 9110 5.5 field-value: VCHAR, obs-text, SP and HTAB inside; no control
// characters (CR, LF and NUL above all: they would split the HTTP/1.1 head),
// no leading or trailing whitespace.
bool value_ok(std::string_view v) {
  for (unsigned char c : v) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return v.empty() ||
         (v.front() != ' ' && v.front() != '\t' && v.back() != ' ' && v.back() != '\t');
}

// A request-target or :authority: visible ASCII only (what Beast's parser takes).
bool target_ok(std::string_view v) {
  for (unsigned char c : v) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    bool ok = std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                     std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (std::tolower(x) != std::tolower(y)) return false;
  }
  return true;
}

H2HeadError bad(std::string reason) { return {http::status::bad_request, std::move(reason)}; }

}  // namespace

std::optional<H2HeadError> h2_to_http1_head(std::span<const H2Field> fields, bool end_stream,
                                            std::string_view ws_key, http::request_header<>& out,
                                            bool& websocket) {
  out = http::request_header<>{};
  websocket = false;
  std::optional<std::string_view> method, scheme, authority, path, protocol;
  bool regular_seen = false;
  bool has_length = false;
  std::string cookie;
  bool has_cookie = false;
  std::vector<const H2Field*> regular;
  regular.reserve(fields.size());

  for (const auto& f : fields) {
    if (!f.name.empty() && f.name[0] == ':') {
      if (regular_seen) return bad("pseudo header after a regular one");
      std::optional<std::string_view>* slot = nullptr;
      if (f.name == ":method") {
        slot = &method;
      } else if (f.name == ":scheme") {
        slot = &scheme;
      } else if (f.name == ":authority") {
        slot = &authority;
      } else if (f.name == ":path") {
        slot = &path;
      } else if (f.name == ":protocol") {
        slot = &protocol;
      } else {
        return bad("unknown pseudo header");
      }
      if (*slot) return bad("repeated pseudo header");
      if (!value_ok(f.value)) return bad("bad pseudo header value");
      *slot = f.value;
      continue;
    }
    regular_seen = true;
    if (!is_token_lower(f.name)) return bad("bad header name");
    if (!value_ok(f.value)) return bad("bad header value");
    const std::string& n = f.name;
    if (n == "connection" || n == "keep-alive" || n == "proxy-connection" ||
        n == "transfer-encoding" || n == "upgrade") {
      return bad("connection-specific header");
    }
    if (n == "te") {
      if (!iequals(f.value, "trailers")) return bad("te other than trailers");
      continue;  // hop-by-hop either way
    }
    if (n == "cookie") {
      if (has_cookie) cookie += "; ";
      cookie += f.value;
      has_cookie = true;
      continue;
    }
    if (n == "content-length") has_length = true;
    regular.push_back(&f);
  }

  if (!method || method->empty()) return bad("no :method");
  if (!is_token(*method)) return bad("bad :method");
  if (path && !target_ok(*path)) return bad("bad :path");
  if (authority && !target_ok(*authority)) return bad("bad :authority");
  const bool connect = *method == "CONNECT";
  if (protocol) {
    if (!connect) return bad(":protocol without CONNECT");
    if (!iequals(*protocol, "websocket")) return bad("unsupported :protocol");
    if (!scheme || !path || !authority || path->empty()) return bad("incomplete extended CONNECT");
    websocket = true;
  } else if (connect) {
    if (!authority || scheme || path) return bad("malformed CONNECT");
  } else {
    if (!scheme || !path || path->empty()) return bad("no :scheme or :path");
  }
  if (path && (*path)[0] != '/' && !(*path == "*" && *method == "OPTIONS")) {
    return bad("bad :path");
  }
  if (authority && authority->empty()) return bad("empty :authority");

  out.version(11);
  if (websocket) {
    out.method(http::verb::get);
  } else {
    out.method_string(*method);
  }
  out.target(connect && !websocket ? *authority : *path);
  if (authority) out.set(http::field::host, *authority);
  for (const H2Field* f : regular) {
    if (f->name == "host") {
      if (authority) continue;  // :authority wins
    }
    if (websocket && f->name == "sec-websocket-key") continue;
    out.insert(f->name, f->value);
  }
  if (has_cookie) out.set(http::field::cookie, cookie);
  if (websocket) {
    out.set(http::field::connection, "Upgrade");
    out.set(http::field::upgrade, "websocket");
    out.set(http::field::sec_websocket_key, ws_key);
    if (out.find(http::field::sec_websocket_version) == out.end()) {
      out.set(http::field::sec_websocket_version, "13");
    }
    out.erase(http::field::content_length);
  } else if (!has_length && !end_stream && !connect) {
    out.set(http::field::transfer_encoding, "chunked");
  }
  return std::nullopt;
}

}  // namespace hearth::edge
