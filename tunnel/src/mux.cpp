#include "hearth/tunnel/mux.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>

#include "hearth/common/log.hpp"

namespace hearth::tunnel {
namespace {

constexpr std::size_t kSendBuffer = 64 * 1024;  // per stream, user bytes not yet framed
constexpr std::size_t kBatch = 64 * 1024;       // bytes per TLS write
constexpr std::size_t kReadChunk = 64 * 1024;   // bytes per TLS read
constexpr std::size_t kMaxControlQueue = 1 << 20;
// The opaque of the PING that follows our GOAWAY. Keepalive PINGs carry a
// positive microsecond clock, so all ones (-1) never collides with one.
constexpr std::array<std::uint8_t, 8> kGoawayFence{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr std::size_t kShrinkAbove = 16 * 1024;  // idle streams give memory back
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

std::span<const std::uint8_t> bytes_of(asio::const_buffer b) {
  return {static_cast<const std::uint8_t*>(b.data()), b.size()};
}

void log_spawn_error(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log::error("tunnel.bug", {{"what", ex.what()}});
  }
}

}  // namespace

// ---------------------------------------------------------------- StreamState

StreamState::StreamState(std::shared_ptr<Connection> conn, std::uint32_t id)
    : conn_(std::move(conn)), id_(id) {}

void StreamState::start_read(std::array<asio::mutable_buffer, kMaxIoBuffers> bufs,
                             std::size_t count, IoHandler handler, asio::any_io_executor user_ex,
                             bool wait_only) {
  asio::dispatch(conn_->ex_, [self = shared_from_this(), bufs, count, h = std::move(handler),
                              ex = std::move(user_ex), wait_only]() mutable {
    if (self->read_handler_) {
      // Two reads at once is a caller bug; fail the second rather than lose it.
      std::optional<IoHandler> second;
      second.emplace(std::move(h));
      self->complete(second, ex, asio::error::in_progress, 0);
      return;
    }
    self->read_bufs_ = bufs;
    self->read_count_ = count;
    self->read_wait_ = wait_only;
    self->read_handler_.emplace(std::move(h));
    self->read_ex_ = std::move(ex);
    self->do_read();
  });
}

void StreamState::start_write(std::array<asio::const_buffer, kMaxIoBuffers> bufs, std::size_t count,
                              IoHandler handler, asio::any_io_executor user_ex) {
  asio::dispatch(conn_->ex_, [self = shared_from_this(), bufs, count, h = std::move(handler),
                              ex = std::move(user_ex)]() mutable {
    if (self->write_handler_) {
      std::optional<IoHandler> second;
      second.emplace(std::move(h));
      self->complete(second, ex, asio::error::in_progress, 0);
      return;
    }
    self->write_bufs_ = bufs;
    self->write_count_ = count;
    self->write_handler_.emplace(std::move(h));
    self->write_ex_ = std::move(ex);
    self->do_write();
  });
}

void StreamState::complete(std::optional<IoHandler>& h, asio::any_io_executor& ex, error_code ec,
                           std::size_t n) {
  // Always post: a completion never runs inside the initiating call, and it
  // runs on the user's executor (which may be another worker thread).
  IoHandler handler(std::move(*h));
  h.reset();
  asio::post(ex, [handler = std::move(handler), ec, n]() mutable { std::move(handler)(ec, n); });
  ex = asio::any_io_executor();
}

void StreamState::do_read() {
  if (!read_handler_) return;
  if (read_wait_) {
    if (recv_.size() > 0) {  // bytes to read: the waiter reads them next
      complete(read_handler_, read_ex_, {}, 0);
      return;
    }
  } else if (recv_.size() > 0 || read_count_ == 0) {
    std::size_t n = 0;
    auto src = recv_.data();
    for (std::size_t i = 0; i < read_count_ && src.size() > 0; ++i) {
      std::size_t k = asio::buffer_copy(read_bufs_[i], src);
      src += k;
      n += k;
    }
    recv_.consume(n);
    // Emptied: give the buffer back. Most DATA goes straight into a waiting
    // reader's buffer (on_data); this one held only what arrived while nobody read.
    if (recv_.size() == 0) recv_.shrink_to_fit();
    on_consumed(n);
    complete(read_handler_, read_ex_, {}, n);
    return;
  }
  if (recv_error_) {
    complete(read_handler_, read_ex_, recv_error_, 0);
  } else if (recv_fin_) {
    complete(read_handler_, read_ex_, asio::error::eof, 0);
  }
  // else: parked until DATA, FIN, RESET or connection loss.
}

void StreamState::on_data(std::span<const std::uint8_t> payload) {
  std::size_t n = 0;
  if (read_handler_ && !read_wait_ && recv_.size() == 0 && read_count_ > 0) {
    // A reader waits: its buffers take the bytes straight from the decrypted
    // record. One copy less on the data path, and a stream whose reader keeps
    // up (an idle WebSocket) never allocates recv_ at all (issue 11).
    for (std::size_t i = 0; i < read_count_ && n < payload.size(); ++i) {
      n += asio::buffer_copy(read_bufs_[i], asio::buffer(payload.data() + n, payload.size() - n));
    }
    on_consumed(n);
    complete(read_handler_, read_ex_, {}, n);
    if (n == payload.size()) return;
  }
  auto rest = payload.subspan(n);
  auto dst = recv_.prepare(rest.size());
  std::memcpy(dst.data(), rest.data(), rest.size());
  recv_.commit(rest.size());
  do_read();
}

void StreamState::on_consumed(std::size_t n) {
  recv_unacked_ += static_cast<std::uint32_t>(n);
  // Grant credit back in quarter-window steps: few WINDOW frames, and the
  // sender never waits a full round trip while the reader keeps up.
  if (!recv_fin_ && !recv_error_ && registered_ && recv_unacked_ >= kInitialWindow / 4) {
    conn_->queue_window(id_, recv_unacked_);
    recv_window_ += recv_unacked_;
    recv_unacked_ = 0;
  }
}

void StreamState::do_write() {
  if (!write_handler_) return;
  if (send_error_) {
    complete(write_handler_, write_ex_, send_error_, 0);
    return;
  }
  if (fin_requested_ || closing_ || !registered_) {
    complete(write_handler_, write_ex_, asio::error::broken_pipe, 0);
    return;
  }
  std::size_t total = 0;
  for (std::size_t i = 0; i < write_count_; ++i) total += write_bufs_[i].size();
  if (total == 0) {
    complete(write_handler_, write_ex_, {}, 0);
    return;
  }
  std::size_t space = kSendBuffer > send_.size() ? kSendBuffer - send_.size() : 0;
  if (space == 0) return;  // parked until the writer drains this stream
  std::size_t n = std::min(total, space);
  auto dst = send_.prepare(n);
  std::size_t copied = 0;
  for (std::size_t i = 0; i < write_count_ && copied < n; ++i) {
    copied += asio::buffer_copy(dst + copied, write_bufs_[i], n - copied);
  }
  send_.commit(copied);
  conn_->mark_ready(*this);
  complete(write_handler_, write_ex_, {}, copied);
}

void StreamState::fail_pending(error_code ec) {
  reusable_.store(false, std::memory_order_relaxed);
  // After FIN every byte has arrived: the reader still gets them and then EOF
  // (a RESET right behind a FIN only says "stop sending").
  if (!recv_error_ && !recv_fin_) recv_error_ = ec;
  if (!send_error_) send_error_ = ec;
  send_.clear();
  do_read();
  do_write();
}

bool StreamState::wants_writer() const {
  if (send_.size() > 0) return send_window_ > 0;
  return fin_requested_ && !fin_sent_;
}

void StreamState::shutdown_send() {
  reusable_.store(false, std::memory_order_relaxed);
  asio::dispatch(conn_->ex_, [self = shared_from_this()] {
    if (self->fin_requested_ || self->send_error_) return;
    self->fin_requested_ = true;
    self->conn_->mark_ready(*self);
  });
}

void StreamState::reset(ResetCode code, std::string reason) {
  asio::dispatch(conn_->ex_, [self = shared_from_this(), code, reason = std::move(reason)] {
    if (!self->registered_) return;
    auto payload = encode_payload(Reset{code, reason});
    self->conn_->queue_control(FrameType::reset, self->id_, payload);
    self->fail_pending(asio::error::operation_aborted);
    self->conn_->unregister(*self);
  });
}

void StreamState::close() {
  asio::dispatch(conn_->ex_, [self = shared_from_this()] {
    if (self->closing_) return;
    self->closing_ = true;
    // The user is gone: nobody may wait on this stream any more.
    if (self->read_handler_)
      self->complete(self->read_handler_, self->read_ex_, asio::error::operation_aborted, 0);
    if (self->write_handler_)
      self->complete(self->write_handler_, self->write_ex_, asio::error::operation_aborted, 0);
    if (!self->registered_) return;
    if (self->fin_requested_ && !self->send_error_) {
      // Graceful: the bytes already written still go out, then FIN.
      if (self->fin_sent_) {
        self->conn_->finish_after_write(self);
      } else {
        self->conn_->mark_ready(*self);
      }
      return;
    }
    auto payload = encode_payload(Reset{ResetCode::cancel, {}});
    self->conn_->queue_control(FrameType::reset, self->id_, payload);
    self->conn_->unregister(*self);
  });
}

void StreamState::finish_close() {
  if (!registered_) return;
  if (!recv_fin_ && !recv_error_) {
    // We sent everything but the peer is still sending: tell it to stop.
    auto payload = encode_payload(Reset{ResetCode::cancel, {}});
    conn_->queue_control(FrameType::reset, id_, payload);
  }
  conn_->unregister(*this);
}

// ----------------------------------------------------------------- Connection

Connection::Connection(asio::io_context::executor_type ex, TlsStream tls,
                       beast::flat_buffer leftover, ConnectionOptions options)
    : ex_(ex),
      tls_(std::move(tls)),
      in_(std::move(leftover)),
      options_(std::move(options)),
      wake_(ex_),
      ka_timer_(ex_),
      linger_(ex_),
      last_rx_(std::chrono::steady_clock::now()) {}

Connection::~Connection() = default;

void Connection::start(OpenHandler on_open, CloseHandler on_close) {
  on_open_ = std::move(on_open);
  on_close_ = std::move(on_close);
  tls_.expires_never();
  asio::co_spawn(ex_, reader(), log_spawn_error);
  asio::co_spawn(ex_, writer(), log_spawn_error);
  asio::co_spawn(ex_, keepalive(), log_spawn_error);
}

std::optional<TunnelStream> Connection::open_stream(Open meta, asio::any_io_executor user_ex) {
  if (!usable_.load(std::memory_order_relaxed) || !options_.opener) return std::nullopt;
  // The id is assigned on the connection's thread, at registration: OPEN
  // frames must go out in increasing id order, and streams opened from
  // several worker threads reach this connection in post order, not in the
  // order an atomic counter would have numbered them.
  auto s = std::make_shared<StreamState>(shared_from_this(), 0);
  active_.fetch_add(1, std::memory_order_relaxed);
  if (ex_.running_in_this_thread()) {
    register_stream(s, meta);
  } else {
    // Operations the user starts next are posted from the same thread, so
    // they run after this registration.
    asio::post(ex_, [self = shared_from_this(), s, meta = std::move(meta)] {
      self->register_stream(s, meta);
    });
  }
  return TunnelStream(std::move(s), std::move(user_ex));
}

void Connection::register_stream(const std::shared_ptr<StreamState>& s, const Open& meta) {
  if (closed_ || next_id_ > kMaxStreamId) {
    active_.fetch_sub(1, std::memory_order_relaxed);
    s->fail_pending(closed_ ? Errc::connection_lost : Errc::draining);
    if (!closed_) go_away("stream ids exhausted");
    return;
  }
  s->id_.store(next_id_++, std::memory_order_relaxed);
  s->registered_ = true;
  streams_.emplace(s->id(), s);
  auto payload = encode_payload(meta);
  queue_control(FrameType::open, s->id(), payload);
}

void Connection::unregister(StreamState& s) {
  if (!s.registered_) return;
  s.registered_ = false;
  s.reusable_.store(false, std::memory_order_relaxed);
  streams_.erase(s.id_);
  active_.fetch_sub(1, std::memory_order_relaxed);
  check_idle();
}

void Connection::finish_after_write(const std::shared_ptr<StreamState>& s) {
  // Our FIN may be in the batch being written right now: see writer().
  if (writing_) {
    finished_.push_back(s);
  } else {
    s->finish_close();
  }
}

void Connection::close_gracefully(std::string reason, std::chrono::milliseconds linger) {
  asio::dispatch(ex_, [self = shared_from_this(), reason = std::move(reason), linger]() mutable {
    if (self->closed_ || self->graceful_) return;
    self->graceful_ = true;
    self->usable_.store(false);
    self->close_reason_ = std::move(reason);
    self->wake_writer();
    // The peer answers our TCP FIN by closing; if it does not, stop waiting.
    self->linger_.expires_after(linger);
    self->linger_.async_wait([self](error_code ec) {
      if (!ec) self->do_close(self->close_reason_);
    });
  });
}

void Connection::check_idle() {
  if (on_idle_ && streams_.empty() && !goaway_fence_) {
    auto fn = std::move(on_idle_);
    on_idle_ = nullptr;
    fn();
  }
}

void Connection::reset_parked_streams() {
  // A parked stream has no exchange in progress (no pending user operation):
  // the peer is draining and waits for its streams to end, so end these now.
  // A user that un-parks one at the same moment sees its next operation fail
  // with `draining` and retries elsewhere.
  std::vector<std::shared_ptr<StreamState>> parked;
  for (auto& [id, s] : streams_) {
    if (s->parked_.load(std::memory_order_relaxed) && !s->read_handler_ && !s->write_handler_ &&
        s->send_.size() == 0) {
      parked.push_back(s);
    }
  }
  for (auto& s : parked) {
    auto payload = encode_payload(Reset{ResetCode::draining, "peer is draining"});
    queue_control(FrameType::reset, s->id(), payload);
    s->fail_pending(Errc::draining);
    unregister(*s);
  }
}

void Connection::when_idle(std::function<void()> fn) {
  asio::dispatch(ex_, [self = shared_from_this(), fn = std::move(fn)]() mutable {
    self->on_idle_ = std::move(fn);
    self->check_idle();
  });
}

void Connection::mark_ready(StreamState& s) {
  if (s.in_ready_ || !s.registered_ || !s.wants_writer()) return;
  s.in_ready_ = true;
  ready_.push_back(s.shared_from_this());
  wake_writer();
}

void Connection::queue_control(FrameType type, std::uint32_t stream_id,
                               std::span<const std::uint8_t> payload) {
  if (closed_) return;
  append_frame(control_, type, stream_id, payload);
  wake_writer();
}

void Connection::queue_window(std::uint32_t stream_id, std::uint32_t increment) {
  if (closed_) return;
  append_window(control_, stream_id, increment);
  wake_writer();
}

void Connection::wake_writer() {
  if (writer_waiting_) wake_.cancel();
}

void Connection::go_away(std::string reason) {
  asio::dispatch(ex_, [self = shared_from_this(), reason = std::move(reason)] {
    self->usable_.store(false);
    if (self->goaway_sent_ || self->closed_) return;
    self->goaway_sent_ = true;
    // The last stream the peer opened that we took (the opener takes none).
    GoAway g{self->last_peer_id_, reason};
    auto payload = encode_payload(g);
    self->queue_control(FrameType::goaway, 0, payload);
    // An OPEN the peer sent before it read our GOAWAY may still be on the
    // wire. Fence it with a PING: its PONG comes after every such OPEN (one
    // ordered byte stream), and each is answered RESET draining, which the
    // edge retries elsewhere. Until then the connection does not count as
    // idle, so a drain does not close under those OPENs.
    self->goaway_fence_ = true;
    append_ping(self->control_, FrameType::ping, kGoawayFence);
    log::info("tunnel.goaway_sent", {{"conn", self->options_.log_id}, {"reason", reason}});
  });
}

void Connection::send_control(FrameType type, std::vector<std::uint8_t> payload) {
  asio::dispatch(ex_, [self = shared_from_this(), type, payload = std::move(payload)] {
    if (self->closed_) return;
    self->queue_control(type, 0, payload);
  });
}

void Connection::close(std::string reason) {
  asio::dispatch(ex_, [self = shared_from_this(), reason = std::move(reason)]() mutable {
    self->do_close(std::move(reason));
  });
}

void Connection::do_close(std::string reason) {
  if (closed_) return;
  closed_ = true;
  closed_flag_.store(true);
  usable_.store(false);
  close_reason_ = reason;
  error_code ignored;
  // No TLS close_notify: the peer learns from the TCP close, and a bounded
  // goodbye (GOAWAY, then drain) happens before this where it matters.
  tls_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  tls_.close();
  wake_.cancel();
  ka_timer_.cancel();
  linger_.cancel();
  auto streams = std::move(streams_);
  streams_.clear();
  ready_.clear();
  for (auto& [id, s] : streams) {
    s->registered_ = false;
    s->fail_pending(Errc::connection_lost);
  }
  active_.store(0);
  on_open_ = nullptr;
  on_control_ = nullptr;  // it may hold the connection's owner: break the cycle
  if (auto cb = std::move(on_close_)) {
    on_close_ = nullptr;
    cb(reason);
  }
  if (auto fn = std::move(on_idle_)) {
    on_idle_ = nullptr;
    fn();
  }
}

asio::awaitable<void> Connection::reader() {
  auto self = shared_from_this();
  for (;;) {
    for (;;) {
      auto avail = in_.data();
      auto span = bytes_of(avail);
      HeaderDecode hd = decode_header(span);
      if (hd.status == DecodeStatus::need_more) break;
      if (hd.status == DecodeStatus::error) {
        log::warn("tunnel.protocol_error", {{"conn", options_.log_id}, {"error", hd.error}});
        do_close(std::string("protocol error: ") + std::string(hd.error));
        co_return;
      }
      std::size_t total = kFrameHeaderSize + hd.header.length;
      if (span.size() < total) break;
      if (!handle_frame(hd.header, span.subspan(kFrameHeaderSize, hd.header.length))) co_return;
      in_.consume(total);
    }
    if (closed_) co_return;
    auto [ec, n] = co_await tls_.async_read_some(in_.prepare(kReadChunk), tuple_awaitable);
    if (ec) {
      // stream_truncated: the peer closed TCP without close_notify. For us
      // that is an ordinary disconnect (all framing is ours), not an attack.
      std::string why = (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated)
                            ? "peer closed the connection"
                            : "read failed: " + ec.message();
      do_close(closed_ ? close_reason_ : why);
      co_return;
    }
    in_.commit(n);
    bytes_in_.fetch_add(n, std::memory_order_relaxed);
    last_rx_ = std::chrono::steady_clock::now();
  }
}

bool Connection::handle_frame(const FrameHeader& h, std::span<const std::uint8_t> payload) {
  auto protocol_error = [&](std::string_view what) {
    log::warn("tunnel.protocol_error", {{"conn", options_.log_id},
                                        {"frame", to_string(h.type)},
                                        {"stream", h.stream_id},
                                        {"error", what}});
    do_close("protocol error: " + std::string(what));
    return false;
  };
  auto find = [&]() -> StreamState* {
    auto it = streams_.find(h.stream_id);
    return it == streams_.end() ? nullptr : it->second.get();
  };

  switch (h.type) {
    case FrameType::data: {
      StreamState* s = find();
      if (!s) return true;  // a stream we already reset: its late bytes are dropped
      if (s->recv_fin_) return protocol_error("DATA after FIN");
      if (h.length > s->recv_window_) return protocol_error("flow-control window exceeded");
      s->recv_window_ -= h.length;
      if (s->closing_) {
        // Nobody reads any more; the stream is flushing FIN and will reset.
        return true;
      }
      s->on_data(payload);
      return true;
    }
    case FrameType::fin: {
      StreamState* s = find();
      if (!s) return true;
      if (s->recv_fin_) return protocol_error("second FIN");
      s->recv_fin_ = true;
      s->reusable_.store(false, std::memory_order_relaxed);
      s->do_read();
      if (s->closing_ && s->fin_sent_) finish_after_write(s->shared_from_this());
      return true;
    }
    case FrameType::reset: {
      auto r = decode_reset(payload);
      if (!r) return protocol_error("malformed RESET");
      StreamState* s = find();
      if (!s) return true;
      s->fail_pending(error_for(r->code));
      unregister(*s);
      return true;
    }
    case FrameType::window: {
      auto inc = decode_window(payload);
      if (!inc) return protocol_error("malformed WINDOW");
      StreamState* s = find();
      if (!s) return true;
      if (std::uint64_t{s->send_window_} + *inc > (1u << 31)) {
        return protocol_error("window overflow");
      }
      s->send_window_ += *inc;
      mark_ready(*s);
      return true;
    }
    case FrameType::open: {
      if (options_.opener) return protocol_error("OPEN from the accepting side");
      if (h.stream_id <= last_peer_id_) return protocol_error("stream id not increasing");
      last_peer_id_ = h.stream_id;
      auto meta = decode_open(payload);
      if (!meta) return protocol_error("malformed OPEN");
      if (goaway_sent_ || !on_open_ || streams_.size() >= options_.max_streams) {
        auto p = encode_payload(Reset{goaway_sent_ ? ResetCode::draining : ResetCode::internal,
                                      goaway_sent_ ? "draining" : "too many streams"});
        queue_control(FrameType::reset, h.stream_id, p);
        return true;
      }
      auto s = std::make_shared<StreamState>(shared_from_this(), h.stream_id);
      s->registered_ = true;
      streams_.emplace(h.stream_id, s);
      active_.fetch_add(1, std::memory_order_relaxed);
      on_open_(TunnelStream(std::move(s), ex_), std::move(*meta));
      return true;
    }
    case FrameType::ping: {
      if (control_.size() > kMaxControlQueue) return protocol_error("control frames flood");
      std::array<std::uint8_t, 8> opaque{};
      std::memcpy(opaque.data(), payload.data(), 8);
      append_ping(control_, FrameType::pong, opaque);
      wake_writer();
      return true;
    }
    case FrameType::pong: {
      if (goaway_fence_ && std::memcmp(payload.data(), kGoawayFence.data(), 8) == 0) {
        goaway_fence_ = false;
        check_idle();
        return true;
      }
      std::int64_t sent = 0;
      for (int i = 0; i < 8; ++i) sent = (sent << 8) | payload[static_cast<std::size_t>(i)];
      std::int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
      if (sent > 0 && now >= sent) rtt_us_.store(now - sent);
      return true;
    }
    case FrameType::goaway: {
      auto g = decode_goaway(payload);
      if (!g) return protocol_error("malformed GOAWAY");
      peer_goaway_.store(true);
      usable_.store(false);
      log::info("tunnel.goaway_received", {{"conn", options_.log_id}, {"reason", g->reason}});
      reset_parked_streams();
      return true;
    }
    case FrameType::publish:
    case FrameType::published: {
      if (!on_control_) return protocol_error("unexpected frame");
      if (control_.size() > kMaxControlQueue) return protocol_error("control frames flood");
      if (!on_control_(h.type, payload)) return protocol_error("malformed control frame");
      return true;
    }
    case FrameType::hello:
    case FrameType::welcome:
    case FrameType::reject:
      return protocol_error("handshake frame after handshake");
  }
  return protocol_error("unexpected frame");
}

asio::awaitable<void> Connection::writer() {
  auto self = shared_from_this();
  for (;;) {
    if (closed_) co_return;
    if (control_.empty() && ready_.empty() && graceful_ && !tcp_fin_sent_) {
      // Everything queued is written: FIN the TCP connection. Closing the
      // socket at once could lose what the kernel still holds (a close with
      // unread input sends RST); the reader ends on the peer's close.
      tcp_fin_sent_ = true;
      error_code ignored;
      tls_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    }
    if (control_.empty() && ready_.empty()) {
      writer_waiting_ = true;
      wake_.expires_at(std::chrono::steady_clock::time_point::max());
      co_await wake_.async_wait(tuple_awaitable);
      writer_waiting_ = false;
      continue;
    }
    batch_.clear();
    std::swap(batch_, control_);  // control frames first
    // Round robin: one DATA frame per stream per turn.
    while (!ready_.empty() && batch_.size() < kBatch) {
      auto s = std::move(ready_.front());
      ready_.pop_front();
      s->in_ready_ = false;
      if (!s->registered_) continue;
      std::size_t chunk = std::min<std::size_t>(
          {s->send_.size(), std::size_t{s->send_window_}, std::size_t{kMaxDataPayload}});
      if (chunk > 0) {
        auto data = bytes_of(s->send_.data()).first(chunk);
        append_frame(batch_, FrameType::data, s->id(), data);
        s->send_.consume(chunk);
        s->send_window_ -= static_cast<std::uint32_t>(chunk);
        // Empty with no write parked: give the buffer back (an idle stream
        // holds none; the next write allocates what it needs).
        if (s->send_.size() == 0 && (!s->write_handler_ || s->send_.capacity() > kShrinkAbove)) {
          s->send_.shrink_to_fit();
        }
        s->do_write();  // a parked write may fit now
      }
      if (s->send_.size() == 0 && s->fin_requested_ && !s->fin_sent_) {
        append_frame(batch_, FrameType::fin, s->id(), {});
        s->fin_sent_ = true;
        // Leave the map only once this batch is written: unregistering can
        // make the connection idle, and an origin's drain closes an idle
        // connection at once, which would cut this batch (the stream's last
        // bytes and its FIN) short.
        if (s->closing_) finished_.push_back(s);
      }
      mark_ready(*s);
    }
    if (batch_.empty()) continue;
    writing_ = true;
    auto [ec, n] = co_await asio::async_write(tls_, asio::buffer(batch_), tuple_awaitable);
    writing_ = false;
    for (auto& s : finished_) s->finish_close();
    finished_.clear();
    if (ec) {
      do_close(closed_ ? close_reason_ : "write failed: " + ec.message());
      co_return;
    }
    bytes_out_.fetch_add(n, std::memory_order_relaxed);
    if (batch_.capacity() > 4 * kBatch) {
      batch_.clear();
      batch_.shrink_to_fit();
    }
  }
}

asio::awaitable<void> Connection::keepalive() {
  auto self = shared_from_this();
  // Wake for whichever comes first: the next PING, or the moment the peer
  // will have been silent for keepalive_timeout (checking only at PING
  // ticks would add up to one interval to the detection time).
  using clock = std::chrono::steady_clock;
  auto next_ping = clock::now() + options_.keepalive_interval;
  while (!closed_) {
    ka_timer_.expires_at(std::min(next_ping, last_rx_ + options_.keepalive_timeout));
    co_await ka_timer_.async_wait(tuple_awaitable);
    if (closed_) co_return;
    auto now = clock::now();
    if (now - last_rx_ >= options_.keepalive_timeout) {
      log::warn("tunnel.keepalive_timeout",
                {{"conn", options_.log_id},
                 {"silent_ms",
                  std::chrono::duration_cast<std::chrono::milliseconds>(now - last_rx_).count()}});
      do_close("keepalive timeout");
      co_return;
    }
    if (now < next_ping) continue;
    next_ping = now + options_.keepalive_interval;
    std::int64_t us =
        std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
    std::array<std::uint8_t, 8> opaque{};
    for (int i = 7; i >= 0; --i) {
      opaque[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(us & 0xff);
      us >>= 8;
    }
    append_ping(control_, FrameType::ping, opaque);
    wake_writer();
  }
}

}  // namespace hearth::tunnel
