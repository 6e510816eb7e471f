#pragma once
// Pure netlink message builders and parsers: bytes in, bytes or values out, no sockets.
// Built with libmnl's buffer helpers (mnl_nlmsg_put_header, mnl_attr_put_check...), the
// layouts are the kernel's: linux/netlink.h, linux/genetlink.h, linux/rtnetlink.h and the
// "wireguard" generic netlink family of linux/wireguard.h. The socket that sends them is
// in netlink_socket.hpp; tests and the fuzzer call these directly.

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "hearth/wg/device.hpp"

namespace hearth::wg::nl {

using Message = std::vector<std::uint8_t>;
using Bytes = std::span<const std::uint8_t>;

// libmnl's MNL_SOCKET_BUFFER_SIZE for a 4 KiB page: what wireguard-tools sizes its messages to.
constexpr std::size_t default_message_size = 8192;

// --- generic netlink: resolving the "wireguard" family ---------------------------

// CTRL_CMD_GETFAMILY for `name` (GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK).
Message build_get_family(std::string_view name, std::uint32_t seq);
// CTRL_ATTR_FAMILY_ID from one reply message (nlmsghdr onwards); 0 if absent or malformed.
std::uint16_t parse_family_id(Bytes message);

// --- the wireguard family -----------------------------------------------------------

// WG_CMD_SET_DEVICE for `device` (by WGDEVICE_A_IFNAME). Peers are split across several
// messages when one fills up (max_size bytes): the first message carries the device's
// own attributes and flags, the following ones only the name and the remaining peers; a
// peer cut in the middle of its allowed IPs is repeated by public key alone and carries
// on. Sequence numbers seq, seq+1, ... Throws std::length_error when max_size cannot hold
// even one peer (a programming error: callers use default_message_size).
std::vector<Message> build_set_device(const Device& device, std::uint16_t family_id,
                                      std::uint32_t seq,
                                      std::size_t max_size = default_message_size);

// WG_CMD_GET_DEVICE dump request for interface `name`.
Message build_get_device(std::string_view name, std::uint16_t family_id, std::uint32_t seq);

// What a kernel answers to build_get_device: NLM_F_MULTI messages in the same layout, read
// back fields included, split like build_set_device, then NLMSG_DONE. For tests, the
// fuzzer's seeds and anyone checking the parser against a known dump.
std::vector<Message> build_device_dump(const Device& device, std::uint16_t family_id,
                                       std::uint32_t seq, std::uint32_t portid,
                                       std::size_t max_size = default_message_size);

// Adds one WG_CMD_GET_DEVICE reply message (nlmsghdr onwards) to `device`: device fields
// when present, and peers, coalescing a peer that continues from the previous message
// (same public key) as linux/wireguard.h describes. EBADMSG for a malformed message.
std::error_code parse_device_message(Bytes message, Device& device);

// --- rtnetlink ------------------------------------------------------------------------

// RTM_NEWLINK with IFLA_INFO_KIND "wireguard" (NLM_F_CREATE | NLM_F_EXCL).
Message build_new_link(std::string_view name, std::string_view kind, std::uint32_t seq);
// RTM_DELLINK by name.
Message build_del_link(std::string_view name, std::uint32_t seq);
// RTM_NEWLINK setting IFF_UP on `ifindex`.
Message build_link_up(std::uint32_t ifindex, std::uint32_t seq);
// RTM_NEWADDR: `address` (with its prefix length) on `ifindex` (NLM_F_CREATE | NLM_F_REPLACE).
Message build_new_address(std::uint32_t ifindex, const IpPrefix& address, std::uint32_t seq);
// RTM_NEWROUTE: `prefix` (network) via `ifindex`, main table, link scope (CREATE | REPLACE).
Message build_new_route(std::uint32_t ifindex, const IpPrefix& prefix, std::uint32_t seq);
// RTM_DELROUTE: the same route.
Message build_del_route(std::uint32_t ifindex, const IpPrefix& prefix, std::uint32_t seq);

// --- replies -----------------------------------------------------------------------------

struct WalkResult {
  std::error_code error;     // an NLMSG_ERROR with a non-zero code, or a malformed datagram
  bool done = false;         // NLMSG_DONE or an ACK (error 0) was seen
  bool interrupted = false;  // NLM_F_DUMP_INTR: the dump changed under us; retry it
};
// Walks one received datagram (mnl_cb_run): checks seq and portid (0 skips the check),
// calls on_data for each data message (nlmsghdr onwards), stops at DONE / ACK / ERROR.
WalkResult walk_datagram(Bytes datagram, std::uint32_t seq, std::uint32_t portid,
                         const std::function<std::error_code(Bytes message)>& on_data);

// True when a datagram holds NLMSG_DONE or NLMSG_ERROR: the end of an answer.
bool ends_dump(Bytes datagram);

}  // namespace hearth::wg::nl
