#pragma once
// Stream multiplexing over one TLS tunnel connection.
//
// A Connection owns one TLS stream and runs three coroutines on its own
// executor (one worker thread): a reader that decodes frames, a writer that
// schedules frames fairly across streams, and a keepalive. All connection and
// stream state is touched only on that executor, so there are no locks on the
// data path; a TunnelStream used from another thread (an edge client session
// on another worker) posts its operations over.
//
// TunnelStream models Asio's AsyncReadStream and AsyncWriteStream, so Beast's
// http::async_read / async_write work on it unchanged.
//
// Flow control: every stream has a receive window (kInitialWindow) in each
// direction; a sender never has more unacknowledged DATA in flight than the
// window, and the receiver grants more only as its reader consumes. A slow
// reader therefore stalls only its own stream. The writer takes at most one
// DATA frame per stream per round, so one bulk stream cannot starve others,
// and control frames (WINDOW, PING, RESET) always go first.

#include <array>
#include <atomic>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "hearth/common/tls_socket.hpp"
#include "hearth/tunnel/errors.hpp"
#include "hearth/tunnel/frame.hpp"

namespace hearth::tunnel {

namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;
// OpenSSL straight on the socket (no BIO pair, one copy less each way) and
// keeping its record buffers: a tunnel connection is always busy (issue 11).
using TlsStream = TlsSocket;
using IoHandler = asio::any_completion_handler<void(error_code, std::size_t)>;

class Connection;

// Up to this many buffers of a buffer sequence are used per operation (a
// *_some operation may transfer less than offered).
inline constexpr std::size_t kMaxIoBuffers = 8;
inline constexpr std::uint32_t kMaxStreamId = 0x7fffffff;

// Per-stream state. Owned by the connection's stream map and by the user's
// TunnelStream; touched only on the connection's executor.
class StreamState : public std::enable_shared_from_this<StreamState> {
 public:
  StreamState(std::shared_ptr<Connection> conn, std::uint32_t id);
  // 0 until the connection registers the stream (ids are assigned there).
  std::uint32_t id() const { return id_.load(std::memory_order_relaxed); }
  const std::shared_ptr<Connection>& connection() const { return conn_; }

  // Entry points, callable from any thread.
  // wait_only: complete (with 0 bytes) once there is something to read, or
  // with the error or EOF a read would see; nothing is consumed.
  void start_read(std::array<asio::mutable_buffer, kMaxIoBuffers> bufs, std::size_t count,
                  IoHandler handler, asio::any_io_executor user_ex, bool wait_only = false);
  void start_write(std::array<asio::const_buffer, kMaxIoBuffers> bufs, std::size_t count,
                   IoHandler handler, asio::any_io_executor user_ex);
  void shutdown_send();
  void reset(ResetCode code, std::string reason);
  void close();

  // Thread-safe. False once the peer ended the stream (FIN, RESET) or it
  // failed locally: such a stream can carry no further exchange.
  bool reusable() const { return reusable_.load(std::memory_order_relaxed); }
  // Thread-safe. A parked stream is between exchanges (an edge keeps one per
  // client connection for the next request): when the peer sends GOAWAY,
  // parked streams are reset at once instead of holding its drain open.
  void set_parked(bool parked) { parked_.store(parked, std::memory_order_relaxed); }

 private:
  friend class Connection;

  void do_read();
  void do_write();
  void fail_pending(error_code ec);
  void on_consumed(std::size_t n);
  void on_data(std::span<const std::uint8_t> payload);  // a DATA frame's payload
  void finish_close();
  void complete(std::optional<IoHandler>& h, asio::any_io_executor& ex, error_code ec,
                std::size_t n);
  bool wants_writer() const;

  std::shared_ptr<Connection> conn_;
  std::atomic<std::uint32_t> id_;
  std::atomic<bool> reusable_{true};
  std::atomic<bool> parked_{false};

  // Receive side.
  beast::flat_buffer recv_;
  std::uint32_t recv_window_ = kInitialWindow;  // credit the peer still has
  std::uint32_t recv_unacked_ = 0;              // consumed, not yet granted back
  bool recv_fin_ = false;
  error_code recv_error_;  // set by RESET or connection loss; reported after buffered bytes

  // Send side.
  beast::flat_buffer send_;
  std::uint32_t send_window_ = kInitialWindow;
  bool fin_requested_ = false;
  bool fin_sent_ = false;
  error_code send_error_;

  bool registered_ = false;  // in the connection's map
  bool closing_ = false;     // user closed; flush FIN then leave the map
  bool in_ready_ = false;    // queued for the writer

  std::array<asio::mutable_buffer, kMaxIoBuffers> read_bufs_{};
  std::size_t read_count_ = 0;
  bool read_wait_ = false;  // the pending read only waits (TunnelStream::async_wait_readable)
  // optional + emplace: Boost 1.81's any_completion_handler move-assignment
  // recurses forever (it wraps `other` as an lvalue), so never assign one.
  std::optional<IoHandler> read_handler_;
  asio::any_io_executor read_ex_;

  std::array<asio::const_buffer, kMaxIoBuffers> write_bufs_{};
  std::size_t write_count_ = 0;
  std::optional<IoHandler> write_handler_;
  asio::any_io_executor write_ex_;
};

// A user's handle on one stream. Movable; closing (or destroying) it ends the
// stream: gracefully when both sides sent FIN, with RESET otherwise.
class TunnelStream {
 public:
  using executor_type = asio::any_io_executor;

  TunnelStream() = default;
  TunnelStream(std::shared_ptr<StreamState> state, executor_type ex)
      : state_(std::move(state)), ex_(std::move(ex)) {}
  TunnelStream(TunnelStream&&) noexcept = default;
  TunnelStream& operator=(TunnelStream&& other) noexcept {
    if (this != &other) {
      close();
      state_ = std::move(other.state_);
      ex_ = std::move(other.ex_);
    }
    return *this;
  }
  TunnelStream(const TunnelStream&) = delete;
  TunnelStream& operator=(const TunnelStream&) = delete;
  ~TunnelStream() { close(); }

  executor_type get_executor() const { return ex_; }
  bool is_open() const { return state_ != nullptr; }
  std::uint32_t id() const { return state_ ? state_->id() : 0; }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [](auto handler, std::shared_ptr<StreamState> s, executor_type ex,
           const MutableBufferSequence& b) {
          std::array<asio::mutable_buffer, kMaxIoBuffers> bufs{};
          std::size_t n = 0;
          for (auto it = asio::buffer_sequence_begin(b);
               it != asio::buffer_sequence_end(b) && n < kMaxIoBuffers; ++it) {
            asio::mutable_buffer mb(*it);
            if (mb.size() > 0) bufs[n++] = mb;
          }
          auto io_ex = asio::get_associated_executor(handler, ex);
          if (!s) {
            asio::post(io_ex, [h = std::move(handler)]() mutable {
              std::move(h)(asio::error::bad_descriptor, 0);
            });
            return;
          }
          s->start_read(bufs, n, IoHandler(std::move(handler)), io_ex);
        },
        token, state_, ex_, buffers);
  }

  // Completes (0 bytes) once a read would find bytes, or with the error or
  // EOF a read would get: a reader that waits this way holds no buffer while
  // nothing arrives (an idle WebSocket, issue 11).
  template <class Token>
  auto async_wait_readable(Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [](auto handler, std::shared_ptr<StreamState> s, executor_type ex) {
          auto io_ex = asio::get_associated_executor(handler, ex);
          if (!s) {
            asio::post(io_ex, [h = std::move(handler)]() mutable {
              std::move(h)(asio::error::bad_descriptor, 0);
            });
            return;
          }
          s->start_read({}, 0, IoHandler(std::move(handler)), io_ex, true);
        },
        token, state_, ex_);
  }

  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [](auto handler, std::shared_ptr<StreamState> s, executor_type ex,
           const ConstBufferSequence& b) {
          std::array<asio::const_buffer, kMaxIoBuffers> bufs{};
          std::size_t n = 0;
          for (auto it = asio::buffer_sequence_begin(b);
               it != asio::buffer_sequence_end(b) && n < kMaxIoBuffers; ++it) {
            asio::const_buffer cb(*it);
            if (cb.size() > 0) bufs[n++] = cb;
          }
          auto io_ex = asio::get_associated_executor(handler, ex);
          if (!s) {
            asio::post(io_ex, [h = std::move(handler)]() mutable {
              std::move(h)(asio::error::bad_descriptor, 0);
            });
            return;
          }
          s->start_write(bufs, n, IoHandler(std::move(handler)), io_ex);
        },
        token, state_, ex_, buffers);
  }

  // Half-close: FIN goes out after the bytes already written.
  void shutdown_send() {
    if (state_) state_->shutdown_send();
  }
  void reset(ResetCode code, std::string reason = {}) {
    if (state_) state_->reset(code, std::move(reason));
  }
  void close() {
    if (state_) {
      state_->close();
      state_.reset();
    }
  }
  bool reusable() const { return state_ && state_->reusable(); }
  void set_parked(bool parked) {
    if (state_) state_->set_parked(parked);
  }

 private:
  std::shared_ptr<StreamState> state_;
  executor_type ex_;
};

struct ConnectionOptions {
  std::chrono::milliseconds keepalive_interval{std::chrono::seconds(10)};
  std::chrono::milliseconds keepalive_timeout{std::chrono::seconds(30)};
  std::uint32_t max_streams = 10000;  // concurrent streams the peer may open
  bool opener = false;                // edge: opens streams; origin: accepts them
  std::string log_id;                 // e.g. "c7"; every log line carries it
};

struct ConnectionStats {
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t streams_opened = 0;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using OpenHandler = std::function<void(TunnelStream, Open)>;
  using CloseHandler = std::function<void(const std::string& reason)>;
  // PUBLISH / PUBLISHED (version 2). Returns false for a payload it cannot
  // decode: a connection error. Without a handler those frames are one too.
  using ControlHandler = std::function<bool(FrameType, std::span<const std::uint8_t>)>;

  // `leftover` holds bytes already read past the handshake frames.
  Connection(asio::io_context::executor_type ex, TlsStream tls, beast::flat_buffer leftover,
             ConnectionOptions options);
  ~Connection();

  // Starts the reader, writer and keepalive. on_open runs on this connection's
  // executor for each stream the peer opens; on_close runs once, there too.
  void start(OpenHandler on_open, CloseHandler on_close);
  // Call before start(). Runs on this connection's executor.
  void set_control_handler(ControlHandler on_control) { on_control_ = std::move(on_control); }
  // Thread-safe. Queues a stream-0 control frame (PUBLISH, PUBLISHED).
  void send_control(FrameType type, std::vector<std::uint8_t> payload);

  // Thread-safe. Opens a stream whose user handlers run on user_ex. Fails
  // (nullopt) when the connection is closed or going away.
  std::optional<TunnelStream> open_stream(Open meta, asio::any_io_executor user_ex);

  // Thread-safe. GOAWAY: the peer should open no more streams here.
  void go_away(std::string reason);
  // Thread-safe. Closes the connection; every stream fails with connection_lost.
  void close(std::string reason);
  // Thread-safe. For a drained connection: no new streams, write out what is
  // queued, send TCP FIN, and close when the peer closes or after `linger`.
  void close_gracefully(std::string reason, std::chrono::milliseconds linger);
  bool closed() const { return closed_flag_.load(std::memory_order_relaxed); }

  bool usable() const { return usable_.load(std::memory_order_relaxed); }
  bool peer_going_away() const { return peer_goaway_.load(std::memory_order_relaxed); }
  std::size_t active_streams() const { return active_.load(std::memory_order_relaxed); }
  std::int64_t rtt_us() const { return rtt_us_.load(std::memory_order_relaxed); }
  std::uint64_t bytes_in() const { return bytes_in_.load(std::memory_order_relaxed); }
  std::uint64_t bytes_out() const { return bytes_out_.load(std::memory_order_relaxed); }
  const std::string& log_id() const { return options_.log_id; }
  asio::any_io_executor get_executor() const { return ex_; }
  // True when called from the thread running this connection's executor.
  bool on_this_thread() const { return ex_.running_in_this_thread(); }

  // Called by the origin's drain: a callback when no stream is left.
  void when_idle(std::function<void()> fn);

 private:
  friend class StreamState;

  asio::awaitable<void> reader();
  asio::awaitable<void> writer();
  asio::awaitable<void> keepalive();

  void register_stream(const std::shared_ptr<StreamState>& s, const Open& meta);
  void unregister(StreamState& s);
  void mark_ready(StreamState& s);
  void queue_control(FrameType type, std::uint32_t stream_id,
                     std::span<const std::uint8_t> payload);
  void queue_window(std::uint32_t stream_id, std::uint32_t increment);
  void wake_writer();
  bool handle_frame(const FrameHeader& h, std::span<const std::uint8_t> payload);
  void do_close(std::string reason);
  void check_idle();
  void reset_parked_streams();
  void finish_after_write(const std::shared_ptr<StreamState>& s);

  asio::io_context::executor_type ex_;
  TlsStream tls_;
  beast::flat_buffer in_;
  ConnectionOptions options_;
  asio::steady_timer wake_;
  asio::steady_timer ka_timer_;
  asio::steady_timer linger_;

  OpenHandler on_open_;
  CloseHandler on_close_;
  ControlHandler on_control_;
  std::function<void()> on_idle_;

  std::unordered_map<std::uint32_t, std::shared_ptr<StreamState>> streams_;
  std::deque<std::shared_ptr<StreamState>> ready_;
  std::vector<std::uint8_t> control_;
  std::vector<std::uint8_t> batch_;
  std::vector<std::shared_ptr<StreamState>> finished_;  // closed; FIN in the batch being written
  bool closed_ = false;
  bool writer_waiting_ = false;
  bool writing_ = false;       // a batch is being written
  bool graceful_ = false;      // close_gracefully() called
  bool tcp_fin_sent_ = false;  // TCP FIN sent (graceful close)
  std::uint32_t last_peer_id_ = 0;
  std::uint32_t next_id_ = 1;  // opener side; touched only on ex_
  bool goaway_sent_ = false;
  bool goaway_fence_ = false;  // GOAWAY sent, its fencing PING not answered yet
  std::string close_reason_;
  std::chrono::steady_clock::time_point last_rx_;

  std::atomic<bool> usable_{true};
  std::atomic<bool> closed_flag_{false};
  std::atomic<bool> peer_goaway_{false};
  std::atomic<std::size_t> active_{0};
  std::atomic<std::int64_t> rtt_us_{-1};
  std::atomic<std::uint64_t> bytes_in_{0};
  std::atomic<std::uint64_t> bytes_out_{0};
};

}  // namespace hearth::tunnel
