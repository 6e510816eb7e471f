#!/usr/bin/python3
"""WebSocket (wss) through edge -> tunnel -> origin -> home service echo, on loopback.

Routes: app.test /signaling -> home_service WebSocket port; app.test / -> its HTTP port.
"""

import asyncio
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Harness, TestRun, expect, expect_eq, ws_connect, ws_echo_check,
                     ws_upgrade_raw)  # noqa: E402

SIZES = (1, 1024, 65536, 1 << 20)


def main():
    run = TestRun("websocket", __doc__)
    run.require_binaries()
    h = Harness(run)
    try:
        svc = h.start_service("ws")
        # Short enough to watch it end an idle WebSocket, long enough for every
        # other case (each keeps its sockets busy).
        h.write_edge_config(extra_edge='websocket_idle_timeout = "3s"')
        conf = h.pair_origin([("app.test", "/signaling", svc.ws_url), ("app.test", None, svc.http_url)])
        edge = h.start_edge()
        origin = h.start_origin(conf)
        edge.wait_event("tunnel.up", timeout=10)
        h.wait_ready(origin=origin)
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    def arun(coro, timeout=60):
        return asyncio.run(asyncio.wait_for(coro, timeout))

    def connect(path="/signaling", **kw):
        return ws_connect(path, h.cert, h.edge_host, h.https_port, **kw)

    @run.case
    def echo_sizes_no_compression():
        async def go():
            problems = []
            async with connect(compression=None) as ws:
                for size in SIZES:
                    text = ("0123456789abcdef" * (size // 16 + 1))[:size]
                    binary = hashlib.shake_256(b"b%d" % size).digest(size)
                    for msg in (text, binary):
                        await ws.send(msg)
                        got = await asyncio.wait_for(ws.recv(), 30)
                        kind = "text" if isinstance(msg, str) else "binary"
                        if type(got) is not type(msg):
                            problems.append("%s %d B came back as %s" % (kind, size, type(got).__name__))
                        elif got != msg:
                            problems.append("%s %d B altered (got %d B)" % (kind, size, len(got)))
                await ws.close(1000)
            return problems
        problems = arun(go())
        expect(not problems, "; ".join(problems))

    @run.case
    def echo_sizes_permessage_deflate_and_close_4001():
        problems = arun(ws_echo_check("/signaling", h.cert, h.edge_host, h.https_port, sizes=SIZES,
                                      close_code=4001))
        expect(not problems, "; ".join(problems))

    @run.case
    def close_code_and_reason_preserved():
        async def go():
            async with connect() as ws:
                await ws.send("before close")
                expect_eq(await asyncio.wait_for(ws.recv(), 10), "before close", "echo")
                await asyncio.wait_for(ws.close(4001, "going away now"), 10)
                return ws.close_code, ws.close_reason
        code, reason = arun(go())
        expect_eq(code, 4001, "close code seen by the client")
        expect_eq(reason, "going away now", "close reason seen by the client")

    @run.case
    def ping_pong():
        async def go():
            async with connect() as ws:
                waiter = await ws.ping(b"hearth-ping")
                await asyncio.wait_for(waiter, 5)
                await ws.send("after ping")
                return await asyncio.wait_for(ws.recv(), 10)
        expect_eq(arun(go()), "after ping", "echo after ping/pong")

    @run.case
    def concurrent_sockets():
        async def one(i):
            async with connect() as ws:
                for j in range(30):
                    msg = ("s%d-m%d-" % (i, j)) * (1 + (i * j) % 200)
                    if j % 2:
                        msg = msg.encode()
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), 20)
                    if got != msg:
                        return "socket %d message %d altered" % (i, j)
                await ws.close(4000 + i)
                if ws.close_code != 4000 + i:
                    return "socket %d: close code %r, expected %d" % (i, ws.close_code, 4000 + i)
            return None

        async def go():
            return await asyncio.gather(*(one(i) for i in range(20)), return_exceptions=True)
        results = arun(go(), 90)
        bad = [r for r in results if r is not None]
        expect(not bad, "%d of 20 concurrent sockets failed: %s" % (len(bad), [str(b) for b in bad[:5]]))

    @run.case
    def fragmentation_preserved():
        from websockets.frames import Opcode

        async def go():
            async with connect("/signaling?fragments=1", compression=None) as ws:
                await ws.write_frame(False, Opcode.TEXT, b"frag-1-")
                await ws.write_frame(False, Opcode.CONT, b"frag-2-")
                await ws.write_frame(True, Opcode.CONT, b"end")
                text = await asyncio.wait_for(ws.recv(), 10)
                text_frames = list(ws.frames)
                parts = [hashlib.shake_256(b"f%d" % i).digest(100000) for i in range(3)]
                await ws.write_frame(False, Opcode.BINARY, parts[0])
                await ws.write_frame(False, Opcode.CONT, parts[1])
                await ws.write_frame(True, Opcode.CONT, parts[2])
                binary = await asyncio.wait_for(ws.recv(), 20)
                binary_frames = list(ws.frames)
                await ws.close(1000)
                return text, text_frames, binary, binary_frames, b"".join(parts)
        text, tf, binary, bf, want = arun(go())
        expect_eq(text, "frag-1-frag-2-end", "reassembled fragmented text")
        expect_eq(binary, want, "reassembled fragmented binary")
        expect_eq([(int(o), f, n) for o, f, n in tf],
                  [(int(Opcode.TEXT), False, 7), (int(Opcode.CONT), False, 7), (int(Opcode.CONT), True, 3)],
                  "frames of the echoed fragmented text message (opcode, fin, length)")
        expect_eq([(int(o), f, n) for o, f, n in bf],
                  [(int(Opcode.BINARY), False, 100000), (int(Opcode.CONT), False, 100000),
                   (int(Opcode.CONT), True, 100000)],
                  "frames of the echoed fragmented binary message")

    @run.case
    def client_vanishing_closes_the_service_side():
        # A client that drops TCP (no close frame, no close_notify) must not
        # leave the service's WebSocket open until websocket_idle_timeout.
        import json as _json
        import urllib.request

        def ws_open():
            with urllib.request.urlopen(svc.http_url + "/ws-open", timeout=5) as r:
                return _json.loads(r.read())["open"]
        # Sockets of the cases before may still be closing on the service
        # side: count from zero, or their closes would mask this one's open.
        deadline = time.monotonic() + 10
        while ws_open() != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = ws_open()
        expect_eq(before, 0, "service-side WebSockets still open from the cases before")
        sock = h.tls_socket()
        try:
            ws_upgrade_raw(sock)
            deadline = time.monotonic() + 5
            while ws_open() != before + 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            expect_eq(ws_open(), before + 1, "service-side WebSockets open after the upgrade")
        finally:
            sock.close()  # plain TCP close: no WebSocket close frame, no TLS close_notify
        t0 = time.monotonic()
        while ws_open() != before and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        expect_eq(ws_open(), before, "service-side WebSockets open 10 s after the client vanished")
        print("  service saw the vanished client's WebSocket close after %.0f ms"
              % ((time.monotonic() - t0) * 1000))

    def masked_frame(payload, opcode=0x1):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        else:
            hdr += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def read_frame(sock, pending):
        """One unmasked server frame: (opcode, payload, rest)."""
        buf = pending
        while True:
            if len(buf) >= 2:
                n = buf[1] & 0x7F
                off = 2
                if n == 126 and len(buf) >= 4:
                    n, off = int.from_bytes(buf[2:4], "big"), 4
                if n != 126 and len(buf) >= off + n:
                    return buf[0] & 0x0F, buf[off:off + n], buf[off + n:]
            chunk = sock.recv(65536)
            expect(chunk, "connection closed inside a frame (have %d bytes)" % len(buf))
            buf += chunk

    @run.case
    def frames_sent_right_behind_the_upgrade_request():
        # A client may send its first frames in the same write as the upgrade
        # request: the edge has read them with the head and must pass them on.
        sock = h.tls_socket()
        try:
            frames = [masked_frame(b"early-%d-" % i + b"x" * (i * 300)) for i in range(3)]
            rest = ws_upgrade_raw(sock, extra=b"".join(frames))
            for i in range(3):
                op, payload, rest = read_frame(sock, rest)
                expect_eq((op, payload), (1, b"early-%d-" % i + b"x" * (i * 300)),
                          "echo of frame %d sent behind the upgrade request" % i)
            sock.sendall(masked_frame(b"later"))
            op, payload, rest = read_frame(sock, rest)
            expect_eq(payload, b"later", "echo of a frame sent after the 101")
        finally:
            sock.close()

    @run.case
    def access_log_line_and_gauge_when_the_websocket_ends():
        import urllib.request

        def gauge():
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % h.admin_port,
                                        timeout=5) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("hearth_websockets_active "):
                        return int(float(line.split()[1]))
            raise AssertionError("no hearth_websockets_active in /metrics")
        deadline = time.monotonic() + 10
        while gauge() != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        expect_eq(gauge(), 0, "hearth_websockets_active before")
        mark = edge.mark()

        async def go():
            async with connect("/signaling?logged=1", compression=None) as ws:
                await ws.send("x" * 1000)
                await asyncio.wait_for(ws.recv(), 10)
                open_gauge = gauge()
                await ws.close(1000)
            return open_gauge
        expect_eq(arun(go()), 1, "hearth_websockets_active while open")
        ev = edge.wait_event("request", since=mark, status=101, timeout=10)
        expect_eq(ev.get("path"), "/signaling?logged=1", "path in the access-log line")
        expect_eq(ev.get("proto"), "h1", "proto in the access-log line")
        expect(ev.get("in", 0) > 1000 and ev.get("out", 0) > 1000,
               "WebSocket bytes counted in the access-log line: in %r out %r"
               % (ev.get("in"), ev.get("out")))
        deadline = time.monotonic() + 10
        while gauge() != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        expect_eq(gauge(), 0, "hearth_websockets_active after the close")

    @run.case
    def websocket_idle_timeout_ends_an_idle_socket_only():
        # websocket_idle_timeout = 3s: a socket with a message every second
        # stays; one that says nothing is closed after about 3 s.
        import websockets

        async def busy():
            async with connect(compression=None) as ws:
                for i in range(6):
                    await ws.send("tick %d" % i)
                    await asyncio.wait_for(ws.recv(), 10)
                    await asyncio.sleep(1.0)
                return "open"

        async def idle():
            async with connect(compression=None) as ws:
                await ws.send("hello")
                await asyncio.wait_for(ws.recv(), 10)
                t0 = time.monotonic()
                try:
                    await asyncio.wait_for(ws.recv(), 15)
                    return "got a message", 0
                except websockets.ConnectionClosed:
                    return "closed", time.monotonic() - t0
                except asyncio.TimeoutError:
                    return "still open after 15 s", 15

        async def go():
            return await asyncio.gather(busy(), idle())
        b, (state, after) = arun(go(), 60)
        expect_eq(b, "open", "a socket with traffic every second")
        expect_eq(state, "closed", "an idle socket")
        expect(2.5 <= after <= 8, "idle socket closed after %.1f s (timeout 3 s)" % after)
        print("  idle WebSocket closed after %.1f s (websocket_idle_timeout 3 s)" % after)

    @run.case
    def http_still_served_alongside():
        st, _, body = h.request("GET", "/")
        expect_eq(st, 200, "GET / status")
        expect(b"/signaling" in body, "demo page mentions /signaling")

    @run.case
    def edge_and_origin_still_running():
        expect(edge.alive(), "edge exited: %s" % edge.p.returncode)
        expect(origin.alive(), "origin exited: %s" % origin.p.returncode)
        for p in (edge, origin):
            bad = p.bad_log_lines()
            expect(not bad, "%s: %d stderr lines are not JSON log events, e.g. %r" % (p.name, len(bad), bad[:3]))

    run.finish()


if __name__ == "__main__":
    main()
