#pragma once
// The edge's admin answers (internal header): /, /healthz, /readyz, /metrics
// and /status. The session itself (and the token check) is common/admin.

#include <string_view>

#include "hearth/common/admin.hpp"
#include "shared.hpp"

namespace hearth::edge {

admin::Response admin_response(EdgeShared& shared, std::string_view path);

}  // namespace hearth::edge
