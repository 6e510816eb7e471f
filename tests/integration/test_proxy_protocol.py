#!/usr/bin/env python3
"""PROXY protocol (issue 9).

- Towards a service: origin.toml routes with `proxy_protocol = "v2"` / `"v1"`
  make the origin send a PROXY header with the real client address and port
  (carried in the OPEN frame's client field) as the first bytes to the
  service. The service here *requires* the header (it closes a connection that
  does not start with one) and answers with what it parsed.
- At the edge: a client that sends a PROXY header to an HTTPS listener without
  `proxy_protocol` is refused: the connection is closed, nothing is proxied
  (listeners with it: test_client_identity.py).
"""

import json
import socket
import threading
import time

from harness import Harness, TestRun, expect, expect_eq

run = TestRun("proxy_protocol")
run.require_binaries()
h = Harness(run)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


class ProxyService:
    """HTTP service that requires a PROXY v1 or v2 header on every connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.refused = 0
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    @staticmethod
    def read_exact(c, n):
        buf = b""
        while len(buf) < n:
            piece = c.recv(n - len(buf))
            if not piece:
                raise ConnectionError("eof")
            buf += piece
        return buf

    def parse_header(self, c):
        first = self.read_exact(c, 6)
        if first == b"PROXY ":
            line = first
            while not line.endswith(b"\r\n") and len(line) < 108:
                line += self.read_exact(c, 1)
            f = line.decode().split()
            return {"version": 1, "src": f[2], "sport": int(f[4]), "dst": f[3], "dport": int(f[5])}
        rest = self.read_exact(c, 10)
        head = first + rest
        if head[:12] != V2_SIG or head[12] != 0x21:
            return None
        fam, length = head[13], int.from_bytes(head[14:16], "big")
        body = self.read_exact(c, length)
        if fam == 0x11:
            return {"version": 2, "src": socket.inet_ntop(socket.AF_INET, body[0:4]),
                    "dst": socket.inet_ntop(socket.AF_INET, body[4:8]),
                    "sport": int.from_bytes(body[8:10], "big"),
                    "dport": int.from_bytes(body[10:12], "big")}
        return None

    def serve(self, c):
        c.settimeout(10)
        try:
            hdr = self.parse_header(c)
            if hdr is None:
                self.refused += 1
                return
            data = b""
            while b"\r\n\r\n" not in data:
                piece = c.recv(4096)
                if not piece:
                    return
                data += piece
            body = json.dumps(hdr).encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        except (OSError, ConnectionError):
            self.refused += 1
        finally:
            c.close()


try:
    svc = ProxyService()
    h.write_edge_config()
    edge = h.start_edge()
    conf = h.pair_origin([("v2.app.test", None, "http://127.0.0.1:%d" % svc.port),
                          ("v1.app.test", None, "http://127.0.0.1:%d" % svc.port),
                          ("plain.app.test", None, "http://127.0.0.1:%d" % svc.port)])
    with open(conf) as f:
        text = f.read()
    text = text.replace('host = "v2.app.test"', 'host = "v2.app.test"\nproxy_protocol = "v2"')
    text = text.replace('host = "v1.app.test"', 'host = "v1.app.test"\nproxy_protocol = "v1"')
    with open(conf, "w") as f:
        f.write(text)
    origin = h.start_origin(conf)
    h.wait_ready(host="v2.app.test", origin=origin)
except Exception as e:  # noqa: BLE001
    run.setup_failed(e)


def via_curl(host, src):
    r = h.curl("--interface", src, "-w", "\n%{local_port}", h.url("/", host=host), host=host,
               timeout=20)
    expect(r.returncode == 0, "curl: %s" % r.stderr)
    body, port = r.stdout.rsplit("\n", 1)
    return json.loads(body), int(port)


@run.case
def v2_carries_the_real_client():
    got, port = via_curl("v2.app.test", "127.0.0.77")
    expect_eq(got["version"], 2, "PROXY version")
    expect_eq(got["src"], "127.0.0.77", "client address")
    expect_eq(got["sport"], port, "client port (curl's local port)")
    expect_eq(got["dst"], "127.0.0.1", "destination: the service's address")
    expect_eq(got["dport"], svc.port, "destination port")


@run.case
def v1_carries_the_real_client():
    got, port = via_curl("v1.app.test", "127.0.0.78")
    expect_eq(got["version"], 1, "PROXY version")
    expect_eq((got["src"], got["sport"]), ("127.0.0.78", port), "client address and port")


@run.case
def no_header_without_the_key():
    before = svc.refused
    st, _, _ = h.request("GET", "/", host="plain.app.test")
    expect(st >= 500, "a route without proxy_protocol sends none (the service refuses): %s" % st)
    time.sleep(0.2)
    expect(svc.refused > before, "the PROXY-requiring service saw no header")


@run.case
def proxy_header_to_the_edge_is_refused():
    s = socket.create_connection(("127.0.0.1", h.https_port), timeout=5)
    s.sendall(b"PROXY TCP4 203.0.113.9 127.0.0.1 1234 443\r\nGET / HTTP/1.1\r\nHost: v2.app.test\r\n\r\n")
    s.settimeout(5)
    try:
        data = s.recv(4096)
        closed = True
    except ConnectionResetError:
        data, closed = b"", True
    except socket.timeout:
        data, closed = b"", False
    s.close()
    expect(closed, "the edge closed the connection")
    expect(b"HTTP/1.1 200" not in data and b"203.0.113.9" not in data,
           "nothing was proxied: %r" % data[:200])


run.finish()
