#pragma once
// A libmnl netlink socket with a receive timeout: send a request, walk the answers.
// Internal to hearth_wg.

#include <libmnl/libmnl.h>

#include <functional>
#include <system_error>

#include "hearth/wg/netlink.hpp"

namespace hearth::wg::nl {

class Socket {
 public:
  explicit Socket(int bus);  // NETLINK_ROUTE or NETLINK_GENERIC
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  std::error_code open_error() const { return open_error_; }
  std::uint32_t next_seq() { return seq_++; }
  // Sends each message and waits for its ACK (or error).
  std::error_code request(const std::vector<Message>& messages);
  // Sends one request and feeds every data message to on_data until DONE / ACK. A dump
  // interrupted by a change (NLM_F_DUMP_INTR) is retried from scratch (reset() first),
  // a few times at most.
  std::error_code dump(const std::function<Message(std::uint32_t seq)>& make,
                       const std::function<void()>& reset,
                       const std::function<std::error_code(Bytes)>& on_data);

 private:
  std::error_code exchange(const Message& message,
                           const std::function<std::error_code(Bytes)>& on_data, bool& interrupted);

  mnl_socket* sock_ = nullptr;
  std::uint32_t portid_ = 0;
  std::uint32_t seq_;
  std::error_code open_error_;
};

}  // namespace hearth::wg::nl
