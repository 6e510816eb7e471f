#!/usr/bin/python3
"""ACME (RFC 8555) against a real pebble: the edge orders, serves and renews certificates.

pebble (the test CA) and pebble-challtestsrv (its DNS) run on loopback. pebble validates
http-01 on edge 1's listen_http port and tls-alpn-01 on edge 2's listen_https port (its
httpPort/tlsPort settings); every name resolves to 127.0.0.1 through challtestsrv's DNS.
Edge 1: app.test by http-01 and *.wild.test by dns-01 through a hook that talks to
challtestsrv's management API. Edge 2: alpn.test by tls-alpn-01 with no listen_http,
renew_before longer than the validity (forced renewal). Clients verify with curl against
pebble's root (from its management interface), never -k.
"""

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Failure, Harness, TestRun, expect, expect_eq, free_port,  # noqa: E402
                     wait_until, ws_connect)

VALIDITY_S = 3600  # pebble certificateValidityPeriod
# External account binding is required by this pebble: one key per edge (pebble's examples).
EAB_KEYS = {"kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
            "kid-2": "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH"}

HOOK = """#!/usr/bin/python3
# dns_hook for the test: HOOK add|remove NAME VALUE -> challtestsrv set-txt / clear-txt.
import json, sys, urllib.request
action, name, value = sys.argv[1:4]
body = {"host": name + "."}
if action == "add":
    body["value"] = value
url = "http://127.0.0.1:%d/" + ("set-txt" if action == "add" else "clear-txt")
req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
urllib.request.urlopen(req, timeout=5).read()
"""


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise Failure("openssl %s failed: %s" % (args[0], r.stderr))


class Pebble:
    def __init__(self, h, http_port, tls_port):
        self.h = h
        d = h.path("pebble")
        os.makedirs(d)
        self.ca = os.path.join(d, "ca.pem")
        ca_key = os.path.join(d, "ca.key")
        cert, key, csr = (os.path.join(d, n) for n in ("cert.pem", "key.pem", "cert.csr"))
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", "2", "-subj", "/CN=pebble test CA", "-keyout", ca_key,
                "-out", self.ca)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-subj", "/CN=localhost", "-keyout", key, "-out", csr)
        ext = os.path.join(d, "ext.cnf")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key, "-CAcreateserial",
                "-days", "2", "-extfile", ext, "-out", cert)
        self.port, self.mgmt_port = free_port(), free_port()
        self.dns_port, self.chall_mgmt_port = free_port(), free_port()
        cfg = {"pebble": {"listenAddress": "127.0.0.1:%d" % self.port,
                          "managementListenAddress": "127.0.0.1:%d" % self.mgmt_port,
                          "certificate": cert, "privateKey": key,
                          "httpPort": http_port, "tlsPort": tls_port,
                          "ocspResponderURL": "", "externalAccountBindingRequired": True,
                          "externalAccountMACKeys": EAB_KEYS,
                          "certificateValidityPeriod": VALIDITY_S}}
        conf = os.path.join(d, "pebble.json")
        with open(conf, "w") as f:
            json.dump(cfg, f)
        self.chall = h.spawn("challtestsrv", [
            "pebble-challtestsrv", "-dns01", "127.0.0.1:%d" % self.dns_port, "-http01", "",
            "-https01", "", "-tlsalpn01", "", "-management", "127.0.0.1:%d" % self.chall_mgmt_port,
            "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        # No authorization reuse: every order is validated (the failing-challenge case needs it).
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_VA_ALWAYS_VALID="0",
                   PEBBLE_AUTHZREUSE="0")
        log_path = h.path("pebble.log")
        logf = open(log_path, "wb")
        from harness import Proc, _child_setup
        popen = subprocess.Popen(["pebble", "-config", conf, "-dnsserver",
                                  "127.0.0.1:%d" % self.dns_port], stdin=subprocess.DEVNULL,
                                 stdout=logf, stderr=logf, cwd=d, env=env, preexec_fn=_child_setup)
        logf.close()
        self.proc = Proc("pebble", [], log_path, popen)
        h.procs.append(self.proc)
        self.directory = "https://127.0.0.1:%d/dir" % self.port
        self.ctx = ssl.create_default_context(cafile=self.ca)
        wait_until(self._up, 15, 0.1, "pebble directory")
        # The issuing chain's root, for clients: fetched from the management interface.
        self.root = os.path.join(d, "root.pem")
        with open(self.root, "w") as f:
            f.write(self.mgmt("/roots/0"))
        self.intermediate = self.mgmt("/intermediates/0")

    def _up(self):
        if not self.proc.alive():
            raise Failure("pebble exited: %s" % self.proc.tail())
        return urllib.request.urlopen(self.directory, context=self.ctx, timeout=2).status == 200

    def mgmt(self, path):
        url = "https://127.0.0.1:%d%s" % (self.mgmt_port, path)
        return urllib.request.urlopen(url, context=self.ctx, timeout=5).read().decode()

    def orders(self):
        """New-order requests pebble has seen (its request log)."""
        return sum(1 for l in self.proc.lines() if "POST /order-plz" in l)


def write_edge(h, name, ports, origins, acme, listen_http=True, state_dir=None):
    https, http, tunnel, admin = ports
    state = state_dir or h.path("%s-state" % name)
    os.makedirs(state, exist_ok=True)
    lines = ["[edge]", 'listen_https  = "127.0.0.1:%d"' % https]
    if listen_http:
        lines.append('listen_http   = "127.0.0.1:%d"' % http)
    lines += ['listen_tunnel = "127.0.0.1:%d"' % tunnel, 'listen_admin  = "127.0.0.1:%d"' % admin,
              'state_dir     = "%s"' % state, "", "[acme]"]
    lines += ["%s = %s" % (k, json.dumps(v)) for k, v in acme.items()]
    for oname, hosts in origins:
        lines += ["", "[[origins]]", 'name = "%s"' % oname, "hostnames = %s" % json.dumps(hosts)]
    conf = h.path("%s.toml" % name)
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    return conf


def iso_to_unix(ts):
    import datetime
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def serial_of(host, port, root, timeout=5):
    """The serial of the certificate the edge serves for `host`, verified against root."""
    ctx = ssl.create_default_context(cafile=root)
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname=host) as t:
            der = t.getpeercert(binary_form=True)
    r = subprocess.run(["openssl", "x509", "-inform", "der", "-noout", "-serial"], input=der,
                       capture_output=True, timeout=10)
    return r.stdout.decode().strip().split("=")[-1].lower()


def main():
    run = TestRun("acme", __doc__)
    run.require_binaries()
    for tool in ("pebble", "pebble-challtestsrv", "curl", "openssl"):
        if shutil.which(tool) is None:
            run.skip("%s not installed (Debian package %s)" % (tool, "pebble" if "pebble" in tool
                                                                 else tool))
    h = Harness(run)
    e1_ports = (free_port(), free_port(), free_port(), free_port())
    e2_ports = (free_port(), free_port(), free_port(), free_port())
    state = {}
    try:
        pebble = Pebble(h, http_port=e1_ports[1], tls_port=e2_ports[0])
        hook = h.path("dns-hook")
        with open(hook, "w") as f:
            f.write(HOOK % pebble.chall_mgmt_port)
        os.chmod(hook, 0o755)
        svc = h.start_service("home")
        eab = {}
        for kid, key in EAB_KEYS.items():
            eab[kid] = h.path("%s.key" % kid)
            with open(eab[kid], "w") as f:
                f.write(key + "\n")
        acme1 = {"email": "ops@example.com", "directory": pebble.directory, "ca_file": pebble.ca,
                 "challenges": ["http-01"], "dns_hook": hook, "retry_base": "1s",
                 "eab_kid": "kid-1", "eab_hmac_key_file": eab["kid-1"]}
        conf1 = write_edge(h, "edge1", e1_ports, [("nas", ["app.test", "*.wild.test"])], acme1)
        h.edge_conf, h.tunnel_port, h.https_port = conf1, e1_ports[2], e1_ports[0]
        oconf1 = h.pair_origin([("app.test", None, svc.http_url), ("*.wild.test", None, svc.http_url)])
        acme2 = {"directory": pebble.directory, "ca_file": pebble.ca, "challenges": ["tls-alpn-01"],
                 "renew_before": "2h", "retry_base": "2s",
                 "eab_kid": "kid-2", "eab_hmac_key_file": eab["kid-2"]}
        conf2 = write_edge(h, "edge2", e2_ports, [("nas2", ["alpn.test"])], acme2, listen_http=False)
        h.edge_conf, h.tunnel_port, h.https_port = conf2, e2_ports[2], e2_ports[0]
        oconf2 = h.pair_origin([("alpn.test", None, svc.ws_url)], origin_name="nas2")
        for oc in (oconf1, oconf2):  # the edges restart: redial quickly
            h.set_key(oc, "reconnect_max", '"500ms"')
        h.start_origin(oconf1, name="origin1")
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    def curl(host, port, path="/"):
        return subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", pebble.root,
                               "--resolve", "%s:%d:127.0.0.1" % (host, port),
                               "-o", "/dev/null", "-w", "%{http_code}",
                               "https://%s:%d%s" % (host, port, path)],
                              capture_output=True, text=True, timeout=15)

    def wait_verified_200(host, port, timeout=30):
        last = [None]

        def ok():
            r = curl(host, port)
            last[0] = (r.stdout, r.stderr.strip())
            return r.returncode == 0 and r.stdout == "200"
        try:
            wait_until(ok, timeout, 0.1, "a verified HTTPS 200 from %s" % host)
        except TimeoutError as e:
            raise Failure("%s (last curl: %r)" % (e, last[0]))

    @run.case
    def check_accepts_acme_config():
        for conf in (conf1, conf2):
            r = subprocess.run([run.bin("hearth-edge"), "check", "--config", conf],
                               capture_output=True, text=True, timeout=30)
            expect_eq(r.returncode, 0, "check exit code (%s)" % r.stderr.strip())

    @run.case
    def issuance_http01_and_dns01_wildcard():
        t0 = time.monotonic()
        state["edge1"] = edge = h.start_edge(conf1, name="edge1")
        wait_verified_200("app.test", e1_ports[0])
        state["start_to_200_s"] = time.monotonic() - t0
        wait_verified_200("x.wild.test", e1_ports[0])
        ev = edge.wait_event("acme.certificate.issued", name="app.test")
        expect(ev["issuer"].startswith("Pebble Intermediate"), "issuer: %r" % ev["issuer"])
        expect(edge.find("acme.http01.served") is not None, "no http-01 answer was served")
        expect(edge.find("acme.dns_hook", action="add") is not None, "dns hook not called")
        expect(edge.find("acme.account.registered") is not None, "no account (with EAB)")
        for name in ("app.test", "*.wild.test"):
            key = os.path.join(h.path("edge1-state"), "acme", "certificates",
                               name.replace("*", "_wildcard_"), "key.pem")
            expect_eq(oct(os.stat(key).st_mode & 0o777), "0o600", "mode of " + key)
        # Still a redirect for everything that is not a challenge.
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                            "http://127.0.0.1:%d/" % e1_ports[1], "-H", "Host: app.test"],
                           capture_output=True, text=True, timeout=10)
        expect_eq(r.stdout, "301", "plain HTTP answer")
        started = iso_to_unix(edge.find("edge.started")["ts"])
        print("    start -> first verified HTTPS 200: %.2fs (edge.started -> certificate issued: "
              "%.2fs)" % (state["start_to_200_s"], iso_to_unix(ev["ts"]) - started))

    @run.case
    def status_and_metrics():
        admin = e1_ports[3]
        body = urllib.request.urlopen("http://127.0.0.1:%d/status" % admin, timeout=5).read()
        certs = {c["name"]: c for c in json.loads(body)["certificates"]}
        expect(set(certs) == {"app.test", "*.wild.test"}, "status certificates: %r" % certs)
        c = certs["app.test"]
        expect(c["names"] == ["app.test"] and c["not_after"] and c["next_renewal"]
               and c["issuer"] and c["last_error"] == "", "status entry: %r" % c)
        r = subprocess.run([run.bin("hearth-edge"), "status", "--admin", "127.0.0.1:%d" % admin],
                           capture_output=True, text=True, timeout=10)
        expect("CERTIFICATES" in r.stdout and "app.test" in r.stdout and "1970-" not in r.stdout,
               "hearth-edge status: %r" % r.stdout)
        r = subprocess.run([run.bin("hearth-edge"), "status", "--json", "--admin",
                            "127.0.0.1:%d" % admin], capture_output=True, text=True, timeout=10)
        expect("app.test" in r.stdout and "not_after" in r.stdout,
               "hearth-edge status --json: %r" % r.stdout)
        m = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=5).read().decode()
        for want in ("# TYPE hearth_certificate_expiry_timestamp_seconds gauge",
                     'hearth_certificate_expiry_timestamp_seconds{name="app.test"}',
                     "# TYPE hearth_acme_orders_total counter",
                     'hearth_acme_orders_total{result="success"} 2'):
            expect(want in m, "metrics lack %r" % want)

    @run.case
    def restart_reuses_stored_certificates():
        edge = state["edge1"]
        serial = serial_of("app.test", e1_ports[0], pebble.root)
        edge.stop()
        before = pebble.orders()
        state["edge1"] = edge = h.start_edge(conf1, name="edge1")
        wait_verified_200("app.test", e1_ports[0], timeout=10)
        expect_eq(serial_of("app.test", e1_ports[0], pebble.root), serial, "serial after restart")
        edge.wait_event("acme.certificate.loaded", name="*.wild.test")
        time.sleep(1.0)
        expect_eq(pebble.orders(), before, "orders pebble saw after the restart")
        expect(edge.find("acme.order.start") is None, "the restarted edge ordered")

    @run.case
    def corrupted_stored_certificate_is_reordered():
        edge = state["edge1"]
        serial = serial_of("app.test", e1_ports[0], pebble.root)
        edge.stop()
        path = os.path.join(h.path("edge1-state"), "acme", "certificates", "app.test", "cert.pem")
        with open(path, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
        state["edge1"] = edge = h.start_edge(conf1, name="edge1")
        ev = edge.wait_event("acme.stored_invalid", timeout=10, name="app.test")
        expect("ordering" in ev.get("action", ""), "log line: %r" % ev)
        edge.wait_event("acme.certificate.issued", timeout=30, name="app.test")
        wait_verified_200("app.test", e1_ports[0], timeout=10)
        expect(serial_of("app.test", e1_ports[0], pebble.root) != serial, "serial unchanged")
        expect(edge.alive(), "edge died")

    @run.case
    def failing_challenge_backs_off_and_keeps_serving():
        # The CA's http-01 port has nothing listening (edge 1 moved listen_http): renewals
        # fail with pebble's reason, back off, and the stored certificate keeps serving.
        edge = state["edge1"]
        serial = serial_of("app.test", e1_ports[0], pebble.root)
        edge.stop()
        moved = (e1_ports[0], free_port(), e1_ports[2], e1_ports[3])
        acme = dict(acme1, renew_before="2h")
        conf = write_edge(h, "edge1-blocked", moved, [("nas", ["app.test", "*.wild.test"])], acme,
                          state_dir=h.path("edge1-state"))
        state["edge1"] = edge = h.start_edge(conf, name="edge1-blocked")
        first = edge.wait_event("acme.order.failed", timeout=30, name="app.test")
        expect("connection" in first["error"] or "refused" in first["error"],
               "CA reason missing: %r" % first["error"])
        second = edge.wait_event("acme.order.failed", timeout=30, name="app.test", attempt=2)
        expect(second["retry_in_ms"] > first["retry_in_ms"], "no back-off: %r then %r" % (
            first["retry_in_ms"], second["retry_in_ms"]))
        expect_eq(serial_of("app.test", e1_ports[0], pebble.root), serial, "serial while failing")
        wait_verified_200("app.test", e1_ports[0], timeout=5)
        body = urllib.request.urlopen("http://127.0.0.1:%d/status" % e1_ports[3], timeout=5).read()
        c = [c for c in json.loads(body)["certificates"] if c["name"] == "app.test"][0]
        expect(c["last_error"] != "", "status has no last_error: %r" % c)
        edge.stop()

    @run.case
    def issuance_tls_alpn01_without_listen_http():
        t0 = time.monotonic()
        state["edge2"] = edge = h.start_edge(conf2, name="edge2")
        h.start_origin(oconf2, name="origin2")
        ev = edge.wait_event("acme.certificate.issued", timeout=30, name="alpn.test")
        state["alpn_issue_s"] = time.monotonic() - t0
        expect(edge.find("acme.challenge.ready", type="tls-alpn-01") is not None,
               "not solved by tls-alpn-01")
        state["alpn_serial"] = ev["serial"]
        edge.wait_event("tunnel.up", timeout=10, origin="nas2")
        # A normal handshake never gets the challenge certificate: it verifies.
        wait_until(lambda: serial_of("alpn.test", e2_ports[0], pebble.root), 10, 0.1,
                   "verified handshake for alpn.test")

    @run.case
    def forced_renewal_new_serial_while_websocket_stays_up():
        edge = state["edge2"]

        async def go():
            async with ws_connect("/", pebble.root, "127.0.0.1", e2_ports[0],
                                  host="alpn.test") as ws:
                await ws.send("before")
                expect_eq(await asyncio.wait_for(ws.recv(), 10), "before", "echo before")
                old = serial_of("alpn.test", e2_ports[0], pebble.root)
                mark = edge.mark()
                start = edge.wait_event("acme.order.start", timeout=20, since=mark,
                                        name="alpn.test", renewal=True)
                t_order = iso_to_unix(start["ts"])
                issued = edge.wait_event("acme.certificate.issued", timeout=20, since=mark,
                                         name="alpn.test", renewal=True)
                new = await asyncio.get_running_loop().run_in_executor(None, lambda: wait_until(
                    lambda: serial_of("alpn.test", e2_ports[0], pebble.root) == issued["serial"],
                    30, 0.02, "the renewed serial") and issued["serial"])
                state["renewal_to_serial_s"] = time.time() - t_order
                await ws.send("after")
                expect_eq(await asyncio.wait_for(ws.recv(), 10), "after", "echo after renewal")
                expect(new != old, "serial unchanged")
        asyncio.run(asyncio.wait_for(go(), 60))
        print("    forced renewal: order start -> new serial seen by a client: %.2fs"
              % state["renewal_to_serial_s"])

    @run.case
    def sighup_orders_new_hostnames():
        edge = state["edge2"]
        write_edge(h, "edge2", e2_ports, [("nas2", ["alpn.test", "new.alpn.test"])], acme2,
                   listen_http=False)
        mark = edge.mark()
        edge.signal(signal.SIGHUP)
        edge.wait_event("reload.done", timeout=10, since=mark)
        edge.wait_event("acme.certificate.issued", timeout=30, since=mark, name="new.alpn.test")
        wait_until(lambda: serial_of("new.alpn.test", e2_ports[0], pebble.root), 10, 0.1,
                   "verified handshake for new.alpn.test")
        expect(edge.alive(), "edge died")

    run.finish()


if __name__ == "__main__":
    main()
