// Issue 12: managed certificates in the edge (see acme_glue.hpp).

#include "acme_glue.hpp"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "hearth/acme/challenges.hpp"
#include "hearth/acme/manager.hpp"
#include "hearth/common/log.hpp"
#include "hearth/edge/http_rules.hpp"

namespace hearth::edge {
namespace {

namespace http = boost::beast::http;

std::shared_ptr<asio::ssl::context> context_from_pem(const std::string& chain,
                                                     const std::string& key) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  ctx->use_certificate_chain(asio::buffer(chain));
  ctx->use_private_key(asio::buffer(key), asio::ssl::context::pem);
  return ctx;
}

// Static [[tls.certificates]] leaves, to leave the names they cover alone.
std::vector<std::shared_ptr<X509>> static_leaves(const config::EdgeConfig& cfg) {
  std::vector<std::shared_ptr<X509>> out;
  for (const auto& c : cfg.certificates) {
    FILE* f = std::fopen(c.cert.c_str(), "r");
    if (f == nullptr) continue;
    X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (x != nullptr) out.emplace_back(x, X509_free);
  }
  return out;
}

}  // namespace

void add_acme_contexts(HttpsTls& tls, std::shared_ptr<const AcmeTls> acme,
                       SSL_CTX_alpn_select_cb_func alpn, void* alpn_arg) {
  if (!acme) return;
  for (const auto& e : acme->entries) {
    SSL_CTX_set_alpn_select_cb(e.ctx->native_handle(), alpn, alpn_arg);
    tls.entries.push_back(e);
  }
  if (tls.entries.empty()) {
    // Nothing issued yet: handshakes get a throwaway self-signed certificate (clients
    // refuse it) until the first certificate arrives; the edge serves meanwhile.
    static const acme::PemPair fallback = acme::make_self_signed("hearth-no-certificate-yet");
    auto ctx = context_from_pem(fallback.cert_pem, fallback.key_pem);
    SSL_CTX_set_alpn_select_cb(ctx->native_handle(), alpn, alpn_arg);
    tls.entries.push_back({ctx, SSL_CTX_get0_certificate(ctx->native_handle())});
  }
  for (auto& e : tls.entries) {
    SSL_CTX_set_client_hello_cb(e.ctx->native_handle(), acme::ChallengeBoard::client_hello_cb,
                                acme->board.get());
  }
  tls.acme = std::move(acme);
}

AcmeService::AcmeService(asio::io_context& control, std::shared_ptr<EdgeShared> shared,
                         const config::AcmeConfig& cfg)
    : shared_(std::move(shared)), board_(std::make_shared<acme::ChallengeBoard>()) {
  auto settings = cfg;
  if (!shared_->config()->listen_http) {
    // Nobody would answer the CA on port 80: never pick http-01.
    std::erase(settings.challenges, "http-01");
    if (settings.challenges.empty()) {
      log::warn("acme.no_challenge", {{"reason", "http-01 needs [edge] listen_http"}});
    }
  }
  manager_ = std::make_shared<acme::Manager>(
      control, settings, shared_->config()->state_dir, board_,
      [this](const std::vector<acme::ManagedCert>& certs) { install(certs); });
  auto initial = std::make_shared<AcmeTls>();
  initial->board = board_;
  initial->manager = manager_;
  shared_->set_acme(initial);
}

AcmeService::~AcmeService() {
  if (manager_) manager_->stop();
}

void AcmeService::apply(std::unique_ptr<AcmeService>& self, asio::io_context& control,
                        const std::shared_ptr<EdgeShared>& shared, const config::EdgeConfig& cfg) {
  if (!cfg.acme) {
    if (self) log::warn("acme.kept", {{"reason", "[acme] removed: a restart stops it"}});
    if (!self) return;
  }
  if (!self) {
    self.reset(new AcmeService(control, shared, *cfg.acme));
    self->manager_->start();
  }
  self->manager_->set_names(self->wanted_names(cfg));
}

std::vector<std::string> AcmeService::wanted_names(const config::EdgeConfig& cfg) const {
  auto leaves = static_leaves(cfg);
  std::vector<std::string> names;
  for (const auto& origin : cfg.origins) {
    if (!origin.acme) continue;
    for (const auto& host : origin.hostnames) {
      const bool wildcard = host.rfind("*.", 0) == 0;
      // A wildcard is covered by a certificate that matches any name one label below it.
      const std::string probe = wildcard ? "hearth-probe" + host.substr(1) : host;
      bool covered = false;
      for (const auto& leaf : leaves) {
        if (X509_check_host(leaf.get(), probe.c_str(), probe.size(), 0, nullptr) == 1) {
          covered = true;
        }
      }
      if (covered) continue;
      if (wildcard && (!cfg.acme || cfg.acme->dns_hook.empty())) {
        log::warn("acme.wildcard_skipped",
                  {{"name", host}, {"origin", origin.name}, {"reason", "needs acme.dns_hook"}});
        continue;
      }
      if (std::find(names.begin(), names.end(), host) == names.end()) names.push_back(host);
    }
  }
  return names;
}

void AcmeService::install(const std::vector<acme::ManagedCert>& certs) {
  auto next = std::make_shared<AcmeTls>();
  next->board = board_;
  next->manager = manager_;
  std::string names;
  for (const auto& c : certs) {
    try {
      auto ctx = context_from_pem(c.chain_pem, c.key_pem);
      next->entries.push_back({ctx, SSL_CTX_get0_certificate(ctx->native_handle())});
      for (const auto& n : c.names) names += (names.empty() ? "" : ",") + n;
    } catch (const std::exception& e) {
      log::error("acme.install_failed", {{"error", e.what()}});
    }
  }
  shared_->set_acme(next);
  auto cfg = shared_->config();
  try {
    // One pointer swap: handshakes in progress keep the table they started with.
    shared_->swap(cfg, make_https_tls(*cfg, next));
    log::info("acme.installed", {{"certificates", next->entries.size()}, {"names", names}});
  } catch (const std::exception& e) {
    log::error("acme.install_failed", {{"error", e.what()}});
  }
}

http::response<http::string_body> acme_http01_reply(const EdgeShared& shared,
                                                    const http::request<http::empty_body>& req) {
  auto acme = shared.acme();
  std::string_view target = req.target();
  auto slash = target.rfind('/');
  std::string_view token = target.substr(slash + 1);
  token = token.substr(0, token.find('?'));
  std::optional<std::string> ka;
  if (acme && acme->board) ka = acme->board->http01(token);
  if (!ka) {
    return make_error_response(http::status::not_found, req.version(), req.keep_alive(),
                               std::nullopt, "");
  }
  http::response<http::string_body> res{http::status::ok, req.version()};
  res.set(http::field::content_type, "application/octet-stream");
  res.body() = std::move(*ka);
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  log::info("acme.http01.served", {{"token", token}});
  return res;
}

void acme_admin(const EdgeShared& shared, std::string_view path, std::string& body) {
  auto acme = shared.acme();
  auto manager = acme ? acme->manager.lock() : nullptr;
  if (!manager) return;
  if (path == "/metrics") {
    body += manager->prometheus();
  } else if (path == "/status") {
    auto end = body.find_last_of('}');
    if (end == std::string::npos) return;
    bool empty = body.find_first_not_of(" \n\t{", 0) == end;
    body.insert(end, std::string(empty ? "" : ",") + "\"certificates\":" + manager->status_json());
  }
}

}  // namespace hearth::edge
