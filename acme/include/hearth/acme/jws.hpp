#pragma once
// Account and certificate keys, JWK (RFC 7517/7518), JWK thumbprints (RFC 7638) and
// JWS in the flattened JSON serialization ACME uses (RFC 8555 section 6.2):
// ES256 with a P-256 key (the signature is raw r||s, 64 bytes), RS256 with RSA.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct evp_pkey_st;

namespace hearth::acme {

enum class KeyType { ecdsa_p256, rsa_2048 };

class Key {
 public:
  static Key generate(KeyType type);  // throws std::runtime_error when OpenSSL fails
  static std::optional<Key> from_pem(std::string_view pem);

  std::string to_pem() const;  // PKCS#8, unencrypted
  std::string alg() const;     // "ES256" or "RS256"
  // The public JWK with only the required members, in lexicographic order, no spaces:
  // the exact input of the RFC 7638 thumbprint.
  std::string jwk() const;
  std::string thumbprint() const;  // base64url(SHA-256(jwk()))
  // JWS signature over `signing_input` (ASCII protected "." payload), raw bytes.
  std::string sign(std::string_view signing_input) const;
  evp_pkey_st* native() const { return pkey_.get(); }

 private:
  explicit Key(std::shared_ptr<evp_pkey_st> p) : pkey_(std::move(p)) {}
  std::shared_ptr<evp_pkey_st> pkey_;
};

// A flattened JWS: {"protected":..., "payload":..., "signature":...}.
// kid empty: the header carries the JWK (newAccount, revocation by key).
// payload nullopt: POST-as-GET (empty payload string).
std::string jws_sign(const Key& key, std::string_view url, std::string_view nonce,
                     std::string_view kid, const std::optional<std::string>& payload);

// External account binding (RFC 8555 section 7.3.4): an HS256 JWS over the account JWK.
std::string eab_jws(const Key& account_key, std::string_view eab_kid, std::string_view hmac_key,
                    std::string_view new_account_url);

// HS256 over `input` with `key` (raw bytes).
std::string hmac_sha256(std::string_view key, std::string_view input);

// "token.thumbprint" (RFC 8555 section 8.1).
std::string key_authorization(std::string_view token, const Key& account_key);
// The dns-01 TXT value: base64url(SHA-256(key authorization)).
std::string dns01_txt_value(std::string_view key_authorization);

}  // namespace hearth::acme
