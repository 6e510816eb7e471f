"""bench/tunnel_connections: download throughput through hearth with 1, 2 and 4 tunnel
connections (origin.toml `connections = N`), beside nginx TLS (S1) as the baseline (issue 3).

The lab of bench/run (bench/py/stacks.py: namespaces "vps" and "home" joined by a veth,
nginx serving /large and /part at home), with only S1 and S4 started. Each round measures
every configuration once, in a rotated order: S1, then S4 with connections = 1, 2, 4 (the
origin is restarted with the new setting before each S4 measurement, and the edge's /status
must show exactly N tunnel connections). Workloads as bench/run's `dl`: curl to /dev/null,
1 stream of /large, and 8 parallel streams of /part (large / 8 each); MB/s = 10^6 bytes /
wall time until the last stream ends. Reports the median over rounds with min and max.

Writes bench/results/tunnel-connections.md and .csv. Needs root.
"""

import argparse
import csv
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads as W  # noqa: E402
from main import ROOT, cpu_busy, wait_quiet  # noqa: E402
from stacks import ADMIN_PORT, Lab, log, stop_on_signals, wait_until  # noqa: E402


def parse():
    p = argparse.ArgumentParser(prog="bench/tunnel_connections", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", default="1,2,4", help="comma list of N (default 1,2,4)")
    p.add_argument("--large-mb", type=int, default=256, help="size of /large in MiB (default 256; /part = 1/8)")
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--log-level", default="warn")
    p.add_argument("--edge-workers", type=int, default=0)
    p.add_argument("--origin-workers", type=int, default=0)
    p.add_argument("--quiet-wait", type=float, default=30.0,
                   help="before each measurement wait up to N s for the machine to be below --quiet-busy")
    p.add_argument("--quiet-busy", type=float, default=0.25)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "tunnel-connections"),
                   help="output path without extension")
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    a.connections = [int(x) for x in a.connections.split(",") if x]
    return a


def set_connections(lab, n):
    path = lab.dir + "/origin.toml"
    with open(path) as f:
        text = f.read()
    text, k = re.subn(r"(?m)^connections\s*=.*$", "connections = %d" % n, text)
    if k != 1:
        raise RuntimeError("origin.toml: expected one `connections =` line, found %d" % k)
    with open(path, "w") as f:
        f.write(text)


def edge_tunnels(lab):
    r = lab.nsexec(lab.ns_vps, ["curl", "-s", "--max-time", "3", "http://127.0.0.1:%d/status" % ADMIN_PORT],
                   check=False)
    return len(json.loads(r.stdout)["tunnels"])


def restart_origin(lab, n, log_level):
    lab.stop("home-origin")
    wait_until(lambda: edge_tunnels(lab) == 0, 15, "the edge to drop the old tunnels")
    set_connections(lab, n)
    lab.start_origin(log_level, wait=False)
    wait_until(lambda: edge_tunnels(lab) == n, 30, "%d tunnel connections at the edge" % n)
    lab.wait_http(lab.url("S4", "/small"), "S4 with connections = %d" % n)


def main():
    a = parse()
    if os.geteuid() != 0:
        sys.exit("bench/tunnel_connections needs root")
    workdir = tempfile.mkdtemp(prefix="hearth-bench-conns.")
    large = a.large_mb << 20
    lab = Lab(ROOT, os.path.abspath(a.bin_dir), workdir, large_bytes=large, part_bytes=large // 8,
              edge_workers=a.edge_workers, origin_workers=a.origin_workers)

    stop_on_signals()

    configs = ["S1"] + ["c%d" % n for n in a.connections]
    rows = []
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    t_start = time.monotonic()
    status = 0
    try:
        lab.setup_network()
        lab.make_cert()
        lab.start_service()
        lab.setup_hearth()
        lab.start_nginx_vps()
        lab.start_edge(a.log_level)
        lab.start_origin(a.log_level)
        lab.wait_http(lab.url("S1", "/small"), "S1")
        for rnd in range(1, a.rounds + 1):
            order = configs[rnd - 1:] + configs[:rnd - 1]
            for c in order:
                stack = "S1" if c == "S1" else "S4"
                if c != "S1":
                    restart_origin(lab, int(c[1:]), a.log_level)
                for par in (1, 8):
                    busy = wait_quiet(a.quiet_wait, a.quiet_busy) if a.quiet_wait > 0 else cpu_busy()
                    try:
                        res = W.download(lab, stack, par)
                        mbs = res["mbs"]
                    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
                        log("round %d %s x%d FAILED: %s" % (rnd, c, par, e))
                        mbs = None
                    rows.append(dict(round=rnd, config=c, streams=par,
                                     mbs=None if mbs is None else round(mbs, 1), busy_before=round(busy, 2)))
                    log("round %d %s %d stream(s): %s MB/s (machine busy before: %.0f%%)" % (
                        rnd, c, par, rows[-1]["mbs"], busy * 100))
        log("done in %.0f s" % (time.monotonic() - t_start))
    except KeyboardInterrupt as e:
        log("interrupted (%s): writing what was measured" % e)
        status = 130
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        status = 1
    finally:
        log("stopping everything")
        lab.cleanup()
        if a.keep:
            log("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if rows:
        write(a, rows, configs, started, time.monotonic() - t_start)
    return status


def write(a, rows, configs, started, duration):
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["round", "config", "streams", "mbs", "busy_before"])
        w.writeheader()
        w.writerows(rows)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    label = {"S1": "S1 nginx TLS (no tunnel, baseline)"}
    for c in configs[1:]:
        label[c] = "S4 hearth, connections = %s" % c[1:]

    def med(c, par):
        v = [r["mbs"] for r in rows if r["config"] == c and r["streams"] == par and r["mbs"] is not None]
        return (statistics.median(v), min(v), max(v), len(v)) if v else None

    lines = ["# Throughput by tunnel connections (issue 3)", "",
             "Generated by `bench/tunnel_connections` on %s (%.0f s), commit %s, binaries %s; %d round(s), "
             "/large = %d MiB, /part = %d MiB; hearth-edge workers %s, hearth-origin workers %s. "
             "Every sample: `tunnel-connections.csv`." % (
                 started, duration, commit, a.bin_dir, a.rounds, a.large_mb, a.large_mb // 8,
                 a.edge_workers or "one per core", a.origin_workers or "one per core"), "",
             "| configuration | 1 stream, MB/s (median) | min–max | vs S1 | 8 parallel, MB/s (median) | min–max | vs S1 |",
             "|---|---:|---|---:|---:|---|---:|"]
    base = {par: med("S1", par) for par in (1, 8)}
    for c in configs:
        cells = [label[c]]
        for par in (1, 8):
            m = med(c, par)
            if not m:
                cells += ["—", "—", "—"]
                continue
            ratio = "%.2f×" % (m[0] / base[par][0]) if base[par] else "—"
            cells += ["%.0f" % m[0], "%.0f–%.0f" % (m[1], m[2]), ratio]
        lines.append("| " + " | ".join(cells) + " |")
    busy = sorted(r["busy_before"] for r in rows)
    lines += ["", "CPU busy before a measurement (rest of the machine, fraction of all cores): median %.0f %%, "
              "max %.0f %%." % (100 * busy[len(busy) // 2], 100 * busy[-1])]
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    log("wrote %s.md and %s.csv" % (a.out, a.out))


if __name__ == "__main__":
    sys.exit(main())
