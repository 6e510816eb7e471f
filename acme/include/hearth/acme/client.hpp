#pragma once
// The ACME client (RFC 8555) over Beast + OpenSSL, as coroutines on one executor
// (the edge's control context). Control plane: failures are thrown as AcmeError,
// which carries the CA's problem document and Retry-After when there was one.
// Every network wait is bounded by ClientOptions::request_timeout, every poll loop
// by poll_timeout.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "hearth/acme/jws.hpp"
#include "hearth/acme/messages.hpp"

namespace hearth::acme {

namespace asio = boost::asio;

class ChallengeBoard;

class AcmeError : public std::runtime_error {
 public:
  explicit AcmeError(const std::string& what, std::optional<Problem> p = std::nullopt,
                     std::optional<std::chrono::seconds> retry = std::nullopt)
      : std::runtime_error(what), problem(std::move(p)), retry_after(retry) {}
  std::optional<Problem> problem;
  std::optional<std::chrono::seconds> retry_after;
};

struct ClientOptions {
  std::string directory_url;
  std::filesystem::path ca_file;  // extra trust anchors for the CA's HTTPS
  std::chrono::milliseconds request_timeout = std::chrono::seconds(30);
  std::chrono::milliseconds poll_timeout = std::chrono::seconds(120);
  std::vector<std::string> contacts;  // "mailto:..."
  std::string eab_kid, eab_hmac_key;  // key: base64url as the CA gives it
  std::filesystem::path dns_hook;
  std::chrono::milliseconds dns_hook_timeout = std::chrono::minutes(2);
};

struct HttpResponse {
  unsigned status = 0;
  std::string body, location, nonce, retry_after, content_type;
};

struct IssueRequest {
  std::vector<std::string> names;
  KeyType key_type = KeyType::ecdsa_p256;
  std::vector<std::string> challenges;  // preference order; wildcards always use dns-01
  std::string replaces;                 // ARI id of the certificate being renewed
};

struct Issued {
  std::string chain_pem, key_pem;
};

class Client {
 public:
  Client(asio::any_io_executor ex, ClientOptions opts);

  // The account key and, when known, its URL (kid). Without a kid, the first request
  // looks the account up (onlyReturnExisting) and registers it when there is none.
  void set_account(Key key, std::string kid);
  const std::string& kid() const { return kid_; }
  const Key& account_key() const { return *key_; }

  asio::awaitable<const Directory*> directory();
  asio::awaitable<Issued> issue(IssueRequest req, ChallengeBoard& board);
  // RFC 9773: nullopt when the directory has no renewalInfo or the CA does not answer.
  asio::awaitable<std::optional<RenewalWindow>> renewal_info(std::string ari_id);

 private:
  asio::awaitable<HttpResponse> request(std::string method, std::string url, std::string body);
  asio::awaitable<HttpResponse> post(std::string url, std::optional<std::string> payload,
                                     bool with_jwk = false);
  asio::awaitable<void> ensure_account();
  asio::awaitable<void> wait(std::chrono::milliseconds d);
  asio::awaitable<void> run_hook(std::string action, std::string name, std::string value);
  asio::awaitable<void> solve(std::string authz_url, IssueRequest req, ChallengeBoard& board);

  asio::any_io_executor ex_;
  ClientOptions opts_;
  asio::ssl::context tls_;
  std::optional<Directory> dir_;
  std::optional<Key> key_;
  std::string kid_;
  std::string nonce_;
};

}  // namespace hearth::acme
