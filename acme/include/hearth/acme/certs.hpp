#pragma once
// Certificates ACME needs: the CSR for finalize, the RFC 8737 tls-alpn-01 certificate,
// what we read back from an issued chain (names, issuer, validity, ARI identifier),
// and the two ClientHello extensions the tls-alpn-01 responder looks at.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/acme/jws.hpp"

namespace hearth::acme {

// DER PKCS#10 request: subject CN = names[0] (when it fits), SAN = every name.
std::string make_csr(const std::vector<std::string>& names, const Key& key);

struct PemPair {
  std::string cert_pem, key_pem;
};
// RFC 8737 section 3: self-signed, SAN = name, critical id-pe-acmeIdentifier
// (1.3.6.1.5.5.7.1.31) holding OCTET STRING(SHA-256(key authorization)).
PemPair make_tls_alpn_certificate(std::string_view name, std::string_view key_authorization);
// A throwaway self-signed certificate (the edge's fallback before any is issued).
PemPair make_self_signed(std::string_view common_name);

struct CertInfo {
  std::vector<std::string> names;  // SAN DNS names
  std::string issuer;              // issuer CN (or the whole DN when it has none)
  std::string serial_hex;          // lower-case hex
  std::chrono::system_clock::time_point not_before, not_after;
  std::string ari_id;  // base64url(AKI keyIdentifier) "." base64url(serial DER contents)
};
// The leaf of a PEM chain; nullopt (with `error` set) when it is not one, or when
// key_pem is given and does not match the leaf.
std::optional<CertInfo> inspect_chain(std::string_view chain_pem, std::string_view key_pem,
                                      std::string* error = nullptr);
// ARI identifier from raw AKI keyIdentifier bytes and DER INTEGER contents.
std::string ari_cert_id(std::string_view aki_key_id, std::string_view serial_der_contents);

// ClientHello extension bodies (RFC 6066 server_name, RFC 7301 ALPN).
std::optional<std::string> parse_sni_extension(std::string_view body);
std::vector<std::string> parse_alpn_extension(std::string_view body);

}  // namespace hearth::acme
