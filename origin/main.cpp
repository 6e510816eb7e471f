// hearth-origin: command line only; the work is in hearth_origin.
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>

#include "hearth/common/crypto.hpp"
#include "hearth/common/error_text.hpp"
#include "hearth/common/log.hpp"
#include "hearth/common/route_match.hpp"
#include "hearth/common/status_cli.hpp"
#include "hearth/common/version.hpp"
#include "hearth/config/pairing.hpp"
#include "hearth/config/parse.hpp"
#include "hearth/origin/origin.hpp"

int main(int argc, char** argv) {
  CLI::App app{"hearth-origin: publishes home services through an outbound tunnel to hearth-edge"};
  app.set_version_flag("--version", std::string("hearth-origin ") + hearth::kVersion);
  app.require_subcommand(0, 1);
  std::string config_path, log_format = "text", log_level = "info";
  app.add_option("--config,-c", config_path, "origin.toml");
  app.add_option("--log-format", log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", log_level, "debug, info, warn, error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));

  auto* run_cmd = app.add_subcommand("run", "run the origin (default)");
  run_cmd->add_option("--config,-c", config_path, "origin.toml");
  auto* check_cmd = app.add_subcommand("check", "validate the configuration and exit");
  check_cmd->add_option("--config,-c", config_path, "origin.toml")->required();
  auto* join_cmd = app.add_subcommand("join", "write a ready origin.toml from a join token");
  std::string token, out;
  bool force = false;
  join_cmd->add_option("token", token, "the line `hearth-edge invite` printed")->required();
  join_cmd->add_option("--out,-o", out, "where to write origin.toml (the key goes beside it)")
      ->required();
  join_cmd->add_flag("--force", force, "overwrite existing files");
  std::vector<std::string> join_routes;
  join_cmd->add_option("--route", join_routes,
                       "HOST[/PATH]=URL, repeatable (default: each allowed hostname to "
                       "http://127.0.0.1:3000, to edit)");
  auto* status_cmd = app.add_subcommand("status", "print tunnels and routes");
  std::string admin, token_file;
  bool status_json = false;
  status_cmd->add_option("--admin", admin,
                         "admin listener HOST:PORT (default: listen_admin of --config)");
  status_cmd->add_option("--config,-c", config_path, "origin.toml: its listen_admin and token");
  status_cmd->add_option("--token-file", token_file, "admin token (default: admin_token_file)");
  status_cmd->add_flag("--json", status_json, "print the raw /status JSON");
  for (auto* sub : {run_cmd, check_cmd, join_cmd, status_cmd}) {
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

  if (*join_cmd) {
    auto decoded = hearth::crypto::decode_join_token(token);
    if (!decoded) {
      std::cerr << "join: not a valid join token (copy the whole line hearth-edge invite "
                   "printed)\n";
      return 1;
    }
    std::vector<hearth::config::JoinRoute> routes;
    try {
      for (const auto& r : join_routes) routes.push_back(hearth::config::parse_join_route(r));
    } catch (const std::exception& e) {
      std::cerr << "join: " << e.what() << "\n";
      return 1;
    }
    for (const auto& r : routes) {
      bool allowed = decoded->hostnames.empty();  // an older edge's token does not say
      for (const auto& h : decoded->hostnames) {
        allowed = allowed || h == r.host || hearth::host_matches(h, r.host);
      }
      if (!allowed) {
        std::cerr << "join: warning: the edge does not allow " << r.host << " for origin '"
                  << decoded->origin_name << "' (allowed:";
        for (const auto& h : decoded->hostnames) std::cerr << " " << h;
        std::cerr << "); that route will be refused until edge.toml lists it\n";
      }
    }
    try {
      hearth::config::write_origin_config(*decoded, out, force, routes);
    } catch (const std::exception& e) {
      std::cerr << "join: " << hearth::error_text(e) << "\n";
      return 2;
    }
    std::cout << "wrote " << out << " and its key " << hearth::config::origin_key_path_for(out);
    if (decoded->has_wireguard()) {  // issue 10
      std::cout << " and its WireGuard key " << hearth::config::origin_wireguard_key_path_for(out)
                << " (WireGuard address " << decoded->wg_address << ")";
    }
    std::cout << (routes.empty() ? "\nedit the service of each of its [[routes]], then:"
                                 : "\ncheck it, then run it:")
              << " hearth-origin check --config " << out << " && hearth-origin run --config " << out
              << "\n";
    return 0;
  }
  if (*status_cmd) {
    hearth::StatusOptions opts;
    opts.program = "hearth-origin";
    opts.json = status_json;
    if (!config_path.empty()) {
      auto loaded = hearth::config::load_origin_config(config_path);
      for (const auto& p : loaded.problems) std::cerr << p.to_string() << "\n";
      if (!loaded.config) return 1;
      if (admin.empty() && loaded.config->listen_admin) {
        admin = loaded.config->listen_admin->to_string();
      }
      opts.token = loaded.config->admin_token;
    }
    if (!token_file.empty()) {
      std::ifstream in(token_file);
      if (!in || !(in >> opts.token)) {
        std::cerr << "hearth-origin status: cannot read the token from " << token_file << "\n";
        return 1;
      }
    }
    if (admin.empty()) {
      std::cerr << "hearth-origin status: pass --admin HOST:PORT or --config FILE (with "
                   "listen_admin)\n";
      return 1;
    }
    opts.admin = admin;
    return hearth::status_command(opts);
  }
  if (config_path.empty()) {
    std::cerr << "--config FILE is required\n";
    return 1;
  }
  auto result = hearth::config::load_origin_config(config_path);
  for (const auto& p : result.problems) std::cerr << p.to_string() << "\n";
  if (!result.config) return 1;
  if (*check_cmd) {
    std::cout << config_path << ": ok\n";
    return 0;
  }
  return hearth::origin::run(
      std::make_shared<const hearth::config::OriginConfig>(std::move(*result.config)));
}
