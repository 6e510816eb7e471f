#include "hearth/edge/http_rules.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <random>
#include <vector>

#include "hearth/common/route_match.hpp"

namespace hearth::edge {
namespace {

namespace http = boost::beast::http;

using namespace std::string_view_literals;

constexpr std::size_t kMaxRequestIdLength = 128;

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) {
      return false;
    }
  }
  return true;
}

bool istarts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

// RFC 9110 5.6.2 tchar.
bool is_tchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
    return true;
  }
  return "!#$%&'*+-.^_`|~"sv.find(c) != std::string_view::npos;
}

bool is_token(std::string_view text) {
  if (text.empty()) {
    return false;
  }
  for (char c : text) {
    if (!is_tchar(c)) {
      return false;
    }
  }
  return true;
}

// Every field line of `name`, joined as one comma-separated list (RFC 9110 5.3).
std::string joined_values(const http::request_header<>& req, std::string_view name) {
  std::string out;
  for (const auto& field : req) {
    if (!iequals(field.name_string(), name)) continue;
    if (!out.empty()) out += ", ";
    out.append(field.value());
  }
  return out;
}

std::string_view trim_ows(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

// Calls f(element) for every element of a comma-separated list field, over all
// of its field lines, with OWS trimmed; empty elements are passed too so that
// callers can decide whether to tolerate them. f returns false to stop.
template <class Fields, class F>
void for_each_list_element(const Fields& fields, http::field name, F&& f) {
  auto [first, last] = fields.equal_range(name);
  for (auto it = first; it != last; ++it) {
    std::string_view value = it->value();
    for (;;) {
      const std::size_t comma = value.find(',');
      if (!f(trim_ows(value.substr(0, comma)))) {
        return;
      }
      if (comma == std::string_view::npos) {
        break;
      }
      value.remove_prefix(comma + 1);
    }
  }
}

template <class Fields>
bool list_contains(const Fields& fields, http::field name, std::string_view token) {
  bool found = false;
  for_each_list_element(fields, name, [&](std::string_view element) {
    found = iequals(element, token);
    return !found;
  });
  return found;
}

// message::keep_alive() for a bare header (Beast only offers it on messages):
// HTTP/1.1 persists unless "close" is listed, HTTP/1.0 only if "keep-alive" is.
bool wants_keep_alive(const http::request_header<>& req) {
  if (req.version() >= 11) {
    return !list_contains(req, http::field::connection, "close");
  }
  return list_contains(req, http::field::connection, "keep-alive");
}

// Field values the edge itself writes must not be able to inject header lines.
bool is_header_safe(std::string_view value) {
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return false;
    }
  }
  return true;
}

template <class Fields>
void set_or_erase(Fields& fields, std::string_view name, std::string_view value) {
  if (value.empty() || !is_header_safe(value)) {
    fields.erase(name);
  } else {
    fields.set(name, value);
  }
}

bool is_absolute_form(std::string_view target) {
  return istarts_with(target, "http://") || istarts_with(target, "https://");
}

// Splits "http://authority/path?q" into authority and the rest ("/path?q", or
// "?q", or ""). Only meaningful when is_absolute_form(target).
std::pair<std::string_view, std::string_view> split_absolute_form(std::string_view target) {
  const std::size_t scheme_end = target.find("://") + 3;
  const std::string_view rest = target.substr(scheme_end);
  const std::size_t authority_end = rest.find_first_of("/?");
  if (authority_end == std::string_view::npos) {
    return {rest, {}};
  }
  return {rest.substr(0, authority_end), rest.substr(authority_end)};
}

std::optional<RequestReject> reject(http::status status, std::string reason) {
  return RequestReject{status, std::move(reason)};
}

std::optional<RequestReject> check_target(const http::request_header<>& req) {
  const std::string_view target = req.target();
  if (target.find('#') != std::string_view::npos) {
    return reject(http::status::bad_request, "fragment in request-target");
  }
  if (target.starts_with('/')) {
    return std::nullopt;
  }
  if (target == "*") {
    if (req.method() != http::verb::options) {
      return reject(http::status::bad_request,
                    "asterisk-form target on a method other than OPTIONS");
    }
    return std::nullopt;
  }
  if (is_absolute_form(target)) {
    const auto [authority, rest] = split_absolute_form(target);
    if (authority.find('@') != std::string_view::npos) {
      return reject(http::status::bad_request, "userinfo in absolute-form target");
    }
    if (!normalize_host(authority)) {
      return reject(http::status::bad_request, "invalid host in absolute-form target");
    }
    if (!rest.empty() && !rest.starts_with('/')) {
      return reject(http::status::bad_request, "absolute-form target without a path");
    }
    return std::nullopt;
  }
  return reject(http::status::bad_request, "request-target is not origin-form or absolute-form");
}

std::optional<RequestReject> check_host(const http::request_header<>& req) {
  const std::size_t count = req.count(http::field::host);
  if (count > 1) {
    return reject(http::status::bad_request, "more than one Host");
  }
  if (count == 0) {
    if (req.version() == 11) {
      return reject(http::status::bad_request, "HTTP/1.1 request without Host");
    }
    return std::nullopt;
  }
  if (!normalize_host(req[http::field::host])) {
    return reject(http::status::bad_request, "invalid Host");
  }
  return std::nullopt;
}

// Each check below covers a shape Beast 1.81 accepts: it merges equal
// Content-Length values ("5, 5", or two lines of 5), treats a Transfer-Encoding
// that does not end in a single "chunked" as "no body" (so the body bytes would
// become the next request at the service), and accepts a Content-Length that
// follows a non-chunked Transfer-Encoding.
std::optional<RequestReject> check_framing(const http::request_header<>& req) {
  const std::size_t content_lengths = req.count(http::field::content_length);
  const bool has_transfer_encoding = req.count(http::field::transfer_encoding) > 0;
  if (content_lengths > 0 && has_transfer_encoding) {
    return reject(http::status::bad_request, "both Content-Length and Transfer-Encoding");
  }
  if (content_lengths > 1) {
    return reject(http::status::bad_request, "more than one Content-Length");
  }
  if (content_lengths == 1) {
    const std::string_view value = req[http::field::content_length];
    std::uint64_t length = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
    // from_chars accepts neither sign nor space, so this is "1*DIGIT, fits in 64 bits".
    if (value.empty() || ec != std::errc{} || end != value.data() + value.size()) {
      return reject(http::status::bad_request, "Content-Length is not a 64-bit decimal");
    }
  }
  if (has_transfer_encoding) {
    if (req.version() < 11) {
      return reject(http::status::bad_request, "Transfer-Encoding on HTTP/1.0");
    }
    std::size_t chunked = 0;
    std::size_t codings = 0;
    bool last_is_chunked = false;
    bool well_formed = true;
    for_each_list_element(req, http::field::transfer_encoding, [&](std::string_view coding) {
      if (!is_token(coding)) {
        well_formed = false;
        return false;
      }
      last_is_chunked = iequals(coding, "chunked");
      chunked += last_is_chunked ? 1 : 0;
      ++codings;
      return true;
    });
    if (!well_formed) {
      return reject(http::status::bad_request, "malformed Transfer-Encoding");
    }
    if (chunked != 1 || !last_is_chunked) {
      return reject(http::status::bad_request, "Transfer-Encoding does not end in one chunked");
    }
    if (codings > 1) {
      // Well framed, but a coding the edge does not decode and a service may
      // not know either (RFC 9112 6.1: 501).
      return reject(http::status::not_implemented, "transfer coding other than chunked");
    }
  }
  return std::nullopt;
}

// After check_framing: chunked, or a Content-Length (a plain decimal) other than 0.
bool has_body(const http::request_header<>& req) {
  if (req.count(http::field::transfer_encoding) > 0) {
    return true;
  }
  return req.count(http::field::content_length) > 0 &&
         req[http::field::content_length].find_first_not_of('0') != std::string_view::npos;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Percent-decodes a query parameter name ('+' is a space) and lowers it, for
// comparing with the redaction list. Bad escapes are kept as they are.
std::string decoded_lower_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '%' && i + 2 < name.size() && hex_digit(name[i + 1]) >= 0 &&
        hex_digit(name[i + 2]) >= 0) {
      c = static_cast<char>(hex_digit(name[i + 1]) * 16 + hex_digit(name[i + 2]));
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    out += to_lower(c);
  }
  return out;
}

// Removes Connection-named headers plus the fixed hop-by-hop set. Header names
// are copied out first: erasing a field invalidates views into the header.
template <class Fields>
void strip_hop_by_hop(Fields& fields, bool keep_upgrade) {
  std::vector<std::string> named;
  for_each_list_element(fields, http::field::connection, [&](std::string_view name) {
    // Framing and routing fields are end-to-end; letting a client name them away
    // would make the service frame the body differently from the edge.
    const bool protected_name =
        iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
        iequals(name, "host") ||
        (keep_upgrade && (iequals(name, "upgrade") || iequals(name, "connection")));
    if (is_token(name) && !protected_name) {
      named.emplace_back(name);
    }
    return true;
  });
  for (const std::string& name : named) {
    fields.erase(name);
  }
  fields.erase(http::field::keep_alive);
  fields.erase(http::field::proxy_connection);
  fields.erase(http::field::te);
  fields.erase(http::field::trailer);
  if (!keep_upgrade) {
    fields.erase(http::field::connection);
    fields.erase(http::field::upgrade);
  }
}

bool is_request_id_char(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
    return true;
  }
  return "._:+/=-"sv.find(c) != std::string_view::npos;
}

std::string_view status_hint(http::status status) {
  switch (status) {
    case http::status::bad_request:
      return "The request was malformed.";
    case http::status::not_found:
      return "No service is published for this host.";
    case http::status::request_timeout:
      return "The request took too long to arrive.";
    case http::status::method_not_allowed:
      return "This method is not allowed here.";
    case http::status::payload_too_large:
      return "The request body is larger than this server accepts.";
    case http::status::uri_too_long:
      return "The request URI is longer than this server accepts.";
    case http::status::not_implemented:
      return "This server does not implement what the request needs.";
    case http::status::request_header_fields_too_large:
      return "The request headers are larger than this server accepts.";
    case http::status::internal_server_error:
      return "The edge server hit an internal error.";
    case http::status::bad_gateway:
      return "The home service did not answer.";
    case http::status::service_unavailable:
      return "The home server is offline, retry shortly.";
    case http::status::gateway_timeout:
      return "The home service took too long to answer.";
    case http::status::http_version_not_supported:
      return "Only HTTP/1.0 and HTTP/1.1 are supported.";
    default:
      return {};
  }
}

void append_html_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
}

}  // namespace

std::optional<RequestReject> check_request_head(const http::request_header<>& req) {
  if (req.version() != 10 && req.version() != 11) {
    return reject(http::status::http_version_not_supported, "HTTP version is not 1.0 or 1.1");
  }
  if (auto rejected = check_target(req)) {
    return rejected;
  }
  if (auto rejected = check_host(req)) {
    return rejected;
  }
  if (auto rejected = check_framing(req)) {
    return rejected;
  }
  if (req.method() == http::verb::trace || req.method_string() == "TRACK") {
    return reject(http::status::method_not_allowed, "TRACE is not proxied");
  }
  if (is_websocket_upgrade(req) && has_body(req)) {
    return reject(http::status::bad_request, "WebSocket upgrade with a body");
  }
  return std::nullopt;
}

std::string_view requested_authority(const http::request_header<>& req) {
  const std::string_view target = req.target();
  if (is_absolute_form(target)) {
    return split_absolute_form(target).first;
  }
  return req[http::field::host];
}

std::optional<std::string> request_host(const http::request_header<>& req) {
  return normalize_host(requested_authority(req));
}

std::string_view origin_form_target(std::string_view target) {
  if (!is_absolute_form(target)) {
    return target;
  }
  const std::string_view rest = split_absolute_form(target).second;
  return rest.empty() ? "/"sv : rest;
}

bool is_websocket_upgrade(const http::request_header<>& req) {
  if (req.method() != http::verb::get || req.version() != 11) {
    return false;
  }
  if (!list_contains(req, http::field::connection, "upgrade")) {
    return false;
  }
  bool websocket = false;
  for_each_list_element(req, http::field::upgrade, [&](std::string_view protocol) {
    // protocol = protocol-name ["/" protocol-version]
    websocket = iequals(protocol.substr(0, protocol.find('/')), "websocket");
    return !websocket;
  });
  return websocket;
}

void prepare_upstream_request(http::request_header<>& req, const ForwardInfo& info) {
  if (is_absolute_form(req.target())) {
    const auto [authority, rest] = split_absolute_form(req.target());
    // Copies: both views point into req, which set() and target() reallocate.
    const std::string host(authority);
    const std::string target(rest.empty() ? "/"sv : rest);
    req.set(http::field::host, host);
    req.target(target);
  }
  strip_hop_by_hop(req, false);
  req.erase(http::field::proxy_authorization);
  // Only a trusted proxy's word about earlier hops is kept (every field line,
  // in order, as one list).
  std::string xff, forwarded;
  if (info.peer_trusted) {
    xff = joined_values(req, "X-Forwarded-For");
    forwarded = joined_values(req, "Forwarded");
  }
  const std::string_view hop = info.peer_ip.empty() ? info.client_ip : info.peer_ip;
  if (!hop.empty()) {
    xff = xff.empty() ? std::string(hop) : xff + ", " + std::string(hop);
  }
  const std::string element = forwarded_element(hop, info.host, info.proto);
  forwarded = forwarded.empty() ? element : forwarded + ", " + element;
  req.erase(http::field::forwarded);
  req.erase("X-Forwarded-Port");
  // Names are copied out first: erasing a field invalidates views into the header.
  std::vector<std::string> underscored;
  for (const auto& field : req) {
    if (field.name_string().find('_') != std::string_view::npos) {
      underscored.emplace_back(field.name_string());
    }
  }
  for (const std::string& name : underscored) {
    req.erase(name);
  }
  req.erase("True-Client-IP");
  req.erase("CF-Connecting-IP");
  set_or_erase(req, "X-Real-IP", info.client_ip);
  set_or_erase(req, "X-Forwarded-For", xff);
  set_or_erase(req, "Forwarded", forwarded);
  set_or_erase(req, "X-Forwarded-Proto", info.proto);
  set_or_erase(req, "X-Forwarded-Host", info.host);
  set_or_erase(req, "X-Request-ID", info.request_id);
  if (info.websocket) {
    req.set(http::field::connection, "Upgrade");
    req.set(http::field::upgrade, "websocket");
  } else if (info.keep_alive && req.version() == 11) {
    req.erase(http::field::connection);  // HTTP/1.1 persists by default
  } else {
    req.set(http::field::connection, "close");
  }
}

void prepare_downstream_response(http::response_header<>& res, bool websocket_101) {
  strip_hop_by_hop(res, websocket_101 && res.result() == http::status::switching_protocols);
}

std::string effective_request_id(std::string_view client_value, std::string_view generated) {
  if (client_value.empty() || client_value.size() > kMaxRequestIdLength) {
    return std::string(generated);
  }
  for (char c : client_value) {
    if (!is_request_id_char(c)) {
      return std::string(generated);
    }
  }
  return std::string(client_value);
}

std::string generate_request_id() {
  // Seeded once per thread: random_device may be a syscall, far too slow per request.
  thread_local std::mt19937_64 rng = [] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device(),
                       device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }();
  constexpr std::string_view kHex = "0123456789abcdef";
  std::string id(32, '0');
  for (std::size_t half = 0; half < 2; ++half) {
    std::uint64_t bits = rng();
    for (std::size_t i = 0; i < 16; ++i) {
      id[half * 16 + i] = kHex[bits & 0xf];
      bits >>= 4;
    }
  }
  return id;
}

http::response<http::string_body> make_error_response(http::status status, unsigned version,
                                                      bool keep_alive,
                                                      std::optional<unsigned> retry_after_seconds,
                                                      std::string_view request_id) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::server, "hearth");
  res.set(http::field::content_type, "text/html; charset=utf-8");
  res.set(http::field::cache_control, "no-store");
  set_or_erase(res, "X-Request-ID", request_id);
  if (retry_after_seconds) {
    res.set(http::field::retry_after, std::to_string(*retry_after_seconds));
  }
  if (status == http::status::method_not_allowed) {
    // RFC 9110 15.5.6: a 405 lists what is allowed. The edge refuses only
    // TRACE/TRACK; what a service allows is its own business.
    res.set(http::field::allow, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
  }

  std::string title = std::to_string(static_cast<unsigned>(status));
  title += ' ';
  title += http::obsolete_reason(status);
  std::string& body = res.body();
  body += "<!DOCTYPE html>\n<html><head><title>";
  append_html_escaped(body, title);
  body += "</title></head><body><h1>";
  append_html_escaped(body, title);
  body += "</h1>";
  if (const std::string_view hint = status_hint(status); !hint.empty()) {
    body += "<p>";
    body += hint;
    body += "</p>";
  }
  if (!request_id.empty()) {
    body += "<p>Request ID: <code>";
    append_html_escaped(body, request_id);
    body += "</code></p>";
  }
  body += "<hr><p>hearth</p></body></html>\n";

  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

http::response<http::string_body> make_redirect_to_https(const http::request_header<>& req,
                                                         std::optional<std::uint16_t> https_port) {
  const std::optional<std::string> host = request_host(req);
  if (!host) {
    return make_error_response(http::status::bad_request, req.version(), false, std::nullopt, {});
  }
  std::string location = "https://";
  location += *host;
  if (https_port && *https_port != 443) {
    location += ':';
    location += std::to_string(*https_port);
  }
  const std::string_view target = origin_form_target(req.target());
  location += (target == "*") ? "/"sv : target;

  http::response<http::string_body> res{http::status::moved_permanently, req.version()};
  res.set(http::field::server, "hearth");
  res.set(http::field::location, location);
  res.keep_alive(wants_keep_alive(req));
  res.prepare_payload();
  return res;
}

bool is_acme_challenge(std::string_view target) {
  return origin_form_target(target).starts_with("/.well-known/acme-challenge/");
}

std::string client_behind_proxies(
    const http::request_header<>& req, std::string_view peer_ip,
    const std::function<bool(const boost::asio::ip::address&)>& trusted) {
  const std::string list = joined_values(req, "X-Forwarded-For");
  std::string client(peer_ip);
  std::string_view rest = list;
  while (!rest.empty()) {
    const std::size_t comma = rest.rfind(',');
    const std::string_view entry =
        trim_ows(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(entry, ec);
    if (ec) break;  // not an address (nor "unknown" we could use): stop believing
    client = client_ip_string(address);
    if (!trusted(address)) break;
  }
  return client;
}

std::string forwarded_element(std::string_view for_ip, std::string_view host,
                              std::string_view proto) {
  const auto value = [](std::string_view v) {
    const bool token = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
             std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
    if (token) return std::string(v);
    std::string quoted = "\"";
    for (char c : v) {
      if (c == '"' || c == '\\') quoted += '\\';
      quoted += c;
    }
    return quoted + "\"";
  };
  std::string out;
  const auto add = [&](std::string_view name, std::string v) {
    if (!out.empty()) out += ';';
    out.append(name).append("=").append(v);
  };
  if (!for_ip.empty() && is_header_safe(for_ip)) {
    add("for", for_ip.find(':') != std::string_view::npos ? "\"[" + std::string(for_ip) + "]\""
                                                          : std::string(for_ip));
  }
  if (!host.empty() && is_header_safe(host)) add("host", value(host));
  if (!proto.empty() && is_header_safe(proto)) add("proto", value(proto));
  return out;
}

std::string client_ip_string(const boost::asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6())
        .to_string();
  }
  return address.to_string();
}

std::optional<RequestReject> check_request_limits(const http::request_header<>& req,
                                                  const RequestLimits& limits) {
  const std::string_view target = req.target();
  if (target.size() > limits.max_uri_size) {
    return reject(http::status::uri_too_long, "request-target longer than max_uri_size");
  }
  if (open_path(target).size() > kMaxOpenPath) {
    return reject(http::status::uri_too_long, "path longer than the tunnel carries");
  }
  if (limits.max_body_size > 0 && req.count(http::field::content_length) == 1) {
    const std::string_view value = req[http::field::content_length];
    std::uint64_t length = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
    if (ec == std::errc{} && end == value.data() + value.size() && length > limits.max_body_size) {
      return reject(http::status::payload_too_large, "Content-Length over max_body_size");
    }
  }
  return std::nullopt;
}

std::string_view open_path(std::string_view target) {
  const std::string_view origin_form = origin_form_target(target);
  const std::string_view path = origin_form.substr(0, origin_form.find('?'));
  return path.empty() ? "/"sv : path;
}

std::optional<http::status> client_body_error_status(const boost::system::error_code& ec) {
  if (ec == http::error::body_limit) {
    return http::status::payload_too_large;
  }
  // end_of_stream and partial_message are the client going away mid-body.
  if (ec.category() == http::make_error_code(http::error::bad_chunk).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message &&
      ec != http::error::need_more && ec != http::error::need_buffer) {
    return http::status::bad_request;
  }
  return std::nullopt;
}

std::size_t client_read_buffer_limit(std::uint32_t max_header_size) {
  return std::size_t{max_header_size} + kMaxChunkLine + 64 * 1024;
}

std::string redact_query(std::string_view target, std::span<const std::string> names) {
  const std::size_t question = target.find('?');
  if (question == std::string_view::npos || names.empty()) {
    return std::string(target);
  }
  std::string out(target.substr(0, question + 1));
  std::string_view query = target.substr(question + 1);
  for (;;) {
    const std::size_t end = query.find_first_of("&;");
    const std::string_view param = query.substr(0, end);
    const std::size_t equals = param.find('=');
    bool redact = false;
    if (equals != std::string_view::npos && equals + 1 < param.size()) {
      const std::string name = decoded_lower_name(param.substr(0, equals));
      for (const std::string& secret : names) {
        if (name == secret) {
          redact = true;
          break;
        }
      }
    }
    if (redact) {
      out += param.substr(0, equals + 1);
      out += "REDACTED";
    } else {
      out += param;
    }
    if (end == std::string_view::npos) {
      break;
    }
    out += query[end];
    query.remove_prefix(end + 1);
  }
  return out;
}

}  // namespace hearth::edge
