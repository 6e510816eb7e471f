#include "hearth/acme/certs.hpp"

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <memory>
#include <stdexcept>

#include "hearth/acme/codec.hpp"

namespace hearth::acme {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

void add_ext(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("cannot build certificate extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

std::string san_value(const std::vector<std::string>& names) {
  std::string v;
  for (const auto& n : names) {
    // Names were validated as host names already; refuse anything that could
    // smuggle another entry into OpenSSL's comma-separated syntax.
    for (char c : n) {
      if (c == ',' || c == ':' || static_cast<unsigned char>(c) <= ' ') {
        throw std::runtime_error("invalid name for a certificate: " + n);
      }
    }
    v += (v.empty() ? "DNS:" : ",DNS:") + n;
  }
  return v;
}

PemPair self_signed(std::string_view name, const std::string* acme_digest) {
  Key key = Key::generate(KeyType::ecdsa_p256);
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600);
  X509_set_pubkey(cert.get(), key.native());
  X509_NAME* subject = X509_get_subject_name(cert.get());
  std::string cn(name.substr(0, 64));
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), subject);
  if (acme_digest != nullptr) {
    add_ext(cert.get(), NID_subject_alt_name, san_value({std::string(name)}));
    // id-pe-acmeIdentifier: extnValue = DER(OCTET STRING(digest)), marked critical.
    ASN1_OCTET_STRING* inner = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(inner, reinterpret_cast<const unsigned char*>(acme_digest->data()),
                          static_cast<int>(acme_digest->size()));
    unsigned char* der = nullptr;
    int der_len = i2d_ASN1_OCTET_STRING(inner, &der);
    ASN1_OCTET_STRING_free(inner);
    ASN1_OCTET_STRING* value = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(value, der, der_len);
    OPENSSL_free(der);
    ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, oid, 1, value);
    ASN1_OBJECT_free(oid);
    ASN1_OCTET_STRING_free(value);
    if (ext == nullptr) throw std::runtime_error("cannot build acmeIdentifier extension");
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key.native(), EVP_sha256()) == 0) {
    throw std::runtime_error("cannot sign certificate");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert.get());
  return PemPair{bio_string(bio.get()), key.to_pem()};
}

std::chrono::system_clock::time_point to_time(const ASN1_TIME* t) {
  std::tm tm{};
  ASN1_TIME_to_tm(t, &tm);
  // "Never expires" certificates say 9999: clamp to what system_clock holds.
  if (tm.tm_year > 300) tm.tm_year = 300;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

std::string make_csr(const std::vector<std::string>& names, const Key& key) {
  if (names.empty()) throw std::runtime_error("a CSR needs at least one name");
  const std::string sans = san_value(names);  // may throw: before anything is allocated
  X509_REQ* req = X509_REQ_new();
  X509_REQ_set_version(req, 0);
  if (names[0].size() <= 64) {
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(names[0].c_str()), -1, -1, 0);
  }
  X509_REQ_set_pubkey(req, key.native());
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, sans.c_str());
  std::string der;
  bool ok = san != nullptr;
  if (ok) {
    sk_X509_EXTENSION_push(exts, san);
    ok = X509_REQ_add_extensions(req, exts) == 1 &&
         X509_REQ_sign(req, key.native(), EVP_sha256()) > 0;
  }
  if (ok) {
    unsigned char* out = nullptr;
    int n = i2d_X509_REQ(req, &out);
    if (n > 0) der.assign(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
    OPENSSL_free(out);
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
  if (der.empty()) throw std::runtime_error("cannot build the CSR");
  return der;
}

PemPair make_tls_alpn_certificate(std::string_view name, std::string_view key_authorization) {
  std::string digest = sha256(key_authorization);
  return self_signed(name, &digest);
}

PemPair make_self_signed(std::string_view common_name) { return self_signed(common_name, nullptr); }

std::string ari_cert_id(std::string_view aki_key_id, std::string_view serial_der_contents) {
  return base64url_encode(aki_key_id) + "." + base64url_encode(serial_der_contents);
}

std::optional<CertInfo> inspect_chain(std::string_view chain_pem, std::string_view key_pem,
                                      std::string* error) {
  auto fail = [&](std::string why) -> std::optional<CertInfo> {
    if (error != nullptr) *error = std::move(why);
    return std::nullopt;
  };
  BioPtr bio(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  X509Ptr leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!leaf) return fail("no PEM certificate");
  if (!key_pem.empty()) {
    auto key = Key::from_pem(key_pem);
    if (!key) return fail("the private key is unreadable");
    if (X509_check_private_key(leaf.get(), key->native()) != 1) {
      return fail("the private key does not match the certificate");
    }
  }
  CertInfo info;
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(leaf.get(), NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type == GEN_DNS) {
      const ASN1_IA5STRING* s = gn->d.dNSName;
      info.names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                              static_cast<std::size_t>(ASN1_STRING_length(s)));
    }
  }
  GENERAL_NAMES_free(sans);
  X509_NAME* issuer = X509_get_issuer_name(leaf.get());
  char cn[256] = {};
  if (X509_NAME_get_text_by_NID(issuer, NID_commonName, cn, sizeof cn) > 0) {
    info.issuer = cn;
  } else {
    char* line = X509_NAME_oneline(issuer, nullptr, 0);
    info.issuer = line ? line : "";
    OPENSSL_free(line);
  }
  const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf.get());
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  char* hex = BN_bn2hex(bn);
  info.serial_hex = hex ? hex : "";
  for (auto& c : info.serial_hex)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  OPENSSL_free(hex);
  BN_free(bn);
  info.not_before = to_time(X509_get0_notBefore(leaf.get()));
  info.not_after = to_time(X509_get0_notAfter(leaf.get()));
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(leaf.get());
  unsigned char* der = nullptr;
  int n = i2d_ASN1_INTEGER(const_cast<ASN1_INTEGER*>(serial), &der);
  if (aki != nullptr && n > 2) {
    // Skip the tag and the (short or long form) length.
    std::size_t hdr = 2;
    if (der[1] & 0x80) hdr += der[1] & 0x7f;
    if (static_cast<std::size_t>(n) > hdr) {
      info.ari_id =
          ari_cert_id(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(aki)),
                                       static_cast<std::size_t>(ASN1_STRING_length(aki))),
                      std::string_view(reinterpret_cast<const char*>(der) + hdr, n - hdr));
    }
  }
  OPENSSL_free(der);
  return info;
}

std::optional<std::string> parse_sni_extension(std::string_view b) {
  // ServerNameList: uint16 length, then { uint8 type; uint16 len; name }.
  if (b.size() < 2) return std::nullopt;
  std::size_t list = static_cast<unsigned char>(b[0]) << 8 | static_cast<unsigned char>(b[1]);
  if (list + 2 != b.size()) return std::nullopt;
  std::size_t pos = 2;
  while (pos + 3 <= b.size()) {
    unsigned type = static_cast<unsigned char>(b[pos]);
    std::size_t len =
        static_cast<unsigned char>(b[pos + 1]) << 8 | static_cast<unsigned char>(b[pos + 2]);
    pos += 3;
    if (pos + len > b.size()) return std::nullopt;
    if (type == 0) {
      std::string name(b.substr(pos, len));
      if (name.empty() || name.size() > 253) return std::nullopt;
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return name;
    }
    pos += len;
  }
  return std::nullopt;
}

std::vector<std::string> parse_alpn_extension(std::string_view b) {
  std::vector<std::string> out;
  if (b.size() < 2) return out;
  std::size_t list = static_cast<unsigned char>(b[0]) << 8 | static_cast<unsigned char>(b[1]);
  if (list + 2 != b.size()) return out;
  std::size_t pos = 2;
  while (pos < b.size() && out.size() < 32) {
    std::size_t len = static_cast<unsigned char>(b[pos]);
    ++pos;
    if (len == 0 || pos + len > b.size()) return {};
    out.emplace_back(b.substr(pos, len));
    pos += len;
  }
  return out;
}

}  // namespace hearth::acme
