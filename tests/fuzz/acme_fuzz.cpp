// libFuzzer: the ACME parsers over arbitrary bytes (what a CA, or something posing
// as one, can send): problem documents, directory, order, authorization, account,
// renewalInfo, Retry-After, RFC 3339, base64url, and the ClientHello extension
// bodies the tls-alpn-01 responder reads. Besides sanitizer reports it checks that
// base64url round-trips and that parsed values stay within their documented bounds.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "hearth/acme/certs.hpp"
#include "hearth/acme/codec.hpp"
#include "hearth/acme/messages.hpp"

using namespace hearth::acme;

#define FUZZ_CHECK(condition)                                                            \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto p = parse_problem(in)) {
    FUZZ_CHECK(p->subproblems.size() <= 32);
    (void)p->to_string();
  }
  (void)parse_directory(in);
  if (auto o = parse_order(in)) FUZZ_CHECK(o->authorizations.size() <= 100);
  if (auto a = parse_authorization(in)) FUZZ_CHECK(a->challenges.size() <= 16);
  (void)parse_account(in);
  if (auto w = parse_renewal_info(in)) FUZZ_CHECK(w->start <= w->end);
  (void)parse_retry_after(in, std::chrono::system_clock::now());
  (void)parse_rfc3339(in);
  if (auto d = base64url_decode(in)) {
    FUZZ_CHECK(base64url_decode(base64url_encode(*d)) == *d);
  }
  FUZZ_CHECK(base64url_decode(base64url_encode(in)) == std::string(in));
  if (auto sni = parse_sni_extension(in)) FUZZ_CHECK(!sni->empty() && sni->size() <= 253);
  FUZZ_CHECK(parse_alpn_extension(in).size() <= 32);
  return 0;
}
