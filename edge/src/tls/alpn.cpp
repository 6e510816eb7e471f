#include "tls/alpn.hpp"

#include <cstring>

namespace hearth::edge {
namespace {

// Wire format: length-prefixed names, our preference first.
struct Offer {
  const unsigned char* data;
  unsigned int size;
};
const unsigned char kH2AndHttp11[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
const Offer kOfferH2{kH2AndHttp11, sizeof kH2AndHttp11};
const Offer kOfferHttp11{kHttp11, sizeof kHttp11};

}  // namespace

void* alpn_offer(bool http2) { return const_cast<Offer*>(http2 ? &kOfferH2 : &kOfferHttp11); }

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  const auto* offer = static_cast<const Offer*>(arg ? arg : &kOfferHttp11);
  unsigned char* sel = nullptr;
  // SSL_select_next_proto walks its first list (ours) in order: server preference.
  if (SSL_select_next_proto(&sel, outlen, offer->data, offer->size, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no ALPN agreement: carry on, HTTP/1.1 is implied
  }
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

AppProtocol negotiated_protocol(SSL* ssl) {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(ssl, &p, &n);
  if (n == 2 && std::memcmp(p, "h2", 2) == 0) return AppProtocol::h2;
  return AppProtocol::http1;
}

}  // namespace hearth::edge
