#!/usr/bin/python3
"""Origin loss and recovery, on loopback.

While serving, SIGKILL the origin: in-flight requests end quickly (no hang) and
new requests get 502/503 with Retry-After and a small HTML body, each within 2 s.
Start the origin again: a request succeeds within 5 s, with the same edge process.
Also: SIGTERM on an idle origin exits 0 promptly; when the edge itself
restarts, the origin reconnects by itself; SIGTERM on the edge lets an in-flight
request finish, then the edge exits 0.
"""

import concurrent.futures
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, TestRun, expect, expect_eq  # noqa: E402


def main():
    run = TestRun("origin_restart", __doc__)
    run.require_binaries()
    h = Harness(run)
    state = {}
    try:
        svc = h.start_service("home")
        h.write_edge_config()
        conf = h.pair_origin([("app.test", None, svc.http_url)])
        edge = h.start_edge()
        state["origin"] = h.start_origin(conf)
        edge.wait_event("tunnel.up", timeout=10)
        h.wait_ready(origin=state["origin"])
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)
    edge_pid = edge.pid

    def timed_request(path, timeout=10.0):
        t = time.monotonic()
        try:
            st, hdrs, body = h.request("GET", path, timeout=timeout)
            return st, hdrs, body, time.monotonic() - t
        except Exception as e:  # noqa: BLE001
            return repr(e), {}, b"", time.monotonic() - t

    def expect_offline_answers(what, n=10):
        for i in range(n):
            st, hdrs, body, dt = timed_request("/headers", timeout=5)
            expect(dt < 2.0, "%s: request %d took %.2fs (answer %r), expected < 2 s" % (what, i, dt, st))
            expect(st in (502, 503), "%s: request %d: expected 502 or 503, got %r" % (what, i, st))
            expect("retry-after" in hdrs, "%s: %d without Retry-After (headers %s)" % (what, st, hdrs))
            expect("html" in hdrs.get("content-type", "") and 0 < len(body) < 65536,
                   "%s: expected a small HTML body, got Content-Type %r, %d bytes"
                   % (what, hdrs.get("content-type"), len(body)))
            if i == 0:
                print("   %s: %d in %.3fs, Retry-After %s, %d-byte %s body"
                      % (what, st, dt, hdrs.get("retry-after"), len(body), hdrs.get("content-type")))
            time.sleep(0.05)

    def restart_and_expect_service(what):
        mark = edge.mark()
        t = time.monotonic()
        state["origin"] = h.start_origin(conf)
        while True:
            st, _, _, _ = timed_request("/headers", timeout=2)
            if st == 200:
                break
            expect(state["origin"].alive(), "%s: restarted origin exited (%s)" % (what, state["origin"].p.returncode))
            expect(time.monotonic() - t < 5.0, "%s: no 200 within 5 s of restarting the origin (last %r)" % (what, st))
            time.sleep(0.05)
        print("   %s: served again %.2fs after the origin started" % (what, time.monotonic() - t))
        edge.wait_event("tunnel.up", timeout=5, since=mark)
        expect(edge.alive() and edge.pid == edge_pid, "edge must not have restarted")

    @run.case
    def sigkill_origin_inflight_requests_end_quickly():
        # start slow requests, then kill the origin under them
        with concurrent.futures.ThreadPoolExecutor(5) as ex:
            futs = [ex.submit(timed_request, "/slow?seconds=8", 15) for _ in range(5)]
            time.sleep(1.0)
            mark = edge.mark()
            t_kill = time.monotonic()
            state["origin"].kill()
            results = [f.result(timeout=20) for f in futs]
        print("   in-flight requests when the origin died: %s"
              % [(st, round(dt, 2)) for st, _, _, dt in results])
        for st, _, _, dt in results:
            expect(st != 200, "in-flight request through a killed origin returned 200 (after %.2fs)" % dt)
        # Each ended within ~3 s of the kill (they started ~1 s before it).
        slow = [(st, round(dt, 2)) for st, _, _, dt in results if dt > 1.0 + 3.0]
        expect(not slow, "in-flight requests hung after the origin died: %s" % slow)
        edge.wait_event("tunnel.down", timeout=5, since=mark)

    @run.case
    def origin_down_gives_502_or_503_fast():
        expect_offline_answers("origin SIGKILLed")

    @run.case
    def origin_restart_serves_within_5s():
        restart_and_expect_service("after SIGKILL")

    @run.case
    def second_kill_and_restart():
        state["origin"].kill()
        expect_offline_answers("origin SIGKILLed again", n=3)
        restart_and_expect_service("second restart")

    @run.case
    def sigterm_idle_origin_exits_0():
        o = state["origin"]
        # A client connection that stays open after its request holds a kept
        # (parked) tunnel stream: the origin's GOAWAY must end it at once,
        # not leave the origin waiting out drain_timeout (30 s).
        kept = h.https()
        kept.request("GET", "/headers")
        r = kept.getresponse()
        r.read()
        expect_eq(r.status, 200, "request on the connection kept open across the SIGTERM")
        t = time.monotonic()
        code = o.stop(timeout=10)
        dt = time.monotonic() - t
        kept.close()
        expect_eq(code, 0, "origin exit code after SIGTERM")
        expect(dt < 5, "idle origin took %.1fs to exit after SIGTERM" % dt)
        expect_offline_answers("origin stopped with SIGTERM", n=3)
        restart_and_expect_service("after SIGTERM")

    @run.case
    def origin_reconnects_after_edge_restart():
        o = state["origin"]
        mark_o = o.mark()
        edge.kill()
        o.wait_event("tunnel.down", timeout=5, since=mark_o)
        time.sleep(1.0)
        new_edge = h.start_edge(name="edge-restarted")
        t = time.monotonic()
        o.wait_event("tunnel.up", timeout=20, since=mark_o)
        h.wait_ready(timeout=10, origin=o)
        print("   origin reconnected %.2fs after the edge came back" % (time.monotonic() - t))
        expect(o.find("tunnel.retry", mark_o) is not None, "origin did not log tunnel.retry while the edge was down")
        expect(new_edge.alive(), "restarted edge exited")
        state["edge"] = new_edge

    @run.case
    def edge_sigterm_drains_inflight_and_exits_0():
        e = state.get("edge")
        expect(e is not None and e.alive(), "no running edge left from the previous case")
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(timed_request, "/slow?seconds=2", 15)
            time.sleep(0.7)
            t = time.monotonic()
            e.signal(signal.SIGTERM)
            st, _, body, dt = fut.result(timeout=20)
        expect_eq(st, 200, "in-flight request across an edge SIGTERM (drain)")
        try:
            code = e.p.wait(10)
        except subprocess.TimeoutExpired:
            code = None
        expect_eq(code, 0, "edge exit code after SIGTERM (within 10 s)")
        print("   edge drained and exited %.2fs after SIGTERM" % (time.monotonic() - t))

    run.finish()


if __name__ == "__main__":
    main()
