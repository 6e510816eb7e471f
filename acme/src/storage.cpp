#include "hearth/acme/storage.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace hearth::acme {
namespace {

class FileLock : public Storage::Lock {
 public:
  explicit FileLock(int fd) : fd_(fd) {}
  ~FileLock() override {
    flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  int fd_;
};

void make_private_dirs(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create " + dir.string() + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
}

}  // namespace

std::string storage_segment(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && out.size() < 200; ++i) {
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
    if (c == '*') {
      out += "_wildcard_";
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') {
      out += c;
    } else {
      out += '_';
    }
  }
  if (out.empty() || out == "." || out == "..") out = "_" + out;
  return out;
}

FileStorage::FileStorage(std::filesystem::path root) : root_(std::move(root)) {
  make_private_dirs(root_);
}

std::optional<std::string> FileStorage::load(const std::string& key) {
  std::ifstream in(root_ / key, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void FileStorage::store(const std::string& key, std::string_view value) {
  auto path = root_ / key;
  make_private_dirs(path.parent_path());
  auto tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
  ::fchmod(fd, 0600);
  std::size_t done = 0;
  while (done < value.size()) {
    ssize_t n = ::write(fd, value.data() + done, value.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("cannot rename " + tmp.string() + ": " + std::strerror(errno));
  }
}

void FileStorage::remove(const std::string& key) {
  std::error_code ec;
  std::filesystem::remove(root_ / key, ec);
}

std::unique_ptr<Storage::Lock> FileStorage::try_lock(const std::string& name) {
  make_private_dirs(root_ / "locks");
  auto path = root_ / "locks" / (storage_segment(name) + ".lock");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return nullptr;
  }
  return std::make_unique<FileLock>(fd);
}

}  // namespace hearth::acme
