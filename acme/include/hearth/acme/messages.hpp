#pragma once
// ACME resources as values (RFC 8555 section 7.1), parsed from and built as JSON
// with Boost.JSON. Parsers never throw: malformed input gives nullopt (or, for a
// problem document, a Problem that says the body was not one).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::acme {

// RFC 7807 problem document, with ACME's subproblems (RFC 8555 section 6.7.1).
struct Problem {
  std::string type;  // "urn:ietf:params:acme:error:badNonce"
  std::string detail;
  int status = 0;
  struct Sub {
    std::string type, detail, identifier;  // identifier: its value ("a.example")
  };
  std::vector<Sub> subproblems;

  // "badNonce" for ACME's own namespace, else the whole type.
  std::string short_type() const;
  std::string to_string() const;  // "type: detail; sub: ..." on one line
};
std::optional<Problem> parse_problem(std::string_view json);

struct Directory {
  std::string new_nonce, new_account, new_order, revoke_cert, key_change;
  std::string renewal_info;  // RFC 9773, empty when not offered
  std::string terms_of_service;
  bool external_account_required = false;
};
std::optional<Directory> parse_directory(std::string_view json);

struct Identifier {
  std::string type = "dns";
  std::string value;
};

struct Order {
  std::string status;  // pending ready processing valid invalid
  std::vector<Identifier> identifiers;
  std::vector<std::string> authorizations;
  std::string finalize;
  std::string certificate;
  std::optional<Problem> error;
};
std::optional<Order> parse_order(std::string_view json);

struct Challenge {
  std::string type, url, status, token;
  std::optional<Problem> error;
};

struct Authorization {
  std::string status;  // pending valid invalid deactivated expired revoked
  Identifier identifier;
  bool wildcard = false;
  std::vector<Challenge> challenges;
};
std::optional<Authorization> parse_authorization(std::string_view json);

struct Account {
  std::string status;
};
std::optional<Account> parse_account(std::string_view json);

// RFC 9773 renewalInfo: the suggested window.
struct RenewalWindow {
  std::chrono::system_clock::time_point start, end;
  std::string explanation_url;
};
std::optional<RenewalWindow> parse_renewal_info(std::string_view json);

// Payloads.
std::string new_account_payload(const std::vector<std::string>& contacts, bool only_existing,
                                const std::string& eab_jws_json);  // eab empty: none
std::string new_order_payload(const std::vector<std::string>& names, std::string_view replaces);
std::string finalize_payload(std::string_view csr_der);

}  // namespace hearth::acme
