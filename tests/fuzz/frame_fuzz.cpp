// libFuzzer: the tunnel frame decoder over arbitrary bytes, as the reader
// loop drives it: decode a header, then the payload decoder for its type.
// Round-trips whatever decodes, so an accepted payload must re-encode to the
// same meaning.
#include <cstddef>
#include <cstdint>
#include <span>

#include "hearth/tunnel/frame.hpp"

using namespace hearth::tunnel;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> in(data, size);
  while (!in.empty()) {
    auto d = decode_header(in);
    if (d.status != DecodeStatus::ok) break;
    std::size_t total = kFrameHeaderSize + d.header.length;
    if (in.size() < total) break;
    auto p = in.subspan(kFrameHeaderSize, d.header.length);
    switch (d.header.type) {
      case FrameType::hello:
        if (auto h = decode_hello(p)) {
          if (decode_hello(encode_payload(*h)) != h) __builtin_trap();
        }
        break;
      case FrameType::welcome:
        if (auto w = decode_welcome(p)) {
          if (decode_welcome(encode_payload(*w)) != w) __builtin_trap();
        }
        break;
      case FrameType::open:
        if (auto o = decode_open(p)) {
          if (decode_open(encode_payload(*o)) != o) __builtin_trap();
        }
        break;
      case FrameType::reset:
        (void)decode_reset(p);
        break;
      case FrameType::goaway:
        if (auto g = decode_goaway(p)) {
          if (decode_goaway(encode_payload(*g)) != g) __builtin_trap();
        }
        break;
      case FrameType::reject:
        (void)decode_reason(p);
        break;
      case FrameType::window:
        (void)decode_window(p);
        break;
      case FrameType::publish:
        if (auto v = decode_publish(p)) {
          if (decode_publish(encode_payload(*v)) != v) __builtin_trap();
        }
        break;
      case FrameType::published:
        if (auto v = decode_published(p)) {
          if (decode_published(encode_payload(*v)) != v) __builtin_trap();
        }
        break;
      default:
        break;
    }
    in = in.subspan(total);
  }
  return 0;
}
