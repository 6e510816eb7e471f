#!/usr/bin/python3
"""Running hearth as a service (issue 13): systemd notify protocol, watchdog,
metrics that promtool accepts, status tables, access-log switches and quiet
shutdowns, with real processes on loopback.

The notify socket is a unix datagram socket this test binds itself and names in
$NOTIFY_SOCKET (as systemd does); $WATCHDOG_USEC asks for watchdog pings. The
hidden test hook $HEARTH_TEST_STALL_WORKER="DELAY_MS:DURATION_MS" blocks worker 0
of the edge for DURATION_MS, so the test can see the pings stop while one event
loop is stuck, and start again when it turns.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, Skip, TestRun, expect, expect_eq, free_port, wait_until  # noqa: E402


class NotifySocket:
    """A unix datagram socket that records every message with its arrival time."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []  # (monotonic time, text)
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopped:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode(errors="replace")))

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()

    def all(self):
        with self.lock:
            return list(self.messages)

    def lines(self, since=0.0):
        """(time, "KEY=VALUE") for every line of every message after `since`."""
        out = []
        for t, m in self.all():
            if t < since:
                continue
            for line in m.split("\n"):
                if line:
                    out.append((t, line))
        return out

    def wait_line(self, pred, timeout=10.0, since=0.0, what="notify line"):
        def found():
            for t, line in self.lines(since):
                if pred(line):
                    return (t, line)
            return None
        return wait_until(found, timeout, what=what)


@contextlib.contextmanager
def environment(**env):
    """Set environment variables for the processes spawned inside the block."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _headers(msg):
    out = {}
    for k, v in msg.items():  # repeated fields (WWW-Authenticate) joined
        out[k] = out[k] + ", " + v if k in out else v
    return out


def http_get(url, timeout=5.0, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace"), _headers(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), _headers(e.headers)


def main():
    run = TestRun("service", __doc__)
    run.require_binaries()
    h = Harness(run)
    edge_sock = NotifySocket(h.path("edge-notify.sock"))
    origin_sock = NotifySocket(h.path("origin-notify.sock"))
    run.on_cleanup(edge_sock.close)
    run.on_cleanup(origin_sock.close)
    WATCHDOG_US = 300000  # pings every 75 ms
    STALL = (2500, 1500)  # worker 0 blocked 2.5 s after start, for 1.5 s
    try:
        svc = h.start_service("home")
        h.write_edge_config(extra_edge="workers = 2")
        conf = h.pair_origin([("app.test", "/dead", "http://127.0.0.1:%d" % free_port()),
                              ("app.test", None, svc.http_url)])
        token = "t0k3n-" + os.urandom(12).hex()
        token_file = h.path("origin-admin.token")
        with open(token_file, "w") as f:
            f.write(token + "\n")
        os.chmod(token_file, 0o600)
        h.set_key(conf, "listen_admin", '"127.0.0.1:%d"' % free_port())
        h.set_key(conf, "admin_token_file", '"%s"' % token_file)
        origin_admin = h.read_key(conf, "listen_admin")
        with environment(NOTIFY_SOCKET=edge_sock.path, WATCHDOG_USEC=WATCHDOG_US,
                         HEARTH_TEST_STALL_WORKER="%d:%d" % STALL):
            t_start = time.monotonic()
            edge = h.start_edge()
        with environment(NOTIFY_SOCKET=origin_sock.path, WATCHDOG_USEC=WATCHDOG_US):
            origin = h.start_origin(conf)
        edge.wait_event("tunnel.up", timeout=10)
        h.wait_ready(origin=origin)
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)
    admin = "127.0.0.1:%d" % h.admin_port

    @run.case
    def notify_ready_after_listeners():
        t, _ = edge_sock.wait_line(lambda l: l == "READY=1", timeout=5, what="edge READY=1")
        # Every listener was bound before READY=1: the "listening" events precede it.
        expect(len(edge.find_all("listening")) >= 4, "READY=1 before the listeners were logged")
        edge_sock.wait_line(lambda l: l.startswith("STATUS=") and "tunnel" in l, timeout=5,
                            what="edge STATUS= with tunnels")
        origin_sock.wait_line(lambda l: l == "READY=1", timeout=5, what="origin READY=1")
        origin_sock.wait_line(lambda l: re.match(r"STATUS=1 of 2 tunnels up|STATUS=2 of 2 tunnels up", l),
                              timeout=5, what="origin STATUS= with its tunnels")
        st = [l for _, l in edge_sock.lines() if l.startswith("STATUS=")]
        print("   edge: %s" % st[-1])
        print("   origin: %s" % [l for _, l in origin_sock.lines() if l.startswith("STATUS=")][-1])

    @run.case
    def watchdog_pings_stop_while_a_worker_is_stuck():
        stall_ev = edge.wait_event("test.stall_worker", timeout=10)
        expect(stall_ev is not None, "no stall event")
        # Wait until the stall is over and pings resumed.
        time.sleep(STALL[1] / 1000.0 + 0.6)
        pings = [t for t, l in edge_sock.lines() if l == "WATCHDOG=1"]
        expect(len(pings) > 10, "only %d WATCHDOG=1 pings" % len(pings))
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        big = max(gaps)
        # Normal cadence is WATCHDOG_USEC/4 (75 ms); the stall (1.5 s) must open a gap
        # longer than the watchdog interval itself, and pings must come back after it.
        normal = sorted(gaps)[len(gaps) // 2]
        print("   %d pings, median gap %.0f ms, largest gap %.0f ms" % (len(pings), normal * 1000, big * 1000))
        expect(normal < 0.2, "median ping gap %.3fs, expected about 0.075s" % normal)
        expect(big >= 1.0, "largest ping gap %.3fs: the stuck worker did not stop the pings" % big)
        i = gaps.index(big)
        expect(i + 1 < len(pings) - 2, "pings did not resume after the stall")
        opings = [t for t, l in origin_sock.lines() if l == "WATCHDOG=1"]
        expect(len(opings) > 10, "origin sent only %d WATCHDOG=1 pings" % len(opings))

    @run.case
    def reload_brackets_with_reloading_then_ready():
        for name, proc, sock in (("edge", edge, edge_sock), ("origin", origin, origin_sock)):
            t0 = time.monotonic()
            proc.signal(signal.SIGHUP)
            _, rel = sock.wait_line(lambda l: l.startswith("RELOADING=1"), since=t0, timeout=5,
                                    what="%s RELOADING=1" % name)
            msgs = [m for t, m in sock.all() if t >= t0]
            first = next(m for m in msgs if "RELOADING=1" in m)
            expect(re.search(r"(^|\n)MONOTONIC_USEC=\d+", first),
                   "%s: RELOADING=1 without MONOTONIC_USEC=: %r" % (name, first))
            t_ready, _ = sock.wait_line(lambda l: l == "READY=1", since=t0, timeout=5,
                                        what="%s READY=1 after reload" % name)
            idx_rel = next(i for i, m in enumerate(msgs) if "RELOADING=1" in m)
            expect(any("READY=1" in m for m in msgs[idx_rel + 1:]) or "READY=1" in msgs[idx_rel],
                   "%s: READY=1 did not follow RELOADING=1" % name)
            expect(proc.alive(), "%s died on SIGHUP" % name)
        h.wait_ready(origin=origin)

    @run.case
    def metrics_pass_promtool_on_both_programs():
        if not shutil.which("promtool"):
            raise Skip("promtool missing (Debian package prometheus)")
        for _ in range(3):
            h.request("GET", "/")
        h.request("GET", "/", host="other.test")  # a Host no origin publishes: label "other"
        for name, url, hdrs in (("edge", "http://%s/metrics" % admin, {}),
                                ("origin", "http://%s/metrics" % origin_admin,
                                 {"Authorization": "Bearer " + token})):
            st, text, _ = http_get(url, headers=hdrs)
            expect_eq(st, 200, "%s /metrics status" % name)
            r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                               text=True, timeout=30)
            expect(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
                   "promtool check metrics on the %s: exit %d\n%s%s" % (name, r.returncode, r.stdout, r.stderr))
            for family in ("process_resident_memory_bytes", "process_open_fds",
                           "process_cpu_seconds_total", "process_start_time_seconds",
                           "hearth_tunnel_rtt_seconds", "hearth_tunnel_uptime_seconds"):
                expect(re.search(r"(?m)^%s(\{[^}]*\})? " % family, text),
                       "%s /metrics lacks %s" % (name, family))
            if name == "edge":
                expect(re.search(r'(?m)^hearth_http_request_duration_seconds_bucket\{host="app.test",'
                                 r'code_class="2xx",le="\+Inf"\} [1-9]', text),
                       "no 2xx duration histogram for app.test:\n" + text[:3000])
                expect(re.search(r'(?m)^hearth_http_request_duration_seconds_count\{host="other",'
                                 r'code_class="4xx"\} [1-9]', text),
                       "an unknown Host is not counted under host=\"other\"")
                expect(re.search(r'(?m)^hearth_host_bytes_total\{host="app.test",direction="out"\} [1-9]', text),
                       "no bytes for app.test")
                expect(re.search(r'(?m)^hearth_tunnel_rtt_seconds\{origin="nas",tunnel="t\d+"\} ', text),
                       "no per-tunnel RTT series")
                hosts = set(re.findall(r'host="([^"]*)"', text))
                expect(hosts <= {"app.test", "*.app.test", "other"},
                       "host labels outside the configured set: %s" % sorted(hosts))
            print("   %s: %d families, promtool clean" % (name, len(re.findall(r"(?m)^# TYPE ", text))))

    @run.case
    def status_prints_tables_and_json():
        r = subprocess.run([run.bin("hearth-edge"), "status", "--admin", admin], capture_output=True,
                           text=True, timeout=20)
        expect_eq(r.returncode, 0, "edge status exit code (stderr %r)" % r.stderr)
        out = r.stdout
        for word in ("TUNNELS", "ORIGIN", "PEER", "RTT", "UPTIME", "STREAMS", "ROUTES",
                     "CERTIFICATES", "app.test", "nas", "127.0.0.1:"):
            expect(word in out, "edge status lacks %r:\n%s" % (word, out))
        print("   " + out.splitlines()[0])
        r = subprocess.run([run.bin("hearth-edge"), "status", "--admin", admin, "--json"],
                           capture_output=True, text=True, timeout=20)
        expect_eq(r.returncode, 0, "edge status --json exit code")
        d = json.loads(r.stdout)
        expect(len(d["tunnels"]) == 2 and d["tunnels"][0]["origin"] == "nas", "status --json: %r" % d)
        # The origin: listen_admin and its token come from --config.
        r = subprocess.run([run.bin("hearth-origin"), "status", "--config", conf], capture_output=True,
                           text=True, timeout=20)
        expect_eq(r.returncode, 0, "origin status exit code (stderr %r)" % r.stderr)
        for word in ("TUNNELS", "INDEX", "RTT", "UPTIME", "ROUTES", "SERVICE", "/dead", "app.test"):
            expect(word in r.stdout, "origin status lacks %r:\n%s" % (word, r.stdout))
        r = subprocess.run([run.bin("hearth-origin"), "status", "--admin", origin_admin, "--json",
                            "--token-file", token_file], capture_output=True, text=True, timeout=20)
        expect_eq(r.returncode, 0, "origin status --json --token-file exit code")
        expect_eq(json.loads(r.stdout)["origin"], "nas", "origin status --json origin")

    @run.case
    def status_of_an_unreachable_admin_is_one_clear_line():
        dead = "127.0.0.1:%d" % free_port()
        for binary in ("hearth-edge", "hearth-origin"):
            r = subprocess.run([run.bin(binary), "status", "--admin", dead], capture_output=True,
                               text=True, timeout=20)
            expect_eq(r.returncode, 2, "%s status exit code" % binary)
            lines = r.stderr.strip().splitlines()
            expect(len(lines) == 1, "%s: expected one line, got %r" % (binary, r.stderr))
            expect("cannot reach the admin listener at " + dead in lines[0] and "refused" in lines[0],
                   "%s: unclear message %r" % (binary, lines[0]))
            expect(not re.search(r"\.(hpp|ipp|cpp)|boost|\[system:", lines[0]),
                   "%s: source location in %r" % (binary, lines[0]))
        r = subprocess.run([run.bin("hearth-origin"), "status", "--admin", origin_admin],
                           capture_output=True, text=True, timeout=20)
        expect(r.returncode == 2 and "requires a token" in r.stderr,
               "status without the token: exit %d, %r" % (r.returncode, r.stderr))
        print("   " + lines[0])

    @run.case
    def admin_token_guards_every_path():
        base = "http://%s" % origin_admin
        basic = "Basic " + __import__("base64").b64encode(b"admin:" + token.encode()).decode()
        for path in ("/", "/status", "/metrics", "/healthz", "/readyz", "/nope"):
            st, _, hdrs = http_get(base + path)
            expect_eq(st, 401, "GET %s without a token" % path)
            expect("Basic" in str(hdrs) and "Bearer" in str(hdrs), "401 without WWW-Authenticate: %r" % hdrs)
            st, _, _ = http_get(base + path, headers={"Authorization": "Bearer wrong-" + token})
            expect_eq(st, 401, "GET %s with a wrong token" % path)
        st, body, _ = http_get(base + "/status", headers={"Authorization": "Bearer " + token})
        expect_eq(st, 200, "GET /status with the token")
        st, body, _ = http_get(base + "/", headers={"Authorization": basic})
        expect(st == 200 and "<title>hearth</title>" in body, "GET / with Basic auth: %d" % st)

    @run.case
    def dashboard_page_is_self_contained():
        st, body, hdrs = http_get("http://%s/" % admin)
        expect_eq(st, 200, "GET / status")
        expect("text/html" in hdrs.get("Content-Type", ""), "GET / content type %r" % hdrs)
        expect("<title>hearth</title>" in body and "fetch(\"status\"" in body, "not the dashboard page")
        expect(not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', body),
               "the dashboard refers to an external resource")

    @run.case
    def failure_lines_name_a_cause_not_success():
        mark = edge.mark()
        st, _, _ = h.request("GET", "/dead")
        expect_eq(st, 502, "GET /dead (service down)")
        ev = edge.wait_event("proxy.failed", since=mark, timeout=5)
        expect(ev.get("cause") == "service_refused", "proxy.failed cause %r: %r" % (ev.get("cause"), ev))
        expect("Success" not in json.dumps(ev), "proxy.failed still says Success: %r" % ev)
        print("   %s" % json.dumps({k: v for k, v in ev.items() if k not in ("ts",)}))

    @run.case
    def access_log_switches_off_and_samples():
        def requests_logged(n):
            mark = edge.mark()
            for _ in range(n):
                h.request("GET", "/headers")
            time.sleep(0.2)
            return len(edge.find_all("request", since=mark))
        expect_eq(requests_logged(3), 3, "request lines with access_log = true")
        h.set_key(h.edge_conf, "access_log", "false")
        mark = edge.mark()
        edge.signal(signal.SIGHUP)
        edge.wait_event("reload.done", since=mark, timeout=5)
        expect_eq(requests_logged(5), 0, "request lines with access_log = false")
        st, _, _ = h.request("GET", "/dead")  # failures still show as proxy.failed
        h.set_key(h.edge_conf, "access_log", "true\naccess_log_sample = 0.25")
        mark = edge.mark()
        edge.signal(signal.SIGHUP)
        edge.wait_event("reload.done", since=mark, timeout=5)
        n = requests_logged(60)
        print("   access_log_sample = 0.25: %d of 60 request lines" % n)
        expect(2 <= n <= 35, "access_log_sample = 0.25 kept %d of 60 lines" % n)
        mark = edge.mark()
        h.request("GET", "/dead")
        time.sleep(0.2)
        expect(edge.find("request", since=mark, status=502), "a 502 was sampled away")


    @run.case
    def stop_sends_stopping_and_logs_no_goodbye_warnings():
        emark, omark = edge.mark(), origin.mark()
        t0 = time.monotonic()
        origin.signal(signal.SIGTERM)
        origin_sock.wait_line(lambda l: l == "STOPPING=1", since=t0, timeout=5, what="origin STOPPING=1")
        expect_eq(origin.p.wait(10), 0, "origin exit code")
        edge.signal(signal.SIGTERM)
        edge_sock.wait_line(lambda l: l == "STOPPING=1", since=t0, timeout=5, what="edge STOPPING=1")
        expect_eq(edge.p.wait(10), 0, "edge exit code")
        stopping = [m for t, m in edge_sock.all() if "STOPPING=1" in m][0]
        expect("STATUS=draining" in stopping, "edge STOPPING=1 without a draining STATUS=: %r" % stopping)
        bad = []
        for p, mark in ((edge, emark), (origin, omark)):
            for ev in p.events()[mark:]:
                if ev.get("level") in ("warn", "error"):
                    bad.append("%s: %s" % (p.name, json.dumps(ev)[:300]))
        expect(not bad, "a clean shutdown logged warnings:\n    " + "\n    ".join(bad))

    run.finish()


if __name__ == "__main__":
    main()
