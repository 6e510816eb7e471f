// The multiplexer over a real loopback TLS connection: both ends in one
// io_context, driven with bounded run_for.
#include "hearth/tunnel/mux.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "hearth/common/crypto.hpp"
#include "hearth/tunnel/handshake.hpp"

using namespace hearth;
using namespace hearth::tunnel;
using tcp = asio::ip::tcp;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

struct Pair {
  asio::io_context io{1};
  std::shared_ptr<Connection> edge;    // opener
  std::shared_ptr<Connection> origin;  // accepts streams
};

asio::awaitable<void> handshake_side(TlsStream& tls, asio::ssl::stream_base::handshake_type t,
                                     bool& ok) {
  auto [ec] = co_await tls.async_handshake(t, tuple_awaitable);
  ok = !ec;
}

// Echo every stream back to its sender, then FIN.
asio::awaitable<void> echo_stream(TunnelStream s) {
  std::vector<char> buf(8192);
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_awaitable);
    if (ec) break;
    auto [wec, wn] = co_await asio::async_write(s, asio::buffer(buf.data(), n), tuple_awaitable);
    if (wec) co_return;
  }
  s.shutdown_send();
}

// Stream 1 (path "/bulk"): push `bulk_bytes` to the opener without reading.
asio::awaitable<void> bulk_stream(TunnelStream s, std::size_t bulk_bytes) {
  std::vector<char> buf(16384, 'b');
  std::size_t sent = 0;
  while (sent < bulk_bytes) {
    auto [ec, n] = co_await asio::async_write(s, asio::buffer(buf), tuple_awaitable);
    if (ec) co_return;
    sent += n;
  }
  s.shutdown_send();
}

void make_pair(Pair& p, std::size_t bulk_bytes = 0,
               Connection::ControlHandler edge_control = nullptr) {
  auto edge_key = crypto::generate_private_key_pem();
  auto origin_key = crypto::generate_private_key_pem();
  auto sctx = make_tunnel_tls_context(true, edge_key);
  auto cctx = make_tunnel_tls_context(false, origin_key);
  tcp::acceptor acc(p.io, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket a(p.io), b(p.io);
  b.connect(acc.local_endpoint());
  acc.accept(a);
  TlsStream server(std::move(a), sctx->native_handle(), TlsSocket::Buffers::keep);
  TlsStream client(std::move(b), cctx->native_handle(), TlsSocket::Buffers::keep);
  bool ok1 = false, ok2 = false;
  asio::co_spawn(p.io, handshake_side(server, asio::ssl::stream_base::server, ok1), asio::detached);
  asio::co_spawn(p.io, handshake_side(client, asio::ssl::stream_base::client, ok2), asio::detached);
  p.io.run_for(std::chrono::seconds(5));
  p.io.restart();
  REQUIRE(ok1);
  REQUIRE(ok2);
  // Each side sees the other's pin.
  CHECK(peer_pin(server) == crypto::pin_of_private_key_pem(origin_key));
  CHECK(peer_pin(client) == crypto::pin_of_private_key_pem(edge_key));

  ConnectionOptions eo;
  eo.opener = true;
  eo.log_id = "test-edge";
  ConnectionOptions oo;
  oo.log_id = "test-origin";
  p.edge = std::make_shared<Connection>(p.io.get_executor(), std::move(server),
                                        beast::flat_buffer(), eo);
  p.origin = std::make_shared<Connection>(p.io.get_executor(), std::move(client),
                                          beast::flat_buffer(), oo);
  if (edge_control) p.edge->set_control_handler(std::move(edge_control));
  p.edge->start(nullptr, [](const std::string&) {});
  auto* io = &p.io;
  p.origin->start(
      [io, bulk_bytes](TunnelStream s, Open meta) {
        if (meta.path == "/bulk") {
          asio::co_spawn(*io, bulk_stream(std::move(s), bulk_bytes), asio::detached);
        } else {
          asio::co_spawn(*io, echo_stream(std::move(s)), asio::detached);
        }
      },
      [](const std::string&) {});
}

struct EchoResult {
  bool ok = false;
  std::size_t received = 0;
};

// Writes and reads concurrently, as any echo client must: writing everything
// before reading would deadlock once both directions' windows are full, just
// as it would over plain TCP.
asio::awaitable<void> write_all(TunnelStream& s, const std::string& data) {
  auto [wec, wn] = co_await asio::async_write(s, asio::buffer(data), tuple_awaitable);
  if (!wec) s.shutdown_send();
}

asio::awaitable<void> read_all(TunnelStream& s, std::string& got, error_code& end) {
  std::vector<char> buf(10000);
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_awaitable);
    got.append(buf.data(), n);
    if (ec) {
      end = ec;
      co_return;
    }
  }
}

asio::awaitable<void> echo_client(std::shared_ptr<Connection> conn, std::size_t bytes,
                                  EchoResult& out) {
  using namespace asio::experimental::awaitable_operators;
  auto ex = co_await asio::this_coro::executor;
  auto s = conn->open_stream(Open{"h", "/echo", "c", StreamKind::http}, ex);
  if (!s) co_return;
  std::string sent(bytes, '\0');
  for (std::size_t i = 0; i < bytes; ++i) sent[i] = static_cast<char>((i * 131 + bytes) & 0xff);
  std::string got;
  error_code end;
  co_await (write_all(*s, sent) && read_all(*s, got, end));
  out.ok = end == asio::error::eof && got == sent;
  out.received = got.size();
}

asio::awaitable<void> ping_pong(std::shared_ptr<Connection> conn, int rounds,
                                std::chrono::microseconds& worst, int& done) {
  auto ex = co_await asio::this_coro::executor;
  auto s = conn->open_stream(Open{"h", "/echo", "c", StreamKind::http}, ex);
  if (!s) co_return;
  char msg[64] = {};
  for (int i = 0; i < rounds; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto [wec, wn] = co_await asio::async_write(*s, asio::buffer(msg), tuple_awaitable);
    if (wec) co_return;
    auto [ec, n] = co_await asio::async_read(*s, asio::buffer(msg), tuple_awaitable);
    if (ec) co_return;
    worst = std::max(worst, std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - t0));
    ++done;
  }
}

asio::awaitable<void> read_error(std::shared_ptr<Connection> conn, std::string path,
                                 bool reset_first, error_code& out) {
  auto ex = co_await asio::this_coro::executor;
  auto s = conn->open_stream(Open{"h", path, "c", StreamKind::http}, ex);
  if (!s) co_return;
  char c = 'x';
  co_await asio::async_write(*s, asio::buffer(&c, 1), tuple_awaitable);
  if (reset_first) {
    s->reset(ResetCode::cancel);
  }
  std::vector<char> buf(100000);
  for (;;) {
    auto [ec, n] = co_await s->async_read_some(asio::buffer(buf), tuple_awaitable);
    if (ec) {
      out = ec;
      co_return;
    }
  }
}

}  // namespace

TEST_CASE("many concurrent streams echo intact", "[tunnel][mux]") {
  Pair p;
  make_pair(p);
  std::vector<EchoResult> results(40);
  for (std::size_t i = 0; i < results.size(); ++i) {
    asio::co_spawn(p.io, echo_client(p.edge, 1 + i * 37001, results[i]), asio::detached);
  }
  auto all_done = [&] {
    for (const auto& r : results) {
      if (!r.ok) return false;
    }
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!all_done() && std::chrono::steady_clock::now() < deadline) {
    p.io.run_for(std::chrono::milliseconds(20));
  }
  p.io.run_for(std::chrono::milliseconds(100));  // let the streams close
  for (std::size_t i = 0; i < results.size(); ++i) {
    INFO("stream " << i << " received " << results[i].received);
    CHECK(results[i].ok);
  }
  CHECK(p.edge->active_streams() == 0);
  CHECK(p.origin->active_streams() == 0);
}

TEST_CASE("a stream nobody reads does not stall the others", "[tunnel][mux]") {
  Pair p;
  make_pair(p, 64 * 1024 * 1024);
  // The bulk stream is opened and never read: the origin can send at most one
  // window (kInitialWindow) before it blocks, and only that stream blocks.
  std::optional<TunnelStream> bulk =
      p.edge->open_stream(Open{"h", "/bulk", "c", StreamKind::http}, p.io.get_executor());
  REQUIRE(bulk);
  std::chrono::microseconds worst{0};
  int done = 0;
  asio::co_spawn(p.io, ping_pong(p.edge, 200, worst, done), asio::detached);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (done < 200 && std::chrono::steady_clock::now() < deadline) {
    p.io.run_for(std::chrono::milliseconds(50));
  }
  CHECK(done == 200);
  // The origin's view: at most one window in flight on the bulk stream.
  CHECK(p.origin->bytes_out() < 2 * kInitialWindow + 200 * 200);
  bulk.reset();
  p.io.run_for(std::chrono::milliseconds(200));
}

TEST_CASE("reset and connection loss fail pending reads", "[tunnel][mux]") {
  Pair p;
  make_pair(p, 1);
  SECTION("local reset aborts our read") {
    error_code ec;
    asio::co_spawn(p.io, read_error(p.edge, "/echo", true, ec), asio::detached);
    p.io.run_for(std::chrono::seconds(2));
    CHECK(ec == asio::error::operation_aborted);
  }
  SECTION("closing the connection fails the stream with connection_lost") {
    error_code ec;
    asio::co_spawn(p.io, read_error(p.edge, "/echo", false, ec), asio::detached);
    p.io.run_for(std::chrono::milliseconds(300));
    p.origin->close("test");
    p.io.run_for(std::chrono::seconds(2));
    CHECK(ec == make_error_code(Errc::connection_lost));
  }
}

TEST_CASE("streams opened from another thread keep ids in order", "[tunnel][mux]") {
  // The edge opens streams from client sessions on other workers. Ids must
  // still reach the origin in increasing order (a bug once: ids taken from an
  // atomic counter on the caller's thread arrived out of order).
  Pair p;
  make_pair(p);
  asio::io_context users{1};
  auto guard = asio::make_work_guard(p.io);
  std::thread conn_thread([&] { p.io.run(); });
  std::vector<EchoResult> results(100);
  for (std::size_t i = 0; i < results.size(); ++i) {
    asio::co_spawn(users, echo_client(p.edge, 1000 + i, results[i]), asio::detached);
  }
  auto user_guard = asio::make_work_guard(users);
  auto done = [&] {
    for (const auto& r : results) {
      if (!r.ok) return false;
    }
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    users.run_for(std::chrono::milliseconds(20));
  }
  guard.reset();
  p.edge->close("done");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  p.io.stop();
  conn_thread.join();
  std::size_t ok = 0;
  for (const auto& r : results) ok += r.ok ? 1 : 0;
  CHECK(ok == results.size());
}

TEST_CASE("PUBLISH reaches the control handler; unhandled, it is a connection error",
          "[mux][publish]") {
  std::vector<Publish> got;
  Pair p;
  make_pair(p, 0, [&got](FrameType type, std::span<const std::uint8_t> payload) {
    if (type != FrameType::publish) return false;
    auto v = decode_publish(payload);
    if (!v) return false;
    got.push_back(std::move(*v));
    return true;
  });
  Publish sent{1, {{"app.test", "/", RouteHealth::unhealthy}}};
  p.origin->send_control(FrameType::publish, encode_payload(sent));
  for (int i = 0; i < 100 && got.empty(); ++i) p.io.run_for(std::chrono::milliseconds(20));
  REQUIRE(got.size() == 1);
  CHECK(got[0] == sent);
  CHECK_FALSE(p.edge->closed());

  // A malformed payload: the handler says so, the connection closes.
  p.origin->send_control(FrameType::publish, {1, 2, 3});
  for (int i = 0; i < 100 && !p.edge->closed(); ++i) p.io.run_for(std::chrono::milliseconds(20));
  CHECK(p.edge->closed());

  // The origin side has no handler: PUBLISHED there is a connection error.
  Pair q;
  make_pair(q);
  q.edge->send_control(FrameType::published, encode_payload(Published{0, {}}));
  for (int i = 0; i < 100 && !q.origin->closed(); ++i) q.io.run_for(std::chrono::milliseconds(20));
  CHECK(q.origin->closed());
  p.io.run_for(std::chrono::milliseconds(50));
  q.io.run_for(std::chrono::milliseconds(50));
}

TEST_CASE("an OPEN that crosses the origin's GOAWAY is refused as draining, not lost",
          "[tunnel][mux]") {
  // The origin drains (GOAWAY, then a graceful close once idle) while the
  // edge opens a stream that the GOAWAY has not reached yet. The edge must
  // learn that the origin never took it (RESET draining: it retries the
  // request elsewhere), not see the connection vanish under it (502).
  Pair p;
  make_pair(p);
  auto origin = p.origin;
  origin->go_away("routes changed");
  origin->when_idle(
      [origin] { origin->close_gracefully("routes changed", std::chrono::seconds(2)); });
  error_code ec;
  asio::co_spawn(p.io, read_error(p.edge, "/echo", false, ec), asio::detached);
  p.io.run_for(std::chrono::seconds(3));
  CHECK(ec == make_error_code(Errc::draining));
  CHECK(origin->closed());
}

namespace {

// Waits for readability, then reads what is there; `waited` counts the waits
// that completed with nothing consumed.
asio::awaitable<void> wait_then_read(std::shared_ptr<Connection> conn, std::string* got, int* waits,
                                     error_code* end) {
  auto ex = co_await asio::this_coro::executor;
  auto s = conn->open_stream(Open{"h", "/echo", "c", StreamKind::websocket}, ex);
  if (!s) co_return;
  const std::string msg = "hello through a wait";
  co_await asio::async_write(*s, asio::buffer(msg), tuple_awaitable);
  s->shutdown_send();  // the echo answers, then FINs
  for (;;) {
    auto [wec, wn] = co_await s->async_wait_readable(tuple_awaitable);
    if (wec) {
      *end = wec;
      co_return;
    }
    ++*waits;
    if (wn != 0) co_return;  // a wait never consumes
    char buf[4];             // small: the rest stays for the next wait and read
    auto [ec, n] = co_await s->async_read_some(asio::buffer(buf), tuple_awaitable);
    if (ec) {
      *end = ec;
      co_return;
    }
    got->append(buf, n);
  }
}

}  // namespace

TEST_CASE("async_wait_readable: waits without a buffer, never consumes, ends with EOF",
          "[tunnel][mux]") {
  Pair p;
  make_pair(p);
  std::string got;
  int waits = 0;
  error_code end;
  asio::co_spawn(p.io, wait_then_read(p.edge, &got, &waits, &end), asio::detached);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!end && std::chrono::steady_clock::now() < deadline) {
    p.io.run_for(std::chrono::milliseconds(20));
  }
  CHECK(got == "hello through a wait");
  CHECK(waits >= 5);  // 20 bytes in 4-byte reads: a wait before each
  CHECK(end == asio::error::eof);
}
