// TlsSocket over real loopback TCP with real TLS: handshake, concurrent bulk
// transfer both ways, clean close vs truncation, timeouts, and what an idle
// connection keeps allocated.

#include "hearth/common/tls_socket.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "hearth/common/crypto.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using hearth::TlsSocket;
using namespace asio::experimental::awaitable_operators;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

struct Contexts {
  asio::ssl::context server{asio::ssl::context::tls_server};
  asio::ssl::context client{asio::ssl::context::tls_client};
  Contexts() {
    auto ck = hearth::crypto::self_signed_server_certificate({"localhost"});
    REQUIRE(ck);
    server.use_certificate_chain(asio::buffer(ck->cert_pem));
    server.use_private_key(asio::buffer(ck->key_pem), asio::ssl::context::pem);
    client.set_verify_mode(asio::ssl::verify_none);
  }
};

// A connected pair of TCP sockets on loopback.
std::pair<tcp::socket, tcp::socket> socket_pair(asio::io_context& io) {
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket a(io), b(io);
  a.connect(acc.local_endpoint());
  acc.accept(b);
  return {std::move(a), std::move(b)};
}

// Coroutines are free functions with parameters by value (pointers here):
// house rule, GCC 12 miscompiles some capturing lambda coroutines.
asio::awaitable<void> handshake(TlsSocket* s, asio::ssl::stream_base::handshake_type type,
                                error_code* ec) {
  std::tie(*ec) = co_await s->async_handshake(type, tuple_awaitable);
}

asio::awaitable<void> handshake_both(TlsSocket* server, TlsSocket* client, error_code* sec,
                                     error_code* cec) {
  auto sa = handshake(server, asio::ssl::stream_base::server, sec);
  auto ca = handshake(client, asio::ssl::stream_base::client, cec);
  co_await (std::move(sa) && std::move(ca));
}

asio::awaitable<void> read_one(TlsSocket* s, error_code* ec) {
  char c;
  std::tie(*ec, std::ignore) = co_await s->async_read_some(asio::buffer(&c, 1), tuple_awaitable);
}

asio::awaitable<void> shutdown_then_read(TlsSocket* closer, TlsSocket* reader, error_code* shut_ec,
                                         error_code* read_ec) {
  std::tie(*shut_ec) = co_await closer->async_shutdown(tuple_awaitable);
  co_await read_one(reader, read_ec);
}

std::vector<char> pattern(std::size_t n, char seed) {
  std::vector<char> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<char>(seed + i * 7 + i / 4096);
  return v;
}

asio::awaitable<void> send_all(TlsSocket* s, const std::vector<char>* data, error_code* ec) {
  std::tie(*ec, std::ignore) = co_await asio::async_write(*s, asio::buffer(*data), tuple_awaitable);
}

asio::awaitable<void> recv_n(TlsSocket* s, std::vector<char>* out, std::size_t n, error_code* ec) {
  out->resize(n);
  std::tie(*ec, std::ignore) = co_await asio::async_read(*s, asio::buffer(*out), tuple_awaitable);
}

asio::awaitable<void> both_ways(TlsSocket* client, TlsSocket* server, const std::vector<char>* up,
                                const std::vector<char>* down, std::vector<char>* got_up,
                                std::vector<char>* got_down, error_code* ecs) {
  auto w1 = send_all(client, up, &ecs[0]);
  auto w2 = send_all(server, down, &ecs[1]);
  auto r1 = recv_n(server, got_up, up->size(), &ecs[2]);
  auto r2 = recv_n(client, got_down, down->size(), &ecs[3]);
  co_await (std::move(w1) && std::move(w2) && std::move(r1) && std::move(r2));
}

namespace http = boost::beast::http;

asio::awaitable<void> write_request(TlsSocket* s, const http::request<http::string_body>* req,
                                    error_code* ec) {
  std::tie(*ec, std::ignore) = co_await http::async_write(*s, *req, tuple_awaitable);
}

asio::awaitable<void> read_request(TlsSocket* s, boost::beast::flat_buffer* buf,
                                   http::request<http::string_body>* req, error_code* ec) {
  std::tie(*ec, std::ignore) = co_await http::async_read(*s, *buf, *req, tuple_awaitable);
}

asio::awaitable<void> http_exchange(TlsSocket* client, TlsSocket* server,
                                    const http::request<http::string_body>* req,
                                    boost::beast::flat_buffer* buf,
                                    http::request<http::string_body>* got, error_code* wec,
                                    error_code* rec) {
  auto w = write_request(client, req, wec);
  auto r = read_request(server, buf, got, rec);
  co_await (std::move(w) && std::move(r));
}

void run(asio::io_context& io, asio::awaitable<void> a) {
  bool done = false;
  std::exception_ptr err;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e) {
    err = e;
    done = true;
  });
  io.run_for(std::chrono::seconds(30));
  REQUIRE(done);
  if (err) std::rethrow_exception(err);
}

asio::awaitable<void> write_some_once(TlsSocket* s, const std::vector<char>* data, error_code* ec,
                                      std::size_t* n) {
  std::tie(*ec, *n) = co_await s->async_write_some(asio::buffer(*data), tuple_awaitable);
}

asio::awaitable<void> read_some_once(TlsSocket* s, std::vector<char>* out, error_code* ec,
                                     std::size_t* n) {
  std::tie(*ec, *n) = co_await s->async_read_some(asio::buffer(*out), tuple_awaitable);
}

// A client and a server TlsSocket over loopback, TLS handshake done.
struct Connected {
  Contexts ctx;
  asio::io_context io;
  std::optional<TlsSocket> server, client;
  explicit Connected(TlsSocket::Buffers buffers = TlsSocket::Buffers::release_when_empty) {
    auto [a, b] = socket_pair(io);
    server.emplace(std::move(b), ctx.server.native_handle(), buffers);
    client.emplace(std::move(a), ctx.client.native_handle(), buffers);
    error_code sec, cec;
    run(io, handshake_both(&*server, &*client, &sec, &cec));
    REQUIRE_FALSE(sec);
    REQUIRE_FALSE(cec);
    io.restart();
  }
};

}  // namespace

TEST_CASE("TlsSocket: handshake, 8 MiB both ways at once, close_notify is EOF", "[tls_socket]") {
  Connected c;
  auto& io = c.io;
  auto& server = *c.server;
  auto& client = *c.client;

  const auto up = pattern(8 << 20, 'u');
  const auto down = pattern(8 << 20, 'd');
  std::vector<char> got_up, got_down;
  error_code ecs[4];
  io.restart();
  run(io, both_ways(&client, &server, &up, &down, &got_up, &got_down, ecs));
  for (auto& e : ecs) CHECK_FALSE(e);
  CHECK(got_up == up);
  CHECK(got_down == down);

  // Clean close: the reader sees EOF, not truncation.
  error_code shut_ec, read_ec;
  io.restart();
  run(io, shutdown_then_read(&client, &server, &shut_ec, &read_ec));
  CHECK_FALSE(shut_ec);
  CHECK(read_ec == asio::error::eof);
}

TEST_CASE("TlsSocket: TCP close without close_notify is stream_truncated", "[tls_socket]") {
  Connected c;
  auto& io = c.io;
  auto& server = *c.server;
  auto& client = *c.client;
  // One byte each way first, so the client has read the server's session
  // tickets: closing with unread data would send RST (connection_reset).
  std::vector<char> one{'x'}, got;
  error_code ecs[4];
  io.restart();
  run(io, both_ways(&client, &server, &one, &one, &got, &got, ecs));
  REQUIRE_FALSE(ecs[3]);
  client.close();
  error_code read_ec;
  io.restart();
  run(io, read_one(&server, &read_ec));
  CHECK(read_ec == asio::ssl::error::stream_truncated);
}

TEST_CASE("TlsSocket: a silent peer times out; a garbage peer fails the handshake",
          "[tls_socket]") {
  Contexts ctx;
  asio::io_context io;
  {
    auto [a, b] = socket_pair(io);
    TlsSocket server(std::move(b), ctx.server.native_handle());
    server.expires_after(std::chrono::milliseconds(150));
    error_code ec;
    auto t0 = std::chrono::steady_clock::now();
    run(io, handshake(&server, asio::ssl::stream_base::server, &ec));
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(ec == boost::beast::error::timeout);
    CHECK(waited >= std::chrono::milliseconds(140));
    CHECK(waited < std::chrono::seconds(5));
  }
  {
    auto [a, b] = socket_pair(io);
    TlsSocket server(std::move(b), ctx.server.native_handle());
    const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    asio::write(a, asio::buffer(junk, sizeof junk - 1));
    error_code ec;
    io.restart();
    run(io, handshake(&server, asio::ssl::stream_base::server, &ec));
    CHECK(ec);
    CHECK(ec.category() == asio::error::get_ssl_category());
  }
}

TEST_CASE("TlsSocket: Beast HTTP runs on it; an idle connection keeps no record buffers",
          "[tls_socket]") {
  Connected c;
  auto& io = c.io;
  auto& server = *c.server;
  auto& client = *c.client;

  error_code wec, rec;
  http::request<http::string_body> req{http::verb::post, "/x", 11}, got;
  req.set(http::field::host, "localhost");
  req.body() = std::string(100000, 'b');
  req.prepare_payload();
  boost::beast::flat_buffer buf;
  io.restart();
  run(io, http_exchange(&client, &server, &req, &buf, &got, &wec, &rec));
  CHECK_FALSE(wec);
  CHECK_FALSE(rec);
  CHECK(got.body().size() == 100000);
  CHECK(got.target() == "/x");
  // SSL_MODE_RELEASE_BUFFERS: nothing buffered, so no record buffers held.
  CHECK((SSL_get_mode(server.native_handle()) & SSL_MODE_RELEASE_BUFFERS) != 0);
  CHECK(SSL_pending(server.native_handle()) == 0);
}

TEST_CASE("TlsSocket: one write_some and one read_some move several records", "[tls_socket]") {
  // Four records' worth: a write_some writes records while the socket takes
  // them, a read_some returns every record the read-ahead brought in (one
  // completion for all, not one per 16 KiB record).
  for (auto buffers : {TlsSocket::Buffers::release_when_empty, TlsSocket::Buffers::keep}) {
    Connected c(buffers);
    std::vector<char> data(60000, 'r');
    error_code wec, rec;
    std::size_t wn = 0, rn = 0;
    run(c.io, write_some_once(&*c.client, &data, &wec, &wn));
    CHECK_FALSE(wec);
    CHECK(wn == data.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // all of it in the kernel
    std::vector<char> in(64 * 1024);
    c.io.restart();
    run(c.io, read_some_once(&*c.server, &in, &rec, &rn));
    CHECK_FALSE(rec);
    CHECK(rn > 16 * 1024);
    CHECK(std::string(in.data(), rn) == std::string(rn, 'r'));
    const bool releases = (SSL_get_mode(c.server->native_handle()) & SSL_MODE_RELEASE_BUFFERS) != 0;
    CHECK(releases == (buffers == TlsSocket::Buffers::release_when_empty));
  }
}

namespace {

asio::awaitable<void> wait_readable_once(TlsSocket* s, error_code* ec, bool* done) {
  std::tie(*ec) = co_await s->async_wait_readable(tuple_awaitable);
  *done = true;
}

}  // namespace

TEST_CASE("TlsSocket: async_wait_readable waits for bytes, sees buffered ones, can be cancelled",
          "[tls_socket]") {
  Connected c;
  error_code ec;
  bool done = false;
  // Nothing sent: the wait is still pending when the context runs out of work to do.
  asio::co_spawn(c.io, wait_readable_once(&*c.server, &ec, &done), asio::detached);
  c.io.run_for(std::chrono::milliseconds(100));
  CHECK_FALSE(done);
  // The peer writes: the wait completes, and the bytes are still there to read.
  std::vector<char> data(3000, 'w');
  error_code wec;
  std::size_t wn = 0;
  asio::co_spawn(c.io, write_some_once(&*c.client, &data, &wec, &wn), asio::detached);
  for (int i = 0; i < 100 && !done; ++i) c.io.run_for(std::chrono::milliseconds(10));
  REQUIRE(done);
  CHECK_FALSE(ec);
  CHECK_FALSE(wec);
  // Read one byte: the rest of the record stays buffered in OpenSSL, so the
  // next wait completes without the socket becoming readable again.
  std::vector<char> one(1), rest(4000);
  error_code rec;
  std::size_t rn = 0;
  c.io.restart();
  run(c.io, read_some_once(&*c.server, &one, &rec, &rn));
  REQUIRE(rn == 1);
  done = false;
  c.io.restart();
  run(c.io, wait_readable_once(&*c.server, &ec, &done));
  CHECK(done);
  CHECK_FALSE(ec);
  c.io.restart();
  run(c.io, read_some_once(&*c.server, &rest, &rec, &rn));
  CHECK(rn == data.size() - 1);
  // A pending wait ends with operation_aborted on cancel().
  done = false;
  c.io.restart();
  asio::co_spawn(c.io, wait_readable_once(&*c.server, &ec, &done), asio::detached);
  c.io.run_for(std::chrono::milliseconds(50));
  CHECK_FALSE(done);
  c.server->cancel();
  for (int i = 0; i < 100 && !done; ++i) c.io.run_for(std::chrono::milliseconds(10));
  CHECK(done);
  CHECK(ec == asio::error::operation_aborted);
}
