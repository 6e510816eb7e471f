// The HTTP/2 front end: libnghttp2 (Debian 12's 1.52, pre-1.60 API) driven
// from Asio as nghttp2-asio's server does: one reader coroutine feeding
// nghttp2_session_mem_recv, one writer coroutine draining
// nghttp2_session_mem_send; nghttp2's callbacks only record and signal, they
// never write. Each stream is a Downstream driven by its own exchange
// coroutine (exchange/), so every HTTP rule applies to both protocols.
//
// Flow control end to end: automatic WINDOW_UPDATE is off; a stream's
// received bytes are released (nghttp2_session_consume) only when the
// exchange comes back for more, i.e. after its tunnel stream accepted the
// previous bytes. Responses go through a deferred data provider that holds
// at most two relay chunks per stream: the exchange reads the tunnel stream
// only as the client's window lets nghttp2 take bytes out. A slow stream
// stalls only itself; the tunnel's own per-stream windows hold the rest.

#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <unordered_map>

#include "exchange/exchange.hpp"
#include "h2/flood_guard.hpp"
#include "h2/h2_head.hpp"
#include "hearth/common/log.hpp"
#include "hearth/edge/http_rules.hpp"
#include "hearth/edge/policy.hpp"
#include "support/asio.hpp"
#include "tls/authority.hpp"
#include "tls/client_conn.hpp"

namespace hearth::edge {
namespace {

namespace beast = boost::beast;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadBuffer = 16 * 1024;
constexpr std::size_t kWriteBatch = 64 * 1024;  // bytes gathered from mem_send per TLS write
constexpr std::size_t kOutChunk = 16 * 1024;    // response bytes a stream may hold
// Frames nghttp2 may hold for us to send before the reader stops reading
// the client (a client that sends but does not read must not grow it).
constexpr std::size_t kMaxOutboundQueue = 512;
constexpr auto kTick = std::chrono::milliseconds(250);
constexpr std::size_t kMaxIdleSlots = 16;  // parked tunnel streams per h2 connection

class H2Session;

std::string random_ws_key() {
  unsigned char raw[16];
  RAND_bytes(raw, sizeof raw);
  unsigned char out[32];
  int n = EVP_EncodeBlock(out, raw, sizeof raw);
  return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
}

// Wakes one coroutine waiting on it (a timer that never expires, cancelled).
class Signal {
 public:
  explicit Signal(asio::any_io_executor ex) : timer_(std::move(ex)) {}
  asio::awaitable<void> wait() {
    timer_.expires_at(Clock::time_point::max());
    co_await timer_.async_wait(tuple_awaitable);
  }
  void notify() { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
};

class H2Stream final : public Downstream, public std::enable_shared_from_this<H2Stream> {
 public:
  H2Stream(H2Session& session, std::int32_t id, asio::any_io_executor ex)
      : session_(session), id_(id), rd_(ex), wr_(ex) {}

  const char* protocol() const override { return "h2"; }
  std::size_t response_chunk() const override { return kOutChunk; }  // one DATA frame
  http::request<http::buffer_body>& request() override { return req_; }
  bool body_pending() const override { return !recv_end_ || recv_.size() > 0; }
  void set_body_limit(std::uint64_t limit) override { max_body_ = limit; }
  void set_idle_timeout(std::chrono::milliseconds limit) override { idle_ = limit; }
  std::optional<std::uint64_t> body_length() const override {
    auto n = req_.find(http::field::content_length);
    if (n == req_.end()) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : n->value()) v = v * 10 + static_cast<unsigned>(c - '0');
    return v;
  }
  bool client_keep_alive() const override { return true; }
  DownstreamState state() const override { return state_; }

  asio::awaitable<BodyRead> read_body(asio::mutable_buffer b) override;
  asio::awaitable<error_code> write_interim(const http::response_header<>& res) override;
  asio::awaitable<error_code> write_head(http::response_header<>& res, bool end) override;
  asio::awaitable<error_code> write_body(asio::const_buffer data, bool end) override;
  asio::awaitable<error_code> reply(const LocalReply& r, std::string_view request_id) override;
  void stop_reading() override;
  void cancel() override {
    cancelled_ = true;
    rd_.notify();
    wr_.notify();
  }
  void abort() override;

  // From the session (nghttp2 callbacks).
  void on_data(const std::uint8_t* p, std::size_t n) {
    recv_.commit(asio::buffer_copy(recv_.prepare(n), asio::buffer(p, n)));
    rd_.notify();
  }
  void on_end_stream() {
    recv_end_ = true;
    rd_.notify();
  }
  // The stream is gone from nghttp2 (closed, or reset by either side).
  void on_closed(std::uint32_t error_code);
  ssize_t read_data(std::uint8_t* buf, std::size_t length, std::uint32_t* flags);
  void after_end_stream_sent();

  H2Session& session_;
  std::int32_t id_;
  std::vector<H2Field> fields_;
  std::size_t header_bytes_ = 0;
  bool too_large_ = false;  // header list over max_header_size: 431
  bool started_ = false;    // the exchange runs
  bool done_ = false;       // the exchange ended
  bool closed_ = false;     // nghttp2 closed the stream
  bool abandoned_ = false;  // ... before our whole response was handed over (a reset)
  UpstreamSlot slot_;
  Clock::time_point last_progress_ = Clock::now();

 private:
  std::vector<nghttp2_nv> make_nva(const http::response_header<>& res, std::string& status,
                                   std::vector<std::string>& names, bool upgrade);
  bool submit(const http::response_header<>& res, bool end, bool upgrade);
  error_code gone() const {
    if (closed_ && abandoned_) return asio::error::connection_reset;
    if (cancelled_) return asio::error::operation_aborted;
    return {};
  }

  http::request<http::buffer_body> req_;
  beast::flat_buffer recv_;     // bounded by the stream window we grant
  std::size_t unconsumed_ = 0;  // handed to the exchange, window not yet returned
  std::uint64_t body_bytes_ = 0;
  std::chrono::milliseconds idle_{0};  // the request policy's idle_timeout (0: [edge]'s)
  std::uint64_t max_body_ = 0;  // max_body_size of the config when the stream began (0: none)
  bool recv_end_ = false;
  std::string out_;  // response bytes for the data provider
  bool out_end_ = false;
  bool rst_after_end_ = false;
  bool end_sent_ = false;  // our END_STREAM went out
  bool cancelled_ = false;
  DownstreamState state_ = DownstreamState::head_read;
  Signal rd_, wr_;

  friend class H2Session;
};

class H2Session : public std::enable_shared_from_this<H2Session> {
 public:
  explicit H2Session(std::shared_ptr<ClientConn> conn)
      : conn_(std::move(conn)),
        shared_(conn_->shared),
        cfg_(shared_->config()),
        ex_(conn_->tls.get_executor()),
        write_signal_(ex_),
        read_gate_(ex_),
        tick_(ex_) {}
  ~H2Session() {
    if (session_) nghttp2_session_del(session_);
  }

  asio::awaitable<void> run();

  nghttp2_session* ng() { return session_; }
  void signal_write() { write_signal_.notify(); }
  ExchangeEnv env() const { return env_; }
  void exchange_done(H2Stream& s) {
    s.done_ = true;
    --live_exchanges_;
    last_activity_ = Clock::now();
    signal_write();
  }
  std::uint64_t id() const { return conn_->id; }

  // Parked tunnel streams (their service connections kept alive) for the
  // next streams of this connection, as HTTP/1.1 keeps one per connection.
  void take_slot(UpstreamSlot& slot) {
    if (idle_slots_.empty()) return;
    slot = std::move(idle_slots_.back());
    idle_slots_.pop_back();
  }
  void return_slot(UpstreamSlot& slot) {
    if (slot.parked() && !closing_ && idle_slots_.size() < kMaxIdleSlots) {
      idle_slots_.push_back(std::move(slot));
    }
    slot.clear();
  }

 private:
  bool init();
  asio::awaitable<void> reader();
  asio::awaitable<void> writer();
  asio::awaitable<void> ticker();
  void start_ready_streams();
  void fail(nghttp2_error_code code, const char* why);
  void close_all_streams();
  H2Stream* stream(std::int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  // nghttp2 callbacks: record and signal only.
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud);
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* ud);
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t flags, void* ud);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* ud);
  static int on_data_chunk(nghttp2_session*, std::uint8_t flags, std::int32_t id,
                           const std::uint8_t* data, std::size_t len, void* ud);
  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* ud);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* f, void* ud);

  std::shared_ptr<ClientConn> conn_;
  std::shared_ptr<EdgeShared> shared_;
  std::shared_ptr<const config::EdgeConfig> cfg_;  // connection settings only
  asio::any_io_executor ex_;
  nghttp2_session* session_ = nullptr;
  ExchangeEnv env_;
  std::unordered_map<std::int32_t, std::shared_ptr<H2Stream>> streams_;
  std::vector<std::shared_ptr<H2Stream>> ready_;  // head complete, exchange to start
  std::vector<UpstreamSlot> idle_slots_;
  Signal write_signal_;
  Signal read_gate_;
  asio::steady_timer tick_;
  FloodGuard flood_;
  std::size_t header_block_bytes_ = 0;  // HEADERS + CONTINUATION of the block being read
  std::size_t live_exchanges_ = 0;
  bool closing_ = false;
  bool goaway_sent_ = false;
  bool ever_stream_ = false;
  bool writer_busy_ = false;
  Clock::time_point last_activity_ = Clock::now();
  Clock::time_point started_ = Clock::now();
};

// ---- H2Stream ----

asio::awaitable<BodyRead> H2Stream::read_body(asio::mutable_buffer b) {
  // The previous bytes reached the tunnel stream: give their window back.
  if (unconsumed_ > 0 && !closed_) {
    nghttp2_session_consume(session_.ng(), id_, unconsumed_);
    unconsumed_ = 0;
    session_.signal_write();
  }
  while (recv_.size() == 0 && !recv_end_ && !closed_ && !cancelled_) co_await rd_.wait();
  if (recv_.size() == 0 && !recv_end_)
    co_return BodyRead{closed_ ? error_code(asio::error::connection_reset) : gone(), 0, false};
  std::size_t n = asio::buffer_copy(b, recv_.data());
  recv_.consume(n);
  body_bytes_ += n;
  if (max_body_ > 0 && body_bytes_ > max_body_ && state_ != DownstreamState::upgraded) {
    // As Beast's body_limit on HTTP/1.1: 413, and the tunnel stream is reset.
    co_return BodyRead{http::error::body_limit, 0, false};
  }
  last_progress_ = Clock::now();
  bool end = recv_end_ && recv_.size() == 0;
  if (end || closed_) {
    if (n > 0) nghttp2_session_consume(session_.ng(), id_, n);
    session_.signal_write();
  } else {
    unconsumed_ += n;
  }
  if (recv_.size() == 0 && recv_.capacity() > kOutChunk) recv_.shrink_to_fit();
  co_return BodyRead{{}, n, end};
}

std::vector<nghttp2_nv> H2Stream::make_nva(const http::response_header<>& res, std::string& status,
                                           std::vector<std::string>& names, bool upgrade) {
  status = upgrade ? "200" : std::to_string(res.result_int());
  std::vector<nghttp2_nv> nva;
  names.reserve(static_cast<std::size_t>(std::distance(res.begin(), res.end())));
  auto nv = [](const std::string& n, std::string_view v) {
    return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                      reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(),
                      v.size(), NGHTTP2_NV_FLAG_NONE};
  };
  static const std::string kStatus = ":status";
  nva.push_back(nv(kStatus, status));
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    // Connection-specific fields do not exist in HTTP/2 (RFC 9113 8.2.2).
    if (name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
        name == "transfer-encoding" || name == "upgrade" || name.empty()) {
      continue;
    }
    if (upgrade && (name == "sec-websocket-accept")) continue;
    names.push_back(std::move(name));
    nva.push_back(nv(names.back(), std::string_view(f.value().data(), f.value().size())));
  }
  return nva;
}

bool H2Stream::submit(const http::response_header<>& res, bool end, bool upgrade) {
  std::string status;
  std::vector<std::string> names;
  auto nva = make_nva(res, status, names, upgrade);
  nghttp2_data_provider prd;
  prd.source.ptr = this;
  prd.read_callback = [](nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                         std::uint32_t* flags, nghttp2_data_source* src, void*) -> ssize_t {
    return static_cast<H2Stream*>(src->ptr)->read_data(buf, length, flags);
  };
  int rv =
      nghttp2_submit_response(session_.ng(), id_, nva.data(), nva.size(), end ? nullptr : &prd);
  session_.signal_write();
  return rv == 0;
}

ssize_t H2Stream::read_data(std::uint8_t* buf, std::size_t length, std::uint32_t* flags) {
  std::size_t n = std::min(length, out_.size());
  std::memcpy(buf, out_.data(), n);
  out_.erase(0, n);
  if (n > 0) last_progress_ = Clock::now();
  if (out_.size() < kOutChunk) wr_.notify();
  if (out_.empty() && out_end_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
  if (n == 0) return NGHTTP2_ERR_DEFERRED;
  return static_cast<ssize_t>(n);
}

asio::awaitable<error_code> H2Stream::write_interim(const http::response_header<>& res) {
  if (auto ec = gone()) co_return ec;
  std::string status;
  std::vector<std::string> names;
  auto nva = make_nva(res, status, names, false);
  nghttp2_submit_headers(session_.ng(), NGHTTP2_FLAG_NONE, id_, nullptr, nva.data(), nva.size(),
                         nullptr);
  session_.signal_write();
  co_return error_code{};
}

asio::awaitable<error_code> H2Stream::write_head(http::response_header<>& res, bool end) {
  if (auto ec = gone()) co_return ec;
  const bool upgrade = res.result_int() == 101;
  if (end && !upgrade) out_end_ = true;
  if (!submit(res, end && !upgrade, upgrade)) co_return asio::error::connection_reset;
  state_ = upgrade ? DownstreamState::upgraded
                   : (end ? DownstreamState::response_done : DownstreamState::response_started);
  co_return error_code{};
}

asio::awaitable<error_code> H2Stream::write_body(asio::const_buffer data, bool end) {
  if (auto ec = gone()) co_return ec;
  out_.append(static_cast<const char*>(data.data()), data.size());
  if (end) out_end_ = true;
  nghttp2_session_resume_data(session_.ng(), id_);
  session_.signal_write();
  // Backpressure: the exchange reads the tunnel again only when nghttp2 took
  // the bytes (the client's window allowed them); at the end, only when all
  // are handed over.
  while (!gone() && (end ? !out_.empty() : out_.size() >= kOutChunk)) co_await wr_.wait();
  if (auto ec = gone()) co_return ec;
  if (end && state_ != DownstreamState::upgraded) state_ = DownstreamState::response_done;
  co_return error_code{};
}

asio::awaitable<error_code> H2Stream::reply(const LocalReply& r, std::string_view request_id) {
  cancelled_ = false;  // a watchdog's 504 still goes out
  if (closed_) co_return asio::error::connection_reset;
  auto res = make_error_response(r.status, 11, true, r.retry_after, request_id);
  if (!r.www_authenticate.empty()) res.set(http::field::www_authenticate, r.www_authenticate);
  policy::decorate_local_reply(r.policy, res);  // error page, security headers (issue 9)
  const bool head = req_.method() == http::verb::head;
  res.prepare_payload();
  out_ = head ? std::string() : res.body();
  out_end_ = true;
  if (!submit(res.base(), head || out_.empty(), false)) co_return asio::error::connection_reset;
  state_ = DownstreamState::response_done;
  co_return error_code{};
}

void H2Stream::stop_reading() {
  if (closed_ || recv_end_) return;
  // RFC 9113 8.1: a complete response may end the stream with
  // RST_STREAM(NO_ERROR) so the client stops sending the body.
  rst_after_end_ = true;
  if (end_sent_) {
    nghttp2_submit_rst_stream(session_.ng(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
    session_.signal_write();
  }
}

void H2Stream::after_end_stream_sent() {
  end_sent_ = true;
  if (rst_after_end_ && !closed_ && !recv_end_) {
    nghttp2_submit_rst_stream(session_.ng(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
  }
}

void H2Stream::abort() {
  if (slot_.stream) slot_.stream->reset(tunnel::ResetCode::cancel, "client stream aborted");
  if (!closed_) {
    nghttp2_submit_rst_stream(session_.ng(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
    session_.signal_write();
  }
  state_ = DownstreamState::aborted;
  cancel();
}

void H2Stream::on_closed(std::uint32_t code) {
  closed_ = true;
  // nghttp2 closes a stream as it sends our END_STREAM, before the exchange
  // resumes: that is a normal end, not one to reset the tunnel stream for.
  abandoned_ = !(code == NGHTTP2_NO_ERROR && out_end_ && out_.empty());
  // Bytes received but never passed on still hold connection window.
  std::size_t left = unconsumed_ + recv_.size();
  if (left > 0) nghttp2_session_consume_connection(session_.ng(), left);
  unconsumed_ = 0;
  recv_.consume(recv_.size());
  if (started_ && !done_ && abandoned_ && slot_.stream) {
    // Abandoned by the client: the tunnel stream goes at once (rapid reset).
    slot_.stream->reset(tunnel::ResetCode::cancel, "client reset the stream");
  }
  rd_.notify();
  wr_.notify();
}

// ---- the exchange of one stream ----

asio::awaitable<void> run_stream(std::shared_ptr<H2Session> session,
                                 std::shared_ptr<H2Stream> stream, EdgeShared* shared) {
  shared->metrics.requests_in_flight.fetch_add(1, std::memory_order_relaxed);
  co_await run_exchange(session->env(), *stream, stream->slot_);
  shared->metrics.requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
  session->return_slot(stream->slot_);
  session->exchange_done(*stream);
}

asio::awaitable<void> reply_only(std::shared_ptr<H2Session> session,
                                 std::shared_ptr<H2Stream> stream, http::status status,
                                 EdgeShared* shared) {
  shared->metrics.count_request(static_cast<unsigned>(status));
  LocalReply reply{status, std::nullopt, true, {}, nullptr};  // named: see Exchange::local_reply
  co_await stream->reply(reply, "");
  stream->stop_reading();
  session->exchange_done(*stream);
}

// ---- H2Session ----

bool H2Session::init() {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, 100);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_continuations(opt, 8);  // CVE-2024-27316 / -28182
  // nghttp2's own rapid-reset bucket (it counts every RST_STREAM) is the
  // backstop at twice ours, which only counts streams still being answered.
  nghttp2_option_set_stream_reset_rate_limit(
      opt, static_cast<std::uint64_t>(2 * FloodGuard::kResetBurst),
      static_cast<std::uint64_t>(2 * FloodGuard::kResetRate));
  int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return false;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg_->h2_max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg_->h2_initial_window_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg_->max_header_size},
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(cfg_->h2_connection_window_size));
  env_ = ExchangeEnv{shared_,
                     conn_->id,
                     conn_->client_ip,
                     std::make_shared<const std::vector<std::string>>(
                         certificate_dns_names(SSL_get_certificate(conn_->tls.native_handle()))),
                     conn_->client_port,
                     conn_->peer_trusted};
  return true;
}

asio::awaitable<void> H2Session::run() {
  auto self = shared_from_this();
  if (!init()) co_return;
  shared_->metrics.h2_connections.fetch_add(1, std::memory_order_relaxed);
  co_await (reader() && writer() && ticker());
  shared_->metrics.h2_connections.fetch_sub(1, std::memory_order_relaxed);
  close_all_streams();
}

void H2Session::fail(nghttp2_error_code code, const char* why) {
  if (!goaway_sent_) {
    log::info("h2.goaway", {{"conn", conn_->id},
                            {"client", conn_->client_ip},
                            {"reason", why},
                            {"code", static_cast<unsigned>(code)}});
  }
  nghttp2_session_terminate_session(session_, code);
  goaway_sent_ = true;
  signal_write();
}

void H2Session::close_all_streams() {
  idle_slots_.clear();
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) s->on_closed(NGHTTP2_CANCEL);
  ready_.clear();
}

asio::awaitable<void> H2Session::reader() {
  std::vector<std::uint8_t> buf(kReadBuffer);
  while (!closing_) {
    // A client that sends but does not read must not make nghttp2 queue
    // replies without bound: wait for the writer first.
    while (!closing_ && writer_busy_ &&
           nghttp2_session_get_outbound_queue_size(session_) > kMaxOutboundQueue) {
      co_await read_gate_.wait();
    }
    if (closing_) break;
    conn_->tls.expires_never();  // idle and header deadlines are the ticker's
    auto [ec, n] = co_await conn_->tls.async_read_some(asio::buffer(buf), tuple_awaitable);
    if (ec) break;
    last_activity_ = Clock::now();
    ssize_t rv = nghttp2_session_mem_recv(session_, buf.data(), n);
    if (rv < 0) {
      log::info("h2.protocol_error", {{"conn", conn_->id},
                                      {"client", conn_->client_ip},
                                      {"error", nghttp2_strerror(static_cast<int>(rv))}});
      fail(rv == NGHTTP2_ERR_CALLBACK_FAILURE || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS ||
                   rv == NGHTTP2_ERR_FLOODED
               ? NGHTTP2_ENHANCE_YOUR_CALM
               : NGHTTP2_PROTOCOL_ERROR,
           nghttp2_strerror(static_cast<int>(rv)));
      break;
    }
    start_ready_streams();
    signal_write();
    if (!nghttp2_session_want_read(session_)) break;
  }
  // Nothing more is read: the streams end, the writer flushes what is
  // queued (a GOAWAY) and ends.
  closing_ = true;
  close_all_streams();
  signal_write();
  tick_.cancel();
}

asio::awaitable<void> H2Session::writer() {
  std::vector<std::uint8_t> out;
  out.reserve(kWriteBatch);
  for (;;) {
    out.clear();
    while (out.size() < kWriteBatch) {
      const std::uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        closing_ = true;
        break;
      }
      if (n == 0) break;
      out.insert(out.end(), data, data + n);
    }
    if (out.empty()) {
      if (closing_ ||
          (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_))) {
        break;
      }
      co_await write_signal_.wait();
      continue;
    }
    writer_busy_ = true;
    conn_->tls.expires_after(cfg_->idle_timeout);  // a client that reads nothing is dropped
    auto [ec, n] = co_await asio::async_write(conn_->tls, asio::buffer(out), tuple_awaitable);
    writer_busy_ = false;
    read_gate_.notify();
    if (ec) {
      closing_ = true;
      break;
    }
  }
  closing_ = true;
  // The reader may wait on the socket: end it.
  conn_->tls.cancel();
  read_gate_.notify();
  tick_.cancel();
  close_all_streams();
}

asio::awaitable<void> H2Session::ticker() {
  while (!closing_) {
    tick_.expires_after(kTick);
    co_await tick_.async_wait(tuple_awaitable);
    if (closing_) break;
    auto now = Clock::now();
    if (!goaway_sent_ && shared_->draining.load(std::memory_order_relaxed)) {
      // Drain: GOAWAY naming the last stream we took; those finish (bounded
      // by drain_timeout in the server), newer ones the client retries elsewhere.
      nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                            nullptr, 0);
      goaway_sent_ = true;
      signal_write();
    }
    if (!goaway_sent_ && streams_.empty()) {
      auto limit = ever_stream_ ? cfg_->idle_timeout : cfg_->header_timeout;
      if (now - last_activity_ >= limit) {
        nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                              nullptr, 0);
        goaway_sent_ = true;
        signal_write();
      }
    }
    // A finished exchange whose last bytes the client never lets out (a zero
    // window held forever) is reset after idle_timeout.
    for (auto& [id, s] : streams_) {
      if (s->done_ && !s->closed_ &&
          now - s->last_progress_ >= (s->idle_.count() ? s->idle_ : cfg_->idle_timeout)) {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        s->last_progress_ = now;
        signal_write();
      }
    }
    if (goaway_sent_ && streams_.empty() && live_exchanges_ == 0 &&
        !nghttp2_session_want_write(session_)) {
      closing_ = true;
      signal_write();
      conn_->tls.cancel();
    }
  }
}

void H2Session::start_ready_streams() {
  auto ready = std::move(ready_);
  ready_.clear();
  for (auto& s : ready) {
    if (s->closed_) continue;  // reset in the same read (rapid reset): no tunnel stream
    if (goaway_sent_ && s->id_ > nghttp2_session_get_last_proc_stream_id(session_)) continue;
    s->started_ = true;
    ++live_exchanges_;
    ever_stream_ = true;
    auto cfg = shared_->config();                     // this stream's snapshot of the limits
    s->max_body_ = policy::largest_body_limit(*cfg);  // the policy's own limit comes next
    if (s->too_large_) {
      asio::co_spawn(ex_,
                     reply_only(shared_from_this(), s,
                                http::status::request_header_fields_too_large, shared_.get()),
                     log_exception);
      continue;
    }
    bool websocket = false;
    // A Sec-WebSocket-Key only for an extended CONNECT (no RAND_bytes per request).
    const bool extended = std::any_of(s->fields_.begin(), s->fields_.end(),
                                      [](const H2Field& f) { return f.name == ":protocol"; });
    auto err =
        h2_to_http1_head(s->fields_, s->recv_end_, extended ? random_ws_key() : std::string(),
                         s->req_.base(), websocket);
    s->fields_.clear();
    s->fields_.shrink_to_fit();
    if (err) {
      log::info("client.rejected",
                {{"conn", conn_->id}, {"client", conn_->client_ip}, {"reason", err->reason}});
      asio::co_spawn(ex_, reply_only(shared_from_this(), s, err->status, shared_.get()),
                     log_exception);
      continue;
    }
    if (auto n = s->body_length(); n && s->max_body_ > 0 && *n > s->max_body_) {
      // Announced over the limit: 413 before any byte reaches the service.
      asio::co_spawn(
          ex_, reply_only(shared_from_this(), s, http::status::payload_too_large, shared_.get()),
          log_exception);
      continue;
    }
    take_slot(s->slot_);
    asio::co_spawn(ex_, run_stream(shared_from_this(), s, shared_.get()), log_exception);
  }
}

int H2Session::on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud) {
  auto* self = static_cast<H2Session*>(ud);
  // CONTINUATION flood: the whole header block is bounded, whatever HPACK
  // makes of it (nghttp2 also caps the CONTINUATION count).
  if (hd->type == NGHTTP2_HEADERS) {
    self->header_block_bytes_ = hd->length;
  } else if (hd->type == NGHTTP2_CONTINUATION) {
    self->header_block_bytes_ += hd->length;
  }
  if ((hd->type == NGHTTP2_HEADERS || hd->type == NGHTTP2_CONTINUATION) &&
      self->header_block_bytes_ > self->cfg_->max_header_size + 16384u) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

int H2Session::on_begin_headers(nghttp2_session* ng, const nghttp2_frame* f, void* ud) {
  auto* self = static_cast<H2Session*>(ud);
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  if (self->live_exchanges_ + self->streams_.size() >= 2 * self->cfg_->h2_max_concurrent_streams) {
    // Streams the client closed but whose exchanges still wind down count
    // too: it cannot keep more tunnel streams busy than this.
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  auto s = std::make_shared<H2Stream>(*self, f->hd.stream_id, self->ex_);
  self->streams_.emplace(f->hd.stream_id, s);
  nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, s.get());
  return 0;
}

int H2Session::on_header(nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* name,
                         std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                         std::uint8_t, void* ud) {
  auto* self = static_cast<H2Session*>(ud);
  auto* s = self->stream(f->hd.stream_id);
  if (!s) return 0;
  if (f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;  // trailers: dropped, as on HTTP/1.1
  // HPACK bomb: what the header list decodes to is bounded by
  // max_header_size (RFC 9113 counts 32 bytes per field); past it the
  // fields are dropped and the stream gets 431.
  s->header_bytes_ += namelen + valuelen + 32;
  if (s->header_bytes_ > self->cfg_->max_header_size) {
    if (!s->too_large_) {
      s->too_large_ = true;
      s->fields_.clear();
      s->fields_.shrink_to_fit();
    }
    return 0;
  }
  s->fields_.push_back(H2Field{std::string(reinterpret_cast<const char*>(name), namelen),
                               std::string(reinterpret_cast<const char*>(value), valuelen)});
  return 0;
}

int H2Session::on_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* ud) {
  auto* self = static_cast<H2Session*>(ud);
  auto now = Clock::now();
  switch (f->hd.type) {
    case NGHTTP2_HEADERS: {
      auto* s = self->stream(f->hd.stream_id);
      if (!s) break;
      if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) s->on_end_stream();
        self->ready_.push_back(s->shared_from_this());
      } else if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        s->on_end_stream();  // trailers end the body
      }
      break;
    }
    case NGHTTP2_DATA: {
      if (f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
          !self->flood_.on_empty_data(now)) {
        self->fail(NGHTTP2_ENHANCE_YOUR_CALM, "empty DATA flood");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      auto* s = self->stream(f->hd.stream_id);
      if (s && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) s->on_end_stream();
      break;
    }
    case NGHTTP2_PING:
    case NGHTTP2_SETTINGS:
      if (!(f->hd.flags & NGHTTP2_FLAG_ACK) && !self->flood_.on_control(now)) {
        self->fail(NGHTTP2_ENHANCE_YOUR_CALM,
                   f->hd.type == NGHTTP2_PING ? "PING flood" : "SETTINGS flood");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      break;
    case NGHTTP2_RST_STREAM: {
      auto* s = self->stream(f->hd.stream_id);
      if (s && s->state_ != DownstreamState::response_done && !self->flood_.on_reset(now)) {
        self->fail(NGHTTP2_ENHANCE_YOUR_CALM, "rapid reset");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      break;
    }
    default:
      break;
  }
  return 0;
}

int H2Session::on_data_chunk(nghttp2_session* ng, std::uint8_t, std::int32_t id,
                             const std::uint8_t* data, std::size_t len, void* ud) {
  auto* self = static_cast<H2Session*>(ud);
  auto* s = self->stream(id);
  if (!s || s->closed_ || s->done_) {
    nghttp2_session_consume(ng, id, len);  // nobody will read it: window back at once
    return 0;
  }
  s->on_data(data, len);
  return 0;
}

int H2Session::on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* ud) {
  auto* self = static_cast<H2Session*>(ud);
  auto it = self->streams_.find(id);
  if (it == self->streams_.end()) return 0;
  auto s = std::move(it->second);
  self->streams_.erase(it);
  s->on_closed(code);
  self->last_activity_ = Clock::now();
  return 0;
}

int H2Session::on_frame_send(nghttp2_session*, const nghttp2_frame* f, void* ud) {
  auto* self = static_cast<H2Session*>(ud);
  if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    if (auto* s = self->stream(f->hd.stream_id)) s->after_end_stream_sent();
  }
  return 0;
}

}  // namespace

asio::awaitable<void> run_h2(std::shared_ptr<ClientConn> conn) {
  auto session = std::make_shared<H2Session>(std::move(conn));
  co_await session->run();
}

}  // namespace hearth::edge
