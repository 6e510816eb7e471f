#pragma once
// Where accounts, keys and certificates live. Files under state_dir/acme/ today; the
// interface is small so that several edges can later share one store (certmagic's
// Storage: load, store, delete, and a lock per name).

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace hearth::acme {

class Storage {
 public:
  class Lock {
   public:
    virtual ~Lock() = default;
  };
  virtual ~Storage() = default;
  // Keys are relative paths of [a-z0-9._-] segments ("certificates/a.example/cert.pem").
  virtual std::optional<std::string> load(const std::string& key) = 0;
  // Atomic (readers see the old or the new value), private (mode 0600). Throws on failure.
  virtual void store(const std::string& key, std::string_view value) = 0;
  virtual void remove(const std::string& key) = 0;
  // An exclusive lock on `name` across processes, or nullptr when someone else holds it.
  virtual std::unique_ptr<Lock> try_lock(const std::string& name) = 0;
};

class FileStorage : public Storage {
 public:
  explicit FileStorage(std::filesystem::path root);  // creates it, mode 0700
  std::optional<std::string> load(const std::string& key) override;
  void store(const std::string& key, std::string_view value) override;
  void remove(const std::string& key) override;
  std::unique_ptr<Lock> try_lock(const std::string& name) override;
  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;
};

// A storage key segment for a host name or URL: lower case, "*" -> "_wildcard_",
// anything outside [a-z0-9.-] -> '_'.
std::string storage_segment(std::string_view text);

}  // namespace hearth::acme
