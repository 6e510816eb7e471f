#include "hearth/common/crypto.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <memory>
#include <stdexcept>

namespace hearth::crypto {
namespace {

// unique_ptr deleter calling an OpenSSL free function.
template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<&BIO_free_all>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<&EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<&X509_free>>;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<&X509_EXTENSION_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<&GENERAL_NAMES_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<&GENERAL_NAME_free>>;
using Asn1StringPtr = std::unique_ptr<ASN1_STRING, Deleter<&ASN1_STRING_free>>;

// Failed PEM/ASN.1 calls leave entries on the thread's OpenSSL error queue; a
// stale entry there can later be misread by SSL_get_error on the data path.
// Every public function below leaves the queue as it found it: empty.
struct ErrorQueueGuard {
  ErrorQueueGuard() = default;
  ErrorQueueGuard(const ErrorQueueGuard&) = delete;
  ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
  ~ErrorQueueGuard() { ERR_clear_error(); }
};

// Keys and certificates are small; refuse anything absurd before handing it to a parser.
constexpr std::size_t max_pem_size = std::size_t{1} << 20;

constexpr std::string_view pin_prefix = "sha256:";
constexpr std::string_view token_prefix = "hearth1-";
constexpr std::size_t max_token_size = std::size_t{16} * 1024;

constexpr std::string_view b64_std =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view b64_url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64_encode(std::string_view bytes, std::string_view alphabet) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
                            (std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8) |
                            std::uint32_t{static_cast<unsigned char>(bytes[i + 2])};
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t v = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
  } else if (rest == 2) {
    const std::uint32_t v = (std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
                            (std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
  }
  return out;  // never padded
}

// Strict decoder for unpadded base64: rejects '=', foreign characters, an
// impossible length, and non-zero unused bits (so each value has one spelling).
std::optional<std::string> base64_decode(std::string_view text, std::string_view alphabet) {
  std::array<int, 256> rev{};
  rev.fill(-1);
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    rev[static_cast<unsigned char>(alphabet[i])] = static_cast<int>(i);
  }
  if (text.size() % 4 == 1) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = rev[static_cast<unsigned char>(c)];
    if (v < 0) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return std::nullopt;
  }
  return out;
}

BioPtr mem_bio(std::string_view data) {
  if (data.size() > max_pem_size) {
    return nullptr;
  }
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  if (len <= 0 || data == nullptr) {
    return {};
  }
  return std::string(data, static_cast<std::size_t>(len));
}

// Never prompt on a terminal for a passphrase: encrypted keys are simply not accepted.
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return -1; }

PkeyPtr read_private_key(std::string_view pem) {
  BioPtr bio = mem_bio(pem);
  if (!bio) {
    return nullptr;
  }
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, &no_passphrase, nullptr));
}

std::optional<std::string> private_key_to_pem(EVP_PKEY* pkey) {
  // Secure-heap BIO: the buffer holding the key is cleansed when freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return std::nullopt;
  }
  return bio_contents(bio.get());
}

std::optional<std::string> certificate_to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return std::nullopt;
  }
  return bio_contents(bio.get());
}

// "sha256:" + base64(SHA-256(SubjectPublicKeyInfo DER)).
std::optional<std::string> pin_of_public_key(const EVP_PKEY* pkey) {
  if (pkey == nullptr) {
    return std::nullopt;
  }
  const int len = i2d_PUBKEY(pkey, nullptr);
  if (len <= 0) {
    return std::nullopt;
  }
  std::string der(static_cast<std::size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PUBKEY(pkey, &p) != len) {
    return std::nullopt;
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_len = 0;
  if (EVP_Digest(der.data(), der.size(), md.data(), &md_len, EVP_sha256(), nullptr) != 1 ||
      md_len != 32) {
    return std::nullopt;
  }
  return std::string(pin_prefix) +
         base64_encode(std::string_view(reinterpret_cast<const char*>(md.data()), md_len), b64_std);
}

bool set_common_name(X509* cert, std::string_view cn) {
  X509_NAME* name = X509_get_subject_name(cert);
  if (name == nullptr || cn.empty() || cn.size() > 64 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.data()),
                                 static_cast<int>(cn.size()), -1, 0) != 1) {
    return false;
  }
  return X509_set_issuer_name(cert, name) == 1;
}

// A v3 certificate skeleton: random positive serial, valid from now-1d for `days`.
X509Ptr new_certificate(EVP_PKEY* pkey, long days) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) {
    return nullptr;
  }
  std::uint64_t serial = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) != 1) {
    return nullptr;
  }
  serial = (serial >> 1) | 1;  // positive, non-zero
  if (ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -24L * 60 * 60) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), static_cast<int>(days), 0, nullptr) ==
          nullptr ||
      X509_set_pubkey(cert.get(), pkey) != 1) {
    return nullptr;
  }
  return cert;
}

bool sign(X509* cert, EVP_PKEY* pkey) {
  // Ed25519/Ed448 sign the message directly and take no separate digest.
  const int id = EVP_PKEY_get_id(pkey);
  const EVP_MD* md = (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) ? nullptr : EVP_sha256();
  return X509_sign(cert, pkey, md) > 0;
}

bool add_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

// subjectAltName built from GENERAL_NAME values, not from a config string, so a
// name can never inject another entry (", IP:...").
bool add_subject_alt_names(X509* cert, const std::vector<std::string>& names) {
  GeneralNamesPtr gens(sk_GENERAL_NAME_new_null());
  if (!gens) {
    return false;
  }
  for (const std::string& name : names) {
    GeneralNamePtr gen(GENERAL_NAME_new());
    if (!gen) {
      return false;
    }
    if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(name.c_str()); ip != nullptr) {
      GENERAL_NAME_set0_value(gen.get(), GEN_IPADD, ip);
    } else {
      ERR_clear_error();  // a2i_IPADDRESS reports "not an IP" as an error
      Asn1StringPtr dns(ASN1_IA5STRING_new());
      if (!dns || ASN1_STRING_set(dns.get(), name.data(), static_cast<int>(name.size())) != 1) {
        return false;
      }
      GENERAL_NAME_set0_value(gen.get(), GEN_DNS, dns.release());
    }
    if (sk_GENERAL_NAME_push(gens.get(), gen.get()) == 0) {
      return false;
    }
    static_cast<void>(gen.release());  // owned by gens now
  }
  return X509_add1_ext_i2d(cert, NID_subject_alt_name, gens.get(), 0, X509V3_ADD_DEFAULT) == 1;
}

bool valid_origin_name(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return false;
  }
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

// Loose check for the edge address in a token: "host:port" characters only. The
// origin's config loader checks the address properly.
bool plausible_edge_address(std::string_view edge) {
  if (edge.empty() || edge.size() > 300 || edge.find(':') == std::string_view::npos) {
    return false;
  }
  for (const char c : edge) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string generate_private_key_pem() {
  ErrorQueueGuard guard;
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!pkey) {
    throw std::runtime_error("cannot generate an Ed25519 key");
  }
  auto pem = private_key_to_pem(pkey.get());
  if (!pem) {
    throw std::runtime_error("cannot encode an Ed25519 key as PEM");
  }
  return std::move(*pem);
}

std::optional<std::string> pin_of_private_key_pem(std::string_view pem) {
  ErrorQueueGuard guard;
  PkeyPtr pkey = read_private_key(pem);
  return pin_of_public_key(pkey.get());
}

std::optional<std::string> pin_of_certificate(X509* cert) {
  ErrorQueueGuard guard;
  if (cert == nullptr) {
    return std::nullopt;
  }
  return pin_of_public_key(X509_get0_pubkey(cert));
}

std::optional<std::string> self_signed_certificate_pem(std::string_view private_key_pem,
                                                       std::string_view common_name) {
  ErrorQueueGuard guard;
  PkeyPtr pkey = read_private_key(private_key_pem);
  if (!pkey) {
    return std::nullopt;
  }
  constexpr long hundred_years = 36525;
  X509Ptr cert = new_certificate(pkey.get(), hundred_years);
  if (!cert || !set_common_name(cert.get(), common_name) || !sign(cert.get(), pkey.get())) {
    return std::nullopt;
  }
  return certificate_to_pem(cert.get());
}

std::optional<CertAndKey> self_signed_server_certificate(
    const std::vector<std::string>& dns_names) {
  ErrorQueueGuard guard;
  if (dns_names.empty()) {
    return std::nullopt;
  }
  for (const std::string& name : dns_names) {
    if (name.empty() || name.size() > 253 || name.find('\0') != std::string::npos) {
      return std::nullopt;
    }
  }
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!pkey) {
    return std::nullopt;
  }
  constexpr long validity_days = 825;  // the longest span clients accept for a server certificate
  X509Ptr cert = new_certificate(pkey.get(), validity_days);
  // Both branches string_view: a mixed ?: would yield a temporary std::string to dangle on.
  const std::string_view cn = dns_names.front().size() <= 64 ? std::string_view(dns_names.front())
                                                             : std::string_view("hearth");
  if (!cert || !set_common_name(cert.get(), cn) ||
      !add_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !add_extension(cert.get(), NID_key_usage, "critical,digitalSignature") ||
      !add_extension(cert.get(), NID_ext_key_usage, "serverAuth") ||
      !add_extension(cert.get(), NID_subject_key_identifier, "hash") ||
      !add_subject_alt_names(cert.get(), dns_names) || !sign(cert.get(), pkey.get())) {
    return std::nullopt;
  }
  auto cert_pem = certificate_to_pem(cert.get());
  auto key_pem = private_key_to_pem(pkey.get());
  if (!cert_pem || !key_pem) {
    return std::nullopt;
  }
  return CertAndKey{std::move(*cert_pem), std::move(*key_pem)};
}

bool pins_equal(std::string_view a, std::string_view b) {
  // The length of a pin is public (always 50 for sha256); only the contents are compared in
  // constant time.
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool is_valid_pin(std::string_view pin) {
  if (pin.size() != pin_prefix.size() + 43 || pin.substr(0, pin_prefix.size()) != pin_prefix) {
    return false;
  }
  const auto raw = base64_decode(pin.substr(pin_prefix.size()), b64_std);
  return raw && raw->size() == 32;
}

std::string encode_join_token(const JoinToken& token) {
  const auto check = [](std::string_view field, std::string_view value) {
    if (value.find_first_of("\r\n") != std::string_view::npos) {
      throw std::invalid_argument("join token: " + std::string(field) + " contains a line break");
    }
  };
  check("edge", token.edge);
  check("edge_pin", token.edge_pin);
  check("origin_name", token.origin_name);
  std::string payload;
  payload += "edge=" + token.edge + "\n";
  payload += "pin=" + token.edge_pin + "\n";
  payload += "name=" + token.origin_name + "\n";
  payload += "key=" + base64_encode(token.origin_key_pem, b64_std) + "\n";
  // Allowed hostnames (issue 13): optional lines, after the fields every token has.
  for (const auto& host : token.hostnames) {
    check("host", host);
    payload += "host=" + host + "\n";
  }
  // WireGuard link (issue 10): optional wg_* lines.
  if (token.has_wireguard()) {
    check("wg_edge_public_key", token.wg_edge_public_key);
    check("wg_endpoint", token.wg_endpoint);
    check("wg_edge_address", token.wg_edge_address);
    check("wg_address", token.wg_address);
    check("wg_private_key", token.wg_private_key);
    payload += "wg_edge_public_key=" + token.wg_edge_public_key + "\n";
    payload += "wg_endpoint=" + token.wg_endpoint + "\n";
    payload += "wg_edge_address=" + token.wg_edge_address + "\n";
    payload += "wg_address=" + token.wg_address + "\n";
    payload += "wg_private_key=" + token.wg_private_key + "\n";
  }
  std::string out(token_prefix);
  out += base64_encode(payload, b64_url);
  OPENSSL_cleanse(payload.data(), payload.size());
  return out;
}

namespace {

constexpr std::size_t max_token_hosts = 256;

// "a.example.com" or "*.example.com": lower-case letters, digits, '-', '.';
// a '*' only as the whole first label. The edge validated it; this only keeps
// untrusted text out of the config `join` writes.
bool plausible_hostname_pattern(std::string_view host) {
  if (host.substr(0, 2) == "*.") host.remove_prefix(2);
  if (host.empty() || host.size() > 253 || host.front() == '.' || host.back() == '.') return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

}  // namespace

std::optional<JoinToken> decode_join_token(std::string_view text) {
  constexpr std::string_view space = " \t\r\n";
  const std::size_t first = text.find_first_not_of(space);
  if (first == std::string_view::npos) {
    return std::nullopt;
  }
  text = text.substr(first, text.find_last_not_of(space) - first + 1);
  if (text.size() > max_token_size || text.substr(0, token_prefix.size()) != token_prefix) {
    return std::nullopt;
  }
  const auto payload = base64_decode(text.substr(token_prefix.size()), b64_url);
  if (!payload || payload->empty() || payload->back() != '\n') {
    return std::nullopt;
  }

  JoinToken token;
  std::string key_b64;
  bool have_edge = false, have_pin = false, have_name = false, have_key = false;
  bool have_wg[5] = {};  // WireGuard link (issue 10): optional, all five or none
  std::string_view rest = *payload;
  while (!rest.empty()) {
    const std::size_t nl = rest.find('\n');  // present: the payload ends with '\n'
    const std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view field = line.substr(0, eq);
    const std::string_view value = line.substr(eq + 1);
    const auto take = [&](bool& seen, std::string& dest) {
      if (seen) {
        return false;  // a field given twice
      }
      seen = true;
      dest.assign(value);
      return true;
    };
    bool ok = false;
    if (field == "edge") {
      ok = take(have_edge, token.edge);
    } else if (field == "pin") {
      ok = take(have_pin, token.edge_pin);
    } else if (field == "name") {
      ok = take(have_name, token.origin_name);
    } else if (field == "key") {
      ok = take(have_key, key_b64);
    } else if (field == "host") {
      ok = plausible_hostname_pattern(value) && token.hostnames.size() < max_token_hosts;
      if (ok) token.hostnames.emplace_back(value);
    } else if (field == "wg_edge_public_key") {
      ok = take(have_wg[0], token.wg_edge_public_key);
    } else if (field == "wg_endpoint") {
      ok = take(have_wg[1], token.wg_endpoint);
    } else if (field == "wg_edge_address") {
      ok = take(have_wg[2], token.wg_edge_address);
    } else if (field == "wg_address") {
      ok = take(have_wg[3], token.wg_address);
    } else if (field == "wg_private_key") {
      ok = take(have_wg[4], token.wg_private_key);
    }
    if (!ok) {
      return std::nullopt;
    }
  }
  if (!have_edge || !have_pin || !have_name || !have_key || !plausible_edge_address(token.edge) ||
      !is_valid_pin(token.edge_pin) || !valid_origin_name(token.origin_name)) {
    return std::nullopt;
  }
  auto key_pem = base64_decode(key_b64, b64_std);
  if (!key_pem || !pin_of_private_key_pem(*key_pem)) {
    return std::nullopt;
  }
  {
    // WireGuard: all five lines or none; keys are 32 bytes of base64, the rest short
    // printable text (write_origin_config checks addresses in full).
    const int n = have_wg[0] + have_wg[1] + have_wg[2] + have_wg[3] + have_wg[4];
    const auto wg_key_ok = [](const std::string& k) {
      if (k.size() != 44 || k.back() != '=') return false;  // padded, as `wg` prints keys
      const auto raw = base64_decode(std::string_view(k).substr(0, 43), b64_std);
      return raw && raw->size() == 32;
    };
    const auto short_text = [](const std::string& v) {
      return !v.empty() && v.size() <= 300 &&
             std::all_of(v.begin(), v.end(), [](char c) { return c > ' ' && c < 0x7f; });
    };
    if (n != 0 && (n != 5 || !wg_key_ok(token.wg_edge_public_key) ||
                   !wg_key_ok(token.wg_private_key) || !short_text(token.wg_endpoint) ||
                   !short_text(token.wg_edge_address) || !short_text(token.wg_address))) {
      return std::nullopt;
    }
  }
  token.origin_key_pem = std::move(*key_pem);
  return token;
}

std::string random_hex(std::size_t n) {
  ErrorQueueGuard guard;
  std::string bytes(n, '\0');
  if (n > INT_MAX || (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()),
                                          static_cast<int>(n)) != 1)) {
    throw std::runtime_error("RAND_bytes failed");
  }
  constexpr std::string_view hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

}  // namespace hearth::crypto
