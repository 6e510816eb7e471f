#pragma once
// Temporary directories and files for the config tests.

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "hearth/config/parse.hpp"

namespace hearth::test {

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hearth-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::filesystem::path& p) const { return path_ / p; }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::filesystem::path& file, std::string_view text) {
  if (file.has_parent_path()) {
    std::filesystem::create_directories(file.parent_path());
  }
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) {
    throw std::runtime_error("cannot write " + file.string());
  }
}

inline std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Permission bits of a file (lstat), e.g. 0600.
inline unsigned file_mode(const std::filesystem::path& file) {
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0) {
    return 0xffffffffu;
  }
  return st.st_mode & 07777u;
}

// The first problem whose key is `key`, or null.
inline const config::Problem* find_problem(const std::vector<config::Problem>& problems,
                                           std::string_view key) {
  for (const auto& p : problems) {
    if (p.key == key) {
      return &p;
    }
  }
  return nullptr;
}

// Every problem, one per line: what a failed REQUIRE should print.
inline std::string dump(const std::vector<config::Problem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    out += p.to_string() + "\n";
  }
  return out;
}

}  // namespace hearth::test
