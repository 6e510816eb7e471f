"""bench/run: hearth against the stacks users run today (issue 4). See bench/run --help."""

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402
import workloads as W  # noqa: E402
from stacks import STACKS, Lab, log, stop_on_signals  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKLOADS = ["https", "h2", "dl", "ws", "probe", "busy", "idle", "recovery"]

PRESETS = {
    # seconds of wrk per stack, download sizes, WebSocket windows, idle connections, rounds
    "quick": dict(rounds=1, wrk_s=3, large_mb=256, ws_s=3, probe_s=3, busy_s=4, idle_conns=2000),
    "full": dict(rounds=3, wrk_s=10, large_mb=1024, ws_s=10, probe_s=8, busy_s=10, idle_conns=10000),
}


def parse():
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a few minutes: 1 round, short windows, 2,000 idle sockets")
    p.add_argument("--rounds", type=int)
    p.add_argument("--stacks", default=",".join(STACKS), help="comma list, default all: S0,S1,S2,S3,S4")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list of " + ",".join(WORKLOADS))
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--log-level", default="warn", help="hearth's --log-level (default warn: no per-request lines)")
    p.add_argument("--nginx-keepalive", type=int, default=64,
                   help="nginx upstream keepalive pool (default 64, as seed 000; 0 = a connection per request)")
    p.add_argument("--edge-workers", type=int, default=0, help="hearth-edge `workers` (default 0 = one per core)")
    p.add_argument("--origin-workers", type=int, default=0, help="hearth-origin `workers` (default 0 = one per core)")
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--wrk-conns", type=int, default=64)
    p.add_argument("--ws-sockets", type=int, default=1000)
    p.add_argument("--ws-procs", type=int, default=2, help="node client processes for the 1,000-socket echo")
    p.add_argument("--idle-conns", type=int)
    p.add_argument("--large-mb", type=int, help="size of /large in MiB (quick 256, full 1024)")
    p.add_argument("--busy-downloads", type=int, default=1, help="downloads kept running during 'busy'")
    p.add_argument("--docs", dest="docs", action="store_true", default=None,
                   help="update docs/benchmarks.md (default: in full mode only)")
    p.add_argument("--no-docs", dest="docs", action="store_false")
    p.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    p.add_argument("--quiet-wait", type=float, default=120.0,
                   help="before each measurement wait up to this many seconds for the rest of the "
                        "machine to be idle (CPU busy < --quiet-busy); 0 = never wait")
    p.add_argument("--quiet-busy", type=float, default=0.25, help="fraction of all cores (default 0.25)")
    a = p.parse_args()
    preset = dict(PRESETS["quick" if a.quick else "full"])
    if a.rounds:
        preset["rounds"] = a.rounds
    if a.idle_conns:
        preset["idle_conns"] = a.idle_conns
    if a.large_mb:
        preset["large_mb"] = a.large_mb
    a.preset = preset
    a.mode = "quick" if a.quick else "full"
    a.stacks = [s.strip() for s in a.stacks.split(",") if s.strip()]
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    for s in a.stacks:
        if s not in STACKS:
            p.error("unknown stack %s" % s)
    for w in a.workloads:
        if w not in WORKLOADS:
            p.error("unknown workload %s" % w)
    if a.docs is None:
        a.docs = a.mode == "full"
    return a


def version(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def build_type(bin_dir):
    try:
        built = time.strftime("built %Y-%m-%d %H:%M", time.localtime(
            os.stat(os.path.join(bin_dir, "hearth-edge")).st_mtime))
    except OSError:
        built = "?"
    return built + ", " + _build_type(bin_dir)


def _build_type(bin_dir):
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(bin_dir)), "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    t = line.split("=", 1)[1].strip()
                    return {"Release": "Release -O3", "RelWithDebInfo": "RelWithDebInfo -O2 -g"}.get(t, t)
    except OSError:
        pass
    return "build type unknown"


def machine(a):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    osname = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "CPU": "%s, %d cores, %.0f GiB" % (cpu, os.cpu_count(), mem),
        "OS": "%s, kernel %s" % (osname, platform.release()),
        "load average at start": " ".join("%.2f" % x for x in os.getloadavg()),
        "hearth": "%s (%s, %s)" % (version([a.bin_dir + "/hearth-edge", "--version"]), a.bin_dir, build_type(a.bin_dir)),
        "nginx": version(["nginx", "-v"]),
        "OpenSSH": version(["ssh", "-V"]),
        "wireguard-go": version(["wireguard-go", "--version"]),
        "OpenSSL": version(["openssl", "version"]),
        "wrk": version(["wrk", "--version"]),
        "node": version(["node", "--version"]),
        "curl": version(["curl", "--version"]),
    }


def params_md(a):
    p = a.preset
    return "\n".join([
        "- small GET: `wrk --latency -t%d -c%d -d%ds` on a %d-byte page, keep-alive; hearth runs with "
        "`--log-level %s` (no per-request log lines)." % (a.wrk_threads, a.wrk_conns, p["wrk_s"], 512, a.log_level),
        "- downloads: curl to /dev/null; 1 stream of %d MiB, and 8 parallel streams of %d MiB each; MB/s = "
        "10^6 bytes / s of wall time until the last stream ends." % (p["large_mb"], p["large_mb"] // 8),
        "- WS echo: %d sockets over %d node `ws` clients, closed loop (next message right after the echo), "
        "64-byte binary messages, %d s measured after 1 s warm-up." % (a.ws_sockets, a.ws_procs, p["ws_s"]),
        "- WS RTT idle: 10 sockets, one 64-byte message per socket every 10 ms, %d s." % p["probe_s"],
        "- WS RTT while a download saturates: the same probe for %d s while %d curl download(s) of /large "
        "run back to back through the same stack." % (p["busy_s"], a.busy_downloads),
        "- idle WSS: %d connections (4 node clients), one echo each, then idle; VPS-side RSS (median of 5 "
        "samples) minus its baseline just before, over the number of connections. VPS side = nginx master + "
        "workers (S1-S3), + sshd and its session processes (S2), + wireguard-go (S3); hearth-edge (S4). "
        "Processes are restarted before each measurement so every stack starts from a fresh heap." % p["idle_conns"],
        "- recovery: stop the home side cleanly (ssh / wireguard-go / hearth-origin), then a poller opens a "
        "new HTTPS connection every 10 ms; time from starting the home side again to the first 200.",
        "- nginx upstream keepalive pool: %d; hearth workers: edge %s, origin %s." % (
            a.nginx_keepalive, a.edge_workers or "one per core", a.origin_workers or "one per core"),
    ])


def cpu_busy(interval=0.5):
    """Fraction of all cores busy over `interval` (from /proc/stat)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v), idle
    t0, i0 = snap()
    time.sleep(interval)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(limit, threshold):
    """Other sessions share this machine: wait (bounded) until it is idle before measuring.
    Returns the last busy fraction seen, recorded beside each sample."""
    deadline = time.monotonic() + limit
    busy = cpu_busy()
    waited = False
    while busy > threshold and time.monotonic() < deadline:
        if not waited:
            log("machine busy (%.0f%% of all cores): waiting up to %.0f s" % (busy * 100, limit))
            waited = True
        time.sleep(1.0)
        busy = cpu_busy()
    return busy


def main():
    a = parse()
    if os.geteuid() != 0:
        sys.exit("bench/run needs root (network namespaces)")
    for exe in ("hearth-edge", "hearth-origin"):
        if not os.access(os.path.join(a.bin_dir, exe), os.X_OK):
            sys.exit("%s/%s not found: build first (scripts/build.sh)" % (a.bin_dir, exe))
    p = a.preset
    workdir = tempfile.mkdtemp(prefix="hearth-bench.")
    large = p["large_mb"] << 20
    lab = Lab(ROOT, os.path.abspath(a.bin_dir), workdir, large_bytes=large, part_bytes=large // 8,
              edge_workers=a.edge_workers, origin_workers=a.origin_workers)

    stop_on_signals()

    samples = []
    raw_path = os.path.join(workdir, "samples.tsv")
    status = 0
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "mode": a.mode,
            "rounds": p["rounds"], "machine": machine(a),
            "commit": "commit " + version(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])}
    t_start = time.monotonic()
    try:
        log("work directory %s; namespaces %s, %s" % (workdir, lab.ns_vps, lab.ns_home))
        lab.up(a.log_level, a.nginx_keepalive)
        log("all stacks answer; warming up")
        for s in a.stacks:
            W.wrk(lab, s, a.wrk_threads, a.wrk_conns, 1, workdir)

        def record(rnd, stack, wl, res):
            for k, v in res.items():
                samples.append((rnd, stack, "%s.%s" % (wl, k), v))
                with open(raw_path, "a") as f:
                    f.write("%d\t%s\t%s.%s\t%s\n" % (rnd, stack, wl, k, v))
            log("round %d %s %s: %s" % (rnd, stack, wl, ", ".join(
                "%s=%.4g" % (k, v) for k, v in res.items() if v is not None)))

        def measure(wl, s):
            """One sample of workload wl on stack s: [(name, {metric: value})], [] if n/a."""
            if wl == "https":
                return [("https", W.per_request_cpu(W.with_cpu(lab, s, lambda: W.wrk(
                    lab, s, a.wrk_threads, a.wrk_conns, p["wrk_s"], workdir))))]
            if wl == "h2" and s != "S0":  # S0 is plain HTTP
                return [("h2", W.h2load(lab, s, 64, 10, p["wrk_s"], workdir))]
            if wl == "dl":
                return [("dl1", W.per_gb_cpu(W.with_cpu(lab, s, lambda: W.download(lab, s, 1)))),
                        ("dl8", W.per_gb_cpu(W.with_cpu(lab, s, lambda: W.download(lab, s, 8))))]
            if wl == "ws":
                return [("ws", W.ws_echo(lab, s, a.ws_sockets, a.ws_procs, p["ws_s"]))]
            if wl == "probe":
                return [("probe", W.ws_echo(lab, s, 10, 1, p["probe_s"], interval_ms=10))]
            if wl == "busy":
                bg = W.BackgroundDownloads(lab, s, a.busy_downloads, p["busy_s"] + 1.5)
                return [("busy", W.ws_echo(lab, s, 10, 1, p["busy_s"], interval_ms=10, background=bg))]
            if wl == "idle" and s != "S0":  # S0 has no VPS side
                restart_vps_side(lab, s, a)
                return [("idle", W.idle_memory(lab, s, p["idle_conns"], 4))]
            if wl == "recovery" and s not in ("S0", "S1"):  # no tunnel
                return [("recovery", W.recovery(lab, s, a.log_level))]
            return []

        for rnd in range(1, p["rounds"] + 1):
            order = a.stacks[rnd - 1:] + a.stacks[:rnd - 1]  # rotate: no stack always goes first
            for wl in a.workloads:
                for s in order:
                    for attempt in (1, 2):
                        busy = wait_quiet(a.quiet_wait, a.quiet_busy) if a.quiet_wait > 0 else cpu_busy()
                        healed = lab.heal(a.log_level, a.nginx_keepalive)
                        if healed:
                            meta.setdefault("healed", []).append("round %d before %s %s: %s" % (
                                rnd, wl, s, ", ".join(healed)))
                        try:
                            out = measure(wl, s)
                        except (RuntimeError, TimeoutError, ValueError, OSError,
                                subprocess.SubprocessError, KeyError) as e:
                            # One failed sample must not lose a 30-minute run: report it,
                            # leave the cell empty (or to the other rounds) and go on.
                            log("round %d %s %s FAILED: %s" % (rnd, s, wl, e))
                            meta.setdefault("failed", []).append("round %d %s %s: %s" % (
                                rnd, wl, s, str(e).splitlines()[0][:200]))
                            try:
                                lab.diagnose()
                                lab.heal(a.log_level, a.nginx_keepalive)
                            except Exception as e2:  # noqa: BLE001
                                log("could not recover from it: %s" % e2)
                                raise
                            out = []
                            break
                        # recovery stops and starts the home side itself; anything else
                        # that died during the measurement makes it worthless.
                        dead = [n for n, pr in lab.procs.items() if not pr.alive()]
                        if dead and attempt == 1:
                            log("round %d %s %s: %s died during the measurement: measuring again" % (
                                rnd, s, wl, ", ".join(dead)))
                            continue
                        break
                    samples.append((rnd, s, "ctx.busy_before", busy))
                    for name, res in out:
                        record(rnd, s, name, res)
        log("done in %.0f s" % (time.monotonic() - t_start))
    except KeyboardInterrupt as e:
        log("interrupted (%s): writing what was measured" % e)
        status = 130
    except Exception:  # noqa: BLE001 - report, clean up, keep partial results
        traceback.print_exc()
        try:
            lab.diagnose()
        except Exception as e:  # noqa: BLE001
            log("diagnose: %s" % e)
        status = 1
    finally:
        log("stopping everything")
        lab.cleanup()
    if samples:
        meta["duration"] = "%.0f s" % (time.monotonic() - t_start)
        meta["machine"]["run time"] = meta["duration"]
        busy = sorted(v for _, _, k, v in samples if k == "ctx.busy_before")
        if busy:
            meta["machine"]["CPU busy before a measurement (median, max)"] = "%.0f %%, %.0f %%" % (
                100 * busy[len(busy) // 2], 100 * busy[-1])
        if meta.get("failed"):
            meta["machine"]["failed samples"] = "; ".join(meta["failed"])
        if meta.get("healed"):
            meta["machine"]["processes found dead and restarted"] = "; ".join(meta["healed"])
        table, summary, _ = report.write_all(a.out_dir, samples, meta, params_md(a))
        print(table)
        print()
        print(summary)
        log("wrote %s/latest.{md,csv,png} and latest-raw.csv" % a.out_dir)
        if a.docs and status == 0:
            section = ["Latest run: %s, %s mode, %s round(s), %s, on %s. Generated by `bench/run`; "
                       "the same table is in `bench/results/latest.md`, every sample in "
                       "`bench/results/latest-raw.csv`." % (meta["date"], a.mode, p["rounds"], meta["commit"],
                                                           meta["machine"]["CPU"]),
                       "", table, "", summary, "", "![latest chart](../bench/results/latest.png)"]
            if report.update_docs(os.path.join(ROOT, "docs", "benchmarks.md"), "\n".join(section)):
                log("updated docs/benchmarks.md")
    if a.keep:
        log("kept %s" % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


def restart_vps_side(lab, s, a):
    """Fresh VPS-side processes for the memory figure (see params_md)."""
    if s in ("S1", "S2", "S3"):
        lab.stop("vps-nginx")
        lab.start_nginx_vps(a.nginx_keepalive)
    if s == "S2":
        lab.stop_ssh_client()
        lab.start_ssh_client()
    if s == "S3":
        # A new VPS-side wireguard-go knows no endpoint for home and home keeps using its
        # old session for up to 2 minutes: restart home's too, as a user would.
        lab.stop_wg("home")
        lab.stop_wg("vps")
        lab.start_wg("vps")
        lab.start_wg("home")
    if s == "S4":
        lab.stop("vps-edge")
        lab.start_edge(a.log_level)
    lab.wait_http(lab.url(s, "/small"), "%s after a VPS-side restart" % s)


if __name__ == "__main__":
    sys.exit(main())
