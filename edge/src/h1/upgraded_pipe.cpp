// An upgraded HTTP/1.1 connection (WebSocket) spliced to its tunnel stream
// after the exchange handed it over (UpgradedPipe, exchange.hpp).
//
// Why not two coroutines under operator&& inside the exchange, as HTTP/2
// still does: a parked WebSocket then kept every frame of the stack above it
// (the session, the exchange and its retry loop, the parallel group and two
// spawned pipes, ~8 KB with GCC 12's frames) plus the request's parser,
// fields and read buffer, for as long as it stayed open. Here only what the
// pipe needs survives the 101: the two sockets, one small object with a
// buffer per direction, and one timer (issue 11).
//
// Each direction is one read in flight, the next only after the opposite
// write completed (backpressure, as in the exchange), with a buffer that
// starts at 512 bytes and doubles while reads fill it. Each side gives its
// buffer back while its peer is quiet (TlsSocket::async_wait_readable,
// TunnelStream::async_wait_readable): an idle WebSocket holds no buffer.

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <vector>

#include "exchange/exchange.hpp"
#include "hearth/edge/metrics.hpp"
#include "shared.hpp"
#include "support/asio.hpp"
#include "tls/client_conn.hpp"

namespace hearth::edge {
namespace {

constexpr std::size_t kPipeInitial = 512;
constexpr std::size_t kPipeMax = 16 * 1024;  // one TLS record

class Splice : public std::enable_shared_from_this<Splice> {
 public:
  Splice(std::shared_ptr<ClientConn> conn, UpgradedPipe pipe)
      : conn_(std::move(conn)), pipe_(std::move(pipe)), timer_(conn_->tls.get_executor()) {}

  void start() {
    conn_->shared->metrics.websockets_active.fetch_add(1, std::memory_order_relaxed);
    touch();
    if (pipe_.idle_timeout.count() > 0) arm_timer(pipe_.idle_timeout);
    if (!pipe_.from_client.empty()) {
      // Bytes the client sent right behind the upgrade request come first.
      auto n = pipe_.from_client.size();
      asio::async_write(pipe_.stream, asio::buffer(pipe_.from_client),
                        [self = shared_from_this(), n](error_code ec, std::size_t) {
                          self->pipe_.from_client = std::string();
                          self->on_tunnel_written(ec, n, true);
                        });
    } else {
      read_client();
    }
    if (!pipe_.from_service.empty()) {
      auto n = pipe_.from_service.size();
      asio::async_write(conn_->tls, asio::buffer(pipe_.from_service),
                        [self = shared_from_this(), n](error_code ec, std::size_t) {
                          self->pipe_.from_service = std::string();
                          self->on_client_written(ec, n, true);
                        });
    } else {
      read_tunnel();
    }
  }

 private:
  // client -> tunnel
  void read_client() {
    if (down_done_) {  // the service side is over: so is the client's
      client_ended(asio::error::operation_aborted);
      return;
    }
    if (client_drained_) {
      // The last read took all there was: wait for the next bytes without
      // holding a buffer (an idle WebSocket holds none; it also skips the
      // read(2) that would only find EAGAIN).
      up_ = std::vector<char>();
      conn_->tls.async_wait_readable([self = shared_from_this()](error_code ec) {
        if (ec) {
          self->client_ended(ec);
          return;
        }
        self->client_drained_ = false;
        self->read_client();
      });
      return;
    }
    if (up_.empty()) up_.resize(up_size_);
    conn_->tls.async_read_some(
        asio::buffer(up_),
        [self = shared_from_this()](error_code ec, std::size_t n) { self->on_client_read(ec, n); });
  }
  void on_client_read(error_code ec, std::size_t n) {
    if (n == 0) {
      client_ended(ec);
      return;
    }
    touch();
    client_ec_ = ec;
    client_drained_ = n < up_.size();
    pipe_.bytes_in += n;
    conn_->shared->metrics.bytes_from_clients.fetch_add(n, std::memory_order_relaxed);
    asio::async_write(pipe_.stream, asio::buffer(up_.data(), n),
                      [self = shared_from_this(), n](error_code wec, std::size_t) {
                        self->on_tunnel_written(wec, n, false);
                      });
  }
  void on_tunnel_written(error_code ec, std::size_t n, bool leftover) {
    if (ec) {  // the tunnel stream failed: give the client up too
      conn_->tls.cancel();
      end_up();
      return;
    }
    if (client_ec_) {
      client_ended(client_ec_);
      return;
    }
    if (!leftover && n == up_.size() && up_size_ < kPipeMax) {
      up_size_ *= 2;
      up_.resize(up_size_);
    }
    read_client();
  }
  void client_ended(error_code ec) {
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      pipe_.stream.shutdown_send();  // the client closed: a FIN to the service
    } else {
      pipe_.stream.reset(tunnel::ResetCode::cancel, "client connection ended");
    }
    end_up();
  }

  // tunnel -> client
  void read_tunnel() {
    if (tunnel_drained_) {
      // As on the client side: wait for the service's next bytes without a buffer.
      down_ = std::vector<char>();
      pipe_.stream.async_wait_readable([self = shared_from_this()](error_code ec, std::size_t) {
        if (ec) {
          self->on_tunnel_read(ec, 0);
          return;
        }
        self->tunnel_drained_ = false;
        self->read_tunnel();
      });
      return;
    }
    if (down_.empty()) down_.resize(down_size_);
    pipe_.stream.async_read_some(
        asio::buffer(down_),
        [self = shared_from_this()](error_code ec, std::size_t n) { self->on_tunnel_read(ec, n); });
  }
  void on_tunnel_read(error_code ec, std::size_t n) {
    if (ec) {
      // The service closed (or the tunnel failed): end the client connection.
      conn_->tls.cancel();
      end_down();
      return;
    }
    touch();
    tunnel_drained_ = n < down_.size();
    pipe_.bytes_out += n;
    conn_->shared->metrics.bytes_to_clients.fetch_add(n, std::memory_order_relaxed);
    asio::async_write(conn_->tls, asio::buffer(down_.data(), n),
                      [self = shared_from_this(), n](error_code wec, std::size_t) {
                        self->on_client_written(wec, n, false);
                      });
  }
  void on_client_written(error_code ec, std::size_t n, bool leftover) {
    if (ec) {
      pipe_.stream.reset(tunnel::ResetCode::cancel, "client write failed");
      end_down();
      return;
    }
    if (!leftover && n == down_.size() && down_size_ < kPipeMax) {
      down_size_ *= 2;
      down_.resize(down_size_);
    }
    read_tunnel();
  }

  // websocket_idle_timeout: no byte either way for that long ends the pipe.
  void touch() { last_ = std::chrono::steady_clock::now(); }
  void arm_timer(std::chrono::steady_clock::duration d) {
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_timer(ec); });
  }
  void on_timer(error_code ec) {
    if (ec || (up_done_ && down_done_)) return;
    auto idle = std::chrono::steady_clock::now() - last_;
    if (idle >= pipe_.idle_timeout) {
      pipe_.stream.reset(tunnel::ResetCode::timeout, "edge idle timeout");
      conn_->tls.cancel();
      return;
    }
    arm_timer(pipe_.idle_timeout - idle);
  }

  void end_up() {
    up_done_ = true;
    up_ = std::vector<char>();
    if (down_done_) finish();
  }
  void end_down() {
    down_done_ = true;
    down_ = std::vector<char>();
    if (up_done_) finish();
  }
  void finish() {
    timer_.cancel();
    auto& m = conn_->shared->metrics;
    m.websockets_active.fetch_sub(1, std::memory_order_relaxed);
    m.requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
    log_access(m, *pipe_.cfg,
               AccessLine{pipe_.started,
                          pipe_.conn_id,
                          pipe_.client_ip,
                          "h1",
                          pipe_.method,
                          pipe_.authority,
                          pipe_.target,
                          pipe_.request_id,
                          pipe_.origin,
                          {},
                          pipe_.status,
                          pipe_.bytes_in,
                          pipe_.bytes_out});
    pipe_.stream.close();
    close_client(conn_);
  }

  std::shared_ptr<ClientConn> conn_;
  UpgradedPipe pipe_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point last_;
  std::vector<char> up_;                // client -> tunnel; released while the client is quiet
  std::size_t up_size_ = kPipeInitial;  // what up_ grew to
  std::vector<char> down_;              // tunnel -> client; released while the service is quiet
  std::size_t down_size_ = kPipeInitial;
  error_code client_ec_;         // a read that also brought bytes: acted on after their write
  bool client_drained_ = false;  // the last read emptied what had arrived
  bool tunnel_drained_ = false;
  bool up_done_ = false;
  bool down_done_ = false;
};

}  // namespace

void start_upgraded(std::shared_ptr<ClientConn> conn, std::unique_ptr<UpgradedPipe> pipe) {
  std::make_shared<Splice>(std::move(conn), std::move(*pipe))->start();
}

}  // namespace hearth::edge
