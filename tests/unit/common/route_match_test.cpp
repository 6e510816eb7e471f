#include "hearth/common/route_match.hpp"

#include <catch2/catch.hpp>
#include <string>

using hearth::host_matches;
using hearth::normalize_host;
using hearth::path_matches;
using hearth::RouteTable;

TEST_CASE("normalize_host lower-cases and strips port and trailing dot", "[route_match]") {
  CHECK(normalize_host("example.com") == "example.com");
  CHECK(normalize_host("Tallow.Example.COM") == "tallow.example.com");
  CHECK(normalize_host("example.com:8443") == "example.com");
  CHECK(normalize_host("example.com.") == "example.com");
  CHECK(normalize_host("example.com.:443") == "example.com");
  CHECK(normalize_host("example.com:") == "example.com");  // RFC 3986: port = *DIGIT
  CHECK(normalize_host("example.com:0") == "example.com");
  CHECK(normalize_host("example.com:65535") == "example.com");
  CHECK(normalize_host("localhost") == "localhost");
  CHECK(normalize_host("192.0.2.1:80") == "192.0.2.1");
  CHECK(normalize_host("a-b.c_d.example") == "a-b.c_d.example");
  CHECK(normalize_host("xn--bcher-kva.example") == "xn--bcher-kva.example");
}

TEST_CASE("normalize_host handles bracketed IPv6 literals", "[route_match]") {
  CHECK(normalize_host("[::1]") == "[::1]");
  CHECK(normalize_host("[::1]:8443") == "[::1]");
  CHECK(normalize_host("[2001:DB8::A]") == "[2001:db8::a]");
  CHECK(normalize_host("[::ffff:192.0.2.1]:80") == "[::ffff:192.0.2.1]");
  CHECK_FALSE(normalize_host("[]"));
  CHECK_FALSE(normalize_host("[::1"));
  CHECK_FALSE(normalize_host("[::1]x"));
  CHECK_FALSE(normalize_host("[::1]:99999"));
  CHECK_FALSE(normalize_host("[::1]:80:80"));
  CHECK_FALSE(normalize_host("[fe80::1%25eth0]"));  // zone ids are not for Host headers
  CHECK_FALSE(normalize_host("[example.com]"));
  CHECK_FALSE(normalize_host("[1:2:3:4:5:6:7:8:9]"));
  CHECK_FALSE(normalize_host("[" + std::string(60, '1') + "]"));
  CHECK_FALSE(normalize_host("::1"));  // IPv6 must be bracketed
}

TEST_CASE("normalize_host rejects invalid names", "[route_match]") {
  CHECK_FALSE(normalize_host(""));
  CHECK_FALSE(normalize_host("."));
  CHECK_FALSE(normalize_host(":80"));
  CHECK_FALSE(normalize_host("example..com"));
  CHECK_FALSE(normalize_host(".example.com"));
  CHECK_FALSE(normalize_host("example.com.."));
  CHECK_FALSE(normalize_host("-a.example.com"));
  CHECK_FALSE(normalize_host("a-.example.com"));
  CHECK_FALSE(normalize_host("exa mple.com"));
  CHECK_FALSE(normalize_host(" example.com"));
  CHECK_FALSE(normalize_host("example.com/"));
  CHECK_FALSE(normalize_host("user@example.com"));
  CHECK_FALSE(normalize_host("*.example.com"));
  CHECK_FALSE(normalize_host("ex%41mple.com"));
  CHECK_FALSE(normalize_host("exämple.com"));
  CHECK_FALSE(normalize_host(std::string("a\0b", 3)));
  CHECK_FALSE(normalize_host("example.com:http"));
  CHECK_FALSE(normalize_host("example.com:65536"));
  CHECK_FALSE(normalize_host("example.com:123456"));
  CHECK_FALSE(normalize_host("example.com:-1"));
  CHECK_FALSE(normalize_host("example.com:80:80"));
}

TEST_CASE("normalize_host enforces DNS length limits", "[route_match]") {
  const std::string label63(63, 'a');
  CHECK(normalize_host(label63 + ".example") == label63 + ".example");
  CHECK_FALSE(normalize_host(std::string(64, 'a') + ".example"));

  // 4 labels of 63 + 3 dots = 255; trim to exactly 253.
  std::string name = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'a');
  REQUIRE(name.size() == 253);
  CHECK(normalize_host(name) == name);
  CHECK(normalize_host(name + ".") == name);  // the root dot does not count
  CHECK(normalize_host(name + ".:443") == name);
  CHECK_FALSE(normalize_host(name + "a"));
}

TEST_CASE("host_matches exact and wildcard patterns", "[route_match]") {
  CHECK(host_matches("a.example.com", "a.example.com"));
  CHECK(host_matches("A.Example.com", "a.example.com"));
  CHECK_FALSE(host_matches("a.example.com", "b.example.com"));
  CHECK_FALSE(host_matches("a.example.com", "x.a.example.com"));

  CHECK(host_matches("*.example.com", "x.example.com"));
  CHECK(host_matches("*.example.com", "x.y.example.com"));
  CHECK(host_matches("*.EXAMPLE.com", "x.example.com"));
  CHECK_FALSE(host_matches("*.example.com", "example.com"));
  CHECK_FALSE(host_matches("*.example.com", ".example.com"));
  CHECK_FALSE(host_matches("*.example.com", "xexample.com"));
  CHECK_FALSE(host_matches("*.example.com", "x.example.org"));

  CHECK_FALSE(host_matches("*", "example.com"));
  CHECK_FALSE(host_matches("", ""));
  CHECK_FALSE(host_matches("", "example.com"));
  CHECK_FALSE(host_matches("*.", "x."));
}

TEST_CASE("path_matches is segment-aware and ignores the query", "[route_match]") {
  CHECK(path_matches("/", "/"));
  CHECK(path_matches("/", "/anything/at/all?x"));
  CHECK(path_matches("", "/x"));
  CHECK(path_matches("/", "*"));  // OPTIONS * reaches the host's "/" route

  CHECK(path_matches("/signaling", "/signaling"));
  CHECK(path_matches("/signaling", "/signaling/"));
  CHECK(path_matches("/signaling", "/signaling/x"));
  CHECK(path_matches("/signaling", "/signaling?q=1"));
  CHECK(path_matches("/signaling", "/signaling/x?q=/y"));
  CHECK_FALSE(path_matches("/signaling", "/signalingx"));
  CHECK_FALSE(path_matches("/signaling", "/signal"));
  CHECK_FALSE(path_matches("/signaling", "/other/signaling"));
  CHECK_FALSE(path_matches("/signaling", "/?/signaling"));
  CHECK_FALSE(path_matches("/signaling", "/Signaling"));  // paths are case-sensitive

  CHECK(path_matches("/api/", "/api/"));
  CHECK(path_matches("/api/", "/api/v1"));
  CHECK_FALSE(path_matches("/api/", "/api"));
  CHECK_FALSE(path_matches("/api/", "/api?x=/api/"));

  CHECK(path_matches("/a/b", "/a/b/c"));
  CHECK_FALSE(path_matches("/a/b", "/a/bc"));
}

TEST_CASE("RouteTable prefers the longest path prefix within a host", "[route_match]") {
  RouteTable<std::string> table;
  table.add("tallow.example.com", "/", "web");
  table.add("tallow.example.com", "/signaling", "signaling");
  table.add("tallow.example.com", "/signaling/admin", "admin");
  CHECK(table.size() == 3);

  auto at = [&](std::string_view host, std::string_view path) -> std::string {
    const std::string* value = table.lookup(host, path);
    return value ? *value : "<none>";
  };
  CHECK(at("tallow.example.com", "/") == "web");
  CHECK(at("tallow.example.com", "/index.html") == "web");
  CHECK(at("tallow.example.com", "/signaling") == "signaling");
  CHECK(at("tallow.example.com", "/signaling?room=1") == "signaling");
  CHECK(at("tallow.example.com", "/signalingx") == "web");
  CHECK(at("tallow.example.com", "/signaling/admin/x") == "admin");
  CHECK(at("tallow.example.com", "/signaling/adminx") == "signaling");
  CHECK(at("other.example.com", "/") == "<none>");
}

TEST_CASE("RouteTable prefers exact hosts, then longer wildcard suffixes", "[route_match]") {
  RouteTable<int> table;
  table.add("*.example.com", "/", 1);
  table.add("*.home.example.com", "/", 2);
  table.add("nas.home.example.com", "/", 3);
  table.add("example.com", "/", 4);

  auto at = [&](std::string_view host) {
    const int* value = table.lookup(host, "/x");
    return value ? *value : 0;
  };
  CHECK(at("nas.home.example.com") == 3);
  CHECK(at("tv.home.example.com") == 2);
  CHECK(at("a.b.home.example.com") == 2);
  CHECK(at("home.example.com") == 1);
  CHECK(at("www.example.com") == 1);
  CHECK(at("example.com") == 4);
  CHECK(at("example.org") == 0);
  CHECK(at("") == 0);
  CHECK(at(".example.com") == 0);
}

TEST_CASE("RouteTable host choice is final even when no path matches", "[route_match]") {
  RouteTable<int> table;
  table.add("*.example.com", "/", 1);
  table.add("a.example.com", "/api", 2);
  table.add("*.b.example.com", "/api", 3);

  CHECK(*table.lookup("a.example.com", "/api/v1") == 2);
  CHECK(table.lookup("a.example.com", "/other") == nullptr);
  CHECK(*table.lookup("x.b.example.com", "/api") == 3);
  CHECK(table.lookup("x.b.example.com", "/") == nullptr);
  CHECK(*table.lookup("b.example.com", "/") == 1);
}

TEST_CASE("RouteTable normalizes patterns and replaces duplicates", "[route_match]") {
  RouteTable<int> table;
  table.add("Tallow.Example.COM.", "", 1);
  CHECK(*table.lookup("tallow.example.com", "/anything") == 1);

  table.add("tallow.example.com", "/", 2);  // same pattern and prefix: replaced
  CHECK(table.size() == 1);
  CHECK(*table.lookup("tallow.example.com", "/") == 2);

  table.add("*.Example.com", "/", 3);
  CHECK(*table.lookup("x.example.com", "/") == 3);

  RouteTable<int> empty;
  CHECK(empty.size() == 0);
  CHECK(empty.lookup("example.com", "/") == nullptr);
}

TEST_CASE("RouteTable ranks \"/\" below every other prefix", "[route_match]") {
  // "/" matches targets that do not start with '/' too, so without a rule it
  // would tie with a one-character prefix (found by route_match_fuzz).
  for (const bool slash_first : {true, false}) {
    RouteTable<int> table;
    if (slash_first) {
      table.add("h.example", "/", 1);
    }
    table.add("h.example", "*", 2);
    if (!slash_first) {
      table.add("h.example", "/", 1);
    }
    CHECK(*table.lookup("h.example", "*") == 2);
    CHECK(*table.lookup("h.example", "/x") == 1);
  }
}

TEST_CASE("RouteTable agrees with host_matches and path_matches", "[route_match]") {
  // The table is an index over the two predicates; check it against brute force
  // on a small grid so the sorted layout cannot drift from the documented rule.
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"*.example.com", "/"},     {"*.example.com", "/a"}, {"a.example.com", "/a/b"},
      {"*.a.example.com", "/a/"}, {"b.example.com", "/"},  {"*.b.example.com", "/a"},
      {"c.a.example.com", "/c"},
  };
  RouteTable<std::size_t> table;
  for (std::size_t i = 0; i < routes.size(); ++i) {
    table.add(routes[i].first, routes[i].second, i);
  }
  auto specificity = [](const std::string& pattern) {
    // exact beats every wildcard; longer wildcard suffix beats shorter
    return pattern.starts_with("*.") ? pattern.size() : 1000 + pattern.size();
  };
  const std::vector<std::string> hosts = {"example.com",     "a.example.com",   "b.example.com",
                                          "x.example.com",   "c.a.example.com", "d.a.example.com",
                                          "e.b.example.com", "x.y.example.com"};
  const std::vector<std::string> paths = {"/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/c", "/c/d"};
  for (const auto& host : hosts) {
    for (const auto& path : paths) {
      std::optional<std::size_t> best;
      std::size_t best_host = 0;
      for (std::size_t i = 0; i < routes.size(); ++i) {
        if (host_matches(routes[i].first, host) && specificity(routes[i].first) > best_host) {
          best_host = specificity(routes[i].first);
        }
      }
      for (std::size_t i = 0; i < routes.size(); ++i) {
        if (best_host != 0 && specificity(routes[i].first) == best_host &&
            host_matches(routes[i].first, host) && path_matches(routes[i].second, path) &&
            (!best || routes[i].second.size() > routes[*best].second.size())) {
          best = i;
        }
      }
      const std::size_t* got = table.lookup(host, path);
      INFO(host << path);
      CHECK((got ? std::optional<std::size_t>(*got) : std::nullopt) == best);
    }
  }
}
