#!/usr/bin/python3
"""The WireGuard link edge and origin provision themselves (issue 10), in network namespaces.

Same CGNAT topology as test_cgnat_netns.py (tests/integration/netns.py): the origin
10.99.0.2 behind the nftables masquerade router, the edge 198.18.0.1 on the public side.
With [wireguard] in edge.toml, `invite` + `join` give the origin a [wireguard] section;
both programs create their interface (wireguard-go here: this machine's kernel has no
WireGuard module) and the home dials out to the edge's listen_port through the NAT.

Checked: the edge sees the home's handshakes from the router's WAN address; the edge
cannot reach the home's LAN address, only its WireGuard address 10.77.0.2; HTTP and a
WebSocket go through the hearth tunnel carried inside the link (tunnel_over_wireguard:
the edge sees the tunnel come from 10.77.0.2); a UDP echo service at home answers the
edge's namespace over the link (loss and RTT printed); killing the origin's wireguard-go
is noticed and repaired; restarting the origin brings the link back; both programs remove
their interfaces on exit. The kernel backend is exercised when `ip link add ... type
wireguard` works here, and reported as skipped otherwise.

Skips (77) when not root, without namespaces, or without wireguard-go.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERE, PYTHON, Failure, Harness, Skip, TestRun, expect, expect_eq, wait_until  # noqa: E402
from netns import (EDGE_IP, ORIGIN_IP, PROBE_SERVER, ROUTER_WAN_IP, NsHTTPConnection,  # noqa: E402
                   Topology, netns_available, ns_request, probe_connect, remove_stale_namespaces, sh)

EDGE_WG, ORIGIN_WG = "10.77.0.1", "10.77.0.2"
WG_PORT = 51820

UDP_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2]))); s.settimeout(120)
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""

# Sequential probes: each waits for its echo (bounded), so loss and RTT are per packet.
UDP_PROBE = r"""
import json, socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
rtts = []
for i in range(count):
    msg = b"%d:" % i + b"x" * 100
    t = time.perf_counter(); s.sendto(msg, (host, port))
    try:
        while True:
            data, _ = s.recvfrom(2048)
            if data == msg:
                rtts.append((time.perf_counter() - t) * 1000.0); break
    except socket.timeout:
        pass
rtts.sort()
pick = lambda q: round(rtts[min(len(rtts) - 1, int(q * len(rtts)))], 3) if rtts else None
print(json.dumps({"sent": count, "received": len(rtts), "loss": 1 - len(rtts) / count,
                  "rtt_ms_p50": pick(0.5), "rtt_ms_p99": pick(0.99),
                  "rtt_ms_avg": round(sum(rtts) / len(rtts), 3) if rtts else None}))
"""


def admin_get(ns, path, timeout=3.0):
    return ns_request(NsHTTPConnection(ns, EDGE_IP if "edge" in ns else "127.0.0.1", 9901, timeout),
                      "GET", path)


def main():
    run = TestRun("wireguard_netns", __doc__)
    why = netns_available()
    if why:
        run.skip("WireGuard namespace test skipped: " + why)
    if not shutil.which("wireguard-go"):
        run.skip("WireGuard namespace test skipped: wireguard-go not installed (apt install wireguard-go)")
    run.require_binaries()
    remove_stale_namespaces()
    topo = Topology()
    run.on_cleanup(topo.destroy)
    h = Harness(run)
    tag = os.getpid() % 100000
    edge_if, origin_if = "hxe%d" % tag, "hxo%d" % tag
    try:
        topo.build()
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    def origin_admin(path):
        return ns_request(NsHTTPConnection(topo.origin, "127.0.0.1", origin_admin_port, 3.0), "GET", path)

    def edge_status():
        st, _, body = ns_request(NsHTTPConnection(topo.edge, "127.0.0.1", 9901, 3.0), "GET", "/status")
        expect_eq(st, 200, "edge /status")
        return json.loads(body)

    def edge_peer():
        peers = edge_status().get("wireguard", {}).get("peers", [])
        return peers[0] if peers else {}

    def wg_pids(ifname):
        r = sh("pgrep", "-f", "wireguard-go -f %s$" % ifname, check=False)
        return [int(p) for p in r.stdout.split()]

    try:
        svc = h.start_service("home", netns=topo.origin)
        h.write_edge_config(host=EDGE_IP, ports=(8443, 8080, 7443, 9901),
                            origins=[("nas", ["app.test", "*.app.test"]), ("pi", ["pi.test"])])
        with open(h.edge_conf) as f:
            text = f.read()
        # The tunnel listener must also accept on the edge's WireGuard address.
        text = text.replace('listen_tunnel = "%s:7443"' % EDGE_IP, 'listen_tunnel = "0.0.0.0:7443"')
        text += '\n[wireguard]\ninterface = "%s"\nlisten_port = %d\naddress = "%s/24"\n' % (
            edge_if, WG_PORT, EDGE_WG)
        with open(h.edge_conf, "w") as f:
            f.write(text)
        r = subprocess.run([run.bin("hearth-edge"), "check", "--config", h.edge_conf],
                           capture_output=True, text=True, timeout=30)
        expect_eq(r.returncode, 0, "hearth-edge check (%s)" % r.stderr.strip())
        origin_conf = h.pair_origin([("app.test", "/signaling", svc.ws_url),
                                     ("app.test", None, svc.http_url)],
                                    edge_address="%s:7443" % EDGE_IP)
        expect_eq(h.read_key(origin_conf, "address"), "%s/24" % ORIGIN_WG, "join: [wireguard] address")
        expect_eq(h.read_key(origin_conf, "edge_endpoint"), "%s:%d" % (EDGE_IP, WG_PORT),
                  "join: edge_endpoint")
        h.set_key(origin_conf, "tunnel_over_wireguard", "true")
        h.set_key(origin_conf, "interface", '"%s"' % origin_if)
        origin_admin_port = 9902
        h.set_key(origin_conf, "listen_admin", '"127.0.0.1:%d"' % origin_admin_port)
        r = subprocess.run([run.bin("hearth-origin"), "check", "--config", origin_conf],
                           capture_output=True, text=True, timeout=30)
        expect_eq(r.returncode, 0, "hearth-origin check (%s)" % r.stderr.strip())
        expect_eq(oct(os.stat(origin_conf.replace(".toml", ".wg.key")).st_mode & 0o777), "0o600",
                  "origin WireGuard key mode")
        edge = h.start_edge(netns=topo.edge)
        backend = edge.wait_event("wireguard.backend", timeout=10)
        origin = h.start_origin(origin_conf, netns=topo.origin)
        origin.wait_event("wireguard.backend", timeout=10)
        up = edge.wait_event("tunnel.up", timeout=20)
        origin_up = origin.wait_event("tunnel.up", timeout=5)
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    @run.case
    def link_comes_up_with_the_home_dialing_out():
        expect_eq(backend.get("backend"), "wireguard-go", "edge backend (no kernel module here)")
        expect("no kernel WireGuard" in str(backend.get("reason", "")), "backend reason: %s" % backend)
        wait_until(lambda: edge_peer().get("healthy"), 10, 0.2, "edge: a fresh handshake with the origin")
        peer = edge_peer()
        # The home's handshakes arrive through the NAT, from the router's WAN address.
        expect(peer["endpoint"].startswith(ROUTER_WAN_IP + ":"), "edge peer endpoint: %s" % peer)
        expect_eq(peer["name"], "nas", "edge peer name")
        expect_eq(peer["allowed_ips"], ["%s/32" % ORIGIN_WG], "edge peer allowed IPs")
        st, _, body = origin_admin("/readyz")
        expect_eq(st, 200, "origin /readyz (%s)" % body)
        st, _, body = ns_request(NsHTTPConnection(topo.edge, "127.0.0.1", 9901, 3.0), "GET", "/metrics")
        expect(re.search(r'hearth_wireguard_peer_healthy\{interface="%s",peer="nas"\} 1' % edge_if,
                         body.decode()), "edge /metrics:\n" + body.decode()[-1500:])
        expect(re.search(r'hearth_wireguard_up\{interface="%s",backend="wireguard-go"\} 1' % edge_if,
                         body.decode()), "hearth_wireguard_up in edge /metrics")
        # `status` runs inside the edge's namespace, where the admin listener is.
        r = sh(run.bin("hearth-edge"), "status", "--json", "--admin", "127.0.0.1:9901",
               netns=topo.edge, check=False)
        expect("handshake_age_s" in r.stdout and "rx_bytes" in r.stdout, "hearth-edge status: %s" % r.stdout[-800:])

    @run.case
    def edge_reaches_the_wireguard_address_not_the_lan():
        srv = subprocess.Popen(["ip", "netns", "exec", topo.origin, PYTHON, "-c", PROBE_SERVER, "0.0.0.0", "7997"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            expect(srv.stdout.readline().strip() == "ready", "probe server did not start")
            got = probe_connect(topo.edge, ORIGIN_IP, 7997, timeout=1.5)
            expect(got.startswith("failed"), "edge -> home LAN %s must fail, got %r" % (ORIGIN_IP, got))
            got = probe_connect(topo.edge, ORIGIN_WG, 7997, timeout=3.0)
            expect_eq(got, "connected " + EDGE_WG, "edge -> home over WireGuard (peer seen at home)")
        finally:
            srv.kill()
            srv.wait(5)

    @run.case
    def http_and_websocket_through_the_tunnel_inside_the_link():
        expect_eq(str(origin_up.get("edge")), "%s:7443" % EDGE_WG, "origin dialed the edge's WireGuard address")
        expect(str(up.get("peer", "")).startswith(ORIGIN_WG + ":"), "edge saw the tunnel from %s: %s" % (ORIGIN_WG, up))

        def once():
            r = h.curl("-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", h.url("/"),
                       netns=topo.client, timeout=15)
            return r.stdout.strip() == "200"
        wait_until(once, 10, 0.2, "https://app.test/ from the client ns")
        r = h.curl("--max-time", "20", h.url("/download?bytes=2000000&seed=wg"), "-o", "-",
                   netns=topo.client, text=False)
        import hashlib
        import home_service
        expect_eq(hashlib.sha256(r.stdout).hexdigest(), home_service.download_sha256(2000000, "wg"),
                  "sha256 of a 2 MB download through the tunnel inside WireGuard")
        r = sh("ip", "netns", "exec", topo.client, PYTHON, os.path.join(HERE, "harness.py"), "ws-check",
               "--cafile", h.cert, "--connect", EDGE_IP, "--port", "8443", "--path", "/signaling",
               check=False, timeout=90)
        out = r.stdout.strip().splitlines()
        expect(out, "ws-check printed nothing; stderr: %s" % r.stderr[-2000:])
        res = json.loads(out[-1])
        expect(r.returncode == 0 and not res["problems"], "WebSocket echo problems: %s" % res["problems"])
        # The status snapshot is refreshed once a second (Link::tick): poll briefly.
        deadline = time.monotonic() + 5
        rx = edge_peer().get("rx_bytes", 0)
        while rx <= 2000000 and time.monotonic() < deadline:
            time.sleep(0.25)
            rx = edge_peer().get("rx_bytes", 0)
        expect(rx > 2000000, "edge WireGuard rx_bytes should include the download: %s" % rx)

    @run.case
    def udp_echo_at_home_over_the_link():
        srv = subprocess.Popen(["ip", "netns", "exec", topo.origin, PYTHON, "-c", UDP_ECHO, ORIGIN_WG, "7996"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            expect(srv.stdout.readline().strip() == "ready", "UDP echo did not start")
            r = sh(PYTHON, "-c", UDP_PROBE, ORIGIN_WG, "7996", "200", netns=topo.edge, timeout=60)
            res = json.loads(r.stdout.strip().splitlines()[-1])
            print("  UDP echo over WireGuard (edge ns -> home %s): %s" % (ORIGIN_WG, json.dumps(res)), flush=True)
            expect(res["loss"] <= 0.02, "UDP loss over the link: %s" % res)
        finally:
            srv.kill()
            srv.wait(5)

    @run.case
    def invite_and_sighup_reach_the_running_edge():
        names = lambda: sorted(p["name"] for p in edge_status()["wireguard"]["peers"])  # noqa: E731
        token = h.invite("pi", edge_address="%s:7443" % EDGE_IP)
        expect("hearth1-" in token, "invite pi")
        wait_until(lambda: names() == ["nas", "pi"], 5, 0.1, "the invited origin as a peer without a reload")
        routes = sh("ip", "route", "show", "dev", edge_if, netns=topo.edge).stdout
        expect("10.77.0.3 " in routes, "a route for pi's address:\n" + routes)
        with open(h.edge_conf) as f:
            text = f.read()
        with open(h.edge_conf, "w") as f:
            f.write(text.replace('[[origins]]\nname = "pi"\nhostnames = ["pi.test"]\n', ""))
        mark = edge.mark()
        edge.signal(signal.SIGHUP)
        edge.wait_event("reload.done", timeout=5, since=mark)
        wait_until(lambda: names() == ["nas"], 5, 0.1, "pi's peer gone after SIGHUP dropped it from [[origins]]")
        expect(edge_peer().get("healthy"), "nas still healthy: %s" % edge_peer())
        routes = sh("ip", "route", "show", "dev", edge_if, netns=topo.edge).stdout
        expect("10.77.0.3 " not in routes, "pi's route removed with its peer:\n" + routes)

    @run.case
    def killing_wireguard_go_is_noticed_and_repaired():
        pids = wg_pids(origin_if)
        expect(len(pids) == 1, "one wireguard-go for %s, got %s" % (origin_if, pids))
        mark = origin.mark()
        os.kill(pids[0], signal.SIGKILL)
        origin.wait_event("wireguard.down", timeout=5, since=mark)
        origin.wait_event("wireguard.repaired", timeout=10, since=mark)
        wait_until(lambda: wg_pids(origin_if) and wg_pids(origin_if) != pids, 5, 0.1, "a new wireguard-go")
        got = None

        def reachable():
            nonlocal got
            got = probe_connect(topo.edge, ORIGIN_WG, 7995, timeout=1.0)
            return "refused" in got  # the link is back: the home answers (nothing listens: RST)
        wait_until(reachable, 15, 0.2, "edge -> %s over the repaired link (last: %r)" % (ORIGIN_WG, got))
        st, _, body = origin_admin("/status")
        expect(json.loads(body)["wireguard"]["repairs"] >= 1, "origin /status repairs: %s" % body[:500])
        # The tunnel, if it went down with the link, comes back over it.
        wait_until(lambda: h.curl("-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", h.url("/"),
                                  netns=topo.client, timeout=10).stdout.strip() == "200",
                   40, 0.3, "HTTP through the edge after the repair")

    @run.case
    def origin_restart_brings_the_link_back_and_cleans_up():
        nonlocal origin
        origin.stop(timeout=10)
        expect(origin.find("wireguard.removed"), "origin logged wireguard.removed")
        links = sh("ip", "-o", "link", "show", netns=topo.origin).stdout
        expect(origin_if not in links, "origin interface removed on exit:\n" + links)
        mark = edge.mark()
        origin = h.start_origin(origin_conf, netns=topo.origin)
        origin.wait_event("tunnel.up", timeout=20)
        edge.wait_event("tunnel.up", timeout=10, since=mark)
        wait_until(lambda: edge_peer().get("healthy") and edge_peer().get("handshake_age_s", 99) < 10,
                   10, 0.2, "a fresh handshake after the restart")
        got = probe_connect(topo.edge, ORIGIN_WG, 7995, timeout=2.0)
        expect("refused" in got, "edge -> %s after the restart: %r" % (ORIGIN_WG, got))

    @run.case
    def edge_removes_its_interface_on_exit():
        edge.stop(timeout=10)
        origin.stop(timeout=10)
        for ns, ifname in ((topo.edge, edge_if), (topo.origin, origin_if)):
            links = sh("ip", "-o", "link", "show", netns=ns).stdout
            expect(ifname not in links, "%s still has %s:\n%s" % (ns, ifname, links))
        expect(not wg_pids(edge_if) and not wg_pids(origin_if), "wireguard-go processes left behind")

    @run.case
    def kernel_backend_when_the_kernel_has_wireguard():
        probe = "hxk%d" % tag
        r = sh("ip", "link", "add", probe, "type", "wireguard", netns=topo.client, check=False)
        if r.returncode != 0:
            raise Skip("no kernel WireGuard here (`ip link add type wireguard`: %s); the netlink "
                       "path is covered by the byte-layout unit tests [wg][netlink]" % r.stderr.strip())
        sh("ip", "link", "del", probe, netns=topo.client, check=False)
        conf = h.path("edge-kernel.toml")
        with open(h.edge_conf) as f:
            text = f.read().replace(edge_if, probe).replace(EDGE_IP, "127.0.0.1")
        text = text.replace("0.0.0.0:7443", "127.0.0.1:7443")
        with open(conf, "w") as f:
            f.write(text)
        p = h.spawn("edge-kernel", ["env", "HEARTH_WG_BACKEND=kernel"] + h._hearth_argv("hearth-edge", conf),
                    netns=topo.client)
        ev = p.wait_event("wireguard.up", timeout=10)
        expect_eq(ev.get("backend"), "kernel", "backend")
        out = sh("ip", "-d", "link", "show", probe, netns=topo.client).stdout
        expect("wireguard" in out, "kernel link: %s" % out)
        if shutil.which("wg"):
            dump = sh("wg", "show", probe, "dump", netns=topo.client).stdout
            expect(str(WG_PORT) in dump.splitlines()[0], "wg show dump: %s" % dump)
        p.stop(timeout=10)
        out = sh("ip", "-o", "link", "show", netns=topo.client).stdout
        expect(probe not in out, "kernel link removed on exit")

    run.finish()


if __name__ == "__main__":
    main()
