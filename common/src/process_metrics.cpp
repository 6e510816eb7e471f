#include "hearth/common/process_metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

namespace hearth {

namespace {

std::string number(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

void family(std::string& out, const char* name, const char* type, const char* help, double v) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  out += name;
  out += ' ';
  out += number(v);
  out += '\n';
}

// Seconds since the epoch at boot (/proc/stat btime).
long boot_time() {
  std::ifstream in("/proc/stat");
  std::string key;
  long value = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> value;
      return value;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

}  // namespace

void append_process_metrics(std::string& out) {
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line) && ticks > 0) {
    // Fields after the ")" of comm: state is field 3; utime 14, stime 15,
    // starttime 22, vsize 23, rss 24 (man 5 proc).
    auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 2));
      std::vector<std::string> f;
      std::string tok;
      while (rest >> tok) f.push_back(tok);
      auto field = [&](std::size_t n) -> double {  // n: 1-based field number of stat
        const std::size_t i = n - 3;
        return i < f.size() ? std::strtod(f[i].c_str(), nullptr) : 0.0;
      };
      if (f.size() >= 22) {
        family(out, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.",
               (field(14) + field(15)) / static_cast<double>(ticks));
        family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
               field(23));
        family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
               field(24) * static_cast<double>(page));
        if (long btime = boot_time()) {
          family(out, "process_start_time_seconds", "gauge",
                 "Start time of the process since unix epoch in seconds.",
                 static_cast<double>(btime) + field(22) / static_cast<double>(ticks));
        }
      }
    }
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    long n = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
    family(out, "process_open_fds", "gauge", "Number of open file descriptors.",
           static_cast<double>(n - 1));  // minus the one opendir holds
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
           static_cast<double>(rl.rlim_cur));
  }
}

}  // namespace hearth
