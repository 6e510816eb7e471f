#!/usr/bin/python3
"""HTTP/2 to clients: curl --http2, nghttp and raw frames (python3-h2) through
edge -> tunnel -> origin -> home service, on loopback with real TLS.

The edge runs with idle_timeout = 3s so the zero-window case ends quickly.
Flood cases send raw frames and check that the edge answers GOAWAY
(ENHANCE_YOUR_CALM) or 431, that its RSS stays bounded and that it opened
(almost) no tunnel streams for the abandoned requests. The last case sends
SIGTERM and checks GOAWAY's last-stream-id and that the in-flight stream
finishes.
"""

import hashlib
import json
import http.client as hc
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import rss_kb, Harness, TestRun, expect, expect_eq, sha256_file  # noqa: E402

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    import h2.settings
    import hpack
except ImportError:  # pragma: no cover
    h2 = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from home_service import download_sha256  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 3, 4, 6, 7, 8, 9)
END_STREAM, END_HEADERS = 0x1, 0x4
ENHANCE_YOUR_CALM = 0xB


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(
        ">I", stream) + payload


def main():
    run = TestRun("http2", __doc__)
    run.require_binaries()
    if h2 is None:
        run.skip("python3-h2 is not installed")
    if not shutil.which("curl"):
        run.skip("curl is not installed")
    h = Harness(run)
    try:
        svc = h.start_service("h2svc")
        h.write_edge_config(extra_edge='idle_timeout = "3s"\ndrain_timeout = "10s"')
        conf = h.pair_origin([("app.test", "/signaling", svc.ws_url),
                              ("app.test", None, svc.http_url)])
        edge = h.start_edge()
        origin = h.start_origin(conf)
        edge.wait_event("tunnel.up", timeout=10)
        h.wait_ready(origin=origin)
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    def metrics():
        c = hc.HTTPConnection("127.0.0.1", h.admin_port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def opened():
        return metrics().get("hearth_tunnel_streams_opened_total", 0)

    def tls_h2(host="app.test"):
        ctx = ssl.create_default_context(cafile=h.cert)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        sock = socket.create_connection((h.edge_host, h.https_port), timeout=10)
        s = ctx.wrap_socket(sock, server_hostname=host)
        expect_eq(s.selected_alpn_protocol(), "h2", "ALPN")
        return s

    def client(settings=None, host="app.test"):
        s = tls_h2(host)
        c = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_inbound_headers=False))
        c.initiate_connection()
        if settings:
            c.update_settings(settings)
        s.sendall(c.data_to_send())
        return s, c

    def req_headers(path, method="GET", authority=None, extra=()):
        return [(":method", method), (":scheme", "https"),
                (":authority", authority or "app.test:%d" % h.https_port), (":path", path)] + list(extra)

    def pump(s, c, until, timeout=10.0, ack=True, skip_ack=()):
        """Feed frames to c until until(events_so_far) is true. Returns all events."""
        events = []
        deadline = time.monotonic() + timeout
        while not until(events):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("h2 wait timed out; events: %r" % events[-5:])
            s.settimeout(left)
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                events.append("eof")
                break
            for ev in c.receive_data(data):
                events.append(ev)
                if ack and isinstance(ev, h2.events.DataReceived):
                    if ev.stream_id in skip_ack:
                        c.increment_flow_control_window(ev.flow_controlled_length)
                    else:
                        c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            out = c.data_to_send()
            if out:
                s.sendall(out)
        return events

    def raw_conn(host="app.test"):
        s = tls_h2(host)
        s.sendall(PREFACE + frame(SETTINGS, 0, 0))
        return s

    def read_until_goaway(s, timeout=10.0, stop=None):
        """Raw frames until GOAWAY (or stop(frames)) or EOF: (goaway (last_id, code) or None,
        frames seen)."""
        buf = b""
        frames = []
        goaway = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                return None, frames
            if not data:
                return None, frames
            buf += data
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                ftype, flags = buf[3], buf[4]
                sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
                payload = buf[9:9 + n]
                buf = buf[9 + n:]
                frames.append((ftype, flags, sid, payload))
                if ftype == GOAWAY and goaway is None:
                    goaway = (int.from_bytes(payload[:4], "big") & 0x7fffffff,
                              int.from_bytes(payload[4:8], "big"))
                    if stop is None:
                        return goaway, frames
                if stop is not None and stop(frames):
                    return goaway, frames
            if not data:
                return goaway, frames
        raise TimeoutError("no GOAWAY or EOF within %.0fs" % timeout)

    def statuses(frames, sid):
        dec = hpack.Decoder()
        dec.max_allowed_table_size = 65536
        out = []
        for ftype, flags, fsid, payload in frames:
            if ftype == HEADERS:
                hdrs = dict(dec.decode(payload))
                if fsid == sid:
                    out.append(hdrs.get(":status", hdrs.get(b":status")))
        return [x.decode() if isinstance(x, bytes) else x for x in out]

    def h2curl(*args, timeout=60):
        r = h.curl("--http2", *args, timeout=timeout)
        expect(r.returncode == 0, "curl failed (%d): %s" % (r.returncode, r.stderr[-500:]))
        return r.stdout

    @run.case
    def curl_get_is_h2():
        out = h2curl("-o", "/dev/null", "-w", "%{http_version} %{http_code}", h.url("/headers"))
        expect_eq(out, "2 200", "curl: http version and status")
        body = h2curl(h.url("/headers"))
        expect('"x-forwarded-proto": "https"' in body, "forwarding headers reach the service: " + body)

    @run.case
    def http11_still_offered():
        out = h.curl("--http1.1", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                     h.url("/headers")).stdout
        expect_eq(out, "1.1 200", "curl --http1.1")

    @run.case
    def download_50mb_sha256():
        n = 50 * 1000 * 1000
        path = h.path("dl.bin")
        out = h2curl("-o", path, "-w", "%{http_version}", h.url("/download?bytes=%d&seed=h2" % n))
        expect_eq(out, "2", "http version")
        expect_eq(sha256_file(path), download_sha256(n, "h2"), "sha256 of the download")
        os.unlink(path)

    @run.case
    def upload_50mb_sha256():
        path = h.path("up.bin")
        with open(path, "wb") as f:
            for i in range(50):
                f.write(hashlib.shake_256(b"up%d" % i).digest(1000 * 1000))
        out = h2curl("--data-binary", "@" + path, "-H", "Content-Type: application/octet-stream",
                     h.url("/echo"))
        expect('"sha256": "%s"' % sha256_file(path) in out, "echoed sha256: " + out[:200])
        os.unlink(path)

    @run.case
    def chunked_request_without_length():
        data = b"x" * 300000
        r = subprocess.run(h.curl_base() + ["--http2", "-T", "-", h.url("/echo")], input=data,
                           capture_output=True, timeout=30)
        expect(r.returncode == 0, "curl: %s" % r.stderr[-300:])
        expect(b'"length": 300000' in r.stdout, "service got the whole body: %r" % r.stdout[:200])

    @run.case
    def nghttp_get_and_upload():
        if not shutil.which("nghttp"):
            print("   " + "nghttp not installed: skipped this case")
            return
        url = "https://127.0.0.1:%d/headers" % h.https_port
        r = subprocess.run(["nghttp", "-H", ":authority: app.test:%d" % h.https_port, url],
                           capture_output=True, text=True, timeout=20)
        expect(r.returncode == 0 and '"service": "h2svc"' in r.stdout,
               "nghttp GET: %s %s" % (r.stdout[:200], r.stderr[:200]))
        path = h.path("ng.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(2 * 1000 * 1000))
        r = subprocess.run(["nghttp", "-d", path, "-H", ":authority: app.test:%d" % h.https_port,
                            "https://127.0.0.1:%d/echo" % h.https_port],
                           capture_output=True, text=True, timeout=20)
        expect(sha256_file(path) in r.stdout, "nghttp upload: %s %s" % (r.stdout[:200], r.stderr[:200]))

    @run.case
    def head_204_304_and_100_continue():
        out = h2curl("-I", h.url("/download?bytes=1234"))
        expect("content-length: 1234" in out.lower(), "HEAD keeps Content-Length: " + out)
        for code in (204, 304):
            out = h2curl("-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                         h.url("/status/%d" % code))
            expect_eq(out, "%d 0" % code, "status %d without body" % code)
        out = h.curl("--http2", "-v", "-H", "Expect: 100-continue", "--data-binary", "x" * 5000,
                     h.url("/echo")).stderr
        expect("HTTP/2 100" in out and "HTTP/2 200" in out, "100 Continue passed on: " + out[-600:])

    @run.case
    def sequential_streams_reuse_tunnel_stream():
        before = opened()
        s, c = client()
        bodies = []
        for i in range(20):
            sid = 1 + 2 * i
            c.send_headers(sid, req_headers("/headers"), end_stream=True)
            s.sendall(c.data_to_send())

            def ended(evs, sid=sid):
                return any(isinstance(x, h2.events.StreamEnded) and x.stream_id == sid for x in evs)
            evs = pump(s, c, ended)
            bodies.append(b"".join(x.data for x in evs if isinstance(x, h2.events.DataReceived)))
        s.close()
        delta = opened() - before
        last = json.loads(bodies[-1])
        print("   20 sequential streams: %d tunnel streams opened, service conn_requests %d"
              % (delta, last["conn_requests"]))
        expect(delta <= 2, "tunnel streams opened for 20 sequential requests: %d" % delta)
        expect(last["conn_requests"] >= 19, "the service saw one kept connection: %r" % last)

    @run.case
    def misdirected_request_421():
        s, c = client()
        c.send_headers(1, req_headers("/headers", authority="elsewhere.example"), end_stream=True)
        s.sendall(c.data_to_send())
        evs = pump(s, c, lambda e: any(isinstance(x, h2.events.StreamEnded) for x in e))
        status = [dict(x.headers)[":status"] for x in evs if isinstance(x, h2.events.ResponseReceived)]
        expect_eq(status, ["421"], "status for an authority the certificate does not cover")
        c.send_headers(3, req_headers("/headers"), end_stream=True)
        s.sendall(c.data_to_send())
        evs = pump(s, c, lambda e: any(isinstance(x, h2.events.StreamEnded) for x in e))
        status = [dict(x.headers)[":status"] for x in evs if isinstance(x, h2.events.ResponseReceived)]
        expect_eq(status, ["200"], "same connection, covered name")
        s.close()

    @run.case
    def hundred_streams_one_unread():
        s, c = client()
        big = 1
        c.send_headers(big, req_headers("/download?bytes=200000000&seed=u"), end_stream=True)
        ids = [3 + 2 * i for i in range(99)]
        for sid in ids:
            c.send_headers(sid, req_headers("/download?bytes=20000&seed=%d" % sid), end_stream=True)
        s.sendall(c.data_to_send())
        rss0 = rss_kb(edge.pid)
        t0 = time.monotonic()
        done = set()

        def all_done(evs):
            for x in evs:
                if isinstance(x, h2.events.StreamEnded):
                    done.add(x.stream_id)
            return all(i in done for i in ids)
        pump(s, c, all_done, timeout=30, skip_ack={big})
        took = time.monotonic() - t0
        got_big = c._get_stream_by_id(big).inbound_flow_control_window if False else None  # noqa
        expect(big not in done, "the unread download did not complete")
        rss1 = rss_kb(edge.pid)
        print("   " + "99 streams beside an unread 200 MB download: %.2fs; edge RSS %d -> %d kB"
                 % (took, rss0, rss1))
        expect(rss1 - rss0 < 30000, "edge RSS grew by %d kB" % (rss1 - rss0))
        c.reset_stream(big)
        s.sendall(c.data_to_send())
        s.close()

    @run.case
    def websocket_over_h2():
        s, c = client()
        evs = pump(s, c, lambda e: any(isinstance(x, h2.events.RemoteSettingsChanged) for x in e))
        rs = [x for x in evs if isinstance(x, h2.events.RemoteSettingsChanged)][0]
        expect(rs.changed_settings.get(8) is not None and rs.changed_settings[8].new_value == 1,
               "SETTINGS_ENABLE_CONNECT_PROTOCOL advertised")
        hdrs = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
                (":authority", "app.test:%d" % h.https_port), (":path", "/signaling"),
                ("sec-websocket-version", "13")]
        c.send_headers(1, hdrs, end_stream=False)
        s.sendall(c.data_to_send())
        evs = pump(s, c, lambda e: any(isinstance(x, h2.events.ResponseReceived) for x in e))
        st = [dict(x.headers)[":status"] for x in evs if isinstance(x, h2.events.ResponseReceived)]
        expect_eq(st, ["200"], "extended CONNECT answered")
        msg = b"hello over h2"
        mask = b"\x01\x02\x03\x04"
        wsframe = bytes([0x81, 0x80 | len(msg)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg))
        c.send_data(1, wsframe)
        s.sendall(c.data_to_send())
        got = bytearray()

        def echoed(evs):
            for x in evs[len(echoed.seen):]:
                if isinstance(x, h2.events.DataReceived):
                    got.extend(x.data)
            echoed.seen = list(evs)
            return len(got) >= 2 + len(msg)
        echoed.seen = []
        pump(s, c, echoed, timeout=10)
        expect_eq(bytes(got[2:2 + len(msg)]), msg, "WebSocket echo over h2")
        s.close()

    # -- protections: raw frames ----------------------------------------------------------
    enc_headers = lambda path: hpack.Encoder().encode(req_headers(path))  # noqa: E731

    def wait_streams_back(timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if metrics().get("hearth_streams_active", 0) == 0:
                return
            time.sleep(0.1)
        raise AssertionError("tunnel streams still open: %r" % metrics().get("hearth_streams_active"))

    @run.case
    def rapid_reset():
        before = opened()
        rss0 = rss_kb(edge.pid)
        s = raw_conn()
        enc = hpack.Encoder()
        burst = b""
        for i in range(2000):
            sid = 1 + 2 * i
            burst += frame(HEADERS, END_HEADERS | END_STREAM, sid,
                           enc.encode(req_headers("/slow?seconds=2")))
            burst += frame(RST_STREAM, 0, sid, struct.pack(">I", 8))
        try:
            for i in range(0, len(burst), 32768):
                s.sendall(burst[i:i + 32768])
        except OSError:
            pass
        goaway, _ = read_until_goaway(s, timeout=10)
        s.close()
        delta = opened() - before
        rss1 = rss_kb(edge.pid)
        print("   " + "rapid reset: GOAWAY %r, tunnel streams opened %d for 2000 HEADERS+RST, RSS +%d kB"
                 % (goaway, delta, rss1 - rss0))
        expect(goaway is not None and goaway[1] == ENHANCE_YOUR_CALM,
               "GOAWAY(ENHANCE_YOUR_CALM), got %r" % (goaway,))
        expect(delta <= 250, "tunnel streams opened: %d" % delta)
        wait_streams_back()
        # Now each reset comes after its exchange started (a tunnel stream opened).
        before = opened()
        s = raw_conn()
        enc = hpack.Encoder()
        goaway = None
        try:
            for i in range(400):
                sid = 1 + 2 * i
                s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, sid,
                                enc.encode(req_headers("/slow?seconds=2"))))
                time.sleep(0.002)
                s.sendall(frame(RST_STREAM, 0, sid, struct.pack(">I", 8)))
        except OSError:
            pass
        goaway, _ = read_until_goaway(s, timeout=10)
        s.close()
        delta = opened() - before
        print("   rapid reset after start: GOAWAY %r, tunnel streams opened %d" % (goaway, delta))
        expect(goaway is not None and goaway[1] == ENHANCE_YOUR_CALM,
               "GOAWAY(ENHANCE_YOUR_CALM), got %r" % (goaway,))
        expect(delta <= 250, "tunnel streams opened: %d" % delta)
        wait_streams_back()

    @run.case
    def continuation_flood():
        rss0 = rss_kb(edge.pid)
        s = raw_conn()
        block = hpack.Encoder().encode(req_headers("/headers"))
        s.sendall(frame(HEADERS, 0, 1, block))
        filler = b"\x00\x05x-pad\x7f\x81\x7f" + b"a" * 16000  # literal, ~16 KB value
        sent = 0
        try:
            for _ in range(400):
                s.sendall(frame(CONTINUATION, 0, 1, filler[:16384]))
                sent += 1
        except OSError:
            pass
        goaway, _ = read_until_goaway(s, timeout=10)
        s.close()
        rss1 = rss_kb(edge.pid)
        print("   " + "CONTINUATION flood: %d frames sent, GOAWAY %r, RSS +%d kB" % (sent, goaway, rss1 - rss0))
        expect(goaway is None or goaway[1] in (ENHANCE_YOUR_CALM, 1, 2, 6, 9),
               "connection error, got %r" % (goaway,))
        expect(rss1 - rss0 < 20000, "edge RSS grew by %d kB" % (rss1 - rss0))

    @run.case
    def hpack_bomb_gets_431():
        rss0 = rss_kb(edge.pid)
        s = raw_conn()
        # One 4000-byte header in the dynamic table, then 3000 one-byte references to it:
        # 12 MB of decoded headers from 3 KB on the wire.
        enc = hpack.Encoder()
        first = enc.encode(req_headers("/headers") + [("x-bomb", "b" * 4000)])
        refs = b"\xbe" * 3000  # indexed field 62: the newest dynamic entry
        s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1, first + refs))
        goaway, frames = read_until_goaway(
            s, timeout=10, stop=lambda fr: any(f[0] in (HEADERS, RST_STREAM) and f[2] == 1 for f in fr))
        st = statuses(frames, 1)
        rss1 = rss_kb(edge.pid)
        print("   HPACK bomb: answer %r, GOAWAY %r, RSS +%d kB" % (st, goaway, rss1 - rss0))
        expect_eq(st, ["431"], "status for a header list over max_header_size")
        expect(rss1 - rss0 < 20000, "edge RSS grew by %d kB" % (rss1 - rss0))
        s.close()

    def flood(name, make):
        rss0 = rss_kb(edge.pid)
        s = raw_conn()
        sent = 0
        try:
            chunk = b"".join(make(i) for i in range(500))
            for _ in range(40):
                s.sendall(chunk)
                sent += 500
        except OSError:
            pass
        goaway, _ = read_until_goaway(s, timeout=10)
        s.close()
        rss1 = rss_kb(edge.pid)
        print("   " + "%s: %d frames sent, GOAWAY %r, RSS +%d kB" % (name, sent, goaway, rss1 - rss0))
        expect(goaway is not None and goaway[1] == ENHANCE_YOUR_CALM,
               "%s: GOAWAY(ENHANCE_YOUR_CALM), got %r" % (name, goaway))
        expect(rss1 - rss0 < 20000, "edge RSS grew by %d kB" % (rss1 - rss0))

    @run.case
    def ping_flood():
        flood("PING flood", lambda i: frame(PING, 0, 0, struct.pack(">Q", i)))

    @run.case
    def settings_flood():
        flood("SETTINGS flood", lambda i: frame(SETTINGS, 0, 0, struct.pack(">HI", 3, 100)))

    @run.case
    def empty_data_flood():
        enc = hpack.Encoder()
        opening = frame(HEADERS, END_HEADERS, 1, enc.encode(req_headers("/echo", "POST")))
        flood("empty DATA flood", lambda i: (opening if i == 0 else b"") + frame(DATA, 0, 1))

    @run.case
    def zero_window_held_forever_is_reset():
        before_active = metrics().get("hearth_streams_active", 0)
        s, c = client(settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        c.send_headers(1, req_headers("/download?bytes=5000000&seed=z"), end_stream=True)
        s.sendall(c.data_to_send())
        t0 = time.monotonic()
        evs = pump(s, c, lambda e: any(isinstance(x, (h2.events.StreamReset, h2.events.StreamEnded))
                                       for x in e), timeout=15, ack=False)
        took = time.monotonic() - t0
        resets = [x for x in evs if isinstance(x, h2.events.StreamReset)]
        print("   " + "zero window: stream reset after %.1fs (idle_timeout 3s)" % took)
        expect(resets, "the stream was reset")
        expect(took < 10, "reset took %.1fs" % took)
        s.close()
        wait_streams_back()
        expect(metrics().get("hearth_streams_active", 0) <= before_active, "tunnel stream closed")

    @run.case
    def http2_false_offers_only_http11():
        conf2 = h.path("edge-noh2.toml")
        with open(h.edge_conf) as f:
            text = f.read()
        # Only the key is checked here: a second edge is not needed.
        text = text.replace('idle_timeout = "3s"', 'idle_timeout = "3s"\nhttp2 = false')
        with open(conf2, "w") as f:
            f.write(text)
        r = subprocess.run([run.bin("hearth-edge"), "check", "--config", conf2],
                           capture_output=True, text=True, timeout=10)
        expect(r.returncode == 0, "http2 = false is a valid key: %s" % r.stderr)
        bad = text.replace("http2 = false", "h2_initial_window_size = 3000000000")
        with open(conf2, "w") as f:
            f.write(bad)
        r = subprocess.run([run.bin("hearth-edge"), "check", "--config", conf2],
                           capture_output=True, text=True, timeout=10)
        expect(r.returncode == 1 and "h2_initial_window_size" in (r.stdout + r.stderr),
               "window over 2^31-1 refused: %s" % (r.stdout + r.stderr))

    @run.case
    def http2_false_by_sighup_then_back():
        with open(h.edge_conf) as f:
            orig = f.read()
        try:
            with open(h.edge_conf, "w") as f:
                f.write(orig.replace('idle_timeout = "3s"', 'idle_timeout = "3s"\nhttp2 = false'))
            mark = edge.mark()
            edge.signal(1)
            edge.wait_event("reload.done", timeout=10, since=mark)
            out = h.curl("--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                         h.url("/headers")).stdout
            expect_eq(out, "1.1 200", "http2 = false: ALPN offers http/1.1 only")
        finally:
            with open(h.edge_conf, "w") as f:
                f.write(orig)
            mark = edge.mark()
            edge.signal(1)
            edge.wait_event("reload.done", timeout=10, since=mark)
        out = h2curl("-o", "/dev/null", "-w", "%{http_version}", h.url("/headers"))
        expect_eq(out, "2", "http2 back on after the next reload")

    @run.case
    def body_limit_413_after_sighup():
        # The limit comes from the config of the exchange: a SIGHUP applies at once,
        # also on a connection that was open before (curl opens new ones here).
        with open(h.edge_conf) as f:
            orig = f.read()
        try:
            with open(h.edge_conf, "w") as f:
                f.write(orig.replace('idle_timeout = "3s"', 'idle_timeout = "3s"\nmax_body_size = "1MB"'))
            mark = edge.mark()
            edge.signal(1)
            edge.wait_event("reload.done", timeout=10, since=mark)
            before = metrics().get('hearth_http_requests_total{code="413"}', 0)
            # Raw frames: curl 7.88 reports "(92) stream error" and drops the response when
            # RST_STREAM(NO_ERROR) stops its upload after the 413, which RFC 9113 8.1 allows.
            # Streamed (no content-length), with flow control: 413 once past the limit.
            s3, c3 = client()
            c3.send_headers(1, req_headers("/echo", "POST"), end_stream=False)
            s3.sendall(c3.data_to_send())
            sent, evs = 0, []
            try:
                while sent < 1500000 and not any(isinstance(x, (h2.events.ResponseReceived,
                                                                h2.events.StreamReset)) for x in evs):
                    n = min(16384, c3.local_flow_control_window(1))
                    if n == 0:
                        evs += pump(s3, c3, lambda e: any(isinstance(x, (
                            h2.events.WindowUpdated, h2.events.ResponseReceived,
                            h2.events.StreamReset)) for x in e), timeout=10)
                        continue
                    c3.send_data(1, b"w" * n)
                    s3.sendall(c3.data_to_send())
                    sent += n
            except h2.exceptions.StreamClosedError:
                pass
            if not any(isinstance(x, h2.events.ResponseReceived) for x in evs):
                evs += pump(s3, c3, lambda e: any(isinstance(x, h2.events.ResponseReceived)
                                                  for x in e), timeout=10)
            s3.close()
            st = [dict(x.headers)[":status"] for x in evs if isinstance(x, h2.events.ResponseReceived)]
            print("   streamed body over max_body_size: %r after %d bytes" % (st, sent))
            expect_eq(st, ["413"], "streamed body over max_body_size")
            for announced in (True,):
                s2 = raw_conn()
                enc = hpack.Encoder()
                extra = [("content-length", "1500000")] if announced else []
                s2.sendall(frame(HEADERS, END_HEADERS, 1,
                                 enc.encode(req_headers("/echo", "POST", extra=extra))))
                try:
                    for _ in range(16):  # 16 x 16 KiB = 256 KiB: within the stream window
                        s2.sendall(frame(DATA, 0, 1, b"z" * 16384))
                except OSError:
                    pass
                _, frames = read_until_goaway(s2, timeout=10, stop=lambda fr: any(
                    f[2] == 1 and (f[0] == RST_STREAM or (f[1] & END_STREAM)) for f in fr))
                s2.close()
                expect_eq(statuses(frames, 1), ["413"], "Content-Length over max_body_size")
            after = metrics().get('hearth_http_requests_total{code="413"}', 0)
            expect(after - before == 2, "two 413s counted (%d)" % (after - before))
        finally:
            with open(h.edge_conf, "w") as f:
                f.write(orig)
            mark = edge.mark()
            edge.signal(1)
            edge.wait_event("reload.done", timeout=10, since=mark)
        wait_streams_back()

    @run.case
    def goaway_on_sigterm_inflight_finishes():
        s = raw_conn()
        enc = hpack.Encoder()
        s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1, enc.encode(req_headers("/headers"))))
        _, first = read_until_goaway(s, timeout=10, stop=lambda fr: any(
            f[0] == DATA and f[2] == 1 and f[1] & END_STREAM for f in fr))
        s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 3,
                        enc.encode(req_headers("/slow?seconds=1.5"))))
        time.sleep(0.3)
        edge.signal(15)
        goaway, frames = read_until_goaway(s, timeout=10, stop=lambda fr: any(
            f[0] == DATA and f[2] == 3 and f[1] & END_STREAM for f in fr) and any(
            f[0] == GOAWAY for f in fr))
        print("   drain: GOAWAY %r" % (goaway,))
        expect(goaway is not None, "GOAWAY received")
        expect_eq(goaway[0], 3, "GOAWAY last-stream-id")
        expect_eq(goaway[1], 0, "GOAWAY error code (NO_ERROR)")
        expect_eq(statuses(first + frames, 3), ["200"], "the in-flight stream finished")
        s.close()
        code = edge.p.wait(timeout=15)
        expect_eq(code, 0, "edge exit code after drain")

    run.finish()


if __name__ == "__main__":
    main()
