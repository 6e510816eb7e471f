#pragma once
// The tunnel's frame codec: pure functions over bytes (no I/O), so unit tests
// and libFuzzer reach every branch. The wire format is specified in
// docs/protocol.md; keep the two in step.
//
// Every frame: a 9-byte header, then `length` bytes of payload.
//
//   +-----------------------+---------+---------+-------------------------------+
//   | length (24, BE)       | type (8)| flags(8)| stream id (32, BE)            |
//   +-----------------------+---------+---------+-------------------------------+

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::tunnel {

inline constexpr std::size_t kFrameHeaderSize = 9;
inline constexpr std::uint32_t kMaxDataPayload = 16 * 1024;     // DATA frames
inline constexpr std::uint32_t kMaxControlPayload = 64 * 1024;  // HELLO with many routes
inline constexpr std::uint32_t kInitialWindow = 256 * 1024;     // per stream, each direction
// The highest version this build speaks. Version 2 adds PUBLISH/PUBLISHED and
// the refused-route list in WELCOME (docs/protocol.md, 6); a version-2 peer
// still speaks version 1 to an older one.
inline constexpr std::uint16_t kProtocolVersion = 2;
inline constexpr std::uint16_t kProtocolVersion1 = 1;
inline constexpr std::uint32_t kProtocolMagic = 0x48525448;  // "HRTH"
// Longest string field (host, path, reason, ...) decoders accept; the encoder
// cuts longer ones, so callers that must not lose bytes check against it.
inline constexpr std::size_t kMaxStringField = 4096;

enum class FrameType : std::uint8_t {
  hello = 1,    // origin -> edge, stream 0: version, name, routes
  welcome = 2,  // edge -> origin, stream 0: accepted
  reject = 3,   // edge -> origin, stream 0: refused, with a reason; then close
  open = 4,     // edge -> origin: a new stream (host, path, client address)
  data = 5,     // either way: stream bytes, at most kMaxDataPayload
  fin = 6,      // either way: sender will send no more DATA on this stream
  reset = 7,    // either way: abort the stream, with a code
  window = 8,   // either way: grant the peer more send window on a stream
  ping = 9,     // either way, stream 0: 8 opaque bytes
  pong = 10,    // either way, stream 0: the ping's 8 bytes echoed
  goaway = 11,  // either way, stream 0: no new streams please; in-flight ones finish
  // Version 2 (issue 13: live publish). Never sent on a version-1 connection.
  publish = 12,    // origin -> edge, stream 0: the origin's whole route set, with health
  published = 13,  // edge -> origin, stream 0: which of those routes the edge refused
};

// RESET codes. Kept stable: they are on the wire.
enum class ResetCode : std::uint32_t {
  cancel = 0,       // the opener gave up (client went away)
  refused = 1,      // origin: the local service refused the connection
  no_route = 2,     // origin: no route for this host/path
  unreachable = 3,  // origin: the service could not be reached (timeout, DNS)
  internal = 4,     // unexpected failure
  protocol = 5,     // the peer broke a stream rule (e.g. window overrun)
  timeout = 6,      // idle timeout on this stream
  draining = 7,     // the stream arrived after GOAWAY / during drain
};

std::string_view to_string(FrameType t);
std::string_view to_string(ResetCode c);

struct FrameHeader {
  std::uint32_t length = 0;  // 24 bits on the wire
  FrameType type = FrameType::data;
  std::uint8_t flags = 0;
  std::uint32_t stream_id = 0;
};

void encode_header(const FrameHeader& h, std::uint8_t* out);  // writes kFrameHeaderSize bytes

enum class DecodeStatus { ok, need_more, error };

struct HeaderDecode {
  DecodeStatus status = DecodeStatus::need_more;
  FrameHeader header;
  std::string_view error;  // set when status == error
};

// Decode and validate a header: known type; stream id 0 for connection frames
// and non-zero for stream frames; payload within the type's limit; fixed sizes
// where the type has one. Does not need the payload.
HeaderDecode decode_header(std::span<const std::uint8_t> bytes);

// --- Payloads ------------------------------------------------------------

struct RouteAdvert {
  std::string host;  // "app.example.com" or "*.example.com"
  std::string path;  // prefix, "/" for all
  friend bool operator==(const RouteAdvert&, const RouteAdvert&) = default;
};

struct Hello {
  std::uint16_t version = kProtocolVersion;
  std::string origin_name;
  std::string software;                // "hearth-origin/0.1.0", for logs
  std::uint32_t connection_index = 0;  // which of the origin's N connections
  std::vector<RouteAdvert> routes;
  friend bool operator==(const Hello&, const Hello&) = default;
};

// A route the edge will not serve for this origin (its hostname is not in
// the origin's [[origins]] hostnames). The others are served.
struct RefusedRoute {
  std::string host;
  std::string path;
  std::string reason;
  friend bool operator==(const RefusedRoute&, const RefusedRoute&) = default;
};

struct Welcome {
  std::uint16_t version = kProtocolVersion;  // the version both sides now speak
  std::string edge_id;                       // for logs
  std::uint32_t keepalive_interval_ms = 0;
  std::vector<RefusedRoute> refused;  // on the wire only when version >= 2
  friend bool operator==(const Welcome&, const Welcome&) = default;
};

// What a stream carries; its wire value is the OPEN frame's kind byte.
enum class StreamKind : std::uint8_t { http = 0, websocket = 1 };
// Health of a published route, as the origin's checks see it.
enum class RouteHealth : std::uint8_t {
  unknown = 0,    // no check configured, or not decided yet: served
  healthy = 1,    // served
  unhealthy = 2,  // the edge answers 503 itself (or uses another replica)
};
std::string_view to_string(RouteHealth h);

struct PublishRoute {
  std::string host;
  std::string path;
  RouteHealth health = RouteHealth::unknown;
  friend bool operator==(const PublishRoute&, const PublishRoute&) = default;
};

// PUBLISH replaces the route set the connection's HELLO (or last PUBLISH)
// announced; `seq` increases per connection and is echoed in PUBLISHED.
struct Publish {
  std::uint32_t seq = 0;
  std::vector<PublishRoute> routes;
  friend bool operator==(const Publish&, const Publish&) = default;
};

// The edge's answer to a PUBLISH (seq echoed), or unsolicited after an edge
// reload changed what this origin may publish (seq of the last PUBLISH, 0
// when none).
struct Published {
  std::uint32_t seq = 0;
  std::vector<RefusedRoute> refused;
  friend bool operator==(const Published&, const Published&) = default;
};

struct Open {
  std::string host;                    // normalized Host of the request
  std::string path;                    // request target (path and query)
  std::string client;                  // client address, for logs
  StreamKind kind = StreamKind::http;  // a WebSocket upgrade gets the tunnel idle timeout
  friend bool operator==(const Open&, const Open&) = default;
};

struct Reset {
  ResetCode code = ResetCode::cancel;
  std::string reason;
  friend bool operator==(const Reset&, const Reset&) = default;
};

struct GoAway {
  std::uint32_t last_stream_id = 0;
  std::string reason;
  friend bool operator==(const GoAway&, const GoAway&) = default;
};

std::vector<std::uint8_t> encode_payload(const Hello& v);
std::vector<std::uint8_t> encode_payload(const Welcome& v);
std::vector<std::uint8_t> encode_payload(const Open& v);
std::vector<std::uint8_t> encode_payload(const Reset& v);
std::vector<std::uint8_t> encode_payload(const GoAway& v);
std::vector<std::uint8_t> encode_payload(const Publish& v);
std::vector<std::uint8_t> encode_payload(const Published& v);
std::vector<std::uint8_t> encode_reason(std::string_view reason);  // REJECT payload

// Decoders reject truncated input, trailing bytes, oversized strings and
// counts, and bad magic/version fields. Never throw.
std::optional<Hello> decode_hello(std::span<const std::uint8_t> p);
std::optional<Welcome> decode_welcome(std::span<const std::uint8_t> p);
std::optional<Open> decode_open(std::span<const std::uint8_t> p);
std::optional<Reset> decode_reset(std::span<const std::uint8_t> p);
std::optional<GoAway> decode_goaway(std::span<const std::uint8_t> p);
std::optional<Publish> decode_publish(std::span<const std::uint8_t> p);
std::optional<Published> decode_published(std::span<const std::uint8_t> p);
std::optional<std::string> decode_reason(std::span<const std::uint8_t> p);
std::optional<std::uint32_t> decode_window(std::span<const std::uint8_t> p);

// Append a whole frame (header + payload) to `out`.
void append_frame(std::vector<std::uint8_t>& out, FrameType type, std::uint32_t stream_id,
                  std::span<const std::uint8_t> payload, std::uint8_t flags = 0);
void append_window(std::vector<std::uint8_t>& out, std::uint32_t stream_id,
                   std::uint32_t increment);
void append_ping(std::vector<std::uint8_t>& out, FrameType ping_or_pong,
                 const std::array<std::uint8_t, 8>& opaque);

}  // namespace hearth::tunnel
