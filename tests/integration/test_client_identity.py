#!/usr/bin/env python3
"""Client identity behind a load balancer (issue 9).

The edge listens with `listen_https = { address = ..., proxy_protocol = true }`
and `[edge] trusted_proxies = ["127.0.0.2/32"]`. A real TCP relay plays the
load balancer: it accepts curl (bound to 127.0.0.9, 127.0.0.10, ...), dials
the edge *from* 127.0.0.2, writes a PROXY v2 (or v1) header naming curl's
address and port, then relays the bytes both ways. curl runs over HTTP/1.1
and HTTP/2 through it. Checked:

- the service sees the real client: X-Real-IP, X-Forwarded-For, RFC 7239
  Forwarded, and the PROXY header the origin sends it (route proxy_protocol);
- policies see it too: a deny list for the client's range answers 403 through
  the balancer, and per-IP connection caps count clients, not the balancer;
- a PROXY header from a peer that is not trusted closes the connection
  (counted in hearth_proxy_protocol_refused_total), and plain TLS from it is
  served with its own address, its X-Forwarded-For replaced;
- a trusted peer that sends no PROXY header is an HTTP proxy: its
  X-Forwarded-For is appended to and names the client;
- a header split over several TCP segments is read whole;
- the plain-HTTP listener takes the header too (redirects keep working);
- proxy_protocol without trusted_proxies is a config error (file, line, key).
"""

import json
import os
import re
import select
import socket
import subprocess
import threading
import time
import urllib.request

from harness import Harness, TestRun, expect, expect_eq

run = TestRun("client_identity", __doc__)
run.require_binaries()
h = Harness(run)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
LB_ADDR = "127.0.0.2"


def v2_header(src, sport, dst, dport):
    fam6 = ":" in src
    if fam6:
        body = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))
        return V2_SIG + bytes([0x21, 0x21]) + len(body).to_bytes(2, "big") + body
    body = (socket.inet_aton(src) + socket.inet_aton(dst) + sport.to_bytes(2, "big")
            + dport.to_bytes(2, "big"))
    return V2_SIG + bytes([0x21, 0x11]) + len(body).to_bytes(2, "big") + body


def v1_header(src, sport, dst, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


class Balancer:
    """An L4 load balancer: PROXY header, then a byte relay, from LB_ADDR."""

    def __init__(self, target_port, version=2, claim=None):
        self.target_port = target_port
        self.version = version
        self.claim = claim  # (ip, port) to claim instead of the client's own
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.relay, args=(c, addr), daemon=True).start()

    def relay(self, c, addr):
        up = socket.socket()
        try:
            up.bind((LB_ADDR, 0))
            up.connect(("127.0.0.1", self.target_port))
            src, sport = self.claim or addr
            make = v2_header if self.version == 2 else v1_header
            dst = "::1" if ":" in src else "127.0.0.1"
            up.sendall(make(src, sport, dst, self.target_port))
            pair = {c: up, up: c}
            while True:
                ready, _, _ = select.select(list(pair), [], [], 30)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        except OSError:
            return
        finally:
            c.close()
            up.close()


def curl_via(lb, path, host="app.test", src="127.0.0.9", http2=False, extra=()):
    argv = ["curl", "-sS", "--http2" if http2 else "--http1.1", "--cacert", h.cert,
            "--resolve", "%s:%d:127.0.0.1" % (host, lb.port), "--interface", src,
            "-w", "\n%{http_code} %{local_port} %{http_version}"] + list(extra)
    argv.append("https://%s:%d%s" % (host, lb.port, path))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    expect(r.returncode == 0, "curl via the balancer: %s" % r.stderr.strip())
    body, tail = r.stdout.rsplit("\n", 1)
    code, port, version = tail.split()
    return int(code), body, int(port), version


def headers_of(body):
    return json.loads(body)["headers"]


def metric(name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % h.admin_port, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


svc = pp_svc = None
try:
    svc = h.start_service("A")
    h.write_edge_config(extra_edge='trusted_proxies = ["%s/32"]\nmax_connections_per_ip = 2'
                        % LB_ADDR)
    with open(h.edge_conf) as f:
        text = f.read()
    text = re.sub(r'listen_https  = "([^"]+)"',
                  r'listen_https  = { address = "\1", proxy_protocol = true }', text)
    text = re.sub(r'listen_http   = "([^"]+)"',
                  r'listen_http   = { address = "\1", proxy_protocol = true }', text)
    text += '\n[[policies]]\nhost = "deny.app.test"\ndeny = ["127.0.0.9/32"]\n'
    with open(h.edge_conf, "w") as f:
        f.write(text)
    edge = h.start_edge()
    origin = h.start_origin(h.pair_origin([("app.test", None, svc.http_url),
                                           ("*.app.test", None, svc.http_url)]))
    h.wait_ready(origin=origin)  # direct, from 127.0.0.1: untrusted, no header
    lb2 = Balancer(h.https_port, 2)
    lb1 = Balancer(h.https_port, 1)
except Exception as e:  # noqa: BLE001
    run.setup_failed(e)


@run.case
def proxy_v2_names_the_client_over_http1_and_http2():
    for http2 in (False, True):
        code, body, port, version = curl_via(lb2, "/headers", src="127.0.0.9", http2=http2)
        expect_eq(code, 200, "status (http2=%s)" % http2)
        expect_eq(version, "2" if http2 else "1.1", "HTTP version curl spoke")
        hd = headers_of(body)
        expect_eq(hd.get("x-real-ip"), "127.0.0.9", "X-Real-IP (http2=%s)" % http2)
        expect_eq(hd.get("x-forwarded-for"), "127.0.0.9", "X-Forwarded-For (http2=%s)" % http2)
        expect_eq(hd.get("forwarded"), 'for=127.0.0.9;host="app.test:%d";proto=https' % lb2.port,
                  "Forwarded (http2=%s)" % http2)
    # The access log names the client, not the balancer.
    edge.wait_event("request", timeout=5, client="127.0.0.9")


@run.case
def proxy_v1_with_an_ipv6_client():
    lb = Balancer(h.https_port, 1, claim=("2001:db8::7", 40000))
    code, body, _, _ = curl_via(lb, "/headers")
    expect_eq(code, 200, "status")
    hd = headers_of(body)
    expect_eq(hd.get("x-real-ip"), "2001:db8::7", "X-Real-IP")
    expect_eq(hd.get("forwarded"), 'for="[2001:db8::7]";host="app.test:%d";proto=https' % lb.port,
              "Forwarded (host: the Host header as received)")


@run.case
def a_header_split_over_segments_is_read_whole():
    # The balancer's header may arrive in pieces: the edge waits for the rest
    # (re-peeking) and then hands TLS the bytes after it untouched.
    def via(parts):
        s = socket.socket()
        s.bind((LB_ADDR, 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", h.https_port))
        for part in parts:
            s.sendall(part)
            time.sleep(0.05)
        ts = h.ssl_context().wrap_socket(s, server_hostname="app.test")
        ts.sendall(b"GET /headers HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            piece = ts.recv(65536)
            if not piece:
                break
            data += piece
        ts.close()
        head, _, body = data.partition(b"\r\n\r\n")
        expect(head.startswith(b"HTTP/1.1 200"), "status line: %r" % head[:40])
        return headers_of(body).get("x-real-ip")
    v1 = v1_header("203.0.113.77", 5555, "127.0.0.1", h.https_port)
    expect_eq(via([v1[:9], v1[9:30], v1[30:]]), "203.0.113.77", "client from a v1 header in 3 pieces")
    v2 = v2_header("198.51.100.5", 7, "127.0.0.1", h.https_port)
    expect_eq(via([v2[:5], v2[5:14], v2[14:]]), "198.51.100.5", "client from a v2 header in 3 pieces")


@run.case
def policies_see_the_real_client():
    code, _, _, _ = curl_via(lb2, "/headers", host="deny.app.test", src="127.0.0.9")
    expect_eq(code, 403, "denied client 127.0.0.9 through the balancer")
    code, _, _, _ = curl_via(lb2, "/headers", host="deny.app.test", src="127.0.0.10")
    expect_eq(code, 200, "another client through the same balancer")
    for http2 in (False, True):
        code, _, _, _ = curl_via(lb1, "/headers", host="deny.app.test", src="127.0.0.9",
                                 http2=http2)
        expect_eq(code, 403, "denied client via PROXY v1 (http2=%s)" % http2)


@run.case
def per_ip_connection_caps_count_clients_not_the_balancer():
    # max_connections_per_ip = 2: five clients held open at once through one
    # balancer address must all be served.
    socks = []
    try:
        for i in range(5):
            s = socket.socket()
            s.bind(("127.0.0.%d" % (20 + i), 0))
            s.connect(("127.0.0.1", lb2.port))
            socks.append(s)
        time.sleep(0.3)
        codes = [curl_via(lb2, "/headers", src="127.0.0.%d" % (30 + i))[0] for i in range(3)]
        expect_eq(codes, [200, 200, 200], "requests while 5 other clients hold connections")
    finally:
        for s in socks:
            s.close()


@run.case
def untrusted_peer_with_a_proxy_header_is_closed():
    before = metric("hearth_proxy_protocol_refused_total") or 0
    s = socket.socket()
    s.bind(("127.0.0.3", 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", h.https_port))
    s.sendall(v2_header("203.0.113.9", 1234, "127.0.0.1", h.https_port))
    try:
        data = s.recv(4096)
    except (ConnectionResetError, socket.timeout):
        data = b""
    s.close()
    expect_eq(data, b"", "the edge sent nothing and closed")
    deadline = time.monotonic() + 5
    while (metric("hearth_proxy_protocol_refused_total") or 0) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    expect((metric("hearth_proxy_protocol_refused_total") or 0) > before,
           "hearth_proxy_protocol_refused_total counted it")
    expect(not edge.find_all("request", client="203.0.113.9"),
           "nothing was served for the claimed address")


@run.case
def untrusted_peer_is_served_with_its_own_address():
    argv = ["curl", "-sS", "--http1.1", "--cacert", h.cert, "--interface", "127.0.0.3",
            "--resolve", "app.test:%d:127.0.0.1" % h.https_port,
            "-H", "X-Forwarded-For: 198.51.100.1", "-H", "Forwarded: for=198.51.100.1",
            "-H", "X-Real-IP: 198.51.100.1", h.url("/headers")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    expect(r.returncode == 0, "curl: %s" % r.stderr)
    hd = headers_of(r.stdout)
    expect_eq(hd.get("x-real-ip"), "127.0.0.3", "X-Real-IP")
    expect_eq(hd.get("x-forwarded-for"), "127.0.0.3", "X-Forwarded-For replaced")
    expect_eq(hd.get("forwarded"), 'for=127.0.0.3;host="app.test:%d";proto=https' % h.https_port,
              "Forwarded replaced")


@run.case
def trusted_http_proxy_without_a_header_appends():
    # A trusted peer that sends no PROXY header is an HTTP proxy: what it says
    # in X-Forwarded-For is believed and it is appended as the last hop.
    argv = ["curl", "-sS", "--http1.1", "--cacert", h.cert, "--interface", LB_ADDR,
            "--resolve", "app.test:%d:127.0.0.1" % h.https_port,
            "-H", "X-Forwarded-For: 198.51.100.1, 192.0.2.44",
            "-H", "Forwarded: for=198.51.100.1, for=192.0.2.44", h.url("/headers")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    expect(r.returncode == 0, "curl: %s" % r.stderr)
    hd = headers_of(r.stdout)
    expect_eq(hd.get("x-forwarded-for"), "198.51.100.1, 192.0.2.44, %s" % LB_ADDR,
              "X-Forwarded-For appended")
    expect_eq(hd.get("x-real-ip"), "192.0.2.44", "X-Real-IP: the rightmost untrusted hop")
    expect_eq(hd.get("forwarded"),
              'for=198.51.100.1, for=192.0.2.44, for=%s;host="app.test:%d";proto=https'
              % (LB_ADDR, h.https_port),
              "Forwarded appended")


@run.case
def plain_http_listener_takes_the_header_too():
    s = socket.socket()
    s.bind((LB_ADDR, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", h.http_port))
    s.sendall(v1_header("203.0.113.50", 5555, "127.0.0.1", h.http_port)
              + b"GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        piece = s.recv(4096)
        if not piece:
            break
        data += piece
    s.close()
    expect(data.startswith(b"HTTP/1.1 301"), "redirect through the header: %r" % data[:60])
    # POST from an untrusted client still works (its 'P' is not a PROXY header).
    s = socket.create_connection(("127.0.0.1", h.http_port), timeout=5)
    s.sendall(b"POST /x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    data = s.recv(4096)
    s.close()
    expect(data.startswith(b"HTTP/1.1 301"), "untrusted POST redirected: %r" % data[:60])


@run.case
def proxy_protocol_needs_trusted_proxies():
    bad = h.path("bad-edge.toml")
    with open(h.edge_conf) as f:
        text = f.read()
    text = re.sub(r"trusted_proxies = .*\n", "", text)
    with open(bad, "w") as f:
        f.write(text)
    r = subprocess.run([run.bin("hearth-edge"), "check", "--config", bad], capture_output=True,
                       text=True, timeout=30)
    expect_eq(r.returncode, 1, "exit code")
    line = next((n + 1 for n, l in enumerate(text.splitlines()) if "listen_https" in l), None)
    expect("%s:%d" % (os.path.basename(bad), line) in r.stderr or
           "%s:%d" % (bad, line) in r.stderr, "names file and line %s: %r" % (line, r.stderr))
    expect("edge.listen_https.proxy_protocol" in r.stderr, "names the key: %r" % r.stderr)
    expect("trusted_proxies" in r.stderr, "says what is missing: %r" % r.stderr)


run.finish()
