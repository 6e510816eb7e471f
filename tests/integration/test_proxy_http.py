#!/usr/bin/python3
"""HTTP through edge -> tunnel -> origin -> home service, on loopback.

Routes published by the origin:
    app.test /        -> home_service A (HTTP)
    app.test /api     -> home_service B (HTTP, mounted at /api)
    app.test /dead    -> a closed port (service refuses)
"""

import concurrent.futures
import hashlib
import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import home_service  # noqa: E402
from harness import (rss_kb, Failure, Harness, TestRun, expect, expect_eq, free_port,  # noqa: E402
                     read_http_response, write_random_file)

MB = 1024 * 1024


def main():
    run = TestRun("proxy_http", __doc__)
    run.require_binaries()
    h = Harness(run)
    try:
        a = h.start_service("A")
        b = h.start_service("B", mount="/api")
        dead_port = free_port()
        h.write_edge_config()
        conf = h.pair_origin([("app.test", "/api", b.http_url),
                              ("app.test", "/dead", "http://127.0.0.1:%d" % dead_port),
                              ("app.test", None, a.http_url)])
        edge = h.start_edge()
        origin = h.start_origin(conf)
        edge.wait_event("tunnel.up", timeout=10)
        h.wait_ready(origin=origin)
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    def get_json(path, headers=None, host="app.test"):
        st, hdrs, body = h.request("GET", path, host=host, headers=headers)
        expect_eq(st, 200, "status of GET %s" % path)
        return json.loads(body), hdrs

    @run.case
    def get_page():
        r = h.curl("-i", "--max-time", "10", h.url("/"))
        expect_eq(r.returncode, 0, "curl exit code (%s)" % r.stderr.strip())
        head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
        expect(head.startswith("HTTP/1.1 200"), "status line: %r" % head.splitlines()[:1])
        expect("x-home-service: a" in head.lower(), "response should come from service A:\n" + head)
        expect("Hello from home" in body and "/signaling" in body, "demo page body: %r" % body[:200])

    @run.case
    def post_small():
        r = h.curl("--max-time", "10", "--data-binary", "hello hearth", h.url("/echo"))
        expect_eq(r.returncode, 0, "curl exit code (%s)" % r.stderr.strip())
        j = json.loads(r.stdout)
        expect_eq(j["length"], 12, "echo length")
        expect_eq(j["sha256"], hashlib.sha256(b"hello hearth").hexdigest(), "echo sha256")

    @run.case
    def upload_50mb_expect_100_continue():
        path = write_random_file(h.path("up.bin"), 50 * MB, "up50")
        want = hashlib.sha256(open(path, "rb").read()).hexdigest()
        t = time.monotonic()
        r = h.curl("-v", "--max-time", "60", "-H", "Content-Type: application/octet-stream",
                   "--data-binary", "@" + path, h.url("/echo"), timeout=90)
        dt = time.monotonic() - t
        expect_eq(r.returncode, 0, "curl exit code (%s)" % r.stderr.strip()[-500:])
        expect(re.search(r"(?m)^> Expect: 100-continue", r.stderr), "curl did not send Expect: 100-continue")
        expect(re.search(r"(?m)^< HTTP/1.1 100", r.stderr),
               "no '100 Continue' reached the client (curl waited for its expect timeout instead)")
        j = json.loads(r.stdout)
        expect_eq(j["length"], 50 * MB, "bytes received by the service")
        expect_eq(j["sha256"], want, "sha256 at the service")
        print("   50 MB upload: %.2fs (%.1f MB/s)" % (dt, 50 / dt))
        os.unlink(path)

    @run.case
    def upload_chunked_request_body():
        path = write_random_file(h.path("upc.bin"), 5 * MB, "upc")
        want = hashlib.sha256(open(path, "rb").read()).hexdigest()
        r = h.curl("--max-time", "30", "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path,
                   h.url("/echo"))
        expect_eq(r.returncode, 0, "curl exit code (%s)" % r.stderr.strip())
        j = json.loads(r.stdout)
        expect_eq((j["length"], j["sha256"]), (5 * MB, want), "chunked upload at the service")

    @run.case
    def download_50mb():
        out = h.path("down.bin")
        t = time.monotonic()
        r = h.curl("--max-time", "60", "-o", out, "-w", "%{http_code} %{size_download}",
                   h.url("/download?bytes=%d&seed=down50" % (50 * MB)), timeout=90)
        dt = time.monotonic() - t
        expect_eq(r.returncode, 0, "curl exit code (%s)" % r.stderr.strip())
        expect_eq(r.stdout.split(), ["200", str(50 * MB)], "status and size")
        got = hashlib.sha256(open(out, "rb").read()).hexdigest()
        expect_eq(got, home_service.download_sha256(50 * MB, "down50"), "sha256 of the download")
        print("   50 MB download: %.2fs (%.1f MB/s)" % (dt, 50 / dt))
        os.unlink(out)

    @run.case
    def chunked_response():
        n = 3 * MB + 12345
        c = h.https()
        try:
            c.request("GET", "/download?bytes=%d&seed=ch&chunked=1" % n)
            r = c.getresponse()
            body = r.read()
            te = r.getheader("Transfer-Encoding", "")
            cl = r.getheader("Content-Length")
        finally:
            c.close()
        expect_eq(r.status, 200, "status")
        expect(te.lower() == "chunked" and cl is None,
               "response should stay chunked (streamed): Transfer-Encoding=%r Content-Length=%r" % (te, cl))
        expect_eq(len(body), n, "body length")
        expect_eq(hashlib.sha256(body).hexdigest(), home_service.download_sha256(n, "ch"), "sha256")

    @run.case
    def head_then_get_same_connection():
        c = h.https()
        try:
            c.request("HEAD", "/download?bytes=12345&seed=h")
            r = c.getresponse()
            body = r.read()
            expect_eq(r.status, 200, "HEAD status")
            expect_eq(r.getheader("Content-Length"), "12345", "HEAD Content-Length")
            expect_eq(body, b"", "HEAD body")
            sock = c.sock
            # If the edge sent a body after the HEAD response, this response is garbage.
            c.request("GET", "/headers")
            r = c.getresponse()
            j = json.loads(r.read())
            expect_eq(r.status, 200, "GET after HEAD status")
            expect_eq(j["method"], "GET", "GET after HEAD reached the service")
            expect(c.sock is sock, "the connection was not kept alive after HEAD")
        finally:
            c.close()
        # and HEAD with curl: no body read, right length
        r = h.curl("-I", "--max-time", "10", h.url("/"))
        expect(r.stdout.startswith("HTTP/1.1 200"), "curl -I status: %r" % r.stdout[:40])
        m = re.search(r"(?im)^content-length:\s*(\d+)", r.stdout)
        expect(m and int(m.group(1)) == len(home_service.PAGE.encode()),
               "HEAD / Content-Length should be the page size %d: %r" % (len(home_service.PAGE.encode()), r.stdout))

    @run.case
    def status_204_304_then_keepalive():
        sock = h.tls_socket()
        try:
            for code in (204, 304):
                sock.sendall(b"GET /status/%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % code)
                st, head, body, closed = read_http_response(sock, timeout=10, close_wait=0.3)
                expect_eq(st, code, "status")
                expect_eq(body, b"", "%d body" % code)
                expect(not re.search(r"(?im)^transfer-encoding:", head),
                       "%d must not carry Transfer-Encoding:\n%s" % (code, head))
                expect(not closed, "connection closed after %d" % code)
            sock.sendall(b"GET /headers HTTP/1.1\r\nHost: app.test\r\n\r\n")
            st, head, body, _ = read_http_response(sock, timeout=10, close_wait=0.1)
            expect_eq(st, 200, "status after 204/304 on the same connection")
            expect_eq(json.loads(body)["path"], "/headers", "response after 204/304")
        finally:
            sock.close()

    @run.case
    def keepalive_requests_to_different_routes():
        c = h.https()
        try:
            seen = []
            sock = None
            for method, path, want in (("GET", "/headers", "A"), ("GET", "/api/headers", "B"),
                                       ("POST", "/api/echo", "B"), ("GET", "/headers", "A"),
                                       ("POST", "/echo", "A")):
                c.request(method, path, body=b"x" * 1000 if method == "POST" else None)
                r = c.getresponse()
                body = r.read()
                expect_eq(r.status, 200, "%s %s status" % (method, path))
                seen.append(r.getheader("X-Home-Service"))
                expect_eq(seen[-1], want, "service answering %s %s" % (method, path))
                expect((r.getheader("Connection") or "").lower() != "close",
                       "edge closed keep-alive after %s %s" % (method, path))
                if sock is None:
                    sock = c.sock
                expect(c.sock is sock, "client connection was re-opened before %s %s" % (method, path))
                if method == "POST":
                    expect_eq(json.loads(body)["length"], 1000, "echo length")
        finally:
            c.close()

    @run.case
    def upstream_connection_kept_per_client_connection():
        # Like nginx's upstream keepalive: one client connection's requests to
        # one route share one service connection (one tunnel stream).
        peers = []
        for _ in range(2):
            c = h.https()
            try:
                for i in range(4):
                    method = "POST" if i == 2 else "GET"
                    path = "/echo" if i == 2 else "/headers"
                    c.request(method, path, body=b"y" * 5000 if method == "POST" else None)
                    r = c.getresponse()
                    body = r.read()
                    expect_eq(r.status, 200, "%s %s status" % (method, path))
                    if path == "/headers":
                        j = json.loads(body)
                        peers.append(j["peer"])
                        expect_eq(j["conn_requests"], i + 1,
                                  "requests the service saw on its connection at request %d" % (i + 1))
            finally:
                c.close()
        expect_eq(len(set(peers[:3])), 1, "one service connection for one client connection: %s" % peers)
        expect(peers[0] != peers[3], "a second client connection got its own service connection: %s" % peers)

    @run.case
    def kept_upstream_closed_under_us_is_retried():
        # The service closes a kept connection just as the next request
        # arrives (its keep-alive timeout racing the request): the edge sends
        # the request again on a fresh stream instead of answering 502.
        c = h.https()
        try:
            c.request("GET", "/headers")
            r = c.getresponse()
            expect_eq(r.status, 200, "first request")
            first = json.loads(r.read())
            c.request("GET", "/drop-if-reused")
            r = c.getresponse()
            body = r.read()
            expect_eq(r.status, 200, "request the service dropped on the kept connection")
            j = json.loads(body)
            expect_eq(j["conn_requests"], 1, "the retry went over a new service connection")
            expect(j["peer"] != first["peer"], "a new service connection: %s vs %s" % (j["peer"], first["peer"]))
            c.request("GET", "/headers")
            r = c.getresponse()
            expect_eq(r.status, 200, "next request on the same client connection")
            r.read()
        finally:
            c.close()

    @run.case
    def kept_upstream_closed_under_a_post_is_not_retried():
        # A POST may have reached the service before it closed: it is not sent
        # twice (nginx does the same); the client gets 502.
        c = h.https()
        try:
            c.request("GET", "/headers")
            r = c.getresponse()
            r.read()
            expect_eq(r.status, 200, "first request")
            c.request("POST", "/drop-if-reused", body=b"")
            r = c.getresponse()
            r.read()
            expect_eq(r.status, 502, "POST the service dropped on a kept connection")
        finally:
            c.close()
        st, _, body = h.request("GET", "/headers")
        expect_eq(st, 200, "next request on a new client connection")

    @run.case
    def x_forwarded_headers_replaced():
        j, _ = get_json("/headers", {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "http",
                                     "X-Forwarded-Host": "evil.test"})
        hd = j["headers"]
        expect_eq(hd.get("x-forwarded-for"), "127.0.0.1", "X-Forwarded-For (forged value must be dropped)")
        expect_eq(hd.get("x-forwarded-proto"), "https", "X-Forwarded-Proto")
        expect(hd.get("x-forwarded-host") in ("app.test", "app.test:%d" % h.https_port),
               "X-Forwarded-Host should be the client's Host, got %r" % hd.get("x-forwarded-host"))
        n_xff = sum(1 for k, _ in j["raw"] if k.lower() == "x-forwarded-for")
        expect_eq(n_xff, 1, "number of X-Forwarded-For headers at the service")
        # without any forged header
        j, _ = get_json("/headers")
        expect_eq(j["headers"].get("x-forwarded-for"), "127.0.0.1", "X-Forwarded-For")

    @run.case
    def x_request_id():
        j, _ = get_json("/headers", {"X-Request-ID": "abc-123_DEF.456"})
        expect_eq(j["headers"].get("x-request-id"), "abc-123_DEF.456", "valid X-Request-ID kept")
        ids = []
        for _ in range(2):
            j, _ = get_json("/headers")
            rid = j["headers"].get("x-request-id", "")
            expect(rid.strip(), "X-Request-ID generated when absent, got %r" % rid)
            ids.append(rid)
        expect(ids[0] != ids[1], "generated X-Request-IDs should differ: %r" % ids)
        bad = 'bad id; "quoted" <script>' + "x" * 300
        j, _ = get_json("/headers", {"X-Request-ID": bad})
        rid = j["headers"].get("x-request-id", "")
        expect(rid.strip() and rid != bad and "<" not in rid,
               "invalid X-Request-ID should be replaced by a generated one, got %r" % rid[:80])
        n = sum(1 for k, _ in j["raw"] if k.lower() == "x-request-id")
        expect_eq(n, 1, "number of X-Request-ID headers at the service")

    @run.case
    def unknown_host_404():
        # other.test is in the certificate but no origin published it
        st, _, _ = h.request("GET", "/", host="other.test")
        expect_eq(st, 404, "status for other.test")
        # SNI matching no certificate: default certificate, still 404
        r = h.curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                   h.url("/", host="nothing.example"), host="nothing.example")
        expect_eq(r.stdout.strip(), "404", "status for nothing.example (curl: %s)" % r.stderr.strip())
        # published wildcard parent but Host of another domain on the app.test TLS connection
        st, _, _ = h.request("GET", "/", host="app.test", headers={"Host": "unknown.invalid"})
        expect(st in (404, 421), "status for Host: unknown.invalid over SNI app.test: expected 404 (or 421), got %r" % st)

    @run.case
    def service_refuses_502():
        st, hdrs, body = h.request("GET", "/dead/x")
        expect_eq(st, 502, "status when the local service refuses the connection")

    @run.case
    def plain_http_redirects():
        r = subprocess_run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                            "--max-time", "10", "--resolve", "app.test:%d:127.0.0.1" % h.http_port,
                            "http://app.test:%d/some/path?x=1" % h.http_port])
        parts = r.stdout.split(" ", 1)
        expect_eq(parts[0], "301", "status on listen_http (curl: %s)" % r.stderr.strip())
        loc = parts[1] if len(parts) > 1 else ""
        expect(loc.startswith("https://app.test") and loc.endswith("/some/path?x=1"),
               "Location should be https://app.test[:port]/some/path?x=1, got %r" % loc)

    def smuggle(name, head_lines, body=b""):
        sock = h.tls_socket()
        try:
            req = "POST /echo HTTP/1.1\r\nHost: app.test\r\n" + "".join(l + "\r\n" for l in head_lines) + "\r\n"
            sock.sendall(req.encode() + body)
            st, head, _, closed = read_http_response(sock, timeout=10)
        finally:
            sock.close()
        expect_eq(st, 400, "%s: status (response head: %r)" % (name, head[:200]))
        expect(closed, "%s: connection should be closed after the 400" % name)

    @run.case
    def smuggling_cl_and_te():
        smuggle("Content-Length + Transfer-Encoding",
                ["Content-Length: 5", "Transfer-Encoding: chunked"], b"0\r\n\r\n")

    @run.case
    def smuggling_two_content_lengths():
        smuggle("two different Content-Length", ["Content-Length: 5", "Content-Length: 6"], b"hello!")

    @run.case
    def smuggling_duplicate_equal_content_length():
        smuggle("duplicate equal Content-Length", ["Content-Length: 5", "Content-Length: 5"], b"hello")

    @run.case
    def smuggling_te_gzip():
        smuggle("Transfer-Encoding: gzip", ["Transfer-Encoding: gzip"], b"abc")

    @run.case
    def smuggling_te_chunked_not_final():
        smuggle("Transfer-Encoding: chunked, gzip", ["Transfer-Encoding: chunked, gzip"], b"0\r\n\r\n")

    @run.case
    def concurrent_200_requests():
        def one(i):
            path = "/slow?seconds=1" if i % 2 else "/headers?i=%d" % i
            try:
                st, hdrs, body = h.request("GET", path, timeout=30)
                return st
            except Exception as e:  # noqa: BLE001
                return repr(e)
        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(200) as ex:
            results = list(ex.map(one, range(200)))
        dt = time.monotonic() - t
        bad = [(i, r) for i, r in enumerate(results) if r != 200]
        expect(not bad, "%d of 200 concurrent requests failed, e.g. %s" % (len(bad), bad[:5]))
        expect(dt < 20, "200 concurrent requests (100 sleeping 1 s) took %.1fs: not concurrent?" % dt)
        print("   200 concurrent requests: %.2fs" % dt)

    @run.case
    def concurrent_200_curl_parallel():
        urls = [h.url("/headers?n=%d" % i) for i in range(200)]
        r = h.curl("--parallel", "--parallel-immediate", "--parallel-max", "200", "--max-time", "30",
                   "-w", "%{http_code}\n", *[x for u in urls for x in ("-o", "/dev/null", u)],
                   timeout=60)
        codes = r.stdout.split()
        expect_eq(len(codes), 200, "number of curl results (stderr: %s)" % r.stderr.strip()[-300:])
        bad = [c for c in codes if c != "200"]
        expect(not bad, "%d of 200 parallel curl requests failed: %s" % (len(bad), sorted(set(bad))))

    @run.case
    def slow_reader_stalls_nothing_and_is_not_buffered():
        # A client that stops reading a 1 GB download must neither stall other streams
        # (per-stream flow control) nor make the edge/origin buffer the body.
        def download_20mb(tag):
            out = h.path("dl-%s.bin" % tag)
            t = time.monotonic()
            r = h.curl("--max-time", "20", "-o", out, "-w", "%{http_code}",
                       h.url("/download?bytes=%d&seed=%s" % (20 * MB, tag)), timeout=30)
            dt = time.monotonic() - t
            expect_eq(r.stdout.strip(), "200", "20 MB download (%s) status (%s)" % (tag, r.stderr.strip()))
            expect_eq(hashlib.sha256(open(out, "rb").read()).hexdigest(),
                      home_service.download_sha256(20 * MB, tag), "sha256 of the 20 MB download (%s)" % tag)
            os.unlink(out)
            return dt

        baseline = download_20mb("baseline")
        rss0 = {p.name: rss_kb(p.pid) for p in (edge, origin)}
        sock = socket.create_connection((h.edge_host, h.https_port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock = h.ssl_context().wrap_socket(sock, server_hostname="app.test")
        try:
            sock.sendall(b"GET /download?bytes=%d&seed=stall HTTP/1.1\r\nHost: app.test\r\n\r\n" % (1 << 30))
            got = 0
            while got < MB:
                d = sock.recv(65536)
                expect(d, "stalled download ended early after %d bytes" % got)
                got += len(d)
            time.sleep(3.0)  # the client reads nothing more
            t = time.monotonic()
            for i in range(20):
                st, _, _ = h.request("GET", "/headers?during-stall=%d" % i, timeout=5)
                expect_eq(st, 200, "request %d while another stream is stalled" % i)
            dt_requests = time.monotonic() - t
            dt = download_20mb("stalled")
            rss1 = {p.name: rss_kb(p.pid) for p in (edge, origin)}
            print("   RSS kB before/after stalling a 1 GB download: %s -> %s; 20 requests took %.2fs,"
                  " a 20 MB download %.2fs (%.2fs with no stalled stream)" % (rss0, rss1, dt_requests, dt, baseline))
            expect(dt < 4 * baseline + 3.0, "a 20 MB download took %.2fs next to a stalled stream, %.2fs without: "
                                            "the stalled stream slows the others" % (dt, baseline))
            for name in rss0:
                grew = (rss1[name] - rss0[name]) / 1024.0
                expect(grew < 64, "%s RSS grew by %.0f MB while a client stalled a download: "
                                  "body buffered instead of flow-controlled?" % (name, grew))
        finally:
            sock.close()

    @run.case
    def pipelined_requests_answered_in_order():
        sock = h.tls_socket()
        try:
            reqs = b"".join(b"GET %s HTTP/1.1\r\nHost: app.test\r\n\r\n" % p
                            for p in (b"/headers?n=1", b"/api/headers?n=2", b"/headers?n=3"))
            sock.sendall(reqs)
            got = []
            for _ in range(3):
                st, head, body, _ = read_http_response(sock, timeout=10, close_wait=0.0)
                expect_eq(st, 200, "pipelined response status (head %r)" % head[:100])
                got.append(json.loads(body)["path"])
            expect_eq(got, ["/headers?n=1", "/api/headers?n=2", "/headers?n=3"], "pipelined responses, in order")
        finally:
            sock.close()

    @run.case
    def client_aborts_midway_then_all_is_well():
        # upload: promise 100 MB, send 5 MB, vanish
        sock = h.tls_socket()
        try:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n" % (100 * MB))
            chunk = b"z" * 65536
            for _ in range(80):
                sock.sendall(chunk)
        finally:
            sock.close()
        # download: read 1 MB of 500 MB, vanish
        sock = h.tls_socket()
        try:
            sock.sendall(b"GET /download?bytes=%d&seed=abort HTTP/1.1\r\nHost: app.test\r\n\r\n" % (500 * MB))
            got = 0
            while got < MB:
                d = sock.recv(65536)
                if not d:
                    break
                got += len(d)
        finally:
            sock.close()
        # WebSocket-less: a request right after still works, and no stream is left behind
        st, _, _ = h.request("GET", "/headers")
        expect_eq(st, 200, "request after two aborted transfers")
        expect(edge.alive() and origin.alive(), "edge or origin died after aborted transfers")

    @run.case
    def admin_endpoints():
        import http.client as hc
        c = hc.HTTPConnection("127.0.0.1", h.admin_port, timeout=5)
        try:
            res = {}
            for path in ("/healthz", "/readyz", "/metrics", "/status"):
                c.request("GET", path)
                r = c.getresponse()
                res[path] = (r.status, r.read().decode(errors="replace"))
        finally:
            c.close()
        for path in res:
            expect_eq(res[path][0], 200, "admin GET %s status" % path)
        for metric in ("hearth_tunnel_connections", "hearth_streams_active", "hearth_http_requests_total",
                       "hearth_bytes_total"):
            expect(metric in res["/metrics"][1], "/metrics lacks %s" % metric)
        json.loads(res["/status"][1])

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
        expect_eq(n, 0, "hearth_streams_active 10 s after every client connection closed (stream leak?)")

    @run.case
    def edge_and_origin_still_running():
        expect(edge.alive(), "edge exited: %s" % edge.p.returncode)
        expect(origin.alive(), "origin exited: %s" % origin.p.returncode)
        for p in (edge, origin):
            bad = p.bad_log_lines()
            expect(not bad, "%s: %d stderr lines are not JSON log events, e.g. %r" % (p.name, len(bad), bad[:3]))

    run.finish()


def subprocess_run(argv, timeout=30):
    import subprocess
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise Failure("timed out: %s" % " ".join(argv)) from e


if __name__ == "__main__":
    main()
