#include "hearth/acme/challenges.hpp"

#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "hearth/acme/certs.hpp"

namespace hearth::acme {
namespace {

constexpr std::string_view kAcmeAlpn = "acme-tls/1";

// Only acme-tls/1 is negotiated on a challenge connection (RFC 8737 section 3).
int select_acme_alpn(SSL*, const unsigned char** out, unsigned char* outlen,
                     const unsigned char* in, unsigned int inlen, void*) {
  static const unsigned char ours[] = {10, 'a', 'c', 'm', 'e', '-', 't', 'l', 's', '/', '1'};
  unsigned char* sel = nullptr;
  if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

// The challenge context keeps its certificate: OpenSSL would otherwise fall back to the
// original context's servername callback, which picks the name's normal certificate.
int keep_context(SSL*, int*, void*) { return SSL_TLSEXT_ERR_OK; }

}  // namespace

void ChallengeBoard::add_http01(const std::string& token, const std::string& key_authorization) {
  std::lock_guard lock(mu_);
  if (http01_.insert_or_assign(token, key_authorization).second) http_pending_.fetch_add(1);
}

void ChallengeBoard::remove_http01(const std::string& token) {
  std::lock_guard lock(mu_);
  if (http01_.erase(token) != 0) http_pending_.fetch_sub(1);
}

std::optional<std::string> ChallengeBoard::http01(std::string_view token) const {
  if (http_pending_.load() == 0) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = http01_.find(token);
  if (it == http01_.end()) return std::nullopt;
  return it->second;
}

void ChallengeBoard::add_tls_alpn01(const std::string& name, const PemPair& pem) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) throw std::runtime_error("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  BIO* cb = BIO_new_mem_buf(pem.cert_pem.data(), static_cast<int>(pem.cert_pem.size()));
  X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
  BIO_free(cb);
  BIO* kb = BIO_new_mem_buf(pem.key_pem.data(), static_cast<int>(pem.key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
  BIO_free(kb);
  bool ok = cert != nullptr && key != nullptr && SSL_CTX_use_certificate(ctx.get(), cert) == 1 &&
            SSL_CTX_use_PrivateKey(ctx.get(), key) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!ok) throw std::runtime_error("cannot load the tls-alpn-01 certificate");
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_acme_alpn, nullptr);
  SSL_CTX_set_tlsext_servername_callback(ctx.get(), keep_context);
  std::lock_guard lock(mu_);
  if (tls_alpn01_.insert_or_assign(name, std::move(ctx)).second) alpn_pending_.fetch_add(1);
}

void ChallengeBoard::remove_tls_alpn01(const std::string& name) {
  std::lock_guard lock(mu_);
  if (tls_alpn01_.erase(name) != 0) alpn_pending_.fetch_sub(1);
}

std::shared_ptr<SSL_CTX> ChallengeBoard::tls_alpn01(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = tls_alpn01_.find(name);
  return it == tls_alpn01_.end() ? nullptr : it->second;
}

int ChallengeBoard::client_hello_cb(SSL* ssl, int*, void* arg) {
  auto* board = static_cast<ChallengeBoard*>(arg);
  if (board == nullptr || board->alpn_pending_.load() == 0) return SSL_CLIENT_HELLO_SUCCESS;
  const unsigned char* p = nullptr;
  std::size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
                                &len) != 1) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  auto protos = parse_alpn_extension(std::string_view(reinterpret_cast<const char*>(p), len));
  if (std::find(protos.begin(), protos.end(), kAcmeAlpn) == protos.end()) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  auto name = parse_sni_extension(std::string_view(reinterpret_cast<const char*>(p), len));
  if (!name) return SSL_CLIENT_HELLO_SUCCESS;
  if (auto ctx = board->tls_alpn01(*name)) SSL_set_SSL_CTX(ssl, ctx.get());
  return SSL_CLIENT_HELLO_SUCCESS;
}

}  // namespace hearth::acme
