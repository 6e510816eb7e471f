"""Shared fixtures for hearth's real-process integration tests.

Every test script does roughly:

    from harness import Harness, TestRun
    run = TestRun("proxy_http")              # parses --bin-dir, prints results
    h = Harness(run)                         # temp dir, cert, ports; cleans up at exit
    svc = h.start_service("A")
    h.write_edge_config()
    edge = h.start_edge()
    origin = h.pair_and_start_origin([("app.test", "/", svc.http_url)])
    h.wait_ready()
    @run.case
    def get(): ...
    run.finish()                             # "N passed, M failed", exit code

Nothing here waits without a bound. Every process started is killed at exit
(try/finally in TestRun.finish, atexit, SIGTERM/SIGINT handlers, and
PR_SET_PDEATHSIG so children die with the test even on SIGKILL).
"""

import argparse
import atexit
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
HOME_SERVICE = os.path.join(HERE, "home_service.py")
HOSTNAMES = ["app.test", "*.app.test", "other.test"]

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup():
    # Die with the test process, whatever kills it.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def rss_kb(pid):
    """Resident set size of a live process, kB (raises once it is gone)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


_handed_out = set()


def free_port(host="127.0.0.1"):
    """A port nothing listens on now and that this process has not handed out before:
    ports are chosen before the programs that bind them start, so two calls must not
    return the same free port (the kernel may offer it again once the probe closes)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh free port after 100 tries")


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until truthy; return its value, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - polled predicates may fail transiently
            last_exc = e
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s%s" % (
                timeout, what, (" (last error: %r)" % last_exc) if last_exc else ""))
        time.sleep(interval)


class Failure(AssertionError):
    pass


def expect(cond, msg):
    if not cond:
        raise Failure(msg)


def expect_eq(got, want, what):
    if got != want:
        raise Failure("%s: expected %r, got %r" % (what, want, got))


# ---------------------------------------------------------------------------
# Test runner


class Skip(Exception):
    pass


class TestRun:
    """Runs named cases, prints PASS/FAIL lines and the final summary line."""

    def __init__(self, title, description=None):
        ap = argparse.ArgumentParser(description=description or title)
        ap.add_argument("--bin-dir", default=os.environ.get("HEARTH_BIN_DIR",
                                                            os.path.join(HERE, "../../build/bin")))
        ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
        ap.add_argument("--only", action="append", default=[], help="run only cases whose name contains this")
        self.args = ap.parse_args()
        self.title = title
        self.bin_dir = os.path.abspath(self.args.bin_dir)
        self.passed = 0
        self.failed = 0
        self.failures = []
        self.t0 = time.monotonic()
        self.cleanups = []  # callables, run in reverse order
        self._finished = False
        atexit.register(self._cleanup)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, self._on_signal)
        print("== %s (bin dir %s)" % (title, self.bin_dir), flush=True)

    def _on_signal(self, signum, _frame):
        print("received signal %d, cleaning up" % signum, flush=True)
        self._cleanup()
        os._exit(1)

    def on_cleanup(self, fn):
        self.cleanups.append(fn)

    def _cleanup(self):
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception:  # noqa: BLE001
                traceback.print_exc()

    def bin(self, name):
        return os.path.join(self.bin_dir, name)

    def require_binaries(self):
        missing = [b for b in ("hearth-edge", "hearth-origin") if not os.access(self.bin(b), os.X_OK)]
        if missing:
            print("FAIL setup: missing binaries in %s: %s" % (self.bin_dir, ", ".join(missing)))
            self.failed += 1
            self.finish()

    def wanted(self, name):
        return not self.args.only or any(o in name for o in self.args.only)

    def case(self, fn=None, *, name=None):
        """Decorator: run fn now as a named case; record pass/fail."""
        def run(f):
            n = name or f.__name__
            if not self.wanted(n):
                return f
            t = time.monotonic()
            try:
                f()
            except Skip as e:
                print("SKIP %s: %s" % (n, e), flush=True)
                return f
            except Exception as e:  # noqa: BLE001
                self.failed += 1
                dt = time.monotonic() - t
                detail = "%s: %s" % (type(e).__name__, e) if not isinstance(e, Failure) else str(e)
                self.failures.append((n, detail))
                print("FAIL %s (%.2fs): %s" % (n, dt, detail), flush=True)
                if not isinstance(e, (Failure, TimeoutError)):
                    traceback.print_exc(file=sys.stdout)
                for hook in getattr(self, "failure_hooks", []):
                    hook()
                return f
            self.passed += 1
            print("PASS %s (%.2fs)" % (n, time.monotonic() - t), flush=True)
            return f
        return run(fn) if fn else run

    def setup_failed(self, e):
        """Record a failure in set-up (no case could run) and finish."""
        self.failed += 1
        print("FAIL setup: %s: %s" % (type(e).__name__, e), flush=True)
        if not isinstance(e, (Failure, TimeoutError)):
            traceback.print_exc(file=sys.stdout)
        for hook in getattr(self, "failure_hooks", []):
            hook()
        self.finish()

    def skip(self, why):
        print("SKIP %s: %s" % (self.title, why), flush=True)
        print("0 passed, 0 failed", flush=True)
        self._cleanup()
        sys.stdout.flush()
        os._exit(77)

    def finish(self):
        for name, fn in getattr(self, "final_checks", []):
            self.case(fn, name=name)
        self._cleanup()
        dt = time.monotonic() - self.t0
        if self.failures:
            print("-- failures:")
            for n, d in self.failures:
                print("   %s: %s" % (n, d))
        print("(%s took %.1fs)" % (self.title, dt))
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        os._exit(0 if self.failed == 0 and self.passed > 0 else 1)


# ---------------------------------------------------------------------------
# Processes


class Proc:
    """A started process; stderr (JSON log lines) goes to a file we can poll."""

    def __init__(self, name, argv, log_path, popen):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.p = popen

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def lines(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def events(self):
        out = []
        for line in self.lines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                out.append(ev)
        return out

    def mark(self):
        """Number of events so far; pass as since= to wait only for newer ones."""
        return len(self.events())

    def find(self, event, since=0, **match):
        for ev in self.events()[since:]:
            if ev.get("event") == event and _matches(ev, match):
                return ev
        return None

    def find_all(self, event, since=0, **match):
        return [ev for ev in self.events()[since:] if ev.get("event") == event and _matches(ev, match)]

    def wait_event(self, event, timeout=10.0, since=0, **match):
        """Wait (bounded) for a log event; match values are equal-or-callable."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.find(event, since, **match)
            if ev is not None:
                return ev
            if not self.alive():
                ev = self.find(event, since, **match)
                if ev is not None:
                    return ev
                raise Failure("%s exited (code %s) before logging %r %s; log tail:\n%s" % (
                    self.name, self.p.returncode, event, match or "", self.tail()))
            if time.monotonic() >= deadline:
                raise Failure("%s did not log %r %s within %.1fs; log tail:\n%s" % (
                    self.name, event, match or "", timeout, self.tail()))
            time.sleep(0.05)

    def bad_log_lines(self):
        """stderr lines that are not JSON objects with "ts", "level" and "event"."""
        bad = []
        for line in self.lines():
            try:
                ev = json.loads(line)
                if not (isinstance(ev, dict) and all(k in ev for k in ("ts", "level", "event"))):
                    bad.append(line)
            except ValueError:
                bad.append(line)
        return bad

    def tail(self, n=25):
        return "\n".join("    | " + l[:400] for l in self.lines()[-n:])

    def signal(self, sig):
        if self.alive():
            try:
                os.kill(self.p.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        self.signal(signal.SIGKILL)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, timeout=5.0):
        """SIGTERM, wait (bounded), then SIGKILL. Returns the exit code (or None)."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.p.returncode


def _matches(ev, match):
    for k, v in match.items():
        if callable(v):
            try:
                if not v(ev.get(k)):
                    return False
            except Exception:  # noqa: BLE001
                return False
        elif ev.get(k) != v:
            return False
    return True


class Service:
    def __init__(self, proc, host, http_port, ws_port):
        self.proc = proc
        self.host = host
        self.http_port = http_port
        self.ws_port = ws_port

    @property
    def http_url(self):
        return "http://%s:%d" % (self.host, self.http_port)

    @property
    def ws_url(self):  # hearth routes WebSocket upgrades to an http:// service
        return "http://%s:%d" % (self.host, self.ws_port)


# ---------------------------------------------------------------------------
# The harness


class Harness:
    def __init__(self, run, netns_edge=None, netns_origin=None, tunnel_host="127.0.0.1"):
        self.run = run
        _remove_stale_tmp_dirs()
        self.tmp = tempfile.mkdtemp(prefix="hearth-it-%s-%d-" % (run.title, os.getpid()))
        self.procs = []
        run.on_cleanup(self._remove_tmp)
        run.on_cleanup(self.stop_all)
        run.failure_hooks = getattr(run, "failure_hooks", []) + [self.dump_logs]
        run.final_checks = getattr(run, "final_checks", []) + [("no_sanitizer_reports",
                                                                self.check_sanitizer_reports)]
        self.cert = None
        self.key = None
        self.edge_conf = None
        self.https_port = None
        self.http_port = None
        self.tunnel_port = None
        self.admin_port = None
        self.edge_host = "127.0.0.1"
        self._dumped = set()
        if run.args.keep:
            print("temp dir: %s" % self.tmp)

    # -- housekeeping -------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def _remove_tmp(self):
        if self.run.args.keep or os.environ.get("HEARTH_KEEP_TMP"):
            print("kept temp dir %s" % self.tmp)
            open(os.path.join(self.tmp, "KEEP"), "w").close()  # not removed as stale later
            return
        shutil.rmtree(self.tmp, ignore_errors=True)

    def stop_all(self, timeout=3.0):
        for p in reversed(self.procs):
            p.stop(timeout)

    SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                         "WARNING: ThreadSanitizer", "ERROR: UndefinedBehaviorSanitizer")

    def check_sanitizer_reports(self):
        """Stop every process (SIGTERM: leak checks run at exit), then look for reports."""
        self.stop_all(timeout=10.0)
        found = []
        for p in self.procs:
            for i, line in enumerate(p.lines()):
                if any(m in line for m in self.SANITIZER_MARKERS):
                    found.append("%s (%s) line %d: %s" % (p.name, os.path.basename(p.log_path), i + 1,
                                                          line.strip()[:300]))
        if found:
            raise Failure("sanitizer reports in process logs:\n    " + "\n    ".join(found[:10]))

    def dump_logs(self):
        """On failure: show the log tails of hearth processes (once per new content)."""
        for p in self.procs:
            if not p.name.startswith(("edge", "origin")):
                continue
            lines = p.lines()
            key = (p.name, len(lines))
            if key in self._dumped:
                continue
            self._dumped.add(key)
            print("  -- %s (pid %d, %s) log tail:" % (p.name, p.pid, "running" if p.alive()
                                                      else "exited %s" % p.p.returncode))
            print(p.tail(30))

    def spawn(self, name, argv, netns=None, stdout=subprocess.DEVNULL, cwd=None):
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        log_path = self.path("%s.log" % name)
        i = 1
        while os.path.exists(log_path):
            i += 1
            log_path = self.path("%s.%d.log" % (name, i))
        logf = open(log_path, "wb")
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=logf,
                                 cwd=cwd or self.tmp, preexec_fn=_child_setup)
        logf.close()
        p = Proc(name, argv, log_path, popen)
        self.procs.append(p)
        return p

    # -- certificates and configs ----------------------------------------------
    def make_cert(self):
        self.cert = self.path("cert.pem")
        self.key = self.path("key.pem")
        san = "subjectAltName=" + ",".join("DNS:" + h for h in HOSTNAMES)
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                            "-subj", "/CN=hearth-test", "-addext", san,
                            "-keyout", self.key, "-out", self.cert],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise Failure("openssl req failed: %s" % r.stderr)
        return self.cert

    def write_edge_config(self, host="127.0.0.1", origins=None, extra_edge="", name="edge",
                          state_dir=None, ports=None):
        """Write edge.toml with free ports on `host`. origins: [(name, [hostnames])]."""
        if self.cert is None:
            self.make_cert()
        self.edge_host = host
        if ports:
            self.https_port, self.http_port, self.tunnel_port, self.admin_port = ports
        else:
            self.https_port, self.http_port, self.tunnel_port, self.admin_port = (
                free_port(), free_port(), free_port(), free_port())
        state_dir = state_dir or self.path("%s-state" % name)
        os.makedirs(state_dir, exist_ok=True)
        origins = origins or [("nas", ["app.test", "*.app.test"])]
        text = [
            "[edge]",
            'listen_https  = "%s:%d"' % (host, self.https_port),
            'listen_http   = "%s:%d"' % (host, self.http_port),
            'listen_tunnel = "%s:%d"' % (host, self.tunnel_port),
            # Off loopback the admin listener needs admin_token_file: keep it on this
            # host's (or this namespace's) loopback.
            'listen_admin  = "127.0.0.1:%d"' % self.admin_port,
            'state_dir     = "%s"' % state_dir,
        ]
        if extra_edge:
            text.append(extra_edge.strip())
        text += ["", "[[tls.certificates]]", 'cert = "%s"' % self.cert, 'key  = "%s"' % self.key]
        for oname, hosts in origins:
            text += ["", "[[origins]]", 'name = "%s"' % oname,
                     "hostnames = [%s]" % ", ".join('"%s"' % h for h in hosts)]
        self.edge_conf = self.path("%s.toml" % name)
        with open(self.edge_conf, "w") as f:
            f.write("\n".join(text) + "\n")
        return self.edge_conf

    def invite(self, origin_name="nas", edge_conf=None, edge_address=None, netns=None):
        """Run `hearth-edge invite`; return the join token (its only stdout line)."""
        edge_conf = edge_conf or self.edge_conf
        edge_address = edge_address or "%s:%d" % (self.edge_host, self.tunnel_port)
        argv = [self.run.bin("hearth-edge"), "invite", "--config", edge_conf, origin_name,
                "--edge-address", edge_address]
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise Failure("%s exited %d: %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        if len(lines) != 1:
            raise Failure("invite: expected exactly one stdout line (the token), got %r" % r.stdout)
        return lines[0].strip()

    def join(self, token, out=None):
        """Run `hearth-origin join`; return the path of the origin.toml it wrote."""
        out = out or self.path("origin.toml")
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        argv = [self.run.bin("hearth-origin"), "join", token, "--out", out]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise Failure("hearth-origin join exited %d: %s" % (r.returncode, r.stderr.strip()))
        if not os.path.exists(out):
            raise Failure("hearth-origin join did not write %s" % out)
        return out

    @staticmethod
    def set_routes(origin_conf, routes):
        """Replace everything from the first [[routes]] with our routes.

        routes: [(host, path, service_url)]; path None means the default "/".
        """
        with open(origin_conf) as f:
            text = f.read()
        lines = text.splitlines()
        cut = next((i for i, l in enumerate(lines) if l.strip() == "[[routes]]"), None)
        if cut is None:
            raise Failure("%s has no [[routes]] line to replace:\n%s" % (origin_conf, text))
        lines = lines[:cut]
        for host, path, service in routes:
            lines += ["[[routes]]", 'host = "%s"' % host]
            if path is not None:
                lines.append('path = "%s"' % path)
            lines += ['service = "%s"' % service, ""]
        with open(origin_conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    @staticmethod
    def read_key(conf, key):
        """Value of `key = "..."` (first occurrence) in a TOML file, or None."""
        with open(conf) as f:
            for line in f:
                m = re.match(r'\s*%s\s*=\s*"([^"]*)"' % re.escape(key), line)
                if m:
                    return m.group(1)
        return None

    @staticmethod
    def set_key(conf, key, value_toml):
        """Replace the first `key = ...` line in the [origin]/[edge] section."""
        with open(conf) as f:
            lines = f.read().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"\s*%s\s*=" % re.escape(key), line):
                lines[i] = "%s = %s" % (key, value_toml)
                break
        else:
            # insert after the first table header
            hdr = next(i for i, l in enumerate(lines) if l.strip().startswith("["))
            lines.insert(hdr + 1, "%s = %s" % (key, value_toml))
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    # -- processes -------------------------------------------------------------
    def start_service(self, name="home", mount="", host="127.0.0.1", netns=None, http=True, ws=True):
        argv = [PYTHON, HOME_SERVICE, "--host", host, "--name", name]
        if http:
            argv += ["--http-port", "0"]
        if ws:
            argv += ["--ws-port", "0"]
        if mount:
            argv += ["--mount", mount]
        p = self.spawn("service-%s" % name, argv, netns=netns, stdout=subprocess.PIPE)
        # One JSON line with the ports; bounded wait.
        line = _readline_timeout(p.p.stdout, 10.0)
        if not line:
            raise Failure("home_service %s did not start: %s" % (name, "\n".join(p.lines()[-10:])))
        ports = json.loads(line)
        return Service(p, host, ports.get("http_port"), ports.get("ws_port"))

    def _hearth_argv(self, binary, conf):
        return [self.run.bin(binary), "--config", conf, "--log-format", "json",
                "--log-level", "debug"]

    def start_edge(self, conf=None, name="edge", netns=None, wait=True):
        conf = conf or self.edge_conf
        p = self.spawn(name, self._hearth_argv("hearth-edge", conf), netns=netns)
        if wait:
            self.wait_edge_listening(p, conf)
        return p

    def wait_edge_listening(self, p, conf, timeout=10.0):
        """Wait for a "listening" event for each listen_* address in conf."""
        ports = set()
        with open(conf) as f:
            for line in f:
                m = re.match(r'\s*listen_\w+\s*=\s*"[^"]*:(\d+)"', line)
                if m:
                    ports.add(m.group(1))

        def all_up():
            seen = set()
            for ev in p.find_all("listening"):
                addr = str(ev.get("addr", ""))
                seen.add(addr.rsplit(":", 1)[-1])
            return ports <= seen
        deadline = time.monotonic() + timeout
        while not all_up():
            if not p.alive():
                raise Failure("%s exited (code %s) during start-up; log tail:\n%s" % (
                    p.name, p.p.returncode, p.tail()))
            if time.monotonic() > deadline:
                raise Failure("%s: no \"listening\" event for every port %s within %.0fs; log tail:\n%s"
                              % (p.name, sorted(ports), timeout, p.tail()))
            time.sleep(0.05)

    def start_origin(self, conf, name="origin", netns=None):
        return self.spawn(name, self._hearth_argv("hearth-origin", conf), netns=netns)

    def pair_origin(self, routes, origin_name="nas", out=None, edge_address=None):
        token = self.invite(origin_name, edge_address=edge_address)
        conf = self.join(token, out or self.path("%s.toml" % ("origin" if origin_name == "nas"
                                                               else "origin-" + origin_name)))
        self.set_routes(conf, routes)
        return conf

    # -- clients -----------------------------------------------------------------
    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def tls_socket(self, host="app.test", timeout=10.0, port=None):
        """A raw TLS socket to the edge's HTTPS port with SNI `host`."""
        sock = socket.create_connection((self.edge_host, port or self.https_port), timeout=timeout)
        try:
            return self.ssl_context().wrap_socket(sock, server_hostname=host)
        except Exception:
            sock.close()
            raise

    def https(self, host="app.test", timeout=10.0):
        """http.client connection over TLS to the edge, SNI and Host = host."""
        return _HTTPSConn(self, host, timeout)

    def request(self, method, path, host="app.test", body=None, headers=None, timeout=10.0):
        """One request on a fresh connection: (status, headers dict (lower), body bytes)."""
        c = self.https(host, timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def curl_base(self, host="app.test"):
        # --http1.1: the edge offers h2 first (http2 = true); these tests are about
        # HTTP/1.1 unless they ask for --http2 (a later option wins).
        return ["curl", "-sS", "--http1.1", "--resolve", "%s:%d:%s" % (host, self.https_port, self.edge_host),
                "--cacert", self.cert]

    def curl(self, *args, host="app.test", timeout=60.0, netns=None, text=True):
        argv = self.curl_base(host) + list(args)
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        try:
            return subprocess.run(argv, capture_output=True, text=text, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise Failure("curl timed out after %.0fs: %s" % (timeout, " ".join(argv))) from e

    def url(self, path, host="app.test"):
        return "https://%s:%d%s" % (host, self.https_port, path)

    def wait_ready(self, host="app.test", path="/", timeout=10.0, origin=None):
        """Poll the edge until host answers something other than 404/502/503."""
        last = [None]

        def ok():
            try:
                st, _, _ = self.request("GET", path, host=host, timeout=2.0)
            except Exception as e:  # noqa: BLE001
                last[0] = repr(e)
                return False
            last[0] = st
            return st not in (404, 502, 503)
        deadline = time.monotonic() + timeout
        while not ok():
            if origin is not None and not origin.alive():
                raise Failure("%s exited (code %s); log tail:\n%s" % (
                    origin.name, origin.p.returncode, origin.tail()))
            if time.monotonic() > deadline:
                raise Failure("edge did not serve https://%s%s within %.0fs (last answer: %s)"
                              % (host, path, timeout, last[0]))
            time.sleep(0.1)


def _remove_stale_tmp_dirs():
    """Temp dirs of test runs that were SIGKILLed (their pid is gone)."""
    import glob
    for d in glob.glob(os.path.join(tempfile.gettempdir(), "hearth-it-*")):
        m = re.match(r"hearth-it-[a-z_]+-(\d+)-", os.path.basename(d))
        if m and not pid_alive(int(m.group(1))) and not os.path.exists(os.path.join(d, "KEEP")):
            shutil.rmtree(d, ignore_errors=True)


def pid_alive(pid):
    """True if pid is a live (not zombie) process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class _HTTPSConn(http.client.HTTPSConnection):
    def __init__(self, h, host, timeout):
        super().__init__(host, h.https_port, timeout=timeout, context=h.ssl_context())
        self._h = h

    def connect(self):
        sock = socket.create_connection((self._h.edge_host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _readline_timeout(f, timeout):
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(f, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return None
        return f.readline().decode(errors="replace")
    finally:
        sel.close()


# Bytes read_http_response read past one response, per socket.
_UNREAD = weakref.WeakKeyDictionary()


def read_http_response(sock, timeout=10.0, close_wait=2.0):
    """Read one HTTP/1.1 response head (and Content-Length body) from a raw socket.

    Returns (status or None, head text, body bytes, closed_after) where
    closed_after tells whether the peer closed the connection after the response
    (checked with a short bounded read). Bytes read past the response (the next
    pipelined response) are kept for the next call on the same socket.
    """
    sock.settimeout(timeout)
    buf = _UNREAD.pop(sock, b"")
    while b"\r\n\r\n" not in buf:
        try:
            d = sock.recv(65536)
        except (socket.timeout, ssl.SSLError, OSError):
            d = b""
        if not d:
            break
        buf += d
    if b"\r\n\r\n" not in buf:
        return None, buf.decode(errors="replace"), b"", True
    head, rest = buf.split(b"\r\n\r\n", 1)
    head_text = head.decode(errors="replace")
    m = re.match(r"HTTP/1\.[01] (\d{3})", head_text)
    status = int(m.group(1)) if m else None
    cl = re.search(r"(?im)^content-length:\s*(\d+)", head_text)
    body = rest
    if cl:
        n = int(cl.group(1))
        while len(body) < n:
            try:
                d = sock.recv(65536)
            except (socket.timeout, ssl.SSLError, OSError):
                d = b""
            if not d:
                break
            body += d
        if len(body) > n:
            _UNREAD[sock] = body[n:]
            body = body[:n]
    if sock in _UNREAD:
        return status, head_text, body, False  # more is there: not closed
    # Does the peer close now? (bounded)
    closed = False
    sock.settimeout(close_wait)
    try:
        d = sock.recv(65536)
        closed = (d == b"")
    except socket.timeout:
        closed = False
    except (ssl.SSLError, OSError):
        closed = True
    return status, head_text, body, closed


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def write_random_file(path, size, seed="upload"):
    """Deterministic pseudo-random file (same generator as /download)."""
    sys.path.insert(0, HERE)
    import home_service
    with open(path, "wb") as f:
        for b in home_service.download_blocks(size, seed):
            f.write(b)
    return path


# ---------------------------------------------------------------------------
# WebSocket client helpers (python3-websockets 10.x, legacy asyncio API)


def ws_protocol_class():
    """A client protocol that records the data frames of the last message read."""
    from websockets.legacy.client import WebSocketClientProtocol
    from websockets.frames import Opcode

    class FrameLoggingClient(WebSocketClientProtocol):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.frames = []

        async def read_frame(self, max_size):
            frame = await super().read_frame(max_size)
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                self.frames = [(frame.opcode, frame.fin, len(frame.data))]
            elif frame.opcode == Opcode.CONT:
                self.frames.append((frame.opcode, frame.fin, len(frame.data)))
            return frame

    return FrameLoggingClient


def ws_upgrade_raw(sock, path="/signaling", host="app.test", extra=b""):
    """Send a WebSocket upgrade request on a raw (TLS) socket, with `extra` bytes in
    the same write; wait for the 101 and return the bytes that came after its head."""
    import base64
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, key)).encode() + extra)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        expect(chunk, "connection closed before the 101")
        head += chunk
    expect(head.startswith(b"HTTP/1.1 101"), "upgrade answer: %r" % head[:40])
    return head.split(b"\r\n\r\n", 1)[1]


def ws_connect(path, cafile, connect_host, port, host="app.test", **kw):
    """websockets.connect() to wss://host:port/path, TCP to connect_host:port."""
    import websockets
    ctx = ssl.create_default_context(cafile=cafile)
    opts = dict(ssl=ctx, host=connect_host, port=port, server_hostname=host, max_size=None,
                open_timeout=10, close_timeout=5, ping_interval=None,
                create_protocol=ws_protocol_class())
    opts.update(kw)
    return websockets.connect("wss://%s:%d%s" % (host, port, path), **opts)


async def ws_echo_check(path, cafile, connect_host, port, host="app.test", sizes=(1, 1024, 65536, 1 << 20),
                        close_code=4001):
    """Echo text and binary messages of each size, then close with close_code.

    Returns a list of problems (empty when all is well).
    """
    import asyncio
    import hashlib
    problems = []
    async with ws_connect(path, cafile, connect_host, port, host) as ws:
        for size in sizes:
            text = ("hearth-%d-" % size * (size // 8 + 2))[:size]
            binary = hashlib.shake_256(b"ws-%d" % size).digest(size)
            for msg in (text, binary):
                await asyncio.wait_for(ws.send(msg), 30)
                got = await asyncio.wait_for(ws.recv(), 30)
                kind = "text" if isinstance(msg, str) else "binary"
                if type(got) is not type(msg):
                    problems.append("%s %d B came back as %s" % (kind, size, type(got).__name__))
                elif got != msg:
                    problems.append("%s %d B came back altered (%d B)" % (kind, size, len(got)))
        await asyncio.wait_for(ws.close(close_code, "bye"), 10)
        if ws.close_code != close_code:
            problems.append("close code: sent %d, got back %r" % (close_code, ws.close_code))
    return problems


def _main():
    # `python3 harness.py ws-check --cafile F --connect HOST --port P [--path /signaling]`:
    # run ws_echo_check from another network namespace; prints JSON, exit 0 if clean.
    import asyncio
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["ws-check"])
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--connect", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="app.test")
    ap.add_argument("--path", default="/signaling")
    a = ap.parse_args()
    try:
        problems = asyncio.run(asyncio.wait_for(
            ws_echo_check(a.path, a.cafile, a.connect, a.port, a.host), 60))
    except Exception as e:  # noqa: BLE001
        problems = ["%s: %s" % (type(e).__name__, e)]
    print(json.dumps({"problems": problems}))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    _main()
