#pragma once
// `hearth-edge status` and `hearth-origin status` (issue 13): fetch /status
// from an admin listener and print it as tables (or, with --json, as it came).

#include <string>

namespace hearth {

struct StatusOptions {
  std::string admin;               // HOST:PORT of the admin listener
  std::string token;               // bearer token ("" when the admin needs none)
  bool json = false;               // print the raw JSON
  const char* program = "hearth";  // for messages
};

// Exit status: 0 printed; 2 the admin could not be reached or answered an
// error (one line on stderr, no Boost source locations); 1 bad --admin.
int status_command(const StatusOptions& opts);

// The tables for a /status JSON document (edge or origin shape); throws
// std::exception on JSON it cannot read. Exposed for unit tests.
std::string render_status(const std::string& json_text);

}  // namespace hearth
