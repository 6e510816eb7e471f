// The HTTPS listener's session: TLS handshake, then ALPN picks the front end
// (h1/ or h2/), then a bounded close.

#include <boost/asio/ip/tcp.hpp>

#include "hearth/common/log.hpp"
#include "hearth/edge/http_rules.hpp"
#include "support/asio.hpp"
#include "tls/alpn.hpp"
#include "tls/client_conn.hpp"

namespace hearth::edge {

using tcp = asio::ip::tcp;

asio::awaitable<void> https_session(std::shared_ptr<EdgeShared> shared, tcp::socket sock,
                                    ClientPeer peer) {
  if (peer.refuse_proxy_header &&
      !co_await no_proxy_header(*shared, sock, peer, shared->config()->handshake_timeout)) {
    co_return;
  }
  auto tls_ctx = shared->https();
  auto conn = std::make_shared<ClientConn>(shared, std::move(sock), std::move(tls_ctx));
  error_code ec;
  conn->client_ip = std::move(peer.ip);
  conn->client_port = peer.port;
  conn->peer_trusted = peer.trusted;
  conn->id = shared->next_id.fetch_add(1, std::memory_order_relaxed);
  conn->admission = std::move(peer.admission);

  conn->tls.socket().set_option(tcp::no_delay(true), ec);
  conn->tls.expires_after(shared->config()->handshake_timeout);
  auto [hec] = co_await conn->tls.async_handshake(asio::ssl::stream_base::server, tuple_awaitable);
  if (hec) {
    log::debug("client.handshake_failed",
               {{"conn", conn->id}, {"client", conn->client_ip}, {"error", hec.message()}});
    co_return;
  }

  if (negotiated_protocol(conn->tls.native_handle()) == AppProtocol::h2) {
    co_await run_h2(conn);
  } else {
    if (auto pipe = co_await run_h1(conn)) {
      // The pipe outlives this frame; it closes the connection when it ends.
      start_upgraded(std::move(conn), std::move(pipe));
      co_return;
    }
  }

  close_client(std::move(conn));
}

void close_client(std::shared_ptr<ClientConn> conn) {
  // Bounded close_notify: a client that never answers must not hold us.
  conn->tls.expires_after(std::chrono::seconds(3));
  auto& tls = conn->tls;
  tls.async_shutdown([conn = std::move(conn)](error_code) {
    error_code ignored;
    conn->tls.socket().close(ignored);
  });
}

}  // namespace hearth::edge
