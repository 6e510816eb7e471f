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
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HERE, PYTHON, Failure, Harness, TestRun, expect, expect_eq,  # noqa: E402
                     pid_alive, wait_until)

EDGE_IP, ROUTER_WAN_IP, CLIENT_IP = "198.18.0.1", "198.18.0.2", "198.18.0.3"
ROUTER_LAN_IP, ORIGIN_IP = "10.99.0.1", "10.99.0.2"
ROLES = ("wan", "edge", "client", "router", "origin")


def sh(*argv, check=True, timeout=20, netns=None):
    argv = list(argv)
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise Failure("command failed (%d): %s\n%s%s" % (r.returncode, " ".join(argv), r.stdout, r.stderr))
    return r


def netns_available():
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    for tool in ("ip", "nft"):
        if not shutil.which(tool):
            return "`%s` not found" % tool
    probe = "hx-probe-%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return "`ip netns add` fails here: %s" % r.stderr.strip()
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def remove_stale_namespaces():
    """Delete hx-*-<pid> namespaces left by a test run that was SIGKILLed."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        m = re.match(r"(hx-(?:%s)-(\d+))\b" % "|".join(ROLES), line.strip())
        if m and not pid_alive(int(m.group(2))):
            subprocess.run(["ip", "netns", "del", m.group(1)], capture_output=True)


class Topology:
    def __init__(self):
        pid = os.getpid()
        self.ns = {role: "hx-%s-%d" % (role, pid) for role in ROLES}
        self.created = []

    def __getattr__(self, role):
        ns = self.__dict__.get("ns", {})
        if role in ns:
            return ns[role]
        raise AttributeError(role)

    def destroy(self):
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        self.created = []

    def build(self):
        for role in ROLES:
            sh("ip", "netns", "add", self.ns[role])
            self.created.append(self.ns[role])
            sh("ip", "-n", self.ns[role], "link", "set", "lo", "up")
        wan = self.wan
        sh("ip", "-n", wan, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", wan, "link", "set", "br0", "up")
        # internet side: edge, client, router WAN, all on the bridge
        for role, ifname, addr in (("edge", "eth0", EDGE_IP), ("client", "eth0", CLIENT_IP),
                                   ("router", "wan0", ROUTER_WAN_IP)):
            port = "p-" + role
            sh("ip", "-n", wan, "link", "add", port, "type", "veth", "peer", "name", ifname,
               "netns", self.ns[role])
            sh("ip", "-n", wan, "link", "set", port, "master", "br0", "up")
            sh("ip", "-n", self.ns[role], "addr", "add", addr + "/24", "dev", ifname)
            sh("ip", "-n", self.ns[role], "link", "set", ifname, "up")
        # home LAN: router lan0 <-> origin eth0
        sh("ip", "-n", self.router, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0",
           "netns", self.origin)
        sh("ip", "-n", self.router, "addr", "add", ROUTER_LAN_IP + "/24", "dev", "lan0")
        sh("ip", "-n", self.router, "link", "set", "lan0", "up")
        sh("ip", "-n", self.origin, "addr", "add", ORIGIN_IP + "/24", "dev", "eth0")
        sh("ip", "-n", self.origin, "link", "set", "eth0", "up")
        sh("ip", "-n", self.origin, "route", "add", "default", "via", ROUTER_LAN_IP)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=self.router)
        ruleset = """
table ip hearth_cgnat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ip saddr 10.99.0.0/24 masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan0" oifname "lan0" ct state established,related accept
    iifname "wan0" oifname "lan0" counter drop
  }
}
"""
        r = subprocess.run(["ip", "netns", "exec", self.router, "nft", "-f", "-"], input=ruleset,
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise Failure("nft -f failed in %s: %s" % (self.router, r.stderr.strip()))


PROBE_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4); s.settimeout(10)
print("ready", flush=True)
c, peer = s.accept(); c.sendall(("%s\n" % peer[0]).encode()); c.close()
"""

PROBE_CONNECT = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print("connected " + c.recv(100).decode().strip())
except OSError as e:
    print("failed %s" % (e.__class__.__name__ if not e.strerror else e.strerror))
"""


def probe_connect(netns, host, port, timeout=2.0):
    r = sh(PYTHON, "-c", PROBE_CONNECT, host, str(port), str(timeout), netns=netns, timeout=timeout + 10)
    return r.stdout.strip()


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
