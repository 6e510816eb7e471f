#pragma once
// What `check` must catch because `run` would trip on it (issue 13): files the
// service cannot use, keys others can read, a state_dir it cannot write, an
// admin listener open to the network without a token. Each returns the
// problem's message, or nullopt when all is well; parse.cpp reports it at the
// key's file:line.

#include <filesystem>
#include <optional>
#include <string>

#include "hearth/config/config.hpp"

namespace hearth::config::detail {

// A private key (or token) file that group members may write or anyone else may
// read: mode & 027. 0600 and 0640 (root:hearth, as the units expect) are fine.
std::optional<std::string> secret_file_mode_problem(const std::filesystem::path& file);

// The certificate chain and the private key load as the HTTPS listener loads
// them, and the key is the certificate's (SSL_CTX_check_private_key).
std::optional<std::string> certificate_key_problem(const std::filesystem::path& cert,
                                                   const std::filesystem::path& key);

// state_dir is a writable directory, or does not exist yet and can be created.
std::optional<std::string> state_dir_problem(const std::filesystem::path& dir);

// 127.0.0.0/8, ::1 or "localhost".
bool is_loopback(const Endpoint& ep);

// Reads and trims a token file (non-empty, at most 4 KiB, one line).
std::optional<std::string> read_admin_token(const std::filesystem::path& file, std::string& token);

}  // namespace hearth::config::detail
