#pragma once
// ALPN for the HTTPS listener: which protocols we offer, in our order of
// preference, and which one a handshake settled on. One small table so that
// another protocol (acme-tls/1) is a one-line change.

#include <openssl/ssl.h>

#include <string_view>

namespace hearth::edge {

enum class AppProtocol { http1, h2 };

// For SSL_CTX_set_alpn_select_cb: arg is alpn_offer(http2). Picks the first
// of OUR protocols the client offers (h2, then http/1.1); no agreement means
// HTTP/1.1, as before ALPN existed.
int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg);
void* alpn_offer(bool http2);

// What the finished handshake negotiated (HTTP/1.1 when nothing).
AppProtocol negotiated_protocol(SSL* ssl);

}  // namespace hearth::edge
