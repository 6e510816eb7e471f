#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <system_error>

#include "detail.hpp"

namespace hearth::config::detail {

std::filesystem::path resolve(const std::filesystem::path& base_dir,
                              const std::filesystem::path& p) {
  if (p.is_absolute()) {
    return p.lexically_normal();
  }
  return (base_dir / p).lexically_normal();
}

std::filesystem::path base_dir_of(const std::filesystem::path& config_file) {
  std::error_code ec;
  if (!config_file.empty()) {
    std::filesystem::path abs = std::filesystem::absolute(config_file, ec);
    if (!ec) {
      return abs.parent_path();
    }
  }
  std::filesystem::path cwd = std::filesystem::current_path(ec);
  return ec ? std::filesystem::path(".") : cwd;
}

std::optional<std::string> unreadable_reason(const std::filesystem::path& file) {
  std::error_code ec;
  const auto st = std::filesystem::status(file, ec);
  if (ec || !std::filesystem::exists(st)) {
    if (st.type() == std::filesystem::file_type::not_found || !ec) {
      return "file not found: " + file.string();
    }
    return "cannot read " + file.string() + ": " + ec.message();
  }
  if (std::filesystem::is_directory(st)) {
    return "is a directory, not a file: " + file.string();
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return "cannot read " + file.string() + ": " + std::strerror(errno);
  }
  return std::nullopt;
}

FileText read_file(const std::filesystem::path& file, std::size_t max_size) {
  if (auto why = unreadable_reason(file)) {
    return {std::nullopt, std::move(*why)};
  }
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (!ec && size > max_size) {
    return {std::nullopt, file.string() + ": file too large (" + std::to_string(size) + " bytes)"};
  }
  std::ifstream in(file, std::ios::binary);
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) {
    return {std::nullopt, "cannot read " + file.string() + ": " + std::strerror(errno)};
  }
  return {std::move(text), {}};
}

}  // namespace hearth::config::detail
