// libFuzzer: an HTTP/2 request header list (as HPACK would hand it over) through
// h2_to_http1_head(), then check_request_head() and prepare_upstream_request()
// as the exchange runs them. Properties: no crash or sanitizer report; what is
// accepted serializes to an HTTP/1.1 head that Beast parses back with the same
// method, target and field count (no CR/LF injection, no smuggled request),
// with exactly one Host; and certificate_covers() agrees with a brute-force
// reading of the wildcard rule.
//
// Input: byte 0 bit 0 = END_STREAM on HEADERS; then fields "name\0value\n".
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "h2/h2_head.hpp"
#include "hearth/edge/http_rules.hpp"
#include "tls/authority.hpp"

namespace http = boost::beast::http;
using namespace hearth::edge;

#define FUZZ_CHECK(condition)                                                            \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

namespace {

bool brute_covers(const std::string& name, const std::string& host) {
  if (name.empty() || host.empty()) return false;
  if (name == host) return true;
  if (name.rfind("*.", 0) != 0 || name.size() <= 2) return false;
  auto dot = host.find('.');
  return dot != std::string::npos && dot > 0 && host.substr(dot) == name.substr(1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool end_stream = data[0] & 1;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<H2Field> fields;
  while (!in.empty() && fields.size() < 64) {
    auto nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    auto z = line.find('\0');
    if (z == std::string_view::npos) {
      fields.push_back({std::string(line), ""});
    } else {
      fields.push_back({std::string(line.substr(0, z)), std::string(line.substr(z + 1))});
    }
  }

  // The authority rule, on whatever names the input carries.
  if (fields.size() >= 2) {
    std::vector<std::string> names{fields[0].name};
    FUZZ_CHECK(certificate_covers(names, fields[1].name) ==
               brute_covers(fields[0].name, fields[1].name));
  }

  http::request<http::empty_body> req;
  bool websocket = false;
  auto err =
      h2_to_http1_head(fields, end_stream, "dGhlIHNhbXBsZSBub25jZQ==", req.base(), websocket);
  if (err) return 0;
  FUZZ_CHECK(req.version() == 11);
  if (websocket) FUZZ_CHECK(is_websocket_upgrade(req.base()));
  if (check_request_head(req.base())) return 0;
  ForwardInfo info{"192.0.2.1", "https",   std::string(requested_authority(req.base())),
                   "rid",       websocket, !websocket};
  prepare_upstream_request(req.base(), info);

  std::ostringstream os;
  os << req.base();
  std::string wire = os.str();
  http::request_parser<http::empty_body> parser;
  parser.eager(false);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(wire), ec);
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(parser.is_header_done());
  const auto& back = parser.get();
  FUZZ_CHECK(back.method_string() == req.method_string());
  FUZZ_CHECK(back.target() == req.target());
  FUZZ_CHECK(std::distance(back.begin(), back.end()) == std::distance(req.begin(), req.end()));
  FUZZ_CHECK(back.count(http::field::host) == 1);
  return 0;
}
