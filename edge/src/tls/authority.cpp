#include "tls/authority.hpp"

#include <openssl/x509v3.h>

#include <algorithm>

namespace hearth::edge {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool name_covers(std::string_view name, std::string_view host) {
  if (name.empty() || host.empty()) return false;
  if (name == host) return true;
  if (name.size() > 2 && name[0] == '*' && name[1] == '.') {
    std::string_view suffix = name.substr(1);  // ".example.com"
    if (host.size() <= suffix.size()) return false;
    if (host.substr(host.size() - suffix.size()) != suffix) return false;
    std::string_view label = host.substr(0, host.size() - suffix.size());
    return !label.empty() && label.find('.') == std::string_view::npos;
  }
  return false;
}

}  // namespace

std::vector<std::string> certificate_dns_names(X509* cert) {
  std::vector<std::string> out;
  if (!cert) return out;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type == GEN_DNS) {
        const auto* s = gn->d.dNSName;
        out.push_back(
            lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                   static_cast<std::size_t>(ASN1_STRING_length(s)))));
      } else if (gn->type == GEN_IPADD) {
        // Kept in text form so an IP authority can match.
        const auto* s = gn->d.iPAddress;
        const unsigned char* p = ASN1_STRING_get0_data(s);
        int n = ASN1_STRING_length(s);
        if (n == 4) {
          out.push_back(std::to_string(p[0]) + "." + std::to_string(p[1]) + "." +
                        std::to_string(p[2]) + "." + std::to_string(p[3]));
        }
      }
    }
    GENERAL_NAMES_free(sans);
  }
  if (out.empty()) {
    X509_NAME* subject = X509_get_subject_name(cert);
    int idx = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
    if (idx >= 0) {
      ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
      out.push_back(lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                           static_cast<std::size_t>(ASN1_STRING_length(s)))));
    }
  }
  return out;
}

bool certificate_covers(const std::vector<std::string>& names, std::string_view host) {
  return std::any_of(names.begin(), names.end(),
                     [&](const std::string& n) { return name_covers(n, host); });
}

}  // namespace hearth::edge
