#!/usr/bin/python3
"""Reload that reloads, partial publish and pairing over time (issue 13).

One edge, one origin (two tunnel connections), a WebSocket held open through
everything below:
- partial publish: a route for a hostname the edge does not allow is refused
  alone; the others are served; the refusal is in both /status outputs, both
  logs and the edge's hearth_publish_refused_routes metric;
- origin SIGHUP adds a route: served at once, over the same tunnels (the
  tunnel ids in the edge's /status do not change); `connections` 2 -> 3 -> 2
  adds a tunnel and drains it again, the first two untouched;
- edge SIGHUP adds a hostname the origin already asked for: served at once,
  no reconnect; removes one: 404 on the next request;
- an invalid config on either side: logged with file:line:key, the running
  config stays;
- join with --route and without; `hearth-edge origins` (pins, last seen);
- `hearth-edge revoke` + SIGHUP: the origin's tunnels get GOAWAY and close
  after drain_timeout, and its reconnects are refused.
The WebSocket's echo is checked after each reload.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Failure, Harness, TestRun, expect, expect_eq, free_port, wait_until,  # noqa: E402
                     ws_connect)


def admin_get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return r.read().decode()


def admin_json(port, path="/status"):
    return json.loads(admin_get(port, path))


class HeldWebSocket:
    """A WebSocket kept open on its own event loop thread; echo() checks it still works."""

    def __init__(self, h, path="/signaling"):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        async def connect():  # the Connect object binds to the loop it is made on
            return await ws_connect(path, h.cert, h.edge_host, h.https_port)
        self.ws = self._run(connect(), 15)

    def _run(self, coro, timeout):
        return asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self.loop).result(
            timeout + 1)

    def echo(self, text):
        async def go():
            await self.ws.send(text)
            return await self.ws.recv()
        got = self._run(go(), 10)
        expect_eq(got, text, "WebSocket echo")

    def close(self):
        try:
            self._run(self.ws.close(4000, "done"), 5)
        except Exception:  # noqa: BLE001
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def tunnel_ids(status):
    return sorted(t["id"] for t in status["tunnels"])


def write_origins(conf, hostnames):
    """Rewrite the hostnames line of the (single) [[origins]] entry of edge.toml."""
    lines = open(conf).read().splitlines()
    for i, l in enumerate(lines):
        if l.startswith("hostnames ="):
            lines[i] = "hostnames = [%s]" % ", ".join('"%s"' % x for x in hostnames)
    open(conf, "w").write("\n".join(lines) + "\n")


def main():
    run = TestRun("reload", __doc__)
    run.require_binaries()
    h = Harness(run)
    try:
        svc = h.start_service("A")
        h.write_edge_config(origins=[("nas", ["app.test"])], extra_edge='drain_timeout = "1s"')
        edge = h.start_edge()
        routes = [("app.test", "/signaling", svc.ws_url), ("app.test", None, svc.http_url),
                  ("other.test", None, svc.http_url)]
        conf = h.pair_origin(routes)
        origin_admin = free_port()
        h.set_key(conf, "listen_admin", '"127.0.0.1:%d"' % origin_admin)
        origin = h.start_origin(conf)
        h.wait_ready(origin=origin)
        wait_until(lambda: len(admin_json(h.admin_port)["tunnels"]) == 2, 10, what="two tunnels")
        ws = HeldWebSocket(h)
        run.on_cleanup(ws.close)
        ws.echo("hello")
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    state = {}

    @run.case
    def partial_publish_refuses_one_route_serves_the_others():
        st, _, _ = h.request("GET", "/headers", host="app.test")
        expect_eq(st, 200, "app.test (allowed) is served")
        st, _, _ = h.request("GET", "/", host="app.test", headers={"Host": "other.test"})
        expect_eq(st, 404, "other.test (not allowed) is refused")
        ev = edge.wait_event("publish.refused", timeout=5)
        expect("other.test" in ev.get("refused", ""), "edge log names the refused route: %s" % ev)
        ev = origin.wait_event("publish.refused", timeout=5)
        expect("other.test" in ev.get("refused", ""), "origin log names the refused route: %s" % ev)
        es = admin_json(h.admin_port)
        for t in es["tunnels"]:
            expect_eq([r["host"] for r in t["refused"]], ["other.test"], "edge /status refused")
            expect_eq(t["version"], 2, "tunnel protocol version")
        os_ = admin_json(origin_admin)
        refused = {r["host"]: r["refused"] for r in os_["routes"]}
        expect_eq(refused, {"app.test": False, "other.test": True}, "origin /status routes refused")
        metrics = admin_get(h.admin_port, "/metrics")
        expect('hearth_publish_refused_routes{origin="nas"} 1' in metrics,
               "edge metric hearth_publish_refused_routes:\n%s" % metrics[-800:])
        expect("# HELP hearth_publish_refused_total" in metrics, "HELP line for refused_total")
        expect("hearth_publish_refused_routes 1" in admin_get(origin_admin, "/metrics"),
               "origin metric hearth_publish_refused_routes")
        state["ids"] = tunnel_ids(es)
        ws.echo("after partial publish")

    @run.case
    def origin_sighup_adds_a_route_without_reconnecting():
        h.set_routes(conf, routes + [("a.app.test", None, svc.http_url)])
        write_origins(h.edge_conf, ["app.test", "*.app.test"])  # allowed, applied on edge reload
        mark_e, mark_o = edge.mark(), origin.mark()
        st, _, _ = h.request("GET", "/", host="a.app.test")
        expect_eq(st, 404, "a.app.test before any reload")
        edge.signal(signal.SIGHUP)
        edge.wait_event("reload.done", timeout=5, since=mark_e)
        origin.signal(signal.SIGHUP)
        origin.wait_event("reload.done", timeout=5, since=mark_o)
        edge.wait_event("publish.received", timeout=5, since=mark_e,
                        served=lambda s: "a.app.test/" in s)
        st, hdrs, _ = h.request("GET", "/headers", host="a.app.test")
        expect_eq(st, 200, "a.app.test after the origin's SIGHUP")
        expect_eq(tunnel_ids(admin_json(h.admin_port)), state["ids"], "tunnel ids (no reconnect)")
        expect(origin.find("tunnel.up", since=mark_o) is None, "origin reconnected a tunnel")
        ws.echo("after origin reload")

    @run.case
    def edge_sighup_adds_and_removes_hostnames_on_live_tunnels():
        mark = edge.mark()
        mark_o = origin.mark()
        write_origins(h.edge_conf, ["app.test", "*.app.test", "other.test"])
        edge.signal(signal.SIGHUP)
        edge.wait_event("reload.done", timeout=5, since=mark)
        st, _, _ = h.request("GET", "/headers", host="other.test")
        expect_eq(st, 200, "other.test, added on the edge, already asked for by the origin")
        # The origin hears it (PUBLISHED): nothing refused any more.
        origin.wait_event("publish.acknowledged", timeout=5, since=mark_o, refused=0)
        wait_until(lambda: not any(r["refused"] for r in admin_json(origin_admin)["routes"]), 5,
                   what="origin /status: nothing refused")
        ws.echo("after edge reload 1")
        # Remove *.app.test: a.app.test is 404 on the next request.
        write_origins(h.edge_conf, ["app.test", "other.test"])
        mark = edge.mark()
        edge.signal(signal.SIGHUP)
        edge.wait_event("reload.done", timeout=5, since=mark)
        wait_until(lambda: h.request("GET", "/", host="a.app.test")[0] == 404, 5,
                   what="a.app.test 404 after its hostname left [[origins]]")
        expect_eq(h.request("GET", "/headers", host="app.test")[0], 200, "app.test still served")
        expect_eq(tunnel_ids(admin_json(h.admin_port)), state["ids"], "tunnel ids (no reconnect)")
        ws.echo("after edge reload 2")

    @run.case
    def invalid_config_on_reload_keeps_the_running_one():
        good_edge = open(h.edge_conf).read()
        good_origin = open(conf).read()
        try:
            with open(h.edge_conf, "a") as f:
                f.write("\n[[origins]]\nname = \"x\"\nhostnames = [\"x.test\"]\nbogus_key = 1\n")
            bad_line = len(open(h.edge_conf).read().splitlines())
            mark = edge.mark()
            edge.signal(signal.SIGHUP)
            ev = edge.wait_event("reload.problem", timeout=5, since=mark)
            want = "%s:%d" % (h.edge_conf, bad_line)
            expect(want in ev["problem"] and "bogus_key" in ev["problem"],
                   "edge reload.problem names file:line:key (%s): %s" % (want, ev))
            edge.wait_event("reload.failed", timeout=5, since=mark)
            with open(conf, "a") as f:
                f.write('\n[[routes]]\nhost = "app.test"\npath = "/x"\nservice = "nope"\n')
            mark = origin.mark()
            origin.signal(signal.SIGHUP)
            ev = origin.wait_event("reload.problem", timeout=5, since=mark)
            expect(conf in ev["problem"] and "service" in ev["problem"],
                   "origin reload.problem names file:line:key: %s" % ev)
            origin.wait_event("reload.failed", timeout=5, since=mark)
            expect_eq(h.request("GET", "/headers", host="app.test")[0], 200, "still served")
            expect_eq(h.request("GET", "/headers", host="other.test")[0], 200, "still served")
            ws.echo("after failed reloads")
        finally:
            open(h.edge_conf, "w").write(good_edge)
            open(conf, "w").write(good_origin)

    @run.case
    def origin_sighup_changes_connections():
        mark = edge.mark()
        h.set_key(conf, "connections", "3")
        origin.signal(signal.SIGHUP)
        wait_until(lambda: len(admin_json(h.admin_port)["tunnels"]) == 3, 10, what="three tunnels")
        ids = tunnel_ids(admin_json(h.admin_port))
        expect(set(state["ids"]) <= set(ids), "the first two tunnels stay: %s -> %s" % (state["ids"], ids))
        h.set_key(conf, "connections", "2")
        origin.signal(signal.SIGHUP)
        wait_until(lambda: tunnel_ids(admin_json(h.admin_port)) == state["ids"], 10,
                   what="back to the first two tunnels")
        expect_eq(len(edge.find_all("tunnel.down", since=mark)), 1, "tunnels closed")
        ws.echo("after connections changes")

    @run.case
    def join_with_and_without_route():
        token = h.invite("nas")
        out1 = h.path("join1", "origin.toml")
        os.makedirs(os.path.dirname(out1))
        r = subprocess.run([run.bin("hearth-origin"), "join", token, "--out", out1], capture_output=True,
                           text=True, timeout=20)
        expect_eq(r.returncode, 0, "join without --route: %s" % r.stderr)
        text = open(out1).read()
        # The token carries what the edge allows: app.test and other.test now.
        expect('host    = "app.test"' in text and 'host    = "other.test"' in text,
               "one route per allowed hostname:\n%s" % text)
        expect("EDIT ME" in text and "app.example.com" not in text, "marked to edit, no placeholder")
        out2 = h.path("join2", "origin.toml")
        os.makedirs(os.path.dirname(out2))
        r = subprocess.run([run.bin("hearth-origin"), "join", token, "--out", out2, "--route",
                            "app.test/signaling=%s" % svc.ws_url, "--route",
                            "app.test=%s" % svc.http_url], capture_output=True, text=True, timeout=20)
        expect_eq(r.returncode, 0, "join --route: %s" % r.stderr)
        text = open(out2).read()
        expect('path    = "/signaling"' in text and svc.ws_url in text and "EDIT ME" not in text,
               "routes from --route:\n%s" % text)
        r = subprocess.run([run.bin("hearth-origin"), "check", "--config", out2], capture_output=True,
                           text=True, timeout=20)
        expect_eq(r.returncode, 0, "check of the joined config: %s" % r.stderr)
        r = subprocess.run([run.bin("hearth-origin"), "join", token, "--out", h.path("j3.toml"),
                            "--route", "nonsense"], capture_output=True, text=True, timeout=20)
        expect_eq(r.returncode, 1, "join --route with a bad value")

    @run.case
    def origins_lists_pins_and_last_seen():
        r = subprocess.run([run.bin("hearth-edge"), "origins", "--config", h.edge_conf],
                           capture_output=True, text=True, timeout=20)
        expect_eq(r.returncode, 0, "hearth-edge origins: %s" % r.stderr)
        out = r.stdout
        expect(out.startswith("nas\n"), "origins output:\n%s" % out)
        expect(out.count("sha256:") == 2, "two pins (two invites):\n%s" % out)
        expect(out.count("(invited 20") == 2, "each pin with its invite date:\n%s" % out)
        expect("last seen: 20" in out and "from 127.0.0.1:" in out, "last seen:\n%s" % out)

    @run.case
    def revoke_closes_the_live_tunnels():
        mark, mark_o = edge.mark(), origin.mark()
        r = subprocess.run([run.bin("hearth-edge"), "revoke", "--config", h.edge_conf, "nas"],
                           capture_output=True, text=True, timeout=20)
        expect_eq(r.returncode, 0, "hearth-edge revoke: %s" % r.stderr)
        expect("systemctl reload hearth-edge" in r.stdout, "revoke says how to apply it: %s" % r.stdout)
        edge.signal(signal.SIGHUP)
        edge.wait_event("tunnel.revoked", timeout=5, since=mark)
        # GOAWAY now, closed after drain_timeout (1 s); reconnects are refused.
        origin.wait_event("tunnel.goaway_received", timeout=5, since=mark_o)
        wait_until(lambda: len(edge.find_all("tunnel.down", since=mark)) >= 2, 5,
                   what="both tunnels closed")
        origin.wait_event("tunnel.refused", timeout=10, since=mark_o,
                          reason=lambda s: "not authorized" in s)
        expect_eq(admin_json(h.admin_port)["tunnels"], [], "edge /status tunnels after revoke")
        st, _, _ = h.request("GET", "/headers", host="app.test")
        expect(st in (502, 503), "app.test after revoke: got %d" % st)
        r = subprocess.run([run.bin("hearth-edge"), "origins", "--config", h.edge_conf],
                           capture_output=True, text=True, timeout=20)
        expect("pins: (none" in r.stdout, "origins after revoke:\n%s" % r.stdout)

    run.finish()


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL: %s" % e)
        sys.exit(1)
