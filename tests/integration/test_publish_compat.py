#!/usr/bin/python3
"""A version-2 origin and a version-1 edge (docs/protocol.md 6; issue 13).

The edge runs with HEARTH_TUNNEL_MAX_VERSION=1, so it answers exactly as a
version-1 edge: REJECT "unsupported protocol version 2". The origin must fall
back to version 1 (tunnel.version_fallback) and connect; and, since a version-1
edge hears routes only in HELLO, a SIGHUP that adds a route must reconnect its
two tunnels one at a time (down, up, down, up at the edge), app.test answering
200 all along, and the new route then served.
"""

import json
import os
import signal
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, TestRun, expect, expect_eq, wait_until  # noqa: E402


def admin_json(port, path="/status"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return json.loads(r.read().decode())


def main():
    run = TestRun("publish_compat", __doc__)
    run.require_binaries()
    h = Harness(run)
    try:
        svc = h.start_service("A", ws=False)
        h.write_edge_config(origins=[("nas", ["app.test", "*.app.test"])])
        os.environ["HEARTH_TUNNEL_MAX_VERSION"] = "1"
        try:
            edge = h.start_edge()
        finally:
            del os.environ["HEARTH_TUNNEL_MAX_VERSION"]
        conf = h.pair_origin([("app.test", None, svc.http_url)])
        h.set_key(conf, "drain_timeout", '"2s"')
        origin = h.start_origin(conf)
        h.wait_ready(origin=origin)
        wait_until(lambda: len(admin_json(h.admin_port)["tunnels"]) == 2, 10, what="two tunnels")
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    @run.case
    def origin_falls_back_to_version_1():
        ev = origin.wait_event("tunnel.version_fallback", timeout=5)
        expect_eq(ev.get("version"), 1, "fallback version")
        ups = origin.find_all("tunnel.up")
        expect(len(ups) >= 2 and all(u.get("version") == 1 for u in ups), "tunnels up in v1: %s" % ups)
        expect(all(t["version"] == 1 for t in admin_json(h.admin_port)["tunnels"]), "edge /status v1")

    @run.case
    def route_change_reconnects_tunnels_one_at_a_time():
        mark = edge.mark()
        failures = []
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                try:
                    st = h.request("GET", "/headers", host="app.test", timeout=5)[0]
                except Exception as e:  # noqa: BLE001
                    st = repr(e)
                if st != 200:
                    failures.append(st)
                time.sleep(0.02)
        t = threading.Thread(target=poll, daemon=True)
        t.start()
        try:
            h.set_routes(conf, [("app.test", None, svc.http_url), ("a.app.test", None, svc.http_url)])
            origin.signal(signal.SIGHUP)
            wait_until(lambda: h.request("GET", "/headers", host="a.app.test")[0] == 200, 15,
                       what="a.app.test served after the roll")
            wait_until(lambda: len(edge.find_all("tunnel.up", since=mark)) >= 2, 15,
                       what="both tunnels reconnected")
        finally:
            stop.set()
            t.join(10)
        seq = [ev["event"] for ev in edge.events()[mark:] if ev["event"] in ("tunnel.up", "tunnel.down")]
        expect_eq(seq[:4], ["tunnel.down", "tunnel.up", "tunnel.down", "tunnel.up"],
                  "edge tunnel events (one at a time)")
        expect_eq(failures, [], "app.test answers during the roll")
        expect_eq(len(origin.find_all("publish.reconnect")), 2, "origin publish.reconnect lines")

    run.finish()


if __name__ == "__main__":
    main()
