#!/usr/bin/python3
"""Sample home service for hearth's integration tests and demo.

HTTP (threading, HTTP/1.1 keep-alive) on --http-port, WebSocket echo on --ws-port.

HTTP endpoints (all also answer HEAD: same headers, no body):
  /                      small HTML demo page (button opens wss://<host>/signaling)
  /echo        POST/PUT  streams the request body (Content-Length or chunked; honours
                         Expect: 100-continue), replies {"length": N, "sha256": hex}
  /download?bytes=N&seed=S[&chunked=1]
                         N deterministic pseudo-random bytes (see download_blocks),
                         with Content-Length, or Transfer-Encoding: chunked
  /headers               JSON: service name, method, path, request headers
  /slow?seconds=S        sleeps S seconds, then replies JSON
  /trickle?bytes=N&pause=S&mode=length|chunked|close
                         N bytes, a pause of S seconds, N more bytes (streaming checks)
  /page?assets=N         HTML with N <img> assets and a WebSocket echo to /signaling; the
                         outcome lands in <div id=out> (browser tests)
  /status/NNN            answers with status NNN (204/304/1xx: no body)
  /drop-if-reused        closes the connection without answering when this is not the
                         first request on it (a kept upstream connection the service
                         closed just as the proxy reused it); else like /headers
                         (GET, POST, PUT)
  /ws-open               JSON {"open": N}: WebSocket connections open right now
  /trickle?framing=F&first=N&pause=S&rest=M
                         N bytes "a", a pause of S seconds, then M bytes "b"; F is
                         "length" (Content-Length), "chunked" or "close" (no length,
                         the connection closes after the body). For streaming tests.
  /ignore-body           200 without reading the request body (any method)
  /endless-chunk-ext?mb=N
                         a chunked 200 whose first chunk-size line is an N MiB chunk
                         extension (a broken or hostile service), then the connection closes
  /received[?clear=1]    JSON list of the last 256 requests this service parsed
                         (method, path, headers, body: "none", "reading", "complete"
                         or "incomplete: why", length): tests check what reached the
                         service. clear=1 empties it. Requests to /received are
                         not recorded.
/headers also reports "peer" (the TCP peer, ip:port) and "conn_requests" (how many
requests this TCP connection has carried, this one included).
Every response carries "X-Home-Service: <--name>". With --mount /api the service
also accepts every path under /api (the prefix is stripped before dispatch).

WebSocket: any path. Every message is echoed with its type (text stays text,
binary stays binary). When the client closes with code C, the close frame is
echoed, so the client sees C back. With "fragments=1" in the query string, each
message is echoed fragmented exactly as it was received (same frame sizes).

On start-up one JSON line {"http_port": P, "ws_port": Q} is printed on stdout
(useful with port 0). Nothing is logged per request unless --verbose.
"""

import argparse
import asyncio
import collections
import hashlib
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import time
import urllib.parse

BLOCK = 65536
RECEIVED = collections.deque(maxlen=256)  # what /received reports
RECEIVED_LOCK = threading.Lock()


def download_blocks(n, seed):
    """Yield the deterministic payload of /download?bytes=n&seed=seed.

    Block i (64 KiB) is SHAKE-256("hearth:<seed>:<i>") squeezed to 64 KiB; the
    stream is the concatenation of the blocks, cut at n bytes.
    """
    i = 0
    while n > 0:
        block = hashlib.shake_256(f"hearth:{seed}:{i}".encode()).digest(BLOCK)
        if n < BLOCK:
            block = block[:n]
        n -= len(block)
        i += 1
        yield block


def download_sha256(n, seed):
    h = hashlib.sha256()
    for b in download_blocks(n, seed):
        h.update(b)
    return h.hexdigest()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hearth home service</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}
#log{background:#f4f4f4;padding:1em;min-height:4em;white-space:pre-wrap}</style></head>
<body>
<h1>Hello from home</h1>
<p>This page is served by a service behind NAT, reached through hearth.</p>
<p><input id="msg" value="hello over the tunnel"> <button id="go">Send over WebSocket</button></p>
<div id="log"></div>
<script>
const log = (t) => { document.getElementById('log').textContent += t + "\\n"; };
document.getElementById('go').onclick = () => {
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const ws = new WebSocket(scheme + location.host + '/signaling');
  ws.onopen = () => { log('open ' + ws.url); ws.send(document.getElementById('msg').value); };
  ws.onmessage = (e) => { log('echo: ' + e.data); ws.close(1000); };
  ws.onclose = (e) => log('closed, code ' + e.code);
  ws.onerror = () => log('error');
};
</script>
</body></html>
"""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hearth-home-service/1"
    sys_version = ""

    def version_string(self):
        return self.server_version

    # -- plumbing ---------------------------------------------------------
    def setup(self):
        super().setup()
        # Headers and body leave in separate writes: without TCP_NODELAY the
        # body waits for the ACK of the headers (Nagle), which a keep-alive
        # peer delays up to 40 ms. Real servers (nginx, Node) set it too.
        import socket as _socket
        self.connection.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)

    def parse_request(self):
        ok = super().parse_request()
        if ok:  # one handler object per TCP connection: count its requests
            self._served = getattr(self, "_served", 0) + 1
            self._entry = {"method": self.command, "path": self.path,
                           "headers": [[k, v] for k, v in self.headers.items()],
                           "body": "none", "length": 0}
            if not self.path.startswith("/received"):
                with RECEIVED_LOCK:
                    RECEIVED.append(self._entry)
        return ok

    def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
        if self.server.verbose:
            sys.stderr.write("home_service %s: %s\n" % (self.server.name, fmt % args))

    def _target(self):
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        mount = self.server.mount
        if mount and (path == mount or path.startswith(mount + "/")):
            path = path[len(mount):] or "/"
        return path, urllib.parse.parse_qs(u.query)

    def _start(self, code, ctype=None, length=None, extra=()):
        self.send_response(code)
        self.send_header("X-Home-Service", self.server.name)
        if ctype:
            self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in extra:
            self.send_header(k, v)

    def _reply(self, code, body=b"", ctype="text/plain; charset=utf-8", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self._start(code, ctype, len(body), extra)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code, obj):
        self._reply(code, json.dumps(obj).encode(), "application/json")

    def _read_body(self):
        """Yield the request body in pieces, and record how reading it ended."""
        entry = getattr(self, "_entry", {})
        entry["body"] = "reading"
        try:
            for piece in self._read_body_pieces():
                entry["length"] = entry.get("length", 0) + len(piece)
                yield piece
        except Exception as e:
            entry["body"] = "incomplete: %r" % e
            raise
        entry["body"] = "complete"

    def _read_body_pieces(self):
        """Yield the request body in pieces (Content-Length or chunked)."""
        te = self.headers.get("Transfer-Encoding", "")
        if te.lower().strip() == "chunked":
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            return
                while size > 0:
                    piece = self.rfile.read(min(size, BLOCK))
                    if not piece:
                        raise ConnectionError("eof in chunk")
                    size -= len(piece)
                    yield piece
                self.rfile.readline(3)
        else:
            n = int(self.headers.get("Content-Length", "0") or 0)
            while n > 0:
                piece = self.rfile.read(min(n, BLOCK))
                if not piece:
                    raise ConnectionError("eof in body")
                n -= len(piece)
                yield piece

    def _drain_body(self):
        for _ in self._read_body():
            pass

    # -- methods ----------------------------------------------------------
    def do_GET(self):  # noqa: N802
        path, q = self._target()
        if path == "/ignore-body":  # leaves any body unread on the connection
            return self._reply(200, "body ignored\n")
        if path == "/received":
            with RECEIVED_LOCK:
                items = list(RECEIVED)
                if q.get("clear", ["0"])[0] == "1":
                    RECEIVED.clear()
            return self._json(200, items)
        self._drain_body()
        if path == "/":
            return self._reply(200, PAGE, "text/html; charset=utf-8")
        if path == "/drop-if-reused" and self._served > 1:
            self.close_connection = True
            return
        if path == "/ws-open":
            return self._json(200, {"open": WS_OPEN[0]})
        if path in ("/headers", "/drop-if-reused"):
            # ?set_header=Name:Value (repeatable) adds response headers (policy tests).
            extra = [tuple(v.split(":", 1)) for v in q.get("set_header", []) if ":" in v]
            return self._reply(200, json.dumps({
                "peer": "%s:%d" % self.client_address[:2],
                "conn_requests": self._served,
                "service": self.server.name,
                "method": self.command,
                "path": self.path,
                "client": self.client_address[0],
                "headers": {k.lower(): ", ".join(self.headers.get_all(k))
                            for k in dict.fromkeys(self.headers.keys())},
                "raw": [[k, v] for k, v in self.headers.items()],
            }).encode(), "application/json", extra)
        if path == "/download":
            return self._download(q)
        if path == "/trickle":
            return self._trickle(q)
        if path == "/endless-chunk-ext":
            self._start(200, "text/plain", None, [("Transfer-Encoding", "chunked")])
            self.end_headers()
            self.close_connection = True
            try:
                self.wfile.write(b"5;x=")
                for _ in range(int(q.get("mb", ["32"])[0]) * 16):
                    self.wfile.write(b"v" * 65536)
            except OSError:
                pass  # the proxy gave up on us
            return None
        if path == "/page":
            return self._page(q)
        if path == "/slow":
            secs = float(q.get("seconds", ["1"])[0])
            time.sleep(max(0.0, min(secs, 600.0)))
            return self._json(200, {"slept": secs, "service": self.server.name})
        if path.startswith("/status/"):
            return self._status(path[len("/status/"):])
        if path == "/echo":
            return self._json(200, {"length": 0, "sha256": hashlib.sha256().hexdigest()})
        return self._reply(404, "not found\n")

    do_HEAD = do_GET  # noqa: N815

    def do_POST(self):  # noqa: N802
        path, _ = self._target()
        if path == "/ignore-body":
            return self._reply(200, "body ignored\n")
        if path == "/echo" or path.startswith("/status/"):
            h = hashlib.sha256()
            n = 0
            for piece in self._read_body():
                h.update(piece)
                n += len(piece)
            if path.startswith("/status/"):
                return self._status(path[len("/status/"):])
            return self._json(200, {"length": n, "sha256": h.hexdigest(),
                                    "service": self.server.name})
        self._drain_body()
        if path == "/drop-if-reused":
            if self._served > 1:
                self.close_connection = True
                return None
            return self._json(200, {"peer": "%s:%d" % self.client_address[:2],
                                    "conn_requests": self._served})
        return self._reply(404, "not found\n")

    do_PUT = do_POST  # noqa: N815

    def do_DELETE(self):  # noqa: N802
        self._drain_body()
        return self._reply(404, "not found\n")

    # -- endpoints --------------------------------------------------------
    def _download(self, q):
        n = int(q.get("bytes", ["0"])[0])
        seed = q.get("seed", ["0"])[0]
        chunked = q.get("chunked", ["0"])[0] not in ("0", "", "false")
        if chunked:
            self._start(200, "application/octet-stream", None, [("Transfer-Encoding", "chunked")])
        else:
            self._start(200, "application/octet-stream", n)
        self.end_headers()
        if self.command == "HEAD":
            return
        for block in download_blocks(n, seed):
            if chunked:
                self.wfile.write(b"%x\r\n" % len(block) + block + b"\r\n")
            else:
                self.wfile.write(block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _trickle(self, q):
        # Two query styles: framing/first/rest (test_http1_defects) and
        # bytes/mode (test_streaming, _trickle_n).
        if "framing" not in q:
            return self._trickle_n(q)
        framing = q.get("framing", ["length"])[0]
        first = int(q.get("first", ["100"])[0])
        rest = int(q.get("rest", ["100"])[0])
        pause = max(0.0, min(float(q.get("pause", ["1"])[0]), 60.0))
        if framing == "chunked":
            self._start(200, "text/plain", None, [("Transfer-Encoding", "chunked")])
        elif framing == "close":
            self._start(200, "text/plain", None, [("Connection", "close")])
            self.close_connection = True
        else:
            self._start(200, "text/plain", first + rest)
        self.end_headers()
        if self.command == "HEAD":
            return
        for i, (n, byte) in enumerate(((first, b"a"), (rest, b"b"))):
            if i == 1:
                time.sleep(pause)
            if framing == "chunked":
                self.wfile.write(b"%x\r\n" % n + byte * n + b"\r\n")
            else:
                self.wfile.write(byte * n)
            self.wfile.flush()
        if framing == "chunked":
            self.wfile.write(b"0\r\n\r\n")

    def _trickle_n(self, q):
        # N bytes at once, then a pause, then N more: a proxy that waits for a
        # buffer to fill shows the first bytes only after the pause.
        n = int(q.get("bytes", ["100"])[0])
        pause = float(q.get("pause", ["3"])[0])
        mode = q.get("mode", ["length"])[0]
        extra = [("Transfer-Encoding", "chunked")] if mode == "chunked" else []
        if mode == "close":
            extra = [("Connection", "close")]
            self.close_connection = True
        self._start(200, "text/plain", 2 * n if mode == "length" else None, extra)
        self.end_headers()
        for i in range(2):
            part = (b"%d" % i) * n
            self.wfile.write(b"%x\r\n%s\r\n" % (n, part) if mode == "chunked" else part)
            self.wfile.flush()
            if i == 0:
                time.sleep(max(0.0, min(pause, 60.0)))
        if mode == "chunked":
            self.wfile.write(b"0\r\n\r\n")

    def _page(self, q):
        # A page with N assets fetched by the browser, then a WebSocket echo to
        # /signaling; the outcome is written into the DOM (for --dump-dom).
        n = int(q.get("assets", ["30"])[0])
        imgs = "".join('<img src="/download?bytes=%d&seed=a%d">' % (2000 + i, i) for i in range(n))
        # The WebSocket opens first, so its echo is usually back before the load
        # event; the result is written once both happened.
        js = (
            "var wsres=null,loaded=false;"
            "var ws=new WebSocket('wss://'+location.host+'/signaling');"
            "ws.onopen=function(){ws.send('ping-h2');};"
            "ws.onmessage=function(m){wsres=m.data;ws.close();fin();};"
            "ws.onerror=function(){wsres='error';fin();};"
            "window.addEventListener('load',function(){loaded=true;fin();});"
            "function fin(){if(!loaded||wsres===null)return;"
            "var e=performance.getEntriesByType('resource');"
            "var p={};e.forEach(function(r){p[r.nextHopProtocol]=(p[r.nextHopProtocol]||0)+1;});"
            "document.getElementById('out').textContent='RESULT assets='+e.length+' protos='"
            "+JSON.stringify(p)+' ws='+wsres+' nav='"
            "+performance.getEntriesByType('navigation')[0].nextHopProtocol;}")
        body = ("<!doctype html><html><body><div id=out>pending</div><script>%s</script>%s"
                "</body></html>" % (js, imgs)).encode()
        return self._reply(200, body, "text/html; charset=utf-8")

    def _status(self, text):
        try:
            code = int(text.strip("/"))
        except ValueError:
            return self._reply(400, "bad status\n")
        if code < 200 or code > 599:
            return self._reply(400, "status out of range\n")
        if code in (204, 304):
            self._start(code, extra=[("ETag", '"hearth-test"')] if code == 304 else ())
            self.end_headers()
            return
        body = ("status %d\n" % code).encode()
        return self._reply(code, body)


class HTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


# -- WebSocket ------------------------------------------------------------

def _ws_protocol_class():
    from websockets.legacy.server import WebSocketServerProtocol
    from websockets.frames import Opcode

    class FrameLoggingProtocol(WebSocketServerProtocol):
        """Records the data frames (opcode, fin, payload) of the message being read."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.frames = []

        async def read_frame(self, max_size):
            frame = await super().read_frame(max_size)
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                self.frames = [(frame.opcode, frame.fin, frame.data)]
            elif frame.opcode == Opcode.CONT:
                self.frames.append((frame.opcode, frame.fin, frame.data))
            return frame

    return FrameLoggingProtocol


WS_OPEN = [0]  # WebSocket connections open now (read by /ws-open)


async def ws_handler(ws, path=None):
    path = path if path is not None else getattr(ws, "path", "/")
    fragments = "fragments=1" in urllib.parse.urlsplit(path).query
    WS_OPEN[0] += 1
    try:
        async for msg in ws:
            if fragments and len(ws.frames) > 1:
                # Echo frame by frame: same opcodes, same sizes, same fin bits.
                for opcode, fin, data in list(ws.frames):
                    await ws.write_frame(fin, opcode, data)
            else:
                await ws.send(msg)
    except Exception:  # connection errors end the handler quietly
        pass
    finally:
        WS_OPEN[0] -= 1


async def ws_main(args, ready):
    import websockets
    server = await websockets.serve(
        ws_handler, args.host, args.ws_port, max_size=None, max_queue=64,
        create_protocol=_ws_protocol_class(), ping_interval=None,
        compression=None if args.no_compression else "deflate")
    port = server.sockets[0].getsockname()[1]
    ready(port)
    stop = asyncio.get_running_loop().create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    await stop
    server.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--http-port", type=int, default=None)
    ap.add_argument("--ws-port", type=int, default=None)
    ap.add_argument("--name", default="home")
    ap.add_argument("--mount", default="", help="also serve everything under this path prefix")
    ap.add_argument("--no-compression", action="store_true", help="no permessage-deflate")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.http_port is None and args.ws_port is None:
        ap.error("give --http-port and/or --ws-port")
    if not args.verbose:
        import logging
        logging.getLogger("websockets").setLevel(logging.CRITICAL)

    ports = {}
    if args.http_port is not None:
        httpd = HTTPServer((args.host, args.http_port), Handler)
        httpd.verbose = args.verbose
        httpd.name = args.name
        httpd.mount = args.mount.rstrip("/")
        ports["http_port"] = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def ready(ws_port=None):
        if ws_port is not None:
            ports["ws_port"] = ws_port
        print(json.dumps(ports), flush=True)

    if args.ws_port is not None:
        asyncio.run(ws_main(args, ready))
    else:
        ready()
        stop = threading.Event()
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda *_: stop.set())
        while not stop.wait(1.0):
            pass
    os._exit(0)


if __name__ == "__main__":
    main()
