// The policy checks and header steps (see policy.hpp for the order).

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "hearth/common/route_match.hpp"
#include "hearth/edge/http_rules.hpp"
#include "hearth/edge/policy.hpp"

namespace hearth::edge::policy {
namespace {

// Host specificity: exact beats every wildcard; a longer wildcard suffix
// beats a shorter one. -1: no match.
long host_rank(std::string_view pattern, std::string_view host) {
  if (pattern.starts_with("*.")) {
    return host_matches(pattern, host) ? static_cast<long>(pattern.size()) : -1;
  }
  return pattern == host ? 1'000'000 : -1;
}

std::optional<std::string> base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1 || in.size() > 4096) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != prefix[i]) return false;
  }
  return true;
}

// crypt_r needs ~32 KiB of scratch: one per thread, allocated once.
bool password_matches(const std::string& password, const std::string& hash) {
  thread_local std::unique_ptr<crypt_data> data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(password.c_str(), hash.c_str(), data.get());
  if (out == nullptr || out[0] == '*') return false;
  const std::size_t n = std::strlen(out);
  return n == hash.size() && CRYPTO_memcmp(out, hash.data(), n) == 0;
}

std::array<std::uint8_t, 32> auth_cache_key(const config::HtpasswdUser& user,
                                            std::string_view header) {
  // The digest fetched once per thread: SHA256() fetches it (under a lock) per call.
  struct Digest {
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Digest() {
      EVP_MD_CTX_free(ctx);
      EVP_MD_free(md);
    }
  };
  thread_local Digest d;
  std::array<std::uint8_t, 32> key{};
  unsigned len = 0;
  if (d.md == nullptr || d.ctx == nullptr || EVP_DigestInit_ex(d.ctx, d.md, nullptr) != 1 ||
      EVP_DigestUpdate(d.ctx, user.hash.data(), user.hash.size()) != 1 ||
      EVP_DigestUpdate(d.ctx, "\n", 1) != 1 ||
      EVP_DigestUpdate(d.ctx, header.data(), header.size()) != 1 ||
      EVP_DigestFinal_ex(d.ctx, key.data(), &len) != 1) {
    key.fill(0);  // all-zero is never remembered (see auth_remember's caller)
  }
  return key;
}

LocalReply reply(http::status status, std::string reason) {
  LocalReply r;
  r.status = status;
  r.reason = std::move(reason);
  return r;
}

// Content-Length above limit (0: unlimited). check_request_head has already
// refused a Content-Length that is not one plain decimal.
bool content_length_over(const http::request_header<>& req, std::uint64_t limit) {
  if (limit == 0) return false;
  const auto cl = req[http::field::content_length];
  if (cl.empty()) return false;
  std::uint64_t n = 0;
  for (char c : cl) {
    if (c < '0' || c > '9' || n > (UINT64_MAX - 9) / 10) return true;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n > limit;
}

enum class AuthResult { ok, missing, bad };

AuthResult check_basic(const config::BasicAuth& auth, std::string_view header,
                       std::uint64_t policy_id, const ClientInfo& client, PolicyTable& table,
                       Clock::time_point now, bool& limited) {
  header = trim(header);
  if (header.empty()) return AuthResult::missing;
  if (!iequals_prefix(header, "basic ")) return AuthResult::bad;
  auto decoded = base64_decode(trim(header.substr(6)));
  if (!decoded) return AuthResult::bad;
  const auto colon = decoded->find(':');
  if (colon == std::string::npos) return AuthResult::bad;
  const std::string_view user = std::string_view(*decoded).substr(0, colon);
  const auto it = std::find_if(auth.users.begin(), auth.users.end(),
                               [&](const config::HtpasswdUser& u) { return u.user == user; });
  // An unknown user costs what a wrong password does (a failure token and a
  // hash, against the first user's), so timing does not tell which users exist.
  if (auth.users.empty()) return AuthResult::bad;  // the parser refuses such a file
  const bool known = it != auth.users.end();
  const config::HtpasswdUser& entry = known ? *it : auth.users.front();
  const auto key = auth_cache_key(entry, header);
  const bool cacheable = known && key != std::array<std::uint8_t, 32>{};
  if (cacheable && table.auth_cached(key, now)) return AuthResult::ok;
  // Not verified lately: a client that keeps failing is refused before its
  // password costs a hash.
  const std::uint64_t failure_id = policy_id ^ 0x9e3779b97f4a7c15ull;
  if (!table.take(failure_id, client.key, kAuthFailureLimit, now).allowed) {
    limited = true;
    return AuthResult::bad;
  }
  if (password_matches(decoded->substr(colon + 1), entry.hash) && known) {
    // The token taken above was a failure allowance: give it back.
    table.refund(failure_id, client.key, kAuthFailureLimit);
    if (cacheable) table.auth_remember(key, now);
    return AuthResult::ok;
  }
  return AuthResult::bad;
}

}  // namespace

const config::Policy* match_policy(const config::EdgeConfig& cfg, std::string_view host,
                                   std::string_view match_path) {
  const config::Policy* best = nullptr;
  long best_host = -1;
  std::size_t best_path = 0;
  for (const auto& p : cfg.policies) {
    const long rank = host_rank(p.host, host);
    if (rank < 0 || !path_matches(p.path, match_path)) continue;
    const std::size_t path_len = p.path == "/" ? 0 : p.path.size();
    if (rank > best_host || (rank == best_host && path_len > best_path)) {
      best = &p;
      best_host = rank;
      best_path = path_len;
    }
  }
  if (best) return best;
  return cfg.default_policy ? &*cfg.default_policy : nullptr;
}

std::uint64_t largest_body_limit(const config::EdgeConfig& cfg) {
  std::uint64_t limit = cfg.max_body_size;
  auto widen = [&](const config::Policy& p) {
    if (!p.max_body_size || limit == 0) return;
    limit = *p.max_body_size == 0 ? 0 : std::max(limit, *p.max_body_size);
  };
  if (cfg.default_policy) widen(*cfg.default_policy);
  for (const auto& p : cfg.policies) widen(p);
  return limit;
}

ClientInfo client_info(const boost::asio::ip::address& address) {
  ClientInfo info;
  if (address.is_v4()) {
    const auto b = address.to_v4().to_bytes();
    info.address[10] = info.address[11] = 0xff;
    std::copy(b.begin(), b.end(), info.address.begin() + 12);
    info.key = info.address;
  } else {
    const auto b = address.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), info.address.begin());
    info.key = info.address;
    if (!address.to_v6().is_v4_mapped()) {
      std::fill(info.key.begin() + 8, info.key.end(), 0);  // count IPv6 per /64
    }
  }
  return info;
}

std::uint64_t policy_key(const config::Policy& policy) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : policy.id) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::optional<LocalReply> check_request(const config::Policy& policy,
                                        const http::request_header<>& req, const ClientInfo& client,
                                        PolicyTable& table, Clock::time_point now) {
  // 1. Access lists: deny wins; a non-empty allow list admits only its ranges.
  for (const auto& range : policy.deny) {
    if (range.contains(client.address)) return reply(http::status::forbidden, "denied address");
  }
  if (!policy.allow.empty() &&
      std::none_of(policy.allow.begin(), policy.allow.end(),
                   [&](const config::CidrRange& r) { return r.contains(client.address); })) {
    return reply(http::status::forbidden, "address not allowed");
  }
  // 2. Rate.
  const std::uint64_t id = policy_key(policy);
  if (policy.rate) {
    const auto t = table.take(id, client.key, *policy.rate, now);
    if (!t.allowed) {
      auto r = reply(http::status::too_many_requests, "rate limit");
      r.retry_after = t.retry_after;
      return r;
    }
  }
  // 3. Basic auth.
  if (policy.basic_auth) {
    bool limited = false;
    const auto result = check_basic(*policy.basic_auth, req[http::field::authorization], id, client,
                                    table, now, limited);
    if (result != AuthResult::ok) {
      if (limited) {
        auto r = reply(http::status::too_many_requests, "too many failed logins");
        r.retry_after = static_cast<unsigned>(1.0 / kAuthFailureLimit.per_second);
        return r;
      }
      if (result == AuthResult::bad && policy.rate) table.charge(id, client.key, *policy.rate, now);
      auto r = reply(http::status::unauthorized,
                     result == AuthResult::missing ? "no credentials" : "bad credentials");
      r.www_authenticate = "Basic realm=\"" + policy.basic_auth->realm + "\", charset=\"UTF-8\"";
      return r;
    }
  }
  // 4. Body size, when the length is known up front (a chunked body is cut by
  // the parser's limit as it streams).
  if (policy.max_body_size && content_length_over(req, *policy.max_body_size)) {
    return reply(http::status::payload_too_large, "body over max_body_size");
  }
  return std::nullopt;
}

void apply_request(const config::Policy& policy, http::request_header<>& req) {
  for (const auto& name : policy.remove_request_headers) req.erase(name);
  for (const auto& h : policy.add_request_headers) req.set(h.name, h.value);
}

void apply_response(const config::Policy& policy, http::response_header<>& res) {
  for (const auto& name : policy.remove_response_headers) res.erase(name);
  for (const auto& h : policy.add_response_headers) res.set(h.name, h.value);
  if (policy.security_headers) {
    auto set_if_absent = [&](std::string_view name, std::string_view value) {
      if (res.find(name) == res.end()) res.set(name, value);
    };
    set_if_absent("Strict-Transport-Security", policy.hsts);
    set_if_absent("X-Content-Type-Options", "nosniff");
    set_if_absent("Referrer-Policy", "strict-origin-when-cross-origin");
    set_if_absent("X-Frame-Options", "SAMEORIGIN");
  }
}

void decorate_local_reply(const config::Policy* policy, http::response<http::string_body>& res) {
  if (policy == nullptr) return;
  if (auto it = policy->error_pages.find(res.result_int()); it != policy->error_pages.end()) {
    res.body() = it->second;
    res.prepare_payload();
  }
  apply_response(*policy, res.base());
}

RequestDecision on_request_head(const config::EdgeConfig& cfg, std::string_view host,
                                http::request_header<>& req, const ClientInfo& client,
                                PolicyTable& table, Clock::time_point now) {
  RequestDecision d;
  d.body_limit = cfg.max_body_size;
  const auto normalized = normalize_target(origin_form_target(req.target()));
  if (!normalized) {
    d.policy = match_policy(cfg, host, "/");
    d.reply = reply(http::status::bad_request, "malformed request path");
    return d;
  }
  if (!req.target().empty() && req.target().front() != '/' && req.target() != "*") {
    // Absolute form: its authority is what the client addressed (RFC 9112 3.2.2).
    const std::string authority(requested_authority(req));
    req.set(http::field::host, authority);
  }
  if (req.target() != normalized->forward) req.target(normalized->forward);
  d.policy = match_policy(cfg, host, normalized->match);
  if (d.policy == nullptr) {
    if (content_length_over(req, d.body_limit)) {
      d.reply = reply(http::status::payload_too_large, "body over max_body_size");
    }
    return d;
  }
  if (d.policy->max_body_size) d.body_limit = *d.policy->max_body_size;
  d.reply = check_request(*d.policy, req, client, table, now);
  if (!d.reply && content_length_over(req, d.body_limit)) {
    d.reply = reply(http::status::payload_too_large, "body over max_body_size");
  }
  return d;
}

}  // namespace hearth::edge::policy
