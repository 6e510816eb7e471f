#pragma once
#include <filesystem>
#include <memory>

#include "hearth/config/config.hpp"

namespace hearth::edge {

// Runs the edge until SIGTERM/SIGINT, then drains. Returns the process exit
// code: 0 after a clean drain, 2 when a listener cannot be bound or the tunnel
// key cannot be read. SIGHUP reloads certificates and [[origins]] from the
// same file; authorized origin keys are read from state_dir on each tunnel
// handshake, so `hearth-edge invite` needs no reload.
int run(std::shared_ptr<const config::EdgeConfig> config);

}  // namespace hearth::edge
