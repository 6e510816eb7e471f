// The kernel backend (generic netlink "wireguard" family) and the rtnetlink helpers both
// backends use, over libmnl sockets.

#include <linux/genetlink.h>
#include <linux/wireguard.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <ctime>

#include "hearth/wg/link.hpp"
#include "socket.hpp"

namespace hearth::wg {
namespace nl {

Socket::Socket(int bus) : seq_(static_cast<std::uint32_t>(::time(nullptr))) {
  sock_ = mnl_socket_open2(bus, SOCK_CLOEXEC);
  if (sock_ == nullptr || mnl_socket_bind(sock_, 0, MNL_SOCKET_AUTOPID) < 0) {
    open_error_ = std::error_code(errno, std::system_category());
    return;
  }
  portid_ = mnl_socket_get_portid(sock_);
  // Every wait on the kernel is bounded.
  timeval tv{3, 0};
  ::setsockopt(mnl_socket_get_fd(sock_), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;  // extended ACKs: the kernel says why a request failed (not needed, cheap)
  mnl_socket_setsockopt(sock_, NETLINK_EXT_ACK, &one, sizeof one);
}

Socket::~Socket() {
  if (sock_ != nullptr) mnl_socket_close(sock_);
}

std::error_code Socket::exchange(const Message& message,
                                 const std::function<std::error_code(Bytes)>& on_data,
                                 bool& interrupted) {
  interrupted = false;
  if (open_error_) return open_error_;
  if (mnl_socket_sendto(sock_, message.data(), message.size()) < 0) {
    return {errno, std::system_category()};
  }
  const auto* hdr = reinterpret_cast<const nlmsghdr*>(message.data());
  std::vector<std::uint8_t> buf(32768);  // a dump datagram is at most 32 KiB
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(sock_, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return {errno == EAGAIN ? ETIMEDOUT : errno, std::system_category()};
    }
    auto r = walk_datagram(Bytes(buf.data(), static_cast<std::size_t>(n)), hdr->nlmsg_seq, portid_,
                           on_data);
    if (r.interrupted || interrupted) {
      // Read the rest of this dump so the retry starts clean, then tell the caller.
      interrupted = true;
      if (ends_dump(Bytes(buf.data(), static_cast<std::size_t>(n)))) return {};
      continue;
    }
    if (r.error) return r.error;
    if (r.done) return {};
  }
}

std::error_code Socket::request(const std::vector<Message>& messages) {
  const std::function<std::error_code(Bytes)> ignore = [](Bytes) { return std::error_code(); };
  for (const auto& m : messages) {
    bool interrupted = false;
    if (auto ec = exchange(m, ignore, interrupted)) return ec;
  }
  return {};
}

std::error_code Socket::dump(const std::function<Message(std::uint32_t)>& make,
                             const std::function<void()>& reset,
                             const std::function<std::error_code(Bytes)>& on_data) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    reset();
    bool interrupted = false;
    auto ec = exchange(make(next_seq()), on_data, interrupted);
    if (!interrupted) return ec;
  }
  return std::make_error_code(std::errc::interrupted);
}

}  // namespace nl

namespace {

std::error_code no_such_device() { return std::make_error_code(std::errc::no_such_device); }

std::error_code route_request(const std::function<nl::Message(std::uint32_t)>& make) {
  nl::Socket s(NETLINK_ROUTE);
  if (s.open_error()) return s.open_error();
  return s.request({make(s.next_seq())});
}

std::uint32_t index_of(const std::string& ifname) { return ::if_nametoindex(ifname.c_str()); }

class KernelBackend final : public Backend {
 public:
  std::string_view name() const override { return "kernel"; }

  std::error_code add_link(const std::string& ifname) override {
    return route_request(
        [&](std::uint32_t seq) { return nl::build_new_link(ifname, WG_GENL_NAME, seq); });
  }
  std::error_code del_link(const std::string& ifname) override {
    return route_request([&](std::uint32_t seq) { return nl::build_del_link(ifname, seq); });
  }
  std::error_code set_device(const Device& device) override {
    nl::Socket s(NETLINK_GENERIC);
    std::uint16_t family = 0;
    if (auto ec = resolve_family(s, family)) return ec;
    return s.request(nl::build_set_device(device, family, s.next_seq()));
  }
  std::error_code get_device(const std::string& ifname, Device& out) override {
    nl::Socket s(NETLINK_GENERIC);
    std::uint16_t family = 0;
    if (auto ec = resolve_family(s, family)) return ec;
    return s.dump([&](std::uint32_t seq) { return nl::build_get_device(ifname, family, seq); },
                  [&] { out = Device{}; },
                  [&](nl::Bytes m) { return nl::parse_device_message(m, out); });
  }
  bool alive(const std::string& ifname) override { return index_of(ifname) != 0; }

 private:
  static std::error_code resolve_family(nl::Socket& s, std::uint16_t& family) {
    if (s.open_error()) return s.open_error();
    auto ec = s.dump([](std::uint32_t seq) { return nl::build_get_family(WG_GENL_NAME, seq); },
                     [&] { family = 0; },
                     [&](nl::Bytes m) {
                       family = nl::parse_family_id(m);
                       return std::error_code();
                     });
    if (ec == std::errc::no_such_file_or_directory) return no_such_device();  // no module
    if (!ec && family == 0) return no_such_device();
    return ec;
  }
};

}  // namespace

std::unique_ptr<Backend> make_kernel_backend() { return std::make_unique<KernelBackend>(); }

std::error_code add_address(const std::string& ifname, const IpPrefix& address) {
  const std::uint32_t index = index_of(ifname);
  if (index == 0) return no_such_device();
  return route_request(
      [&](std::uint32_t seq) { return nl::build_new_address(index, address, seq); });
}

std::error_code set_link_up(const std::string& ifname) {
  const std::uint32_t index = index_of(ifname);
  if (index == 0) return no_such_device();
  return route_request([&](std::uint32_t seq) { return nl::build_link_up(index, seq); });
}

std::error_code add_route(const std::string& ifname, const IpPrefix& prefix) {
  const std::uint32_t index = index_of(ifname);
  if (index == 0) return no_such_device();
  return route_request([&](std::uint32_t seq) { return nl::build_new_route(index, prefix, seq); });
}

std::error_code del_route(const std::string& ifname, const IpPrefix& prefix) {
  const std::uint32_t index = index_of(ifname);
  if (index == 0) return no_such_device();
  return route_request([&](std::uint32_t seq) { return nl::build_del_route(index, prefix, seq); });
}

}  // namespace hearth::wg
