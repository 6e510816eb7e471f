#include "hearth/acme/jws.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <stdexcept>
#include <vector>

#include "hearth/acme/codec.hpp"

namespace hearth::acme {
namespace {

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* p) { return std::shared_ptr<EVP_PKEY>(p, EVP_PKEY_free); }

std::string bn_param(const EVP_PKEY* p, const char* name, std::size_t pad) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(p, name, &bn) != 1) throw std::runtime_error("key parameter missing");
  std::size_t n = std::max<std::size_t>(pad, static_cast<std::size_t>(BN_num_bytes(bn)));
  std::string out(n, '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n));
  BN_free(bn);
  return out;
}

bool is_ec(const EVP_PKEY* p) { return EVP_PKEY_get_base_id(p) == EVP_PKEY_EC; }

// JSON string literal for values we produce ourselves (URLs, nonces, base64url):
// escape what JSON requires anyway, so a hostile URL cannot break the structure.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\u00";
      out += hex[(c >> 4) & 15];
      out += hex[c & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string flattened(std::string_view protected_json, std::string_view payload_b64,
                      std::string_view signature) {
  return "{\"protected\":" + quote(base64url_encode(protected_json)) +
         ",\"payload\":" + quote(payload_b64) +
         ",\"signature\":" + quote(base64url_encode(signature)) + "}";
}

}  // namespace

Key Key::generate(KeyType type) {
  EVP_PKEY* p =
      type == KeyType::ecdsa_p256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(static_cast<unsigned>(2048));
  if (p == nullptr) throw std::runtime_error("cannot generate a key");
  return Key(own(p));
}

std::optional<Key> Key::from_pem(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return std::nullopt;
  EVP_PKEY* p = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, const_cast<char*>(""));
  BIO_free(bio);
  if (p == nullptr) return std::nullopt;
  auto key = own(p);
  if (is_ec(p)) {
    char group[64] = {};
    std::size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(p, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) !=
            1 ||
        std::string_view(group) != "prime256v1") {
      return std::nullopt;  // only P-256 has an ACME algorithm we sign with (ES256)
    }
  } else if (EVP_PKEY_get_base_id(p) != EVP_PKEY_RSA || EVP_PKEY_get_bits(p) < 2048) {
    return std::nullopt;
  }
  return Key(key);
}

std::string Key::to_pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

std::string Key::alg() const { return is_ec(pkey_.get()) ? "ES256" : "RS256"; }

std::string Key::jwk() const {
  const EVP_PKEY* p = pkey_.get();
  if (is_ec(p)) {
    return "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":" +
           quote(base64url_encode(bn_param(p, OSSL_PKEY_PARAM_EC_PUB_X, 32))) +
           ",\"y\":" + quote(base64url_encode(bn_param(p, OSSL_PKEY_PARAM_EC_PUB_Y, 32))) + "}";
  }
  return "{\"e\":" + quote(base64url_encode(bn_param(p, OSSL_PKEY_PARAM_RSA_E, 0))) +
         ",\"kty\":\"RSA\",\"n\":" +
         quote(base64url_encode(bn_param(p, OSSL_PKEY_PARAM_RSA_N, 0))) + "}";
}

std::string Key::thumbprint() const { return base64url_encode(sha256(jwk())); }

std::string Key::sign(std::string_view input) const {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  std::size_t len = 0;
  std::string sig;
  bool ok = md != nullptr &&
            EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, pkey_.get()) == 1 &&
            EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len,
                        reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(md);
  if (!ok) throw std::runtime_error("signing failed");
  if (!is_ec(pkey_.get())) return sig;
  // ECDSA: DER SEQUENCE { r, s } -> raw r||s, each 32 bytes (RFC 7518 section 3.4).
  const auto* der = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(sig.size()));
  if (es == nullptr) throw std::runtime_error("bad ECDSA signature");
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(es);
  return raw;
}

std::string jws_sign(const Key& key, std::string_view url, std::string_view nonce,
                     std::string_view kid, const std::optional<std::string>& payload) {
  std::string header = "{\"alg\":" + quote(key.alg());
  if (kid.empty()) {
    header += ",\"jwk\":" + key.jwk();
  } else {
    header += ",\"kid\":" + quote(kid);
  }
  header += ",\"nonce\":" + quote(nonce) + ",\"url\":" + quote(url) + "}";
  std::string payload_b64 = payload ? base64url_encode(*payload) : "";
  std::string input = base64url_encode(header) + "." + payload_b64;
  return flattened(header, payload_b64, key.sign(input));
}

std::string hmac_sha256(std::string_view key, std::string_view input) {
  unsigned char out[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, sizeof out,
                &len) == nullptr) {
    throw std::runtime_error("HMAC failed");
  }
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string eab_jws(const Key& account_key, std::string_view eab_kid, std::string_view hmac_key,
                    std::string_view new_account_url) {
  std::string header =
      "{\"alg\":\"HS256\",\"kid\":" + quote(eab_kid) + ",\"url\":" + quote(new_account_url) + "}";
  std::string payload_b64 = base64url_encode(account_key.jwk());
  std::string input = base64url_encode(header) + "." + payload_b64;
  return flattened(header, payload_b64, hmac_sha256(hmac_key, input));
}

std::string key_authorization(std::string_view token, const Key& account_key) {
  return std::string(token) + "." + account_key.thumbprint();
}

std::string dns01_txt_value(std::string_view key_authorization) {
  return base64url_encode(sha256(key_authorization));
}

}  // namespace hearth::acme
