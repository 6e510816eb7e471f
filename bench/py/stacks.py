"""The five stacks of bench/run, in two network namespaces made for the run.

    namespace "vps"  (10.201.0.1 on a veth)        namespace "home" (10.201.0.2)
    ----------------------------------------        ------------------------------------
    clients (wrk, curl, node) on 127.0.0.1          home service: nginx :8080 (files),
    S1 nginx :8441 ----- plain HTTP over veth ----> node ws echo :8081 (shared by all)
    S2 nginx :8442 -> 127.0.0.1:18080/18081 = sshd <== ssh -N -R (home dials out)
    S3 nginx :8443 -> 10.202.0.2 over wg0 (wireguard-go) <== wireguard-go, endpoint = vps
    S4 hearth-edge :8444, tunnel :7443 <== hearth-origin (home dials out)
    S0 the clients straight to 10.201.0.2:8080/:8081 (plain HTTP / ws)

Every process is started here through `ip netns exec`, remembered by PID, and stopped by
PID (SIGTERM, bounded wait, SIGKILL). As a last resort, cleanup() kills what still runs
inside the two namespaces (processes it started: nothing else lives there), then deletes
the namespaces, which removes the veth and the TUN devices.
"""

import ctypes
import json
import os
import shutil
import signal
import subprocess
import time

PYTHON = "/usr/bin/python3"
_libc = ctypes.CDLL(None, use_errno=True)

VPS_IP, HOME_IP = "10.201.0.1", "10.201.0.2"
WG_VPS_IP, WG_HOME_IP = "10.202.0.1", "10.202.0.2"
SVC_HTTP, SVC_WS = 8080, 8081
EDGE_PORT = {"S1": 8441, "S2": 8442, "S3": 8443, "S4": 8444}
SSH_PORT, SSH_FWD_HTTP, SSH_FWD_WS = 2222, 18080, 18081
TUNNEL_PORT, ADMIN_PORT, WG_PORT = 7443, 9901, 51820

STACKS = ["S0", "S1", "S2", "S3", "S4"]
STACK_LABEL = {
    "S0": "S0 direct",
    "S1": "S1 nginx TLS",
    "S2": "S2 nginx+ssh -R",
    "S3": "S3 nginx+WireGuard",
    "S4": "S4 hearth",
}


def log(msg):
    print("bench: " + msg, file=__import__("sys").stderr, flush=True)


def _child_setup():
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the bench


def stop_on_signals():
    """SIGTERM, SIGINT and SIGHUP raise KeyboardInterrupt, so a bench's `finally` cleans up."""
    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)


def run(argv, check=True, capture=True, timeout=60, **kw):
    r = subprocess.run(argv, capture_output=capture, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), r.returncode,
                                                  (r.stderr or r.stdout or "").strip()[-2000:]))
    return r


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - polled predicates fail while things start
            last = e
        time.sleep(interval)
    raise TimeoutError("timed out after %.0fs waiting for %s%s" % (
        timeout, what, " (%r)" % last if last else ""))


class Proc:
    def __init__(self, name, popen, log_path):
        self.name, self.popen, self.log_path = name, popen, log_path

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def stop(self, grace=10.0, sig=signal.SIGTERM):
        if self.popen.poll() is not None:
            return
        try:
            self.popen.send_signal(sig)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            log("%s (pid %d) still running after %.0fs: SIGKILL" % (self.name, self.pid, grace))
            self.popen.kill()
            self.popen.wait(5)


def descendants(pid):
    """pid and every process below it (from /proc, one pass)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
            ppid = int(s[s.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


class Lab:
    """Namespaces, the shared home service and all five stacks."""

    def __init__(self, root, bin_dir, workdir, large_bytes, part_bytes, small_bytes=512,
                 edge_workers=0, origin_workers=0):
        self.edge_workers, self.origin_workers = edge_workers, origin_workers
        self.root, self.bin_dir, self.dir = root, bin_dir, workdir
        self.js = os.path.join(root, "bench", "js")
        self.node = shutil.which("node") or "/usr/bin/node"
        self.large_bytes, self.part_bytes, self.small_bytes = large_bytes, part_bytes, small_bytes
        tag = "%04d" % (os.getpid() % 10000)
        self.ns_vps, self.ns_home = "hb%sv" % tag, "hb%sh" % tag
        self.veth_vps, self.veth_home = "hb%sv0" % tag, "hb%sh0" % tag
        self.wg_vps, self.wg_home = "hbwg%sv" % tag, "hbwg%sh" % tag
        self.procs = {}
        self.made_ns = []
        self.cert = os.path.join(workdir, "cert.pem")
        self.key = os.path.join(workdir, "key.pem")

    # ----- processes -----------------------------------------------------------------
    def spawn(self, name, ns, argv, stdin=None, stdout=None, env=None, logname=None):
        log_path = os.path.join(self.dir, "%s.log" % (logname or name))
        logf = open(log_path, "ab")
        full = ["ip", "netns", "exec", ns] + list(argv)
        e = dict(os.environ)
        if env:
            e.update(env)
        p = subprocess.Popen(full, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                             stdout=stdout if stdout is not None else logf, stderr=logf,
                             preexec_fn=_child_setup, env=e, cwd=self.dir)
        logf.close()
        proc = Proc(name, p, log_path)
        if stdout is None:  # helpers with pipes are owned by their caller, not the lab
            self.procs[name] = proc
        return proc

    def stop(self, name, grace=10.0, sig=signal.SIGTERM):
        p = self.procs.pop(name, None)
        if p:
            p.stop(grace, sig)

    def check_alive(self):
        for name, p in self.procs.items():
            if not p.alive():
                tail = ""
                try:
                    with open(p.log_path, errors="replace") as f:
                        tail = "".join(f.readlines()[-15:])
                except OSError:
                    pass
                raise RuntimeError("%s exited (status %s); end of %s:\n%s" % (
                    name, p.popen.returncode, p.log_path, tail))

    def nsexec(self, ns, argv, **kw):
        return run(["ip", "netns", "exec", ns] + list(argv), **kw)

    def listening(self, ns, port, proto="t"):
        r = self.nsexec(ns, ["ss", "-Hln" + proto, "sport = :%d" % port], check=False)
        return bool(r.stdout.strip())

    def wait_port(self, ns, port, what, proto="t", timeout=30):
        def ok():
            self.check_alive()
            return self.listening(ns, port, proto)
        wait_until(ok, timeout, what)

    def http_code(self, url, timeout=3):
        r = self.nsexec(self.ns_vps, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                      "--max-time", str(timeout), "--cacert", self.cert, url],
                        check=False, timeout=timeout + 5)
        return r.stdout.strip()

    def wait_http(self, url, what, timeout=30):
        def ok():
            self.check_alive()
            return self.http_code(url) == "200"
        wait_until(ok, timeout, what, interval=0.1)

    # ----- URLs seen from the client (in the vps namespace) ------------------------------
    def url(self, stack, path):
        if stack == "S0":
            if path.startswith("/ws"):
                return "ws://%s:%d%s" % (HOME_IP, SVC_WS, path)
            return "http://%s:%d%s" % (HOME_IP, SVC_HTTP, path)
        scheme = "wss" if path.startswith("/ws") else "https"
        return "%s://localhost:%d%s" % (scheme, EDGE_PORT[stack], path)

    # ----- network ----------------------------------------------------------------------
    def setup_network(self):
        for ns in (self.ns_vps, self.ns_home):
            run(["ip", "netns", "add", ns])
            self.made_ns.append(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "link", "add", self.veth_vps, "type", "veth", "peer", "name", self.veth_home])
        run(["ip", "link", "set", self.veth_vps, "netns", self.ns_vps])
        run(["ip", "link", "set", self.veth_home, "netns", self.ns_home])
        run(["ip", "-n", self.ns_vps, "addr", "add", VPS_IP + "/24", "dev", self.veth_vps])
        run(["ip", "-n", self.ns_home, "addr", "add", HOME_IP + "/24", "dev", self.veth_home])
        run(["ip", "-n", self.ns_vps, "link", "set", self.veth_vps, "up"])
        run(["ip", "-n", self.ns_home, "link", "set", self.veth_home, "up"])

    def make_cert(self):
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "30", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost",
             "-addext", "basicConstraints=critical,CA:TRUE"])
        os.chmod(self.key, 0o600)

    # ----- the home service (shared by every stack) ---------------------------------------
    def start_service(self):
        www = os.path.join(self.dir, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "small.html"), "w") as f:
            body = "<!doctype html><title>hearth bench</title><p>small page</p>\n"
            f.write(body + "x" * max(0, self.small_bytes - len(body) - 1) + "\n")
        for name, size in (("large.bin", self.large_bytes), ("part.bin", self.part_bytes)):
            with open(os.path.join(www, name), "wb") as f:
                chunk = os.urandom(1 << 20)
                left = size
                while left > 0:
                    n = min(left, len(chunk))
                    f.write(chunk[:n])
                    left -= n
        conf = os.path.join(self.dir, "nginx-home.conf")
        with open(conf, "w") as f:
            f.write("""# The home service shared by every stack: static files.
user root;
worker_processes 2;
worker_rlimit_nofile 20000;
pid {d}/nginx-home.pid;
error_log {d}/nginx-home.err warn;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  default_type application/octet-stream;
  client_body_temp_path {d}/tmp-home;
  proxy_temp_path {d}/tmp-home;
  fastcgi_temp_path {d}/tmp-home;
  uwsgi_temp_path {d}/tmp-home;
  scgi_temp_path {d}/tmp-home;
  server {{
    listen 0.0.0.0:{port} backlog=4096 reuseport;
    root {www};
    location = /small {{ try_files /small.html =404; }}
    location = /large {{ try_files /large.bin =404; }}
    location = /part {{ try_files /part.bin =404; }}
  }}
}}
""".format(d=self.dir, www=www, port=SVC_HTTP))
        os.makedirs(os.path.join(self.dir, "tmp-home"), exist_ok=True)
        self.start_svc_nginx()
        self.start_svc_ws()

    def start_svc_nginx(self):
        conf = os.path.join(self.dir, "nginx-home.conf")
        self.spawn("svc-nginx", self.ns_home, ["nginx", "-c", conf, "-g", "daemon off;"])
        self.wait_port(self.ns_home, SVC_HTTP, "home nginx")

    def start_svc_ws(self):
        self.spawn("svc-ws", self.ns_home, [self.node, os.path.join(self.js, "ws_echo_server.js"),
                                            "0.0.0.0", str(SVC_WS)])
        self.wait_port(self.ns_home, SVC_WS, "home ws echo")

    # ----- S1-S3: nginx on the VPS --------------------------------------------------------
    def nginx_vps_conf(self, keepalive):
        """One nginx for S1-S3 (three server blocks, three upstreams): the recipe users
        copy (seed 000: proxy_http_version 1.1, Upgrade/Connection for WebSocket, an
        upstream keepalive pool, 7-day WebSocket timeouts), TLS settings as certbot writes
        them. Only the upstream address differs between the stacks."""
        ups = {
            "S1": (HOME_IP, SVC_HTTP, HOME_IP, SVC_WS),
            "S2": ("127.0.0.1", SSH_FWD_HTTP, "127.0.0.1", SSH_FWD_WS),
            "S3": (WG_HOME_IP, SVC_HTTP, WG_HOME_IP, SVC_WS),
        }
        ka = "    keepalive %d;\n" % keepalive if keepalive > 0 else ""
        parts = []
        for s, (hh, hp, wh, wp) in ups.items():
            parts.append("""
  upstream {s}_app {{
    server {hh}:{hp};
{ka}  }}
  upstream {s}_ws {{
    server {wh}:{wp};
  }}
  server {{
    listen 127.0.0.1:{port} ssl http2 reuseport backlog=4096;
    server_name localhost;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_session_cache shared:{s}_SSL:10m;
    ssl_session_timeout 1440m;
    ssl_session_tickets off;
    ssl_protocols TLSv1.2 TLSv1.3;
    location /ws {{
      proxy_pass http://{s}_ws;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_connect_timeout 7d;
      proxy_send_timeout 7d;
      proxy_read_timeout 7d;
    }}
    location / {{
      proxy_pass http://{s}_app;
      proxy_http_version 1.1;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
  }}
""".format(s=s, hh=hh, hp=hp, wh=wh, wp=wp, ka=ka, port=EDGE_PORT[s], cert=self.cert, key=self.key))
        return """# VPS nginx for S1 (straight to the service), S2 (ssh -R ports), S3 (WireGuard peer).
user root;
worker_processes 2;
worker_rlimit_nofile 20000;
pid {d}/nginx-vps.pid;
error_log {d}/nginx-vps.err warn;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {d}/tmp-vps;
  proxy_temp_path {d}/tmp-vps;
  fastcgi_temp_path {d}/tmp-vps;
  uwsgi_temp_path {d}/tmp-vps;
  scgi_temp_path {d}/tmp-vps;
  map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      '';
  }}
{servers}}}
""".format(d=self.dir, servers="".join(parts))

    def start_nginx_vps(self, keepalive=64):
        conf = os.path.join(self.dir, "nginx-vps.conf")
        os.makedirs(os.path.join(self.dir, "tmp-vps"), exist_ok=True)
        with open(conf, "w") as f:
            f.write(self.nginx_vps_conf(keepalive))
        self.spawn("vps-nginx", self.ns_vps, ["nginx", "-c", conf, "-g", "daemon off;"])
        for s in ("S1", "S2", "S3"):
            self.wait_port(self.ns_vps, EDGE_PORT[s], "vps nginx :%d" % EDGE_PORT[s])

    # ----- S2: sshd on the VPS, ssh -N -R from home ----------------------------------------
    def setup_ssh(self):
        d = self.dir
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d + "/ssh_host_key", "-C", "bench-host"])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d + "/home_key", "-C", "bench-home"])
        shutil.copy(d + "/home_key.pub", d + "/authorized_keys")
        with open(d + "/ssh_host_key.pub") as f:
            host_pub = " ".join(f.read().split()[:2])
        with open(d + "/known_hosts", "w") as f:
            f.write("[%s]:%d %s\n" % (VPS_IP, SSH_PORT, host_pub))
        with open(d + "/sshd_config", "w") as f:
            f.write("""# Throwaway sshd for the S2 stack: key only, remote forwarding on loopback.
Port {port}
ListenAddress {ip}
HostKey {d}/ssh_host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowTcpForwarding remote
GatewayPorts no
X11Forwarding no
PrintMotd no
ClientAliveInterval 15
ClientAliveCountMax 3
MaxStartups 100
LogLevel ERROR
""".format(port=SSH_PORT, ip=VPS_IP, d=d))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir

    def start_sshd(self):
        self.spawn("vps-sshd", self.ns_vps, [shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e",
                                             "-f", self.dir + "/sshd_config"])
        self.wait_port(self.ns_vps, SSH_PORT, "sshd")

    def start_ssh_client(self, wait=True):
        """What users run at home (usually under autossh or a systemd unit)."""
        d = self.dir
        self.spawn("home-ssh", self.ns_home, [
            "ssh", "-N", "-F", "/dev/null", "-i", d + "/home_key",
            "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=" + d + "/known_hosts",
            "-o", "StrictHostKeyChecking=yes", "-o", "ExitOnForwardFailure=yes",
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
            "-R", "127.0.0.1:%d:127.0.0.1:%d" % (SSH_FWD_HTTP, SVC_HTTP),
            "-R", "127.0.0.1:%d:127.0.0.1:%d" % (SSH_FWD_WS, SVC_WS),
            "-p", str(SSH_PORT), "root@" + VPS_IP])
        if wait:
            self.wait_port(self.ns_vps, SSH_FWD_HTTP, "ssh -R port")
            self.wait_http(self.url("S2", "/small"), "S2 through ssh")

    def stop_ssh_client(self):
        self.stop("home-ssh")
        # The VPS side lets the forwarded ports go when the session ends.
        wait_until(lambda: not self.listening(self.ns_vps, SSH_FWD_HTTP), 15, "sshd to free the -R ports")

    def sshd_pids(self):
        p = self.procs.get("vps-sshd")
        return descendants(p.pid) if p else []

    # ----- S3: wireguard-go both sides, configured with wg over the UAPI socket ----------
    def setup_wg(self):
        self.wg_keys = {}
        for side in ("vps", "home"):
            priv = run(["wg", "genkey"]).stdout.strip()
            pub = run(["wg", "pubkey"], input=priv + "\n").stdout.strip()
            path = os.path.join(self.dir, "wg-%s.key" % side)
            with open(path, "w") as f:
                f.write(priv + "\n")
            os.chmod(path, 0o600)
            self.wg_keys[side] = (path, pub)

    def start_wg(self, side):
        """wireguard-go + `wg set` + address + up: what wg-quick does with wg0.conf. The
        VPS listens; home has the VPS as Endpoint and PersistentKeepalive = 25 (it dials
        out, as behind CGNAT); the VPS learns home's endpoint from its packets."""
        ns = self.ns_vps if side == "vps" else self.ns_home
        ifname = self.wg_vps if side == "vps" else self.wg_home
        sock = "/var/run/wireguard/%s.sock" % ifname
        self.spawn("%s-wg" % side, ns, ["wireguard-go", "-f", ifname],
                   env={"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1", "LOG_LEVEL": "error"})

        def up():
            self.check_alive()
            return os.path.exists(sock)
        wait_until(up, 15, "wireguard-go %s UAPI socket" % side, interval=0.01)
        key = self.wg_keys[side][0]
        if side == "vps":
            self.nsexec(ns, ["wg", "set", ifname, "private-key", key, "listen-port", str(WG_PORT),
                             "peer", self.wg_keys["home"][1], "allowed-ips", WG_HOME_IP + "/32"])
            addr = WG_VPS_IP
        else:
            self.nsexec(ns, ["wg", "set", ifname, "private-key", key,
                             "peer", self.wg_keys["vps"][1], "allowed-ips", WG_VPS_IP + "/32",
                             "endpoint", "%s:%d" % (VPS_IP, WG_PORT), "persistent-keepalive", "25"])
            addr = WG_HOME_IP
        self.nsexec(ns, ["ip", "addr", "add", addr + "/24", "dev", ifname])
        self.nsexec(ns, ["ip", "link", "set", ifname, "up"])

    def stop_wg(self, side):
        ifname = self.wg_vps if side == "vps" else self.wg_home
        ns = self.ns_vps if side == "vps" else self.ns_home
        self.stop("%s-wg" % side)
        wait_until(lambda: self.nsexec(ns, ["ip", "link", "show", ifname], check=False).returncode != 0,
                   10, "%s to go away" % ifname)

    # ----- S4: hearth ---------------------------------------------------------------------
    def setup_hearth(self):
        d = self.dir
        os.makedirs(d + "/state", mode=0o700, exist_ok=True)
        with open(d + "/edge.toml", "w") as f:
            f.write("""# Written by bench/py/stacks.py.
[edge]
listen_https  = "127.0.0.1:{https}"
listen_tunnel = "{vps}:{tunnel}"
listen_admin  = "127.0.0.1:{admin}"
state_dir     = "{d}/state"
workers       = {workers}
max_connections_per_ip = 20000  # every bench client is one loopback address

[[tls.certificates]]
cert = "{cert}"
key  = "{key}"

[[origins]]
name = "home"
hostnames = ["localhost"]
""".format(workers=self.edge_workers, https=EDGE_PORT["S4"], vps=VPS_IP, tunnel=TUNNEL_PORT, admin=ADMIN_PORT, d=d,
           cert=self.cert, key=self.key))
        edge, origin = self.bin_dir + "/hearth-edge", self.bin_dir + "/hearth-origin"
        run([edge, "check", "--config", d + "/edge.toml"])
        token = run([edge, "invite", "--config", d + "/edge.toml", "home",
                     "--edge-address", "%s:%d" % (VPS_IP, TUNNEL_PORT)]).stdout.strip()
        run([origin, "join", token, "--out", d + "/origin.toml"])
        with open(d + "/origin.toml") as f:
            text = f.read()
        # Keep [origin]; drop the example [[routes]] (from the first line that opens one)
        # and the comment lines just above it.
        lines = []
        for line in text.splitlines():
            if line.strip().startswith("[[routes]]"):
                break
            lines.append(line)
        while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
            lines.pop()
        if self.origin_workers:
            lines.append("workers     = %d" % self.origin_workers)
        with open(d + "/origin.toml", "w") as f:
            f.write("\n".join(lines) + """

# Routes written by bench/py/stacks.py: the same home service as every stack.
[[routes]]
host    = "localhost"
path    = "/ws"
service = "http://127.0.0.1:{ws}"

[[routes]]
host    = "localhost"
service = "http://127.0.0.1:{http}"
""".format(ws=SVC_WS, http=SVC_HTTP))
        run([origin, "check", "--config", d + "/origin.toml"])

    def start_edge(self, log_level):
        self.spawn("vps-edge", self.ns_vps, [self.bin_dir + "/hearth-edge", "run", "--config",
                                             self.dir + "/edge.toml", "--log-level", log_level])
        self.wait_port(self.ns_vps, EDGE_PORT["S4"], "hearth-edge")

    def start_origin(self, log_level, wait=True):
        self.spawn("home-origin", self.ns_home, [self.bin_dir + "/hearth-origin", "run", "--config",
                                                 self.dir + "/origin.toml", "--log-level", log_level])
        if wait:
            self.wait_http(self.url("S4", "/small"), "S4 through hearth")

    # ----- whole lab ------------------------------------------------------------------------
    def up(self, log_level, nginx_keepalive):
        self.setup_network()
        self.make_cert()
        self.start_service()
        self.setup_ssh()
        self.setup_wg()
        self.setup_hearth()
        self.start_nginx_vps(nginx_keepalive)
        self.start_sshd()
        self.start_ssh_client()
        self.start_wg("vps")
        self.start_wg("home")
        self.start_edge(log_level)
        self.start_origin(log_level)
        for s in STACKS:
            self.wait_http(self.url(s, "/small"), "%s /small" % s)

    def vps_pids(self, stack):
        """The VPS-side processes whose memory counts for a stack."""
        pids = []
        if stack in ("S1", "S2", "S3") and "vps-nginx" in self.procs:
            pids += descendants(self.procs["vps-nginx"].pid)
        if stack == "S2":
            pids += self.sshd_pids()
        if stack == "S3" and "vps-wg" in self.procs:
            pids += [self.procs["vps-wg"].pid]
        if stack == "S4" and "vps-edge" in self.procs:
            pids += [self.procs["vps-edge"].pid]
        return pids

    def home_pids(self, stack):
        """The home-side tunnel process of a stack (not the shared service)."""
        name = {"S2": "home-ssh", "S3": "home-wg", "S4": "home-origin"}.get(stack)
        return [self.procs[name].pid] if name in self.procs else []

    def heal(self, log_level, nginx_keepalive):
        """Restart whatever exited by itself (or was stopped from outside this run: the
        machine is shared). Returns the names restarted; the caller records them."""
        dead = [n for n, p in self.procs.items() if not p.alive()]
        if not dead:
            return []
        for n in dead:
            p = self.procs.pop(n)
            log("%s (pid %d) exited with %s, not stopped by this run: restarting it" % (
                n, p.pid, p.popen.returncode))
        if "svc-nginx" in dead:
            self.start_svc_nginx()
        if "svc-ws" in dead:
            self.start_svc_ws()
        if "vps-nginx" in dead:
            self.start_nginx_vps(nginx_keepalive)
        if "vps-sshd" in dead or "home-ssh" in dead:
            if "vps-sshd" in dead:
                self.start_sshd()
            self.stop_ssh_client()
            self.start_ssh_client()
        if "vps-wg" in dead or "home-wg" in dead:
            for side in ("home", "vps"):
                if "%s-wg" % side in self.procs:
                    self.stop_wg(side)
            self.start_wg("vps")
            self.start_wg("home")
        if "vps-edge" in dead:
            self.start_edge(log_level)
        if "home-origin" in dead or "vps-edge" in dead:
            if "home-origin" in dead:
                self.start_origin(log_level)
        for st in STACKS:
            self.wait_http(self.url(st, "/small"), "%s after restarting %s" % (st, ", ".join(dead)))
        return dead

    def diagnose(self):
        """For a failure report: what is still running and what listens where."""
        for name, p in self.procs.items():
            log("  %-12s pid %-7d %s" % (name, p.pid, "running" if p.alive() else
                                          "exited with %s" % p.popen.returncode))
        for ns in self.made_ns:
            r = self.nsexec(ns, ["ss", "-Hltnup"], check=False)
            log("  listening in %s:\n%s" % (ns, r.stdout.rstrip()))

    def _ns_inode(self, ns):
        try:
            return os.stat("/run/netns/" + ns).st_ino
        except OSError:
            return None

    def cleanup(self):
        for name in reversed(list(self.procs)):
            try:
                self.procs[name].stop(5)
            except Exception as e:  # noqa: BLE001 - keep cleaning up
                log("stopping %s: %s" % (name, e))
        self.procs.clear()
        # Anything still inside our namespaces was started by this run (nginx workers,
        # sshd sessions, helpers): kill it by PID.
        inodes = {self._ns_inode(ns) for ns in self.made_ns} - {None}
        if inodes:
            for d in os.listdir("/proc"):
                if not d.isdigit() or int(d) == os.getpid():
                    continue
                try:
                    if os.stat("/proc/%s/ns/net" % d).st_ino in inodes:
                        os.kill(int(d), signal.SIGKILL)
                except OSError:
                    pass
        for ns in reversed(self.made_ns):
            run(["ip", "netns", "del", ns], check=False)
        self.made_ns.clear()
        for ifname in (self.wg_vps, self.wg_home):
            try:
                os.unlink("/var/run/wireguard/%s.sock" % ifname)
            except OSError:
                pass
