#!/usr/bin/python3
"""The relay core forwards what arrives at once, and bounds what it buffers.

- A service that writes 100 bytes and then pauses reaches the client at once,
  in Content-Length, chunked and close-delimited framing (HTTP/1.1), and over
  HTTP/2.
- A SIGHUP applies to the next request of a kept HTTP/1.1 connection (the
  config snapshot is taken per exchange).
- A client that streams an endless chunk-size line (chunk extensions) or an
  endless trailer section gets 400 and a closed connection, and the edge's
  memory does not grow with what it sends.
"""

import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import rss_kb, Harness, TestRun, expect, expect_eq, read_http_response  # noqa: E402

PAUSE = 2.5


def main():
    run = TestRun("streaming", __doc__)
    run.require_binaries()
    h = Harness(run)
    try:
        svc = h.start_service("stream")
        h.write_edge_config()
        conf = h.pair_origin([("app.test", None, svc.http_url)])
        edge = h.start_edge()
        origin = h.start_origin(conf)
        edge.wait_event("tunnel.up", timeout=10)
        h.wait_ready(origin=origin)
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    def first_bytes_after(mode, version="1.1"):
        s = h.tls_socket()
        t0 = time.monotonic()
        s.sendall(b"GET /trickle?bytes=100&pause=%.1f&mode=%s HTTP/%s\r\nHost: app.test\r\n\r\n"
                  % (PAUSE, mode.encode(), version.encode()))
        buf = b""
        s.settimeout(PAUSE + 5)
        while b"0" * 100 not in buf.split(b"\r\n\r\n", 1)[-1] or b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        took = time.monotonic() - t0
        s.close()
        expect(b"0" * 100 in buf, "%s: first 100 bytes arrived: %r" % (mode, buf[-200:]))
        return took

    for mode in ("length", "chunked", "close"):
        def case(mode=mode):
            took = first_bytes_after(mode)
            print("   %s: first 100 bytes after %.2fs (service pauses %.1fs)" % (mode, took, PAUSE))
            expect(took < 1.0, "%s: first bytes took %.2fs" % (mode, took))
        run.case(case, name="trickle_%s_http11" % mode)

    @run.case
    def trickle_http10_close_delimited():
        took = first_bytes_after("close", "1.0")
        expect(took < 1.0, "first bytes took %.2fs" % took)

    @run.case
    def trickle_http2():
        r = h.curl("--http2", "-N", "-o", "/dev/null", "-w", "%{time_starttransfer} %{time_total}",
                   h.url("/trickle?bytes=100&pause=%.1f&mode=length" % PAUSE), timeout=20)
        first, total = (float(x) for x in r.stdout.split())
        print("   h2: first byte %.2fs, total %.2fs" % (first, total))
        expect(first < 1.0 and total >= PAUSE, "h2 first byte %.2fs total %.2fs" % (first, total))

    def endless(prefix, line, what):
        rss0 = rss_kb(edge.pid)
        s = h.tls_socket()
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + prefix)
        sent = 0
        chunk = line * (65536 // len(line))
        t0 = time.monotonic()
        try:
            while sent < 64 * 1024 * 1024 and time.monotonic() - t0 < 20:
                s.sendall(chunk)
                sent += len(chunk)
        except (OSError, ssl.SSLError):
            pass
        status, head, _, closed = read_http_response(s, timeout=5)
        s.close()
        rss1 = rss_kb(edge.pid)
        print("   %s: edge answered %r after %d KiB sent; closed=%s; RSS +%d kB"
              % (what, status, sent // 1024, closed, rss1 - rss0))
        expect(status in (400, None), "%s: status %r" % (what, status))
        expect(sent < 32 * 1024 * 1024, "%s: the edge kept reading %d bytes" % (what, sent))
        expect(rss1 - rss0 < 10000, "%s: edge RSS grew by %d kB" % (what, rss1 - rss0))

    @run.case
    def endless_chunk_extension_is_400():
        endless(b"5;ext=", b"a", "chunk extension")

    @run.case
    def endless_trailers_are_400():
        endless(b"5\r\nhello\r\n0\r\n", b"X-Trailer-Field: " + b"t" * 100 + b"\r\n", "trailers")

    @run.case
    def normal_chunked_with_trailer_still_works():
        s = h.tls_socket()
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")
        status, head, body, _ = read_http_response(s, timeout=5, close_wait=0.2)
        s.close()
        expect_eq(status, 200, "status")
        expect(b'"length": 5' in body, "body: %r" % body)

    @run.case
    def sighup_applies_to_the_next_request_of_a_kept_connection():
        s = h.tls_socket()
        body = b"k" * 4000
        req = (b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n" % len(body)
               + body)
        s.sendall(req)
        status, _, _, closed = read_http_response(s, timeout=5, close_wait=0.2)
        expect_eq((status, closed), (200, False), "first request, keep-alive")
        with open(h.edge_conf) as f:
            orig = f.read()
        try:
            with open(h.edge_conf, "w") as f:
                f.write(orig.replace("[edge]", '[edge]\nmax_body_size = "1KB"', 1))
            mark = edge.mark()
            edge.signal(1)
            edge.wait_event("reload.done", timeout=10, since=mark)
            s.sendall(req)
            status, _, _, _ = read_http_response(s, timeout=5, close_wait=0.2)
            print("   same connection after SIGHUP (max_body_size 1KB): %r" % status)
            expect(status in (400, 413), "the new limit applies on the kept connection: %r" % status)
        finally:
            s.close()
            with open(h.edge_conf, "w") as f:
                f.write(orig)
            mark = edge.mark()
            edge.signal(1)
            edge.wait_event("reload.done", timeout=10, since=mark)

    run.finish()


if __name__ == "__main__":
    main()
