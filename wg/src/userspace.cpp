// The userspace backend: a supervised wireguard-go child, driven through its UAPI socket.
// Addresses, up and routes go through rtnetlink on its tun device like for the kernel.

#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

extern char** environ;

#include "hearth/common/log.hpp"
#include "hearth/wg/link.hpp"
#include "hearth/wg/uapi.hpp"

namespace hearth::wg {
namespace {

constexpr std::size_t max_reply = 1 << 20;
constexpr auto start_timeout = std::chrono::seconds(5);
constexpr auto stop_timeout = std::chrono::seconds(3);

std::string socket_path(const std::string& ifname) {
  return "/var/run/wireguard/" + ifname + ".sock";
}

std::error_code last_error() { return {errno, std::system_category()}; }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// One request over the UAPI socket, the whole answer back. Every wait bounded (3 s).
std::error_code uapi_exchange(const std::string& ifname, std::string_view request,
                              std::string& reply) {
  const std::string path = socket_path(ifname);
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path)
    return std::make_error_code(std::errc::filename_too_long);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return last_error();
  timeval tv{3, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return last_error();
  }
  while (!request.empty()) {
    const ssize_t n = ::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    request.remove_prefix(static_cast<std::size_t>(n));
  }
  reply.clear();
  char buf[4096];
  while (!uapi::reply_complete(reply)) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? std::make_error_code(std::errc::timed_out) : last_error();
    }
    if (n == 0) return std::make_error_code(std::errc::connection_reset);
    reply.append(buf, static_cast<std::size_t>(n));
    if (reply.size() > max_reply) return std::make_error_code(std::errc::message_size);
  }
  return {};
}

bool uapi_answers(const std::string& ifname) {
  std::string reply;
  return !uapi_exchange(ifname, uapi::get_request, reply);
}

class UserspaceBackend final : public Backend {
 public:
  UserspaceBackend(std::string program, bool keep_running)
      : program_(std::move(program)), keep_running_(keep_running) {}
  ~UserspaceBackend() override { reap(); }

  std::string_view name() const override { return "wireguard-go"; }

  std::error_code add_link(const std::string& ifname) override {
    reap();
    if (child_ < 0 && ::if_nametoindex(ifname.c_str()) != 0 && uapi_answers(ifname)) {
      // A wireguard-go left running on purpose (persist = true): take it over.
      log::info("wireguard.adopted", {{"interface", ifname}});
      return {};
    }
    ::unlink(socket_path(ifname).c_str());  // a stale socket from a killed daemon
    // Everything the child needs is built before fork(): hearth has threads, and between
    // fork and exec only async-signal-safe calls are allowed (no malloc, no setenv).
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      if (!entry.starts_with("WG_PROCESS_FOREGROUND=") && !entry.starts_with("LOG_LEVEL=")) {
        env_strings.emplace_back(entry);
      }
    }
    env_strings.emplace_back("WG_PROCESS_FOREGROUND=1");
    const char* level = std::getenv("HEARTH_WG_LOG_LEVEL");
    env_strings.emplace_back(std::string("LOG_LEVEL=") + (level != nullptr ? level : "error"));
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string arg0 = "wireguard-go", arg1 = "-f", arg2 = ifname;
    char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
    const bool keep = keep_running_;
    const pid_t pid = ::fork();
    if (pid < 0) return last_error();
    if (pid == 0) {
      // Child: its own process group (a terminal's ^C is for hearth, which stops it), and
      // gone with hearth unless the link is meant to outlive it.
      ::setpgid(0, 0);
      if (!keep) ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      ::execve(program_.c_str(), argv, envp.data());
      ::_exit(127);
    }
    child_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + start_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(child_, &status, WNOHANG) == child_) {
        child_ = -1;
        log::error("wireguard.exited", {{"interface", ifname}, {"status", describe(status)}});
        return std::make_error_code(std::errc::no_such_process);
      }
      if (::if_nametoindex(ifname.c_str()) != 0 && uapi_answers(ifname)) {
        log::info("wireguard.started", {{"interface", ifname}, {"pid", pid}});
        return {};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stop();
    return std::make_error_code(std::errc::timed_out);
  }

  std::error_code del_link(const std::string& ifname) override {
    if (child_ > 0) {
      stop();
      return {};
    }
    // An adopted daemon exits when its tun device goes away.
    return delete_tun(ifname);
  }

  std::error_code set_device(const Device& device) override {
    std::string reply;
    if (auto ec = uapi_exchange(device.name, uapi::build_set(device), reply)) return ec;
    return uapi::parse_set_reply(reply);
  }

  std::error_code get_device(const std::string& ifname, Device& out) override {
    std::string reply;
    if (auto ec = uapi_exchange(ifname, uapi::get_request, reply)) return ec;
    out = Device{};
    out.name = ifname;
    out.ifindex = ::if_nametoindex(ifname.c_str());
    return uapi::parse_get(reply, out);
  }

  bool alive(const std::string& ifname) override {
    reap();
    struct stat st {};
    return ::if_nametoindex(ifname.c_str()) != 0 && ::stat(socket_path(ifname).c_str(), &st) == 0;
  }

 private:
  static std::string describe(int status) {
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("signal ") + ::strsignal(WTERMSIG(status));
    return "?";
  }

  // Collects a child that died on its own (supervision notices it in alive()).
  void reap() {
    if (child_ <= 0) return;
    int status = 0;
    if (::waitpid(child_, &status, WNOHANG) == child_) {
      log::warn("wireguard.exited", {{"pid", child_}, {"status", describe(status)}});
      child_ = -1;
    }
  }

  void stop() {
    if (child_ <= 0) return;
    ::kill(child_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + stop_timeout;
    int status = 0;
    while (::waitpid(child_, &status, WNOHANG) != child_) {
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(child_, SIGKILL);
        ::waitpid(child_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    child_ = -1;
  }

  static std::error_code delete_tun(const std::string& ifname);

  std::string program_;
  bool keep_running_;
  pid_t child_ = -1;
};

std::error_code UserspaceBackend::delete_tun(const std::string& ifname) {
  return make_kernel_backend()->del_link(ifname);  // RTM_DELLINK works on any link
}

}  // namespace

std::unique_ptr<Backend> make_userspace_backend(std::string program, bool keep_running) {
  return std::make_unique<UserspaceBackend>(std::move(program), keep_running);
}

std::string find_wireguard_go() {
  if (const char* env = std::getenv("HEARTH_WIREGUARD_GO"); env != nullptr && *env != '\0') {
    return ::access(env, X_OK) == 0 ? std::string(env) : std::string();
  }
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const std::size_t colon = rest.find(':');
    const std::string dir(rest.substr(0, colon));
    if (!dir.empty()) {
      const std::string candidate = dir + "/wireguard-go";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return "";
}

}  // namespace hearth::wg
