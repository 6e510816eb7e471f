#!/usr/bin/env python3
"""Issue 11: what the VPS pays, quickly, on loopback. One edge/origin/service stack
(the Python sample service), and for each workload the user+system CPU time of
hearth-edge (the VPS side) and hearth-origin (the home side), read from /proc:

  - small GETs: wrk (2 threads, 20 connections, HTTPS keep-alive, GET /status/204),
    CPU µs per request;
  - one large download: curl of --mb MiB through the tunnel, CPU ms per GB and MB/s.

    /usr/bin/python3 bench/vps_cost.py --bin-dir build/bin [--runs 3] [--duration 5] [--mb 256]

For a before/after, run it on two bin dirs one after the other, several times
(the machine's load moves both alike then). bench/run gives the same rows against
nginx stacks in network namespaces; this is the quick loop for a data-path change.
"""

import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Harness, TestRun  # noqa: E402

opts = {}
for flag in ("--runs", "--duration", "--mb"):
    if flag in sys.argv:
        i = sys.argv.index(flag)
        opts[flag] = sys.argv[i + 1]
        del sys.argv[i:i + 2]
runs = int(opts.get("--runs", 3))
duration = int(opts.get("--duration", 5))
mb = int(opts.get("--mb", 256))

run = TestRun("bench_vps_cost")
h = Harness(run)
svc = h.start_service("A")
h.write_edge_config()
edge = h.start_edge()
origin = h.start_origin(h.pair_origin([("app.test", None, svc.http_url)]))
h.wait_ready(origin=origin)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(p):
    with open("/proc/%d/stat" % p.p.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measured(fn):
    e0, o0, t0 = cpu_s(edge), cpu_s(origin), time.monotonic()
    units = fn()
    return units, cpu_s(edge) - e0, cpu_s(origin) - o0, time.monotonic() - t0


def small_gets():
    argv = ["wrk", "-t", "2", "-c", "20", "-d", "%ds" % duration, "-H", "Host: app.test",
            "https://127.0.0.1:%d/status/204" % h.https_port]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    m = re.search(r"(\d+) requests in", out)
    return int(m.group(1)) if m else 0


def download():
    n = mb << 20
    r = h.curl("-o", "/dev/null", "-w", "%{size_download}", h.url("/download?bytes=%d" % n),
               timeout=600)
    return int(r.stdout or 0)


rows = {"req": [], "gb": []}
for i in range(runs):
    n, e, o, wall = measured(small_gets)
    rows["req"].append((n / wall, 1e6 * e / max(n, 1), 1e6 * o / max(n, 1)))
    b, e, o, wall = measured(download)
    gb = b / 1e9
    rows["gb"].append((b / wall / 1e6, 1e3 * e / max(gb, 1e-9), 1e3 * o / max(gb, 1e-9)))
    print("  run %d: %.0f req/s, edge %.1f µs/req, origin %.1f µs/req; download %.0f MB/s, "
          "edge %.0f ms/GB, origin %.0f ms/GB" % ((i + 1,) + rows["req"][-1] + rows["gb"][-1]),
          flush=True)


def med(k, j):
    return statistics.median(r[j] for r in rows[k])


print("median: small GET %.0f req/s, edge %.1f µs/req, origin %.1f µs/req; "
      "download %.0f MB/s, edge %.0f ms/GB, origin %.0f ms/GB"
      % (med("req", 0), med("req", 1), med("req", 2), med("gb", 0), med("gb", 1), med("gb", 2)))
run.passed = 1
run.finish()
