// Keys, pins, certificates and join tokens.

#include "hearth/common/crypto.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <catch2/catch.hpp>
#include <memory>
#include <random>
#include <set>
#include <string>

namespace crypto = hearth::crypto;

namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr parse_cert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509Ptr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return cert;
}

EVP_PKEY* parse_key(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return key;
}

// The SAN entries of a certificate as "DNS:name" / "IP:<n bytes>".
std::set<std::string> subject_alt_names(X509* cert) {
  std::set<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS) {
      const auto* s = name->d.dNSName;
      out.insert("DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                      static_cast<std::size_t>(ASN1_STRING_length(s))));
    } else if (name->type == GEN_IPADD) {
      out.insert("IP:" + std::to_string(ASN1_STRING_length(name->d.iPAddress)));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

constexpr std::string_view b64url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view b64std =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// An independent base64 encoder (no padding) to build hand-made tokens.
std::string b64(std::string_view bytes, std::string_view alphabet) {
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (const char c : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += alphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) {
    out += alphabet[(acc << (6 - bits)) & 63];
  }
  return out;
}

std::string token_of_payload(std::string_view payload) { return "hearth1-" + b64(payload, b64url); }

const std::string& sample_key() {
  static const std::string key = crypto::generate_private_key_pem();
  return key;
}

crypto::JoinToken sample_token() {
  return crypto::JoinToken{"vps.example.com:7443",
                           *crypto::pin_of_private_key_pem(sample_key()),
                           "nas",
                           crypto::generate_private_key_pem(),
                           {}};
}

}  // namespace

TEST_CASE("generate_private_key_pem: fresh Ed25519 PKCS#8 keys", "[crypto]") {
  const std::string a = crypto::generate_private_key_pem();
  const std::string b = crypto::generate_private_key_pem();
  CHECK(a != b);
  CHECK(a.rfind("-----BEGIN PRIVATE KEY-----\n", 0) == 0);
  EVP_PKEY* key = parse_key(a);
  REQUIRE(key != nullptr);
  CHECK(EVP_PKEY_get_id(key) == EVP_PKEY_ED25519);
  EVP_PKEY_free(key);
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("pins: stable, well-formed, distinct per key", "[crypto]") {
  const std::string key = crypto::generate_private_key_pem();
  const auto pin = crypto::pin_of_private_key_pem(key);
  REQUIRE(pin);
  CHECK(pin->size() == 50);
  CHECK(pin->rfind("sha256:", 0) == 0);
  CHECK(crypto::is_valid_pin(*pin));
  CHECK(crypto::pin_of_private_key_pem(key) == pin);  // same key, same pin
  CHECK(crypto::pin_of_private_key_pem(crypto::generate_private_key_pem()) != pin);
  // Surrounding text (as in a file with comments) does not change the pin.
  CHECK(crypto::pin_of_private_key_pem("# comment\n" + key + "\n") == pin);
}

TEST_CASE("pin of a known key", "[crypto]") {
  // RFC 8410 section 10.3 example private key.
  const std::string pem =
      "-----BEGIN PRIVATE KEY-----\n"
      "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n"
      "-----END PRIVATE KEY-----\n";
  // Computed independently:
  //   openssl pkey -in k.pem -pubout -outform DER | openssl dgst -sha256 -binary | base64
  CHECK(crypto::pin_of_private_key_pem(pem) ==
        "sha256:oekVYFTgT6yJmunydRMs3Ael28TqLCrTof/G4NJTaB8");
}

TEST_CASE("pin_of_private_key_pem rejects what is not a usable key", "[crypto]") {
  CHECK_FALSE(crypto::pin_of_private_key_pem(""));
  CHECK_FALSE(crypto::pin_of_private_key_pem("hello"));
  CHECK_FALSE(
      crypto::pin_of_private_key_pem("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"));
  std::string broken = sample_key();
  broken[40] = broken[40] == 'A' ? 'B' : 'A';
  CHECK_FALSE(crypto::pin_of_private_key_pem(broken));
  // A certificate is not a private key.
  const auto cert = crypto::self_signed_certificate_pem(sample_key(), "x");
  REQUIRE(cert);
  CHECK_FALSE(crypto::pin_of_private_key_pem(*cert));
  // Encrypted keys are refused without prompting for a passphrase.
  EVP_PKEY* key = parse_key(sample_key());
  BIO* bio = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_128_cbc(), nullptr, 0, nullptr,
                                        const_cast<char*>("secret")) == 1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  const std::string encrypted(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(key);
  CHECK(encrypted.find("ENCRYPTED") != std::string::npos);
  CHECK_FALSE(crypto::pin_of_private_key_pem(encrypted));
  // Failures leave nothing behind on the thread's OpenSSL error queue.
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("self_signed_certificate_pem: certificate pin equals key pin", "[crypto]") {
  const std::string key = crypto::generate_private_key_pem();
  const auto pem = crypto::self_signed_certificate_pem(key, "hearth-edge");
  REQUIRE(pem);
  X509Ptr cert = parse_cert(*pem);
  REQUIRE(cert);
  CHECK(crypto::pin_of_certificate(cert.get()) == crypto::pin_of_private_key_pem(key));
  CHECK(X509_verify(cert.get(), X509_get0_pubkey(cert.get())) == 1);  // self-signed
  char cn[80] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof cn);
  CHECK(std::string(cn) == "hearth-edge");
  // Valid now and for decades.
  CHECK(X509_cmp_current_time(X509_get0_notBefore(cert.get())) < 0);
  int days = 0, seconds = 0;
  REQUIRE(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get())) == 1);
  CHECK(days > 365 * 99);

  CHECK_FALSE(crypto::self_signed_certificate_pem("not a key", "x"));
  CHECK_FALSE(crypto::pin_of_certificate(nullptr));
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("self_signed_server_certificate: P-256 with DNS and IP SANs", "[crypto]") {
  const auto ck =
      crypto::self_signed_server_certificate({"localhost", "app.example.com", "127.0.0.1", "::1"});
  REQUIRE(ck);
  X509Ptr cert = parse_cert(ck->cert_pem);
  REQUIRE(cert);
  EVP_PKEY* key = parse_key(ck->key_pem);
  REQUIRE(key != nullptr);
  CHECK(EVP_PKEY_get_base_id(key) == EVP_PKEY_EC);
  CHECK(X509_check_private_key(cert.get(), key) == 1);
  EVP_PKEY_free(key);
  CHECK(subject_alt_names(cert.get()) ==
        std::set<std::string>{"DNS:localhost", "DNS:app.example.com", "IP:4", "IP:16"});
  CHECK(X509_check_host(cert.get(), "app.example.com", 0, 0, nullptr) == 1);
  CHECK(X509_check_host(cert.get(), "other.example.com", 0, 0, nullptr) != 1);
  CHECK(X509_check_ip_asc(cert.get(), "127.0.0.1", 0) == 1);
  CHECK(X509_check_ip_asc(cert.get(), "::1", 0) == 1);
  CHECK(crypto::pin_of_certificate(cert.get()) == crypto::pin_of_private_key_pem(ck->key_pem));

  CHECK_FALSE(crypto::self_signed_server_certificate({}));
  CHECK_FALSE(crypto::self_signed_server_certificate({""}));
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("pins_equal and is_valid_pin", "[crypto]") {
  const auto pin = *crypto::pin_of_private_key_pem(sample_key());
  CHECK(crypto::pins_equal(pin, pin));
  CHECK(crypto::pins_equal("", ""));
  std::string other = pin;
  other.back() = other.back() == 'A' ? 'E' : 'A';
  CHECK_FALSE(crypto::pins_equal(pin, other));
  CHECK_FALSE(crypto::pins_equal(pin, pin.substr(0, 49)));
  CHECK_FALSE(crypto::pins_equal(pin, pin + "A"));

  CHECK(crypto::is_valid_pin(pin));
  CHECK(crypto::is_valid_pin("sha256:" + std::string(43, 'A')));
  CHECK_FALSE(crypto::is_valid_pin(""));
  CHECK_FALSE(crypto::is_valid_pin("sha256:"));
  CHECK_FALSE(crypto::is_valid_pin(pin.substr(7)));              // no prefix
  CHECK_FALSE(crypto::is_valid_pin("SHA256:" + pin.substr(7)));  // prefix is case-sensitive
  CHECK_FALSE(crypto::is_valid_pin(pin + "="));                  // padded
  CHECK_FALSE(crypto::is_valid_pin(pin.substr(0, 49)));          // short
  CHECK_FALSE(crypto::is_valid_pin("sha256:" + std::string(42, 'A') + "B"));  // non-canonical
  CHECK_FALSE(crypto::is_valid_pin("sha256:" + std::string(42, 'A') + "-"));  // url alphabet
}

TEST_CASE("join token: round trip", "[crypto][token]") {
  const auto token = sample_token();
  const std::string text = crypto::encode_join_token(token);
  CHECK(text.rfind("hearth1-", 0) == 0);
  CHECK(text.find_first_of("+/=\n ") == std::string::npos);  // one URL-safe word
  const auto decoded = crypto::decode_join_token(text);
  REQUIRE(decoded);
  CHECK(decoded->edge == token.edge);
  CHECK(decoded->edge_pin == token.edge_pin);
  CHECK(decoded->origin_name == token.origin_name);
  CHECK(decoded->origin_key_pem == token.origin_key_pem);
  // Pasted with surrounding whitespace.
  CHECK(crypto::decode_join_token("  " + text + "\r\n"));
  // IPv6 edges survive too.
  auto v6 = token;
  v6.edge = "[2001:db8::1]:7443";
  CHECK(crypto::decode_join_token(crypto::encode_join_token(v6))->edge == v6.edge);
}

TEST_CASE("join token: encode refuses fields with line breaks", "[crypto][token]") {
  auto token = sample_token();
  token.origin_name = "nas\nkey=x";
  CHECK_THROWS_AS(crypto::encode_join_token(token), std::invalid_argument);
}

TEST_CASE("join token: decode rejects garbage", "[crypto][token]") {
  const auto token = sample_token();
  const std::string key_b64 = b64(token.origin_key_pem, b64std);
  const auto payload = [&](const std::string& edge, const std::string& pin, const std::string& name,
                           const std::string& key) {
    return "edge=" + edge + "\npin=" + pin + "\nname=" + name + "\nkey=" + key + "\n";
  };
  const std::string good = payload(token.edge, token.edge_pin, token.origin_name, key_b64);
  REQUIRE(crypto::decode_join_token(token_of_payload(good)));  // the hand-made token is fine

  for (const std::string& bad : {
           std::string(),
           std::string("hearth1-"),
           std::string("hearth1"),
           std::string("hearth2-") + b64(good, b64url),
           "HEARTH1-" + b64(good, b64url),
           token_of_payload(good) + "=",
           token_of_payload(good) + "==",
           "hearth1-" + b64(good, b64std) + "+/",
           token_of_payload(good).insert(20, " "),
           token_of_payload(good.substr(0, good.size() - 1)),  // no final newline
           token_of_payload(good + "\n"),                      // empty line
           token_of_payload(good + "extra=1\n"),               // unknown field
           token_of_payload(good + "name=nas\n"),              // field given twice
           token_of_payload("edge=" + token.edge + "\n"),      // fields missing
           token_of_payload("garbage without equals\n"),
           token_of_payload(payload("", token.edge_pin, "nas", key_b64)),
           token_of_payload(payload("vps.example.com", token.edge_pin, "nas", key_b64)),
           token_of_payload(payload("vps example:1", token.edge_pin, "nas", key_b64)),
           token_of_payload(payload(token.edge, "sha256:short", "nas", key_b64)),
           token_of_payload(payload(token.edge, token.edge_pin, "", key_b64)),
           token_of_payload(payload(token.edge, token.edge_pin, "../etc", key_b64)),
           token_of_payload(payload(token.edge, token.edge_pin, std::string(65, 'n'), key_b64)),
           token_of_payload(payload(token.edge, token.edge_pin, "nas", "")),
           token_of_payload(payload(token.edge, token.edge_pin, "nas", key_b64 + "=")),
           token_of_payload(payload(token.edge, token.edge_pin, "nas", b64("not a key", b64std))),
           "hearth1-" + std::string(20000, 'A'),  // too long
       }) {
    INFO("token: " << bad.substr(0, 120));
    CHECK_FALSE(crypto::decode_join_token(bad));
  }
}

TEST_CASE("join token: truncations and corruptions never crash", "[crypto][token]") {
  const std::string text = crypto::encode_join_token(sample_token());
  for (std::size_t n = 0; n < text.size(); ++n) {
    INFO("prefix length " << n);
    CHECK_FALSE(crypto::decode_join_token(text.substr(0, n)));
  }
  std::mt19937 rng(12345);  // deterministic
  std::size_t accepted = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    std::string corrupt = text;
    corrupt[i] = static_cast<char>(rng() & 0xff);
    if (const auto t = crypto::decode_join_token(corrupt)) {
      ++accepted;  // a change inside a field can still decode; then every field is still valid
      CHECK(crypto::is_valid_pin(t->edge_pin));
      CHECK(crypto::pin_of_private_key_pem(t->origin_key_pem));
    }
  }
  CHECK(accepted < text.size() / 2);
  for (int i = 0; i < 2000; ++i) {
    std::string noise(rng() % 600, '\0');
    for (char& c : noise) {
      c = static_cast<char>(rng() & 0xff);
    }
    if (i % 2 == 0) {
      noise.insert(0, "hearth1-");
    }
    CHECK_FALSE(crypto::decode_join_token(noise));
  }
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("random_hex", "[crypto]") {
  CHECK(crypto::random_hex(0).empty());
  const std::string a = crypto::random_hex(16);
  CHECK(a.size() == 32);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(crypto::random_hex(16) != a);
}
