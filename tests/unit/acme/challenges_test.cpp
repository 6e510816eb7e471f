// The tls-alpn-01 responder in a real (in-memory) TLS handshake: only a ClientHello for
// a pending name that offers acme-tls/1 gets the challenge certificate.

#include "hearth/acme/challenges.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <catch2/catch.hpp>

#include "hearth/acme/certs.hpp"

using namespace hearth::acme;

namespace {

SSL_CTX* server_ctx(const PemPair& pem, ChallengeBoard& board) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  BIO* b = BIO_new_mem_buf(pem.cert_pem.data(), static_cast<int>(pem.cert_pem.size()));
  X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  b = BIO_new_mem_buf(pem.key_pem.data(), static_cast<int>(pem.key_pem.size()));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  SSL_CTX_use_certificate(ctx, x);
  SSL_CTX_use_PrivateKey(ctx, k);
  X509_free(x);
  EVP_PKEY_free(k);
  SSL_CTX_set_client_hello_cb(ctx, ChallengeBoard::client_hello_cb, &board);
  return ctx;
}

struct Result {
  bool acme_ext = false;
  std::string alpn;
};

// One handshake over memory BIOs; what certificate did the client get?
Result handshake(SSL_CTX* sctx, const char* sni, bool offer_acme) {
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  SSL* c = SSL_new(cctx);
  SSL* s = SSL_new(sctx);
  BIO *cb = nullptr, *sb = nullptr;
  BIO_new_bio_pair(&cb, 0, &sb, 0);
  SSL_set_bio(c, cb, cb);
  SSL_set_bio(s, sb, sb);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  SSL_set_tlsext_host_name(c, sni);
  static const unsigned char acme[] = {10, 'a', 'c', 'm', 'e', '-', 't', 'l', 's', '/', '1'};
  static const unsigned char h11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  if (offer_acme) {
    SSL_set_alpn_protos(c, acme, sizeof acme);
  } else {
    SSL_set_alpn_protos(c, h11, sizeof h11);
  }
  for (int i = 0; i < 20; ++i) {
    int rc = SSL_do_handshake(c);
    SSL_do_handshake(s);
    if (rc == 1) break;
  }
  Result r;
  X509* peer = SSL_get1_peer_certificate(c);
  REQUIRE(peer);
  ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
  r.acme_ext = X509_get_ext_by_OBJ(peer, oid, -1) >= 0;
  ASN1_OBJECT_free(oid);
  X509_free(peer);
  const unsigned char* sel = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(c, &sel, &len);
  r.alpn.assign(reinterpret_cast<const char*>(sel), len);
  SSL_free(c);
  SSL_free(s);
  SSL_CTX_free(cctx);
  return r;
}

}  // namespace

TEST_CASE("tls-alpn-01 certificate only for acme-tls/1 and a pending name", "[acme]") {
  ChallengeBoard board;
  auto normal = make_self_signed("normal");
  SSL_CTX* ctx = server_ctx(normal, board);
  // Nothing pending: even acme-tls/1 gets the normal certificate.
  CHECK_FALSE(handshake(ctx, "alpn.test", true).acme_ext);
  board.add_tls_alpn01("alpn.test", make_tls_alpn_certificate("alpn.test", "tok.thumb"));
  auto got = handshake(ctx, "alpn.test", true);
  CHECK(got.acme_ext);
  CHECK(got.alpn == "acme-tls/1");
  CHECK_FALSE(handshake(ctx, "alpn.test", false).acme_ext);  // a normal client
  CHECK_FALSE(handshake(ctx, "other.test", true).acme_ext);  // another name
  board.remove_tls_alpn01("alpn.test");
  CHECK_FALSE(handshake(ctx, "alpn.test", true).acme_ext);
  SSL_CTX_free(ctx);
}

TEST_CASE("http-01 board", "[acme]") {
  ChallengeBoard board;
  CHECK_FALSE(board.http01("t"));
  board.add_http01("t", "t.thumb");
  CHECK(board.http01("t") == std::string("t.thumb"));
  CHECK_FALSE(board.http01("u"));
  board.remove_http01("t");
  CHECK_FALSE(board.http01("t"));
}
