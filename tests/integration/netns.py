"""Network-namespace topology shared by the CGNAT and chaos integration tests.

    client ns  198.18.0.3 ─┐
    edge ns    198.18.0.1 ─┼─ bridge br0 in the "wan" ns ("the internet", 198.18.0.0/24)
    router ns  198.18.0.2 ─┘  wan0: nftables masquerade for 10.99.0.0/24,
               10.99.0.1  ─┐        forward filter: nothing new from wan0 to lan0
    origin ns  10.99.0.2  ─┘  default route via 10.99.0.1; services on 127.0.0.1

Namespaces are named hx-<role>-<pid>; `remove_stale_namespaces()` deletes the
ones whose pid is gone (a run that was SIGKILLed), `Topology.destroy()` the
ones this process made.

Besides building the topology, this module breaks it on purpose (chaos test):
an nftables blackhole on the router, link down/up, a new masquerade port range
and a conntrack flush (ctnetlink, from Python: no `conntrack` tool needed). It
also opens sockets inside a namespace from this process (`setns(2)` on the
calling thread only, switched back at once; a socket stays in the namespace it
was created in), so clients in the client namespace run in-process and can be
timed precisely.
"""

import contextlib
import ctypes
import http.client
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PYTHON, Failure, pid_alive  # noqa: E402

EDGE_IP, ROUTER_WAN_IP, CLIENT_IP = "198.18.0.1", "198.18.0.2", "198.18.0.3"
ROUTER_LAN_IP, ORIGIN_IP = "10.99.0.1", "10.99.0.2"
ROLES = ("wan", "edge", "client", "router", "origin")

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*argv, check=True, timeout=20, netns=None, input=None):
    argv = list(argv)
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise Failure("command failed (%d): %s\n%s%s" % (r.returncode, " ".join(argv), r.stdout, r.stderr))
    return r


def netns_available():
    """None if namespaces + nftables work here, else the reason they don't."""
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
        m = re.match(r"(hx-(?:%s|probe)-(\d+))\b" % "|".join(ROLES), line.strip())
        if m and not pid_alive(int(m.group(2))):
            subprocess.run(["ip", "netns", "del", m.group(1)], capture_output=True)


# ---------------------------------------------------------------------------
# Sockets inside a namespace, from this process


@contextlib.contextmanager
def in_netns(name):
    """Switch the calling thread into namespace `name` for the with-block."""
    target = os.open("/var/run/netns/%s" % name, os.O_RDONLY | os.O_CLOEXEC)
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (name, os.strerror(e)))
        try:
            yield
        finally:
            if _libc.setns(back, CLONE_NEWNET) != 0:
                # Never go on in the wrong namespace.
                sys.stderr.write("netns: cannot switch back from %s, exiting\n" % name)
                os._exit(3)
    finally:
        os.close(target)
        os.close(back)


def connect_in(ns, addr, timeout):
    """A TCP socket created in namespace ns, connected to addr."""
    with in_netns(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(addr)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s
    except Exception:
        s.close()
        raise


class NsHTTPSConnection(http.client.HTTPSConnection):
    """http.client over TLS whose TCP socket lives in namespace `ns`."""

    def __init__(self, ns, connect_ip, port, host, cafile, timeout):
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.set_alpn_protocols(["http/1.1"])
        super().__init__(host, port, timeout=timeout, context=ctx)
        self._ns = ns
        self._ip = connect_ip

    def connect(self):
        sock = connect_in(self._ns, (self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class NsHTTPConnection(http.client.HTTPConnection):
    def __init__(self, ns, ip, port, timeout):
        super().__init__(ip, port, timeout=timeout)
        self._ns = ns

    def connect(self):
        self.sock = connect_in(self._ns, (self.host, self.port), self.timeout)


def ns_request(conn, method, path, headers=None, body=None):
    """One request on conn, then close: (status, {lower header: value}, body)."""
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# conntrack over ctnetlink (NETLINK_NETFILTER), run inside the router namespace

_NETLINK_NETFILTER = 12
_NFNL_SUBSYS_CTNETLINK = 1
_IPCTNL_MSG_CT_GET, _IPCTNL_MSG_CT_DELETE = 1, 2
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_DUMP = 0x1, 0x4, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3


def _nl_attrs(buf):
    out = {}
    i = 0
    while i + 4 <= len(buf):
        ln, ty = struct.unpack_from("=HH", buf, i)
        if ln < 4:
            break
        out[ty & 0x3FFF] = buf[i + 4:i + ln]
        i += (ln + 3) & ~3
    return out


def _ct_tuple(buf):
    """CTA_TUPLE_* → (src, sport, dst, dport, proto)."""
    a = _nl_attrs(buf)
    ip = _nl_attrs(a.get(1, b""))       # CTA_TUPLE_IP: CTA_IP_V4_SRC=1, CTA_IP_V4_DST=2
    pr = _nl_attrs(a.get(2, b""))       # CTA_TUPLE_PROTO: NUM=1, SRC_PORT=2, DST_PORT=3

    def port(k):
        return struct.unpack("!H", pr[k])[0] if k in pr else None
    return (socket.inet_ntoa(ip[1]) if 1 in ip else None, port(2),
            socket.inet_ntoa(ip[2]) if 2 in ip else None, port(3),
            pr[1][0] if 1 in pr else None)


def _ctnetlink(msgtype, flags):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER)
    try:
        s.settimeout(5)
        payload = struct.pack("=BBH", socket.AF_INET, 0, 0)  # nfgenmsg, res_id 0
        s.send(struct.pack("=IHHII", 16 + len(payload), (_NFNL_SUBSYS_CTNETLINK << 8) | msgtype,
                           flags, 1, 0) + payload)
        entries, err, done = [], None, False
        while not done:
            data = s.recv(1 << 16)
            i = 0
            while i + 16 <= len(data):
                ln, ty, _fl, _seq, _pid = struct.unpack_from("=IHHII", data, i)
                body = data[i + 16:i + ln]
                if ty == _NLMSG_DONE:
                    done = True
                    break
                if ty == _NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body)[0]
                    done = True
                    break
                a = _nl_attrs(body[4:])
                entries.append((_ct_tuple(a.get(1, b"")), _ct_tuple(a.get(2, b""))))
                i += (ln + 3) & ~3
            if not flags & _NLM_F_DUMP:
                done = True
        return entries, err
    finally:
        s.close()


def conntrack_list(ns):
    """Conntrack entries of ns: [((src, sport, dst, dport, proto) original, (...) reply)]."""
    with in_netns(ns):
        entries, err = _ctnetlink(_IPCTNL_MSG_CT_GET, _NLM_F_REQUEST | _NLM_F_DUMP)
    if err:
        raise Failure("conntrack dump in %s failed: %s" % (ns, os.strerror(err)))
    return entries


def conntrack_flush(ns):
    """Delete every IPv4 conntrack entry (and so every NAT mapping) in ns, like `conntrack -F`."""
    with in_netns(ns):
        _, err = _ctnetlink(_IPCTNL_MSG_CT_DELETE, _NLM_F_REQUEST | _NLM_F_ACK)
    if err:
        raise Failure("conntrack flush in %s failed: %s" % (ns, os.strerror(err)))


# ---------------------------------------------------------------------------
# The topology


NAT_RULESET = """
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

    def nft(self, role, script):
        r = subprocess.run(["ip", "netns", "exec", self.ns[role], "nft", "-f", "-"], input=script,
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise Failure("nft -f failed in %s: %s\n%s" % (self.ns[role], r.stderr.strip(), script))

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
        self.nft("router", NAT_RULESET)

    # -- chaos ---------------------------------------------------------------
    def blackhole(self, port):
        """Router silently drops every forwarded TCP packet to or from `port` (no RST, no ICMP).

        Runs before the NAT's own forward filter (priority -10), so established
        tunnel packets are dropped in both directions, and new SYNs as well.
        """
        self.nft("router", """
table ip hearth_chaos {
  chain forward {
    type filter hook forward priority -10; policy accept;
    tcp dport %d counter drop
    tcp sport %d counter drop
  }
}
""" % (port, port))

    def blackhole_counters(self):
        """(packets dropped towards the port, packets dropped from it)."""
        out = sh("nft", "list", "chain", "ip", "hearth_chaos", "forward", netns=self.router).stdout
        counts = [int(x) for x in re.findall(r"counter packets (\d+)", out)]
        return tuple(counts[:2]) if len(counts) >= 2 else (0, 0)

    def unblackhole(self, check=True):
        sh("nft", "delete", "table", "ip", "hearth_chaos", netns=self.router, check=check)

    def link(self, role, ifname, up):
        sh("ip", "-n", self.ns[role], "link", "set", ifname, "up" if up else "down")

    def set_masquerade(self, ports=None):
        """Masquerade out of wan0 with source ports in `ports` ("lo-hi"), or any port (None)."""
        rules = ""
        if ports:  # a port range needs a transport protocol match
            rules += ('add rule ip hearth_cgnat postrouting oifname "wan0" ip saddr 10.99.0.0/24 '
                      'meta l4proto { tcp, udp } masquerade to :%s\n' % ports)
        rules += 'add rule ip hearth_cgnat postrouting oifname "wan0" ip saddr 10.99.0.0/24 masquerade\n'
        self.nft("router", "flush chain ip hearth_cgnat postrouting\n" + rules)


# ---------------------------------------------------------------------------
# TCP probes (a subprocess in a namespace)

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
