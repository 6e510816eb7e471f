#!/usr/bin/env python3
"""Issue 9 benchmark: small-GET req/s through hearth with a policy that never
refuses (rate limit + security headers + Basic auth) beside the same requests
with no policy, on one edge/origin/service stack (hosts p.app.test and
n.app.test, the same request otherwise), wrk interleaved A/B runs. Prints the
medians and ratios of req/s and of the edge's own CPU time per request
(user+system from /proc), which varies far less between runs on a shared
machine than req/s does.

    /usr/bin/python3 bench/policies.py [--bin-dir build/bin] [--runs 4] [--duration 5]

About runs * 2 * duration + 10 s of machine time (default ~50 s).
"""

import ctypes
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Harness, TestRun  # noqa: E402

extra = []
for flag in ("--runs", "--duration"):
    if flag in sys.argv:
        i = sys.argv.index(flag)
        extra.append((flag, sys.argv[i + 1]))
        del sys.argv[i:i + 2]
opts = dict(extra)
runs = int(opts.get("--runs", 4))
duration = int(opts.get("--duration", 5))

run = TestRun("bench_policies")
h = Harness(run)
lib = ctypes.CDLL("libcrypt.so.1")
lib.crypt_gensalt.restype = ctypes.c_char_p
lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
lib.crypt.restype = ctypes.c_char_p
lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
with open(h.path("htpasswd"), "w") as f:
    f.write("bench:%s\n" % lib.crypt(b"pw", lib.crypt_gensalt(b"$y$", 0, None, 0)).decode())
svc = h.start_service("A")
h.write_edge_config(extra_edge="max_connections_per_ip = 1000")
with open(h.edge_conf, "a") as f:
    f.write('\n[[policies]]\nhost = "p.app.test"\nrate = "1000000/s"\nburst = 1000000\n'
            'security_headers = true\nbasic_auth_file = "%s"\n' % h.path("htpasswd"))
edge = h.start_edge()
origin = h.start_origin(h.pair_origin([("app.test", None, svc.http_url),
                                       ("*.app.test", None, svc.http_url)]))
h.wait_ready(origin=origin)
AUTH = "Basic YmVuY2g6cHc="  # bench:pw


TICK = os.sysconf("SC_CLK_TCK")


def edge_cpu_s():
    """user+system CPU seconds of hearth-edge so far (from /proc)."""
    with open("/proc/%d/stat" % edge.p.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wrk(host, auth):
    argv = ["wrk", "-t", "2", "-c", "20", "-d", "%ds" % duration, "-H", "Host: %s" % host]
    if auth:
        argv += ["-H", "Authorization: %s" % auth]
    argv.append("https://127.0.0.1:%d/status/204" % h.https_port)
    cpu0 = edge_cpu_s()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    cpu = edge_cpu_s() - cpu0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if total and int(total.group(1)):
        cpu_us[host].append(cpu * 1e6 / int(total.group(1)))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print("  %s: %s non-2xx responses!" % (host, non2xx.group(1)))
    return float(m.group(1)) if m else 0.0


# The same request both ways (a subdomain through the wildcard route, the same
# Authorization header), so the difference is the policy alone.
cpu_us = {"n.app.test": [], "p.app.test": []}  # edge CPU µs per request, per run
wrk("n.app.test", AUTH)  # warm-up
cpu_us["n.app.test"].clear()
plain, policy = [], []
for i in range(runs):
    plain.append(wrk("n.app.test", AUTH))
    policy.append(wrk("p.app.test", AUTH))
    print("  run %d: no policy %.0f req/s, %.1f edge CPU us/req; policy %.0f req/s, %.1f us/req"
          % (i + 1, plain[-1], cpu_us["n.app.test"][-1], policy[-1], cpu_us["p.app.test"][-1]))
a, b = statistics.median(plain), statistics.median(policy)
print("median: no policy %.0f req/s, with policy %.0f req/s, ratio %.3f" % (a, b, b / a))
ca, cb = statistics.median(cpu_us["n.app.test"]), statistics.median(cpu_us["p.app.test"])
print("median edge CPU per request: no policy %.1f us, with policy %.1f us, ratio %.3f"
      % (ca, cb, cb / ca))
run.passed = 1
run.finish()
