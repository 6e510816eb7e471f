#include "hearth/acme/storage.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>

using namespace hearth::acme;

namespace {
struct Tmp {
  std::filesystem::path path;
  Tmp() {
    std::string t = (std::filesystem::temp_directory_path() / "hearth-acme-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()));
    path = t;
  }
  ~Tmp() { std::filesystem::remove_all(path); }
};
unsigned mode(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 07777u;
}
}  // namespace

TEST_CASE("FileStorage stores privately and atomically", "[acme]") {
  Tmp tmp;
  FileStorage s(tmp.path / "acme");
  CHECK(mode(tmp.path / "acme") == 0700);
  CHECK_FALSE(s.load("certificates/a/cert.pem"));
  s.store("certificates/a/cert.pem", "one");
  CHECK(s.load("certificates/a/cert.pem") == std::string("one"));
  CHECK(mode(tmp.path / "acme/certificates/a/cert.pem") == 0600);
  s.store("certificates/a/cert.pem", "two");
  CHECK(s.load("certificates/a/cert.pem") == std::string("two"));
  CHECK_FALSE(std::filesystem::exists(tmp.path / "acme/certificates/a/cert.pem.tmp"));
  s.remove("certificates/a/cert.pem");
  CHECK_FALSE(s.load("certificates/a/cert.pem"));
}

TEST_CASE("FileStorage lock is exclusive across descriptors (and processes)", "[acme]") {
  Tmp tmp;
  FileStorage a(tmp.path), b(tmp.path);
  auto first = a.try_lock("cert-app.test");
  REQUIRE(first);
  CHECK_FALSE(b.try_lock("cert-app.test"));
  CHECK(b.try_lock("cert-other.test"));
  first.reset();
  CHECK(b.try_lock("cert-app.test"));
}

TEST_CASE("storage_segment keeps keys inside the store", "[acme]") {
  CHECK(storage_segment("*.Wild.test") == "_wildcard_.wild.test");
  CHECK(storage_segment("../../etc") == ".._.._etc");
  CHECK(storage_segment("..") == "_..");
  CHECK(storage_segment("https://ca.example/dir") == "https___ca.example_dir");
}
