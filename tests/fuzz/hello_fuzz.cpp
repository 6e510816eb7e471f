// libFuzzer: the registration parser on its own (the edge runs it on bytes
// from an authenticated but untrusted origin before anything else).
#include <cstddef>
#include <cstdint>
#include <span>

#include "hearth/tunnel/frame.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> in(data, size);
  if (auto h = hearth::tunnel::decode_hello(in)) {
    auto again = hearth::tunnel::encode_payload(*h);
    if (again.size() != size) __builtin_trap();  // canonical encoding: same bytes back
  }
  return 0;
}
