// edge.toml [acme] (issue 12): defaults, shorthands, and each problem with file:line:key.

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "hearth/config/parse.hpp"
#include "test_files.hpp"

using hearth::test::dump;
using hearth::test::find_problem;
using hearth::test::TempDir;
using hearth::test::write_text;
using namespace std::chrono_literals;

namespace {

// No [[tls.certificates]]: with [acme] an edge may run on managed certificates alone.
const std::string base =
    "[edge]\n"                             // 1
    "listen_https = \"127.0.0.1:0\"\n"     // 2
    "listen_tunnel = \"127.0.0.1:0\"\n"    // 3
    "state_dir = \"state\"\n"              // 4
    "\n"                                   // 5
    "[[origins]]\n"                        // 6
    "name = \"nas\"\n"                     // 7
    "hostnames = [\"app.example.com\"]\n"  // 8
    "\n"                                   // 9
    "[acme]\n";                            // 10

struct Dir {
  TempDir dir;
  std::filesystem::path file = dir / "edge.toml";
  auto load(const std::string& acme_lines) {
    write_text(file, base + acme_lines);
    return hearth::config::load_edge_config(file);
  }
};

}  // namespace

TEST_CASE("[acme] defaults; [[tls.certificates]] optional", "[config][acme]") {
  Dir d;
  auto r = d.load("email = \"ops@example.com\"\n");
  INFO(dump(r.problems));
  REQUIRE(r.config);
  REQUIRE(r.config->acme);
  const auto& a = *r.config->acme;
  CHECK(a.email == "ops@example.com");
  CHECK(a.directory == "https://acme-v02.api.letsencrypt.org/directory");
  CHECK(a.challenges == std::vector<std::string>{"tls-alpn-01", "http-01"});
  CHECK(a.key_type == "ecdsa-p256");
  CHECK_FALSE(a.renew_before);
  CHECK(a.retry_base == 1min);
  CHECK(r.config->certificates.empty());
  CHECK(r.config->origins.at(0).acme);
}

TEST_CASE("[acme] staging shorthand, durations, acme = false", "[config][acme]") {
  Dir d;
  write_text(d.dir / "hook.sh", "#!/bin/sh\n");
  ::chmod((d.dir / "hook.sh").c_str(), 0755);
  write_text(d.dir / "eab.key", "c2VjcmV0LWtleQ\n");
  auto text = base;
  text.replace(text.find("hostnames"), 0, "acme = false\n");
  write_text(d.file, text +
                         "directory = \"staging\"\n"
                         "renew_before = \"30d\"\n"
                         "retry_base = \"5s\"\n"
                         "key_type = \"rsa-2048\"\n"
                         "challenges = [\"dns-01\"]\n"
                         "dns_hook = \"hook.sh\"\n"
                         "eab_kid = \"kid-1\"\n"
                         "eab_hmac_key_file = \"eab.key\"\n");
  auto r = hearth::config::load_edge_config(d.file);
  INFO(dump(r.problems));
  REQUIRE(r.config);
  const auto& a = *r.config->acme;
  CHECK(a.directory == "https://acme-staging-v02.api.letsencrypt.org/directory");
  CHECK(a.renew_before == std::chrono::milliseconds(30 * 24h));
  CHECK(a.retry_base == 5s);
  CHECK(a.key_type == "rsa-2048");
  CHECK(a.eab_kid == "kid-1");
  CHECK(a.eab_hmac_key == "c2VjcmV0LWtleQ");
  CHECK(a.dns_hook == d.dir / "hook.sh");
  CHECK_FALSE(r.config->origins.at(0).acme);
}

TEST_CASE("[acme] problems name file, line and key", "[config][acme]") {
  Dir d;
  auto r = d.load(
      "email = \"not-an-address\"\n"                               // 11
      "directory = \"http://ca.example/dir\"\n"                    // 12
      "challenges = [\"http-01\", \"tls-sni-01\", \"http-01\"]\n"  // 13
      "key_type = \"ed25519\"\n"                                   // 14
      "eab_kid = \"k\"\n"                                          // 15
      "ca_file = \"missing.pem\"\n"                                // 16
      "renew_before = \"soon\"\n"                                  // 17
      "dns_hook = \"nope.sh\"\n"                                   // 18
      "emial = \"x\"\n");                                          // 19
  REQUIRE_FALSE(r.config);
  auto at = [&](const char* key, int line) {
    const auto* p = find_problem(r.problems, key);
    INFO(key << "\n" << dump(r.problems));
    REQUIRE(p);
    CHECK(p->line == line);
    CHECK(p->file == d.file);
    return p->message;
  };
  CHECK(at("acme.email", 11).find("not an email") != std::string::npos);
  CHECK(at("acme.directory", 12).find("https://") != std::string::npos);
  CHECK(at("acme.challenges[1]", 13).find("expected") != std::string::npos);
  CHECK(at("acme.challenges[2]", 13).find("twice") != std::string::npos);
  at("acme.key_type", 14);
  CHECK(at("acme.eab_kid", 15).find("go together") != std::string::npos);
  at("acme.ca_file", 16);
  at("acme.renew_before", 17);
  at("acme.dns_hook", 18);
  CHECK(at("acme.emial", 19).find("did you mean \"email\"") != std::string::npos);
}

TEST_CASE("[acme] dns-01 needs a hook, http-01 alone needs listen_http", "[config][acme]") {
  Dir d;
  auto r = d.load("challenges = [\"dns-01\"]\n");
  REQUIRE_FALSE(r.config);
  REQUIRE(find_problem(r.problems, "acme.challenges"));
  CHECK(find_problem(r.problems, "acme.challenges")->message.find("dns_hook") != std::string::npos);
  r = d.load("challenges = [\"http-01\"]\n");
  REQUIRE_FALSE(r.config);
  CHECK(find_problem(r.problems, "acme.challenges")->message.find("listen_http") !=
        std::string::npos);
}

TEST_CASE("without [acme], [[tls.certificates]] is still required", "[config][acme]") {
  TempDir dir;
  write_text(dir / "edge.toml", base.substr(0, base.find("[acme]")));
  auto r = hearth::config::load_edge_config(dir / "edge.toml");
  REQUIRE_FALSE(r.config);
  CHECK(find_problem(r.problems, "tls.certificates"));
}
