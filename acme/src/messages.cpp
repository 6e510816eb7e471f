#include "hearth/acme/messages.hpp"

#include <boost/json.hpp>

#include "hearth/acme/codec.hpp"

namespace hearth::acme {
namespace {

namespace json = boost::json;

std::optional<json::object> parse_object(std::string_view text) {
  boost::system::error_code ec;
  json::parse_options opt;
  opt.max_depth = 32;
  json::value v = json::parse(text, ec, {}, opt);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

std::string str(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return "";
  return std::string(it->value().as_string());
}

const json::object* obj(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_object()) return nullptr;
  return &it->value().as_object();
}

const json::array* arr(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_array()) return nullptr;
  return &it->value().as_array();
}

Identifier identifier_of(const json::object* o) {
  Identifier id;
  if (o != nullptr) {
    id.type = str(*o, "type");
    id.value = str(*o, "value");
  }
  return id;
}

Problem problem_of(const json::object& o) {
  Problem p;
  p.type = str(o, "type");
  p.detail = str(o, "detail");
  if (auto it = o.find("status"); it != o.end() && it->value().is_int64()) {
    p.status = static_cast<int>(it->value().as_int64());
  }
  if (const auto* subs = arr(o, "subproblems")) {
    for (const auto& s : *subs) {
      if (!s.is_object() || p.subproblems.size() >= 32) continue;
      const auto& so = s.as_object();
      p.subproblems.push_back(
          {str(so, "type"), str(so, "detail"), identifier_of(obj(so, "identifier")).value});
    }
  }
  return p;
}

std::optional<Problem> error_of(const json::object& o) {
  if (const auto* e = obj(o, "error")) return problem_of(*e);
  return std::nullopt;
}

}  // namespace

std::string Problem::short_type() const {
  constexpr std::string_view prefix = "urn:ietf:params:acme:error:";
  if (type.rfind(prefix, 0) == 0) return type.substr(prefix.size());
  return type;
}

std::string Problem::to_string() const {
  std::string out = short_type().empty() ? "problem" : short_type();
  if (!detail.empty()) out += ": " + detail;
  for (const auto& s : subproblems) {
    out += "; ";
    if (!s.identifier.empty()) out += s.identifier + ": ";
    constexpr std::string_view prefix = "urn:ietf:params:acme:error:";
    out += s.type.rfind(prefix, 0) == 0 ? s.type.substr(prefix.size()) : s.type;
    if (!s.detail.empty()) out += ": " + s.detail;
  }
  return out;
}

std::optional<Problem> parse_problem(std::string_view text) {
  auto o = parse_object(text);
  if (!o) return std::nullopt;
  Problem p = problem_of(*o);
  if (p.type.empty() && p.detail.empty()) return std::nullopt;
  return p;
}

std::optional<Directory> parse_directory(std::string_view text) {
  auto o = parse_object(text);
  if (!o) return std::nullopt;
  Directory d;
  d.new_nonce = str(*o, "newNonce");
  d.new_account = str(*o, "newAccount");
  d.new_order = str(*o, "newOrder");
  d.revoke_cert = str(*o, "revokeCert");
  d.key_change = str(*o, "keyChange");
  d.renewal_info = str(*o, "renewalInfo");
  if (const auto* meta = obj(*o, "meta")) {
    d.terms_of_service = str(*meta, "termsOfService");
    if (auto it = meta->find("externalAccountRequired");
        it != meta->end() && it->value().is_bool()) {
      d.external_account_required = it->value().as_bool();
    }
  }
  if (d.new_nonce.empty() || d.new_account.empty() || d.new_order.empty()) return std::nullopt;
  return d;
}

std::optional<Order> parse_order(std::string_view text) {
  auto o = parse_object(text);
  if (!o) return std::nullopt;
  Order order;
  order.status = str(*o, "status");
  order.finalize = str(*o, "finalize");
  order.certificate = str(*o, "certificate");
  order.error = error_of(*o);
  if (const auto* ids = arr(*o, "identifiers")) {
    for (const auto& v : *ids) {
      if (v.is_object()) order.identifiers.push_back(identifier_of(&v.as_object()));
    }
  }
  if (const auto* az = arr(*o, "authorizations")) {
    for (const auto& v : *az) {
      if (v.is_string() && order.authorizations.size() < 100) {
        order.authorizations.emplace_back(v.as_string());
      }
    }
  }
  if (order.status.empty()) return std::nullopt;
  return order;
}

std::optional<Authorization> parse_authorization(std::string_view text) {
  auto o = parse_object(text);
  if (!o) return std::nullopt;
  Authorization a;
  a.status = str(*o, "status");
  a.identifier = identifier_of(obj(*o, "identifier"));
  if (auto it = o->find("wildcard"); it != o->end() && it->value().is_bool()) {
    a.wildcard = it->value().as_bool();
  }
  if (const auto* chs = arr(*o, "challenges")) {
    for (const auto& v : *chs) {
      if (!v.is_object() || a.challenges.size() >= 16) continue;
      const auto& co = v.as_object();
      a.challenges.push_back(
          {str(co, "type"), str(co, "url"), str(co, "status"), str(co, "token"), error_of(co)});
    }
  }
  if (a.status.empty()) return std::nullopt;
  return a;
}

std::optional<Account> parse_account(std::string_view text) {
  auto o = parse_object(text);
  if (!o) return std::nullopt;
  return Account{str(*o, "status")};
}

std::optional<RenewalWindow> parse_renewal_info(std::string_view text) {
  auto o = parse_object(text);
  if (!o) return std::nullopt;
  const auto* w = obj(*o, "suggestedWindow");
  if (w == nullptr) return std::nullopt;
  auto start = parse_rfc3339(str(*w, "start"));
  auto end = parse_rfc3339(str(*w, "end"));
  if (!start || !end || *end < *start) return std::nullopt;
  return RenewalWindow{*start, *end, str(*o, "explanationURL")};
}

std::string new_account_payload(const std::vector<std::string>& contacts, bool only_existing,
                                const std::string& eab_jws_json) {
  json::object o;
  if (only_existing) {
    o["onlyReturnExisting"] = true;
  } else {
    o["termsOfServiceAgreed"] = true;
    json::array c;
    for (const auto& s : contacts) c.emplace_back(s);
    if (!c.empty()) o["contact"] = std::move(c);
    if (!eab_jws_json.empty()) o["externalAccountBinding"] = json::parse(eab_jws_json);
  }
  return json::serialize(o);
}

std::string new_order_payload(const std::vector<std::string>& names, std::string_view replaces) {
  json::object o;
  json::array ids;
  for (const auto& n : names) ids.push_back(json::object{{"type", "dns"}, {"value", n}});
  o["identifiers"] = std::move(ids);
  if (!replaces.empty()) o["replaces"] = replaces;
  return json::serialize(o);
}

std::string finalize_payload(std::string_view csr_der) {
  return json::serialize(json::object{{"csr", base64url_encode(csr_der)}});
}

}  // namespace hearth::acme
