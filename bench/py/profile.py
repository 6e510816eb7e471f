"""bench/profile: where hearth spends CPU and memory, on the bench/run lab.

For each phase (small GETs with wrk, one large download, WebSocket echo) it runs the load
through S4 (and, for comparison, the CPU accounting through S1 and S2), and records:
  - CPU time per request / per MB of every process on the path (utime+stime from /proc);
  - a flat perf profile (cpu-clock, no hardware counters needed) of hearth-edge and
    hearth-origin: the top symbols by self time.
Then heaptrack on hearth-edge while N idle WSS connections are held: the allocation sites
that hold the memory at the peak.

    bench/profile [--seconds 8] [--idle 2000] [--out bench/results/profile]

Writes text files into --out (summary.md, perf-*.txt, heaptrack-edge.txt).
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads as W  # noqa: E402
from stacks import Lab, descendants, log  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
cpu_s = W.cpu_s  # user+system CPU seconds of pids (workloads.py)


def groups(lab, stack):
    """Processes on the path, by role."""
    g = {"service": descendants(lab.procs["svc-nginx"].pid) + [lab.procs["svc-ws"].pid]}
    if stack in ("S1", "S2", "S3"):
        g["vps nginx"] = descendants(lab.procs["vps-nginx"].pid)
    if stack == "S2":
        g["sshd"] = lab.sshd_pids()
        g["ssh (home)"] = [lab.procs["home-ssh"].pid]
    if stack == "S3":
        g["wireguard-go vps"] = [lab.procs["vps-wg"].pid]
        g["wireguard-go home"] = [lab.procs["home-wg"].pid]
    if stack == "S4":
        g["hearth-edge"] = [lab.procs["vps-edge"].pid]
        g["hearth-origin"] = [lab.procs["home-origin"].pid]
    return g


def accounted(lab, stack, run):
    g = groups(lab, stack)
    before = {k: cpu_s(v) for k, v in g.items()}
    t0 = time.monotonic()
    res = run()
    wall = time.monotonic() - t0
    after = {k: cpu_s(v) for k, v in g.items()}
    return res, wall, {k: after[k] - before[k] for k in g}


def perf_top(out_path, pids, seconds_fn):
    """perf record (cpu-clock) on pids while seconds_fn() runs; flat report by symbol."""
    data = out_path + ".data"
    rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-o", data,
                            "-p", ",".join(str(p) for p in pids)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        res = seconds_fn()
    finally:
        rec.send_signal(2)
        rec.wait(60)
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort",
                          "comm,dso,sym", "--percent-limit", "0.5"], capture_output=True, text=True)
    with open(out_path, "w") as f:
        f.write(rep.stdout)
    os.unlink(data)
    return res


def fmt_cpu(cpu, wall, units, unit_name):
    rows = []
    for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]):
        rows.append("| %s | %.2f | %.0f%% | %.1f |" % (k, v, 100 * v / wall, 1e6 * v / max(units, 1)))
    return ("| process | CPU s | of one core | CPU µs per %s |\n|---|---:|---:|---:|\n" % unit_name) + "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(prog="bench/profile")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "profile"))
    ap.add_argument("--only-heap", action="store_true", help="skip the CPU phases")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="hearth-profile.")
    lab = Lab(ROOT, os.path.abspath(a.bin_dir), workdir, large_bytes=512 << 20, part_bytes=64 << 20)
    md = ["# hearth profile", "", "Written by `bench/profile` on %s. Load through S4 (hearth) and, "
          "for comparison, S1 (nginx TLS, no tunnel) and S2 (nginx + ssh -R); CPU from /proc "
          "(utime+stime) of every process on the path; perf = cpu-clock samples, flat by symbol." %
          time.strftime("%Y-%m-%d %H:%M"), ""]
    try:
        lab.up("warn", 64)
        for s in ("S1", "S2", "S4"):
            W.wrk(lab, s, 2, 64, 1, workdir)
        phases = [] if a.only_heap else ["https", "download", "ws"]
        # 1. small GETs
        md += ["## Small HTTPS GETs (wrk -t2 -c64, %d s)" % a.seconds, ""]
        for s in ("S1", "S2", "S4") if "https" in phases else ():
            def run(s=s):
                return W.wrk(lab, s, 2, 64, a.seconds, workdir)
            if s == "S4":
                pids = [lab.procs["vps-edge"].pid, lab.procs["home-origin"].pid]
                res, wall, cpu = accounted(lab, s, lambda: perf_top(os.path.join(a.out, "perf-https.txt"), pids, run))
            else:
                res, wall, cpu = accounted(lab, s, run)
            n = res["rps"] * a.seconds
            md += ["%s: %.0f req/s, p99 %.1f ms" % (s, res["rps"], res["p99_ms"]), "",
                   fmt_cpu(cpu, wall, n, "request"), ""]
        # 2. one large download
        md += ["## One large download (512 MiB)", ""]
        for s in ("S1", "S2", "S4") if "download" in phases else ():
            def run(s=s):
                return W.download(lab, s, 1)
            if s == "S4":
                pids = [lab.procs["vps-edge"].pid, lab.procs["home-origin"].pid]
                res, wall, cpu = accounted(lab, s, lambda: perf_top(os.path.join(a.out, "perf-download.txt"), pids, run))
            else:
                res, wall, cpu = accounted(lab, s, run)
            md += ["%s: %.0f MB/s" % (s, res["mbs"]), "", fmt_cpu(cpu, wall, 512 << 20 >> 20, "MiB"), ""]
        # 3. WebSocket echo, 1,000 sockets
        md += ["## WebSocket echo, 1,000 sockets (%d s)" % a.seconds, ""]
        for s in ("S1", "S2", "S4") if "ws" in phases else ():
            def run(s=s):
                return W.ws_echo(lab, s, 1000, 2, a.seconds)
            if s == "S4":
                pids = [lab.procs["vps-edge"].pid, lab.procs["home-origin"].pid]
                res, wall, cpu = accounted(lab, s, lambda: perf_top(os.path.join(a.out, "perf-ws.txt"), pids, run))
            else:
                res, wall, cpu = accounted(lab, s, run)
            md += ["%s: %.0f msg/s, p99 %.1f ms" % (s, res["msgs"], res["p99_ms"]), "",
                   fmt_cpu(cpu, wall, res["msgs"] * (a.seconds + 1), "message"), ""]
        # 4. heaptrack on the edge with idle WSS connections
        if shutil.which("heaptrack"):
            lab.stop("vps-edge")
            prefix = os.path.join(workdir, "heaptrack-edge")
            lab.spawn("vps-edge", lab.ns_vps, ["heaptrack", "-o", prefix, lab.bin_dir + "/hearth-edge",
                                               "run", "--config", workdir + "/edge.toml", "--log-level", "warn"])
            lab.wait_http(lab.url("S4", "/small"), "edge under heaptrack", timeout=60)
            res = W.idle_memory(lab, "S4", a.idle, 4)
            md += ["## Idle WSS under heaptrack (%d connections held)" % a.idle, ""]
            del res  # RSS here is heaptrack's wrapper script, not the edge: see bench/run
            # heaptrack's child is the edge; SIGTERM the edge itself so heaptrack writes out.
            edge_pids = [p for p in descendants(lab.procs["vps-edge"].pid)
                         if p != lab.procs["vps-edge"].pid]
            for p in edge_pids:
                try:
                    os.kill(p, 15)
                except OSError:
                    pass
            lab.procs["vps-edge"].popen.wait(60)
            lab.procs.pop("vps-edge")
            files = glob.glob(prefix + "*")
            if files:
                rep = subprocess.run(["heaptrack_print", "--print-peaks", "1", "--print-allocators", "0",
                                      "--print-temporary", "0", "--print-leaks", "0", "--peak-limit", "25",
                                      "-f", files[0]], capture_output=True, text=True)
                with open(os.path.join(a.out, "heaptrack-edge.txt"), "w") as f:
                    f.write(rep.stdout[:300000])  # the biggest consumers come first
                md += ["Peak consumers: `heaptrack-edge.txt`.", ""]
    finally:
        lab.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    with open(os.path.join(a.out, "summary-heap.md" if a.only_heap else "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
