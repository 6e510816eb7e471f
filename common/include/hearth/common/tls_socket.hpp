#pragma once
// A TLS stream that runs OpenSSL directly on a non-blocking TCP socket.
//
// Why not asio::ssl::stream: it keeps four 17 KiB buffers per connection (a BIO
// pair and its input/output buffers) whether the connection is busy or not, so
// every idle WebSocket costs ~75 KB of TLS buffers on the edge. Here OpenSSL
// reads and writes the socket itself (SSL_set_fd) with SSL_MODE_RELEASE_BUFFERS,
// so an idle connection holds only OpenSSL's SSL object (a few KB); and each
// byte is copied once less. This is what nginx does. The tunnel uses it too,
// keeping its buffers (Buffers::keep): one busy connection per origin.
//
// The stream models Asio's AsyncReadStream/AsyncWriteStream (Beast's HTTP
// operations run on it unchanged) and offers beast::tcp_stream's timeout
// interface: expires_after() applies to the operations started after it; when
// the deadline passes while an operation waits, the socket is closed and the
// waiting operations fail with beast::error::timeout.
//
// Errors as asio::ssl::stream reports them: asio::error::eof for a clean
// close_notify, asio::ssl::error::stream_truncated for a TCP close without one,
// OpenSSL errors in asio's SSL category. Completions never run inside the
// initiating call. One read and one write may be in progress at once (a
// WebSocket relay); handshake and shutdown run alone. Not thread-safe: use it
// on one executor, as everything in hearth does.

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <memory>

namespace hearth {

class TlsSocket {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using clock = std::chrono::steady_clock;
  using error_code = boost::system::error_code;

  // What OpenSSL keeps between operations. A client connection releases its
  // record buffers whenever they are empty, so an idle one holds none; a
  // tunnel connection is one per origin and always busy, so it keeps them
  // (saving two ~17 KiB allocations and frees per read and write).
  enum class Buffers { release_when_empty, keep };

  // Takes the socket (made non-blocking) and a new SSL object from ctx.
  TlsSocket(boost::asio::ip::tcp::socket sock, SSL_CTX* ctx,
            Buffers buffers = Buffers::release_when_empty);
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;
  // Movable (a tunnel connection takes its socket after the handshake); a
  // moved-from TlsSocket may only be destroyed.
  TlsSocket(TlsSocket&&) noexcept = default;
  TlsSocket& operator=(TlsSocket&&) = delete;
  ~TlsSocket();

  executor_type get_executor() { return impl_->sock.get_executor(); }
  SSL* native_handle() { return impl_->ssl; }
  boost::asio::ip::tcp::socket& socket() { return impl_->sock; }

  void expires_after(clock::duration d) { impl_->deadline = clock::now() + d; }
  void expires_never() { impl_->deadline = clock::time_point::max(); }
  // Cancels the waiting operations (they fail with operation_aborted).
  void cancel();
  void close();

  template <class Token>
  auto async_handshake(boost::asio::ssl::stream_base::handshake_type type, Token&& token) {
    if (type == boost::asio::ssl::stream_base::server) {
      SSL_set_accept_state(impl_->ssl);
    } else {
      SSL_set_connect_state(impl_->ssl);
    }
    return boost::asio::async_compose<Token, void(error_code)>(
        Op<false>{impl_, Kind::handshake, nullptr, 0}, token, impl_->sock);
  }

  // Sends close_notify; does not wait for the peer's (nginx does not either).
  template <class Token>
  auto async_shutdown(Token&& token) {
    return boost::asio::async_compose<Token, void(error_code)>(
        Op<false>{impl_, Kind::shutdown, nullptr, 0}, token, impl_->sock);
  }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    auto b = first_nonempty<boost::asio::mutable_buffer>(buffers);
    return boost::asio::async_compose<Token, void(error_code, std::size_t)>(
        Op<true>{impl_, Kind::read, b.data(), b.size()}, token, impl_->sock);
  }

  // Completes once a read can make progress: bytes are buffered in OpenSSL
  // already, or the socket became readable. A reader that waits this way
  // holds no buffer while nothing arrives (an idle WebSocket, issue 11).
  template <class Token>
  auto async_wait_readable(Token&& token) {
    return boost::asio::async_compose<Token, void(error_code)>(
        Op<false>{impl_, Kind::readable, nullptr, 0}, token, impl_->sock);
  }

  // Small buffers of a sequence (Beast writes a response head and its body
  // as two) are gathered into one TLS record, as beast::flat_stream does for
  // asio::ssl::stream: one record and one send instead of two.
  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    auto b = first_nonempty<boost::asio::const_buffer>(buffers);
    Op<true> op{impl_, Kind::write, const_cast<void*>(b.data()), b.size()};
    if (b.size() < kCoalesce && boost::asio::buffer_size(buffers) > b.size()) {
      std::size_t n = std::min(boost::asio::buffer_size(buffers), kCoalesce);
      op.owned.reset(new char[n]);
      op.data = op.owned.get();
      op.size = boost::asio::buffer_copy(boost::asio::buffer(op.owned.get(), n), buffers);
    }
    return boost::asio::async_compose<Token, void(error_code, std::size_t)>(std::move(op), token,
                                                                            impl_->sock);
  }

 private:
  static constexpr std::size_t kCoalesce = 16 * 1024;  // one TLS record
  enum class Kind { handshake, read, write, shutdown, readable };
  enum class Want { done, read, write };

  struct Impl {
    Impl(boost::asio::ip::tcp::socket s, SSL* ssl_in);
    ~Impl();
    boost::asio::ip::tcp::socket sock;
    SSL* ssl;
    clock::time_point deadline = clock::time_point::max();
    // [0]: reads, handshake, shutdown; [1]: writes. A tick tells a timer
    // that fired late (its wait already over) to do nothing.
    boost::asio::steady_timer timers[2];
    unsigned ticks[2] = {0, 0};
    bool timed_out = false;
  };

  struct Attempt {
    Want want = Want::done;
    std::size_t n = 0;
    error_code ec;
  };
  // One OpenSSL call for the operation; in tls_socket.cpp.
  static Attempt attempt(Impl& impl, Kind kind, void* data, std::size_t size);
  static void arm_timer(const std::shared_ptr<Impl>& impl, int side, clock::time_point deadline);
  static void disarm_timer(Impl& impl, int side);

  // A *_some operation may transfer less than offered: use the first
  // non-empty buffer (asio::ssl::stream does the same).
  template <class Buffer, class Buffers>
  static Buffer first_nonempty(const Buffers& buffers) {
    auto end = boost::asio::buffer_sequence_end(buffers);
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != end; ++it) {
      Buffer b(*it);
      if (b.size() > 0) return b;
    }
    return Buffer();
  }

  // The state machine of every operation: try the OpenSSL call; when it
  // wants the socket readable or writable, wait for that (with the deadline
  // armed) and try again. WithSize: the (error_code, size_t) signature of
  // reads and writes; else (error_code) for handshake and shutdown.
  template <bool WithSize>
  struct Op {
    std::shared_ptr<Impl> impl;
    Kind kind;
    void* data;
    std::size_t size;
    std::unique_ptr<char[]> owned{};  // gathered small buffers (writes)
    enum class State { start, waiting, posted } state = State::start;
    clock::time_point deadline{};
    Attempt result{};

    int side() const { return kind == Kind::write ? 1 : 0; }

    template <class Self>
    static void finish(Self& self, error_code ec, std::size_t n) {
      if constexpr (WithSize) {
        self.complete(ec, n);
      } else {
        (void)n;
        self.complete(ec);
      }
    }

    template <class Self>
    void operator()(Self& self, error_code ec = {}) {
      switch (state) {
        case State::start:
          deadline = impl->deadline;
          break;
        case State::posted:
          finish(self, result.ec, result.n);
          return;
        case State::waiting:
          disarm_timer(*impl, side());
          if (ec) {
            if (impl->timed_out) ec = make_timeout();
            finish(self, ec, 0);
            return;
          }
          if (kind == Kind::readable) {  // the socket is readable: that was all
            finish(self, {}, 0);
            return;
          }
          break;
      }
      const bool first = state == State::start;
      result = attempt(*impl, kind, data, size);
      if (result.want == Want::done) {
        if (!first) {
          finish(self, result.ec, result.n);
          return;
        }
        // Never complete inside the initiating call.
        state = State::posted;
        boost::asio::post(impl->sock.get_executor(), std::move(self));
        return;
      }
      if (deadline != clock::time_point::max()) {
        if (clock::now() >= deadline) {
          result = Attempt{Want::done, 0, make_timeout()};
          state = State::posted;
          boost::asio::post(impl->sock.get_executor(), std::move(self));
          return;
        }
        arm_timer(impl, side(), deadline);
      }
      state = State::waiting;
      impl->sock.async_wait(result.want == Want::read ? boost::asio::socket_base::wait_read
                                                      : boost::asio::socket_base::wait_write,
                            std::move(self));
    }
  };

  static error_code make_timeout();

  std::shared_ptr<Impl> impl_;
};

}  // namespace hearth
