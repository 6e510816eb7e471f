#include "hearth/config/pairing.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>

#include "detail.hpp"
#include "hearth/config/parse.hpp"

namespace hearth::config {
namespace {

constexpr mode_t private_dir_mode = 0700;
constexpr mode_t private_file_mode = 0600;
constexpr mode_t public_file_mode = 0644;

[[noreturn]] void throw_errno(std::string_view what, const std::filesystem::path& file) {
  const int err = errno;
  throw std::runtime_error(std::string(what) + " " + file.string() + ": " + std::strerror(err));
}

// Closes the descriptor on every path out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int get() const { return fd_; }
  // close() reports write-back errors some file systems only notice here.
  int release_and_close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

void write_all(int fd, std::string_view data, const std::filesystem::path& file) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw_errno("cannot write", file);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Writes `data` to a file with exactly `mode` (fchmod: the umask must not widen or narrow
// it, and an overwritten file keeps no older, wider mode). flags: O_EXCL or O_TRUNC/O_APPEND.
void write_file(const std::filesystem::path& file, std::string_view data, mode_t mode, int flags) {
  Fd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, mode));
  if (fd.get() < 0) {
    if (errno == EEXIST) {
      throw std::runtime_error("refusing to overwrite existing file " + file.string());
    }
    throw_errno("cannot create", file);
  }
  if (::fchmod(fd.get(), mode) != 0) {
    throw_errno("cannot set the mode of", file);
  }
  write_all(fd.get(), data, file);
  if (::fsync(fd.get()) != 0) {
    throw_errno("cannot sync", file);
  }
  if (fd.release_and_close() != 0) {
    throw_errno("cannot write", file);
  }
}

// Creates `dir` (and its parents) if missing; the last component gets `mode`.
void ensure_directory(const std::filesystem::path& dir, mode_t mode) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) {
    return;
  }
  if (!dir.parent_path().empty()) {
    std::filesystem::create_directories(dir.parent_path(), ec);
    if (ec) {
      throw std::runtime_error("cannot create directory " + dir.parent_path().string() + ": " +
                               ec.message());
    }
  }
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) {
    throw_errno("cannot create directory", dir);
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    throw std::runtime_error("not a directory: " + dir.string());
  }
}

std::string read_key_file(const std::filesystem::path& file) {
  auto read = detail::read_file(file, 1 << 20);
  if (!read.text) {
    throw std::runtime_error(read.error);
  }
  if (!crypto::pin_of_private_key_pem(*read.text)) {
    throw std::runtime_error(file.string() + ": not a PEM private key");
  }
  return std::move(*read.text);
}

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string toml_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", u);
      out += esc;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

void check_token(const crypto::JoinToken& token) {
  if (!detail::valid_origin_name(token.origin_name)) {
    throw std::invalid_argument("join token: not a valid origin name: " + token.origin_name);
  }
  const auto edge = parse_endpoint(token.edge);
  if (!edge || edge->port == 0) {
    throw std::invalid_argument("join token: not a valid edge address: " + token.edge);
  }
  if (!crypto::is_valid_pin(token.edge_pin)) {
    throw std::invalid_argument("join token: not a valid edge pin: " + token.edge_pin);
  }
  if (!crypto::pin_of_private_key_pem(token.origin_key_pem)) {
    throw std::invalid_argument("join token: the origin key is not a PEM private key");
  }
}

// --- WireGuard link (issue 10) -------------------------------------------------------------

std::string trim(std::string_view text) {
  constexpr std::string_view space = " \t\r\n";
  const std::size_t first = text.find_first_not_of(space);
  if (first == std::string_view::npos) return "";
  return std::string(text.substr(first, text.find_last_not_of(space) - first + 1));
}

wg::IpPrefix host_prefix(const wg::IpAddress& a) {
  return wg::IpPrefix{a, static_cast<std::uint8_t>(a.size() * 8)};
}

// `base` + n, big-endian over the address bytes.
wg::IpAddress add_to(wg::IpAddress base, std::uint64_t n) {
  for (std::size_t i = base.size(); i-- > 0 && n != 0;) {
    const std::uint64_t sum = base.bytes[i] + (n & 0xff);
    base.bytes[i] = static_cast<std::uint8_t>(sum);
    n = (n >> 8) + (sum >> 8);
  }
  return base;
}

void check_wireguard_token(const crypto::JoinToken& token) {
  const auto address = wg::parse_prefix(token.wg_address);
  const auto edge_address = wg::parse_ip(token.wg_edge_address);
  const auto endpoint = parse_endpoint(token.wg_endpoint);
  if (!address || !edge_address || !endpoint || endpoint->port == 0 ||
      !wg::key_from_base64(token.wg_edge_public_key) ||
      !wg::key_from_base64(token.wg_private_key)) {
    throw std::invalid_argument("join token: the WireGuard fields are not valid");
  }
}

// The origin's [wireguard] section, as `join` writes it.
std::string wireguard_section(const crypto::JoinToken& token,
                              const std::filesystem::path& key_file) {
  std::string toml;
  toml += "# The WireGuard link to the edge (the home dials out, so CGNAT is fine). hearth\n";
  toml += "# creates the interface itself; it needs CAP_NET_ADMIN (see the README).\n";
  toml += "[wireguard]\n";
  toml += "interface            = \"hwg0\"\n";
  toml += "address              = " + toml_string(token.wg_address) + "  # this origin's\n";
  toml += "persistent_keepalive = \"25s\"\n";
  const auto address = wg::parse_prefix(token.wg_address);
  toml += "allowed_ips          = [" + toml_string(host_prefix(address->address).to_string()) +
          "]  # what the edge may reach at home\n";
  toml += "private_key_file     = " + toml_string(key_file.filename().string()) +
          "  # keep it secret\n";
  toml += "edge_public_key      = " + toml_string(token.wg_edge_public_key) + "\n";
  toml += "edge_endpoint        = " + toml_string(token.wg_endpoint) +
          "  # the edge's WireGuard listener\n";
  toml += "edge_address         = " + toml_string(token.wg_edge_address) +
          "  # the edge inside the link\n";
  return toml;
}

// --- end of WireGuard helpers --------------------------------------------------------------

}  // namespace

std::filesystem::path edge_key_path(const std::filesystem::path& state_dir) {
  return state_dir / "tunnel.key";
}

std::filesystem::path pins_path(const std::filesystem::path& state_dir, std::string_view name) {
  return state_dir / "origins" / (std::string(name) + ".pins");
}

std::optional<std::string> load_edge_key(const std::filesystem::path& state_dir) {
  const auto file = edge_key_path(state_dir);
  std::error_code ec;
  const auto st = std::filesystem::symlink_status(file, ec);
  if (st.type() == std::filesystem::file_type::not_found) {
    return std::nullopt;
  }
  return read_key_file(file);
}

std::string load_or_create_edge_key(const std::filesystem::path& state_dir) {
  if (auto key = load_edge_key(state_dir)) {
    return std::move(*key);
  }
  ensure_directory(state_dir, private_dir_mode);
  const auto file = edge_key_path(state_dir);
  // Written under a temporary name, then link()ed into place: link never replaces an
  // existing file, so two processes racing here agree on one key, and nobody ever
  // reads a half-written key.
  const auto tmp = state_dir / ("tunnel.key.tmp-" + crypto::random_hex(8));
  std::string pem = crypto::generate_private_key_pem();
  write_file(tmp, pem, private_file_mode, O_EXCL);
  const int rc = ::link(tmp.c_str(), file.c_str());
  const int link_errno = errno;
  ::unlink(tmp.c_str());
  if (rc != 0) {
    if (link_errno == EEXIST) {
      return read_key_file(file);  // created concurrently: use that one
    }
    errno = link_errno;
    throw_errno("cannot create", file);
  }
  return pem;
}

std::map<std::string, std::vector<std::string>> load_authorized_origins(
    const std::filesystem::path& state_dir) {
  std::map<std::string, std::vector<std::string>> out;
  const auto dir = state_dir / "origins";
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    return out;
  }
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    throw std::runtime_error("cannot list " + dir.string() + ": " + ec.message());
  }
  for (const auto& entry : it) {
    const auto& file = entry.path();
    const std::string name = file.stem().string();
    if (file.extension() != ".pins" || !detail::valid_origin_name(name) ||
        !entry.is_regular_file(ec)) {
      continue;
    }
    auto read = detail::read_file(file, 1 << 20);
    if (!read.text) {
      throw std::runtime_error(read.error);
    }
    std::vector<std::string> pins;
    std::string_view rest = *read.text;
    for (int line_no = 1; !rest.empty(); ++line_no) {
      const std::size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      line = line.substr(0, line.find('#'));
      constexpr std::string_view space = " \t\r";
      const std::size_t first = line.find_first_not_of(space);
      if (first == std::string_view::npos) {
        continue;
      }
      line = line.substr(first, line.find_last_not_of(space) - first + 1);
      if (!crypto::is_valid_pin(line)) {
        throw std::runtime_error(file.string() + ":" + std::to_string(line_no) +
                                 ": not a pin (expected \"sha256:\" and 43 base64 characters)");
      }
      if (std::find(pins.begin(), pins.end(), line) == pins.end()) {
        pins.emplace_back(line);
      }
    }
    if (!pins.empty()) {
      out.emplace(name, std::move(pins));
    }
  }
  return out;
}

std::string invite_origin(const EdgeConfig& cfg, std::string_view name,
                          std::string_view edge_address) {
  const bool known = std::any_of(cfg.origins.begin(), cfg.origins.end(),
                                 [&](const OriginGrant& grant) { return grant.name == name; });
  if (!known) {
    std::string message =
        cfg.source.string() + ": origin \"" + std::string(name) + "\" is not in [[origins]]";
    if (!cfg.origins.empty()) {
      message += " (configured:";
      for (const auto& grant : cfg.origins) {
        message += " " + grant.name;
      }
      message += ")";
    }
    throw std::invalid_argument(message);
  }
  const auto edge = parse_endpoint(edge_address);
  if (!edge || edge->port == 0) {
    throw std::invalid_argument("not a valid edge address for origins to dial: \"" +
                                std::string(edge_address) + "\" (expected host:port)");
  }

  const std::string edge_key = load_or_create_edge_key(cfg.state_dir);
  const auto edge_pin = crypto::pin_of_private_key_pem(edge_key);
  const std::string origin_key = crypto::generate_private_key_pem();
  const auto origin_pin = crypto::pin_of_private_key_pem(origin_key);
  if (!edge_pin || !origin_pin) {
    throw std::runtime_error("cannot compute key pins");
  }

  const auto pins = pins_path(cfg.state_dir, name);
  ensure_directory(pins.parent_path(), private_dir_mode);
  // One small O_APPEND write: concurrent invites never interleave within a line.
  write_file(pins, "# invited " + utc_now() + "\n" + *origin_pin + "\n", private_file_mode,
             O_APPEND);

  std::vector<std::string> hostnames;
  for (const auto& grant : cfg.origins) {
    if (grant.name == name) hostnames = grant.hostnames;
  }
  crypto::JoinToken token{std::string(edge_address), *edge_pin, std::string(name), origin_key,
                          hostnames};
  if (cfg.wireguard) {
    // WireGuard link (issue 10): the origin's key pair and address, recorded for the edge.
    const auto& w = *cfg.wireguard;
    const wg::Key edge_wg_key = load_or_create_wireguard_key(w.private_key_file);
    const auto edge_wg_public = wg::public_key_of(edge_wg_key);
    const wg::Key origin_wg_key = wg::generate_private_key();
    const auto origin_wg_public = wg::public_key_of(origin_wg_key);
    if (!edge_wg_public || !origin_wg_public)
      throw std::runtime_error("cannot derive WireGuard keys");
    auto records = load_wireguard_records(cfg.state_dir);
    std::optional<wg::IpAddress> address;
    std::vector<wg::IpPrefix> allowed;
    for (auto it = records.begin(); it != records.end(); ++it) {
      if (it->name == name) {  // invited again: same address and routes, new key
        address = it->address.address;
        allowed = it->allowed_ips;
        records.erase(it);
        break;
      }
    }
    if (!address || !w.address.contains(*address)) {
      address = next_free_address(w.address, records);
      allowed = {host_prefix(*address)};
    }
    std::string record = "# invited " + utc_now() +
                         "\npublic_key=" + wg::key_to_base64(*origin_wg_public) +
                         "\naddress=" + host_prefix(*address).to_string() + "\nallowed_ips=";
    for (std::size_t i = 0; i < allowed.size(); ++i)
      record += (i ? "," : "") + allowed[i].to_string();
    record += "\n";
    write_file(wireguard_record_path(cfg.state_dir, name), record, private_file_mode, O_TRUNC);
    token.wg_edge_public_key = wg::key_to_base64(*edge_wg_public);
    token.wg_endpoint = Endpoint{edge->host, w.listen_port}.to_string();
    token.wg_edge_address = w.address.address.to_string();
    token.wg_address = wg::IpPrefix{*address, w.address.cidr}.to_string();
    token.wg_private_key = wg::key_to_base64(origin_wg_key);
  }
  return crypto::encode_join_token(token);
}

std::filesystem::path wireguard_record_path(const std::filesystem::path& state_dir,
                                            std::string_view name) {
  return state_dir / "origins" / (std::string(name) + ".wg");
}

std::vector<WireguardPeerRecord> load_wireguard_records(const std::filesystem::path& state_dir) {
  std::vector<WireguardPeerRecord> out;
  const auto dir = state_dir / "origins";
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return out;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) throw std::runtime_error("cannot list " + dir.string() + ": " + ec.message());
  std::vector<std::filesystem::path> files;
  for (const auto& entry : it) {
    if (entry.path().extension() == ".wg" &&
        detail::valid_origin_name(entry.path().stem().string()) && entry.is_regular_file(ec)) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    auto read = detail::read_file(file, 1 << 16);
    if (!read.text) throw std::runtime_error(read.error);
    WireguardPeerRecord r;
    r.name = file.stem().string();
    bool have_key = false, have_address = false;
    std::string_view rest = *read.text;
    for (int line_no = 1; !rest.empty(); ++line_no) {
      const std::size_t nl = rest.find('\n');
      std::string line = trim(rest.substr(0, nl).substr(0, rest.substr(0, nl).find('#')));
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      if (line.empty()) continue;
      const auto where = file.string() + ":" + std::to_string(line_no) + ": ";
      const std::size_t eq = line.find('=');
      const std::string key = eq == std::string::npos ? line : trim(line.substr(0, eq));
      const std::string value = eq == std::string::npos ? "" : trim(line.substr(eq + 1));
      if (key == "public_key") {
        auto k = wg::key_from_base64(value);
        if (!k) throw std::runtime_error(where + "public_key: not a WireGuard key");
        r.public_key = *k;
        have_key = true;
      } else if (key == "address") {
        auto a = wg::parse_prefix(value, true);
        if (!a) throw std::runtime_error(where + "address: not an address");
        r.address = host_prefix(a->address);
        have_address = true;
      } else if (key == "allowed_ips") {
        std::string_view list = value;
        while (!list.empty()) {
          const std::size_t comma = list.find(',');
          const std::string item = trim(list.substr(0, comma));
          list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
          if (item.empty()) continue;
          auto a = wg::parse_prefix(item, true);
          if (!a) throw std::runtime_error(where + "allowed_ips: not a prefix: " + item);
          r.allowed_ips.push_back(*a);
        }
      } else {
        throw std::runtime_error(where + "unknown key (expected public_key, address, allowed_ips)");
      }
    }
    if (!have_key || !have_address) {
      throw std::runtime_error(file.string() + ": needs public_key= and address= lines");
    }
    if (r.allowed_ips.empty()) r.allowed_ips.push_back(r.address);
    out.push_back(std::move(r));
  }
  return out;
}

wg::Key load_or_create_wireguard_key(const std::filesystem::path& file) {
  const auto read_key = [&] {
    auto read = detail::read_file(file, 4096);
    if (!read.text) throw std::runtime_error(read.error);
    auto key = wg::key_from_base64(trim(*read.text));
    if (!key) throw std::runtime_error(file.string() + ": not a WireGuard private key (base64)");
    return *key;
  };
  std::error_code ec;
  if (std::filesystem::symlink_status(file, ec).type() != std::filesystem::file_type::not_found) {
    return read_key();
  }
  ensure_directory(file.parent_path().empty() ? "." : file.parent_path(), private_dir_mode);
  // As for tunnel.key: written aside, then link()ed into place, so racing starts agree.
  const wg::Key key = wg::generate_private_key();
  const auto tmp = file.string() + ".tmp-" + crypto::random_hex(8);
  write_file(tmp, wg::key_to_base64(key) + "\n", private_file_mode, O_EXCL);
  const int rc = ::link(tmp.c_str(), file.c_str());
  const int link_errno = errno;
  ::unlink(tmp.c_str());
  if (rc != 0) {
    if (link_errno == EEXIST) return read_key();
    errno = link_errno;
    throw_errno("cannot create", file);
  }
  return key;
}

wg::IpAddress next_free_address(const wg::IpPrefix& edge,
                                const std::vector<WireguardPeerRecord>& taken) {
  const wg::IpPrefix net = edge.network();
  const std::size_t host_bits = edge.address.size() * 8 - edge.cidr;
  // At most 2^16 candidates: plenty of origins, and a bounded scan for a huge IPv6 subnet.
  const std::uint64_t count =
      host_bits >= 17 ? (std::uint64_t{1} << 16) : (std::uint64_t{1} << host_bits) - 1;
  for (std::uint64_t n = 1; n < count; ++n) {
    const wg::IpAddress candidate = add_to(net.address, n);
    if (candidate == edge.address) continue;
    const bool used = std::any_of(taken.begin(), taken.end(), [&](const WireguardPeerRecord& r) {
      return r.address.address == candidate;
    });
    if (!used) return candidate;
  }
  throw std::runtime_error("no free WireGuard address left in " + net.to_string() +
                           " (widen [wireguard] address, or remove old origins/*.wg records)");
}

std::filesystem::path origin_wireguard_key_path_for(const std::filesystem::path& out) {
  auto key = out;
  key.replace_extension(".wg.key");
  return key;
}

std::filesystem::path origin_key_path_for(const std::filesystem::path& out) {
  auto key = out;
  key.replace_extension(".key");
  if (key == out) {  // "x.key" itself: keep the two files apart
    key += ".key";
  }
  return key;
}

void record_last_seen(const std::filesystem::path& state_dir, std::string_view name,
                      std::string_view peer) noexcept {
  try {
    static std::mutex mu;
    static std::map<std::string, std::chrono::steady_clock::time_point, std::less<>> written;
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mu);
      auto it = written.find(name);
      if (it != written.end() && now - it->second < std::chrono::seconds(10)) return;
      written[std::string(name)] = now;
    }
    const auto dir = state_dir / "origins";
    const auto file = dir / (std::string(name) + ".seen");
    const auto tmp = dir / (std::string(name) + ".seen.tmp-" + crypto::random_hex(4));
    std::string line = utc_now() + " " + std::string(peer) + "\n";
    // No fsync: losing the last-seen time in a crash costs nothing.
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, private_file_mode));
    if (fd.get() < 0) return;
    write_all(fd.get(), line, tmp);
    if (fd.release_and_close() != 0 || ::rename(tmp.c_str(), file.c_str()) != 0) {
      ::unlink(tmp.c_str());
    }
  } catch (...) {
    // Bookkeeping only.
  }
}

std::optional<LastSeen> load_last_seen(const std::filesystem::path& state_dir,
                                       std::string_view name) {
  auto read = detail::read_file(state_dir / "origins" / (std::string(name) + ".seen"), 4096);
  if (!read.text) return std::nullopt;
  std::string_view line = *read.text;
  line = line.substr(0, line.find('\n'));
  const auto sp = line.find(' ');
  LastSeen seen;
  seen.when = std::string(line.substr(0, sp));
  if (sp != std::string_view::npos) seen.peer = std::string(line.substr(sp + 1));
  return seen;
}

bool revoke_origin(const std::filesystem::path& state_dir, std::string_view name) {
  if (!detail::valid_origin_name(name)) {
    throw std::runtime_error("not a valid origin name: " + std::string(name));
  }
  const auto pins = pins_path(state_dir, name);
  std::error_code ec;
  const bool existed = std::filesystem::remove(pins, ec);
  if (ec) throw std::runtime_error("cannot remove " + pins.string() + ": " + ec.message());
  std::filesystem::remove(state_dir / "origins" / (std::string(name) + ".seen"), ec);
  return existed;
}

JoinRoute parse_join_route(std::string_view text) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    throw std::invalid_argument("--route " + std::string(text) +
                                ": expected HOST[/PATH]=URL, e.g. "
                                "app.example.com=http://127.0.0.1:3000");
  }
  JoinRoute r;
  std::string_view target = text.substr(0, eq);
  r.service = std::string(text.substr(eq + 1));
  const auto slash = target.find('/');
  r.host = detail::to_lower(target.substr(0, slash));
  if (slash != std::string_view::npos) r.path = std::string(target.substr(slash));
  if (!valid_hostname_pattern(r.host)) {
    throw std::invalid_argument("--route " + std::string(text) + ": not a valid host: " + r.host);
  }
  const bool clean = std::none_of(r.path.begin(), r.path.end(), [](char c) {
    return static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '?' || c == '#' || c == '"' ||
           c == '\\';
  });
  if (!clean) {
    throw std::invalid_argument("--route " + std::string(text) +
                                ": not a valid path prefix: " + r.path);
  }
  if (!parse_service_url(r.service)) {
    throw std::invalid_argument("--route " + std::string(text) + ": not a service URL: " +
                                r.service + " (http://host:port or https://host:port)");
  }
  return r;
}

void write_origin_config(const crypto::JoinToken& token, const std::filesystem::path& out,
                         bool overwrite, const std::vector<JoinRoute>& routes) {
  check_token(token);
  if (token.has_wireguard()) check_wireguard_token(token);
  const auto key_file = origin_key_path_for(out);
  const auto wg_key_file = origin_wireguard_key_path_for(out);
  if (!overwrite) {
    for (const auto& file : {out, key_file, wg_key_file}) {
      if (file == wg_key_file && !token.has_wireguard()) continue;
      std::error_code ec;
      if (std::filesystem::exists(std::filesystem::symlink_status(file, ec))) {
        throw std::runtime_error("refusing to overwrite existing file " + file.string());
      }
    }
  }
  if (out.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(out.parent_path(), ec);
    if (ec) {
      throw std::runtime_error("cannot create directory " + out.parent_path().string() + ": " +
                               ec.message());
    }
  }

  const int flags = overwrite ? O_TRUNC : O_EXCL;
  write_file(key_file, token.origin_key_pem, private_file_mode, flags);
  if (token.has_wireguard()) {
    write_file(wg_key_file, token.wg_private_key + "\n", private_file_mode, flags);
  }

  const std::string name = toml_string(token.origin_name);
  std::string toml;
  toml += "# hearth origin configuration, written by `hearth-origin join`.\n";
  toml += "# Edit [[routes]], then check it: hearth-origin check --config " +
          toml_string(out.filename().string()) + "\n\n";
  toml += "[origin]\n";
  toml += "name        = " + name + "\n";
  toml += "edge        = " + toml_string(token.edge) + "\n";
  toml += "edge_pin    = " + toml_string(token.edge_pin) + "  # the edge's tunnel key\n";
  toml += "key_file    = " + toml_string(key_file.filename().string()) +
          "  # this origin's private key, relative to this file: keep it secret\n";
  toml += "connections = 2  # parallel tunnel connections\n";
  if (token.has_wireguard()) {
    toml += "tunnel_over_wireguard = false  # true: dial the edge inside the WireGuard link\n";
  }
  toml += "\n";
  if (token.has_wireguard()) toml += wireguard_section(token, wg_key_file) + "\n";
  toml += "# One [[routes]] per hostname (and path prefix) to publish. The edge accepts only\n";
  toml += "# the hostnames its [[origins]] entry lists for " + name;
  if (!token.hostnames.empty()) {
    toml += ":";
    for (const auto& h : token.hostnames) toml += " " + h;
  }
  toml += ".\n";
  toml += "# A route for any other hostname is refused alone (the others are still served).\n";
  toml += "# Optional per route: health_check = \"/healthz\" (or \"tcp\"): the edge answers 503\n";
  toml += "# itself while the service fails it.\n";
  auto write_route = [&](const JoinRoute& r, bool placeholder) {
    toml += "\n[[routes]]\n";
    toml += "host    = " + toml_string(r.host) + "\n";
    toml += "path    = " + toml_string(r.path) + "\n";
    toml +=
        "service = " + toml_string(r.service) +
        (placeholder ? "  # EDIT ME: the local address of the service for this hostname\n" : "\n");
  };
  if (!routes.empty()) {
    for (const auto& r : routes) write_route(r, false);
  } else if (!token.hostnames.empty()) {
    for (const auto& h : token.hostnames) write_route({h, "/", "http://127.0.0.1:3000"}, true);
  } else {
    // A token from an edge that does not send hostnames: the operator fills one in.
    toml += "\n[[routes]]\n";
    toml +=
        "host    = \"app.example.com\"  # EDIT ME: a hostname the edge allows for " + name + "\n";
    toml += "path    = \"/\"\n";
    toml += "service = \"http://127.0.0.1:3000\"  # EDIT ME: the local service\n";
  }
  write_file(out, toml, public_file_mode, flags);
}

}  // namespace hearth::config
