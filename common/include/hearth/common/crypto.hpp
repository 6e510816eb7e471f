#pragma once
// Keys and pins for the tunnel's mutual authentication. No CA: each side is
// identified by the SHA-256 of its public key (SubjectPublicKeyInfo DER),
// written "sha256:<base64, no padding>". Keys are Ed25519.

#include <openssl/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::crypto {

// A fresh Ed25519 private key, PKCS#8 PEM. Throws std::runtime_error if OpenSSL fails.
std::string generate_private_key_pem();

// Pin of the public half of a PEM private key; nullopt if the PEM is not a key.
std::optional<std::string> pin_of_private_key_pem(std::string_view pem);

// Pin of a certificate's public key (as presented in a TLS handshake).
std::optional<std::string> pin_of_certificate(X509* cert);

// A self-signed X.509 certificate (PEM) for a PEM private key, CN = common_name,
// valid from now-1d for 100 years. Used as the TLS identity on the tunnel; only
// its public key matters (peers check the pin, not the certificate).
std::optional<std::string> self_signed_certificate_pem(std::string_view private_key_pem,
                                                       std::string_view common_name);

// A self-signed RSA-2048 or P-256 certificate + key for HTTPS on the given DNS
// names (subjectAltName), for the demo and tests. Returns {cert_pem, key_pem}.
// The key is P-256; a name that parses as an IPv4/IPv6 literal becomes an IP SAN.
// nullopt when dns_names is empty or a name is empty.
struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;
};
std::optional<CertAndKey> self_signed_server_certificate(const std::vector<std::string>& dns_names);

// Constant-time comparison of two pins.
bool pins_equal(std::string_view a, std::string_view b);

// True for "sha256:" followed by the canonical unpadded base64 of 32 bytes (43 characters).
bool is_valid_pin(std::string_view pin);

// Join token: one line that carries what an origin needs to dial an edge.
struct JoinToken {
  std::string edge;      // "host:port" of the edge's tunnel listener
  std::string edge_pin;  // "sha256:..."
  std::string origin_name;
  std::string origin_key_pem;
  // Issue 13 (pairing): the hostnames the edge allows for this origin, one
  // optional `host=` line each; a token without them (older edge) still decodes.
  std::vector<std::string> hostnames;

  // WireGuard link (issue 10): optional lines `wg_*`, all five or none; present when the
  // edge has [wireguard]. Tokens without them decode as before.
  std::string wg_edge_public_key = {};  // base64, 44 characters
  std::string wg_endpoint = {};         // host:port the origin's WireGuard sends to
  std::string wg_edge_address = {};     // the edge's WireGuard IP (tunnel_over_wireguard dials it)
  std::string wg_address = {};          // the origin's address with prefix, "10.77.0.2/24"
  std::string wg_private_key = {};      // the origin's WireGuard private key, base64
  bool has_wireguard() const { return !wg_address.empty(); }
};
// encode throws std::invalid_argument when a field contains a line break (it
// would not survive decoding). decode trims surrounding whitespace and checks
// every field: name, pin, edge characters, and that the key parses; nullopt on
// anything else (it is fed untrusted text).
std::string encode_join_token(const JoinToken& token);  // "hearth1-<base64url>"
std::optional<JoinToken> decode_join_token(std::string_view text);

// Random bytes (RAND_bytes) as lowercase hex: 2*n characters. Throws std::runtime_error
// if the generator fails.
std::string random_hex(std::size_t n);

}  // namespace hearth::crypto
