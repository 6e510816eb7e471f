// hearth-edge: command line only; the work is in hearth_edge.
#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "hearth/common/error_text.hpp"
#include "hearth/common/log.hpp"
#include "hearth/common/status_cli.hpp"
#include "hearth/common/version.hpp"
#include "hearth/config/pairing.hpp"
#include "hearth/config/parse.hpp"
#include "hearth/edge/edge.hpp"

namespace {

std::optional<hearth::config::EdgeConfig> load(const std::string& path) {
  auto result = hearth::config::load_edge_config(path);
  for (const auto& p : result.problems) std::cerr << p.to_string() << "\n";
  return std::move(result.config);
}

// Reads the token file for `status --token-file`; "" and a message when it cannot.
bool read_token(const std::string& file, std::string& token) {
  std::ifstream in(file);
  if (!in || !(in >> token)) {
    std::cerr << "hearth-edge status: cannot read the token from " << file << "\n";
    return false;
  }
  return true;
}

// pin -> "invited <date>" from the comment `invite` writes above each pin.
std::map<std::string, std::string> invite_dates(const std::filesystem::path& pins_file) {
  std::map<std::string, std::string> out;
  std::ifstream in(pins_file);
  std::string line, last_comment;
  while (std::getline(in, line)) {
    if (line.rfind("# ", 0) == 0) {
      last_comment = line.substr(2);
    } else if (!line.empty()) {
      out[line] = last_comment;
      last_comment.clear();
    }
  }
  return out;
}

// `hearth-edge origins`: [[origins]] and the keys under state_dir, one origin per block.
int list_origins(const hearth::config::EdgeConfig& cfg) {
  std::map<std::string, std::vector<std::string>> pins;
  try {
    pins = hearth::config::load_authorized_origins(cfg.state_dir);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  std::set<std::string> names;
  for (const auto& o : cfg.origins) names.insert(o.name);
  for (const auto& [name, unused] : pins) names.insert(name);
  if (names.empty()) std::cout << "no origins in [[origins]] or " << cfg.state_dir.string() << "\n";
  for (const auto& name : names) {
    const hearth::config::OriginGrant* grant = nullptr;
    for (const auto& o : cfg.origins) {
      if (o.name == name) grant = &o;
    }
    auto seen = hearth::config::load_last_seen(cfg.state_dir, name);
    std::cout << name << "\n  hostnames: ";
    if (grant) {
      for (std::size_t i = 0; i < grant->hostnames.size(); ++i)
        std::cout << (i ? ", " : "") << grant->hostnames[i];
    } else {
      std::cout << "(not in [[origins]]: it cannot connect)";
    }
    std::cout << "\n  last seen: "
              << (seen ? seen->when + (seen->peer.empty() ? "" : " from " + seen->peer)
                       : std::string("never"))
              << "\n  pins:";
    auto it = pins.find(name);
    if (it == pins.end()) {
      std::cout << " (none: run hearth-edge invite " << name << ")\n";
    } else {
      std::cout << "\n";
      auto dates = invite_dates(hearth::config::pins_path(cfg.state_dir, name));
      for (const auto& p : it->second) {
        std::cout << "    " << p << (dates[p].empty() ? "" : "  (" + dates[p] + ")") << "\n";
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hearth-edge: TLS front door for home services, reached through outbound tunnels"};
  app.set_version_flag("--version", std::string("hearth-edge ") + hearth::kVersion);
  app.require_subcommand(0, 1);
  std::string config_path, log_format = "text", log_level = "info";
  app.add_option("--config,-c", config_path, "edge.toml");
  app.add_option("--log-format", log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", log_level, "debug, info, warn, error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));

  auto* run_cmd = app.add_subcommand("run", "run the edge (default)");
  run_cmd->add_option("--config,-c", config_path, "edge.toml");
  auto* check_cmd = app.add_subcommand("check", "validate the configuration and exit");
  check_cmd->add_option("--config,-c", config_path, "edge.toml")->required();
  auto* invite_cmd = app.add_subcommand("invite", "authorize origin NAME and print its join token");
  std::string invite_name, edge_address;
  invite_cmd->add_option("--config,-c", config_path, "edge.toml")->required();
  invite_cmd->add_option("name", invite_name, "origin name, as in [[origins]]")->required();
  invite_cmd->add_option("--edge-address", edge_address,
                         "HOST:PORT origins dial (default: listen_tunnel)");
  auto* status_cmd = app.add_subcommand("status", "print tunnels, routes and traffic");
  std::string admin, token_file;
  bool status_json = false;
  status_cmd->add_option("--admin", admin,
                         "admin listener HOST:PORT (default: listen_admin of --config, else "
                         "127.0.0.1:9901)");
  status_cmd->add_option("--config,-c", config_path, "edge.toml: its listen_admin and token");
  status_cmd->add_option("--token-file", token_file, "admin token (default: admin_token_file)");
  status_cmd->add_flag("--json", status_json, "print the raw /status JSON");
  // Pairing over time (issue 13).
  auto* origins_cmd =
      app.add_subcommand("origins", "list authorized origins, their key pins and last contact");
  origins_cmd->add_option("--config,-c", config_path, "edge.toml")->required();
  auto* revoke_cmd = app.add_subcommand(
      "revoke", "remove every key of origin NAME (then reload the edge to close its tunnels)");
  std::string revoke_name;
  revoke_cmd->add_option("--config,-c", config_path, "edge.toml")->required();
  revoke_cmd->add_option("name", revoke_name, "origin name")->required();
  for (auto* sub : {run_cmd, check_cmd, invite_cmd, status_cmd, origins_cmd, revoke_cmd}) {
    sub->add_option("--log-format", log_format)->check(CLI::IsMember({"text", "json"}));
    sub->add_option("--log-level", log_level)
        ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 1;
  }
  hearth::log::Format fmt{};
  hearth::log::Level lvl{};
  hearth::log::parse_format(log_format, fmt);
  hearth::log::parse_level(log_level, lvl);
  hearth::log::configure(fmt, lvl);

  if (*status_cmd) {
    hearth::StatusOptions opts;
    opts.program = "hearth-edge";
    opts.json = status_json;
    if (!config_path.empty()) {
      auto cfg = load(config_path);
      if (!cfg) return 1;
      if (admin.empty() && cfg->listen_admin) admin = cfg->listen_admin->to_string();
      opts.token = cfg->admin_token;
    }
    if (!token_file.empty() && !read_token(token_file, opts.token)) return 1;
    opts.admin = admin.empty() ? "127.0.0.1:9901" : admin;
    return hearth::status_command(opts);
  }
  if (config_path.empty()) {
    std::cerr << "--config FILE is required\n";
    return 1;
  }
  auto cfg = load(config_path);
  if (!cfg) return 1;
  if (*check_cmd) {
    std::cout << config_path << ": ok\n";
    return 0;
  }
  if (*origins_cmd) return list_origins(*cfg);
  if (*revoke_cmd) {
    try {
      if (!hearth::config::revoke_origin(cfg->state_dir, revoke_name)) {
        std::cerr << "origin '" << revoke_name << "' has no keys under " << cfg->state_dir.string()
                  << "/origins (see hearth-edge origins)\n";
        return 1;
      }
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
      return 2;
    }
    std::cout << "revoked every key of origin '" << revoke_name
              << "': new tunnels are refused now. To close its live tunnels, reload the edge:\n"
                 "  systemctl reload hearth-edge   (or: kill -HUP <pid of hearth-edge>)\n";
    return 0;
  }
  if (*invite_cmd) {
    std::string address = edge_address;
    if (address.empty()) {
      address = cfg->listen_tunnel.to_string();
      if (cfg->listen_tunnel.host == "0.0.0.0" || cfg->listen_tunnel.host == "::") {
        std::cerr << "note: listen_tunnel is a wildcard address; pass --edge-address "
                     "PUBLIC_HOST:PORT so the origin knows where to dial\n";
      }
    }
    try {
      std::string token = hearth::config::invite_origin(*cfg, invite_name, address);
      std::cout << token << "\n";
      std::cerr << "authorized a new key for origin '" << invite_name
                << "'. On the home machine run:\n  hearth-origin join '<token>' --out "
                   "/etc/hearth/origin.toml\n";
      return 0;
    } catch (const std::invalid_argument& e) {
      std::cerr << e.what() << "\n";
      return 1;
    } catch (const std::exception& e) {
      std::cerr << hearth::error_text(e) << "\n";
      return 2;
    }
  }
  return hearth::edge::run(std::make_shared<const hearth::config::EdgeConfig>(std::move(*cfg)));
}
