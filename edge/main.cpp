// hearth-edge: command line only; the work is in hearth_edge.
#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fstream>
#include <iostream>

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
  for (auto* sub : {run_cmd, check_cmd, invite_cmd, status_cmd}) {
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
