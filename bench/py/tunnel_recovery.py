"""bench/tunnel_recovery: how long hearth takes to serve again after the tunnel breaks (issue 3).

Topology: the CGNAT namespaces of tests/integration/netns.py (imported, not copied):
edge and client on the "internet" bridge, the origin behind a masquerading nftables
router, the sample home service (tests/integration/home_service.py) next to the origin.
Edge and origin are paired with invite/join (connections = 2, as `join` writes it).

Settings variants (both sides):
  default  keepalive_interval 10 s, keepalive_timeout 30 s, every other setting default
           (connect_timeout 10 s, reconnect 100 ms .. 30 s)
  short    keepalive_interval 1 s, keepalive_timeout 3 s, origin connect_timeout 2 s,
           reconnect 100 ms .. 1 s (the settings of tests/integration/test_chaos_netns.py)

Scenarios, each repeated N times (edge and origin healthy before each repetition):
  blackhole  nft drop of the tunnel port on the router, both ways, no RST; held until
             the origin has logged tunnel.down for every tunnel connection, then
             --hold-extra seconds more; then removed. Measured: removal -> first 200.
  link       the router's WAN veth down; held the same way; up. Measured: up -> first 200.
  sigkill    origin SIGKILL, --restart-gap seconds, origin started again.
             Measured: start -> first 200.
  sigterm    origin SIGTERM (drain; nothing in flight), wait for its exit, --restart-gap
             seconds, origin started again. Measured: start -> first 200.

"First 200": from the instant of the event, a client in the client namespace starts a
new HTTPS connection (GET /headers) every --poll-ms ms, attempts overlapping (each
bounded by 2 s), and the time of the first 200 received is taken. The resolution is
therefore about --poll-ms plus one request.

Writes bench/results/tunnel-recovery.md and .csv (every sample). Needs root.
"""

import argparse
import csv
import datetime
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)  # bench/py: stacks.py

import harness  # noqa: E402
from harness import Harness  # noqa: E402
from netns import (EDGE_IP, NsHTTPSConnection, Topology, netns_available, ns_request,  # noqa: E402
                   remove_stale_namespaces)
from stacks import stop_on_signals  # noqa: E402

HTTPS, HTTP, TUNNEL, ADMIN = 8443, 8080, 7443, 9901
SCENARIOS = ["blackhole", "link", "sigkill", "sigterm"]
VARIANTS = {
    "default": dict(edge="", origin=[]),
    "short": dict(edge='keepalive_interval = "1s"\nkeepalive_timeout = "3s"\n',
                  origin=[("keepalive_interval", '"1s"'), ("keepalive_timeout", '"3s"'),
                          ("connect_timeout", '"2s"'), ("reconnect_min", '"100ms"'),
                          ("reconnect_max", '"1s"')]),
}
VARIANT_TEXT = {
    "default": "keepalive 10 s / 30 s, connect_timeout 10 s, reconnect 100 ms..30 s: all defaults",
    "short": "keepalive 1 s / 3 s, connect_timeout 2 s, reconnect 100 ms..1 s",
}


def log(msg):
    print("tunnel_recovery: " + msg, file=sys.stderr, flush=True)


def parse():
    p = argparse.ArgumentParser(prog="bench/tunnel_recovery", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--repeat", type=int, default=5, help="repetitions of each measurement (default 5)")
    p.add_argument("--variants", default="default,short", help="comma list of default,short")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list of " + ",".join(SCENARIOS))
    p.add_argument("--hold-extra", type=float, default=1.0,
                   help="seconds the blackhole / link-down is held after the origin declared every "
                        "tunnel connection dead (default 1)")
    p.add_argument("--restart-gap", type=float, default=1.0,
                   help="seconds between the origin's exit and its restart (default 1)")
    p.add_argument("--poll-ms", type=float, default=20.0, help="a new client attempt every N ms (default 20)")
    p.add_argument("--bound", type=float, default=90.0, help="give up on a recovery after N s (default 90)")
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "tunnel-recovery"),
                   help="output path without extension (default bench/results/tunnel-recovery)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, JSON logs)")
    a = p.parse_args()
    a.variants = [v for v in a.variants.split(",") if v]
    a.scenarios = [s for s in a.scenarios.split(",") if s]
    for v in a.variants:
        if v not in VARIANTS:
            p.error("unknown variant %s" % v)
    for s in a.scenarios:
        if s not in SCENARIOS:
            p.error("unknown scenario %s" % s)
    return a


class _Run:
    """What harness.Harness needs from a TestRun, without its argument parsing."""

    def __init__(self, bin_dir, keep):
        self.title = "tunnel_recovery"
        self.bin_dir = os.path.abspath(bin_dir)
        self.args = SimpleNamespace(keep=keep)
        self.cleanups = []

    def bin(self, name):
        return os.path.join(self.bin_dir, name)

    def on_cleanup(self, fn):
        self.cleanups.append(fn)

    def cleanup(self):
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception:  # noqa: BLE001 - keep cleaning up
                traceback.print_exc()


def ev_time(ev):
    """Wall-clock seconds of a JSON log event (harness events carry "ts" in UTC, ms)."""
    import calendar
    base, frac = ev["ts"].rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1000.0


class Poller:
    """From t0, a new HTTPS attempt every poll_ms (overlapping); first 200 wins."""

    def __init__(self, topo, cert, poll_ms):
        self.topo, self.cert, self.poll_s = topo, cert, poll_ms / 1000.0

    def _attempt(self, out, lock):
        try:
            conn = NsHTTPSConnection(self.topo.client, EDGE_IP, HTTPS, "app.test", self.cert, 2.0)
            status = ns_request(conn, "GET", "/headers")[0]
        except Exception as e:  # noqa: BLE001
            status = type(e).__name__
        t = time.time()
        with lock:
            out.append((t, status))

    def first_200(self, t0, bound):
        """Seconds from t0 to the first 200; and {status: count} of answers before it."""
        out, lock, threads = [], threading.Lock(), []
        deadline = t0 + bound
        nxt = time.time()
        while True:
            with lock:
                ok = [t for t, s in out if s == 200]
            if ok:
                break
            now = time.time()
            if now > deadline:
                break
            threads = [th for th in threads if th.is_alive()]
            if now >= nxt and len(threads) < 100:
                th = threading.Thread(target=self._attempt, args=(out, lock), daemon=True)
                th.start()
                threads.append(th)
                nxt = now + self.poll_s
            time.sleep(0.002)
        for th in threads:
            th.join(3)
        with lock:
            ok = sorted(t for t, s in out if s == 200)
            first = ok[0] if ok else None
            before = {}
            for t, s in out:
                if first is None or t < first:
                    before[str(s)] = before.get(str(s), 0) + 1
        return (first - t0 if first is not None else None), before


class Bench:
    def __init__(self, a):
        self.a = a
        self.run = _Run(a.bin_dir, a.keep)
        self.topo = Topology()
        self.h = None
        self.edge = self.origin = None
        self.rows = []

    # -- set-up ---------------------------------------------------------------
    def setup(self):
        remove_stale_namespaces()
        self.run.on_cleanup(self.topo.destroy)
        self.topo.build()
        self.h = Harness(self.run)
        self.svc = self.h.start_service("A", netns=self.topo.origin)
        self.poller = None

    def start_variant(self, variant):
        h, v = self.h, VARIANTS[variant]
        for p in (self.origin, self.edge):
            if p is not None:
                p.stop(10)
        self.origin = self.edge = None
        h.write_edge_config(host=EDGE_IP, ports=(HTTPS, HTTP, TUNNEL, ADMIN), extra_edge=v["edge"],
                            name="edge-" + variant)
        self.conf = h.pair_origin([("app.test", "/signaling", self.svc.ws_url),
                                   ("app.test", None, self.svc.http_url)],
                                  out=h.path("origin-%s.toml" % variant))
        for k, val in v["origin"]:
            h.set_key(self.conf, k, val)
        self.connections = self._connections()
        self.edge = h.start_edge(netns=self.topo.edge, name="edge-" + variant)
        self.start_origin()
        self.poller = Poller(self.topo, h.cert, self.a.poll_ms)
        self.steady("start of variant %s" % variant)

    def _connections(self):
        import re
        with open(self.conf) as f:
            for line in f:
                m = re.match(r"\s*connections\s*=\s*(\d+)", line)
                if m:
                    return int(m.group(1))
        return 2

    def start_origin(self):
        self.origin = self.h.start_origin(self.conf, name="origin", netns=self.topo.origin)
        return self.origin

    @staticmethod
    def live_tunnels(proc, since=0):
        return len(proc.find_all("tunnel.up", since=since)) - len(proc.find_all("tunnel.down", since=since))

    def edge_tunnels(self):
        import json
        from netns import NsHTTPConnection
        st, _, body = ns_request(NsHTTPConnection(self.topo.edge, EDGE_IP, ADMIN, 3.0), "GET", "/status")
        return len(json.loads(body)["tunnels"]) if st == 200 else -1

    def steady(self, what):
        """Every tunnel connection up on the origin, the edge showing exactly those, and a
        200 through them; then a short rest."""
        deadline = time.monotonic() + 60
        while self.live_tunnels(self.origin) < self.connections or self.edge_tunnels() != self.connections:
            if not self.origin.alive():
                raise RuntimeError("%s: origin exited:\n%s" % (what, self.origin.tail()))
            if time.monotonic() > deadline:
                raise RuntimeError("%s: not %d tunnels up (origin %d, edge %d):\n%s" % (
                    what, self.connections, self.live_tunnels(self.origin), self.edge_tunnels(),
                    self.origin.tail()))
            time.sleep(0.05)
        dt, before = self.poller.first_200(time.time(), 30)
        if dt is None:
            raise RuntimeError("%s: no 200 through the tunnel (%s)" % (what, before))
        time.sleep(1.0)

    # -- scenarios -------------------------------------------------------------
    def hold_until_dead(self, mo, me, t_fault):
        """Wait until the origin has declared every tunnel connection down; return detection
        times (origin: its last tunnel.down; edge: its last tunnel.down, if any yet)."""
        deadline = time.monotonic() + self.a.bound
        while len(self.origin.find_all("tunnel.down", since=mo)) < self.connections:
            if time.monotonic() > deadline:
                raise RuntimeError("origin did not time out its tunnels within %.0f s:\n%s" % (
                    self.a.bound, self.origin.tail()))
            time.sleep(0.05)
        downs = self.origin.find_all("tunnel.down", since=mo)
        d_origin = max(ev_time(e) for e in downs) - t_fault
        eka = self.edge.find_all("tunnel.down", since=me)
        d_edge = max(ev_time(e) for e in eka) - t_fault if eka else None
        time.sleep(self.a.hold_extra)
        return d_origin, d_edge

    def scenario(self, name):
        o, e, topo = self.origin, self.edge, self.topo
        mo, me = o.mark(), e.mark()
        extra = {}
        if name in ("blackhole", "link"):
            t_fault = time.time()
            if name == "blackhole":
                topo.blackhole(TUNNEL)
            else:
                topo.link("router", "wan0", up=False)
            try:
                d_origin, d_edge = self.hold_until_dead(mo, me, t_fault)
                extra["detect_origin_s"] = d_origin
                extra["detect_edge_s"] = d_edge
                extra["edge_tunnel_downs"] = len(e.find_all("tunnel.down", since=me))
                extra["origin_down_reasons"] = ",".join(sorted({str(d.get("reason")) for d in
                                                               o.find_all("tunnel.down", since=mo)}))
                extra["dial_failures_during_hold"] = len(o.find_all("tunnel.connect_failed", since=mo))
            finally:
                t0 = time.time()
                if name == "blackhole":
                    topo.unblackhole(check=False)
                else:
                    topo.link("router", "wan0", up=True)
            extra["held_s"] = t0 - t_fault
            mark_up = o.mark()
        else:
            t_stop = time.time()
            if name == "sigkill":
                o.kill()
            else:
                o.signal(signal.SIGTERM)
                try:
                    o.p.wait(40)
                except subprocess.TimeoutExpired:
                    o.kill()
                    extra["sigterm_timed_out"] = 1
                extra["exit_code"] = o.p.returncode
            extra["stop_s"] = time.time() - t_stop
            time.sleep(self.a.restart_gap)
            t0 = time.time()
            o = self.start_origin()
            mark_up = 0
        dt, before = self.poller.first_200(t0, self.a.bound)
        ups = self.origin.find_all("tunnel.up", since=mark_up)
        if ups:
            extra["tunnel_up_s"] = min(ev_time(u) for u in ups) - t0
        extra["answers_before"] = " ".join("%s:%d" % kv for kv in sorted(before.items()))
        return dt, extra

    def measure(self):
        a = self.a
        for variant in a.variants:
            log("variant %s: %s" % (variant, VARIANT_TEXT[variant]))
            self.start_variant(variant)
            for rep in range(1, a.repeat + 1):
                for sc in a.scenarios:  # interleaved: every scenario once per repetition
                    try:
                        dt, extra = self.scenario(sc)
                    except Exception as ex:  # noqa: BLE001 - record, restore, go on
                        log("%s %s #%d FAILED: %s" % (variant, sc, rep, ex))
                        dt, extra = None, {"error": str(ex).splitlines()[0][:200]}
                    row = dict(variant=variant, scenario=sc, rep=rep,
                               recovery_ms=None if dt is None else round(dt * 1000, 1))
                    for k, v in extra.items():
                        row[k] = round(v * 1000, 1) if k.endswith("_s") and v is not None else v
                    self.rows.append(row)
                    log("%s %s #%d: first 200 after %s ms %s" % (
                        variant, sc, rep, row["recovery_ms"],
                        {k: v for k, v in row.items() if k not in ("variant", "scenario", "rep", "recovery_ms")}))
                    try:
                        if not self.origin.alive():
                            self.start_origin()
                        self.topo.unblackhole(check=False)
                        self.topo.link("router", "wan0", up=True)
                        self.steady("after %s" % sc)
                    except Exception as ex:  # noqa: BLE001
                        log("could not restore a steady state after %s: %s; restarting the variant" % (sc, ex))
                        self.start_variant(variant)

    # -- report ------------------------------------------------------------------
    def write(self, started, duration):
        a = self.a
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        keys = ["variant", "scenario", "rep", "recovery_ms", "tunnel_up_ms", "detect_origin_ms",
                "detect_edge_ms", "held_ms", "stop_ms", "exit_code", "edge_tunnel_downs",
                "dial_failures_during_hold", "origin_down_reasons", "answers_before", "sigterm_timed_out", "error"]
        rows = [{(k[:-2] + "_ms" if k.endswith("_s") else k): v for k, v in r.items()} for r in self.rows]
        with open(a.out + ".csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow(r)

        def stats(vals):
            vals = [v for v in vals if v is not None]
            if not vals:
                return "—", "—", "—"
            return ("%.0f" % statistics.median(vals), "%.0f" % min(vals), "%.0f" % max(vals))

        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        what = {"blackhole": "blackhole removed → first 200", "link": "WAN link up → first 200",
                "sigkill": "origin SIGKILL, restart → first 200", "sigterm": "origin SIGTERM, restart → first 200"}
        lines = [
            "# Tunnel recovery (issue 3)",
            "",
            "Generated by `bench/tunnel_recovery` on %s (%.0f s), commit %s, binaries %s. "
            "Every sample: `tunnel-recovery.csv`. Method: docs/benchmarks.md, "
            "\"Tunnel under stress (issue 3)\", and `bench/tunnel_recovery --help`."
            % (started, duration, commit, a.bin_dir),
            "",
            "Repetitions: %d; hold after the origin's keepalive timeout: %.1f s; restart gap: %.1f s; "
            "a new client attempt every %.0f ms." % (a.repeat, a.hold_extra, a.restart_gap, a.poll_ms),
            "",
            "| settings | event | first 200, ms: median | min | max | tunnel.up, ms (median) "
            "| origin detected the dead tunnel, s (median) | edge detected, s (median) | failed |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for variant in a.variants:
            for sc in a.scenarios:
                rs = [r for r in rows if r["variant"] == variant and r["scenario"] == sc]
                if not rs:
                    continue
                med, lo, hi = stats([r.get("recovery_ms") for r in rs])
                up = stats([r.get("tunnel_up_ms") for r in rs])[0]
                do = [r.get("detect_origin_ms") for r in rs if r.get("detect_origin_ms") is not None]
                de = [r.get("detect_edge_ms") for r in rs if r.get("detect_edge_ms") is not None]
                failed = sum(1 for r in rs if r.get("recovery_ms") is None)
                lines.append("| %s (%s) | %s | %s | %s | %s | %s | %s | %s | %d of %d |" % (
                    variant, VARIANT_TEXT[variant], what[sc], med, lo, hi, up,
                    "%.1f" % (statistics.median(do) / 1000) if do else "—",
                    "%.1f" % (statistics.median(de) / 1000) if de else "—", failed, len(rs)))
        lines += ["", "Answers seen before the first 200 (status or exception: count, all repetitions):", ""]
        for variant in a.variants:
            for sc in a.scenarios:
                agg = {}
                for r in rows:
                    if r["variant"] == variant and r["scenario"] == sc:
                        for kv in (r.get("answers_before") or "").split():
                            k, n = kv.rsplit(":", 1)
                            agg[k] = agg.get(k, 0) + int(n)
                if agg:
                    lines.append("- %s, %s: %s" % (variant, sc, ", ".join(
                        "%s × %d" % kv for kv in sorted(agg.items()))))
        with open(a.out + ".md", "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))
        log("wrote %s.md and %s.csv" % (a.out, a.out))


def main():
    a = parse()
    why = netns_available()
    if why:
        sys.exit("bench/tunnel_recovery: " + why)
    for exe in ("hearth-edge", "hearth-origin"):
        if not os.access(os.path.join(a.bin_dir, exe), os.X_OK):
            sys.exit("%s/%s not found" % (a.bin_dir, exe))

    stop_on_signals()
    b = Bench(a)
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    t0 = time.monotonic()
    status = 0
    try:
        b.setup()
        b.measure()
    except KeyboardInterrupt as e:
        log("interrupted (%s): writing what was measured" % e)
        status = 130
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        status = 1
    finally:
        log("stopping everything, removing the namespaces")
        try:
            if b.h:
                b.h.stop_all(5)
        finally:
            b.run.cleanup()   # Harness temp dir (unless --keep), then the namespaces
            b.topo.destroy()
    if b.rows:
        b.write(started, time.monotonic() - t0)
    return status


if __name__ == "__main__":
    sys.exit(main())
