#!/usr/bin/env python3
"""Issue 11: what the VPS pays, quickly, on loopback. One edge/origin/service stack
(the Python sample service), and for each workload the user+system CPU time of
hearth-edge (the VPS side) and hearth-origin (the home side), read from /proc:

  - small GETs: wrk (2 threads, 20 connections, HTTPS keep-alive, GET /status/204),
    CPU µs per request, and context switches per request (all threads, from
    /proc/PID/task/*/status: each voluntary one is a worker that slept and was woken;
    the pinning found in issue 11 showed as 2.5 per request at the edge instead of 1.3);
  - one large download: curl of --mb MiB through the tunnel, CPU ms per GB and MB/s.

    /usr/bin/python3 bench/vps_cost.py --bin-dir build/bin [--runs 3] [--duration 5] [--mb 256]
    /usr/bin/python3 bench/vps_cost.py --bin-dir build/bin --callgrind [--requests 4000] [--mb 32]
    /usr/bin/python3 bench/vps_cost.py --bin-dir build/bin --strace [--requests 4000] [--mb 32]
    /usr/bin/python3 bench/vps_cost.py --bin-dir build/bin --idle 2000 [--heaptrack]

The processes log at `warn`, as bench/run runs them (the test harness's `debug` would
add its own cost per request).

--callgrind runs hearth-edge under valgrind's callgrind and counts the user-space
instructions the edge executes per small request and per MB downloaded. Unlike CPU time
these counts repeat from run to run whatever else the machine is doing, so a small
before/after difference is visible on a shared machine. Each figure is the difference
between a run of 2N and one of N units, so connection set-up and TLS handshakes cancel
out. The kernel's share (syscalls, socket copies) is not in them: read it from the
CPU-time mode and from --strace, which counts the edge's syscalls per small request and
per MiB (strace -c -f on the running edge; only the counts mean something, strace slows
the process down), and the origin's per small request.

--idle N opens N WebSockets (wss, python3-websockets) through the edge, leaves them idle
and prints the edge's RSS growth per connection; with --heaptrack the edge runs under
heaptrack and the heap it holds with the connections open (killed there, so what it holds
is reported as "leaked") is printed by allocation site.

For a before/after, run it on two bin dirs one after the other, several times
(the machine's load moves both alike then). bench/run gives the same rows against
nginx stacks in network namespaces; this is the quick loop for a data-path change.
"""

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Harness, TestRun, rss_kb  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
from stacks import descendants  # noqa: E402

opts = {}
callgrind = "--callgrind" in sys.argv
if callgrind:
    sys.argv.remove("--callgrind")
use_strace = "--strace" in sys.argv
if use_strace:
    sys.argv.remove("--strace")
use_heaptrack = "--heaptrack" in sys.argv
if use_heaptrack:
    sys.argv.remove("--heaptrack")
for flag in ("--runs", "--duration", "--mb", "--requests", "--idle"):
    if flag in sys.argv:
        i = sys.argv.index(flag)
        opts[flag] = sys.argv[i + 1]
        del sys.argv[i:i + 2]
runs = int(opts.get("--runs", 3))
duration = int(opts.get("--duration", 5))
mb = int(opts.get("--mb", 32 if callgrind else 256))
requests = int(opts.get("--requests", 4000))
idle = int(opts.get("--idle", 0))

run = TestRun("bench_vps_cost")
h = Harness(run)
svc = h.start_service("A")
h.write_edge_config()
edge = h.start_edge()  # debug log: the pairing below reads its events
origin_conf = h.pair_origin([("app.test", "/signaling", svc.ws_url),
                             ("app.test", None, svc.http_url)])
edge.p.terminate()
edge.p.wait(timeout=10)
cg_out = h.path("callgrind.out")
prefix = (["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg_out, "--dump-instr=no",
           "--compress-strings=no"] if callgrind else [])
ht_out = h.path("heaptrack-edge")
if use_heaptrack:
    prefix = ["heaptrack", "-o", ht_out]


def quiet_argv(binary, conf):
    return [h.run.bin(binary), "--config", conf, "--log-format", "json", "--log-level", "warn"]


h.set_key(h.edge_conf, "max_connections_per_ip", "100000")  # every client here is 127.0.0.1
edge = h.spawn("edge-bench", prefix + quiet_argv("hearth-edge", h.edge_conf))
origin = h.spawn("origin-bench", quiet_argv("hearth-origin", origin_conf))
deadline = time.monotonic() + (120 if callgrind else 20)
while True:
    r = h.curl("-o", "/dev/null", "-w", "%{http_code}", h.url("/status/204"), timeout=30)
    if r.stdout.strip() == "204":
        break
    if time.monotonic() > deadline or not edge.alive():
        raise SystemExit("the stack did not come up: " + edge.tail())
    time.sleep(0.5)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(p):
    with open("/proc/%d/stat" % p.p.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def switches(p):
    """Context switches (voluntary + involuntary) over all threads of a process: each
    voluntary one is a wake-up, a sleep in epoll_wait or on a futex that had to end."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % p.p.pid):
        try:
            with open("/proc/%d/task/%s/status" % (p.p.pid, tid)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def measured(fn):
    """(units, edge CPU s, origin CPU s, wall s, edge switches, origin switches) over fn."""
    e0, o0, t0 = cpu_s(edge), cpu_s(origin), time.monotonic()
    w0 = (switches(edge), switches(origin))
    units = fn()
    return (units, cpu_s(edge) - e0, cpu_s(origin) - o0, time.monotonic() - t0,
            switches(edge) - w0[0], switches(origin) - w0[1])


def small_gets():
    argv = ["wrk", "-t", "2", "-c", "20", "-d", "%ds" % duration, "-H", "Host: app.test",
            "https://127.0.0.1:%d/status/204" % h.https_port]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    m = re.search(r"(\d+) requests in", out)
    # wrk counts a 502 as a request: a stack that broke would look fast and cheap.
    bad = re.search(r"Non-2xx or 3xx responses|Socket errors", out)
    if not m or bad:
        raise SystemExit("small GETs failed (is the tunnel up?):\n" + out)
    return int(m.group(1))


def download():
    fetch(mb << 20)
    return mb << 20


def callgrind_ir(fn):
    """User-space instructions of the edge while fn runs (callgrind zeroed before, dumped
    after)."""
    subprocess.run(["callgrind_control", "-z", str(edge.p.pid)], capture_output=True, timeout=60)
    fn()
    for f in os.listdir(h.tmp):
        if f.startswith("callgrind.out."):
            os.unlink(os.path.join(h.tmp, f))
    subprocess.run(["callgrind_control", "-d", str(edge.p.pid)], capture_output=True, timeout=60)
    total = 0
    for f in os.listdir(h.tmp):
        if f.startswith("callgrind.out.") and os.environ.get("CALLGRIND_KEEP"):
            # the dump itself, for callgrind_annotate (the last one taken wins)
            shutil.copy(os.path.join(h.tmp, f), os.environ["CALLGRIND_KEEP"])
        if f.startswith("callgrind.out."):
            with open(os.path.join(h.tmp, f)) as fh:
                for line in fh:
                    if line.startswith("summary:") or line.startswith("totals:"):
                        total += int(line.split()[1])
                        break
    return total


def h1load(n):
    argv = ["h2load", "--h1", "-n", str(n), "-c", "20", "-t", "1", "-H", ":authority: app.test",
            "https://127.0.0.1:%d/status/204" % h.https_port]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900).stdout
    m = re.search(r"(\d+) succeeded", out)
    if not m or int(m.group(1)) != n:
        raise SystemExit("h2load: not every request succeeded:\n" + out)


def fetch(nbytes):
    r = h.curl("-o", "/dev/null", "-w", "%{size_download}", h.url("/download?bytes=%d" % nbytes),
               timeout=900)
    if int(r.stdout or 0) != nbytes:
        raise SystemExit("download came up short: %r" % r.stdout)


def strace_counts(fn, proc=None):
    """{syscall: calls} of the edge (or proc; all threads) while fn runs."""
    out = h.path("strace.txt")
    pid = (proc or edge).p.pid
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)],
                              stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached to every thread
    fn()
    tracer.send_signal(2)
    tracer.wait(timeout=30)
    counts = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3])
    return counts


def edge_pid():
    """The edge itself (under heaptrack, the wrapper's child)."""
    if not use_heaptrack:
        return edge.p.pid
    for _ in range(100):
        for pid in descendants(edge.p.pid):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if f.read().split(b"\0")[0].endswith(b"hearth-edge"):
                        return pid
            except OSError:
                pass
        time.sleep(0.1)
    raise SystemExit("no hearth-edge process under heaptrack")


def heaptrack_report(pid, *args, kill=False):
    """Stop the edge under heaptrack (so it writes its data) and print that data.
    kill: SIGKILL instead of SIGTERM, so the heap as it is now (idle connections
    held) is what heaptrack reports as leaked, not a peak reached while the
    connections are being closed at shutdown."""
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    edge.p.wait(timeout=60)
    data = [f for f in os.listdir(h.tmp) if f.startswith("heaptrack-edge")][0]
    argv = ["heaptrack_print", "--print-allocators", "0", "--print-leaks", "1" if kill else "0",
            "--print-temporary", "0", "--print-histogram", ""] + list(args)
    return subprocess.run(argv + ["-f", os.path.join(h.tmp, data)], capture_output=True,
                          text=True, timeout=600).stdout


if idle:
    import asyncio
    import ssl as ssl_mod
    import websockets

    async def hold(n):
        ctx = ssl_mod.create_default_context(cafile=h.cert)
        uri = "wss://app.test:%d/signaling" % h.https_port
        socks = []
        for _ in range(n):
            ws = await websockets.connect(uri, host="127.0.0.1", port=h.https_port, ssl=ctx,
                                          server_hostname="app.test", ping_interval=None)
            await ws.send("hello")
            await ws.recv()
            socks.append(ws)
        return socks

    async def main():
        pid = edge_pid()
        warm = await hold(20)
        await asyncio.sleep(1.0)
        before = rss_kb(pid)
        socks = await hold(idle)
        await asyncio.sleep(2.0)
        after = rss_kb(pid)
        print("  %d idle WSS: edge RSS %d -> %d kB, %.1f KB per connection"
              % (idle, before, after, (after - before) * 1024 / 1000 / idle), flush=True)
        if use_heaptrack:
            out = heaptrack_report(pid, "--print-peaks", "0", "--peak-limit", "40", kill=True)
            dest = os.environ.get("HEAPTRACK_OUT", "/tmp/heaptrack-idle.txt")
            with open(dest, "w") as f:
                f.write(out)
            print("  heaptrack peak sites: " + dest, flush=True)
        for ws in warm + socks:
            await ws.close()

    asyncio.run(main())
    run.passed = 1
    run.finish()
    sys.exit(0)

if use_heaptrack:
    # Allocation calls of the edge over `requests` small GETs (start-up included: run it
    # twice with different --requests and take the difference per request).
    pid = edge_pid()
    h1load(requests)
    out = heaptrack_report(pid, "--print-peaks", "0")
    m = re.search(r"calls to allocation functions: (\d+)", out)
    print("  %d small GETs: %s allocation calls in the edge" % (requests, m.group(1) if m else "?"))
    run.passed = 1
    run.finish()
    sys.exit(0)

if use_strace:
    def show(what, counts, units):
        top = sorted(counts.items(), key=lambda kv: -kv[1])
        print("  %s: %.2f syscalls per %s (%s)" % (
            what, sum(counts.values()) / units, what.split()[-1],
            ", ".join("%s %.2f" % (k, v / units) for k, v in top[:8])), flush=True)
    for i in range(runs):
        show("per request", strace_counts(lambda: h1load(requests)), requests)
        show("per MiB", strace_counts(lambda: fetch(mb << 20)), mb)
        show("origin, per request", strace_counts(lambda: h1load(requests), origin), requests)
    run.passed = 1
    run.finish()
    sys.exit(0)

if callgrind:
    for i in range(runs):
        d1 = callgrind_ir(lambda: fetch(mb << 20))
        d2 = callgrind_ir(lambda: fetch(2 * mb << 20))
        one = callgrind_ir(lambda: h1load(requests))
        two = callgrind_ir(lambda: h1load(2 * requests))  # kept with CALLGRIND_KEEP
        print("  run %d: edge %.0f instructions per small request, %.0f per MiB downloaded"
              % (i + 1, (two - one) / requests, (d2 - d1) / mb), flush=True)
    run.passed = 1
    run.finish()
    sys.exit(0)

if os.environ.get("PERF_OUT"):
    # A cpu-clock profile of the edge during one small-GET run (perf report -i PERF_OUT).
    perf = subprocess.Popen(["perf", "record", "-q", "-F", "2000", "-g", "-o",
                             os.environ["PERF_OUT"], "-p", str(edge.p.pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    small_gets()
    perf.send_signal(2)
    perf.wait(timeout=60)

rows = {"req": [], "gb": []}
for i in range(runs):
    n, e, o, wall, ws, wo = measured(small_gets)
    rows["req"].append((n / wall, 1e6 * e / max(n, 1), 1e6 * o / max(n, 1), ws / max(n, 1),
                        wo / max(n, 1)))
    b, e, o, wall, _, _ = measured(download)
    gb = b / 1e9
    rows["gb"].append((b / wall / 1e6, 1e3 * e / max(gb, 1e-9), 1e3 * o / max(gb, 1e-9)))
    print("  run %d: %.0f req/s, edge %.1f µs/req, origin %.1f µs/req (context switches per "
          "request: edge %.2f, origin %.2f); download %.0f MB/s, edge %.0f ms/GB, origin %.0f "
          "ms/GB" % ((i + 1,) + rows["req"][-1] + rows["gb"][-1]), flush=True)


def med(k, j):
    return statistics.median(r[j] for r in rows[k])


print("median: small GET %.0f req/s, edge %.1f µs/req, origin %.1f µs/req (switches %.2f / "
      "%.2f); download %.0f MB/s, edge %.0f ms/GB, origin %.0f ms/GB"
      % (med("req", 0), med("req", 1), med("req", 2), med("req", 3), med("req", 4), med("gb", 0),
         med("gb", 1), med("gb", 2)))
run.passed = 1
run.finish()
