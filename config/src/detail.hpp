#pragma once
// Helpers shared by the config sources; not part of the public interface.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace hearth::config::detail {

// A DNS name ("a.example.com", "localhost") or an IPv4 literal. Labels of 1..63
// letters, digits and '-', not starting or ending with '-'; at most 253 characters.
// A name whose last label is all digits must be a valid IPv4 address.
bool valid_host_name(std::string_view host);

// [A-Za-z0-9._-]{1,64}: an origin's name, also used as a file name under state_dir.
bool valid_origin_name(std::string_view name);

std::string to_lower(std::string_view text);

// `p` resolved against `base_dir` when relative; lexically normalised.
std::filesystem::path resolve(const std::filesystem::path& base_dir,
                              const std::filesystem::path& p);

// The directory relative paths in `config_file` resolve against: its absolute parent
// directory (the current directory when config_file is empty or has no parent).
std::filesystem::path base_dir_of(const std::filesystem::path& config_file);

// Why `file` cannot be read as a regular file, or nullopt when it can.
std::optional<std::string> unreadable_reason(const std::filesystem::path& file);

// Whole file, or the reason it cannot be read. Refuses files above max_size bytes.
struct FileText {
  std::optional<std::string> text;
  std::string error;
};
FileText read_file(const std::filesystem::path& file, std::size_t max_size = 16u << 20);

}  // namespace hearth::config::detail
