#!/usr/bin/env python3
"""Connection limits at accept (issue 9), before any TLS work.

- 1,000 connections from 1,000 distinct loopback addresses (127.1.x.y binds)
  with max_tracked_clients = 600: the edge tracks at most 600 IPs, refuses the
  rest (reason table_full), its RSS stays bounded, and once they close they
  stop counting (hearth_connection_table_entries and hearth_client_connections
  back to ~0).
- max_connections_per_ip = 4: the fifth concurrent connection from one IP is
  closed at once; connection_rate_per_ip: a burst of new connections from one
  IP is cut after its burst. Each refusal is counted by reason (# HELP/# TYPE)
  and logged at most once a second.
- Open WebSockets keep their place in max_connections_per_ip (the upgraded
  pipe outlives the HTTPS session's request path), and give it back when they
  close.
"""

import re
import socket
import time
import urllib.request

from harness import rss_kb, Harness, TestRun, expect, expect_eq, wait_until, ws_upgrade_raw

run = TestRun("conn_limits")
run.require_binaries()
h = Harness(run)

try:
    svc = h.start_service("A")
    h.write_edge_config(extra_edge="\n".join([
        'handshake_timeout = "30s"',
        "max_connections_per_ip = 4",
        'connection_rate_per_ip = "2/s"',
        "connection_burst_per_ip = 8",
        "max_tracked_clients = 600",
    ]))
    edge = h.start_edge()
    origin = h.start_origin(h.pair_origin([("app.test", "/signaling", svc.ws_url),
                                           ("app.test", None, svc.http_url)]))
    h.wait_ready(origin=origin)
except Exception as e:  # noqa: BLE001
    run.setup_failed(e)


def metrics():
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % h.admin_port, timeout=5) as r:
        return r.read().decode()


def metric(text, name, labels=""):
    m = re.search(r"^%s%s (\d+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return int(m.group(1)) if m else None


def connect_from(src, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", h.https_port))
    return s


def closed_by_peer(s, within=2.0):
    """True when the edge closes the socket (EOF or RST) within `within` seconds."""
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@run.case
def metrics_have_help_and_type():
    text = metrics()
    expect("# HELP hearth_connections_refused_total" in text, "HELP line")
    expect("# TYPE hearth_connections_refused_total counter" in text, "TYPE line")
    expect("# TYPE hearth_connection_table_entries gauge" in text, "table gauge")


@run.case
def per_ip_concurrent_cap():
    socks = [connect_from("127.0.0.2") for _ in range(4)]
    try:
        time.sleep(0.2)
        expect(not any(closed_by_peer(s, 0.05) for s in socks), "four are kept")
        fifth = connect_from("127.0.0.2")
        expect(closed_by_peer(fifth), "the fifth connection from 127.0.0.2 is closed at accept")
        fifth.close()
        other = connect_from("127.0.0.3")
        expect(not closed_by_peer(other, 0.2), "another IP is not affected")
        other.close()
    finally:
        for s in socks:
            s.close()
    text = metrics()
    expect(metric(text, "hearth_connections_refused_total", '{reason="max_connections_per_ip"}')
           >= 1, "counted by reason")
    ev = edge.wait_event("accept.refused", timeout=5, limit="max_connections_per_ip")
    expect_eq(ev.get("client"), "127.0.0.2", "logged client")


@run.case
def websockets_keep_their_place():
    ctx = h.ssl_context()
    socks = []
    try:
        for _ in range(4):
            t = ctx.wrap_socket(connect_from("127.0.0.6"), server_hostname="app.test")
            socks.append(t)
            ws_upgrade_raw(t)
        time.sleep(0.2)
        fifth = connect_from("127.0.0.6")
        expect(closed_by_peer(fifth), "a fifth connection beside 4 open WebSockets is closed")
        fifth.close()
    finally:
        for t in socks:
            t.close()
    wait_until(lambda: metric(metrics(), "hearth_client_connections") == 0, 10,
               what="hearth_client_connections back to 0 after the WebSockets closed")
    again = connect_from("127.0.0.6")
    expect(not closed_by_peer(again, 0.3), "a connection once the WebSockets closed is kept")
    again.close()


@run.case
def per_ip_connection_rate():
    # 20 new connections at once from one IP: 8 tokens (the burst), the rest refused.
    before = metric(metrics(), "hearth_connections_refused_total",
                    '{reason="connection_rate_per_ip"}')
    socks = []
    for _ in range(20):
        socks.append(connect_from("127.0.0.4"))
    for s in socks:
        s.close()
    refused = wait_until(lambda: (lambda n: n - before >= 10 and n - before)(
        metric(metrics(), "hearth_connections_refused_total",
               '{reason="connection_rate_per_ip"}')), 5, what="rate refusals counted")
    expect(refused <= 12, "at most 20 - 8 refused by rate: %d" % refused)
    lines = edge.find_all("accept.refused")
    expect(len(lines) <= 4, "refusals logged at most once a second: %d lines" % len(lines))


@run.case
def thousand_addresses_bounded_and_forgotten():
    wait_until(lambda: metric(metrics(), "hearth_client_connections") == 0, 10,
               what="no client connections before")
    before = rss_kb(edge.pid)
    socks = []
    try:
        for i in range(1000):
            socks.append(connect_from("127.1.%d.%d" % (i // 250, i % 250 + 1)))
        # Every accept decided (tracked or refused): slower builds lag behind the client.
        text = wait_until(lambda: (lambda t: metric(t, "hearth_client_connections") >= 590 and
                                   metric(t, "hearth_connections_refused_total",
                                          '{reason="table_full"}') >= 390 and t)(metrics()),
                          20, what="connections counted")
        entries = metric(text, "hearth_connection_table_entries")
        full = metric(text, "hearth_connections_refused_total", '{reason="table_full"}')
        during = rss_kb(edge.pid)
        print("    tracked %d, refused table_full %d, RSS %d -> %d KB (+%d KB)"
              % (entries, full, before, during, during - before))
        expect(entries <= 600, "table bounded by max_tracked_clients: %d" % entries)
        expect(full >= 390, "the rest refused as table_full: %d" % full)
        expect(during - before < 64 * 1024, "RSS grew %d KB for 1000 connections"
               % (during - before))
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: metric(metrics(), "hearth_client_connections") == 0, 15,
               what="connections gone after close")
    # Their buckets refill (8 tokens at 2/s); accepts and closes sweep the table
    # at most once a second: poke it with one connection per poll.
    def forgotten():
        s = connect_from("127.0.0.9")
        s.close()
        time.sleep(0.3)
        return metric(metrics(), "hearth_connection_table_entries") <= 2
    try:
        wait_until(forgotten, 15, interval=0.5, what="table entries forgotten after close")
    except TimeoutError:
        print(metrics())
        raise
    st, _, _ = h.request("GET", "/")
    expect_eq(st, 200, "still serving")


run.finish()
