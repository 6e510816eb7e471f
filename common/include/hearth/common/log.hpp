#pragma once
// Structured logging: one line per event on stderr, as text or JSON.
//
//   log::info("tunnel.up", {{"origin", name}, {"conn", id}, {"peer", peer}});
//
// text: 2026-11-23T14:22:20.123Z info tunnel.up origin=nas conn=3 peer=198.18.0.2:40112
// json: {"ts":"2026-11-23T14:22:20.123Z","level":"info","event":"tunnel.up","origin":"nas",...}
//
// Each line is written with a single write(2), so lines from several worker
// threads never interleave and no lock is taken on the data path.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace hearth::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };
enum class Format { text, json };

void configure(Format format, Level level);
bool parse_level(std::string_view text, Level& out);
bool parse_format(std::string_view text, Format& out);
bool enabled(Level level);

struct Field {
  std::string_view key;
  std::string value;
  bool quoted = true;  // JSON: string vs number

  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  template <class T>
  requires std::is_arithmetic_v<T> Field(std::string_view k, T v)
      : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), quoted(false) {}
};

void write(Level level, std::string_view event, std::initializer_list<Field> fields);

// The last warnings and errors (and whatever else was remember()ed), for the
// admin dashboard and /status: a bounded ring, newest last. Recording never
// waits: when another thread holds the ring, the event is not kept.
struct RecentEvent {
  std::string ts;  // ISO 8601 UTC
  std::string level;
  std::string event;
  std::string text;  // "key=value key=value"
};
void remember(Level level, std::string_view event, std::string text);
std::vector<RecentEvent> recent_events();

inline void debug(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (enabled(Level::debug)) write(Level::debug, event, fields);
}
inline void info(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (enabled(Level::info)) write(Level::info, event, fields);
}
inline void warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (enabled(Level::warn)) write(Level::warn, event, fields);
}
inline void error(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (enabled(Level::error)) write(Level::error, event, fields);
}

}  // namespace hearth::log
