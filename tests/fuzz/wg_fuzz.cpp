// libFuzzer: the WireGuard parsers hearth feeds with what a kernel or a wireguard-go daemon
// answers (issue 10). The first byte picks the parser, the rest is its input:
//   0: one WG_CMD_GET_DEVICE message (nl::parse_device_message); whatever parses must
//      survive build_device_dump -> walk_datagram -> parse again unchanged (round trip)
//   1: a netlink datagram (nl::walk_datagram with the device parser as callback)
//   2: wireguard-go's UAPI "get=1" answer (uapi::parse_get); a parsed device must read back
//      the same from build_set's text
//   3: a CTRL_CMD_GETFAMILY answer (nl::parse_family_id)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "hearth/wg/netlink.hpp"
#include "hearth/wg/uapi.hpp"

using namespace hearth::wg;

#define FUZZ_CHECK(condition)                                                            \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

namespace {

void device_round_trip(const Device& d) {
  const auto parts = nl::build_device_dump(d, 0x1d, 1, 0, 1024);
  Device back;
  bool done = false;
  for (const auto& m : parts) {
    auto r = nl::walk_datagram(m, 1, 0,
                               [&](nl::Bytes msg) { return nl::parse_device_message(msg, back); });
    FUZZ_CHECK(!r.error && !r.interrupted);
    done = r.done;
  }
  FUZZ_CHECK(done);
  FUZZ_CHECK(back == d);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 65536) return 0;
  const nl::Bytes input(data + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      Device d;
      if (!nl::parse_device_message(input, d)) {
        // Adjacent peers with one key were coalesced; names are at most 15 bytes.
        device_round_trip(d);
      }
      break;
    }
    case 1: {
      Device d;
      (void)nl::walk_datagram(input, 0, 0,
                              [&](nl::Bytes m) { return nl::parse_device_message(m, d); });
      (void)nl::ends_dump(input);
      break;
    }
    case 2: {
      const std::string_view text(reinterpret_cast<const char*>(input.data()), input.size());
      Device d;
      if (!uapi::parse_get(text, d)) {
        std::string again = uapi::build_set(d);
        again.pop_back();
        again += "errno=0\n\n";
        Device back;
        FUZZ_CHECK(!uapi::parse_get(again, back));
        FUZZ_CHECK(back.peers.size() == d.peers.size());
        for (std::size_t i = 0; i < d.peers.size(); ++i) {
          FUZZ_CHECK(back.peers[i].allowed_ips == d.peers[i].allowed_ips);
          FUZZ_CHECK(back.peers[i].endpoint == d.peers[i].endpoint);
        }
      }
      break;
    }
    default:
      (void)nl::parse_family_id(input);
      break;
  }
  return 0;
}
