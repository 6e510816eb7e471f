#include "admin_pages.hpp"

#include <openssl/asn1.h>
#include <openssl/x509v3.h>

#include <ctime>

#include "hearth/common/dashboard.hpp"
#include "hearth/common/version.hpp"
#include "wireguard.hpp"

namespace hearth::edge {

namespace {

std::string certificates_json(EdgeShared& shared) {
  auto tls = shared.https();
  auto cfg = shared.config();
  std::string out = "[";
  if (!tls) return out + "]";
  for (std::size_t i = 0; i < tls->entries.size(); ++i) {
    X509* leaf = tls->entries[i].leaf;
    if (!leaf) continue;
    std::string names;
    auto* sans =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
    if (sans) {
      for (int k = 0; k < sk_GENERAL_NAME_num(sans); ++k) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, k);
        if (gn->type != GEN_DNS) continue;
        const auto* s = gn->d.dNSName;
        if (!names.empty()) names += ',';
        names +=
            json_string(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                         static_cast<std::size_t>(ASN1_STRING_length(s))));
      }
      GENERAL_NAMES_free(sans);
    }
    std::tm tm{};
    long long not_after = 0;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1) not_after = timegm(&tm);
    if (out.size() > 1) out += ',';
    out +=
        "{\"names\":[" + names + "],\"not_after\":" + std::to_string(not_after) + ",\"file\":" +
        json_string(cfg && i < cfg->certificates.size() ? cfg->certificates[i].cert.string() : "") +
        "}";
  }
  return out + "]";
}

}  // namespace

admin::Response admin_response(EdgeShared& shared, std::string_view path) {
  admin::Response r;
  bool draining = shared.draining.load();
  if (path == "/") {
    r.content_type = "text/html; charset=utf-8";
    r.body = std::string(dashboard_html());
  } else if (path == "/healthz") {
    r.body = "ok\n";
  } else if (path == "/readyz") {
    // Listeners are up once the process accepts here; draining means not ready.
    r.status = draining ? 503 : 200;
    r.body = draining ? "draining\n" : "ready\n";
    std::string why;  // WireGuard (issue 10): a link down or a stale handshake
    if (!draining && shared.wireguard && !shared.wireguard->healthy(why)) {
      r.status = 503;
      r.body = why + "\n";
    }
  } else if (path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4";
    r.body = shared.metrics.prometheus(shared.registry);
    if (shared.wireguard) r.body += shared.wireguard->prometheus();
  } else if (path == "/status") {
    r.content_type = "application/json";
    r.body = shared.metrics.status_json(
        shared.registry, draining,
        shared.wireguard ? ",\"wireguard\":" + shared.wireguard->status_json() : "");
    // Issue 13: certificates, request totals and recent errors for the status
    // table and the dashboard, spliced in before the object's closing brace.
    std::uint64_t requests = 0;
    for (const auto& n : shared.metrics.requests_by_code)
      requests += n.load(std::memory_order_relaxed);
    auto end = r.body.rfind('}');
    if (end != std::string::npos) {
      r.body.resize(end);
      r.body += ",\"version\":" + json_string(kVersion) +
                ",\"requests_total\":" + std::to_string(requests) +
                ",\"certificates\":" + certificates_json(shared) +
                ",\"recent_errors\":" + recent_events_json() + "}\n";
    }
  } else {
    r.status = 404;
    r.body = "not found\n";
  }
  return r;
}

}  // namespace hearth::edge
