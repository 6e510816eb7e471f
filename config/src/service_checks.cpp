#include "service_checks.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <cstdio>
#include <memory>

#include "detail.hpp"

namespace hearth::config::detail {

namespace {

std::string openssl_reason() {
  unsigned long e = ERR_get_error();
  std::string out;
  // The last error in the queue is the outermost; the first is the root cause.
  while (e != 0) {
    if (const char* r = ERR_reason_error_string(e)) out = r;
    e = ERR_get_error();
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

std::string octal_mode(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

}  // namespace

std::optional<std::string> secret_file_mode_problem(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return std::nullopt;  // reported as unreadable elsewhere
  if ((st.st_mode & 027) == 0) return std::nullopt;
  return file.string() + " is readable or writable by others (mode " + octal_mode(st.st_mode) +
         "): chmod 0600 it (0640 with a group the service runs as)";
}

std::optional<std::string> certificate_key_problem(const std::filesystem::path& cert,
                                                   const std::filesystem::path& key) {
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()),
                                                        &SSL_CTX_free);
  if (!ctx) return "cannot create a TLS context: " + openssl_reason();
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()) != 1) {
    return "cannot load certificate chain " + cert.string() + ": " + openssl_reason();
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
    std::string why = openssl_reason();
    if (why.find("values mismatch") != std::string::npos ||
        why.find("key values mismatch") != std::string::npos) {
      return "private key " + key.string() + " does not match certificate " + cert.string();
    }
    return "cannot load private key " + key.string() + ": " + why;
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    ERR_clear_error();
    return "private key " + key.string() + " does not match certificate " + cert.string();
  }
  return std::nullopt;
}

std::optional<std::string> state_dir_problem(const std::filesystem::path& dir) {
  std::error_code ec;
  auto st = std::filesystem::status(dir, ec);
  if (std::filesystem::exists(st)) {
    if (!std::filesystem::is_directory(st)) return dir.string() + " is not a directory";
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
      return "cannot write to " + dir.string() + " (owner, mode, or a read-only mount)";
    }
    return std::nullopt;
  }
  // Missing: the edge creates it on first use, if its nearest existing parent allows.
  std::filesystem::path parent = dir.parent_path();
  while (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    if (parent == parent.parent_path()) break;
    parent = parent.parent_path();
  }
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
    return dir.string() + " does not exist and cannot be created (" + parent.string() +
           " is not a directory)";
  }
  if (parent.empty() || ::access(parent.c_str(), W_OK | X_OK) != 0) {
    return dir.string() + " does not exist and cannot be created (" +
           (parent.empty() ? std::string("no parent") : parent.string() + " is not writable") + ")";
  }
  return std::nullopt;
}

bool is_loopback(const Endpoint& ep) {
  if (ep.host == "localhost") return true;
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(ep.host, ec);
  if (ec) return false;
  if (addr.is_v4()) return addr.to_v4().is_loopback();
  auto v6 = addr.to_v6();
  return v6.is_loopback() ||
         (v6.is_v4_mapped() &&
          boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).is_loopback());
}

std::optional<std::string> read_admin_token(const std::filesystem::path& file, std::string& token) {
  auto read = read_file(file, 4096);
  if (!read.text) return read.error;
  std::string t = *read.text;
  auto first = t.find_first_not_of(" \t\r\n");
  auto last = t.find_last_not_of(" \t\r\n");
  if (first == std::string::npos) return file.string() + " is empty";
  t = t.substr(first, last - first + 1);
  for (char c : t) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return file.string() + ": the token must be one word (no spaces or line breaks)";
    }
  }
  if (t.size() < 16) return file.string() + ": the token is too short (16 characters at least)";
  token = std::move(t);
  return std::nullopt;
}

}  // namespace hearth::config::detail
