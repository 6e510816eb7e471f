#include "hearth/common/status_cli.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/src.hpp>  // header-only Boost.JSON, compiled here once
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <set>
#include <vector>

namespace hearth {

namespace {

namespace json = boost::json;
using Row = std::vector<std::string>;

std::string str(const json::value* v) {
  if (!v) return "";
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64()) return std::to_string(v->as_int64());
  if (v->is_uint64()) return std::to_string(v->as_uint64());
  if (v->is_double()) return std::to_string(v->as_double());
  if (v->is_bool()) return v->as_bool() ? "yes" : "no";
  if (v->is_null()) return "";
  return json::serialize(*v);
}

double num(const json::value* v) {
  if (!v) return 0;
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  if (v->is_double()) return v->as_double();
  return 0;
}

const json::value* get(const json::object& o, const char* key) { return o.if_contains(key); }

std::string counted(std::size_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string duration(double secs) {
  long s = static_cast<long>(secs);
  char buf[32];
  if (s >= 86400) {
    std::snprintf(buf, sizeof buf, "%ldd %ldh", s / 86400, s % 86400 / 3600);
  } else if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ldh %ldm", s / 3600, s % 3600 / 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%ldm %lds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lds", s);
  }
  return buf;
}

std::string rtt(double us) {
  if (us <= 0) return "-";
  char buf[32];
  if (us >= 1000) {
    std::snprintf(buf, sizeof buf, "%.1f ms", us / 1000);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f us", us);
  }
  return buf;
}

std::string bytes(double n) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int i = 0;
  while (n >= 1000 && i < 4) {
    n /= 1000;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, i ? "%.1f %s" : "%.0f %s", n, units[i]);
  return buf;
}

std::string health_text(const json::value* h) {
  if (!h) return "";
  if (h->is_object()) {
    const auto& o = h->as_object();
    if (auto* s = o.if_contains("state")) return str(s);
    if (auto* s = o.if_contains("status")) return str(s);
  }
  return str(h);
}

// Columns padded to their widest cell; a header row first.
void table(std::string& out, const std::string& title, const Row& header,
           const std::vector<Row>& rows) {
  out += title + "\n";
  if (rows.empty()) {
    out += "  (none)\n\n";
    return;
  }
  std::vector<std::size_t> width(header.size(), 0);
  auto measure = [&](const Row& r) {
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], r[i].size());
    }
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  auto line = [&](const Row& r) {
    std::string l = " ";
    for (std::size_t i = 0; i < width.size(); ++i) {
      std::string cell = i < r.size() ? r[i] : "";
      l += " " + cell;
      if (i + 1 < width.size()) l += std::string(width[i] - cell.size() + 1, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  out += "\n";
}

void certificates(std::string& out, const json::object& o) {
  const auto* certs = get(o, "certificates");
  if (!certs || !certs->is_array() || certs->as_array().empty()) return;
  std::vector<Row> rows;
  const double now = static_cast<double>(std::time(nullptr));
  for (const auto& c : certs->as_array()) {
    if (!c.is_object()) continue;
    const auto& co = c.as_object();
    std::string names;
    if (auto* n = get(co, "names"); n && n->is_array()) {
      for (const auto& x : n->as_array()) names += (names.empty() ? "" : ", ") + str(&x);
    }
    // Static certificates give seconds since the epoch, managed (ACME) ones RFC 3339.
    double not_after = 0;
    if (const auto* na = get(co, "not_after"); na && na->is_string()) {
      std::tm parsed{};
      if (strptime(std::string(na->as_string()).c_str(), "%Y-%m-%dT%H:%M:%S", &parsed)) {
        not_after = static_cast<double>(timegm(&parsed));
      }
    } else {
      not_after = num(na);
    }
    std::time_t t = static_cast<std::time_t>(not_after);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char date[16];
    std::strftime(date, sizeof date, "%Y-%m-%d", &tm);
    rows.push_back({names, date, std::to_string(static_cast<long>((not_after - now) / 86400)),
                    get(co, "file") ? str(get(co, "file")) : "acme: " + str(get(co, "issuer"))});
  }
  table(out, "CERTIFICATES", {"NAMES", "EXPIRES", "DAYS LEFT", "FILE"}, rows);
}

void recent_errors(std::string& out, const json::object& o) {
  const auto* errs = get(o, "recent_errors");
  if (!errs || !errs->is_array() || errs->as_array().empty()) return;
  const auto& a = errs->as_array();
  std::vector<Row> rows;
  for (std::size_t i = a.size() > 5 ? a.size() - 5 : 0; i < a.size(); ++i) {
    if (!a[i].is_object()) continue;
    const auto& e = a[i].as_object();
    std::string text = str(get(e, "text"));
    if (text.size() > 100) text = text.substr(0, 97) + "...";
    rows.push_back({str(get(e, "ts")), str(get(e, "level")), str(get(e, "event")), text});
  }
  table(out, "RECENT ERRORS", {"TIME", "LEVEL", "EVENT", "DETAIL"}, rows);
}

std::string render_edge(const json::object& o) {
  std::string out;
  const auto* tunnels = get(o, "tunnels");
  const json::array empty;
  const json::array& tun = tunnels && tunnels->is_array() ? tunnels->as_array() : empty;
  std::set<std::string> origins;
  for (const auto& t : tun) {
    if (t.is_object()) origins.insert(str(get(t.as_object(), "origin")));
  }
  const auto* b = get(o, "bytes");
  out += "edge " + str(get(o, "version")) + ": " +
         (num(get(o, "draining")) || (get(o, "draining") && get(o, "draining")->is_bool() &&
                                      get(o, "draining")->as_bool())
              ? "draining"
              : "serving") +
         ", " + counted(tun.size(), "tunnel") + " from " + counted(origins.size(), "origin") +
         ", " + str(get(o, "client_connections")) + " client connections, " +
         str(get(o, "requests_in_flight")) + " requests in flight";
  if (get(o, "requests_total")) out += ", " + str(get(o, "requests_total")) + " requests";
  if (b && b->is_object()) {
    out += ", " + bytes(num(get(b->as_object(), "in"))) + " in / " +
           bytes(num(get(b->as_object(), "out"))) + " out";
  }
  out += "\n\n";

  std::vector<Row> rows;
  struct RouteRow {
    std::set<std::string> origins;
    int tunnels = 0;
    std::string health;
  };
  std::map<std::pair<std::string, std::string>, RouteRow> routes;
  bool any_health = false;
  for (const auto& tv : tun) {
    if (!tv.is_object()) continue;
    const auto& t = tv.as_object();
    rows.push_back({str(get(t, "origin")), str(get(t, "peer")), "t" + str(get(t, "id")),
                    rtt(num(get(t, "rtt_us"))), duration(num(get(t, "uptime_s"))),
                    str(get(t, "streams")), bytes(num(get(t, "bytes_in"))),
                    bytes(num(get(t, "bytes_out"))),
                    get(t, "usable") && get(t, "usable")->is_bool() && !get(t, "usable")->as_bool()
                        ? "draining"
                        : "up"});
    if (auto* rs = get(t, "routes"); rs && rs->is_array()) {
      for (const auto& rv : rs->as_array()) {
        if (!rv.is_object()) continue;
        const auto& r = rv.as_object();
        auto& e = routes[{str(get(r, "host")), str(get(r, "path"))}];
        e.origins.insert(str(get(t, "origin")));
        ++e.tunnels;
        if (auto* h = get(r, "health")) {
          e.health = health_text(h);
          any_health = true;
        }
      }
    }
  }
  table(out, "TUNNELS",
        {"ORIGIN", "PEER", "CONN", "RTT", "UPTIME", "STREAMS", "IN", "OUT", "STATE"}, rows);
  std::vector<Row> route_rows;
  for (const auto& [key, e] : routes) {
    std::string names;
    for (const auto& n : e.origins) names += (names.empty() ? "" : ", ") + n;
    Row r{key.first, key.second, names, std::to_string(e.tunnels)};
    if (any_health) r.push_back(e.health.empty() ? "-" : e.health);
    route_rows.push_back(r);
  }
  Row header{"HOST", "PATH", "ORIGINS", "TUNNELS"};
  if (any_health) header.push_back("HEALTH");
  table(out, "ROUTES", header, route_rows);
  certificates(out, o);
  recent_errors(out, o);
  return out;
}

std::string render_origin(const json::object& o) {
  std::string out;
  const bool draining =
      get(o, "draining") && get(o, "draining")->is_bool() && get(o, "draining")->as_bool();
  const double live = num(get(o, "live"));
  out += "origin " + str(get(o, "origin")) + " -> " + str(get(o, "edge")) + ": " +
         (draining   ? "draining"
          : live > 0 ? "connected"
                     : "no tunnel") +
         ", " + str(get(o, "live")) + " of " + str(get(o, "connections")) + " tunnels up";
  if (get(o, "streams_total")) {
    out += ", " + str(get(o, "streams_total")) + " streams (" + str(get(o, "streams_failed")) +
           " failed)";
  }
  out += "\n\n";
  std::vector<Row> rows;
  if (auto* ts = get(o, "tunnels"); ts && ts->is_array()) {
    for (const auto& tv : ts->as_array()) {
      if (!tv.is_object()) continue;
      const auto& t = tv.as_object();
      rows.push_back(
          {str(get(t, "index")), str(get(o, "edge")), rtt(num(get(t, "rtt_us"))),
           duration(num(get(t, "uptime_s"))), str(get(t, "streams")),
           get(t, "usable") && get(t, "usable")->is_bool() && !get(t, "usable")->as_bool()
               ? "draining"
               : "up"});
    }
  }
  table(out, "TUNNELS", {"INDEX", "EDGE", "RTT", "UPTIME", "STREAMS", "STATE"}, rows);
  std::vector<Row> route_rows;
  bool any_health = false;
  if (auto* rs = get(o, "routes"); rs && rs->is_array()) {
    for (const auto& rv : rs->as_array()) {
      if (rv.is_object() && get(rv.as_object(), "health")) any_health = true;
    }
    for (const auto& rv : rs->as_array()) {
      if (!rv.is_object()) continue;
      const auto& r = rv.as_object();
      Row row{str(get(r, "host")), str(get(r, "path")), str(get(r, "service"))};
      if (any_health) row.push_back(get(r, "health") ? health_text(get(r, "health")) : "-");
      route_rows.push_back(row);
    }
  }
  Row header{"HOST", "PATH", "SERVICE"};
  if (any_health) header.push_back("HEALTH");
  table(out, "ROUTES", header, route_rows);
  certificates(out, o);
  recent_errors(out, o);
  return out;
}

}  // namespace

std::string render_status(const std::string& json_text) {
  json::value v = json::parse(json_text);
  if (!v.is_object()) throw std::runtime_error("not a JSON object");
  const auto& o = v.as_object();
  if (auto* origin = o.if_contains("origin"); origin && origin->is_string()) {
    return render_origin(o);
  }
  return render_edge(o);
}

int status_command(const StatusOptions& opts) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  namespace asio = boost::asio;
  auto fail = [&](const std::string& why) {
    std::cerr << opts.program << " status: " << why << "\n";
    return 2;
  };
  // HOST:PORT, IPv6 in brackets.
  std::string host, port;
  auto colon = opts.admin.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == opts.admin.size()) {
    std::cerr << opts.program << " status: --admin: expected HOST:PORT, got '" << opts.admin
              << "'\n";
    return 1;
  }
  host = opts.admin.substr(0, colon);
  port = opts.admin.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  boost::system::error_code ec;
  auto results = resolver.resolve(host, port, ec);
  if (ec) return fail("cannot resolve the admin address " + opts.admin + ": " + ec.message());
  beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::seconds(5));
  // Asynchronous operations run for their timeout; io.run_for bounds the whole exchange.
  http::request<http::empty_body> req{http::verb::get, "/status", 11};
  req.set(http::field::host, opts.admin);
  req.set(http::field::user_agent, std::string(opts.program) + " status");
  if (!opts.token.empty()) req.set(http::field::authorization, "Bearer " + opts.token);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  boost::system::error_code result = asio::error::timed_out;
  stream.async_connect(results, [&](boost::system::error_code cec, const auto&) {
    if (cec) {
      result = cec;
      return;
    }
    stream.expires_after(std::chrono::seconds(5));
    http::async_write(stream, req, [&](boost::system::error_code wec, std::size_t) {
      if (wec) {
        result = wec;
        return;
      }
      http::async_read(stream, buf, res,
                       [&](boost::system::error_code rec, std::size_t) { result = rec; });
    });
  });
  io.run_for(std::chrono::seconds(12));
  if (result) {
    if (result == beast::error::timeout) result = asio::error::timed_out;
    return fail("cannot reach the admin listener at " + opts.admin + ": " + result.message());
  }
  if (res.result() == http::status::unauthorized) {
    return fail("the admin listener at " + opts.admin +
                (opts.token.empty() ? " requires a token: pass --token-file FILE (admin_token_file)"
                                    : " refused the token"));
  }
  if (res.result() != http::status::ok) {
    return fail("the admin listener at " + opts.admin + " answered " +
                std::to_string(res.result_int()) + " for /status");
  }
  if (opts.json) {
    std::cout << res.body();
    if (!res.body().empty() && res.body().back() != '\n') std::cout << "\n";
    return 0;
  }
  try {
    std::cout << render_status(res.body());
  } catch (const std::exception&) {
    return fail("cannot read the /status answer from " + opts.admin + " (use --json to see it)");
  }
  return 0;
}

}  // namespace hearth
