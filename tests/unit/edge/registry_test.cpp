// The edge's route registry with partial publish, live re-filtering on reload,
// and health-aware picking (issue 13). Connections are made but never started:
// the registry only asks whether they are usable.
#include "hearth/edge/registry.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <catch2/catch.hpp>

using namespace hearth;
using namespace hearth::edge;
using tunnel::RouteHealth;

namespace {

struct Fixture {
  boost::asio::io_context io{1};
  boost::asio::ssl::context ctx{boost::asio::ssl::context::tls_client};

  // A TlsSocket needs an open (not connected) socket to attach to.
  boost::asio::ip::tcp::socket unconnected_socket() {
    boost::asio::ip::tcp::socket s(io);
    s.open(boost::asio::ip::tcp::v4());
    return s;
  }

  std::shared_ptr<TunnelInfo> tunnel(std::uint64_t id, std::string origin,
                                     std::vector<tunnel::PublishRoute> routes) {
    auto t = std::make_shared<TunnelInfo>();
    t->id = id;
    t->origin = std::move(origin);
    t->version = 2;
    t->requested = std::move(routes);
    t->conn = std::make_shared<tunnel::Connection>(
        io.get_executor(), tunnel::TlsStream(unconnected_socket(), ctx.native_handle()),
        boost::beast::flat_buffer{}, tunnel::ConnectionOptions{});
    return t;
  }
};

}  // namespace

TEST_CASE("filter_routes refuses only routes whose hostname is not allowed", "[publish]") {
  auto f = filter_routes({{"app.test", "/", RouteHealth::healthy},
                          {"evil.test", "/", RouteHealth::unknown},
                          {"a.app.test", "/api", RouteHealth::unhealthy}},
                         {"app.test", "*.app.test"}, "nas");
  REQUIRE(f.served.size() == 2);
  CHECK(f.served[0].host == "app.test");
  CHECK(f.served[1].host == "a.app.test");
  CHECK(f.health == std::vector<RouteHealth>{RouteHealth::healthy, RouteHealth::unhealthy});
  REQUIRE(f.refused.size() == 1);
  CHECK(f.refused[0].host == "evil.test");
  CHECK(f.refused[0].reason.find("nas") != std::string::npos);
  CHECK(host_allowed({"*.app.test"}, "x.y.app.test"));
  CHECK_FALSE(host_allowed({"*.app.test"}, "app.test"));
}

TEST_CASE("Registry: partial publish, reload re-filtering, republish", "[registry]") {
  Fixture fx;
  Registry reg;
  reg.set_grants({{"nas", {"app.test"}}});
  auto stored = reg.add(fx.tunnel(
      1, "nas",
      {{"app.test", "/", RouteHealth::unknown}, {"other.test", "/", RouteHealth::unknown}}));
  REQUIRE(stored->routes.size() == 1);
  REQUIRE(stored->refused.size() == 1);
  CHECK(reg.refused_total() == 1);
  reg.republish(
      1, {2, {{"app.test", "/", RouteHealth::healthy}, {"other.test", "/", RouteHealth::unknown}}});
  CHECK(reg.refused_total() == 1);  // the same refusal again is not counted again
  std::shared_ptr<const TunnelInfo> out;
  CHECK(reg.pick("app.test", "/x", out) == PickResult::ok);
  CHECK(reg.pick("other.test", "/", out) == PickResult::unknown_host);

  SECTION("a hostname added on reload is served at once, without a new publish") {
    auto changed = reg.set_grants({{"nas", {"app.test", "other.test"}}});
    REQUIRE(changed.size() == 1);
    CHECK(changed[0]->refused.empty());
    CHECK(reg.pick("other.test", "/", out) == PickResult::ok);
    CHECK(out->id == 1);
  }
  SECTION("a hostname removed on reload is 404 at once, not 503") {
    auto changed = reg.set_grants({{"nas", {"other.test"}}});
    REQUIRE(changed.size() == 1);
    CHECK(reg.pick("app.test", "/", out) == PickResult::unknown_host);
    CHECK(reg.pick("other.test", "/", out) == PickResult::ok);
    // The tunnel going away now leaves other.test offline (503), app.test unknown.
    reg.remove(1);
    CHECK(reg.pick("other.test", "/", out) == PickResult::offline);
    CHECK(reg.pick("app.test", "/", out) == PickResult::unknown_host);
  }
  SECTION("a PUBLISH replaces the route set; a withdrawn route is 404") {
    auto t = reg.republish(1, {5, {{"app.test", "/api", RouteHealth::healthy}}});
    REQUIRE(t);
    CHECK(t->publish_seq == 5);
    CHECK(reg.pick("app.test", "/api/x", out) == PickResult::ok);
    CHECK(reg.pick("app.test", "/", out) == PickResult::unknown_host);
    CHECK_FALSE(reg.republish(99, {}));
  }
  SECTION("an origin removed from [[origins]] serves nothing") {
    reg.set_grants({});
    CHECK(reg.pick("app.test", "/", out) == PickResult::unknown_host);
  }
  reg.clear();
}

TEST_CASE("Registry: health decides the pick", "[registry][health]") {
  Fixture fx;
  Registry reg;
  reg.set_grants({{"nas", {"app.test"}}, {"nas2", {"app.test"}}});
  reg.add(fx.tunnel(1, "nas", {{"app.test", "/", RouteHealth::unhealthy}}));
  std::shared_ptr<const TunnelInfo> out;
  CHECK(reg.pick("app.test", "/", out) == PickResult::unhealthy);

  // A healthy replica (another origin publishing the route) is chosen every time.
  reg.add(fx.tunnel(2, "nas2", {{"app.test", "/", RouteHealth::healthy}}));
  for (int i = 0; i < 8; ++i) {
    REQUIRE(reg.pick("app.test", "/", out) == PickResult::ok);
    CHECK(out->id == 2);
  }
  // Unknown (no check yet) counts as serving.
  reg.republish(2, {1, {{"app.test", "/", RouteHealth::unknown}}});
  CHECK(reg.pick("app.test", "/", out) == PickResult::ok);
  CHECK(out->id == 2);
  // Both unhealthy: 503 without a trip home.
  reg.republish(2, {2, {{"app.test", "/", RouteHealth::unhealthy}}});
  CHECK(reg.pick("app.test", "/", out) == PickResult::unhealthy);
  // Recovery.
  reg.republish(1, {3, {{"app.test", "/", RouteHealth::healthy}}});
  CHECK(reg.pick("app.test", "/", out) == PickResult::ok);
  CHECK(out->id == 1);
  auto text = reg.prometheus();
  CHECK(text.find("hearth_route_healthy{host=\"app.test\",path=\"/\"} 1") != std::string::npos);
  CHECK(text.find("# TYPE hearth_publish_refused_total counter") != std::string::npos);
  reg.clear();
}
