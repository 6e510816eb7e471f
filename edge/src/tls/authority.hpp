#pragma once
// Which request authorities a connection's certificate covers (for 421
// Misdirected Request on HTTP/2, where browsers reuse one connection for
// every name the certificate lists). Pure matching over strings, fuzzed by
// tests/fuzz/authority_fuzz.cpp.

#include <openssl/x509.h>

#include <string>
#include <string_view>
#include <vector>

namespace hearth::edge {

// The certificate's DNS subjectAltNames, lower-cased (its subject CN only
// when there is no DNS SAN, as X509_check_host does).
std::vector<std::string> certificate_dns_names(X509* cert);

// True when `host` (already normalized: lower case, no port, no trailing dot)
// is one of `names` or matches a wildcard "*.example.com" there (one whole
// left-most label, RFC 6125 6.4.3; "*.example.com" does not cover
// "example.com" or "a.b.example.com"). An IP literal matches only itself.
bool certificate_covers(const std::vector<std::string>& names, std::string_view host);

}  // namespace hearth::edge
