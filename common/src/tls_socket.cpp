#include "hearth/common/tls_socket.hpp"

#include <openssl/err.h>

#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <cerrno>
#include <csignal>
#include <mutex>
#include <stdexcept>

namespace hearth {

namespace asio = boost::asio;

namespace {

// OpenSSL writes to the socket with write(2): a peer that reset the
// connection would raise SIGPIPE and kill the process. Servers ignore it
// (nginx does); the failed write still reports EPIPE.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

}  // namespace

TlsSocket::Impl::Impl(asio::ip::tcp::socket s, SSL* ssl_in)
    : sock(std::move(s)),
      ssl(ssl_in),
      timers{asio::steady_timer(sock.get_executor()), asio::steady_timer(sock.get_executor())} {}

TlsSocket::Impl::~Impl() { SSL_free(ssl); }

TlsSocket::TlsSocket(asio::ip::tcp::socket sock, SSL_CTX* ctx, Buffers buffers) {
  ignore_sigpipe_once();
  SSL* ssl = SSL_new(ctx);
  if (!ssl) throw std::runtime_error("SSL_new failed");
  // Release the read and write buffers whenever they are empty (unless told
  // to keep them): an idle connection keeps no record buffers. Partial
  // writes: a write_some may take less than offered, and the buffer may move
  // between retries.
  SSL_set_mode(ssl, (buffers == Buffers::release_when_empty ? SSL_MODE_RELEASE_BUFFERS : 0) |
                        SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Reads and writes interleave on one SSL object (a WebSocket relay):
  // a renegotiation in the middle would need both; TLS 1.3 has none anyway.
  SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
  // Read ahead: one read(2) takes what the socket has, up to the record
  // buffer, instead of a 5-byte record header and then its body (two
  // syscalls per record). Safe here because every read asks OpenSSL first
  // and waits on the socket only when it wants more (attempt()).
  SSL_set_read_ahead(ssl, 1);
  // A busy connection that keeps its buffers reads up to 4 records per read(2)
  // (a tunnel during a download: 64 KiB reads, as the mux asks for).
  if (buffers == Buffers::keep) SSL_set_default_read_buffer_len(ssl, 4 * (16 * 1024 + 512));
  boost::system::error_code ec;
  sock.non_blocking(true, ec);
  if (ec || SSL_set_fd(ssl, static_cast<int>(sock.native_handle())) != 1) {
    SSL_free(ssl);
    throw std::runtime_error("TlsSocket: cannot attach the socket");
  }
  impl_ = std::make_shared<Impl>(std::move(sock), ssl);
}

TlsSocket::~TlsSocket() {
  // Pending operations and timers hold impl_; they end with operation_aborted.
  if (impl_) close();
}

void TlsSocket::cancel() {
  boost::system::error_code ignored;
  impl_->sock.cancel(ignored);
}

void TlsSocket::close() {
  boost::system::error_code ignored;
  impl_->timers[0].cancel();
  impl_->timers[1].cancel();
  impl_->sock.close(ignored);
}

boost::system::error_code TlsSocket::make_timeout() { return boost::beast::error::timeout; }

void TlsSocket::arm_timer(const std::shared_ptr<Impl>& impl, int side, clock::time_point deadline) {
  auto& t = impl->timers[side];
  unsigned tick = ++impl->ticks[side];
  t.expires_at(deadline);
  t.async_wait([impl, side, tick](boost::system::error_code ec) {
    if (ec || impl->ticks[side] != tick) return;
    impl->timed_out = true;
    boost::system::error_code ignored;
    impl->sock.close(ignored);
  });
}

void TlsSocket::disarm_timer(Impl& impl, int side) {
  ++impl.ticks[side];
  impl.timers[side].cancel();
}

TlsSocket::Attempt TlsSocket::attempt(Impl& impl, Kind kind, void* data, std::size_t size) {
  Attempt a;
  if ((kind == Kind::read || kind == Kind::write) && size == 0) return a;
  if (!impl.sock.is_open()) {
    a.ec = impl.timed_out ? make_timeout() : asio::error::bad_descriptor;
    return a;
  }
  if (kind == Kind::readable) {
    if (!SSL_has_pending(impl.ssl)) a.want = Want::read;
    return a;
  }
  ERR_clear_error();
  int r = 0;
  switch (kind) {
    case Kind::readable:
      break;
    case Kind::handshake:
      r = SSL_do_handshake(impl.ssl);
      break;
    case Kind::read:
      r = SSL_read_ex(impl.ssl, data, size, &a.n);
      // SSL_read returns one record at most. Records already read ahead
      // into OpenSSL's buffer go out in the same operation: one completion
      // for what one read(2) brought in, not one per record. Stops at the
      // first record that is not complete yet (its read(2) finds EAGAIN).
      while (r == 1 && a.n < size && SSL_has_pending(impl.ssl)) {
        std::size_t more = 0;
        if (SSL_read_ex(impl.ssl, static_cast<char*>(data) + a.n, size - a.n, &more) != 1) {
          ERR_clear_error();  // a WANT_READ (or an error the next read reports again)
          break;
        }
        a.n += more;
      }
      break;
    case Kind::write:
      r = SSL_write_ex(impl.ssl, data, size, &a.n);
      // With partial writes SSL_write stops after each record; write the
      // following records at once while the socket takes them (one
      // completion per buffer, not per 16 KiB record).
      while (r == 1 && a.n < size) {
        std::size_t more = 0;
        if (SSL_write_ex(impl.ssl, static_cast<const char*>(data) + a.n, size - a.n, &more) != 1) {
          ERR_clear_error();  // WANT_WRITE: the rest waits for the next write_some
          break;
        }
        a.n += more;
      }
      break;
    case Kind::shutdown:
      r = SSL_shutdown(impl.ssl);
      if (r == 0) r = 1;  // our close_notify is out; we do not wait for theirs
      break;
  }
  const int saved_errno = errno;
  if (r == 1) return a;
  a.n = 0;
  switch (SSL_get_error(impl.ssl, r)) {
    case SSL_ERROR_WANT_READ:
      a.want = Want::read;
      return a;
    case SSL_ERROR_WANT_WRITE:
      a.want = Want::write;
      return a;
    case SSL_ERROR_ZERO_RETURN:
      a.ec = asio::error::eof;
      return a;
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0) {
        a.ec = saved_errno == 0
                   ? boost::system::error_code(asio::ssl::error::stream_truncated)
                   : boost::system::error_code(saved_errno, boost::system::system_category());
        if (saved_errno == ECONNRESET) a.ec = asio::error::connection_reset;
        return a;
      }
      break;
    default:
      break;
  }
  unsigned long err = ERR_get_error();
  if (ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    a.ec = asio::ssl::error::stream_truncated;
  } else if (err != 0) {
    a.ec = boost::system::error_code(static_cast<int>(err), asio::error::get_ssl_category());
  } else {
    a.ec = asio::error::fault;
  }
  ERR_clear_error();
  return a;
}

}  // namespace hearth
