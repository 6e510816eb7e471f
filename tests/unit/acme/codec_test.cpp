#include "hearth/acme/codec.hpp"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "hearth/acme/certs.hpp"
#include "hearth/acme/jws.hpp"
#include "hearth/acme/messages.hpp"

using namespace hearth::acme;
using namespace std::chrono_literals;
namespace json = boost::json;

TEST_CASE("base64url round trip and RFC 4648 vectors", "[acme]") {
  CHECK(base64url_encode("") == "");
  CHECK(base64url_encode("f") == "Zg");
  CHECK(base64url_encode("fo") == "Zm8");
  CHECK(base64url_encode("foo") == "Zm9v");
  CHECK(base64url_encode("foob") == "Zm9vYg");
  CHECK(base64url_encode("\xfb\xff") == "-_8");
  CHECK(base64url_decode("-_8") == std::string("\xfb\xff"));
  CHECK(base64url_decode("Zm9vYg==") == std::string("foob"));
  CHECK_FALSE(base64url_decode("Zm9v+g"));
  CHECK_FALSE(base64url_decode("Z"));
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  CHECK(base64url_decode(base64url_encode(all)) == all);
}

TEST_CASE("RFC 7638 thumbprint of the RFC's RSA example key", "[acme]") {
  // RFC 7638 section 3.1: the JWK below has thumbprint NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
  const std::string n =
      "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
      "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
      "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
      "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
  const std::string jwk = "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"" + n + "\"}";
  CHECK(base64url_encode(sha256(jwk)) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

namespace {

// Verify a flattened JWS with the key's public half, as a CA would.
bool verify_jws(const Key& key, const json::object& jws) {
  std::string input = std::string(jws.at("protected").as_string()) + "." +
                      std::string(jws.at("payload").as_string());
  auto sig = base64url_decode(jws.at("signature").as_string());
  if (!sig) return false;
  std::string der = *sig;
  if (key.alg() == "ES256") {
    if (sig->size() != 64) return false;
    ECDSA_SIG* es = ECDSA_SIG_new();
    ECDSA_SIG_set0(
        es, BN_bin2bn(reinterpret_cast<const unsigned char*>(sig->data()), 32, nullptr),
        BN_bin2bn(reinterpret_cast<const unsigned char*>(sig->data()) + 32, 32, nullptr));
    unsigned char* out = nullptr;
    int n = i2d_ECDSA_SIG(es, &out);
    der.assign(reinterpret_cast<char*>(out), n);
    OPENSSL_free(out);
    ECDSA_SIG_free(es);
  }
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key.native());
  int ok = EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                            reinterpret_cast<const unsigned char*>(input.data()), input.size());
  EVP_MD_CTX_free(md);
  return ok == 1;
}

json::object decode_part(const json::object& jws, const char* part) {
  return json::parse(*base64url_decode(jws.at(part).as_string())).as_object();
}

}  // namespace

TEST_CASE("JWS ES256 with a jwk header verifies; raw r||s", "[acme]") {
  Key key = Key::generate(KeyType::ecdsa_p256);
  CHECK(key.alg() == "ES256");
  auto jwk = json::parse(key.jwk()).as_object();
  CHECK(jwk.at("kty") == "EC");
  CHECK(jwk.at("crv") == "P-256");
  CHECK(base64url_decode(jwk.at("x").as_string())->size() == 32);
  CHECK(key.thumbprint().size() == 43);
  auto jws = json::parse(jws_sign(key, "https://ca/new-acct", "nonce1", "", std::string("{}")))
                 .as_object();
  auto hdr = decode_part(jws, "protected");
  CHECK(hdr.at("alg") == "ES256");
  CHECK(hdr.at("nonce") == "nonce1");
  CHECK(hdr.at("url") == "https://ca/new-acct");
  CHECK(hdr.contains("jwk"));
  CHECK_FALSE(hdr.contains("kid"));
  CHECK(verify_jws(key, jws));
  // PEM round trip keeps the same thumbprint.
  auto again = Key::from_pem(key.to_pem());
  REQUIRE(again);
  CHECK(again->thumbprint() == key.thumbprint());
}

TEST_CASE("JWS RS256 with kid, and POST-as-GET has an empty payload", "[acme]") {
  Key key = Key::generate(KeyType::rsa_2048);
  CHECK(key.alg() == "RS256");
  auto jws =
      json::parse(jws_sign(key, "https://ca/order/1", "n2", "https://ca/acct/7", std::nullopt))
          .as_object();
  CHECK(jws.at("payload") == "");
  auto hdr = decode_part(jws, "protected");
  CHECK(hdr.at("kid") == "https://ca/acct/7");
  CHECK_FALSE(hdr.contains("jwk"));
  CHECK(verify_jws(key, jws));
}

TEST_CASE("Key::from_pem refuses garbage and curves we cannot sign with", "[acme]") {
  CHECK_FALSE(Key::from_pem("not a key"));
  EVP_PKEY* p384 = EVP_EC_gen("P-384");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, p384, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  CHECK_FALSE(Key::from_pem(std::string(data, n)));
  BIO_free(bio);
  EVP_PKEY_free(p384);
}

TEST_CASE("EAB is HS256 over the account JWK", "[acme]") {
  Key key = Key::generate(KeyType::ecdsa_p256);
  auto eab = json::parse(eab_jws(key, "kid-1", "secret", "https://ca/new-acct")).as_object();
  auto hdr = decode_part(eab, "protected");
  CHECK(hdr.at("alg") == "HS256");
  CHECK(hdr.at("kid") == "kid-1");
  CHECK_FALSE(hdr.contains("nonce"));
  CHECK(*base64url_decode(eab.at("payload").as_string()) == key.jwk());
  std::string input = std::string(eab.at("protected").as_string()) + "." +
                      std::string(eab.at("payload").as_string());
  CHECK(*base64url_decode(eab.at("signature").as_string()) == hmac_sha256("secret", input));
  // RFC 4231 test case 2.
  CHECK(base64url_encode(hmac_sha256("Jefe", "what do ya want for nothing?")) ==
        base64url_encode(std::string("\x5b\xdc\xc1\x46\xbf\x60\x75\x4e\x6a\x04\x24\x26\x08\x95\x75"
                                     "\xc7\x5a\x00\x3f\x08\x9d\x27\x39\x83\x9d\xec\x58\xb9\x64\xec"
                                     "\x38\x43",
                                     32)));
  auto payload =
      json::parse(new_account_payload({"mailto:a@b.c"}, false, eab_jws(key, "k", "s", "u")))
          .as_object();
  CHECK(payload.at("termsOfServiceAgreed") == true);
  CHECK(payload.at("externalAccountBinding").as_object().contains("signature"));
}

TEST_CASE("key authorization and dns-01 value", "[acme]") {
  Key key = Key::generate(KeyType::ecdsa_p256);
  std::string ka = key_authorization("tok", key);
  CHECK(ka == "tok." + key.thumbprint());
  // RFC 8555 section 8.4 example shape: 43 base64url characters.
  CHECK(dns01_txt_value(ka).size() == 43);
  CHECK(dns01_txt_value("a") == base64url_encode(sha256("a")));
}

TEST_CASE("problem documents with subproblems", "[acme]") {
  auto p = parse_problem(R"({"type":"urn:ietf:params:acme:error:rejectedIdentifier",
    "detail":"Some identifiers were rejected","status":400,
    "subproblems":[{"type":"urn:ietf:params:acme:error:malformed","detail":"Invalid underscore",
      "identifier":{"type":"dns","value":"_example.org"}}]})");
  REQUIRE(p);
  CHECK(p->short_type() == "rejectedIdentifier");
  CHECK(p->status == 400);
  REQUIRE(p->subproblems.size() == 1);
  CHECK(p->subproblems[0].identifier == "_example.org");
  CHECK(p->to_string() ==
        "rejectedIdentifier: Some identifiers were rejected; _example.org: malformed: Invalid "
        "underscore");
  CHECK_FALSE(parse_problem("<html>"));
  CHECK_FALSE(parse_problem("[1]"));
  CHECK_FALSE(parse_problem("{}"));
  auto other = parse_problem(R"({"type":"about:blank","detail":"x"})");
  REQUIRE(other);
  CHECK(other->short_type() == "about:blank");
}

TEST_CASE("directory, order, authorization parse", "[acme]") {
  auto d = parse_directory(R"({"newNonce":"https://ca/nonce","newAccount":"https://ca/acct",
    "newOrder":"https://ca/order","renewalInfo":"https://ca/ari",
    "meta":{"termsOfService":"https://ca/tos","externalAccountRequired":true}})");
  REQUIRE(d);
  CHECK(d->renewal_info == "https://ca/ari");
  CHECK(d->external_account_required);
  CHECK(d->terms_of_service == "https://ca/tos");
  CHECK_FALSE(parse_directory(R"({"newNonce":"x"})"));
  CHECK_FALSE(parse_directory("nope"));

  auto o = parse_order(R"({"status":"invalid","identifiers":[{"type":"dns","value":"a.test"}],
    "authorizations":["https://ca/authz/1"],"finalize":"https://ca/fin/1",
    "error":{"type":"urn:ietf:params:acme:error:connection","detail":"refused"}})");
  REQUIRE(o);
  CHECK(o->status == "invalid");
  CHECK(o->identifiers.at(0).value == "a.test");
  CHECK(o->authorizations.at(0) == "https://ca/authz/1");
  REQUIRE(o->error);
  CHECK(o->error->short_type() == "connection");
  CHECK_FALSE(parse_order(R"({"authorizations":5})"));

  auto a = parse_authorization(R"({"status":"pending","identifier":{"type":"dns","value":"w.test"},
    "wildcard":true,"challenges":[{"type":"dns-01","url":"https://ca/ch/1","status":"pending",
    "token":"t1"},{"type":"http-01","url":"https://ca/ch/2","status":"invalid","token":"t2",
    "error":{"type":"urn:ietf:params:acme:error:unauthorized","detail":"404"}}]})");
  REQUIRE(a);
  CHECK(a->wildcard);
  CHECK(a->identifier.value == "w.test");
  REQUIRE(a->challenges.size() == 2);
  CHECK(a->challenges[0].token == "t1");
  REQUIRE(a->challenges[1].error);
  CHECK(a->challenges[1].error->detail == "404");

  auto payload = json::parse(new_order_payload({"a.test", "*.b.test"}, "aki.serial")).as_object();
  CHECK(payload.at("identifiers").as_array().size() == 2);
  CHECK(payload.at("replaces") == "aki.serial");
  CHECK(json::parse(new_account_payload({}, true, "")).as_object().at("onlyReturnExisting") ==
        true);
}

TEST_CASE("Retry-After and RFC 3339", "[acme]") {
  auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  CHECK(parse_retry_after("120", now) == 120s);
  CHECK(parse_retry_after(" 5 ", now) == 5s);
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now) == 60s);
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:40:37 GMT", now) == 0s);
  CHECK_FALSE(parse_retry_after("soon", now));
  CHECK_FALSE(parse_retry_after("-1", now));
  CHECK_FALSE(parse_retry_after("Sun, 06 Xxx 1994 08:50:37 GMT", now));
  CHECK(parse_rfc3339("1994-11-06T08:49:37Z") == now);
  CHECK(parse_rfc3339("1994-11-06T09:49:37.123+01:00") == now);
  CHECK_FALSE(parse_rfc3339("1994-11-06 08:49:37"));
  CHECK_FALSE(parse_rfc3339("1994-13-06T08:49:37Z"));
  CHECK_FALSE(parse_rfc3339("4050-01-02T04:00:00Z"));  // found by acme_fuzz: overflow
  CHECK_FALSE(parse_retry_after("Sun, 06 Nov 9994 08:49:37 GMT", now));
  CHECK(format_rfc3339(now) == "1994-11-06T08:49:37Z");
  auto w = parse_renewal_info(R"({"suggestedWindow":{"start":"2025-01-02T04:00:00Z",
    "end":"2025-01-03T04:00:00Z"},"explanationURL":"https://ca/why"})");
  REQUIRE(w);
  CHECK(w->end - w->start == 24h);
  CHECK(w->explanation_url == "https://ca/why");
  CHECK_FALSE(parse_renewal_info(R"({"suggestedWindow":{"start":"2025-01-03T04:00:00Z",
    "end":"2025-01-02T04:00:00Z"}})"));
}

TEST_CASE("CSR carries the SANs and verifies", "[acme]") {
  Key key = Key::generate(KeyType::ecdsa_p256);
  std::string der = make_csr({"a.test", "b.test"}, key);
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size()));
  REQUIRE(req);
  CHECK(X509_REQ_verify(req, key.native()) == 1);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  REQUIRE(exts);
  int idx = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1);
  REQUIRE(idx >= 0);
  auto* names = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, idx)));
  REQUIRE(sk_GENERAL_NAME_num(names) == 2);
  GENERAL_NAMES_free(names);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
  CHECK_THROWS(make_csr({"a.test,DNS:evil.test"}, key));
}

TEST_CASE("tls-alpn-01 certificate per RFC 8737", "[acme]") {
  auto pair = make_tls_alpn_certificate("alpn.test", "tok.thumb");
  BIO* bio = BIO_new_mem_buf(pair.cert_pem.data(), static_cast<int>(pair.cert_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  REQUIRE(cert);
  CHECK(X509_check_host(cert, "alpn.test", 0, 0, nullptr) == 1);
  ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
  int idx = X509_get_ext_by_OBJ(cert, oid, -1);
  ASN1_OBJECT_free(oid);
  REQUIRE(idx >= 0);
  X509_EXTENSION* ext = X509_get_ext(cert, idx);
  CHECK(X509_EXTENSION_get_critical(ext) == 1);
  const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
  const unsigned char* p = ASN1_STRING_get0_data(data);
  ASN1_OCTET_STRING* inner = d2i_ASN1_OCTET_STRING(nullptr, &p, ASN1_STRING_length(data));
  REQUIRE(inner);
  CHECK(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(inner)),
                    ASN1_STRING_length(inner)) == sha256("tok.thumb"));
  ASN1_OCTET_STRING_free(inner);
  X509_free(cert);
  std::string error;
  auto info = inspect_chain(pair.cert_pem, pair.key_pem, &error);
  REQUIRE(info);
  CHECK(info->names == std::vector<std::string>{"alpn.test"});
  CHECK(info->not_after > info->not_before);
}

TEST_CASE("inspect_chain rejects garbage and a mismatched key", "[acme]") {
  std::string error;
  CHECK_FALSE(inspect_chain("garbage", "", &error));
  CHECK(error == "no PEM certificate");
  auto a = make_self_signed("a");
  auto b = make_self_signed("b");
  CHECK_FALSE(inspect_chain(a.cert_pem, b.key_pem, &error));
  CHECK(error.find("does not match") != std::string::npos);
  auto info = inspect_chain(a.cert_pem, a.key_pem, &error);
  REQUIRE(info);
  CHECK(info->issuer == "a");
  CHECK_FALSE(info->serial_hex.empty());
}

TEST_CASE("ARI certificate identifier (RFC 9773 section 4.1 example)", "[acme]") {
  // keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4,
  // serial 00:87:65:43:21 -> "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE".
  std::string aki =
      "\x69\x88\x5B\x6B\x87\x46\x40\x41\xE1\xB3\x7B\x84\x7B\xA0\xAE\x2C\xDE\x01\xC8\xD4";
  CHECK(ari_cert_id(aki, std::string("\x00\x87\x65\x43\x21", 5)) ==
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
}

TEST_CASE("ClientHello SNI and ALPN extension bodies", "[acme]") {
  std::string sni = std::string("\x00\x0c\x00\x00\x09", 5) + "A.test.io";
  sni[1] = static_cast<char>(sni.size() - 2);
  CHECK(parse_sni_extension(sni) == std::string("a.test.io"));
  CHECK_FALSE(parse_sni_extension(std::string("\x00\x05\x00\x00\x09", 5)));
  CHECK_FALSE(parse_sni_extension(""));
  std::string alpn = std::string("\x00\x0e\x0a", 3) + "acme-tls/1" + "\x02h2";
  alpn[1] = static_cast<char>(alpn.size() - 2);
  CHECK(parse_alpn_extension(alpn) == std::vector<std::string>{"acme-tls/1", "h2"});
  CHECK(parse_alpn_extension(std::string("\x00\x02\x05h", 4)).empty());
}
