#pragma once
// TLS policy for the HTTPS listener (issue 9): Mozilla's server-side TLS
// guidelines 5.7, "intermediate" (default) or "modern", on an SSL_CTX.

#include <openssl/ssl.h>

#include "hearth/config/config.hpp"

namespace hearth::edge {

// Protocol versions, AEAD-only cipher suites in server preference order
// (ChaCha20 first for clients that prefer it), X25519/P-256/P-384 groups,
// no renegotiation, no compression; session tickets off (stateful resumption
// from the context's cache, 1 day) unless cfg.session_tickets, when OpenSSL's
// ticket keys are those of the context, which the edge rebuilds at least every
// 24 h (and on SIGHUP). Throws std::runtime_error when OpenSSL refuses a
// setting (a build without the ciphers).
void apply_tls_policy(SSL_CTX* ctx, const config::EdgeConfig& cfg);

// ECDSA and RSA certificates for the same names share one context, so
// OpenSSL picks per client (by its signature algorithms). True when `leaf`
// names exactly the DNS names of `other` (subjectAltName set; CN when none)
// and its key type differs from every certificate already in ctx.
bool is_alternate_certificate(SSL_CTX* ctx, X509* leaf, X509* new_leaf);

}  // namespace hearth::edge
