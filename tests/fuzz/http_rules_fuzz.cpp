// libFuzzer: arbitrary bytes as a request head, the way the edge sees them:
// Beast's parser first, then check_request_head() and, for what it accepts,
// prepare_upstream_request(). Beyond "no crash, no sanitizer report" it checks
// the property the rules exist for: the head sent to the service, parsed again
// by Beast, frames the body exactly as the edge did (no smuggling), and carries
// none of the hop-by-hop or spoofable headers. The same bytes are also tried as
// a response head through prepare_downstream_response(). The request target
// also goes through redact_query() (idempotent, keeps the path) and, for heads
// check_request_head() accepts, check_request_limits() and open_path().
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/edge/http_rules.hpp"

namespace http = boost::beast::http;
using namespace hearth::edge;

// Abort with the failed property: libFuzzer saves the input that caused it.
#define FUZZ_CHECK(condition)                                                            \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

namespace {

constexpr std::size_t kHeaderLimit = 16 * 1024;

template <class Parser>
bool parse_head(Parser& parser, std::string_view bytes) {
  parser.eager(false);
  parser.header_limit(kHeaderLimit);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
  return !ec && parser.is_header_done();
}

template <bool isRequest>
std::string serialize(const http::header<isRequest>& head) {
  std::ostringstream out;
  out << head;
  return out.str();
}

template <class Fields>
void check_no_hop_by_hop(const Fields& fields) {
  FUZZ_CHECK(fields.count(http::field::keep_alive) == 0);
  FUZZ_CHECK(fields.count(http::field::proxy_connection) == 0);
  FUZZ_CHECK(fields.count(http::field::te) == 0);
  FUZZ_CHECK(fields.count(http::field::trailer) == 0);
}

void fuzz_request(std::string_view bytes) {
  http::request_parser<http::empty_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  if (!parse_head(parser, bytes)) {
    return;
  }
  const http::request<http::empty_body>& req = parser.get();

  // Total functions: must not crash on anything Beast accepts.
  (void)request_host(req);
  (void)is_acme_challenge(req.target());
  const bool websocket = is_websocket_upgrade(req);
  const std::string request_id = effective_request_id(req["X-Request-ID"], "0123456789abcdef");
  FUZZ_CHECK(!request_id.empty() && request_id.size() <= 128);
  const auto redirect = make_redirect_to_https(req, 8443);
  FUZZ_CHECK(redirect.result() == http::status::moved_permanently ||
             redirect.result() == http::status::bad_request);

  // The access-log redaction is total and keeps everything but secret values.
  static const std::vector<std::string> kRedact{"token", "code", "key", "sig"};
  const std::string redacted = redact_query(req.target(), kRedact);
  FUZZ_CHECK(redact_query(redacted, kRedact) == redacted);
  const std::size_t question = req.target().find('?');
  FUZZ_CHECK(redacted.substr(0, redacted.find('?')) == req.target().substr(0, question));
  FUZZ_CHECK(redact_query(req.target(), {}) == req.target());

  if (const auto rejected = check_request_head(req)) {
    FUZZ_CHECK(rejected->status == http::status::bad_request ||
               rejected->status == http::status::not_implemented ||
               rejected->status == http::status::method_not_allowed ||
               rejected->status == http::status::http_version_not_supported);
    return;
  }
  const auto limited = check_request_limits(req, {64, 16});
  if (!limited) {
    FUZZ_CHECK(req.target().size() <= 64);
  }
  FUZZ_CHECK(open_path(req.target()).size() <= origin_form_target(req.target()).size() ||
             open_path(req.target()) == "/");

  // Accepted: framing is unambiguous and the routing host is valid.
  const bool has_length = req.count(http::field::content_length) == 1;
  const bool chunked = req.count(http::field::transfer_encoding) > 0;
  FUZZ_CHECK(!(has_length && chunked));
  FUZZ_CHECK(req.method() != http::verb::trace);
  FUZZ_CHECK(!(websocket && chunked));
  FUZZ_CHECK(parser.chunked() == chunked);
  FUZZ_CHECK(parser.content_length().has_value() == has_length);
  FUZZ_CHECK(request_host(req) || (req.version() == 10 && requested_authority(req).empty()));
  const std::string_view target = origin_form_target(req.target());
  FUZZ_CHECK(target.starts_with('/') || target == "*");

  http::request<http::empty_body> upstream = req;
  const ForwardInfo info{"192.0.2.1", "https", std::string(requested_authority(req)), request_id,
                         websocket};
  prepare_upstream_request(upstream, info);
  check_no_hop_by_hop(upstream);
  FUZZ_CHECK(upstream.count(http::field::proxy_authorization) == 0);
  FUZZ_CHECK(upstream.count(http::field::forwarded) == 1 &&
             upstream[http::field::forwarded].starts_with("for=192.0.2.1;"));
  FUZZ_CHECK(upstream.count("X-Forwarded-Port") == 0);
  FUZZ_CHECK(upstream.count("X-Forwarded-For") == 1 && upstream["X-Forwarded-For"] == "192.0.2.1");
  FUZZ_CHECK(upstream.count("X-Real-IP") == 1 && upstream["X-Real-IP"] == "192.0.2.1");
  FUZZ_CHECK(upstream.count("True-Client-IP") == 0 && upstream.count("CF-Connecting-IP") == 0);
  for (const auto& field : upstream) {
    FUZZ_CHECK(field.name_string().find('_') == std::string_view::npos);
  }
  FUZZ_CHECK(upstream.count("X-Request-ID") == 1 && upstream["X-Request-ID"] == request_id);
  FUZZ_CHECK(upstream.count(http::field::connection) == 1);
  FUZZ_CHECK(upstream[http::field::connection] == (websocket ? "Upgrade" : "close"));
  FUZZ_CHECK(upstream.count(http::field::upgrade) == (websocket ? 1u : 0u));
  FUZZ_CHECK(upstream.target() == target);

  // From a trusted proxy: its X-Forwarded-For is kept with the peer appended,
  // and the client read from it is an address (or the peer itself).
  {
    http::request<http::empty_body> proxied = req;
    ForwardInfo trusted_info = info;
    trusted_info.peer_ip = "10.0.0.2";
    trusted_info.peer_trusted = true;
    const std::string client = client_behind_proxies(
        req, "10.0.0.2", [](const boost::asio::ip::address& a) { return a.is_v4(); });
    boost::system::error_code aec;
    boost::asio::ip::make_address(client, aec);
    FUZZ_CHECK(!aec);
    prepare_upstream_request(proxied, trusted_info);
    FUZZ_CHECK(proxied.count("X-Forwarded-For") == 1);
    FUZZ_CHECK(proxied["X-Forwarded-For"].ends_with("10.0.0.2"));
    FUZZ_CHECK(proxied.count(http::field::forwarded) == 1);
    http::request_parser<http::empty_body> again;
    again.body_limit(std::numeric_limits<std::uint64_t>::max());
    FUZZ_CHECK(parse_head(again, serialize(proxied)));
  }

  // What the service parses must frame the body as the edge does.
  const std::string wire = serialize(upstream);
  http::request_parser<http::empty_body> service;
  service.body_limit(std::numeric_limits<std::uint64_t>::max());
  FUZZ_CHECK(parse_head(service, wire));
  FUZZ_CHECK(service.chunked() == parser.chunked());
  FUZZ_CHECK(service.content_length() == parser.content_length());
  FUZZ_CHECK(!check_request_head(service.get()));
  FUZZ_CHECK(is_websocket_upgrade(service.get()) == websocket);
}

void fuzz_response(std::string_view bytes) {
  http::response_parser<http::empty_body> parser;
  parser.skip(true);  // head only, as for a response to HEAD
  if (!parse_head(parser, bytes)) {
    return;
  }
  for (const bool websocket_101 : {false, true}) {
    http::response<http::empty_body> res = parser.get();
    prepare_downstream_response(res, websocket_101);
    check_no_hop_by_hop(res);
    const bool kept = websocket_101 && res.result() == http::status::switching_protocols;
    if (!kept) {
      FUZZ_CHECK(res.count(http::field::connection) == 0);
      FUZZ_CHECK(res.count(http::field::upgrade) == 0);
    } else {
      FUZZ_CHECK(res.count(http::field::connection) == parser.get().count(http::field::connection));
    }
    FUZZ_CHECK(res.count(http::field::content_length) ==
               parser.get().count(http::field::content_length));
    FUZZ_CHECK(res.count(http::field::transfer_encoding) ==
               parser.get().count(http::field::transfer_encoding));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  fuzz_request(bytes);
  fuzz_response(bytes);
  return 0;
}
