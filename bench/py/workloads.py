"""The six workloads of issue 4, each run against one stack of a Lab (stacks.py).

Every function returns {metric: value}. The clients run in the lab's "vps" namespace
(the client is on the VPS's loopback; the VPS-to-home hop is the veth).
"""

import json
import os
import subprocess
import threading
import time

from stacks import HOME_IP, log, rss_kib, wait_until


def _ns(lab, argv):
    return ["ip", "netns", "exec", lab.ns_vps] + list(argv)


def _to_ms(v):
    v = v.strip()
    for suffix, mult in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 6e4)):
        if v.endswith(suffix):
            return float(v[: -len(suffix)]) * mult
    return float(v)


# ----- 1. small HTTPS requests: wrk, keep-alive ------------------------------------------------
def wrk(lab, stack, threads, conns, seconds, logdir):
    url = lab.url(stack, "/small")
    argv = ["wrk", "--latency", "-t", str(threads), "-c", str(conns), "-d", "%ds" % seconds,
            "--timeout", "10s", url]
    r = subprocess.run(_ns(lab, argv), capture_output=True, text=True, timeout=seconds + 60)
    out = r.stdout + r.stderr
    with open(os.path.join(logdir, "wrk-%s.log" % stack), "a") as f:
        f.write("$ %s\n%s\n" % (" ".join(argv), out))
    rps = p50 = p99 = requests = None
    errors = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1:3] == ["requests", "in"]:
            requests = int(parts[0])
        if line.startswith("Requests/sec:"):
            rps = float(parts[1])
        elif parts[:1] == ["50%"]:
            p50 = _to_ms(parts[1])
        elif parts[:1] == ["99%"]:
            p99 = _to_ms(parts[1])
        elif "Socket errors:" in line:
            errors += sum(int(x.strip(",")) for x in parts[3::2])
        elif "Non-2xx or 3xx responses:" in line:
            errors += int(parts[-1])
    if rps is None or p99 is None:
        raise RuntimeError("could not read wrk's output for %s:\n%s" % (stack, out[-2000:]))
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "http_errors": errors, "requests": requests}


# ----- 1b. small HTTPS requests over HTTP/2: h2load, clients x streams ---------------------------
def h2load(lab, stack, clients, streams, seconds, logdir):
    """h2load -c clients -m streams for `seconds`: req/s and failed requests."""
    url = lab.url(stack, "/small")
    argv = ["h2load", "-c", str(clients), "-m", str(streams), "-t", "2", "-D", str(seconds),
            "--warm-up-time", "1", url]
    r = subprocess.run(_ns(lab, argv), capture_output=True, text=True, timeout=seconds + 60)
    out = r.stdout + r.stderr
    with open(os.path.join(logdir, "h2load-%s.log" % stack), "a") as f:
        f.write("$ %s\n%s\n" % (" ".join(argv), out))
    rps = None
    failed = 0
    proto = None
    for line in out.splitlines():
        if line.startswith("finished in"):
            rps = float(line.split(",")[1].split()[0])
        elif line.startswith("requests:"):
            # "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
            counts = {f.split()[1]: int(f.split()[0]) for f in line.split(":", 1)[1].split(",")}
            failed = counts.get("failed", 0) + counts.get("errored", 0) + counts.get("timeout", 0)
        elif line.startswith("Application protocol:"):
            proto = line.split(":", 1)[1].strip()
    if rps is None or proto != "h2":
        raise RuntimeError("could not read h2load's output (protocol %r) for %s:\n%s" % (
            proto, stack, out[-2000:]))
    return {"rps": rps, "failed": failed}


# ----- 2. large downloads: curl, 1 and N in parallel -------------------------------------------
def _curl_argv(lab, url, max_time=600):
    # --http1.1: these rows measure HTTP/1.1 (the edge offers h2 first).
    return ["curl", "-s", "--http1.1", "-o", "/dev/null", "--max-time", str(max_time), "--cacert", lab.cert,
            "-w", "%{http_code} %{size_download}", url]


TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pids):
    """user+system CPU seconds of pids so far (from /proc; a gone pid counts 0)."""
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                v = f.read()
            v = v[v.rindex(")") + 2:].split()
            t += int(v[11]) + int(v[12])
        except (OSError, ValueError):
            pass
    return t / TICK


def with_cpu(lab, stack, fn):
    """Runs fn() and adds what the VPS side and the home side's tunnel process spent
    meanwhile (issue 11): vps_cpu_s, home_cpu_s (None where a stack has no such side)."""
    vps, home = lab.vps_pids(stack), lab.home_pids(stack)
    v0, h0 = cpu_s(vps), cpu_s(home)
    res = fn()
    res["vps_cpu_s"] = cpu_s(vps) - v0 if vps else None
    res["home_cpu_s"] = cpu_s(home) - h0 if home else None
    return res


def per_request_cpu(res):
    """CPU µs per request from a with_cpu(wrk) result."""
    n = res.pop("requests", None)
    for side in ("vps", "home"):
        c = res.pop("%s_cpu_s" % side)
        res["%s_cpu_us" % side] = 1e6 * c / n if c is not None and n else None
    return res


def per_gb_cpu(res):
    """CPU ms per GB from a with_cpu(download) result."""
    gb = res.pop("bytes", 0) / 1e9
    for side in ("vps", "home"):
        c = res.pop("%s_cpu_s" % side)
        res["%s_cpu_ms_gb" % side] = 1e3 * c / gb if c is not None and gb else None
    return res


def download(lab, stack, parallel):
    """`parallel` curl processes at once; MB/s = all bytes / wall time until the last ends.
    One stream downloads /large; N streams download /part each (large / N bytes)."""
    path, size = ("/large", lab.large_bytes) if parallel == 1 else ("/part", lab.part_bytes)
    url = lab.url(stack, path)
    for attempt in (1, 2):
        t0 = time.monotonic()
        procs = [subprocess.Popen(_ns(lab, _curl_argv(lab, url)), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(parallel)]
        total, failed = 0, None
        for p in procs:
            out, err = p.communicate(timeout=900)
            parts = out.split()
            if p.returncode != 0 or len(parts) != 2 or parts[0] != "200" or int(parts[1]) != size:
                failed = "%s download %s: curl exit %d, %r %s" % (stack, url, p.returncode, out, err)
            else:
                total += int(parts[1])
        elapsed = time.monotonic() - t0
        if not failed:
            return {"mbs": total / elapsed / 1e6, "dl_retries": attempt - 1, "bytes": total}
        if attempt == 1:
            log(failed + ": once more")
    raise RuntimeError(failed)


class BackgroundDownloads:
    """Keep `n` downloads of /large running through a stack for `seconds` (each curl is
    bounded by the time left, so the last ones end by themselves; bytes of cut downloads
    count too)."""

    def __init__(self, lab, stack, n, seconds):
        self.lab, self.stack, self.n, self.seconds = lab, stack, n, seconds
        self.bytes = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(n)]

    def _loop(self):
        url = self.lab.url(self.stack, "/large")
        while True:
            left = self.deadline - time.monotonic()
            if left < 0.2:
                return
            argv = _curl_argv(self.lab, url)
            argv[argv.index("--max-time") + 1] = "%.2f" % left
            p = subprocess.run(_ns(self.lab, argv), capture_output=True, text=True, timeout=left + 30)
            parts = p.stdout.split()
            if len(parts) == 2:
                with self.lock:
                    self.bytes += int(parts[1])

    def start(self):
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.seconds
        for t in self.threads:
            t.start()
        time.sleep(0.5)  # let the downloads ramp up before measuring anything

    def stop(self):
        for t in self.threads:
            t.join(self.seconds + 60)
        return self.bytes / (time.monotonic() - self.t0) / 1e6


# ----- 3 and 5. WebSocket echo ---------------------------------------------------------------
def _merge_hist(results):
    hist = {}
    for r in results:
        for k, v in r["hist"].items():
            hist[int(k)] = hist.get(int(k), 0) + v
    return hist


def percentile(hist, q):
    n = sum(hist.values())
    if n == 0:
        return None
    want = q * n
    seen = 0
    for k in sorted(hist):
        seen += hist[k]
        if seen >= want:
            return k / 1000.0  # us -> ms
    return max(hist) / 1000.0


def ws_echo(lab, stack, sockets, procs, seconds, interval_ms=0, size=64, warmup=1, background=None):
    """`sockets` WebSockets split over `procs` node clients; closed loop, or paced at one
    message per socket per interval_ms. Returns msgs/s and RTT p50/p99 (ms)."""
    url = lab.url(stack, "/ws")
    per = [sockets // procs + (1 if i < sockets % procs else 0) for i in range(procs)]
    clients = []
    try:
        for i, n in enumerate(per):
            argv = [lab.node, os.path.join(lab.js, "ws_load.js"), "--url", url, "--sockets", str(n),
                    "--seconds", str(seconds), "--warmup", str(warmup), "--size", str(size),
                    "--interval-ms", str(interval_ms)]
            if url.startswith("wss:"):
                argv += ["--ca", lab.cert]
            clients.append(subprocess.Popen(_ns(lab, argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True))
        for c in clients:
            line = c.stdout.readline()
            if not line:
                raise RuntimeError("%s ws client failed: %s" % (stack, c.stderr.read()[-2000:]))
            ready = json.loads(line)
            if not ready.get("ready"):
                raise RuntimeError("%s ws client: %s" % (stack, line))
        bg_mbs = None
        if background:
            background.start()
        for c in clients:
            c.stdin.write("go\n")
            c.stdin.flush()
        results = []
        for c in clients:
            out, err = c.communicate(timeout=seconds + warmup + 120)
            if c.returncode != 0 or not out.strip():
                raise RuntimeError("%s ws client exit %s: %s" % (stack, c.returncode, err[-2000:]))
            results.append(json.loads(out.strip().splitlines()[-1]))
        if background:
            bg_mbs = background.stop()
            background = None
    finally:
        if background:
            background.stop()
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
    hist = _merge_hist(results)
    window = max(r["window_s"] for r in results)
    out = {
        "msgs": sum(r["messages"] for r in results) / window,
        "p50_ms": percentile(hist, 0.50),
        "p99_ms": percentile(hist, 0.99),
        "ws_errors": sum(r["errors"] + r["closed_early"] for r in results),
    }
    if bg_mbs is not None:
        out["bg_mbs"] = bg_mbs
    return out


# ----- 4. idle WSS connections: VPS-side memory per connection ---------------------------------
def _rss_stable(pids_fn, samples=5, every=0.2):
    vals = []
    for _ in range(samples):
        vals.append(rss_kib(pids_fn()))
        time.sleep(every)
    return sorted(vals)[len(vals) // 2]


def idle_memory(lab, stack, n, procs, settle=3.0):
    """Open n WSS connections (echo one message on each), hold them idle, and compare the
    RSS of the VPS-side processes with their baseline just before (same fresh processes,
    after a few warm-up requests). Also reports the home-side tunnel process."""
    url = lab.url(stack, "/ws")
    # A short warm-up so start-up allocations (TLS contexts, first worker buffers) are in
    # the baseline, not in the per-connection figure.
    ws_echo(lab, stack, sockets=10, procs=1, seconds=1, warmup=0)
    time.sleep(1.0)
    vps = lambda: lab.vps_pids(stack)  # noqa: E731
    home = lambda: lab.home_pids(stack)  # noqa: E731
    base_vps, base_home = _rss_stable(vps), _rss_stable(home)
    per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    clients = []
    try:
        t0 = time.monotonic()
        for k in per:
            argv = [lab.node, os.path.join(lab.js, "ws_idle.js"), "--url", url, "--sockets", str(k),
                    "--parallel", "32"]
            if url.startswith("wss:"):
                argv += ["--ca", lab.cert]
            clients.append(subprocess.Popen(_ns(lab, argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True))
        opened = 0
        for c in clients:
            line = c.stdout.readline()
            if not line:
                raise RuntimeError("%s idle client failed: %s" % (stack, c.stderr.read()[-2000:]))
            opened += json.loads(line)["sockets"]
        connect_s = time.monotonic() - t0
        time.sleep(settle)
        lab.check_alive()
        held_vps, held_home = _rss_stable(vps), _rss_stable(home)
        closed = 0
        for c in clients:
            out, _ = c.communicate("stop\n", timeout=120)
            for line in out.splitlines():
                if '"done"' in line:
                    closed += json.loads(line)["closed_while_idle"]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
    if opened != n or closed:
        log("%s idle: %d of %d opened, %d closed while idle" % (stack, opened, n, closed))
    res = {
        "bytes_per_conn": (held_vps - base_vps) * 1024.0 / max(opened, 1),
        "vps_base_mib": base_vps / 1024.0,
        "connect_s": connect_s,
        "idle_dropped": closed + (n - opened),
    }
    if lab.home_pids(stack):
        res["home_bytes_per_conn"] = (held_home - base_home) * 1024.0 / max(opened, 1)
    return res


# ----- 6. recovery after a restart of the tunnel's home side -----------------------------------
def recovery(lab, stack, log_level):
    """Stop the home side of the tunnel (ssh, wireguard-go, hearth-origin) cleanly, start a
    poller (a new HTTPS connection every 10 ms), start the home side again, and time from
    that start to the first 200 through the stack."""
    if stack == "S2":
        lab.stop_ssh_client()
    elif stack == "S3":
        lab.stop_wg("home")
    elif stack == "S4":
        lab.stop("home-origin")
    else:
        raise ValueError(stack)
    poll = subprocess.Popen(_ns(lab, [lab.node, os.path.join(lab.js, "poll.js"), "--url",
                                      lab.url(stack, "/small"), "--every-ms", "10", "--max-s", "30"]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if not json.loads(poll.stdout.readline() or "{}").get("ready"):
            raise RuntimeError("poller did not start: " + poll.stderr.read())
        time.sleep(0.2)  # the poller is failing steadily now
        t0 = time.time() * 1000.0
        if stack == "S2":
            lab.start_ssh_client(wait=False)
        elif stack == "S3":
            lab.start_wg("home")
        else:
            lab.start_origin(log_level, wait=False)
        out, err = poll.communicate(timeout=60)
    finally:
        if poll.poll() is None:
            poll.kill()
            poll.wait()
    res = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    if "ok_epoch_ms" not in res:
        raise RuntimeError("%s did not recover within 30 s: %s %s" % (stack, out, err))
    # Make sure the stack is whole again before the next workload.
    lab.wait_http(lab.url(stack, "/small"), "%s after restart" % stack)
    return {"recovery_ms": res["ok_epoch_ms"] - t0}
