// The policy engine (issue 9): normalization, matching, buckets, checks, header steps.

#include "hearth/edge/policy.hpp"

#include <crypt.h>

#include <atomic>
#include <boost/asio/ip/address.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "hearth/common/route_match.hpp"

namespace http = boost::beast::http;
namespace policy = hearth::edge::policy;
using hearth::config::Policy;
using hearth::config::RateLimit;
using namespace std::chrono_literals;

namespace {

std::string norm(std::string_view t) {
  auto n = policy::normalize_target(t);
  return n ? n->forward : "<invalid>";
}
std::string match_form(std::string_view t) {
  auto n = policy::normalize_target(t);
  return n ? n->match : "<invalid>";
}

policy::ClientInfo client(const char* ip) {
  return policy::client_info(boost::asio::ip::make_address(ip));
}

std::string make_hash(const char* prefix, const char* password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE(crypt_gensalt_rn(prefix, 0, nullptr, 0, salt, sizeof salt) != nullptr);
  crypt_data data{};
  const char* out = crypt_r(password, salt, &data);
  REQUIRE(out != nullptr);
  return out;
}

std::string basic(std::string_view user_pass) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < user_pass.size(); i += 3) {
    unsigned v = (unsigned char)user_pass[i] << 16 | (unsigned char)user_pass[i + 1] << 8 |
                 (unsigned char)user_pass[i + 2];
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (user_pass.size() - i == 1) {
    unsigned v = (unsigned char)user_pass[i] << 16;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (user_pass.size() - i == 2) {
    unsigned v = (unsigned char)user_pass[i] << 16 | (unsigned char)user_pass[i + 1] << 8;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return "Basic " + out;
}

}  // namespace

TEST_CASE("normalize_target: decoding, slashes, dot segments", "[policy][edge]") {
  CHECK(norm("/") == "/");
  CHECK(norm("/a/b?x=1") == "/a/b?x=1");
  CHECK(norm("/%61dmin") == "/admin");
  CHECK(norm("/%7euser/%2d%2E_") == "/~user/-._");
  CHECK(norm("//admin") == "/admin");
  CHECK(norm("/a//b///c/") == "/a/b/c/");
  CHECK(norm("/a/./b/../c") == "/a/c");
  CHECK(norm("/a/b/..") == "/a/");
  CHECK(norm("/a/b/.") == "/a/b/");
  CHECK(norm("/../../etc/passwd") == "/etc/passwd");
  CHECK(norm("/%2e%2e/admin") == "/admin");
  CHECK(norm("/.%2e/admin") == "/admin");
  CHECK(norm("/a..b/.c/..d") == "/a..b/.c/..d");
  CHECK(norm("/x%2fy%3a") == "/x%2Fy%3A");                  // reserved stay encoded, upper-cased
  CHECK(norm("/%25%32%46") == "/%252F");                    // no double decoding
  CHECK(norm("/p?q=/../%61&r=//") == "/p?q=/../%61&r=//");  // the query is untouched
  CHECK(norm("*") == "*");
  CHECK(norm("/%") == "<invalid>");
  CHECK(norm("/%4") == "<invalid>");
  CHECK(norm("/%zz") == "<invalid>");
  CHECK(norm("/%00") == "<invalid>");
  CHECK(norm("") == "<invalid>");
  CHECK(norm("admin") == "<invalid>");
  // The match form also reads encoded slashes and backslashes as '/'.
  CHECK(match_form("/admin%2F..%2Fpublic") == "/public");
  CHECK(match_form("/public%2F..%2Fadmin") == "/admin");
  CHECK(match_form("/x\\..\\admin") == "/admin");
  CHECK(match_form("/%5Cadmin") == "/admin");
  CHECK(match_form("/a?b") == "/a");
  for (auto t : {"/%61dmin", "//admin", "/./admin", "/x/../admin", "/%2e/admin", "/admin/",
                 "/admin//x", "/%2fadmin", "/\\admin", "///admin/./x/.."}) {
    INFO(t);
    CHECK(hearth::path_matches("/admin", match_form(t)));
  }
}

TEST_CASE("match_policy: most specific host, then longest path; falls back", "[policy][edge]") {
  hearth::config::EdgeConfig cfg;
  auto add = [&](std::string host, std::string path) {
    Policy p;
    p.host = host;
    p.path = path;
    p.id = host + " " + path;
    cfg.policies.push_back(p);
  };
  add("*.example.com", "/");
  add("*.example.com", "/admin");
  add("app.example.com", "/api");
  add("*.a.example.com", "/");
  auto id = [&](std::string_view host, std::string_view path) {
    const auto* p = policy::match_policy(cfg, host, path);
    return p ? p->id : std::string("none");
  };
  CHECK(id("app.example.com", "/api/x") == "app.example.com /api");
  // The exact host has no entry for /admin: the wildcard's /admin applies.
  CHECK(id("app.example.com", "/admin") == "*.example.com /admin");
  CHECK(id("app.example.com", "/") == "*.example.com /");
  CHECK(id("x.a.example.com", "/admin") == "*.a.example.com /");
  CHECK(id("other.test", "/") == "none");
  Policy def;
  def.id = "default";
  cfg.default_policy = def;
  CHECK(id("other.test", "/") == "default");
  CHECK(id("example.com", "/admin") == "default");
}

TEST_CASE("client_info: IPv6 counted per /64, IPv4 and mapped alike", "[policy][edge]") {
  CHECK(client("2001:db8:1:2:aaaa::1").key == client("2001:db8:1:2:bbbb::2").key);
  CHECK(client("2001:db8:1:2::1").key != client("2001:db8:1:3::1").key);
  CHECK(client("192.0.2.1").key == client("::ffff:192.0.2.1").key);
  CHECK(client("192.0.2.1").key != client("192.0.2.2").key);
}

TEST_CASE("PolicyShard: token bucket, Retry-After, bounded table", "[policy][edge]") {
  policy::PolicyShard shard(1000);
  const RateLimit limit{10.0, 20};
  const auto c = client("192.0.2.1").key;
  auto t0 = policy::Clock::time_point{} + 1h;
  int allowed = 0;
  for (int i = 0; i < 25; ++i) allowed += shard.take(1, c, limit, t0).allowed;
  CHECK(allowed == 20);  // the burst
  auto refused = shard.take(1, c, limit, t0);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after == 1);
  // 50 requests/s for 3 s: about 10/s get through.
  allowed = 0;
  for (int i = 1; i <= 150; ++i) allowed += shard.take(1, c, limit, t0 + i * 20ms).allowed;
  CHECK(allowed >= 29);
  CHECK(allowed <= 31);
  // Other policies and clients have their own buckets.
  CHECK(shard.take(2, c, limit, t0).allowed);
  CHECK(shard.take(1, client("192.0.2.2").key, limit, t0).allowed);
  // Slow rates give longer Retry-After.
  const RateLimit slow{1.0 / 60, 1};
  CHECK(shard.take(3, c, slow, t0).allowed);
  CHECK(shard.take(3, c, slow, t0).retry_after == 60);

  // Never more than max_entries, however many clients.
  policy::PolicyShard small(100);
  for (unsigned i = 0; i < 5000; ++i) {
    policy::ClientKey k{};
    k[0] = static_cast<std::uint8_t>(i);
    k[1] = static_cast<std::uint8_t>(i >> 8);
    small.take(1, k, limit, t0 + std::chrono::milliseconds(i));
    REQUIRE(small.size() <= 100);
  }
  // Refilled buckets are the first to go; one still refilling survives.
  policy::PolicyShard keep(10);
  const RateLimit slow_burst{1.0 / 60, 20};
  for (int i = 0; i < 20; ++i) keep.take(9, c, slow_burst, t0);  // c: empty, slow to refill
  for (unsigned i = 1; i <= 50; ++i) {
    policy::ClientKey k{};
    k[0] = static_cast<std::uint8_t>(i);
    keep.take(1, k, limit, t0 + std::chrono::seconds(i));  // full again 0.1 s later
    REQUIRE(keep.size() <= 10);
  }
  CHECK_FALSE(keep.take(9, c, slow_burst, t0 + 50s).allowed);  // remembered: still empty
}

TEST_CASE("PolicyTable: one client's limit is exact across threads; bounded", "[policy][edge]") {
  // Workers share the table (connections are not pinned by address): two
  // threads taking from one client's bucket at once get exactly its burst.
  policy::PolicyTable table(1600);
  const RateLimit limit{1.0 / 3600, 500};  // no refill during the test
  const auto c = client("192.0.2.1").key;
  const auto t0 = policy::Clock::time_point{} + 1h;
  std::atomic<int> allowed{0};
  auto hammer = [&] {
    for (int i = 0; i < 2000; ++i) allowed += table.take(7, c, limit, t0).allowed;
  };
  std::thread a(hammer), b(hammer);
  a.join();
  b.join();
  CHECK(allowed.load() == 500);
  table.refund(7, c, limit);
  CHECK(table.take(7, c, limit, t0).allowed);
  CHECK_FALSE(table.take(7, c, limit, t0).allowed);
  // A credential verified on one worker is cached for the others.
  std::array<std::uint8_t, 32> key{};
  key[0] = 42;
  CHECK_FALSE(table.auth_cached(key, t0));
  std::thread([&] { table.auth_remember(key, t0); }).join();
  CHECK(table.auth_cached(key, t0 + 1s));
  // The whole table stays within its bound, however many clients.
  for (unsigned i = 0; i < 20000; ++i) {
    policy::ClientKey k{};
    k[0] = static_cast<std::uint8_t>(i);
    k[1] = static_cast<std::uint8_t>(i >> 8);
    table.take(1, k, limit, t0);
  }
  CHECK(table.size() <= 1600u);
  CHECK(table.size() >= 1000u);
}

TEST_CASE("PolicyTable: neighbouring clients spread over every stripe", "[policy][edge]") {
  // IPv4 keys differ only in their last bytes; a hash that does not mix them
  // up into the bits the stripe is taken from puts a whole /24 behind one lock.
  const auto key_of = [](const std::string& ip) { return client(ip.c_str()).key; };
  std::set<std::size_t> v4, v6;
  std::set<std::uint64_t> hashes;
  for (int i = 0; i < 256; ++i) {
    const auto k = key_of("10.0.0." + std::to_string(i));
    v4.insert(policy::PolicyTable::stripe_index(k));
    hashes.insert(policy::hash_client(k));
    v6.insert(policy::PolicyTable::stripe_index(key_of("2001:db8:0:" + std::to_string(i) + "::1")));
  }
  CHECK(v4.size() == policy::PolicyTable::kStripes);
  CHECK(v6.size() == policy::PolicyTable::kStripes);
  CHECK(hashes.size() == 256u);  // and neighbours do not collide in a bucket table
}

TEST_CASE("check_request: order deny, allow, rate, auth, body", "[policy][edge]") {
  Policy p;
  p.id = "t";
  p.deny = {*hearth::config::parse_cidr("192.0.2.66")};
  p.allow = {*hearth::config::parse_cidr("192.0.2.0/24"), *hearth::config::parse_cidr("::1")};
  p.rate = RateLimit{1.0, 3};
  hearth::config::BasicAuth auth;
  auth.realm = "admin area";
  auth.users = {{"alice", "$2y$" + make_hash("$2b$", "bcrypt-pw").substr(4)},
                {"bob", make_hash("$y$", "yes-pw")}};
  p.basic_auth = auth;
  p.max_body_size = 100;
  policy::PolicyTable table;
  auto now = policy::Clock::time_point{} + 1h;
  http::request_header<> req;
  req.method(http::verb::get);
  req.target("/");

  auto denied = policy::check_request(p, req, client("192.0.2.66"), table, now);
  REQUIRE(denied);
  CHECK(denied->status == http::status::forbidden);
  auto outside = policy::check_request(p, req, client("198.51.100.1"), table, now);
  REQUIRE(outside);
  CHECK(outside->status == http::status::forbidden);

  auto none = policy::check_request(p, req, client("192.0.2.1"), table, now);
  REQUIRE(none);
  CHECK(none->status == http::status::unauthorized);
  CHECK(none->www_authenticate == "Basic realm=\"admin area\", charset=\"UTF-8\"");

  now += 10s;
  req.set(http::field::authorization, basic("alice:bcrypt-pw"));
  CHECK_FALSE(policy::check_request(p, req, client("192.0.2.1"), table, now));
  req.set(http::field::authorization, basic("bob:yes-pw"));
  CHECK_FALSE(policy::check_request(p, req, client("192.0.2.1"), table, now));
  req.set(http::field::authorization, "basic " + basic("bob:yes-pw").substr(6));
  CHECK_FALSE(policy::check_request(p, req, client("192.0.2.1"), table, now));  // cached
  auto limited = policy::check_request(p, req, client("192.0.2.1"), table, now);
  REQUIRE(limited);
  CHECK(limited->status == http::status::too_many_requests);
  CHECK(limited->retry_after == 1u);

  // A wrong password is 401 and costs an extra token: 3 tokens, two failures.
  now += 10s;
  req.set(http::field::authorization, basic("alice:wrong"));
  auto bad = policy::check_request(p, req, client("192.0.2.2"), table, now);
  REQUIRE(bad);
  CHECK(bad->status == http::status::unauthorized);
  CHECK(bad->reason.find("wrong") == std::string::npos);
  CHECK(policy::check_request(p, req, client("192.0.2.2"), table, now)->status ==
        http::status::unauthorized);
  CHECK(policy::check_request(p, req, client("192.0.2.2"), table, now)->status ==
        http::status::too_many_requests);
  req.set(http::field::authorization, basic("mallory:x"));
  now += 10s;
  CHECK(policy::check_request(p, req, client("192.0.2.3"), table, now)->status ==
        http::status::unauthorized);
  req.set(http::field::authorization, "Bearer abc");
  now += 10s;
  CHECK(policy::check_request(p, req, client("192.0.2.3"), table, now)->status ==
        http::status::unauthorized);

  // The failure bucket stops guessing even without a rate.
  p.rate.reset();
  req.set(http::field::authorization, basic("alice:guess"));
  int unauthorized = 0, too_many = 0;
  for (int i = 0; i < 15; ++i) {
    auto r = policy::check_request(p, req, client("192.0.2.4"), table, now);
    REQUIRE(r);
    unauthorized += r->status == http::status::unauthorized;
    too_many += r->status == http::status::too_many_requests;
  }
  CHECK(unauthorized == 10);
  CHECK(too_many == 5);

  // Body size by Content-Length.
  p.basic_auth.reset();
  req.erase(http::field::authorization);
  req.set(http::field::content_length, "101");
  auto big = policy::check_request(p, req, client("::1"), table, now);
  REQUIRE(big);
  CHECK(big->status == http::status::payload_too_large);
  req.set(http::field::content_length, "100");
  CHECK_FALSE(policy::check_request(p, req, client("::1"), table, now));
}

TEST_CASE("apply_response: security headers never override, add/remove", "[policy][edge]") {
  Policy p;
  p.security_headers = true;
  p.add_response_headers = {{"Cache-Control", "no-store"}};
  p.remove_response_headers = {"server"};
  http::response_header<> res;
  res.set(http::field::server, "nginx");
  res.set("X-Frame-Options", "DENY");
  res.set(http::field::cache_control, "public");
  policy::apply_response(p, res);
  CHECK(res["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains");
  CHECK(res["X-Content-Type-Options"] == "nosniff");
  CHECK(res["Referrer-Policy"] == "strict-origin-when-cross-origin");
  CHECK(res["X-Frame-Options"] == "DENY");
  CHECK(res[http::field::cache_control] == "no-store");
  CHECK(res.find(http::field::server) == res.end());

  p.add_request_headers = {{"X-Edge", "1"}};
  p.remove_request_headers = {"cookie"};
  http::request_header<> req;
  req.set(http::field::cookie, "a=b");
  policy::apply_request(p, req);
  CHECK(req["X-Edge"] == "1");
  CHECK(req.find(http::field::cookie) == req.end());

  p.error_pages[429] = "<p>later</p>";
  http::response<http::string_body> local{http::status::too_many_requests, 11};
  local.body() = "default";
  policy::decorate_local_reply(&p, local);
  CHECK(local.body() == "<p>later</p>");
  CHECK(local[http::field::content_length] == "12");
  CHECK(local["X-Content-Type-Options"] == "nosniff");
  policy::decorate_local_reply(nullptr, local);  // no policy: unchanged
}
