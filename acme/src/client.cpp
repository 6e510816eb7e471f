#include "hearth/acme/client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "hearth/acme/certs.hpp"
#include "hearth/acme/challenges.hpp"
#include "hearth/acme/codec.hpp"
#include "hearth/common/log.hpp"
#include "hearth/common/version.hpp"

namespace hearth::acme {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxBody = 1 << 20;

struct Url {
  std::string host, port, target;
};

std::optional<Url> parse_url(std::string_view u) {
  constexpr std::string_view scheme = "https://";
  if (u.rfind(scheme, 0) != 0) return std::nullopt;
  u.remove_prefix(scheme.size());
  auto slash = u.find('/');
  std::string_view authority = u.substr(0, slash);
  Url out;
  out.target = slash == std::string_view::npos ? "/" : std::string(u.substr(slash));
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() == ':') out.port = authority.substr(1);
  } else {
    auto colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) out.port = authority.substr(colon + 1);
  }
  if (out.port.empty()) out.port = "443";
  if (out.host.empty()) return std::nullopt;
  return out;
}

bool is_ip(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::chrono::milliseconds poll_delay(const HttpResponse& res, std::chrono::milliseconds dflt) {
  if (auto ra = parse_retry_after(res.retry_after, std::chrono::system_clock::now())) {
    return std::clamp<std::chrono::milliseconds>(*ra, 1s, 10s);
  }
  return dflt;
}

AcmeError error_from(const std::string& what, const HttpResponse& res) {
  auto problem = parse_problem(res.body);
  auto retry = parse_retry_after(res.retry_after, std::chrono::system_clock::now());
  std::string msg = what + ": HTTP " + std::to_string(res.status);
  if (problem) msg += ": " + problem->to_string();
  return AcmeError(msg, problem, retry);
}

}  // namespace

Client::Client(asio::any_io_executor ex, ClientOptions opts)
    : ex_(std::move(ex)), opts_(std::move(opts)), tls_(asio::ssl::context::tls_client) {
  tls_.set_default_verify_paths();
  if (!opts_.ca_file.empty()) tls_.load_verify_file(opts_.ca_file.string());
  tls_.set_verify_mode(asio::ssl::verify_peer);
  SSL_CTX_set_min_proto_version(tls_.native_handle(), TLS1_2_VERSION);
}

void Client::set_account(Key key, std::string kid) {
  key_ = std::move(key);
  kid_ = std::move(kid);
}

asio::awaitable<void> Client::wait(std::chrono::milliseconds d) {
  asio::steady_timer t(ex_, d);
  co_await t.async_wait(tuple_awaitable);
}

asio::awaitable<HttpResponse> Client::request(std::string method, std::string url,
                                              std::string body) {
  auto u = parse_url(url);
  if (!u) throw AcmeError("not an https URL: " + url);
  tcp::resolver resolver(ex_);
  asio::steady_timer guard(ex_, opts_.request_timeout);
  guard.async_wait([&resolver](error_code ec) {
    if (!ec) resolver.cancel();
  });
  auto [rec, results] = co_await resolver.async_resolve(u->host, u->port, tuple_awaitable);
  guard.cancel();
  if (rec) throw AcmeError("cannot resolve " + u->host + ": " + rec.message());

  beast::ssl_stream<beast::tcp_stream> stream(ex_, tls_);
  SSL* ssl = stream.native_handle();
  if (is_ip(u->host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u->host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, u->host.c_str());
    SSL_set1_host(ssl, u->host.c_str());
  }
  auto& tcp_layer = beast::get_lowest_layer(stream);
  tcp_layer.expires_after(opts_.request_timeout);
  auto [cec, ep] = co_await tcp_layer.async_connect(results, tuple_awaitable);
  if (cec) throw AcmeError("cannot connect to " + u->host + ":" + u->port + ": " + cec.message());
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, tuple_awaitable);
  if (hec) {
    long v = SSL_get_verify_result(ssl);
    std::string why = v != X509_V_OK ? X509_verify_cert_error_string(v) : hec.message();
    throw AcmeError("TLS handshake with " + u->host + " failed: " + why);
  }
  http::request<http::string_body> req;
  req.method(method == "POST"   ? http::verb::post
             : method == "HEAD" ? http::verb::head
                                : http::verb::get);
  req.target(u->target);
  req.version(11);
  req.set(http::field::host, u->port == "443" ? u->host : u->host + ":" + u->port);
  req.set(http::field::user_agent, std::string("hearth/") + kVersion + " acme");
  req.set(http::field::accept, "application/json, application/pem-certificate-chain");
  req.set(http::field::connection, "close");
  if (method == "POST") {
    req.set(http::field::content_type, "application/jose+json");
    req.body() = std::move(body);
  }
  req.prepare_payload();
  tcp_layer.expires_after(opts_.request_timeout);
  auto [wec, wn] = co_await http::async_write(stream, req, tuple_awaitable);
  if (wec) throw AcmeError("cannot send to " + u->host + ": " + wec.message());
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  parser.header_limit(64 * 1024);
  if (method == "HEAD") parser.skip(true);
  auto [rdec, rn] = co_await http::async_read(stream, buf, parser, tuple_awaitable);
  if (rdec) throw AcmeError("no answer from " + u->host + ": " + rdec.message());
  error_code ignored;
  tcp_layer.socket().shutdown(tcp::socket::shutdown_both, ignored);
  tcp_layer.close();
  auto& res = parser.get();
  HttpResponse out;
  out.status = res.result_int();
  out.body = std::move(res.body());
  out.location = std::string(res[http::field::location]);
  out.nonce = std::string(res["Replay-Nonce"]);
  out.retry_after = std::string(res[http::field::retry_after]);
  out.content_type = std::string(res[http::field::content_type]);
  co_return out;
}

asio::awaitable<const Directory*> Client::directory() {
  if (!dir_) {
    auto res = co_await request("GET", opts_.directory_url, "");
    if (res.status != 200) throw error_from("directory " + opts_.directory_url, res);
    dir_ = parse_directory(res.body);
    if (!dir_) throw AcmeError("directory " + opts_.directory_url + ": not an ACME directory");
    log::info("acme.directory", {{"url", opts_.directory_url},
                                 {"ari", !dir_->renewal_info.empty()},
                                 {"eab_required", dir_->external_account_required}});
  }
  co_return &*dir_;
}

asio::awaitable<HttpResponse> Client::post(std::string url, std::optional<std::string> payload,
                                           bool with_jwk) {
  const Directory* dir = co_await directory();
  for (int attempt = 0;; ++attempt) {
    if (nonce_.empty()) {
      auto res = co_await request("HEAD", dir->new_nonce, "");
      if (res.nonce.empty()) throw error_from("newNonce gave no Replay-Nonce", res);
      nonce_ = res.nonce;
    }
    std::string nonce = std::exchange(nonce_, "");
    auto body = jws_sign(*key_, url, nonce, with_jwk ? "" : kid_, payload);
    auto res = co_await request("POST", url, std::move(body));
    if (!res.nonce.empty()) nonce_ = res.nonce;
    if (res.status >= 400) {
      auto problem = parse_problem(res.body);
      // badNonce is retryable (RFC 8555 section 6.5): the answer carries a fresh nonce.
      if (problem && problem->short_type() == "badNonce" && attempt < 5) {
        log::debug("acme.bad_nonce", {{"url", url}, {"attempt", attempt + 1}});
        continue;
      }
      throw error_from("POST " + url, res);
    }
    co_return res;
  }
}

asio::awaitable<void> Client::ensure_account() {
  if (!key_) throw AcmeError("no account key");
  if (!kid_.empty()) co_return;
  const Directory* dir = co_await directory();
  try {
    auto res = co_await post(dir->new_account, new_account_payload({}, true, ""), true);
    kid_ = res.location;
    log::info("acme.account.found", {{"account", kid_}});
    co_return;
  } catch (const AcmeError& e) {
    if (!e.problem || e.problem->short_type() != "accountDoesNotExist") throw;
  }
  std::string eab;
  if (!opts_.eab_kid.empty()) {
    auto hmac = base64url_decode(opts_.eab_hmac_key);
    if (!hmac) throw AcmeError("eab_hmac_key_file: not base64url");
    eab = eab_jws(*key_, opts_.eab_kid, *hmac, dir->new_account);
  } else if (dir->external_account_required) {
    throw AcmeError(
        "the CA requires external account binding: set acme.eab_kid and "
        "acme.eab_hmac_key_file");
  }
  auto res = co_await post(dir->new_account, new_account_payload(opts_.contacts, false, eab), true);
  if (res.location.empty()) throw AcmeError("newAccount answered without a Location");
  kid_ = res.location;
  log::info("acme.account.registered", {{"account", kid_}, {"status", res.status}});
}

asio::awaitable<void> Client::run_hook(std::string action, std::string name, std::string value) {
  std::string path = opts_.dns_hook.string();
  std::vector<char*> argv{path.data(), action.data(), name.data(), value.data(), nullptr};
  pid_t pid = ::fork();
  if (pid < 0) throw AcmeError("dns_hook: fork failed");
  if (pid == 0) {
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + opts_.dns_hook_timeout;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      throw AcmeError("dns_hook " + action + " " + name + " timed out");
    }
    co_await wait(50ms);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw AcmeError("dns_hook " + action + " " + name + " failed (exit status " +
                    std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  }
  log::info("acme.dns_hook", {{"action", action}, {"name", name}});
}

asio::awaitable<void> Client::solve(std::string authz_url, IssueRequest req,
                                    ChallengeBoard& board) {
  auto res = co_await post(authz_url, std::nullopt);
  auto authz = parse_authorization(res.body);
  if (!authz) throw AcmeError("authorization " + authz_url + ": unreadable");
  const std::string name = authz->identifier.value;
  if (authz->status == "valid") {
    log::info("acme.authorization.valid", {{"name", name}, {"reused", true}});
    co_return;
  }
  if (authz->status != "pending") {
    throw AcmeError("authorization for " + name + " is " + authz->status);
  }
  std::vector<std::string> prefs = req.challenges;
  if (authz->wildcard) prefs = {"dns-01"};
  const Challenge* chosen = nullptr;
  for (const auto& type : prefs) {
    if (type == "dns-01" && opts_.dns_hook.empty()) continue;
    for (const auto& c : authz->challenges) {
      if (!chosen && c.type == type && !c.token.empty() && !c.url.empty()) chosen = &c;
    }
  }
  if (chosen == nullptr) {
    throw AcmeError("no usable challenge for " + name +
                    (authz->wildcard ? " (a wildcard needs dns-01: set acme.dns_hook)" : ""));
  }
  const Challenge ch = *chosen;
  const std::string ka = key_authorization(ch.token, *key_);
  const std::string record = "_acme-challenge." + name;
  if (ch.type == "http-01") {
    board.add_http01(ch.token, ka);
  } else if (ch.type == "tls-alpn-01") {
    board.add_tls_alpn01(name, make_tls_alpn_certificate(name, ka));
  } else {
    co_await run_hook("add", record, dns01_txt_value(ka));
  }
  log::info("acme.challenge.ready", {{"name", name}, {"type", ch.type}});
  std::optional<AcmeError> failure;
  try {
    co_await post(ch.url, std::string("{}"));
    auto deadline = std::chrono::steady_clock::now() + opts_.poll_timeout;
    std::chrono::milliseconds delay = 250ms;
    for (;;) {
      co_await wait(delay);
      auto poll = co_await post(authz_url, std::nullopt);
      auto a = parse_authorization(poll.body);
      if (!a) throw AcmeError("authorization " + authz_url + ": unreadable");
      if (a->status == "valid") break;
      if (a->status != "pending") {
        std::optional<Problem> why;
        for (const auto& c : a->challenges) {
          if (c.url == ch.url && c.error) why = c.error;
        }
        throw AcmeError("challenge " + ch.type + " for " + name + " failed" +
                            (why ? ": " + why->to_string() : ""),
                        why);
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        throw AcmeError("challenge " + ch.type + " for " + name + ": still pending after " +
                        std::to_string(opts_.poll_timeout.count() / 1000) + "s");
      }
      delay = poll_delay(poll, 1s);
    }
  } catch (const AcmeError& e) {
    failure = e;
  }
  if (ch.type == "http-01") {
    board.remove_http01(ch.token);
  } else if (ch.type == "tls-alpn-01") {
    board.remove_tls_alpn01(name);
  } else {
    try {
      co_await run_hook("remove", record, dns01_txt_value(ka));
    } catch (const AcmeError& e) {
      log::warn("acme.dns_hook.failed", {{"error", e.what()}});
    }
  }
  if (failure) throw *failure;
  log::info("acme.authorization.valid", {{"name", name}, {"type", ch.type}});
}

asio::awaitable<Issued> Client::issue(IssueRequest req, ChallengeBoard& board) {
  const Directory* dir = co_await directory();
  co_await ensure_account();
  std::string names;
  for (const auto& n : req.names) names += (names.empty() ? "" : ",") + n;
  std::string replaces = dir->renewal_info.empty() ? "" : req.replaces;
  HttpResponse res;
  bool retry_plain = false;
  try {
    res = co_await post(dir->new_order, new_order_payload(req.names, replaces));
  } catch (const AcmeError& e) {
    if (replaces.empty() || !e.problem || e.problem->short_type() == "rateLimited") throw;
    // A CA may refuse `replaces` (already replaced, unknown): order without it.
    log::warn("acme.order.replaces_refused", {{"names", names}, {"error", e.what()}});
    retry_plain = true;
  }
  if (retry_plain) res = co_await post(dir->new_order, new_order_payload(req.names, ""));
  const std::string order_url = res.location;
  auto order = parse_order(res.body);
  if (!order || order_url.empty()) throw AcmeError("newOrder: unreadable answer");
  log::info("acme.order.created", {{"names", names}, {"order", order_url}});
  for (const auto& authz : order->authorizations) co_await solve(authz, req, board);

  Key cert_key = Key::generate(req.key_type);
  auto deadline = std::chrono::steady_clock::now() + opts_.poll_timeout;
  std::chrono::milliseconds delay = 0ms;
  bool finalized = false;
  for (;;) {
    if (delay.count() > 0) co_await wait(delay);
    auto poll = co_await post(order_url, std::nullopt);
    order = parse_order(poll.body);
    if (!order) throw AcmeError("order " + order_url + ": unreadable");
    if (order->status == "valid" && !order->certificate.empty()) break;
    if (order->status == "invalid") {
      throw AcmeError("order for " + names + " is invalid" +
                          (order->error ? ": " + order->error->to_string() : ""),
                      order->error);
    }
    if (order->status == "ready" && !finalized) {
      log::info("acme.order.finalize", {{"names", names}});
      co_await post(order->finalize, finalize_payload(make_csr(req.names, cert_key)));
      finalized = true;
      delay = 250ms;
      continue;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw AcmeError("order for " + names + " still " + order->status + " after " +
                      std::to_string(opts_.poll_timeout.count() / 1000) + "s");
    }
    delay = poll_delay(poll, 1s);
  }
  auto cert = co_await post(order->certificate, std::nullopt);
  if (cert.body.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    throw AcmeError("certificate download: not a PEM chain (" + cert.content_type + ")");
  }
  co_return Issued{std::move(cert.body), cert_key.to_pem()};
}

asio::awaitable<std::optional<RenewalWindow>> Client::renewal_info(std::string ari_id) {
  const Directory* dir = co_await directory();
  if (dir->renewal_info.empty() || ari_id.empty()) co_return std::nullopt;
  std::string url = dir->renewal_info;
  if (url.back() != '/') url += '/';
  try {
    auto res = co_await request("GET", url + ari_id, "");
    if (res.status != 200) co_return std::nullopt;
    co_return parse_renewal_info(res.body);
  } catch (const AcmeError& e) {
    log::warn("acme.renewal_info.failed", {{"error", e.what()}});
    co_return std::nullopt;
  }
}

}  // namespace hearth::acme
