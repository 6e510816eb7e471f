#include "hearth/common/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace hearth::log {
namespace {

std::atomic<Format> g_format{Format::text};
std::atomic<Level> g_level{Level::info};

constexpr std::string_view level_name(Level l) {
  switch (l) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
  }
  return "info";
}

void append_timestamp(std::string& out) {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - secs).count();
  std::time_t t = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];  // generous: -Wformat-truncation assumes any int width
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  out += buf;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (unsigned char c : s) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return true;
  }
  return false;
}

}  // namespace

void configure(Format format, Level level) {
  g_format.store(format);
  g_level.store(level);
}

bool parse_level(std::string_view text, Level& out) {
  for (Level l : {Level::debug, Level::info, Level::warn, Level::error}) {
    if (text == level_name(l)) {
      out = l;
      return true;
    }
  }
  if (text == "warning") {
    out = Level::warn;
    return true;
  }
  return false;
}

bool parse_format(std::string_view text, Format& out) {
  if (text == "text") {
    out = Format::text;
    return true;
  }
  if (text == "json") {
    out = Format::json;
    return true;
  }
  return false;
}

bool enabled(Level level) { return level >= g_level.load(std::memory_order_relaxed); }

void write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  std::string line;
  line.reserve(160);
  if (g_format.load(std::memory_order_relaxed) == Format::json) {
    line += "{\"ts\":\"";
    append_timestamp(line);
    line += "\",\"level\":\"";
    line += level_name(level);
    line += "\",\"event\":";
    append_json_string(line, event);
    for (const Field& f : fields) {
      line += ',';
      append_json_string(line, f.key);
      line += ':';
      if (f.quoted) {
        append_json_string(line, f.value);
      } else {
        line += f.value;
      }
    }
    line += "}\n";
  } else {
    append_timestamp(line);
    line += ' ';
    line += level_name(level);
    line += ' ';
    line += event;
    for (const Field& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      if (f.quoted && needs_quotes(f.value)) {
        append_json_string(line, f.value);
      } else {
        line += f.value;
      }
    }
    line += '\n';
  }
  if (level >= Level::warn) {
    std::string text;
    for (const Field& f : fields) {
      if (!text.empty()) text += ' ';
      text += f.key;
      text += '=';
      text += f.value;
    }
    remember(level, event, std::move(text));
  }
  // One write(2): lines from different threads never interleave.
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

namespace {
constexpr std::size_t kRecent = 32;
std::mutex g_recent_mu;
std::vector<RecentEvent> g_recent;  // ring of kRecent
std::size_t g_recent_next = 0;
}  // namespace

void remember(Level level, std::string_view event, std::string text) {
  std::unique_lock lock(g_recent_mu, std::try_to_lock);
  if (!lock.owns_lock()) return;  // never wait on the data path
  RecentEvent e;
  append_timestamp(e.ts);
  e.level = level_name(level);
  e.event = event;
  e.text = std::move(text);
  if (e.text.size() > 300) e.text.resize(300);
  if (g_recent.size() < kRecent) {
    g_recent.push_back(std::move(e));
  } else {
    g_recent[g_recent_next] = std::move(e);
  }
  g_recent_next = (g_recent_next + 1) % kRecent;
}

std::vector<RecentEvent> recent_events() {
  std::lock_guard lock(g_recent_mu);
  if (g_recent.size() < kRecent) return g_recent;
  std::vector<RecentEvent> out;
  out.reserve(kRecent);
  for (std::size_t i = 0; i < kRecent; ++i) out.push_back(g_recent[(g_recent_next + i) % kRecent]);
  return out;
}

}  // namespace hearth::log
