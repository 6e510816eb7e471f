#include "tls/proxy_header.hpp"

#include <array>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <string_view>
#include <variant>

#include "hearth/common/log.hpp"
#include "shared.hpp"
#include "support/asio.hpp"

namespace hearth::edge {

using tcp = asio::ip::tcp;

asio::awaitable<ProxyRead> read_proxy_header(tcp::socket& sock,
                                             std::chrono::steady_clock::duration timeout) {
  using namespace asio::experimental::awaitable_operators;
  using clock = std::chrono::steady_clock;
  ProxyRead out;
  const auto deadline = clock::now() + timeout;
  // Heap, not the coroutine frame: the frame stays small while a burst waits.
  auto buf = std::make_unique<std::array<char, proxy_protocol::kMaxHeaderSize>>();
  asio::steady_timer timer(sock.get_executor());
  std::size_t last = 0;
  error_code ec;
  sock.non_blocking(true, ec);
  struct Restore {
    tcp::socket& s;
    ~Restore() {
      error_code ignored;
      s.non_blocking(false, ignored);
    }
  } restore{sock};
  for (;;) {
    timer.expires_at(deadline);
    auto ready = co_await (sock.async_wait(tcp::socket::wait_read, tuple_awaitable) ||
                           timer.async_wait(tuple_awaitable));
    if (ready.index() == 1) {
      out.error = "no PROXY header in time";
      co_return out;
    }
    if (auto [wec] = std::get<0>(ready); wec) {
      out.error = wec.message();
      co_return out;
    }
    const std::size_t n = sock.receive(asio::buffer(*buf), tcp::socket::message_peek, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) continue;
    if (ec || n == 0) {
      out.error = ec ? ec.message() : "closed before the PROXY header";
      co_return out;
    }
    const auto parsed = proxy_protocol::parse(std::string_view(buf->data(), n));
    out.signature = parsed.status != proxy_protocol::Status::absent;
    switch (parsed.status) {
      case proxy_protocol::Status::absent:
        out.result = ProxyRead::Result::absent;
        co_return out;
      case proxy_protocol::Status::invalid:
        out.error = parsed.error;
        co_return out;
      case proxy_protocol::Status::complete: {
        // Consume the header alone; the kernel holds those bytes already.
        std::size_t taken = 0;
        while (taken < parsed.consumed) {
          taken += sock.receive(asio::buffer(buf->data(), parsed.consumed - taken), 0, ec);
          if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
            out.error = ec.message();
            co_return out;
          }
        }
        out.result = ProxyRead::Result::header;
        out.header = parsed.header;
        co_return out;
      }
      case proxy_protocol::Status::need_more:
        if (n >= buf->size()) {
          out.error = "PROXY header too long";
          co_return out;
        }
        if (n == last) {
          // Readable again only because of the bytes already peeked: wait a
          // little for the rest instead of spinning.
          timer.expires_after(std::chrono::milliseconds(5));
          co_await timer.async_wait(tuple_awaitable);
          if (clock::now() >= deadline) {
            out.error = "no complete PROXY header in time";
            co_return out;
          }
        }
        last = n;
        break;
    }
  }
}

void note_proxy_refused(EdgeShared& shared, const std::string& peer, const std::string& error) {
  shared.metrics.proxy_headers_refused.fetch_add(1, std::memory_order_relaxed);
  thread_local std::chrono::steady_clock::time_point logged{};
  thread_local std::uint64_t unlogged = 0;
  ++unlogged;
  const auto now = std::chrono::steady_clock::now();
  if (now - logged < std::chrono::seconds(1)) return;
  log::warn("proxy_protocol.refused",
            {{"peer", peer}, {"error", error}, {"refused_since_last_line", unlogged}});
  logged = now;
  unlogged = 0;
}

asio::awaitable<bool> no_proxy_header(EdgeShared& shared, tcp::socket& sock, const ClientPeer& peer,
                                      std::chrono::steady_clock::duration timeout) {
  const auto read = co_await read_proxy_header(sock, timeout);
  if (read.result == ProxyRead::Result::absent) co_return true;
  error_code ignored;
  if (!read.signature) {  // closed or silent before any byte: nothing claimed
    sock.close(ignored);
    co_return false;
  }
  note_proxy_refused(shared, peer.ip,
                     read.result == ProxyRead::Result::header
                         ? std::string("PROXY header from a peer not in trusted_proxies")
                         : read.error);
  sock.close(ignored);
  co_return false;
}

}  // namespace hearth::edge
