// edge.toml: a full valid file, then each kind of problem with its exact file:line:col and key.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "hearth/common/crypto.hpp"
#include "hearth/config/parse.hpp"
#include "test_files.hpp"

using hearth::config::load_edge_config;
using hearth::config::parse_edge_config;
using hearth::test::dump;
using hearth::test::find_problem;
using hearth::test::TempDir;
using hearth::test::write_text;
using namespace std::chrono_literals;

namespace {

// A temp dir with edge.toml's neighbours: certs/a.{pem,key} (a real certificate) and state/.
struct EdgeDir {
  TempDir dir;
  std::filesystem::path file = dir / "edge.toml";

  EdgeDir() {
    const auto ck = hearth::crypto::self_signed_server_certificate({"example.com", "127.0.0.1"});
    REQUIRE(ck);
    write_text(dir / "certs/a.pem", ck->cert_pem);
    write_text(dir / "certs/a.key", ck->key_pem);
    // A private key others can read is a problem of its own (issue 13).
    std::filesystem::permissions(dir / "certs/a.key", std::filesystem::perms::owner_read |
                                                          std::filesystem::perms::owner_write);
  }

  auto load(const std::string& text) {
    write_text(file, text);
    return load_edge_config(file);
  }
};

// Line numbers below are counted in this text: keep it in sync with the tests.
const std::string minimal_edge =
    "[edge]\n"                              // 1
    "listen_https = \"127.0.0.1:0\"\n"      // 2
    "listen_tunnel = \"127.0.0.1:0\"\n"     // 3
    "state_dir = \"state\"\n"               // 4
    "\n"                                    // 5
    "[[tls.certificates]]\n"                // 6
    "cert = \"certs/a.pem\"\n"              // 7
    "key = \"certs/a.key\"\n"               // 8
    "\n"                                    // 9
    "[[origins]]\n"                         // 10
    "name = \"nas\"\n"                      // 11
    "hostnames = [\"app.example.com\"]\n";  // 12

// minimal_edge with line `line` (1-based) replaced by `text` (which may hold several lines).
std::string replace_line(const std::string& doc, int line, const std::string& text) {
  std::size_t begin = 0;
  for (int i = 1; i < line; ++i) {
    begin = doc.find('\n', begin) + 1;
  }
  const std::size_t end = doc.find('\n', begin);
  return doc.substr(0, begin) + text + doc.substr(end);
}

}  // namespace

TEST_CASE("edge.toml: a full valid file", "[config][edge]") {
  EdgeDir d;
  const auto abs_cert = (d.dir / "certs/a.pem").string();
  const auto abs_key = (d.dir / "certs/a.key").string();
  const auto r = d.load(R"([edge]
listen_https  = "0.0.0.0:443"
listen_http   = "0.0.0.0:80"
listen_tunnel = "[::]:7443"
listen_admin  = "127.0.0.1:9901"
state_dir     = "state"
workers = 4
handshake_timeout = "5s"
header_timeout = "20s"
idle_timeout = "1m"
websocket_idle_timeout = "2h"
drain_timeout = "15s"
keepalive_interval = "250ms"
keepalive_timeout = "3s"
max_body_size = "10MiB"
max_header_size = 65536
max_connections = 500

[[tls.certificates]]
cert = "certs/a.pem"
key  = "certs/a.key"

[[tls.certificates]]
cert = ")" + abs_cert + R"("
key  = ")" + abs_key + R"("

[[origins]]
name = "nas"
hostnames = ["Tallow.Example.com", "*.home.example.com"]

[[origins]]
name = "pi-4_b.lan"
hostnames = ["pi.example.com"]
)");
  INFO(dump(r.problems));
  REQUIRE(r.problems.empty());
  REQUIRE(r.config);
  const auto& c = *r.config;
  CHECK(c.source == d.file);
  CHECK(c.listen_https.to_string() == "0.0.0.0:443");
  REQUIRE(c.listen_http);
  CHECK(c.listen_http->port == 80);
  CHECK(c.listen_tunnel.host == "::");
  CHECK(c.listen_tunnel.port == 7443);
  REQUIRE(c.listen_admin);
  CHECK(c.listen_admin->to_string() == "127.0.0.1:9901");
  CHECK(c.state_dir == d.dir / "state");  // relative to the file's directory
  CHECK(c.workers == 4);
  CHECK(c.handshake_timeout == 5s);
  CHECK(c.header_timeout == 20s);
  CHECK(c.idle_timeout == 1min);
  CHECK(c.websocket_idle_timeout == 2h);
  CHECK(c.drain_timeout == 15s);
  CHECK(c.keepalive_interval == 250ms);
  CHECK(c.keepalive_timeout == 3s);
  CHECK(c.max_body_size == 10ull * 1024 * 1024);
  CHECK(c.max_header_size == 65536u);
  CHECK(c.max_connections == 500u);
  REQUIRE(c.certificates.size() == 2);
  CHECK(c.certificates[0].cert == d.dir / "certs/a.pem");
  CHECK(c.certificates[0].key == d.dir / "certs/a.key");
  CHECK(c.certificates[1].cert == d.dir / "certs/a.pem");
  REQUIRE(c.origins.size() == 2);
  CHECK(c.origins[0].name == "nas");
  CHECK(c.origins[0].hostnames ==
        std::vector<std::string>{"tallow.example.com", "*.home.example.com"});
  CHECK(c.origins[1].name == "pi-4_b.lan");
}

TEST_CASE("edge.toml: defaults for optional keys", "[config][edge]") {
  EdgeDir d;
  const auto r = d.load(minimal_edge);
  INFO(dump(r.problems));
  REQUIRE(r.config);
  const auto& c = *r.config;
  CHECK_FALSE(c.listen_http);
  CHECK_FALSE(c.listen_admin);
  CHECK(c.listen_https.port == 0);  // port 0: any port, for tests
  CHECK(c.workers == 0);
  CHECK(c.handshake_timeout == 10s);
  CHECK(c.max_body_size == 100ull * 1024 * 1024);
  CHECK(c.max_header_size == 32u * 1024);
  CHECK(c.max_connections == 20000u);
}

TEST_CASE("edge.toml: no origins yet is valid", "[config][edge]") {
  EdgeDir d;
  const auto r = d.load(minimal_edge.substr(0, minimal_edge.find("[[origins]]")));
  INFO(dump(r.problems));
  REQUIRE(r.config);
  CHECK(r.config->origins.empty());
}

TEST_CASE("edge.toml: unknown key names its line, column and a suggestion", "[config][edge]") {
  EdgeDir d;
  const auto r = d.load(replace_line(minimal_edge, 3, "listen_tunel = \"127.0.0.1:0\""));
  CHECK_FALSE(r.config);
  const auto* p = find_problem(r.problems, "edge.listen_tunel");
  REQUIRE(p);
  CHECK(p->file == d.file);
  CHECK(p->line == 3);
  CHECK(p->column == 1);
  CHECK(p->to_string() == d.file.string() +
                              ":3:1: edge.listen_tunel: unknown key (did you mean "
                              "\"listen_tunnel\"?)");
  // ...and the key it should have been is missing: reported at the [edge] line, no column.
  const auto* missing = find_problem(r.problems, "edge.listen_tunnel");
  REQUIRE(missing);
  CHECK(missing->line == 1);
  CHECK(missing->to_string() == d.file.string() + ":1: edge.listen_tunnel: missing required key");
}

TEST_CASE("edge.toml: unknown keys everywhere", "[config][edge]") {
  EdgeDir d;
  std::string doc = replace_line(minimal_edge, 8, "key = \"certs/a.key\"\nchain = \"x\"");
  doc = replace_line(doc, 13, "hostnames = [\"app.example.com\"]\npin = \"x\"");
  doc += "\n[extra]\nx = 1\n";
  const auto r = d.load(doc);
  INFO(dump(r.problems));
  CHECK_FALSE(r.config);
  REQUIRE(r.problems.size() == 3);
  CHECK(r.problems[0].key == "tls.certificates[0].chain");
  CHECK(r.problems[0].line == 9);
  CHECK(r.problems[1].key == "origins[0].pin");
  CHECK(r.problems[1].line == 14);
  CHECK(r.problems[2].key == "extra");
  CHECK(r.problems[2].line == 16);
}

TEST_CASE("edge.toml: wrong types", "[config][edge]") {
  EdgeDir d;
  std::string doc = replace_line(minimal_edge, 4, "state_dir = \"state\"\nworkers = \"4\"");
  doc = replace_line(doc, 5, "workers = \"4\"\nidle_timeout = 30");  // line 5, then 6
  const auto r = d.load(doc);
  INFO(dump(r.problems));
  CHECK_FALSE(r.config);
  const auto* workers = find_problem(r.problems, "edge.workers");
  REQUIRE(workers);
  CHECK(workers->line == 5);
  CHECK(workers->column == 11);
  CHECK(workers->message == "expected an integer, got a string");
  const auto* idle = find_problem(r.problems, "edge.idle_timeout");
  REQUIRE(idle);
  CHECK(idle->line == 6);
  CHECK_THAT(idle->message, Catch::Contains("expected a duration string"));
}

TEST_CASE("edge.toml: wrong type for a whole table or array", "[config][edge]") {
  EdgeDir d;
  const auto r = d.load("edge = 5\ntls = { certificates = \"a.pem\" }\norigins = [1]\n");
  INFO(dump(r.problems));
  REQUIRE(r.problems.size() == 3);
  CHECK(r.problems[0].key == "edge");
  CHECK(r.problems[0].message == "expected a table, got an integer");
  CHECK(r.problems[1].key == "tls.certificates");
  CHECK(r.problems[1].line == 2);
  CHECK(r.problems[2].key == "origins[0]");
  CHECK(r.problems[2].line == 3);
  CHECK(r.problems[2].column == 12);
}

TEST_CASE("edge.toml: bad endpoint", "[config][edge]") {
  EdgeDir d;
  const auto r = d.load(replace_line(minimal_edge, 2, "listen_https = \":443\""));
  REQUIRE(r.problems.size() == 1);
  const auto& p = r.problems[0];
  CHECK(p.key == "edge.listen_https");
  CHECK(p.line == 2);
  CHECK(p.column == 16);
  CHECK_THAT(p.to_string(),
             Catch::StartsWith(d.file.string() + ":2:16: edge.listen_https: not a valid address"));
}

TEST_CASE("edge.toml: two listeners on one address", "[config][edge]") {
  EdgeDir d;
  std::string doc = replace_line(minimal_edge, 2, "listen_https = \"127.0.0.1:8443\"");
  doc = replace_line(doc, 3, "listen_tunnel = \"127.0.0.1:8443\"");
  const auto r = d.load(doc);
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].key == "edge.listen_tunnel");
  CHECK(r.problems[0].line == 3);
  CHECK_THAT(r.problems[0].message, Catch::Contains("same address as edge.listen_https"));
}

TEST_CASE("edge.toml: missing certificate file, resolved against the file's directory",
          "[config][edge]") {
  EdgeDir d;
  const auto r = d.load(replace_line(minimal_edge, 8, "key = \"certs/missing.key\""));
  REQUIRE(r.problems.size() == 1);
  const auto& p = r.problems[0];
  CHECK(p.key == "tls.certificates[0].key");
  CHECK(p.line == 8);
  CHECK(p.column == 7);
  CHECK(p.message == "file not found: " + (d.dir / "certs/missing.key").string());
}

TEST_CASE("edge.toml: certificate path is a directory or unreadable", "[config][edge]") {
  EdgeDir d;
  auto r = d.load(replace_line(minimal_edge, 7, "cert = \"certs\""));
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].key == "tls.certificates[0].cert");
  CHECK_THAT(r.problems[0].message, Catch::StartsWith("is a directory"));

  if (::geteuid() != 0) {  // root reads everything
    std::filesystem::permissions(d.dir / "certs/a.key", std::filesystem::perms::none);
    r = d.load(minimal_edge);
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].key == "tls.certificates[0].key");
    CHECK_THAT(r.problems[0].message, Catch::Contains("Permission denied"));
  }
}

TEST_CASE("edge.toml: missing required keys and tables", "[config][edge]") {
  EdgeDir d;
  SECTION("no [edge], no [[tls.certificates]]") {
    const auto r = d.load("[[origins]]\nname = \"nas\"\nhostnames = [\"a.example.com\"]\n");
    INFO(dump(r.problems));
    REQUIRE(r.problems.size() == 2);
    CHECK(r.problems[0].key == "edge");
    CHECK(r.problems[0].line == 0);
    CHECK(r.problems[0].to_string() == d.file.string() + ": edge: missing required table [edge]");
    CHECK(r.problems[1].key == "tls.certificates");
    CHECK(r.problems[1].line == 0);
  }
  SECTION("empty [[tls.certificates]] list") {
    const auto r =
        d.load(minimal_edge.substr(0, minimal_edge.find("[[tls")) + "[tls]\ncertificates = []\n");
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].key == "tls.certificates");
    CHECK(r.problems[0].line == 7);
    CHECK(r.problems[0].message == "at least one certificate is required");
  }
  SECTION("[tls] without certificates: the [tls] line") {
    const auto r = d.load(minimal_edge.substr(0, minimal_edge.find("[[tls")) + "[tls]\n");
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].key == "tls.certificates");
    CHECK(r.problems[0].line == 6);
  }
  SECTION("certificate entry without key, origin without hostnames: their table lines") {
    std::string doc = replace_line(minimal_edge, 8, "");
    doc = replace_line(doc, 12, "");
    const auto r = d.load(doc);
    INFO(dump(r.problems));
    REQUIRE(r.problems.size() == 2);
    CHECK(r.problems[0].key == "tls.certificates[0].key");
    CHECK(r.problems[0].line == 6);
    CHECK(r.problems[0].column == 0);
    CHECK(r.problems[1].key == "origins[0].hostnames");
    CHECK(r.problems[1].line == 10);
  }
}

TEST_CASE("edge.toml: origins names and hostnames", "[config][edge]") {
  EdgeDir d;
  const auto r = d.load(minimal_edge +
                        "\n"                                                            // 13
                        "[[origins]]\n"                                                 // 14
                        "name = \"nas\"\n"                                              // 15
                        "hostnames = [\"b.example.com\"]\n"                             // 16
                        "[[origins]]\n"                                                 // 17
                        "name = \"bad/name\"\n"                                         // 18
                        "hostnames = [\"ok.example.com\", \"bad_host\", \"*.x\", 7]\n"  // 19
                        "[[origins]]\n"                                                 // 20
                        "name = \"empty\"\n"                                            // 21
                        "hostnames = []\n");                                            // 22
  INFO(dump(r.problems));
  CHECK_FALSE(r.config);
  REQUIRE(r.problems.size() == 5);
  CHECK(r.problems[0].key == "origins[1].name");
  CHECK(r.problems[0].line == 15);
  CHECK(r.problems[0].message == "origin \"nas\" is already defined at line 11");
  CHECK(r.problems[1].key == "origins[2].name");
  CHECK(r.problems[1].line == 18);
  CHECK(r.problems[2].key == "origins[2].hostnames[1]");
  CHECK(r.problems[2].line == 19);
  CHECK(r.problems[2].column == 32);
  CHECK(r.problems[3].key == "origins[2].hostnames[3]");
  CHECK(r.problems[3].message == "expected a string, got an integer");
  CHECK(r.problems[4].key == "origins[3].hostnames");
  CHECK(r.problems[4].line == 22);
}

TEST_CASE("edge.toml: durations, sizes and numbers out of range", "[config][edge]") {
  EdgeDir d;
  const auto r = d.load(replace_line(minimal_edge, 4,
                                     "state_dir = \"state\"\n"         // 4
                                     "drain_timeout = \"0s\"\n"        // 5
                                     "idle_timeout = \"1.5s\"\n"       // 6
                                     "max_body_size = -1\n"            // 7
                                     "max_header_size = \"5GiB\"\n"    // 8
                                     "max_connections = 0\n"           // 9
                                     "workers = 100000\n"              // 10
                                     "keepalive_interval = \"30s\"\n"  // 11
                                     "keepalive_timeout = \"10s\""));  // 12
  INFO(dump(r.problems));
  REQUIRE(r.problems.size() == 7);
  CHECK(r.problems[0].key == "edge.drain_timeout");
  CHECK(r.problems[0].message == "must be greater than 0");
  CHECK(r.problems[1].key == "edge.idle_timeout");
  CHECK_THAT(r.problems[1].message, Catch::StartsWith("not a duration: \"1.5s\""));
  CHECK(r.problems[2].key == "edge.max_body_size");
  CHECK(r.problems[2].message == "must not be negative");
  CHECK(r.problems[3].key == "edge.max_header_size");
  CHECK(r.problems[3].message == "must be between 1 and 4294967295 bytes");
  CHECK(r.problems[4].key == "edge.max_connections");
  CHECK(r.problems[5].key == "edge.workers");
  CHECK(r.problems[5].message == "must be between 0 and 1024");
  CHECK(r.problems[6].key == "edge.keepalive_interval");
  CHECK(r.problems[6].line == 11);
  CHECK(r.problems[6].message == "must be less than edge.keepalive_timeout");
}

TEST_CASE("edge.toml: max_body_size as integer bytes, 0 for unlimited", "[config][edge]") {
  EdgeDir d;
  auto r = d.load(replace_line(minimal_edge, 4, "state_dir = \"state\"\nmax_body_size = 0"));
  REQUIRE(r.config);
  CHECK(r.config->max_body_size == 0u);
  r = d.load(replace_line(minimal_edge, 4, "state_dir = \"state\"\nmax_body_size = 1234"));
  REQUIRE(r.config);
  CHECK(r.config->max_body_size == 1234u);
  r = d.load(replace_line(minimal_edge, 4, "state_dir = \"state\"\nmax_body_size = 1.5"));
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].message ==
        "expected a size (integer bytes or a string such as \"100MB\"), got a float");
}

TEST_CASE("edge.toml: max_uri_size and log_redact_params", "[config][edge]") {
  EdgeDir d;
  auto r = d.load(minimal_edge);
  REQUIRE(r.config);
  CHECK(r.config->max_uri_size == 8u * 1024);
  CHECK(r.config->log_redact_params.size() >= 7);
  r = d.load(replace_line(minimal_edge, 4,
                          "state_dir = \"state\"\nmax_uri_size = \"16KiB\"\n"
                          "log_redact_params = [\"Token\", \"session_id\"]"));
  REQUIRE(r.config);
  CHECK(r.config->max_uri_size == 16u * 1024);
  CHECK(r.config->log_redact_params == std::vector<std::string>{"token", "session_id"});
  r = d.load(replace_line(minimal_edge, 4, "state_dir = \"state\"\nlog_redact_params = []"));
  REQUIRE(r.config);
  CHECK(r.config->log_redact_params.empty());

  r = d.load(replace_line(minimal_edge, 4,
                          "state_dir = \"state\"\nmax_uri_size = 0\n"
                          "log_redact_params = [\"ok\", \"a=b\", 3, \"\"]"));
  INFO(dump(r.problems));
  REQUIRE(r.problems.size() == 4);
  CHECK(r.problems[0].key == "edge.max_uri_size");
  CHECK(r.problems[1].key == "edge.log_redact_params[1]");
  CHECK(r.problems[2].key == "edge.log_redact_params[2]");
  CHECK(r.problems[3].key == "edge.log_redact_params[3]");
  CHECK(r.problems[1].line == 6);
  r = d.load(replace_line(minimal_edge, 4, "state_dir = \"state\"\nlog_redact_params = \"token\""));
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].key == "edge.log_redact_params");
}

TEST_CASE("edge.toml: syntax error is one problem with toml++'s line and column",
          "[config][edge]") {
  EdgeDir d;
  const auto r = d.load(replace_line(minimal_edge, 3, "listen_tunnel = \"127.0.0.1:0"));
  REQUIRE(r.problems.size() == 1);
  const auto& p = r.problems[0];
  CHECK(p.file == d.file);
  CHECK(p.line == 3);
  CHECK(p.column > 0);
  CHECK(p.key.empty());
  CHECK_THAT(p.to_string(), Catch::StartsWith(d.file.string() + ":3:"));
}

TEST_CASE("edge.toml: all problems are reported, in file order", "[config][edge]") {
  EdgeDir d;
  std::string doc = replace_line(minimal_edge, 2, "listen_https = \"nope\"");
  doc = replace_line(doc, 7, "cert = \"missing.pem\"");
  doc = replace_line(doc, 12, "hostnames = [\"UPPER.example.com\", \"a b\"]");
  doc = "bogus = true\n" + doc;  // shifts everything by one line
  const auto r = d.load(doc);
  INFO(dump(r.problems));
  REQUIRE(r.problems.size() == 4);
  CHECK(r.problems[0].line == 1);
  CHECK(r.problems[1].line == 3);
  CHECK(r.problems[2].line == 8);
  CHECK(r.problems[3].line == 13);
  CHECK(r.problems[3].key == "origins[0].hostnames[1]");
}

TEST_CASE("edge config: load of a missing file, parse of a string", "[config][edge]") {
  TempDir dir;
  const auto r = load_edge_config(dir / "nope.toml");
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].line == 0);
  CHECK(r.problems[0].to_string() ==
        (dir / "nope.toml").string() + ": file not found: " + (dir / "nope.toml").string());

  // parse_edge_config resolves relative paths against the source's directory, too.
  EdgeDir d;
  const auto p = parse_edge_config(minimal_edge, d.dir / "sub/../edge.toml");
  INFO(dump(p.problems));
  REQUIRE(p.config);
  CHECK(p.config->certificates[0].cert == d.dir / "certs/a.pem");
}

TEST_CASE("edge config: parse never throws on garbage", "[config][edge]") {
  for (const std::string& text :
       {std::string(), std::string("\0\0\0", 3), std::string("[[[["), std::string("\xff\xfe"),
        std::string("edge = [") + std::string(10000, '['), std::string("a = \"\\uD800\""),
        std::string("[edge]\nlisten_https = 1979-05-27T07:32:00Z\n")}) {
    hearth::config::LoadResult<hearth::config::EdgeConfig> r;
    REQUIRE_NOTHROW(r = parse_edge_config(text, "g.toml"));
    CHECK_FALSE(r.config);
    CHECK_FALSE(r.problems.empty());
  }
}

TEST_CASE("edge.toml: client listeners as tables, trusted_proxies and proxy_protocol",
          "[config][edge]") {
  EdgeDir d;
  SECTION("listener tables, per-listener trusted_proxies over [edge]'s") {
    std::string doc = replace_line(
        minimal_edge, 2,
        "listen_https = { address = \"127.0.0.1:0\", proxy_protocol = true }\n"
        "listen_http = { address = \"127.0.0.1:0\", trusted_proxies = [\"192.0.2.0/24\"] }\n"
        "trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]");
    const auto r = d.load(doc);
    INFO(dump(r.problems));
    REQUIRE(r.config);
    const auto& c = *r.config;
    CHECK(c.listen_https.port == 0);
    REQUIRE(c.listen_http);
    CHECK(c.https_trust.proxy_protocol);
    REQUIRE(c.https_trust.trusted_proxies.size() == 2);
    CHECK(c.https_trust.trusted_proxies[0].text == "10.0.0.0/8");
    CHECK_FALSE(c.http_trust.proxy_protocol);
    REQUIRE(c.http_trust.trusted_proxies.size() == 1);
    CHECK(c.http_trust.trusted_proxies[0].text == "192.0.2.0/24");
    std::array<std::uint8_t, 16> mapped{};
    mapped[10] = mapped[11] = 0xff;
    mapped[12] = 10;
    mapped[15] = 9;
    CHECK(c.https_trust.trusts(mapped));  // 10.0.0.9
    CHECK_FALSE(c.http_trust.trusts(mapped));
  }
  SECTION("[edge] proxy_protocol applies to both client listeners") {
    std::string doc = replace_line(minimal_edge, 2,
                                   "listen_https = \"127.0.0.1:0\"\nlisten_http = \"127.0.0.1:0\"\n"
                                   "proxy_protocol = true\ntrusted_proxies = [\"10.0.0.1\"]");
    const auto r = d.load(doc);
    INFO(dump(r.problems));
    REQUIRE(r.config);
    CHECK(r.config->https_trust.proxy_protocol);
    CHECK(r.config->http_trust.proxy_protocol);
  }
  SECTION("proxy_protocol without trusted_proxies fails closed, naming the key") {
    const auto r = d.load(replace_line(
        minimal_edge, 2, "listen_https = { address = \"127.0.0.1:0\", proxy_protocol = true }"));
    CHECK_FALSE(r.config);
    const auto* p = find_problem(r.problems, "edge.listen_https.proxy_protocol");
    REQUIRE(p);
    CHECK(p->line == 2);
    CHECK(p->message.find("trusted_proxies") != std::string::npos);
  }
  SECTION("unknown keys and bad values inside a listener table") {
    const auto r = d.load(replace_line(
        minimal_edge, 2,
        "listen_https = { address = \"127.0.0.1:0\", proxy = true, trusted_proxies = [\"x\"] }"));
    CHECK_FALSE(r.config);
    CHECK(find_problem(r.problems, "edge.listen_https.proxy"));
    CHECK(find_problem(r.problems, "edge.listen_https.trusted_proxies[0]"));
  }
  SECTION("a listener table needs an address") {
    const auto r =
        d.load(replace_line(minimal_edge, 2, "listen_https = { proxy_protocol = false }"));
    CHECK_FALSE(r.config);
    CHECK(find_problem(r.problems, "edge.listen_https.address"));
  }
}
