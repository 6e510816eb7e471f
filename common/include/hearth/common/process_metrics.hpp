#pragma once
// The standard Prometheus process metrics (as the official client libraries
// export them), read from /proc/self: process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds.

#include <string>

namespace hearth {

// Appends the families (with # HELP and # TYPE) to `out`. Families whose
// source cannot be read are left out.
void append_process_metrics(std::string& out);

}  // namespace hearth
