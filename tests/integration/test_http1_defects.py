#!/usr/bin/python3
"""HTTP/1.1 defects found by attacking the edge (issue 8), one regression test each.

Real edge, tunnel, origin and home service on loopback; malformed requests go
over raw TLS sockets. The home service records every request it parsed
(/received), so the tests check what reached it, not only what the client saw.

Edge config: max_body_size = "1MiB", the default max_uri_size (8 KiB), and a
log_redact_params list with one name beyond the usual ones ("session").

Routes published by the origin:
    app.test /  -> home_service A (HTTP)
"""

import json
import os
import re
import select
import socket
import ssl
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import rss_kb, Failure, Harness, TestRun, expect, expect_eq, read_http_response  # noqa: E402

KB = 1024
MB = 1024 * 1024
PAUSE = 2.5  # seconds the trickling service waits between its two writes
REDACT = ["token", "access_token", "key", "password", "secret", "sig", "code", "session"]


def poll_read(sock):
    """Application bytes already readable on a TLS socket: bytes, b"" when closed,
    None when nothing (a readable socket may only hold TLS 1.3 session tickets)."""
    if not (sock.pending() or select.select([sock], [], [], 0)[0]):
        return None
    old = sock.gettimeout()
    sock.settimeout(0)
    try:
        return sock.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return None
    except OSError:
        return b""
    finally:
        sock.settimeout(old)


def send_until_answered(sock, piece, limit, seconds=20.0, sample=None):
    """Send piece repeatedly until the peer answers or closes, limit bytes are sent,
    or seconds pass. Returns (bytes sent, bytes of the answer read so far)."""
    sent = 0
    early = b""
    t0 = time.monotonic()
    try:
        while sent < limit and time.monotonic() - t0 < seconds:
            sock.sendall(piece)
            sent += len(piece)
            if sample:
                sample(sent)
            d = poll_read(sock)
            if d is not None:
                early = d
                break
    except OSError:
        pass  # the peer closed while we were sending
    return sent, early


def dechunk(data):
    """The payload of a complete chunked body (trailers ignored)."""
    out = b""
    while True:
        line, sep, data = data.partition(b"\r\n")
        expect(sep, "chunked body ends inside a chunk-size line")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return out
        expect(len(data) >= size + 2, "chunked body ends inside a chunk")
        out += data[:size]
        data = data[size + 2:]


def finish_response(sock, early, timeout=5.0, close_wait=1.0):
    """(status, head, closed) of the response whose first bytes are `early`."""
    data = early
    sock.settimeout(timeout)
    closed = False
    while b"\r\n\r\n" not in data:
        try:
            d = sock.recv(65536)
        except (socket.timeout, ssl.SSLError, OSError):
            d = b""
        if not d:
            closed = True
            break
        data += d
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    m = re.match(r"HTTP/1\.[01] (\d{3})", head)
    if not closed:
        sock.settimeout(close_wait)
        deadline = time.monotonic() + close_wait
        while time.monotonic() < deadline:
            try:
                d = sock.recv(65536)  # the small error body, then EOF
            except socket.timeout:
                break
            except (ssl.SSLError, OSError):
                d = b""
            if not d:
                closed = True
                break
    return (int(m.group(1)) if m else None), head, closed


def main():
    run = TestRun("http1_defects", __doc__)
    run.require_binaries()
    h = Harness(run)
    try:
        a = h.start_service("A", ws=False)
        extra = 'max_body_size = "1MiB"'
        # HEARTH_TEST_PRE_ISSUE8=1: run against binaries from before issue 8 (which
        # refuse the new key) to see each case fail there.
        if not os.environ.get("HEARTH_TEST_PRE_ISSUE8"):
            extra += "\nlog_redact_params = [%s]" % ", ".join('"%s"' % n for n in REDACT)
        h.write_edge_config(extra_edge=extra)
        conf = h.pair_origin([("app.test", None, a.http_url)])
        edge = h.start_edge()
        origin = h.start_origin(conf)
        edge.wait_event("tunnel.up", timeout=10)
        h.wait_ready(origin=origin)
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    def received():
        st, _, body = h.request("GET", "/received")
        expect_eq(st, 200, "GET /received status")
        return json.loads(body)

    def seen(tag):
        """Requests the service parsed whose path contains tag."""
        return [r for r in received() if tag in r["path"]]

    def raw(request, timeout=10, close_wait=1.0):
        """Send bytes on a fresh TLS connection; (status, head, body, closed)."""
        sock = h.tls_socket(timeout=timeout)
        try:
            sock.sendall(request)
            return read_http_response(sock, timeout=timeout, close_wait=close_wait)
        finally:
            sock.close()

    def tag():
        return uuid.uuid4().hex[:12]

    # -- request smuggling through an upgrade with a body ---------------------
    def upgrade_with_body(framing):
        t = tag()
        smuggled = b"GET /smuggled-%s HTTP/1.1\r\nHost: app.test\r\n\r\n" % t.encode()
        if framing == "length":
            body_head, body = b"Content-Length: %d\r\n" % len(smuggled), smuggled
        else:
            body_head = b"Transfer-Encoding: chunked\r\n"
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
        req = (b"GET /ignore-body?up-%s HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
               b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" % t.encode()) + body_head + b"\r\n"
        st, head, _, closed = raw(req + body)
        time.sleep(0.3)  # a smuggled request would have reached the service by now
        got = seen(t)
        expect(not got, "the service saw %s (smuggled through an upgrade with a %s body)"
               % ([r["path"] for r in got], framing))
        expect_eq(st, 400, "status of a WebSocket upgrade with a %s body (head %r)" % (framing, head[:120]))
        expect(closed, "connection should be closed after the 400")

    @run.case
    def upgrade_with_content_length_body_400():
        upgrade_with_body("length")

    @run.case
    def upgrade_with_chunked_body_400():
        upgrade_with_body("chunked")

    @run.case
    def upgrade_without_body_still_reaches_service():
        # The rule refuses bodies, not upgrades: a body-less upgrade (answered 200
        # here, the HTTP service speaks no WebSocket) still goes through.
        t = tag()
        st, head, _, _ = raw(b"GET /headers?up-%s HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
                             b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n\r\n"
                             % t.encode(), close_wait=0.1)
        expect_eq(st, 200, "status of a body-less upgrade (head %r)" % head[:120])
        expect_eq(len(seen(t)), 1, "requests the service saw")

    # -- other transfer codings ---------------------------------------------
    @run.case
    def transfer_coding_gzip_chunked_501():
        for te in ("gzip, chunked", "deflate, chunked", "gzip\r\nTransfer-Encoding: chunked"):
            t = tag()
            st, head, _, closed = raw(b"POST /echo?te-%s HTTP/1.1\r\nHost: app.test\r\n"
                                      b"Transfer-Encoding: %s\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                                      % (t.encode(), te.encode()))
            expect_eq(st, 501, "status for Transfer-Encoding: %r (head %r)" % (te, head[:120]))
            expect(closed, "connection should be closed after the 501")
            expect(not seen(t), "the service saw a request with Transfer-Encoding: %r" % te)

    # -- body over the limit ------------------------------------------------
    @run.case
    def content_length_over_limit_413_before_service():
        t = tag()
        sock = h.tls_socket()
        try:
            sock.sendall(b"POST /echo?cl-%s HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n"
                         % (t.encode(), 2 * MB))
            # No body byte yet: the answer must come from the head alone.
            st, head, _, closed = read_http_response(sock, timeout=10)
        finally:
            sock.close()
        expect_eq(st, 413, "status for Content-Length 2 MiB over max_body_size 1 MiB (head %r)" % head[:120])
        expect(closed, "connection should be closed after the 413")
        expect(not seen(t), "the service saw a request whose Content-Length is over the limit")

    @run.case
    def chunked_over_limit_413_and_stream_reset():
        t = tag()
        sock = h.tls_socket()
        try:
            sock.sendall(b"POST /echo?ch-%s HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                         % t.encode())
            piece = b"%x\r\n%s\r\n" % (64 * KB, b"y" * (64 * KB))
            sent, early = send_until_answered(sock, piece, 3 * MB)
            if sent >= 3 * MB and not early:
                sock.sendall(b"0\r\n\r\n")
            st, head, closed = finish_response(sock, early, timeout=10)
        finally:
            sock.close()
        expect_eq(st, 413, "status for a chunked body crossing max_body_size (head %r)" % head[:120])
        expect(closed, "connection should be closed after the 413")
        deadline = time.monotonic() + 5
        got = seen(t)
        while got and got[0]["body"] == "reading" and time.monotonic() < deadline:
            time.sleep(0.1)
            got = seen(t)
        expect_eq(len(got), 1, "requests the service saw")
        expect(got[0]["body"].startswith("incomplete"),
               "the service must see the cut body fail (stream reset), not %r after %d bytes"
               % (got[0]["body"], got[0]["length"]))
        expect(got[0]["length"] <= MB, "the service got %d body bytes, over the 1 MiB limit" % got[0]["length"])

    # -- malformed chunk sizes ----------------------------------------------
    @run.case
    def malformed_chunk_size_400_and_stream_reset():
        for size in (b"0x10", b"-10", b"1" * 20, b"ffffffffffffffffff"):
            t = tag()
            sock = h.tls_socket()
            try:
                sock.sendall(b"POST /echo?bad-%s HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                             % t.encode())
                time.sleep(0.2)  # the head reaches the service before the bad chunk
                sock.sendall(size + b"\r\n0123456789abcdef\r\n0\r\n\r\n")
                st, head, _, closed = read_http_response(sock, timeout=10)
            finally:
                sock.close()
            expect_eq(st, 400, "status for chunk size %r (head %r)" % (size, head[:120]))
            expect(closed, "connection should be closed after the 400 (chunk size %r)" % size)
            deadline = time.monotonic() + 5
            got = seen(t)
            while got and got[0]["body"] == "reading" and time.monotonic() < deadline:
                time.sleep(0.1)
                got = seen(t)
            expect(all(g["body"] != "complete" for g in got),
                   "the service took a body with chunk size %r as complete: %r" % (size, got))

    # -- request-target limit -----------------------------------------------
    @run.case
    def uri_over_max_uri_size_414():
        t = tag()
        st, head, _, closed = raw(b"GET /headers?u-%s&q=%s HTTP/1.1\r\nHost: app.test\r\n\r\n"
                                  % (t.encode(), b"q" * (16 * KB)))
        expect_eq(st, 414, "status for a 16 KiB request-target (head %r)" % head[:120])
        expect(closed, "connection should be closed after the 414")
        expect(not seen(t), "the service saw a 16 KiB request-target")

    @run.case
    def long_uri_within_limit_arrives_whole():
        # 4000-byte path + query to 8 KiB: under max_uri_size, and nothing may be cut.
        t = tag()
        path = "/headers/" + "p" * 3990
        target = path + "?u-%s&q=" % t
        target += "q" * (8 * KB - len(target))
        st, head, body, _ = raw(("GET %s HTTP/1.1\r\nHost: app.test\r\n\r\n" % target).encode(), close_wait=0.1)
        expect_eq(st, 404, "status (the service has no such path, but must see it whole; head %r)" % head[:120])
        got = seen(t)
        expect_eq(len(got), 1, "requests the service saw")
        expect_eq(len(got[0]["path"]), len(target), "length of the target the service saw")
        expect(got[0]["path"] == target, "the service saw a different target")

    @run.case
    def path_longer_than_tunnel_carries_414():
        # Under max_uri_size, but the path alone (before '?') is over the 4096
        # bytes an OPEN frame carries: refused, never silently cut.
        t = tag()
        st, head, _, _ = raw(("GET /%s/%s HTTP/1.1\r\nHost: app.test\r\n\r\n" % (t, "p" * 5000)).encode())
        expect_eq(st, 414, "status for a 5000-byte path (head %r)" % head[:120])
        expect(not seen(t), "the service saw a path the tunnel would have cut")

    # -- TRACE --------------------------------------------------------------
    @run.case
    def trace_405():
        t = tag()
        st, head, _, _ = raw(b"TRACE /?tr-%s HTTP/1.1\r\nHost: app.test\r\nCookie: s=1\r\n\r\n" % t.encode())
        expect_eq(st, 405, "status for TRACE (head %r)" % head[:120])
        expect(re.search(r"(?im)^allow:", head), "405 without Allow:\n%s" % head)
        expect(not seen(t), "TRACE reached the service")

    # -- spoofable client identity -----------------------------------------
    @run.case
    def spoofed_identity_headers_dropped():
        t = tag()
        st, _, _ = h.request("GET", "/headers?id-%s" % t, headers={
            "X_Forwarded_For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "True-Client-IP": "6.6.6.6",
            "CF-Connecting-IP": "6.6.6.6", "X_Real_IP": "6.6.6.6", "X-Kept": "yes"})
        expect_eq(st, 200, "status")
        got = seen(t)
        expect_eq(len(got), 1, "requests the service saw")
        names = [k.lower() for k, _ in got[0]["headers"]]
        headers = {k.lower(): v for k, v in got[0]["headers"]}
        underscored = [n for n in names if "_" in n]
        expect(not underscored, "header names with underscores reached the service: %s" % underscored)
        for name in ("true-client-ip", "cf-connecting-ip"):
            expect(name not in headers, "client-sent %s reached the service" % name)
        expect_eq(names.count("x-real-ip"), 1, "X-Real-IP headers at the service")
        expect_eq(headers["x-real-ip"], "127.0.0.1", "X-Real-IP at the service")
        expect_eq(headers["x-forwarded-for"], "127.0.0.1", "X-Forwarded-For at the service")
        expect_eq(headers.get("x-kept"), "yes", "an ordinary header")
        expect("6.6.6.6" not in json.dumps(got[0]["headers"]), "a spoofed address reached the service")

    # -- secrets in access logs ---------------------------------------------
    @run.case
    def access_log_redacts_secret_query_values():
        t = tag()
        secrets = {n: "S3CR3T%s%s" % (n.upper().replace("_", ""), t) for n in REDACT}
        query = "&".join("%s=%s" % (n, v) for n, v in secrets.items()) + "&visible=v-%s" % t
        mark = edge.mark()
        st, _, _ = h.request("GET", "/headers?" + query)
        expect_eq(st, 200, "status")
        ev = edge.wait_event("request", since=mark, timeout=5,
                             path=lambda p: "visible=v-%s" % t in str(p))
        for n in REDACT:
            expect("%s=REDACTED" % n in ev["path"], "%s not redacted in the request log: %s" % (n, ev["path"]))
        leaked = [v for v in secrets.values()
                  if any(v in line for p in (edge, origin) for line in p.lines())]
        expect(not leaked, "secret query values in the edge or origin log: %s" % leaked)
        got = seen(t)
        expect(got and all(v in got[0]["path"] for v in secrets.values()),
               "the service must still get the whole query")

    # -- buffered streaming -------------------------------------------------
    def first_bytes_delay(framing):
        """Seconds until the first 100 body bytes reach the client, and the whole time."""
        sock = h.tls_socket(timeout=PAUSE + 10)
        try:
            t0 = time.monotonic()
            sock.sendall(b"GET /trickle?framing=%s&first=100&rest=100&pause=%.1f HTTP/1.1\r\n"
                         b"Host: app.test\r\n\r\n" % (framing.encode(), PAUSE))
            data = b""
            first = None
            while True:
                d = sock.recv(65536)
                if not d:
                    break
                data += d
                head, _, rest = data.partition(b"\r\n\r\n")
                if first is None and b"a" * 100 in rest:
                    first = time.monotonic() - t0
                if b"b" * 100 in rest and (framing != "chunked" and framing != "close" or rest.endswith(b"0\r\n\r\n")):
                    break
            total = time.monotonic() - t0
        finally:
            sock.close()
        expect(data.startswith(b"HTTP/1.1 200"), "%s: response %r" % (framing, data[:80]))
        expect(first is not None, "%s: the first 100 bytes never arrived: %r" % (framing, data[:300]))
        head, _, body = data.partition(b"\r\n\r\n")
        if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
            body = dechunk(body)
        expect_eq(body, b"a" * 100 + b"b" * 100, "%s: body the client got" % framing)
        return first, total

    def streaming(framing):
        first, total = first_bytes_delay(framing)
        print("   %s: first 100 bytes after %.2fs, whole response %.2fs (service pauses %.1fs)"
              % (framing, first, total, PAUSE))
        expect(first < PAUSE / 2, "%s: the first 100 bytes took %.2fs, the service sent them at once "
                                  "and paused %.1fs: buffered" % (framing, first, PAUSE))
        expect(total >= PAUSE * 0.9, "%s: whole response in %.2fs, before the pause ended?" % (framing, total))

    @run.case
    def streaming_content_length_not_buffered():
        streaming("length")

    @run.case
    def streaming_chunked_not_buffered():
        streaming("chunked")

    @run.case
    def streaming_close_delimited_not_buffered():
        streaming("close")

    # -- unbounded chunk extensions and trailers ----------------------------
    def endless(prefix, filler, what):
        rss0 = rss_kb(edge.pid)
        peak = [rss0]  # sampled while the connection is open: a freed buffer leaves RSS at once

        def sample(sent):
            if sent % (4 * MB) == 0:
                peak[0] = max(peak[0], rss_kb(edge.pid))
        sock = h.tls_socket(timeout=10)
        try:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n" + prefix)
            sent, early = send_until_answered(sock, filler * (256 * KB), 64 * MB, sample=sample)
            time.sleep(0.2)
            peak[0] = max(peak[0], rss_kb(edge.pid))
            status, head, closed = finish_response(sock, early, timeout=3)
        finally:
            sock.close()
        rss1 = peak[0]
        grew = (rss1 - rss0) / 1024.0
        print("   %s: sent %.1f MiB, answer %s, edge RSS %d -> %d kB (%+.1f MB)"
              % (what, sent / MB, status, rss0, rss1, grew))
        expect_eq(status, 400, "status for an endless %s (head %r)" % (what, head[:120]))
        expect(closed, "connection should be closed after the 400")
        expect(grew < 8, "edge RSS grew by %.1f MB while a client streamed an endless %s" % (grew, what))

    @run.case
    def endless_chunk_extension_400_bounded_memory():
        endless(b"5;ext=", b"v", "chunk extension")

    @run.case
    def endless_trailers_400_bounded_memory():
        endless(b"5\r\nhello\r\n0\r\nX-Trailer: ", b"t", "trailer section")

    @run.case
    def service_endless_chunk_extension_502_bounded_memory():
        # The same bound on the service's side: a broken service must not make
        # the edge buffer its response without limit.
        import threading
        rss0 = rss_kb(edge.pid)
        peak = [rss0]
        done = threading.Event()

        def sampler():  # the buffer is freed with the connection: sample while it lives
            while not done.wait(0.02):
                peak[0] = max(peak[0], rss_kb(edge.pid))
        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        try:
            st, head, _, _ = raw(b"GET /endless-chunk-ext?mb=32 HTTP/1.1\r\nHost: app.test\r\n\r\n",
                                 timeout=20, close_wait=0.2)
        finally:
            done.set()
            th.join(5)
        grew = (peak[0] - rss0) / 1024.0
        print("   service chunk extension: answer %s, edge RSS %+.1f MB" % (st, grew))
        expect_eq(st, 502, "status when the service streams an endless chunk extension (head %r)" % head[:120])
        expect(grew < 8, "edge RSS grew by %.1f MB buffering a service's chunk extension" % grew)

    # -- nothing left behind -------------------------------------------------
    @run.case
    def no_streams_left_open():
        import http.client as hc

        def active():
            c = hc.HTTPConnection("127.0.0.1", h.admin_port, timeout=5)
            try:
                c.request("GET", "/metrics")
                text = c.getresponse().read().decode()
            finally:
                c.close()
            m = re.search(r"(?m)^hearth_streams_active(?:\{[^}]*\})?\s+(\d+)", text)
            return int(m.group(1)) if m else None
        deadline = time.monotonic() + 10
        n = active()
        while n != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            n = active()
        expect_eq(n, 0, "hearth_streams_active after every client connection closed (stream leak?)")

    @run.case
    def edge_and_origin_still_running():
        expect(edge.alive(), "edge exited: %s" % edge.p.returncode)
        expect(origin.alive(), "origin exited: %s" % origin.p.returncode)

    run.finish()


if __name__ == "__main__":
    main()
