#!/usr/bin/python3
"""The WireGuard link (issue 10) beside the hearth tunnel over plain TCP, in the CGNAT
namespaces of tests/integration/netns.py (origin behind the nftables masquerade router, edge
and client on the public side; wireguard-go on both sides: no kernel module here).

    /usr/bin/python3 bench/wireguard_link.py [--bin-dir build/bin] [--seconds 5] [--rounds 2]

For each round, with tunnel_over_wireguard off (the tunnel over TCP through the NAT) then on
(the tunnel inside the WireGuard link): small GETs (512-byte body, wrk -t1 -c16, keep-alive)
from the client namespace through the edge, and one 200 MB download (curl, MB/s). Then UDP
echo RTT from the edge's namespace to the home's WireGuard address (1,000 sequential probes).
Medians over rounds; prints a Markdown table. About a minute of machine time. Needs root.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
SECONDS = int(next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--seconds=")), 5))
ROUNDS = int(next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--rounds=")), 2))
sys.argv = [a for a in sys.argv if not a.startswith(("--seconds=", "--rounds="))]

from harness import PYTHON, Harness, TestRun, expect_eq, wait_until  # noqa: E402
from netns import EDGE_IP, Topology, netns_available, remove_stale_namespaces, sh  # noqa: E402
from test_wireguard_netns import UDP_ECHO, UDP_PROBE  # noqa: E402

# A small fast HTTP/1.1 service (asyncio, keep-alive): /small 512 bytes, /large?n=BYTES.
SERVICE = r"""
import asyncio, sys
SMALL = b"x" * 512
CHUNK = b"y" * (1 << 20)
async def handle(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            if path.startswith(b"/large"):
                n = int(path.split(b"n=", 1)[1])
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
                while n > 0:
                    w.write(CHUNK[:min(n, len(CHUNK))]); n -= min(n, len(CHUNK))
                    await w.drain()
            else:
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 512\r\n\r\n" + SMALL)
                await w.drain()
    except Exception:
        w.close()
async def main():
    s = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await s.serve_forever()
asyncio.run(main())
"""


def main():
    run = TestRun("bench_wireguard_link", __doc__)
    why = netns_available()
    if why:
        run.skip(why)
    remove_stale_namespaces()
    topo = Topology()
    run.on_cleanup(topo.destroy)
    h = Harness(run)
    topo.build()
    svc = h.spawn("svc", [PYTHON, "-c", SERVICE, "8090"], netns=topo.origin, stdout=subprocess.PIPE)
    expect_eq(svc.p.stdout.readline().strip(), b"ready", "service")
    h.write_edge_config(host=EDGE_IP, ports=(8443, 8080, 7443, 9901))
    tag = os.getpid() % 100000
    with open(h.edge_conf) as f:
        text = f.read().replace('listen_tunnel = "%s:7443"' % EDGE_IP, 'listen_tunnel = "0.0.0.0:7443"')
    with open(h.edge_conf, "w") as f:
        f.write(text + '\n[wireguard]\ninterface = "hbe%d"\nlisten_port = 51820\naddress = "10.77.0.1/24"\n' % tag)
    conf = h.pair_origin([("app.test", None, "http://127.0.0.1:8090")], edge_address="%s:7443" % EDGE_IP)
    h.set_key(conf, "interface", '"hbo%d"' % tag)
    h.set_key(conf, "connections", "1")
    edge = h.start_edge(netns=topo.edge)
    results = {"tcp": {"rps": [], "mbps": []}, "wg": {"rps": [], "mbps": []}}
    origin = None
    for _ in range(ROUNDS):
        for mode in ("tcp", "wg"):
            h.set_key(conf, "tunnel_over_wireguard", "true" if mode == "wg" else "false")
            mark = edge.mark()
            origin = h.start_origin(conf, netns=topo.origin)
            up = edge.wait_event("tunnel.up", timeout=20, since=mark)
            want = "10.77.0.2:" if mode == "wg" else "198.18.0.2:"
            assert str(up.get("peer", "")).startswith(want), (mode, up)
            base = ["ip", "netns", "exec", topo.client]
            wait_until(lambda: h.curl("-o", "/dev/null", "-w", "%{http_code}", h.url("/small"),
                                      netns=topo.client, timeout=10).stdout.strip() == "200", 10, 0.2, "ready")
            out = subprocess.run(base + ["wrk", "-t1", "-c16", "-d%ds" % SECONDS, "-H", "Host: app.test",
                                         "https://%s:8443/small" % EDGE_IP],
                                 capture_output=True, text=True, timeout=SECONDS + 30).stdout
            results[mode]["rps"].append(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)))
            r = h.curl("-o", "/dev/null", "-w", "%{size_download} %{time_total}", h.url("/large?n=200000000"),
                       netns=topo.client, timeout=120)
            size, secs = r.stdout.split()
            results[mode]["mbps"].append(int(size) / float(secs) / 1e6)
            if mode == "wg":
                echo = h.spawn("udp-echo", [PYTHON, "-c", UDP_ECHO, "10.77.0.2", "7996"], netns=topo.origin,
                               stdout=subprocess.PIPE)
                echo.p.stdout.readline()
                probe = sh(PYTHON, "-c", UDP_PROBE, "10.77.0.2", "7996", "1000", netns=topo.edge, timeout=120)
                results.setdefault("udp", []).append(json.loads(probe.stdout.strip().splitlines()[-1]))
                echo.stop()
            origin.stop(timeout=10)
            time.sleep(0.5)
    med = {m: {k: statistics.median(v) for k, v in results[m].items()} for m in ("tcp", "wg")}
    udp = results["udp"]
    print("\n| hearth tunnel | small GET req/s (wrk -t1 -c16) | 1-stream download MB/s |")
    print("|---|---|---|")
    print("| over TCP through the NAT | %.0f | %.0f |" % (med["tcp"]["rps"], med["tcp"]["mbps"]))
    print("| inside the WireGuard link (tunnel_over_wireguard) | %.0f | %.0f |" % (med["wg"]["rps"], med["wg"]["mbps"]))
    print("\nUDP echo over the link, edge ns -> home 10.77.0.2 (1,000 sequential probes): "
          "p50 %.3f ms, p99 %.3f ms, loss %.1f%%" % (statistics.median(u["rtt_ms_p50"] for u in udp),
                                                    statistics.median(u["rtt_ms_p99"] for u in udp),
                                                    100 * statistics.median(u["loss"] for u in udp)))
    print("raw: %s" % json.dumps(results))
    run.passed += 1
    run.finish()


if __name__ == "__main__":
    main()
