// edge.toml / origin.toml -> validated EdgeConfig / OriginConfig.
//
// Every table is read through a TableReader, which remembers the keys it was
// asked for; whatever is left afterwards is an unknown key. Each check adds a
// Problem and carries on, so one run reports everything that is wrong.

#include "hearth/config/parse.hpp"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "detail.hpp"
#include "hearth/common/crypto.hpp"
#include "service_checks.hpp"

namespace hearth::config {
namespace {

constexpr std::int64_t max_workers = 1024;
constexpr std::int64_t max_tunnel_connections = 64;
constexpr std::size_t max_key_file_size = 1 << 20;

int to_int(toml::source_index index) {
  return index > static_cast<toml::source_index>(std::numeric_limits<int>::max())
             ? 0
             : static_cast<int>(index);
}

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// A value echoed in a message, quoted, on one line: control characters escaped.
std::string in_quotes(std::string_view text) {
  constexpr std::size_t max_shown = 200;
  std::string out = "\"";
  for (const char c : text.substr(0, max_shown)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      constexpr std::string_view hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  out += text.size() > max_shown ? "\"..." : "\"";
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string join_key(std::string_view prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : std::string(prefix) + "." + std::string(key);
}

std::string index_key(std::string_view prefix, std::size_t index) {
  return std::string(prefix) + "[" + std::to_string(index) + "]";
}

class Context {
 public:
  explicit Context(std::filesystem::path file)
      : file_(std::move(file)), base_dir_(detail::base_dir_of(file_)) {}

  void add(int line, int column, std::string key, std::string message) {
    problems_.push_back(Problem{file_, line, column, std::move(key), std::move(message)});
  }
  void add(const toml::source_region& where, std::string key, std::string message) {
    add(to_int(where.begin.line), to_int(where.begin.column), std::move(key), std::move(message));
  }
  // A problem with a whole table (e.g. one of its keys is missing): its line, no column.
  void add_for_table(const toml::node& table, std::string key, std::string message) {
    add(to_int(table.source().begin.line), 0, std::move(key), std::move(message));
  }

  const std::filesystem::path& base_dir() const { return base_dir_; }
  bool ok() const { return problems_.empty(); }

  std::vector<Problem> take_problems() {
    // File order; problems without a line (whole-file ones) first.
    std::stable_sort(problems_.begin(), problems_.end(), [](const Problem& a, const Problem& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return std::move(problems_);
  }

 private:
  std::filesystem::path file_;
  std::filesystem::path base_dir_;
  std::vector<Problem> problems_;
};

class TableReader {
 public:
  // `table` is null when the table itself is absent; reads then see no keys.
  TableReader(Context& ctx, const toml::table* table, std::string path)
      : ctx_(ctx), table_(table), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  std::string key_path(std::string_view key) const { return join_key(path_, key); }

  // The node for `key` (marking the key as known); reports a missing required key.
  const toml::node* find(std::string_view key, bool required = false) {
    known_.emplace(key);
    const toml::node* node = table_ != nullptr ? table_->get(key) : nullptr;
    if (node == nullptr && required && table_ != nullptr) {
      missing(key);
    }
    return node;
  }

  void missing(std::string_view key, std::string_view message = "missing required key") {
    if (table_ == nullptr) {
      return;
    }
    if (path_.empty()) {  // the root table: no line to point at
      ctx_.add(0, 0, key_path(key), std::string(message));
    } else {
      ctx_.add_for_table(*table_, key_path(key), std::string(message));
    }
  }

  void wrong_type(std::string_view key, const toml::node& node, std::string_view expected) {
    ctx_.add(node.source(), key_path(key),
             "expected " + std::string(expected) + ", got " + std::string(type_name(node.type())));
  }

  void bad_value(std::string_view key, const toml::node& node, std::string message) {
    ctx_.add(node.source(), key_path(key), std::move(message));
  }

  const toml::table* table(std::string_view key, bool required = false) {
    const toml::node* node = find(key, false);
    if (node == nullptr) {
      if (required) {
        missing(key, "missing required table [" + key_path(key) + "]");
      }
      return nullptr;
    }
    if (!node->is_table()) {
      wrong_type(key, *node, "a table");
      return nullptr;
    }
    return node->as_table();
  }

  const toml::array* array(std::string_view key, bool required = false) {
    const toml::node* node = find(key, required);
    if (node == nullptr) {
      return nullptr;
    }
    if (!node->is_array()) {
      wrong_type(key, *node, "an array");
      return nullptr;
    }
    return node->as_array();
  }

  std::optional<std::string> string(std::string_view key, bool required = false) {
    const toml::node* node = find(key, required);
    if (node == nullptr) {
      return std::nullopt;
    }
    if (!node->is_string()) {
      wrong_type(key, *node, "a string");
      return std::nullopt;
    }
    return node->as_string()->get();
  }

  std::optional<bool> boolean(std::string_view key) {
    const toml::node* node = find(key);
    if (node == nullptr) {
      return std::nullopt;
    }
    if (!node->is_boolean()) {
      wrong_type(key, *node, "true or false");
      return std::nullopt;
    }
    return node->as_boolean()->get();
  }

  template <class T>
  void integer(std::string_view key, T& out, std::int64_t min, std::int64_t max) {
    const toml::node* node = find(key);
    if (node == nullptr) {
      return;
    }
    if (!node->is_integer()) {
      wrong_type(key, *node, "an integer");
      return;
    }
    const std::int64_t value = node->as_integer()->get();
    if (value < min || value > max) {
      bad_value(key, *node,
                "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return;
    }
    out = static_cast<T>(value);
  }

  // Optional duration string; must be greater than zero. Keeps `out` when absent or bad.
  void duration(std::string_view key, Duration& out) {
    const toml::node* node = find(key);
    if (node == nullptr) {
      return;
    }
    if (!node->is_string()) {
      wrong_type(key, *node, "a duration string such as \"30s\"");
      return;
    }
    const std::string& text = node->as_string()->get();
    const auto value = parse_duration(text);
    if (!value) {
      bad_value(key, *node,
                "not a duration: " + in_quotes(text) +
                    " (a whole number and a unit: ms, s, m, h, d; e.g. \"30s\")");
      return;
    }
    if (value->count() == 0) {
      bad_value(key, *node, "must be greater than 0");
      return;
    }
    out = *value;
  }

  // Optional size: an integer (bytes) or a string such as "100MB" / "64KiB".
  template <class T>
  void size(std::string_view key, T& out, std::uint64_t min) {
    const toml::node* node = find(key);
    if (node == nullptr) {
      return;
    }
    std::optional<std::uint64_t> value;
    if (node->is_integer()) {
      const std::int64_t n = node->as_integer()->get();
      if (n < 0) {
        bad_value(key, *node, "must not be negative");
        return;
      }
      value = static_cast<std::uint64_t>(n);
    } else if (node->is_string()) {
      const std::string& text = node->as_string()->get();
      value = parse_size(text);
      if (!value) {
        bad_value(key, *node,
                  "not a size: " + in_quotes(text) +
                      " (bytes, or a number with KB, MB, GB, KiB, MiB or GiB; e.g. \"100MB\")");
        return;
      }
    } else {
      wrong_type(key, *node, "a size (integer bytes or a string such as \"100MB\")");
      return;
    }
    constexpr std::uint64_t max = std::numeric_limits<T>::max();
    if (*value < min || *value > max) {
      bad_value(
          key, *node,
          "must be between " + std::to_string(min) + " and " + std::to_string(max) + " bytes");
      return;
    }
    out = static_cast<T>(*value);
  }

  std::optional<Endpoint> endpoint(std::string_view key, bool required, bool allow_port_zero) {
    const toml::node* node = find(key, required);
    if (node == nullptr) {
      return std::nullopt;
    }
    if (!node->is_string()) {
      wrong_type(key, *node, "an address string such as \"0.0.0.0:443\"");
      return std::nullopt;
    }
    const std::string& text = node->as_string()->get();
    auto value = parse_endpoint(text);
    if (!value) {
      bad_value(key, *node,
                "not a valid address: " + in_quotes(text) +
                    " (host:port, with an IPv6 host in brackets, e.g. \"[::1]:443\")");
      return std::nullopt;
    }
    if (value->port == 0 && !allow_port_zero) {
      bad_value(key, *node, "port 0 is not allowed here: " + in_quotes(text));
      return std::nullopt;
    }
    return value;
  }

  // A non-empty path string, resolved against the config file's directory.
  std::optional<std::filesystem::path> path_value(std::string_view key, bool required) {
    auto text = string(key, required);
    if (!text) {
      return std::nullopt;
    }
    if (text->empty()) {
      bad_value(key, *find(key), "must not be empty");
      return std::nullopt;
    }
    return detail::resolve(ctx_.base_dir(), *text);
  }

  // A path that must name a readable file.
  std::optional<std::filesystem::path> readable_file(std::string_view key, bool required) {
    auto file = path_value(key, required);
    if (!file) {
      return std::nullopt;
    }
    if (auto why = detail::unreadable_reason(*file)) {
      bad_value(key, *find(key), std::move(*why));
      return std::nullopt;
    }
    return file;
  }

  // Reports every key in the table that no read asked for.
  void reject_unknown_keys() {
    if (table_ == nullptr) {
      return;
    }
    for (auto&& [key, node] : *table_) {
      const std::string_view name = key.str();
      if (known_.count(name) != 0) {
        continue;
      }
      std::string message = "unknown key";
      std::string_view best;
      std::size_t best_distance = 3;
      for (const std::string& candidate : known_) {
        const std::size_t d = edit_distance(name, candidate);
        if (d < best_distance && d * 2 <= candidate.size()) {
          best = candidate;
          best_distance = d;
        }
      }
      if (!best.empty()) {
        message += " (did you mean " + in_quotes(best) + "?)";
      }
      // Point at the key itself; a table header's key region may be empty, then use the node.
      const toml::source_region& where =
          key.source().begin.line != 0 ? key.source() : node.source();
      ctx_.add(where, key_path(name), std::move(message));
    }
  }

 private:
  Context& ctx_;
  const toml::table* table_;
  std::string path_;
  std::set<std::string, std::less<>> known_;
};

// Array elements that must be tables: calls fn(reader, index) for each, reports the others.
template <class Fn>
void for_each_table(TableReader& parent, std::string_view key, const toml::array& array,
                    Context& ctx, Fn&& fn) {
  for (std::size_t i = 0; i < array.size(); ++i) {
    const toml::node& element = array[i];
    const std::string path = index_key(parent.key_path(key), i);
    if (!element.is_table()) {
      ctx.add(element.source(), path,
              "expected a table, got " + std::string(type_name(element.type())));
      continue;
    }
    TableReader reader(ctx, element.as_table(), path);
    fn(reader, i);
    reader.reject_unknown_keys();
  }
}

// hostnames / host: a valid exact or "*.suffix" pattern, returned in lower case.
std::optional<std::string> hostname_pattern(const toml::node& node, Context& ctx,
                                            const std::string& path) {
  if (!node.is_string()) {
    ctx.add(node.source(), path, "expected a string, got " + std::string(type_name(node.type())));
    return std::nullopt;
  }
  const std::string& text = node.as_string()->get();
  if (!valid_hostname_pattern(text)) {
    ctx.add(node.source(), path,
            "not a valid hostname pattern: " + in_quotes(text) +
                " (a DNS name such as \"app.example.com\", or \"*.example.com\")");
    return std::nullopt;
  }
  return detail::to_lower(text);
}

// The required `host` of a [[routes]] or [[policies]] entry, as hostname_pattern() reads it.
std::optional<std::string> required_host(TableReader& r, Context& ctx) {
  const toml::node* host = r.find("host", true);
  if (host == nullptr) return std::nullopt;
  return hostname_pattern(*host, ctx, r.key_path("host"));
}

void check_order(TableReader& reader, std::string_view smaller_key, Duration smaller,
                 std::string_view larger_key, Duration larger, bool strict, Context& ctx,
                 const toml::table* table) {
  const bool bad = strict ? !(smaller < larger) : !(smaller <= larger);
  if (!bad) {
    return;
  }
  const std::string message = "must be " + std::string(strict ? "less than" : "at most") + " " +
                              reader.key_path(larger_key);
  if (const toml::node* node = reader.find(smaller_key)) {
    reader.bad_value(smaller_key, *node, message);
  } else if (const toml::node* other = reader.find(larger_key)) {
    reader.bad_value(smaller_key, *other, message);
  } else if (table != nullptr) {
    ctx.add_for_table(*table, reader.key_path(smaller_key), message);
  }
}

template <class Config>
LoadResult<Config> finish(Context& ctx, Config&& config) {
  LoadResult<Config> result;
  if (ctx.ok()) {
    result.config = std::forward<Config>(config);
  }
  result.problems = ctx.take_problems();
  return result;
}

// toml::parse, turning a syntax error into the only Problem.
std::optional<toml::table> parse_toml(std::string_view text, const std::filesystem::path& source,
                                      Context& ctx) {
  try {
    return toml::parse(text, std::string_view(source.native()));
  } catch (const toml::parse_error& e) {
    ctx.add(e.source(), "", std::string(e.description()));
  }
  return std::nullopt;
}

// Issue 13 (run it like a service): admin_token_file, required when
// listen_admin is not a loopback address.
void read_admin_token(TableReader& t, const std::optional<Endpoint>& listen_admin,
                      std::filesystem::path& file_out, std::string& token_out) {
  if (auto file = t.readable_file("admin_token_file", false)) {
    const toml::node& node = *t.find("admin_token_file");
    if (auto why = detail::read_admin_token(*file, token_out)) {
      t.bad_value("admin_token_file", node, std::move(*why));
    } else if (auto mode = detail::secret_file_mode_problem(*file)) {
      t.bad_value("admin_token_file", node, std::move(*mode));
    } else {
      file_out = *file;
    }
  } else if (listen_admin && !detail::is_loopback(*listen_admin) &&
             t.find("admin_token_file") == nullptr) {
    t.bad_value("listen_admin", *t.find("listen_admin"),
                listen_admin->to_string() +
                    " is not a loopback address: set admin_token_file (a bearer token the admin "
                    "listener then requires on every path), or listen on 127.0.0.1");
  }
}

// [acme] (issue 12: managed certificates). Kept in one block.
void read_acme(Context& ctx, TableReader& top, EdgeConfig& cfg) {
  const toml::table* table = top.table("acme");
  if (table == nullptr) {
    return;
  }
  TableReader r(ctx, table, "acme");
  AcmeConfig acme;
  if (auto email = r.string("email")) {
    const auto at = email->find('@');
    if (at == std::string::npos || at == 0 || at + 1 == email->size() ||
        std::any_of(email->begin(), email->end(), [](char c) {
          return static_cast<unsigned char>(c) <= ' ' || c == ',' || c == '<' || c == '>';
        })) {
      r.bad_value("email", *r.find("email"), "not an email address: " + in_quotes(*email));
    } else {
      acme.email = *email;
    }
  }
  if (auto dir = r.string("directory")) {
    if (*dir == "staging") {
      acme.directory = "https://acme-staging-v02.api.letsencrypt.org/directory";
    } else if (*dir == "production") {
      acme.directory = "https://acme-v02.api.letsencrypt.org/directory";
    } else if (dir->rfind("https://", 0) != 0 || dir->size() <= 8 ||
               std::any_of(dir->begin(), dir->end(),
                           [](char c) { return static_cast<unsigned char>(c) <= ' '; })) {
      r.bad_value("directory", *r.find("directory"),
                  "not an https:// URL, \"staging\" or \"production\": " + in_quotes(*dir));
    } else {
      acme.directory = *dir;
    }
  }
  if (auto file = r.readable_file("ca_file", false)) {
    acme.ca_file = *file;
  }
  if (const toml::array* list = r.array("challenges")) {
    acme.challenges.clear();
    if (list->empty()) {
      r.bad_value("challenges", *list, "must list at least one challenge type");
    }
    for (std::size_t i = 0; i < list->size(); ++i) {
      const toml::node& node = (*list)[i];
      const auto* text = node.as_string();
      const std::string path = index_key(r.key_path("challenges"), i);
      if (text == nullptr ||
          (text->get() != "http-01" && text->get() != "tls-alpn-01" && text->get() != "dns-01")) {
        ctx.add(node.source(), path, "expected \"tls-alpn-01\", \"http-01\" or \"dns-01\"");
      } else if (std::find(acme.challenges.begin(), acme.challenges.end(), text->get()) !=
                 acme.challenges.end()) {
        ctx.add(node.source(), path, "listed twice: " + in_quotes(text->get()));
      } else {
        acme.challenges.push_back(text->get());
      }
    }
  }
  const auto has = [&](std::string_view type) {
    return std::find(acme.challenges.begin(), acme.challenges.end(), type) != acme.challenges.end();
  };
  if (has("http-01") && !has("tls-alpn-01") && !has("dns-01") && !cfg.listen_http &&
      r.find("challenges") != nullptr) {
    r.bad_value("challenges", *r.find("challenges"),
                "http-01 needs [edge] listen_http (the CA connects to port 80)");
  }
  if (auto type = r.string("key_type")) {
    if (*type != "ecdsa-p256" && *type != "rsa-2048") {
      r.bad_value("key_type", *r.find("key_type"),
                  "expected \"ecdsa-p256\" or \"rsa-2048\", got " + in_quotes(*type));
    } else {
      acme.key_type = *type;
    }
  }
  if (r.find("renew_before") != nullptr) {
    Duration before{};
    r.duration("renew_before", before);
    if (before.count() > 0) {
      acme.renew_before = before;
    }
  }
  r.duration("retry_base", acme.retry_base);
  r.duration("dns_hook_timeout", acme.dns_hook_timeout);
  auto kid = r.string("eab_kid");
  auto key_file = r.readable_file("eab_hmac_key_file", false);
  if (kid.has_value() != (r.find("eab_hmac_key_file") != nullptr)) {
    const std::string_view given = kid ? "eab_kid" : "eab_hmac_key_file";
    r.bad_value(given, *r.find(given), "eab_kid and eab_hmac_key_file go together");
  } else if (kid && key_file) {
    auto read = detail::read_file(*key_file, max_key_file_size);
    std::string key = read.text ? *read.text : "";
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ')) {
      key.pop_back();
    }
    const bool b64 = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '=';
    });
    if (kid->empty()) {
      r.bad_value("eab_kid", *r.find("eab_kid"), "must not be empty");
    } else if (!b64) {
      r.bad_value("eab_hmac_key_file", *r.find("eab_hmac_key_file"),
                  "expected the CA's base64url HMAC key in " + key_file->string());
    } else {
      acme.eab_kid = *kid;
      acme.eab_hmac_key = key;
    }
  }
  if (auto hook = r.path_value("dns_hook", false)) {
    if (auto why = detail::unreadable_reason(*hook)) {
      r.bad_value("dns_hook", *r.find("dns_hook"), std::move(*why));
    } else if (::access(hook->c_str(), X_OK) != 0) {
      r.bad_value("dns_hook", *r.find("dns_hook"), "not executable: " + hook->string());
    } else {
      acme.dns_hook = *hook;
    }
  }
  if (has("dns-01") && r.find("dns_hook") == nullptr) {
    r.bad_value("challenges", *r.find("challenges"), "dns-01 needs acme.dns_hook");
  }
  r.reject_unknown_keys();
  cfg.acme = std::move(acme);
}

// --- [wireguard] (issue 10: the WireGuard link) ------------------------------------------

constexpr std::int64_t max_keepalive_seconds = 65535;  // WireGuard's u16

bool valid_interface_name(std::string_view name) {
  // IFNAMSIZ - 1 characters the kernel and wireguard-go's socket path both accept.
  return !name.empty() && name.size() <= 15 && name != "." && name != ".." &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
         });
}

void wg_interface(TableReader& r, std::string& out) {
  if (auto name = r.string("interface")) {
    if (valid_interface_name(*name)) {
      out = *name;
    } else {
      r.bad_value("interface", *r.find("interface"),
                  "not a valid interface name: " + in_quotes(*name) +
                      " (1 to 15 letters, digits, '-', '_' or '.')");
    }
  }
}

std::optional<wg::IpPrefix> wg_prefix(TableReader& r, std::string_view key, bool required) {
  auto text = r.string(key, required);
  if (!text) return std::nullopt;
  auto prefix = wg::parse_prefix(*text);
  if (!prefix) {
    r.bad_value(
        key, *r.find(key),
        "not an address with a prefix length: " + in_quotes(*text) + " (e.g. \"10.77.0.1/24\")");
  }
  return prefix;
}

// A base64 WireGuard key, inline.
std::optional<wg::Key> wg_key(TableReader& r, std::string_view key, bool required) {
  auto text = r.string(key, required);
  if (!text) return std::nullopt;
  auto k = wg::key_from_base64(*text);
  if (!k) {
    r.bad_value(key, *r.find(key),
                "not a WireGuard key (44 characters of base64, as `wg genkey` prints)");
  }
  return k;
}

// A key file: one base64 key (what `wg genkey` writes), surrounding whitespace ignored.
std::optional<wg::Key> wg_key_file(TableReader& r, std::string_view key,
                                   const std::filesystem::path& file) {
  auto read = detail::read_file(file, 4096);
  if (!read.text) {
    r.bad_value(key, *r.find(key), read.error);
    return std::nullopt;
  }
  std::string_view text = *read.text;
  constexpr std::string_view space = " \t\r\n";
  const std::size_t first = text.find_first_not_of(space);
  text = first == std::string_view::npos
             ? std::string_view()
             : text.substr(first, text.find_last_not_of(space) - first + 1);
  auto k = wg::key_from_base64(text);
  if (!k) {
    r.bad_value(key, *r.find(key),
                "not a WireGuard private key (one line of base64): " + file.string());
  }
  return k;
}

void read_edge_wireguard(Context& ctx, TableReader& top, EdgeConfig& cfg) {
  const toml::table* table = top.table("wireguard");
  if (table == nullptr) return;
  TableReader r(ctx, table, "wireguard");
  EdgeWireguard w;
  wg_interface(r, w.interface);
  r.integer("listen_port", w.listen_port, 1, 65535);
  if (auto address = wg_prefix(r, "address", true)) {
    const std::size_t bits = address->address.size() * 8;
    if (address->cidr + 2 > static_cast<int>(bits)) {
      r.bad_value("address", *r.find("address"),
                  "the prefix leaves no addresses for origins: " + address->to_string() +
                      " (e.g. \"10.77.0.1/24\")");
    } else if (address->network().address == address->address) {
      r.bad_value("address", *r.find("address"),
                  "is the network address of its subnet; give the edge's own address in "
                  "it, e.g. \"10.77.0.1/24\"");
    } else {
      w.address = *address;
    }
  }
  if (auto file = r.path_value("private_key_file", false)) {
    w.private_key_file = *file;
    std::error_code ec;
    // Created at start when missing; when present it must be a key.
    if (std::filesystem::exists(*file, ec)) wg_key_file(r, "private_key_file", *file);
  } else {
    w.private_key_file = cfg.state_dir / "wireguard.key";
  }
  if (auto persist = r.boolean("persist")) w.persist = *persist;
  r.reject_unknown_keys();
  cfg.wireguard = std::move(w);
}

void read_origin_wireguard(Context& ctx, TableReader& top, OriginConfig& cfg,
                           const toml::node* over_wireguard) {
  const toml::table* table = top.table("wireguard");
  if (table == nullptr) {
    if (cfg.tunnel_over_wireguard && over_wireguard != nullptr) {
      ctx.add(over_wireguard->source(), "origin.tunnel_over_wireguard",
              "needs a [wireguard] section (hearth-origin join writes it when the edge has one)");
    }
    return;
  }
  TableReader r(ctx, table, "wireguard");
  OriginWireguard w;
  wg_interface(r, w.interface);
  if (auto address = wg_prefix(r, "address", true)) w.address = *address;
  r.duration("persistent_keepalive", w.persistent_keepalive);
  if (w.persistent_keepalive > std::chrono::seconds(max_keepalive_seconds)) {
    r.bad_value("persistent_keepalive", *r.find("persistent_keepalive"),
                "must be at most " + std::to_string(max_keepalive_seconds) + "s");
  }
  if (const toml::array* ips = r.array("allowed_ips")) {
    for (std::size_t i = 0; i < ips->size(); ++i) {
      const toml::node& node = (*ips)[i];
      const std::string path = index_key(r.key_path("allowed_ips"), i);
      const auto* text = node.as_string();
      auto prefix = text ? wg::parse_prefix(text->get(), /*allow_bare=*/true) : std::nullopt;
      if (!prefix) {
        ctx.add(node.source(), path, "not an address or prefix such as \"192.168.1.0/24\"");
        continue;
      }
      w.allowed_ips.push_back(*prefix);
    }
  } else if (w.address.address.family != 0) {
    w.allowed_ips.push_back(
        wg::IpPrefix{w.address.address, static_cast<std::uint8_t>(w.address.address.size() * 8)});
  }
  // The private key: private_key_file or inline private_key, exactly one.
  const toml::node* file_node = r.find("private_key_file");
  const toml::node* inline_node = r.find("private_key");
  if (file_node != nullptr && inline_node != nullptr) {
    r.bad_value("private_key", *inline_node,
                "give either private_key_file or private_key, not both");
  } else if (file_node == nullptr && inline_node == nullptr) {
    r.missing("private_key_file", "missing required key (or an inline `private_key`)");
  } else if (file_node != nullptr) {
    if (auto file = r.path_value("private_key_file", true)) {
      if (auto k = wg_key_file(r, "private_key_file", *file)) {
        w.private_key = *k;
        w.private_key_file = *file;
      }
    }
  } else if (auto k = wg_key(r, "private_key", true)) {
    w.private_key = *k;
  }
  if (auto k = wg_key(r, "edge_public_key", true)) w.edge_public_key = *k;
  if (auto ep = r.endpoint("edge_endpoint", true, /*allow_port_zero=*/false)) w.edge_endpoint = *ep;
  if (auto text = r.string("edge_address", true)) {
    if (auto ip = wg::parse_ip(*text)) {
      w.edge_address = *ip;
    } else {
      r.bad_value("edge_address", *r.find("edge_address"),
                  "not an IP address: " + in_quotes(*text) + " (the edge's WireGuard address)");
    }
  }
  if (auto persist = r.boolean("persist")) w.persist = *persist;
  r.reject_unknown_keys();
  cfg.wireguard = std::move(w);
}

// --- end of [wireguard] -------------------------------------------------------------------

// ---- Policies (issue 9): [policy] (the default) and [[policies]] ---------------------
// One contiguous block: value checks live in policy_values.cpp, the engine in
// edge/src/policy/. Every [[policies]] entry starts as a copy of [policy].

bool policy_header_name_ok(std::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  for (char c : name) {
    const bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!tchar) return false;
  }
  // Framing and hop-by-hop headers are the proxy's business, not a policy's.
  static constexpr std::string_view reserved[] = {
      "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
      "host",           "proxy-connection"};
  const std::string lower = detail::to_lower(name);
  return std::find(std::begin(reserved), std::end(reserved), lower) == std::end(reserved);
}

bool policy_header_value_ok(std::string_view value) {
  return value.size() <= 8192 && std::none_of(value.begin(), value.end(), [](char c) {
           const auto u = static_cast<unsigned char>(c);
           return (u < 0x20 && c != '\t') || u == 0x7f;
         });
}

void read_policy_cidrs(TableReader& r, std::string_view key, Context& ctx,
                       std::vector<CidrRange>& out) {
  const toml::array* list = r.array(key);
  if (list == nullptr) return;
  out.clear();  // an explicit list replaces the inherited one ([] clears it)
  for (std::size_t i = 0; i < list->size(); ++i) {
    const toml::node& node = (*list)[i];
    const std::string path = index_key(r.key_path(key), i);
    if (!node.is_string()) {
      ctx.add(node.source(), path, "expected a CIDR string such as \"192.0.2.0/24\"");
      continue;
    }
    const std::string& text = node.as_string()->get();
    if (auto range = parse_cidr(text)) {
      out.push_back(std::move(*range));
    } else {
      ctx.add(node.source(), path,
              "not a CIDR range: " + in_quotes(text) +
                  " (\"192.0.2.0/24\", \"2001:db8::/32\" or one address; host bits zero)");
    }
  }
}

void read_policy_header_values(TableReader& r, std::string_view key, Context& ctx,
                               std::vector<HeaderValue>& out) {
  const toml::table* table = r.table(key);
  if (table == nullptr) return;
  out.clear();
  for (auto&& [name, node] : *table) {
    const std::string path = join_key(r.key_path(key), name.str());
    if (!policy_header_name_ok(name.str())) {
      ctx.add(node.source(), path, "not a header name a policy may set: " + in_quotes(name.str()));
    } else if (!node.is_string()) {
      ctx.add(node.source(), path, "expected a string value");
    } else if (!policy_header_value_ok(node.as_string()->get())) {
      ctx.add(node.source(), path, "header value with control characters or over 8 KiB");
    } else {
      out.push_back(HeaderValue{std::string(name.str()), node.as_string()->get()});
    }
  }
}

void read_policy_header_names(TableReader& r, std::string_view key, Context& ctx,
                              std::vector<std::string>& out) {
  const toml::array* list = r.array(key);
  if (list == nullptr) return;
  out.clear();
  for (std::size_t i = 0; i < list->size(); ++i) {
    const toml::node& node = (*list)[i];
    const std::string path = index_key(r.key_path(key), i);
    if (!node.is_string() || !policy_header_name_ok(node.as_string()->get())) {
      ctx.add(node.source(), path, "expected a header name a policy may remove");
      continue;
    }
    out.push_back(detail::to_lower(node.as_string()->get()));
  }
}

// The keys every policy table may hold (not host/path, which only [[policies]] has).
void read_policy_keys(TableReader& r, Context& ctx, Policy& p) {
  if (auto rate = r.string("rate")) {
    if (*rate == "off") {
      p.rate.reset();
    } else if (auto per_second = parse_rate(*rate)) {
      RateLimit limit;
      limit.per_second = *per_second;
      // Default burst: one second's worth (at least 1).
      limit.burst = static_cast<std::uint32_t>(std::max(1.0, std::ceil(*per_second)));
      p.rate = limit;
    } else {
      r.bad_value("rate", *r.find("rate"),
                  "not a rate: " + in_quotes(*rate) +
                      " (requests per second, minute or hour: \"10/s\", \"100/m\"; or \"off\")");
    }
  }
  if (const toml::node* burst = r.find("burst")) {
    std::uint32_t value = 0;
    r.integer("burst", value, 1, 1'000'000);
    if (value != 0) {
      if (p.rate) {
        p.rate->burst = value;
      } else {
        r.bad_value("burst", *burst, "burst needs a rate");
      }
    }
  }
  if (auto on = r.boolean("security_headers")) p.security_headers = *on;
  if (auto hsts = r.string("hsts")) {
    if (hsts->empty() || !policy_header_value_ok(*hsts) || !hsts->starts_with("max-age=")) {
      r.bad_value("hsts", *r.find("hsts"),
                  "not a Strict-Transport-Security value: " + in_quotes(*hsts) +
                      " (e.g. \"max-age=31536000; includeSubDomains\")");
    } else {
      p.hsts = *hsts;
    }
  }
  if (auto preload = r.boolean("hsts_preload");
      preload && *preload && p.hsts.find("preload") == std::string::npos) {
    p.hsts += "; preload";
  }
  if (auto realm = r.string("basic_auth_realm")) {
    if (realm->empty() || realm->find('"') != std::string::npos ||
        realm->find('\\') != std::string::npos || !policy_header_value_ok(*realm)) {
      r.bad_value("basic_auth_realm", *r.find("basic_auth_realm"),
                  "a realm is 1+ printable characters without quotes or backslashes");
    } else if (p.basic_auth) {
      p.basic_auth->realm = *realm;
    }
  }
  if (const toml::node* node = r.find("basic_auth_file")) {
    if (node->is_string() && node->as_string()->get().empty()) {
      p.basic_auth.reset();  // "" turns off an inherited basic_auth_file
    } else if (auto file = r.readable_file("basic_auth_file", false)) {
      auto read = detail::read_file(*file, 4u << 20);
      if (!read.text) {
        r.bad_value("basic_auth_file", *node, read.error);
      } else {
        auto parsed = parse_htpasswd(*read.text);
        if (parsed.error) {
          // file:line of the htpasswd file, and the key that named it.
          ctx.add(to_int(node->source().begin.line), to_int(node->source().begin.column),
                  r.key_path("basic_auth_file"),
                  file->string() + ":" + std::to_string(parsed.error->line) + ": " +
                      parsed.error->message);
        } else if (parsed.users.empty()) {
          r.bad_value("basic_auth_file", *node, file->string() + ": no users");
        } else {
          BasicAuth auth;
          auth.file = *file;
          if (p.basic_auth) auth.realm = p.basic_auth->realm;
          auth.users = std::move(parsed.users);
          p.basic_auth = std::move(auth);
          if (auto realm = r.string("basic_auth_realm"); realm && !realm->empty()) {
            p.basic_auth->realm = *realm;
          }
        }
      }
    }
  }
  read_policy_cidrs(r, "allow", ctx, p.allow);
  read_policy_cidrs(r, "deny", ctx, p.deny);
  if (r.find("max_body_size") != nullptr) {
    std::uint64_t size = p.max_body_size.value_or(0);
    r.size("max_body_size", size, 0);
    p.max_body_size = size;
  }
  const auto duration = [&](std::string_view key, std::optional<Duration>& out) {
    if (r.find(key) == nullptr) return;
    Duration value = out.value_or(Duration::zero());
    r.duration(key, value);
    if (value.count() > 0) out = value;
  };
  duration("response_header_timeout", p.response_header_timeout);
  duration("idle_timeout", p.idle_timeout);
  duration("websocket_idle_timeout", p.websocket_idle_timeout);
  read_policy_header_values(r, "add_response_headers", ctx, p.add_response_headers);
  read_policy_header_names(r, "remove_response_headers", ctx, p.remove_response_headers);
  read_policy_header_values(r, "add_request_headers", ctx, p.add_request_headers);
  read_policy_header_names(r, "remove_request_headers", ctx, p.remove_request_headers);
  if (const toml::table* pages = r.table("error_pages")) {
    p.error_pages.clear();
    for (auto&& [status, node] : *pages) {
      const std::string path = join_key(r.key_path("error_pages"), status.str());
      unsigned code = 0;
      const std::string_view s = status.str();
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), code);
      if (ec != std::errc() || end != s.data() + s.size() || code < 400 || code > 599) {
        ctx.add(node.source(), path, "error page keys are status codes 400..599");
        continue;
      }
      if (!node.is_string() || node.as_string()->get().empty()) {
        ctx.add(node.source(), path, "expected the path of an HTML file");
        continue;
      }
      const auto file = detail::resolve(ctx.base_dir(), node.as_string()->get());
      auto read = detail::read_file(file, 1u << 20);
      if (!read.text) {
        ctx.add(node.source(), path, read.error);
        continue;
      }
      p.error_pages[code] = std::move(*read.text);
    }
  }
}

// [edge] connection limits (issue 9), read into the [edge] table's reader.
void read_connection_limits(TableReader& edge, EdgeConfig& cfg) {
  edge.integer("max_connections_per_ip", cfg.max_connections_per_ip, 1,
               std::numeric_limits<std::uint32_t>::max());
  edge.integer("max_tracked_clients", cfg.max_tracked_clients, 16, 1 << 24);
  const auto rate = [&](std::string_view key, std::string_view burst_key,
                        std::optional<RateLimit>& out) {
    if (auto text = edge.string(key)) {
      if (*text == "off") {
        out.reset();
      } else if (auto per_second = parse_rate(*text)) {
        out = RateLimit{*per_second,
                        static_cast<std::uint32_t>(std::max(1.0, std::ceil(*per_second)))};
      } else {
        edge.bad_value(
            key, *edge.find(key),
            "not a rate: " + in_quotes(*text) + " (e.g. \"20/s\", \"600/m\" or \"off\")");
      }
    }
    if (const toml::node* node = edge.find(burst_key)) {
      std::uint32_t burst = 0;
      edge.integer(burst_key, burst, 1, 1'000'000);
      if (burst != 0 && out) {
        out->burst = burst;
      } else if (burst != 0) {
        edge.bad_value(burst_key, *node, "needs " + std::string(key));
      }
    }
  };
  rate("connection_rate_per_ip", "connection_burst_per_ip", cfg.connection_rate_per_ip);
  rate("max_connection_rate", "max_connection_burst", cfg.max_connection_rate);
  if (auto policy = edge.string("tls_policy")) {
    if (*policy == "intermediate") {
      cfg.tls_policy = EdgeConfig::TlsPolicy::intermediate;
    } else if (*policy == "modern") {
      cfg.tls_policy = EdgeConfig::TlsPolicy::modern;
    } else {
      edge.bad_value("tls_policy", *edge.find("tls_policy"),
                     "expected \"intermediate\" or \"modern\", got " + in_quotes(*policy));
    }
  }
  if (auto tickets = edge.boolean("session_tickets")) cfg.session_tickets = *tickets;
}

void read_policies(Context& ctx, TableReader& top, EdgeConfig& cfg) {
  Policy defaults;
  defaults.id = "default";
  if (const toml::table* table = top.table("policy")) {
    TableReader r(ctx, table, "policy");
    defaults.line = to_int(table->source().begin.line);
    read_policy_keys(r, ctx, defaults);
    r.reject_unknown_keys();
    cfg.default_policy = defaults;
  }
  const toml::array* list = top.array("policies");
  if (list == nullptr) return;
  std::map<std::pair<std::string, std::string>, int> seen;  // (host, path) -> line
  for_each_table(top, "policies", *list, ctx, [&](TableReader& r, std::size_t index) {
    Policy p = defaults;
    p.line = to_int((*list)[index].source().begin.line);
    bool ok = true;
    if (auto host = required_host(r, ctx)) {
      p.host = std::move(*host);
    } else {
      ok = false;
    }
    if (auto path = r.string("path")) {
      const bool clean = std::none_of(path->begin(), path->end(), [](char c) {
        return static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '?' || c == '#' ||
               c == '%' || c == '\\';
      });
      if (path->empty() || path->front() != '/' || !clean ||
          path->find("//") != std::string::npos || path->find("/./") != std::string::npos ||
          path->find("/../") != std::string::npos || path->ends_with("/.") ||
          path->ends_with("/..")) {
        r.bad_value("path", *r.find("path"),
                    "not a normalized path prefix: " + in_quotes(*path) +
                        " (starts with '/'; no spaces, '?', '#', '%', '\\', '//' or dot segments)");
        ok = false;
      } else {
        p.path = std::move(*path);
      }
    }
    read_policy_keys(r, ctx, p);
    if (!ok) return;
    p.id = p.host + " " + p.path;
    if (auto [it, inserted] = seen.emplace(std::pair(p.host, p.path), p.line); !inserted) {
      ctx.add_for_table((*list)[index], r.path(),
                        "duplicate policy for host " + in_quotes(p.host) + " path " +
                            in_quotes(p.path) + " (first defined at line " +
                            std::to_string(it->second) + ")");
      return;
    }
    cfg.policies.push_back(std::move(p));
  });
}
// ---- end of policies ----------------------------------------------------------------

void read_edge(Context& ctx, const toml::table& root, EdgeConfig& cfg) {
  TableReader top(ctx, &root, "");

  // [edge]
  const toml::table* edge_table = top.table("edge", /*required=*/true);
  TableReader edge(ctx, edge_table, "edge");
  if (edge_table != nullptr) {
    std::vector<std::pair<std::string_view, Endpoint>> listeners;
    // The client listeners may be tables, for what sits in front of them:
    // listen_https = { address = "0.0.0.0:443", proxy_protocol = true, trusted_proxies = [...] }
    struct ListenerTable {
      std::optional<bool> proxy_protocol;
      std::optional<std::vector<CidrRange>> trusted_proxies;
      const toml::node* proxy_node = nullptr;  // for messages
    };
    std::map<std::string_view, ListenerTable> listener_tables;
    const auto listener = [&](std::string_view key, bool required) {
      std::optional<Endpoint> ep;
      const toml::node* node = edge.find(key);
      if (node != nullptr && node->is_table() && (key == "listen_https" || key == "listen_http")) {
        TableReader sub(ctx, node->as_table(), edge.key_path(key));
        ep = sub.endpoint("address", true, /*allow_port_zero=*/true);
        ListenerTable t;
        t.proxy_protocol = sub.boolean("proxy_protocol");
        if (sub.find("trusted_proxies") != nullptr) {
          t.trusted_proxies.emplace();
          read_policy_cidrs(sub, "trusted_proxies", ctx, *t.trusted_proxies);
        }
        t.proxy_node = sub.find("proxy_protocol");
        sub.reject_unknown_keys();
        listener_tables[key] = std::move(t);
      } else {
        ep = edge.endpoint(key, required, /*allow_port_zero=*/true);
      }
      if (!ep) {
        return ep;
      }
      for (const auto& [other_key, other] : listeners) {
        if (ep->port != 0 && *ep == other) {
          edge.bad_value(key, *edge.find(key),
                         "same address as " + edge.key_path(other_key) + ": " + ep->to_string());
        }
      }
      listeners.emplace_back(key, *ep);
      return ep;
    };
    if (auto ep = listener("listen_https", true)) {
      cfg.listen_https = *ep;
    }
    cfg.listen_http = listener("listen_http", false);
    if (auto ep = listener("listen_tunnel", true)) {
      cfg.listen_tunnel = *ep;
    }
    cfg.listen_admin = listener("listen_admin", false);
    if (auto dir = edge.path_value("state_dir", true)) {
      cfg.state_dir = *dir;
      if (auto why = detail::state_dir_problem(*dir)) {  // issue 13: what run would trip on
        edge.bad_value("state_dir", *edge.find("state_dir"), std::move(*why));
      }
    }
    edge.integer("workers", cfg.workers, 0, max_workers);
    edge.duration("handshake_timeout", cfg.handshake_timeout);
    edge.duration("header_timeout", cfg.header_timeout);
    edge.duration("idle_timeout", cfg.idle_timeout);
    edge.duration("websocket_idle_timeout", cfg.websocket_idle_timeout);
    edge.duration("drain_timeout", cfg.drain_timeout);
    edge.duration("keepalive_interval", cfg.keepalive_interval);
    edge.duration("keepalive_timeout", cfg.keepalive_timeout);
    edge.size("max_body_size", cfg.max_body_size, 0);  // 0: unlimited
    edge.size("max_header_size", cfg.max_header_size, 1);
    edge.integer("max_connections", cfg.max_connections, 1,
                 std::numeric_limits<std::uint32_t>::max());
    // HTTP/2 front end (issue 8).
    if (auto h2 = edge.boolean("http2")) cfg.http2 = *h2;
    edge.integer("h2_max_concurrent_streams", cfg.h2_max_concurrent_streams, 1, 10000);
    for (auto [key, value] :
         {std::pair{"h2_initial_window_size", &cfg.h2_initial_window_size},
          std::pair{"h2_connection_window_size", &cfg.h2_connection_window_size}}) {
      edge.size(key, *value, 65535);
      if (*value > 0x7fffffffu) {
        edge.bad_value(key, *edge.find(key), "at most 2147483647 bytes (RFC 9113 6.9.1)");
      }
    }
    // HTTP/1.1 hardening (issue 8): the request-target limit and the query
    // parameters the access log redacts.
    edge.size("max_uri_size", cfg.max_uri_size, 1);
    if (const toml::array* params = edge.array("log_redact_params")) {
      std::vector<std::string> names;
      bool ok = true;
      for (std::size_t i = 0; i < params->size(); ++i) {
        const toml::node& element = (*params)[i];
        const std::string path = index_key(edge.key_path("log_redact_params"), i);
        const std::string* text = element.is_string() ? &element.as_string()->get() : nullptr;
        if (text == nullptr || text->empty() || text->find_first_of("&;=# ") != std::string::npos) {
          ctx.add(element.source(), path,
                  "expected a query parameter name (a non-empty string without '&', ';', '=', "
                  "'#' or spaces)");
          ok = false;
          continue;
        }
        names.push_back(detail::to_lower(*text));
      }
      if (ok) {
        cfg.log_redact_params = std::move(names);
      }
    }
    check_order(edge, "keepalive_interval", cfg.keepalive_interval, "keepalive_timeout",
                cfg.keepalive_timeout, /*strict=*/true, ctx, edge_table);
    // Issue 13 (run it like a service): access log switch and sampling, admin token.
    if (auto on = edge.boolean("access_log")) cfg.access_log = *on;
    if (const toml::node* node = edge.find("access_log_sample")) {
      std::optional<double> v;
      if (node->is_floating_point()) v = node->as_floating_point()->get();
      if (node->is_integer()) v = static_cast<double>(node->as_integer()->get());
      if (!v) {
        edge.wrong_type("access_log_sample", *node, "a number between 0 and 1");
      } else if (!(*v > 0.0 && *v <= 1.0)) {
        edge.bad_value("access_log_sample", *node,
                       "must be greater than 0 and at most 1 (0.1 keeps one request in ten)");
      } else {
        cfg.access_log_sample = *v;
      }
    }
    read_admin_token(edge, cfg.listen_admin, cfg.admin_token_file, cfg.admin_token);
    read_connection_limits(edge, cfg);  // issue 9
    // Client identity (issue 9): [edge] proxy_protocol and trusted_proxies are
    // the defaults of both client listeners; a listener table overrides them.
    {
      std::vector<CidrRange> trusted;
      read_policy_cidrs(edge, "trusted_proxies", ctx, trusted);
      const auto both_proxy = edge.boolean("proxy_protocol");
      for (auto [key, trust] :
           {std::pair<std::string_view, ListenerTrust*>{"listen_https", &cfg.https_trust},
            {"listen_http", &cfg.http_trust}}) {
        const ListenerTable* t =
            listener_tables.count(key) != 0 ? &listener_tables.at(key) : nullptr;
        trust->trusted_proxies = t && t->trusted_proxies ? *t->trusted_proxies : trusted;
        trust->proxy_protocol =
            t && t->proxy_protocol ? *t->proxy_protocol : both_proxy.value_or(false);
        if (key == "listen_http" && !cfg.listen_http) trust->proxy_protocol = false;
        if (trust->proxy_protocol && trust->trusted_proxies.empty()) {
          // Fail closed: without it anyone could claim any address.
          const bool own = t && t->proxy_node;
          const toml::node* where = own ? t->proxy_node : edge.find("proxy_protocol");
          ctx.add(where->source(),
                  own ? edge.key_path(key) + ".proxy_protocol" : edge.key_path("proxy_protocol"),
                  "proxy_protocol needs trusted_proxies: the addresses of the load balancers "
                  "that may send a PROXY header (e.g. trusted_proxies = [\"10.0.0.0/8\"])");
        }
      }
    }
    edge.reject_unknown_keys();
  }

  // [tls] with [[tls.certificates]]
  const toml::table* tls_table = top.table("tls");
  const bool managed = root.get("acme") != nullptr;  // [acme]: certificates are optional
  if (tls_table == nullptr && top.find("tls") == nullptr && !managed) {
    top.missing("tls.certificates", "missing [[tls.certificates]]: at least one is required");
  }
  TableReader tls(ctx, tls_table, "tls");
  if (tls_table != nullptr) {
    const toml::array* certs = tls.array("certificates");
    if (certs == nullptr && tls.find("certificates") == nullptr && !managed) {
      tls.missing("certificates", "missing [[tls.certificates]]: at least one is required");
    }
    if (certs != nullptr) {
      if (certs->empty() && !managed) {
        tls.bad_value("certificates", *certs, "at least one certificate is required");
      }
      for_each_table(tls, "certificates", *certs, ctx, [&](TableReader& r, std::size_t) {
        auto cert = r.readable_file("cert", true);
        auto key = r.readable_file("key", true);
        if (cert && key) {
          // Issue 13: check what loading them for HTTPS would trip on.
          if (auto mode = detail::secret_file_mode_problem(*key)) {
            r.bad_value("key", *r.find("key"), std::move(*mode));
          } else if (auto why = detail::certificate_key_problem(*cert, *key)) {
            r.bad_value("key", *r.find("key"), std::move(*why));
          }
          cfg.certificates.push_back(CertificateConfig{*cert, *key});
        }
      });
    }
    tls.reject_unknown_keys();
  }

  // [[origins]]
  if (const toml::array* origins = top.array("origins")) {
    std::map<std::string, int> names;  // name -> line of first use
    for_each_table(top, "origins", *origins, ctx, [&](TableReader& r, std::size_t) {
      OriginGrant grant;
      bool ok = true;
      if (auto name = r.string("name", true)) {
        const toml::node& node = *r.find("name");
        const int line = to_int(node.source().begin.line);
        if (!detail::valid_origin_name(*name)) {
          r.bad_value("name", node,
                      "not a valid origin name: " + in_quotes(*name) +
                          " (1 to 64 letters, digits, '.', '_' or '-')");
          ok = false;
        } else if (auto [it, inserted] = names.emplace(*name, line); !inserted) {
          r.bad_value("name", node,
                      "origin " + in_quotes(*name) + " is already defined at line " +
                          std::to_string(it->second));
          ok = false;
        }
        grant.name = *name;
      } else {
        ok = false;
      }
      if (const toml::array* hostnames = r.array("hostnames", true)) {
        if (hostnames->empty()) {
          r.bad_value("hostnames", *hostnames, "must list at least one hostname");
          ok = false;
        }
        for (std::size_t i = 0; i < hostnames->size(); ++i) {
          const std::string path = index_key(r.key_path("hostnames"), i);
          if (auto host = hostname_pattern((*hostnames)[i], ctx, path)) {
            grant.hostnames.push_back(std::move(*host));
          } else {
            ok = false;
          }
        }
      } else {
        ok = false;
      }
      if (auto acme = r.boolean("acme")) {
        grant.acme = *acme;
      }
      if (ok) {
        cfg.origins.push_back(std::move(grant));
      }
    });
  }
  read_acme(ctx, top, cfg);
  read_edge_wireguard(ctx, top, cfg);  // [wireguard] (issue 10)
  read_policies(ctx, top, cfg);        // issue 9
  top.reject_unknown_keys();
}

void read_origin(Context& ctx, const toml::table& root, OriginConfig& cfg) {
  TableReader top(ctx, &root, "");

  const toml::table* origin_table = top.table("origin", /*required=*/true);
  TableReader origin(ctx, origin_table, "origin");
  if (origin_table != nullptr) {
    if (auto name = origin.string("name", true)) {
      if (detail::valid_origin_name(*name)) {
        cfg.name = *name;
      } else {
        origin.bad_value("name", *origin.find("name"),
                         "not a valid origin name: " + in_quotes(*name) +
                             " (1 to 64 letters, digits, '.', '_' or '-')");
      }
    }
    if (auto ep = origin.endpoint("edge", true, /*allow_port_zero=*/false)) {
      cfg.edge = *ep;
    }
    if (auto pin = origin.string("edge_pin", true)) {
      if (crypto::is_valid_pin(*pin)) {
        cfg.edge_pin = *pin;
      } else {
        origin.bad_value("edge_pin", *origin.find("edge_pin"),
                         "not a valid pin: expected \"sha256:\" and 43 base64 characters");
      }
    }

    // The key: key_file or inline key, exactly one.
    const toml::node* key_file_node = origin.find("key_file");
    const toml::node* key_node = origin.find("key");
    if (key_file_node != nullptr && key_node != nullptr) {
      const bool file_first = key_file_node->source().begin < key_node->source().begin;
      origin.bad_value(file_first ? "key" : "key_file", file_first ? *key_node : *key_file_node,
                       "give either key_file or key, not both");
    } else if (key_file_node == nullptr && key_node == nullptr) {
      origin.missing("key_file", "missing required key (or an inline `key`)");
    } else if (key_file_node != nullptr) {
      if (auto file = origin.path_value("key_file", true)) {
        auto read = detail::read_file(*file, max_key_file_size);
        if (!read.text) {
          origin.bad_value("key_file", *key_file_node, read.error);
        } else if (!crypto::pin_of_private_key_pem(*read.text)) {
          origin.bad_value("key_file", *key_file_node,
                           "not a PEM private key (or an encrypted one): " + file->string());
        } else if (auto mode = detail::secret_file_mode_problem(*file)) {
          origin.bad_value("key_file", *key_file_node, std::move(*mode));  // issue 13
        } else {
          cfg.key_file = *file;
          cfg.key_pem = std::move(*read.text);
        }
      }
    } else if (auto pem = origin.string("key", true)) {
      if (!crypto::pin_of_private_key_pem(*pem)) {
        origin.bad_value("key", *key_node, "not a PEM private key (or an encrypted one)");
      } else {
        cfg.key_pem = std::move(*pem);
      }
    }

    origin.integer("connections", cfg.connections, 1, max_tunnel_connections);
    cfg.listen_admin = origin.endpoint("listen_admin", false, /*allow_port_zero=*/true);
    origin.integer("workers", cfg.workers, 0, max_workers);
    origin.duration("connect_timeout", cfg.connect_timeout);
    origin.duration("service_connect_timeout", cfg.service_connect_timeout);
    origin.duration("idle_timeout", cfg.idle_timeout);
    origin.duration("websocket_idle_timeout", cfg.websocket_idle_timeout);
    origin.duration("drain_timeout", cfg.drain_timeout);
    origin.duration("keepalive_interval", cfg.keepalive_interval);
    origin.duration("keepalive_timeout", cfg.keepalive_timeout);
    origin.duration("reconnect_min", cfg.reconnect_min);
    origin.duration("reconnect_max", cfg.reconnect_max);
    check_order(origin, "keepalive_interval", cfg.keepalive_interval, "keepalive_timeout",
                cfg.keepalive_timeout, /*strict=*/true, ctx, origin_table);
    check_order(origin, "reconnect_min", cfg.reconnect_min, "reconnect_max", cfg.reconnect_max,
                /*strict=*/false, ctx, origin_table);
    read_admin_token(origin, cfg.listen_admin, cfg.admin_token_file, cfg.admin_token);  // issue 13
    if (auto over = origin.boolean("tunnel_over_wireguard")) {                          // issue 10
      cfg.tunnel_over_wireguard = *over;
    }
    origin.reject_unknown_keys();
  }
  read_origin_wireguard(ctx, top, cfg, origin.find("tunnel_over_wireguard"));

  const toml::array* routes = top.array("routes");
  if (routes == nullptr && top.find("routes") == nullptr) {
    top.missing("routes", "missing [[routes]]: at least one route is required");
  }
  if (routes != nullptr) {
    if (routes->empty()) {
      top.bad_value("routes", *routes, "at least one route is required");
    }
    std::map<std::pair<std::string, std::string>, int> seen;  // (host, path) -> line
    for_each_table(top, "routes", *routes, ctx, [&](TableReader& r, std::size_t index) {
      Route route;
      bool ok = true;
      if (auto host = required_host(r, ctx)) {
        route.host = std::move(*host);
      } else {
        ok = false;
      }
      if (auto path = r.string("path")) {
        const bool clean = std::none_of(path->begin(), path->end(), [](char c) {
          return static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '?' || c == '#';
        });
        if (path->empty() || path->front() != '/' || !clean) {
          r.bad_value("path", *r.find("path"),
                      "not a valid path prefix: " + in_quotes(*path) +
                          " (starts with '/', no spaces, '?' or '#')");
          ok = false;
        } else {
          route.path = std::move(*path);
        }
      } else if (r.find("path") != nullptr) {
        ok = false;
      }
      if (auto service = r.string("service", true)) {
        if (auto url = parse_service_url(*service)) {
          route.service = std::move(*url);
        } else {
          r.bad_value("service", *r.find("service"),
                      "not a service URL: " + in_quotes(*service) +
                          " (http://host:port or https://host:port, nothing after the port)");
          ok = false;
        }
      } else {
        ok = false;
      }
      if (auto verify = r.boolean("tls_verify")) {
        route.tls_verify = *verify;
      }
      if (auto pp = r.string("proxy_protocol")) {  // issue 9
        if (*pp == "v1" || *pp == "v2") {
          route.proxy_protocol = *pp == "v1" ? 1 : 2;
        } else {
          r.bad_value("proxy_protocol", *r.find("proxy_protocol"),
                      "expected \"v1\" or \"v2\", got " + in_quotes(*pp));
          ok = false;
        }
      }
      // Health check keys (issue 13).
      if (auto check = r.string("health_check")) {
        const bool clean = std::none_of(check->begin(), check->end(), [](char c) {
          return static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '#';
        });
        if (*check != "tcp" && (check->empty() || check->front() != '/' || !clean)) {
          r.bad_value("health_check", *r.find("health_check"),
                      "not a health check: " + in_quotes(*check) +
                          " (\"tcp\" to connect only, or an HTTP path such as \"/healthz\")");
          ok = false;
        } else {
          route.health_check = std::move(*check);
        }
      }
      r.duration("health_interval", route.health_interval);
      r.duration("health_timeout", route.health_timeout);
      r.integer("health_rise", route.health_rise, 1, 100);
      r.integer("health_fall", route.health_fall, 1, 100);
      check_order(r, "health_timeout", route.health_timeout, "health_interval",
                  route.health_interval, /*strict=*/false, ctx, nullptr);
      if (!ok) {
        return;
      }
      const toml::node& table = (*routes)[index];
      const int line = to_int(table.source().begin.line);
      if (auto [it, inserted] = seen.emplace(std::pair(route.host, route.path), line); !inserted) {
        ctx.add_for_table(table, r.path(),
                          "duplicate route for host " + in_quotes(route.host) + " path " +
                              in_quotes(route.path) + " (first defined at line " +
                              std::to_string(it->second) + ")");
        return;
      }
      cfg.routes.push_back(std::move(route));
    });
  }
  top.reject_unknown_keys();
}

template <class Config, class Reader>
LoadResult<Config> parse_config(std::string_view text, const std::filesystem::path& source,
                                Reader read) noexcept {
  try {
    Context ctx(source);
    Config cfg;
    cfg.source = source;
    if (auto root = parse_toml(text, source, ctx)) {
      read(ctx, *root, cfg);
    }
    return finish(ctx, std::move(cfg));
  } catch (const std::exception& e) {  // e.g. std::bad_alloc: still a Problem, never a throw
    LoadResult<Config> result;
    result.problems.push_back(
        Problem{source, 0, 0, "", std::string("internal error: ") + e.what()});
    return result;
  }
}

template <class Config>
LoadResult<Config> load_config(const std::filesystem::path& file,
                               LoadResult<Config> (*parse)(std::string_view,
                                                           const std::filesystem::path&)) noexcept {
  try {
    auto read = detail::read_file(file);
    if (!read.text) {
      LoadResult<Config> result;
      result.problems.push_back(Problem{file, 0, 0, "", std::move(read.error)});
      return result;
    }
    return parse(*read.text, file);
  } catch (const std::exception& e) {
    LoadResult<Config> result;
    result.problems.push_back(Problem{file, 0, 0, "", std::string("internal error: ") + e.what()});
    return result;
  }
}

}  // namespace

std::string Problem::to_string() const {
  std::string out = file.string();
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) {
      out += ":" + std::to_string(column);
    }
  }
  out += ": ";
  if (!key.empty()) {
    out += key + ": ";
  }
  out += message;
  return out;
}

LoadResult<EdgeConfig> parse_edge_config(std::string_view text,
                                         const std::filesystem::path& source) {
  return parse_config<EdgeConfig>(text, source, read_edge);
}

LoadResult<OriginConfig> parse_origin_config(std::string_view text,
                                             const std::filesystem::path& source) {
  return parse_config<OriginConfig>(text, source, read_origin);
}

LoadResult<EdgeConfig> load_edge_config(const std::filesystem::path& file) {
  return load_config<EdgeConfig>(file, &parse_edge_config);
}

LoadResult<OriginConfig> load_origin_config(const std::filesystem::path& file) {
  return load_config<OriginConfig>(file, &parse_origin_config);
}

}  // namespace hearth::config
