#pragma once
// Pending challenge responses, shared between the ACME client (which adds and removes
// them) and the edge's listeners (which answer the CA from them). Thread-safe: the
// listeners run on the workers; a lock is taken only while a challenge is pending.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

struct ssl_st;
struct ssl_ctx_st;

namespace hearth::acme {

struct PemPair;

class ChallengeBoard {
 public:
  // http-01: GET /.well-known/acme-challenge/TOKEN answers the key authorization.
  void add_http01(const std::string& token, const std::string& key_authorization);
  void remove_http01(const std::string& token);
  std::optional<std::string> http01(std::string_view token) const;

  // tls-alpn-01: a ClientHello for `name` offering ALPN acme-tls/1 gets this certificate.
  // Throws std::runtime_error when the PEMs do not load.
  void add_tls_alpn01(const std::string& name, const PemPair& cert);
  void remove_tls_alpn01(const std::string& name);
  std::shared_ptr<ssl_ctx_st> tls_alpn01(std::string_view name) const;

  // SSL_CTX_set_client_hello_cb callback (arg: this board). It sees SNI and ALPN at
  // once (the servername callback runs before ALPN selection) and, only for a pending
  // name whose ClientHello offers acme-tls/1, switches the connection to the
  // challenge context; every other handshake is left untouched.
  static int client_hello_cb(ssl_st* ssl, int* alert, void* arg);

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> http01_;
  std::map<std::string, std::shared_ptr<ssl_ctx_st>, std::less<>> tls_alpn01_;
  std::atomic<int> alpn_pending_{0};
  std::atomic<int> http_pending_{0};
};

}  // namespace hearth::acme
