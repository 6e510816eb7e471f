#!/usr/bin/python3
"""The CGNAT case, in network namespaces (needs root and `ip netns`; else exit 77).

    client ns  198.18.0.3 ─┐
    edge ns    198.18.0.1 ─┼─ bridge in the "wan" ns ("the internet", 198.18.0.0/24)
    router ns  198.18.0.2 ─┘  wan0: nftables masquerade for 10.99.0.0/24,
               10.99.0.1  ─┐        forward filter: nothing new from wan0 to lan0
    origin ns  10.99.0.2  ─┘  default route via 10.99.0.1; home_service on 127.0.0.1

The edge has no route to 10.99.0.0/24 (checked), and even with one the router
drops new inbound connections (checked). The origin dials out through the NAT;
the edge sees its tunnel come from the router's WAN address 198.18.0.2 (checked
in the tunnel.up log event and with `ss` in the edge namespace). curl and a
WebSocket client in the client namespace reach the home service through the edge.
Namespaces are named hx-<role>-<pid> and are always deleted.
"""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERE, PYTHON, Harness, TestRun, expect, expect_eq, wait_until  # noqa: E402
from netns import (CLIENT_IP, EDGE_IP, ORIGIN_IP, PROBE_SERVER, ROUTER_WAN_IP,  # noqa: E402
                   Topology, netns_available, probe_connect, remove_stale_namespaces, sh)


def main():
    run = TestRun("cgnat_netns", __doc__)
    why = netns_available()
    if why:
        run.skip("CGNAT namespace test skipped: " + why)
    run.require_binaries()
    remove_stale_namespaces()
    topo = Topology()
    run.on_cleanup(topo.destroy)  # runs after the processes are stopped (cleanups run LIFO)
    h = Harness(run)
    try:
        topo.build()
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    @run.case
    def nat_topology_before_hearth():
        # The origin reaches the internet side, and is seen as the router's WAN address.
        srv = subprocess.Popen(["ip", "netns", "exec", topo.edge, PYTHON, "-c", PROBE_SERVER, EDGE_IP, "7999"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            expect(srv.stdout.readline().strip() == "ready", "probe server did not start")
            got = probe_connect(topo.origin, EDGE_IP, 7999)
            expect_eq(got, "connected " + ROUTER_WAN_IP, "origin ns -> edge ns TCP connect (peer seen by the edge)")
        finally:
            srv.kill()
            srv.wait(5)
        # The edge cannot reach the home LAN: no route...
        got = probe_connect(topo.edge, ORIGIN_IP, 22, timeout=2.0)
        expect(got.startswith("failed"), "edge ns -> %s must fail (no route), got %r" % (ORIGIN_IP, got))
        routes = sh("ip", "route", "show", netns=topo.edge).stdout
        expect("10.99." not in routes, "edge ns has a route to the home LAN:\n" + routes)
        # ...and even with a route through the router, the NAT lets nothing new in.
        srv = subprocess.Popen(["ip", "netns", "exec", topo.origin, PYTHON, "-c", PROBE_SERVER, ORIGIN_IP, "7998"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            expect(srv.stdout.readline().strip() == "ready", "probe server in origin ns did not start")
            sh("ip", "route", "add", "10.99.0.0/24", "via", ROUTER_WAN_IP, netns=topo.edge)
            try:
                got = probe_connect(topo.edge, ORIGIN_IP, 7998, timeout=2.0)
            finally:
                sh("ip", "route", "del", "10.99.0.0/24", netns=topo.edge, check=False)
            expect(got.startswith("failed"),
                   "edge ns -> origin LAN via the router must be dropped by the NAT, got %r" % got)
            rules = sh("nft", "list", "chain", "ip", "hearth_cgnat", "forward", netns=topo.router).stdout
            m = re.search(r"counter packets (\d+)", rules)
            expect(m and int(m.group(1)) > 0, "the router's drop rule did not count the attempt:\n" + rules)
        finally:
            srv.kill()
            srv.wait(5)

    if run.failed:
        run.finish()

    # hearth in the namespaces
    try:
        svc = h.start_service("home", netns=topo.origin)
        h.write_edge_config(host=EDGE_IP, ports=(8443, 8080, 7443, 9901))
        origin_conf = h.pair_origin([("app.test", "/signaling", svc.ws_url),
                                     ("app.test", None, svc.http_url)])
        edge = h.start_edge(netns=topo.edge)
        expect_eq(h.read_key(origin_conf, "edge"), "%s:7443" % EDGE_IP, "origin.toml edge address")
        origin = h.start_origin(origin_conf, netns=topo.origin)
        up = edge.wait_event("tunnel.up", timeout=15)
        origin.wait_event("tunnel.up", timeout=15)
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    @run.case
    def edge_sees_tunnel_from_router_wan_ip():
        peer = str(up.get("peer", ""))
        expect(peer.startswith(ROUTER_WAN_IP + ":"),
               "edge tunnel.up peer should be the router's WAN address %s:*, got %r (event %s)"
               % (ROUTER_WAN_IP, peer, json.dumps(up)))
        ss = sh("ss", "-tnH", "state", "established", "( sport = :7443 )", netns=topo.edge).stdout
        peers = [line.split()[-1] for line in ss.splitlines() if line.strip()]
        expect(peers, "no established connection on the edge's tunnel port (ss):\n" + ss)
        expect(all(p.startswith(ROUTER_WAN_IP + ":") for p in peers),
               "tunnel peers in the edge ns should all be %s, got %s" % (ROUTER_WAN_IP, peers))
        expect(not any(p.startswith("10.99.") for p in peers), "edge saw a LAN address: %s" % peers)

    @run.case
    def curl_from_client_ns():
        def once():
            r = h.curl("-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", h.url("/"),
                       netns=topo.client, timeout=15)
            return r.stdout.strip() == "200"
        wait_until(once, 10, 0.2, "https://app.test/ from the client ns")
        r = h.curl("--max-time", "10", h.url("/headers"), netns=topo.client)
        expect_eq(r.returncode, 0, "curl exit code (%s)" % r.stderr.strip())
        j = json.loads(r.stdout)
        expect_eq(j["headers"].get("x-forwarded-for"), CLIENT_IP, "X-Forwarded-For at the service")
        r = h.curl("--max-time", "20", h.url("/download?bytes=5000000&seed=ns"), "-o", "-",
                   netns=topo.client, text=False)
        import hashlib
        sys.path.insert(0, HERE)
        import home_service
        expect_eq(hashlib.sha256(r.stdout).hexdigest(), home_service.download_sha256(5000000, "ns"),
                  "sha256 of a 5 MB download through the NAT")

    @run.case
    def websocket_from_client_ns():
        r = sh("ip", "netns", "exec", topo.client, PYTHON, os.path.join(HERE, "harness.py"), "ws-check",
               "--cafile", h.cert, "--connect", EDGE_IP, "--port", "8443", "--path", "/signaling",
               check=False, timeout=90)
        out = r.stdout.strip().splitlines()
        expect(out, "ws-check printed nothing; stderr: %s" % r.stderr[-2000:])
        res = json.loads(out[-1])
        expect(r.returncode == 0 and not res["problems"], "WebSocket echo problems: %s" % res["problems"])

    @run.case
    def origin_still_unreachable_from_edge():
        got = probe_connect(topo.edge, ORIGIN_IP, svc.http_port, timeout=2.0)
        expect(got.startswith("failed"), "edge ns -> %s:%d must fail, got %r" % (ORIGIN_IP, svc.http_port, got))

    run.finish()


if __name__ == "__main__":
    main()
