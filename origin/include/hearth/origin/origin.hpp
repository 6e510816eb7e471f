#pragma once
#include <memory>

#include "hearth/config/config.hpp"

namespace hearth::origin {

// Dials `connections` tunnel connections to the edge and serves the streams it
// opens until SIGTERM/SIGINT, then drains (GOAWAY, in-flight streams finish,
// bounded by drain_timeout). Returns the process exit code (0, or 2 when the
// key is unusable or the admin listener cannot be bound).
int run(std::shared_ptr<const config::OriginConfig> config);

}  // namespace hearth::origin
