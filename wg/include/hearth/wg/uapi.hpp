#pragma once
// wireguard-go's cross-platform UAPI (the text `wg` speaks over /var/run/wireguard/IF.sock,
// https://www.wireguard.com/xplatform/): "set=1" / "get=1", one key=value per line, keys in
// hex, a blank line ends a request, and every answer ends with "errno=N" and a blank line.
// Pure functions over text; the socket is in userspace.cpp.

#include <string>
#include <string_view>
#include <system_error>

#include "hearth/wg/device.hpp"

namespace hearth::wg::uapi {

// The whole "set=1" request for `device`, blank line included.
std::string build_set(const Device& device);
inline constexpr std::string_view get_request = "get=1\n\n";

// A "get=1" answer -> device fields and peers. errno=N with N != 0 becomes that error;
// a malformed line EBADMSG. Unknown keys are skipped (newer daemons may add some).
std::error_code parse_get(std::string_view text, Device& device);

// A "set=1" answer: the errno it reports (EBADMSG when there is none).
std::error_code parse_set_reply(std::string_view text);

// True once `text` holds a complete answer (it ends with a blank line).
bool reply_complete(std::string_view text);

}  // namespace hearth::wg::uapi
