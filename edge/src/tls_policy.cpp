// Mozilla server-side TLS 5.7 on the edge's HTTPS contexts (see tls_policy.hpp).

#include "tls_policy.hpp"

#include <openssl/x509v3.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <string>

namespace hearth::edge {
namespace {

// Intermediate, TLS 1.2 part: ECDHE + AEAD only (no CBC, no RSA key exchange,
// no DHE: it would need a dhparam file and adds nothing for current clients).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* kGroups = "X25519:P-256:P-384";

std::set<std::string> dns_names(X509* cert) {
  std::set<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
      if (name->type == GEN_DNS) {
        const auto* s = name->d.dNSName;
        names.emplace(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      static_cast<std::size_t>(ASN1_STRING_length(s)));
      }
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
      names.emplace(cn);
    }
  }
  return names;
}

int key_type(X509* cert) {
  EVP_PKEY* key = X509_get0_pubkey(cert);
  return key ? EVP_PKEY_get_base_id(key) : EVP_PKEY_NONE;
}

}  // namespace

void apply_tls_policy(SSL_CTX* ctx, const config::EdgeConfig& cfg) {
  const bool modern = cfg.tls_policy == config::EdgeConfig::TlsPolicy::modern;
  if (SSL_CTX_set_min_proto_version(ctx, modern ? TLS1_3_VERSION : TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    throw std::runtime_error("TLS policy: cannot set protocol versions");
  }
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kTls13Suites) != 1) {
    throw std::runtime_error("TLS policy: cipher suites not available in this OpenSSL");
  }
  if (SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    throw std::runtime_error("TLS policy: groups X25519/P-256/P-384 not available");
  }
  // Server order, but a client that puts ChaCha20 first (no AES hardware) keeps it.
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                               SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (cfg.session_tickets) {
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
  } else {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_timeout(ctx, 24 * 3600);
  static const unsigned char kSessionContext[] = "hearth-edge";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
}

bool is_alternate_certificate(SSL_CTX* ctx, X509* leaf, X509* new_leaf) {
  if (leaf == nullptr || new_leaf == nullptr || dns_names(leaf) != dns_names(new_leaf)) {
    return false;
  }
  const int type = key_type(new_leaf);
  bool present = false;
  // Walk every certificate slot of the context.
  if (SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_FIRST) == 1) {
    do {
      if (key_type(SSL_CTX_get0_certificate(ctx)) == type) present = true;
    } while (SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_NEXT) == 1);
  }
  SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_FIRST);
  return !present;
}

}  // namespace hearth::edge
