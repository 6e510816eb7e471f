#pragma once
// TLS identity and the HELLO/WELCOME exchange that precedes multiplexing.
//
// Both sides present a self-signed certificate made from their Ed25519 key
// and verify the peer by pin (SHA-256 of its public key), never by CA: the
// origin checks the edge against `edge_pin`; the edge checks the origin's pin
// against the keys `hearth-edge invite` authorized for the name in HELLO.
// TLS 1.3 only.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hearth/tunnel/frame.hpp"
#include "hearth/tunnel/mux.hpp"

namespace hearth::tunnel {

inline constexpr const char* kAlpn = "hearth/1";

// Throws std::runtime_error when the key is unusable (start-up only).
std::shared_ptr<asio::ssl::context> make_tunnel_tls_context(bool server,
                                                            const std::string& key_pem);

// The pin of the certificate the peer presented, after the TLS handshake.
std::optional<std::string> peer_pin(TlsStream& tls);

struct RawFrame {
  FrameHeader header;
  std::vector<std::uint8_t> payload;
};

// Read exactly one frame, buffering in `buf` (bytes past it stay there for
// the Connection). The caller arms the deadline on the tcp_stream.
asio::awaitable<error_code> read_one_frame(TlsStream& tls, beast::flat_buffer& buf, RawFrame& out);
asio::awaitable<error_code> write_one_frame(TlsStream& tls, FrameType type,
                                            std::span<const std::uint8_t> payload);

}  // namespace hearth::tunnel
