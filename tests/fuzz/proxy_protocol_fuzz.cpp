// libFuzzer: proxy_protocol::parse over arbitrary connection prefixes (issue 9).
// Besides sanitizer reports: a complete header consumes at most the input and
// kMaxHeaderSize bytes; a result never changes when more bytes follow the
// header; and a parsed TCP header re-encodes (v1 and v2) to bytes that parse
// back to the same addresses.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "hearth/common/proxy_protocol.hpp"

namespace pp = hearth::proxy_protocol;

#define FUZZ_CHECK(condition)                                                            \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto p = pp::parse(in);
  if (p.status != pp::Status::complete) return 0;
  FUZZ_CHECK(p.consumed > 0 && p.consumed <= in.size() && p.consumed <= pp::kMaxHeaderSize);
  const auto again = pp::parse(std::string(in.substr(0, p.consumed)) + "GET / HTTP/1.1\r\n");
  FUZZ_CHECK(again.status == pp::Status::complete && again.consumed == p.consumed);
  if (p.header.local) return 0;
  for (const auto& bytes : {pp::encode_v1(p.header.source, p.header.destination),
                            pp::encode_v2(p.header.source, p.header.destination)}) {
    const auto back = pp::parse(bytes);
    FUZZ_CHECK(back.status == pp::Status::complete && back.consumed == bytes.size());
    FUZZ_CHECK(back.header.source.port == p.header.source.port);
    FUZZ_CHECK(back.header.destination.port == p.header.destination.port);
  }
  return 0;
}
