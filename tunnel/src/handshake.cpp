#include "hearth/tunnel/handshake.hpp"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <stdexcept>

#include "hearth/common/crypto.hpp"

namespace hearth::tunnel {
namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// We authenticate by pin after the handshake, so OpenSSL's chain check (which
// fails for any self-signed certificate) must not abort the handshake. A peer
// that presents no certificate still fails: SSL_VERIFY_FAIL_IF_NO_PEER_CERT.
int accept_any_certificate(int /*preverify_ok*/, X509_STORE_CTX* /*ctx*/) { return 1; }

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static const unsigned char ours[] = {8, 'h', 'e', 'a', 'r', 't', 'h', '/', '1'};
  unsigned char* sel = nullptr;
  if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::shared_ptr<asio::ssl::context> make_tunnel_tls_context(bool server,
                                                            const std::string& key_pem) {
  auto ctx = std::make_shared<asio::ssl::context>(server ? asio::ssl::context::tls_server
                                                         : asio::ssl::context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(native, TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(native, 0);
  auto cert =
      crypto::self_signed_certificate_pem(key_pem, server ? "hearth-edge" : "hearth-origin");
  if (!cert) throw std::runtime_error("tunnel key is not a usable private key");
  ctx->use_certificate(asio::buffer(*cert), asio::ssl::context::pem);
  ctx->use_private_key(asio::buffer(key_pem), asio::ssl::context::pem);
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     accept_any_certificate);
  if (server) {
    SSL_CTX_set_alpn_select_cb(native, select_alpn, nullptr);
  } else {
    static const unsigned char alpn[] = {8, 'h', 'e', 'a', 'r', 't', 'h', '/', '1'};
    SSL_CTX_set_alpn_protos(native, alpn, sizeof alpn);
  }
  return ctx;
}

std::optional<std::string> peer_pin(TlsStream& tls) {
  X509* cert = SSL_get0_peer_certificate(tls.native_handle());
  if (!cert) return std::nullopt;
  return crypto::pin_of_certificate(cert);
}

asio::awaitable<error_code> read_one_frame(TlsStream& tls, beast::flat_buffer& buf, RawFrame& out) {
  for (;;) {
    auto data = buf.data();
    std::span<const std::uint8_t> bytes(static_cast<const std::uint8_t*>(data.data()), data.size());
    HeaderDecode hd = decode_header(bytes);
    if (hd.status == DecodeStatus::error) co_return Errc::protocol_error;
    if (hd.status == DecodeStatus::ok && bytes.size() >= kFrameHeaderSize + hd.header.length) {
      out.header = hd.header;
      auto p = bytes.subspan(kFrameHeaderSize, hd.header.length);
      out.payload.assign(p.begin(), p.end());
      buf.consume(kFrameHeaderSize + hd.header.length);
      co_return error_code{};
    }
    auto [ec, n] = co_await tls.async_read_some(buf.prepare(16 * 1024), tuple_awaitable);
    if (ec) co_return ec;
    buf.commit(n);
  }
}

asio::awaitable<error_code> write_one_frame(TlsStream& tls, FrameType type,
                                            std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> out;
  append_frame(out, type, 0, payload);
  auto [ec, n] = co_await asio::async_write(tls, asio::buffer(out), tuple_awaitable);
  (void)n;
  co_return ec;
}

}  // namespace hearth::tunnel
