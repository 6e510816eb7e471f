#!/usr/bin/python3
"""Local service health checks (issue 13).

Origin "nas" publishes app.test (HTTP check "/headers"), app.test/tcp (check
"tcp") and other.test, all to service A; origin "nas2" publishes other.test to
service B. Checks every 400 ms, rise 2, fall 3. The test stops service A:
- app.test turns unhealthy in both /status outputs and in the metrics, and the
  edge answers 503 with Retry-After by itself: the origin sees no stream
  (hearth_streams_total does not move), the access log says reason=unhealthy;
- other.test keeps answering 200 from B (the unhealthy replica is skipped);
then starts A again on the same port: app.test is healthy and served again.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HOME_SERVICE, PYTHON, Failure, Harness, TestRun, _readline_timeout,  # noqa: E402
                     expect, expect_eq, free_port, wait_until)

HEALTH = ['health_interval = "400ms"', 'health_timeout = "400ms"']


def admin_get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return r.read().decode()


def admin_json(port, path="/status"):
    return json.loads(admin_get(port, path))


def write_routes(conf, routes):
    """Replace [[routes]] with routes: [(host, path, service, [extra lines])]."""
    lines = open(conf).read().splitlines()
    cut = next(i for i, l in enumerate(lines) if l.strip() == "[[routes]]")
    lines = lines[:cut]
    for host, path, service, extra in routes:
        lines += ["[[routes]]", 'host = "%s"' % host, 'path = "%s"' % path, 'service = "%s"' % service]
        lines += extra + [""]
    open(conf, "w").write("\n".join(lines) + "\n")


def metric(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    pat = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (-?\d+)"
    m = re.search(r"(?m)^" + pat + "$", text)
    return int(m.group(1)) if m else None


def main():
    run = TestRun("health", __doc__)
    run.require_binaries()
    h = Harness(run)
    port_a = free_port()

    def start_a():
        p = h.spawn("service-A", [PYTHON, HOME_SERVICE, "--host", "127.0.0.1", "--name", "A",
                                  "--http-port", str(port_a)], stdout=subprocess.PIPE)
        if not _readline_timeout(p.p.stdout, 10):
            raise Failure("service A did not start")
        return p

    try:
        svc_a = start_a()
        url_a = "http://127.0.0.1:%d" % port_a
        svc_b = h.start_service("B", ws=False)
        h.write_edge_config(origins=[("nas", ["app.test", "other.test"]), ("nas2", ["other.test"])])
        edge = h.start_edge()
        conf = h.pair_origin([("app.test", None, url_a)])
        admin_o = free_port()
        h.set_key(conf, "listen_admin", '"127.0.0.1:%d"' % admin_o)
        h.set_key(conf, "connections", "1")
        write_routes(conf, [("app.test", "/", url_a, ['health_check = "/headers"'] + HEALTH),
                            ("app.test", "/tcp", url_a, ['health_check = "tcp"'] + HEALTH),
                            ("other.test", "/", url_a, ['health_check = "/headers"'] + HEALTH)])
        conf2 = h.pair_origin([("other.test", None, svc_b.http_url)], origin_name="nas2")
        h.set_key(conf2, "connections", "1")
        write_routes(conf2, [("other.test", "/", svc_b.http_url, ['health_check = "/headers"'] + HEALTH)])
        origin = h.start_origin(conf)
        origin2 = h.start_origin(conf2, name="origin2")
        h.wait_ready(origin=origin)
        h.wait_ready(host="other.test", origin=origin2)
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    def edge_health(host, path="/"):
        out = set()
        for t in admin_json(h.admin_port)["tunnels"]:
            for r in t["routes"]:
                if r["host"] == host and r["path"] == path:
                    out.add((t["origin"], r["health"]))
        return out

    def origin_health(host, path="/"):
        for r in admin_json(admin_o)["routes"]:
            if r["host"] == host and r["path"] == path:
                return r["health"]
        return None

    @run.case
    def healthy_at_start():
        wait_until(lambda: edge_health("app.test") == {("nas", "healthy")}, 5, what="app.test healthy")
        wait_until(lambda: origin_health("app.test", "/tcp") == "healthy", 5, what="tcp check healthy")
        expect_eq(h.request("GET", "/headers", host="app.test")[0], 200, "app.test")
        m = admin_get(h.admin_port, "/metrics")
        expect_eq(metric(m, "hearth_route_healthy", host="app.test", path="/"), 1, "edge gauge")
        expect("# TYPE hearth_route_healthy gauge" in m, "TYPE line")

    @run.case
    def stopped_service_answers_503_at_the_edge():
        svc_a.stop()
        t0 = time.monotonic()
        wait_until(lambda: edge_health("app.test") == {("nas", "unhealthy")}, 5,
                   what="edge sees app.test unhealthy")
        print("   unhealthy at the edge %.2fs after the service stopped" % (time.monotonic() - t0))
        expect_eq(origin_health("app.test"), "unhealthy", "origin /status")
        wait_until(lambda: origin_health("app.test", "/tcp") == "unhealthy", 5, what="tcp check")
        before = metric(admin_get(admin_o, "/metrics"), "hearth_streams_total")
        mark = edge.mark()
        st, hdrs, _ = h.request("GET", "/headers", host="app.test")
        expect_eq(st, 503, "app.test while its service is down")
        expect("retry-after" in hdrs, "Retry-After on the 503: %s" % hdrs)
        st, _, _ = h.request("GET", "/tcp", host="app.test")
        expect_eq(st, 503, "app.test/tcp (connect-only check)")
        after = metric(admin_get(admin_o, "/metrics"), "hearth_streams_total")
        expect_eq(after, before, "streams the origin saw (the 503 made no round trip home)")
        ev = edge.wait_event("request", since=mark, timeout=5, status=503,
                             host=lambda v: v.split(":")[0] == "app.test")
        expect_eq(ev.get("reason"), "unhealthy", "access log reason")
        expect_eq(metric(admin_get(h.admin_port, "/metrics"), "hearth_route_healthy", host="app.test",
                         path="/"), 0, "edge gauge")
        expect_eq(metric(admin_get(admin_o, "/metrics"), "hearth_route_healthy", host="app.test",
                         path="/"), 0, "origin gauge")

    @run.case
    def unhealthy_replica_is_skipped():
        wait_until(lambda: ("nas", "unhealthy") in edge_health("other.test"), 5,
                   what="nas's other.test unhealthy")
        for i in range(6):
            st, hdrs, _ = h.request("GET", "/headers", host="other.test")
            expect_eq(st, 200, "other.test request %d" % i)
            expect_eq(hdrs.get("x-home-service"), "B", "served by the healthy replica")

    @run.case
    def restarted_service_is_served_again():
        start_a()
        t0 = time.monotonic()
        wait_until(lambda: edge_health("app.test") == {("nas", "healthy")}, 5, what="healthy again")
        print("   healthy again %.2fs after the service started" % (time.monotonic() - t0))
        expect_eq(h.request("GET", "/headers", host="app.test")[0], 200, "app.test")

    run.finish()


if __name__ == "__main__":
    main()
