#include "hearth/tunnel/frame.hpp"

#include <cstring>

namespace hearth::tunnel {
namespace {

constexpr std::size_t kMaxString = kMaxStringField;  // any single string field
constexpr std::size_t kMaxRoutes = 1024;             // routes in one HELLO

class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) {
    out_.push_back(static_cast<std::uint8_t>(v >> 8));
    out_.push_back(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
      out_.push_back(static_cast<std::uint8_t>(v >> shift));
  }
  void str(std::string_view s) {
    if (s.size() > kMaxString)
      s = s.substr(0, kMaxString);  // encoder never makes what decoders refuse
    u16(static_cast<std::uint16_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  std::vector<std::uint8_t> take() { return std::move(out_); }

 private:
  std::vector<std::uint8_t> out_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> p) : p_(p) {}
  bool u8(std::uint8_t& v) {
    if (!need(1)) return false;
    v = p_[pos_++];
    return true;
  }
  bool u16(std::uint16_t& v) {
    if (!need(2)) return false;
    v = static_cast<std::uint16_t>((p_[pos_] << 8) | p_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (!need(4)) return false;
    v = (std::uint32_t{p_[pos_]} << 24) | (std::uint32_t{p_[pos_ + 1]} << 16) |
        (std::uint32_t{p_[pos_ + 2]} << 8) | std::uint32_t{p_[pos_ + 3]};
    pos_ += 4;
    return true;
  }
  bool str(std::string& s) {
    std::uint16_t n = 0;
    if (!u16(n) || n > kMaxString || !need(n)) return false;
    s.assign(reinterpret_cast<const char*>(p_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == p_.size(); }

 private:
  bool need(std::size_t n) const { return p_.size() - pos_ >= n; }
  std::span<const std::uint8_t> p_;
  std::size_t pos_ = 0;
};

bool is_connection_frame(FrameType t) {
  switch (t) {
    case FrameType::hello:
    case FrameType::welcome:
    case FrameType::reject:
    case FrameType::ping:
    case FrameType::pong:
    case FrameType::goaway:
    case FrameType::publish:
    case FrameType::published:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string_view to_string(FrameType t) {
  switch (t) {
    case FrameType::hello:
      return "HELLO";
    case FrameType::welcome:
      return "WELCOME";
    case FrameType::reject:
      return "REJECT";
    case FrameType::open:
      return "OPEN";
    case FrameType::data:
      return "DATA";
    case FrameType::fin:
      return "FIN";
    case FrameType::reset:
      return "RESET";
    case FrameType::window:
      return "WINDOW";
    case FrameType::ping:
      return "PING";
    case FrameType::pong:
      return "PONG";
    case FrameType::goaway:
      return "GOAWAY";
    case FrameType::publish:
      return "PUBLISH";
    case FrameType::published:
      return "PUBLISHED";
  }
  return "UNKNOWN";
}

std::string_view to_string(ResetCode c) {
  switch (c) {
    case ResetCode::cancel:
      return "cancel";
    case ResetCode::refused:
      return "refused";
    case ResetCode::no_route:
      return "no_route";
    case ResetCode::unreachable:
      return "unreachable";
    case ResetCode::internal:
      return "internal";
    case ResetCode::protocol:
      return "protocol";
    case ResetCode::timeout:
      return "timeout";
    case ResetCode::draining:
      return "draining";
  }
  return "unknown";
}

void encode_header(const FrameHeader& h, std::uint8_t* out) {
  out[0] = static_cast<std::uint8_t>(h.length >> 16);
  out[1] = static_cast<std::uint8_t>(h.length >> 8);
  out[2] = static_cast<std::uint8_t>(h.length);
  out[3] = static_cast<std::uint8_t>(h.type);
  out[4] = h.flags;
  out[5] = static_cast<std::uint8_t>(h.stream_id >> 24);
  out[6] = static_cast<std::uint8_t>(h.stream_id >> 16);
  out[7] = static_cast<std::uint8_t>(h.stream_id >> 8);
  out[8] = static_cast<std::uint8_t>(h.stream_id);
}

HeaderDecode decode_header(std::span<const std::uint8_t> b) {
  HeaderDecode r;
  if (b.size() < kFrameHeaderSize) return r;  // need_more
  FrameHeader h;
  h.length = (std::uint32_t{b[0]} << 16) | (std::uint32_t{b[1]} << 8) | std::uint32_t{b[2]};
  std::uint8_t type = b[3];
  h.flags = b[4];
  h.stream_id = (std::uint32_t{b[5]} << 24) | (std::uint32_t{b[6]} << 16) |
                (std::uint32_t{b[7]} << 8) | std::uint32_t{b[8]};
  r.status = DecodeStatus::error;
  if (type < static_cast<std::uint8_t>(FrameType::hello) ||
      type > static_cast<std::uint8_t>(FrameType::published)) {
    r.error = "unknown frame type";
    return r;
  }
  h.type = static_cast<FrameType>(type);
  if (h.flags != 0) {
    r.error = "reserved flags set";
    return r;
  }
  const bool conn = is_connection_frame(h.type);
  if (conn && h.stream_id != 0) {
    r.error = "connection frame on a stream";
    return r;
  }
  if (!conn && h.stream_id == 0) {
    r.error = "stream frame on stream 0";
    return r;
  }
  switch (h.type) {
    case FrameType::data:
      if (h.length == 0 || h.length > kMaxDataPayload) {
        r.error = "bad DATA length";
        return r;
      }
      break;
    case FrameType::fin:
      if (h.length != 0) {
        r.error = "FIN with payload";
        return r;
      }
      break;
    case FrameType::window:
      if (h.length != 4) {
        r.error = "bad WINDOW length";
        return r;
      }
      break;
    case FrameType::ping:
    case FrameType::pong:
      if (h.length != 8) {
        r.error = "bad PING length";
        return r;
      }
      break;
    default:
      if (h.length > kMaxControlPayload) {
        r.error = "control frame too large";
        return r;
      }
  }
  r.status = DecodeStatus::ok;
  r.header = h;
  return r;
}

std::vector<std::uint8_t> encode_payload(const Hello& v) {
  Writer w;
  w.u32(kProtocolMagic);
  w.u16(v.version);
  w.str(v.origin_name);
  w.str(v.software);
  w.u32(v.connection_index);
  std::size_t n = std::min(v.routes.size(), kMaxRoutes);
  w.u16(static_cast<std::uint16_t>(n));
  for (std::size_t i = 0; i < n; ++i) {
    w.str(v.routes[i].host);
    w.str(v.routes[i].path);
  }
  return w.take();
}

std::optional<Hello> decode_hello(std::span<const std::uint8_t> p) {
  Reader r(p);
  Hello v;
  std::uint32_t magic = 0;
  std::uint16_t n = 0;
  if (!r.u32(magic) || magic != kProtocolMagic) return std::nullopt;
  if (!r.u16(v.version) || v.version == 0) return std::nullopt;
  if (!r.str(v.origin_name) || !r.str(v.software) || !r.u32(v.connection_index))
    return std::nullopt;
  if (!r.u16(n) || n > kMaxRoutes) return std::nullopt;
  v.routes.reserve(n);
  for (std::uint16_t i = 0; i < n; ++i) {
    RouteAdvert a;
    if (!r.str(a.host) || !r.str(a.path)) return std::nullopt;
    v.routes.push_back(std::move(a));
  }
  if (!r.done()) return std::nullopt;
  return v;
}

namespace {

void write_refused(Writer& w, const std::vector<RefusedRoute>& refused) {
  std::size_t n = std::min(refused.size(), kMaxRoutes);
  w.u16(static_cast<std::uint16_t>(n));
  for (std::size_t i = 0; i < n; ++i) {
    w.str(refused[i].host);
    w.str(refused[i].path);
    w.str(refused[i].reason);
  }
}

bool read_refused(Reader& r, std::vector<RefusedRoute>& out) {
  std::uint16_t n = 0;
  if (!r.u16(n) || n > kMaxRoutes) return false;
  out.reserve(n);
  for (std::uint16_t i = 0; i < n; ++i) {
    RefusedRoute a;
    if (!r.str(a.host) || !r.str(a.path) || !r.str(a.reason)) return false;
    out.push_back(std::move(a));
  }
  return true;
}

}  // namespace

std::vector<std::uint8_t> encode_payload(const Welcome& v) {
  Writer w;
  w.u32(kProtocolMagic);
  w.u16(v.version);
  w.str(v.edge_id);
  w.u32(v.keepalive_interval_ms);
  // A version-1 origin's decoder refuses trailing bytes: the list exists only
  // from version 2 on.
  if (v.version >= 2) write_refused(w, v.refused);
  return w.take();
}

std::optional<Welcome> decode_welcome(std::span<const std::uint8_t> p) {
  Reader r(p);
  Welcome v;
  std::uint32_t magic = 0;
  if (!r.u32(magic) || magic != kProtocolMagic) return std::nullopt;
  if (!r.u16(v.version) || v.version == 0) return std::nullopt;
  if (!r.str(v.edge_id) || !r.u32(v.keepalive_interval_ms)) return std::nullopt;
  if (v.version >= 2 && !read_refused(r, v.refused)) return std::nullopt;
  if (!r.done()) return std::nullopt;
  return v;
}

std::string_view to_string(RouteHealth h) {
  switch (h) {
    case RouteHealth::unknown:
      return "unknown";
    case RouteHealth::healthy:
      return "healthy";
    case RouteHealth::unhealthy:
      return "unhealthy";
  }
  return "unknown";
}

std::vector<std::uint8_t> encode_payload(const Publish& v) {
  Writer w;
  w.u32(v.seq);
  std::size_t n = std::min(v.routes.size(), kMaxRoutes);
  w.u16(static_cast<std::uint16_t>(n));
  for (std::size_t i = 0; i < n; ++i) {
    w.str(v.routes[i].host);
    w.str(v.routes[i].path);
    w.u8(static_cast<std::uint8_t>(v.routes[i].health));
  }
  return w.take();
}

std::optional<Publish> decode_publish(std::span<const std::uint8_t> p) {
  Reader r(p);
  Publish v;
  std::uint16_t n = 0;
  if (!r.u32(v.seq) || !r.u16(n) || n > kMaxRoutes) return std::nullopt;
  v.routes.reserve(n);
  for (std::uint16_t i = 0; i < n; ++i) {
    PublishRoute a;
    std::uint8_t health = 0;
    if (!r.str(a.host) || !r.str(a.path) || !r.u8(health)) return std::nullopt;
    if (health > static_cast<std::uint8_t>(RouteHealth::unhealthy)) return std::nullopt;
    a.health = static_cast<RouteHealth>(health);
    v.routes.push_back(std::move(a));
  }
  if (!r.done()) return std::nullopt;
  return v;
}

std::vector<std::uint8_t> encode_payload(const Published& v) {
  Writer w;
  w.u32(v.seq);
  write_refused(w, v.refused);
  return w.take();
}

std::optional<Published> decode_published(std::span<const std::uint8_t> p) {
  Reader r(p);
  Published v;
  if (!r.u32(v.seq) || !read_refused(r, v.refused) || !r.done()) return std::nullopt;
  return v;
}

std::vector<std::uint8_t> encode_payload(const Open& v) {
  Writer w;
  w.str(v.host);
  w.str(v.path);
  w.str(v.client);
  w.u8(static_cast<std::uint8_t>(v.kind));
  return w.take();
}

std::optional<Open> decode_open(std::span<const std::uint8_t> p) {
  Reader r(p);
  Open v;
  std::uint8_t kind = 0;
  if (!r.str(v.host) || !r.str(v.path) || !r.str(v.client) || !r.u8(kind) || !r.done()) {
    return std::nullopt;
  }
  if (kind > static_cast<std::uint8_t>(StreamKind::websocket)) return std::nullopt;
  v.kind = static_cast<StreamKind>(kind);
  return v;
}

std::vector<std::uint8_t> encode_payload(const Reset& v) {
  Writer w;
  w.u32(static_cast<std::uint32_t>(v.code));
  w.str(v.reason);
  return w.take();
}

std::optional<Reset> decode_reset(std::span<const std::uint8_t> p) {
  Reader r(p);
  Reset v;
  std::uint32_t code = 0;
  if (!r.u32(code) || !r.str(v.reason) || !r.done()) return std::nullopt;
  // Unknown codes from a newer peer are still a reset: map them to internal.
  v.code = code <= static_cast<std::uint32_t>(ResetCode::draining) ? static_cast<ResetCode>(code)
                                                                   : ResetCode::internal;
  return v;
}

std::vector<std::uint8_t> encode_payload(const GoAway& v) {
  Writer w;
  w.u32(v.last_stream_id);
  w.str(v.reason);
  return w.take();
}

std::optional<GoAway> decode_goaway(std::span<const std::uint8_t> p) {
  Reader r(p);
  GoAway v;
  if (!r.u32(v.last_stream_id) || !r.str(v.reason) || !r.done()) return std::nullopt;
  return v;
}

std::vector<std::uint8_t> encode_reason(std::string_view reason) {
  Writer w;
  w.str(reason);
  return w.take();
}

std::optional<std::string> decode_reason(std::span<const std::uint8_t> p) {
  Reader r(p);
  std::string s;
  if (!r.str(s) || !r.done()) return std::nullopt;
  return s;
}

std::optional<std::uint32_t> decode_window(std::span<const std::uint8_t> p) {
  Reader r(p);
  std::uint32_t v = 0;
  if (!r.u32(v) || !r.done() || v == 0 || v > (1u << 30)) return std::nullopt;
  return v;
}

void append_frame(std::vector<std::uint8_t>& out, FrameType type, std::uint32_t stream_id,
                  std::span<const std::uint8_t> payload, std::uint8_t flags) {
  std::size_t at = out.size();
  out.resize(at + kFrameHeaderSize + payload.size());
  encode_header({static_cast<std::uint32_t>(payload.size()), type, flags, stream_id},
                out.data() + at);
  if (!payload.empty()) {
    std::memcpy(out.data() + at + kFrameHeaderSize, payload.data(), payload.size());
  }
}

void append_window(std::vector<std::uint8_t>& out, std::uint32_t stream_id,
                   std::uint32_t increment) {
  std::uint8_t p[4] = {
      static_cast<std::uint8_t>(increment >> 24), static_cast<std::uint8_t>(increment >> 16),
      static_cast<std::uint8_t>(increment >> 8), static_cast<std::uint8_t>(increment)};
  append_frame(out, FrameType::window, stream_id, p);
}

void append_ping(std::vector<std::uint8_t>& out, FrameType ping_or_pong,
                 const std::array<std::uint8_t, 8>& opaque) {
  append_frame(out, ping_or_pong, 0, opaque);
}

}  // namespace hearth::tunnel
