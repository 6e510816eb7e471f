#include "hearth/common/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "hearth/common/log.hpp"

namespace hearth::sd {

namespace {

std::optional<std::uint64_t> env_number(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(v, &end, 10);
  if (errno != 0 || !end || *end != '\0') return std::nullopt;
  return n;
}

}  // namespace

bool enabled() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  return path && (path[0] == '/' || path[0] == '@') && path[1] != '\0';
}

bool notify(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || (path[0] != '/' && path[0] != '@')) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t len = std::strlen(path);
  if (len < 2 || len >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  const socklen_t addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);

  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  iovec iov{const_cast<char*>(state.data()), state.size()};
  msghdr msg{};
  msg.msg_name = &addr;
  msg.msg_namelen = addr_len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  ::close(fd);
  return n == static_cast<ssize_t>(state.size());
}

std::string monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  std::uint64_t us = static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
                     static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
  return "MONOTONIC_USEC=" + std::to_string(us);
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  auto usec = env_number("WATCHDOG_USEC");
  if (!usec || *usec == 0) return std::nullopt;
  if (auto pid = env_number("WATCHDOG_PID"); pid && *pid != static_cast<std::uint64_t>(getpid())) {
    return std::nullopt;  // meant for another process (we were forked, or a wrapper)
  }
  return std::chrono::microseconds(*usec);
}

Watchdog::Watchdog(boost::asio::io_context& control,
                   std::vector<std::unique_ptr<boost::asio::io_context>>& workers, StatusFn status)
    : control_(control),
      workers_(workers),
      status_(std::move(status)),
      timer_(control),
      beats_(std::make_unique<std::atomic<std::uint64_t>[]>(workers.size())),
      seen_(workers.size(), 0) {}

Watchdog::~Watchdog() = default;

void Watchdog::start() {
  if (!enabled()) return;
  interval_ = watchdog_interval();
  if (interval_) {
    // A quarter of the interval: a ping can be missed once and still arrive in time.
    tick_ = std::max(std::chrono::milliseconds(10),
                     std::chrono::duration_cast<std::chrono::milliseconds>(*interval_ / 4));
  }
  started_ = std::chrono::steady_clock::now();
  if (const char* hook = std::getenv("HEARTH_TEST_STALL_WORKER")) {
    unsigned long delay = 0, duration = 0;
    if (std::sscanf(hook, "%lu:%lu", &delay, &duration) == 2) {
      stall_.emplace(std::chrono::milliseconds(delay), std::chrono::milliseconds(duration));
    }
  }
  status_now();
  tick();
}

void Watchdog::stop() {
  stopped_ = true;
  timer_.cancel();
}

void Watchdog::status_now() {
  if (!status_ || !enabled()) return;
  std::string s = status_();
  if (s == last_status_) return;
  last_status_ = s;
  notify("STATUS=" + s);
}

void Watchdog::maybe_status() {
  auto now = std::chrono::steady_clock::now();
  if (now < next_status_) return;
  next_status_ = now + std::chrono::seconds(1);
  status_now();
}

void Watchdog::tick() {
  if (stopped_) return;
  if (interval_) {
    bool all = true;
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      std::uint64_t b = beats_[i].load(std::memory_order_acquire);
      if (b == seen_[i]) all = false;
      seen_[i] = b;
    }
    // The first tick has no heartbeat to look at yet: the loops are just starting.
    if (all || pings_ == 0) {
      if (notify("WATCHDOG=1")) ++pings_;
    }
    auto* beats = beats_.get();
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      boost::asio::post(*workers_[i],
                        [beats, i] { beats[i].fetch_add(1, std::memory_order_release); });
    }
  }
  if (stall_ && !stall_done_ && !workers_.empty() &&
      std::chrono::steady_clock::now() - started_ >= stall_->first) {
    stall_done_ = true;
    auto duration = stall_->second;
    log::warn("test.stall_worker", {{"worker", 0}, {"ms", duration.count()}});
    boost::asio::post(*workers_[0], [duration] { std::this_thread::sleep_for(duration); });
  }
  maybe_status();
  timer_.expires_after(interval_ ? tick_ : std::chrono::milliseconds(1000));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

}  // namespace hearth::sd
