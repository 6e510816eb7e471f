#pragma once
// One accepted HTTPS client connection after its TLS handshake, handed to the
// front end ALPN picked (h1/ or h2/). Lives on one worker.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "exchange/exchange.hpp"
#include "hearth/common/tls_socket.hpp"
#include "shared.hpp"

namespace hearth::edge {

struct ClientConn {
  ClientConn(std::shared_ptr<EdgeShared> s, asio::ip::tcp::socket sock, std::shared_ptr<HttpsTls> t)
      : shared(std::move(s)),
        tls_ctx(std::move(t)),
        tls(std::move(sock), tls_ctx->default_context().native_handle()) {
    shared->metrics.client_connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~ClientConn() { shared->metrics.client_connections.fetch_sub(1, std::memory_order_relaxed); }
  ClientConn(const ClientConn&) = delete;
  ClientConn& operator=(const ClientConn&) = delete;

  std::shared_ptr<EdgeShared> shared;
  std::shared_ptr<HttpsTls> tls_ctx;  // keeps the SSL_CTXs alive across a reload
  // OpenSSL straight on the socket, buffers released when idle (see tls_socket.hpp):
  // an idle WebSocket keeps ~70 KB less than with asio::ssl::stream.
  TlsSocket tls;
  std::string client_ip;
  std::uint16_t client_port = 0;
  bool peer_trusted = false;  // client_ip is one of https_trust.trusted_proxies (issue 9)
  std::uint64_t id = 0;
  std::shared_ptr<void> admission;  // ClientPeer::admission, for as long as the connection lives
};

// The HTTP/1.1 front end (h1/h1_session.cpp) and the HTTP/2 one
// (h2/h2_session.cpp); each returns when the connection is over, without
// closing the socket (close_client does that, bounded).
// run_h1 returns the connection's upgraded pipe when a request ended in a
// 101 (nullptr otherwise); start_upgraded (h1/upgraded_pipe.cpp) runs it on
// its own, until both directions ended, then calls close_client itself: the
// HTTPS session's frame is gone by then.
asio::awaitable<std::unique_ptr<UpgradedPipe>> run_h1(std::shared_ptr<ClientConn> conn);
void start_upgraded(std::shared_ptr<ClientConn> conn, std::unique_ptr<UpgradedPipe> pipe);
// The end of every client connection: close_notify bounded to 3 s, then close
// (https_session.cpp). Holds the connection until then.
void close_client(std::shared_ptr<ClientConn> conn);
asio::awaitable<void> run_h2(std::shared_ptr<ClientConn> conn);

}  // namespace hearth::edge
