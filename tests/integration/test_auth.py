#!/usr/bin/python3
"""Tunnel authentication and config checking.

(a) an origin whose key the edge never authorized is refused (edge: tunnel.refused);
(b) an origin given a wrong edge_pin refuses the edge (origin: tunnel.refused naming the pin);
(c) a route for a hostname the origin may not publish is refused alone (both sides log
    publish.refused naming it) while its other routes are served;
(d) `check --config` on broken configs exits 1 and names file:line and the key;
and a correctly paired origin still connects afterwards (control).
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Failure, Harness, TestRun, expect, expect_eq  # noqa: E402


def mentions(ev, needle):
    """True if any field of the event mentions needle (case-insensitive)."""
    needle = needle.lower()
    return any(needle in str(v).lower() for k, v in ev.items() if k not in ("ts", "level"))


def main():
    run = TestRun("auth", __doc__)
    run.require_binaries()
    h = Harness(run)
    try:
        svc = h.start_service("home")
        h.write_edge_config()
        routes = [("app.test", "/signaling", svc.ws_url), ("app.test", None, svc.http_url)]
        # One invite, before the edge runs (a running edge need not notice later invites
        # without SIGHUP); every origin config below is a join of this same token.
        token = h.invite("nas")

        def fresh_origin_conf(tag, routes=routes):
            # own directory each: join writes the key file beside the config
            conf = h.join(token, h.path("origin-%s" % tag, "origin.toml"))
            h.set_routes(conf, routes)
            return conf

        # A second edge state dir makes another tunnel key: a real pin, but not ours.
        conf2 = h.path("edge2.toml")
        text = open(h.edge_conf).read()
        state2 = h.path("edge2-state")
        os.makedirs(state2, exist_ok=True)
        text = re.sub(r'(?m)^state_dir\s*=.*$', 'state_dir = "%s"' % state2.replace("\\", "/"), text)
        open(conf2, "w").write(text)
        other_pin = h.read_key(h.join(h.invite("nas", edge_conf=conf2), h.path("origin-edge2", "origin.toml")), "edge_pin")
        edge = h.start_edge()
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    def expect_unavailable(what):
        st, hdrs, _ = h.request("GET", "/", timeout=5)
        expect(st in (404, 502, 503), "%s: app.test should stay unavailable, got %d" % (what, st))

    def expect_no_tunnel_up(proc, since, what):
        ev = proc.find("tunnel.up", since)
        expect(ev is None, "%s: %s logged tunnel.up: %s" % (what, proc.name, ev))

    @run.case
    def a_unauthorized_origin_key_refused():
        conf = fresh_origin_conf("badkey")
        key_file = h.read_key(conf, "key_file")
        expect(key_file, "origin.toml written by join has no key_file:\n" + open(conf).read())
        if not os.path.isabs(key_file):
            key_file = os.path.join(os.path.dirname(conf), key_file)
        mode = os.stat(key_file).st_mode & 0o777
        expect_eq(oct(mode), oct(0o600), "mode of the key file written by join")
        r = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True, text=True,
                           timeout=20)
        expect_eq(r.returncode, 0, "openssl genpkey")
        with open(key_file, "w") as f:
            f.write(r.stdout)
        mark = edge.mark()
        origin = h.start_origin(conf, name="origin-badkey")
        try:
            ev = edge.wait_event("tunnel.refused", timeout=10, since=mark)
            expect(str(ev.get("reason", "")).strip(), "edge tunnel.refused without a reason: %s" % ev)
            print("   edge: %s" % ev)
            time.sleep(0.5)
            expect_no_tunnel_up(edge, mark, "unauthorized key")
            expect_no_tunnel_up(origin, 0, "unauthorized key")
            expect_unavailable("unauthorized key")
            expect(origin.alive(), "origin should keep retrying, not exit (exit code %s)" % origin.p.returncode)
        finally:
            origin.stop()

    def wrong_pin_case(tag, pin):
        conf = fresh_origin_conf(tag)
        h.set_key(conf, "edge_pin", '"%s"' % pin)
        mark = edge.mark()
        origin = h.start_origin(conf, name="origin-" + tag)
        try:
            ev = origin.wait_event("tunnel.refused", timeout=10)
            expect(mentions(ev, "pin"), "origin tunnel.refused should mention the pin: %s" % ev)
            print("   origin: %s" % ev)
            time.sleep(0.3)
            expect_no_tunnel_up(origin, 0, "wrong pin")
            expect_no_tunnel_up(edge, mark, "wrong pin")
            expect_unavailable("wrong pin")
        finally:
            origin.stop()

    @run.case
    def b_wrong_edge_pin_from_another_edge():
        pin1 = h.read_key(fresh_origin_conf("pin1"), "edge_pin")
        expect(other_pin and other_pin.startswith("sha256:"), "edge_pin from join: %r" % other_pin)
        expect(pin1 != other_pin, "two state dirs gave the same edge pin %r" % pin1)
        wrong_pin_case("pin-other-edge", other_pin)

    @run.case
    def b_wrong_edge_pin_random():
        import base64
        pin = "sha256:" + base64.b64encode(os.urandom(32)).decode().rstrip("=")
        expect_eq(len(pin), 7 + 43, "random pin length")
        wrong_pin_case("pin-random", pin)

    @run.case
    def c_route_for_unlisted_host_refused():
        # Partial publish (issue 13): the unlisted route is refused alone, the other served.
        conf = fresh_origin_conf("evil", [("evil.test", None, svc.http_url), ("app.test", None, svc.http_url)])
        mark = edge.mark()
        origin = h.start_origin(conf, name="origin-evil")
        try:
            ev = edge.wait_event("publish.refused", timeout=10, since=mark)
            expect(mentions(ev, "evil.test"), "edge publish.refused should name evil.test: %s" % ev)
            print("   edge: %s" % ev)
            ev = origin.wait_event("publish.refused", timeout=10)
            expect(mentions(ev, "evil.test"), "origin publish.refused should name evil.test: %s" % ev)
            st, _, _ = h.request("GET", "/", host="app.test", headers={"Host": "evil.test"}, timeout=5)
            expect(st in (404, 421), "evil.test must not be served, got %d" % st)
            h.wait_ready(origin=origin)  # app.test is
        finally:
            origin.stop()

    @run.case
    def control_paired_origin_connects():
        conf = fresh_origin_conf("good")
        mark = edge.mark()
        origin = h.start_origin(conf, name="origin-good")
        try:
            edge.wait_event("tunnel.up", timeout=10, since=mark)
            origin.wait_event("tunnel.up", timeout=10)
            h.wait_ready(origin=origin)
        finally:
            origin.stop()

    # -- (d) check on broken configs -------------------------------------------------
    def check(binary, conf):
        r = subprocess.run([run.bin(binary), "check", "--config", conf], capture_output=True, text=True,
                           timeout=20)
        return r.returncode, r.stdout + r.stderr

    def broken(src, dst, after_line_re, new_line=None, replace_re=None, replacement=None):
        """Copy src to dst with a line inserted after the first match (or one replaced).

        Returns the 1-based line number of the inserted/replaced line.
        """
        lines = open(src).read().splitlines()
        for i, l in enumerate(lines):
            if replace_re and re.match(replace_re, l):
                lines[i] = replacement
                n = i + 1
                break
            if after_line_re and re.match(after_line_re, l):
                lines.insert(i + 1, new_line)
                n = i + 2
                break
        else:
            raise Failure("no line matching %r in %s" % (after_line_re or replace_re, src))
        open(dst, "w").write("\n".join(lines) + "\n")
        return n

    def expect_check_fails(binary, conf, line, key):
        code, out = check(binary, conf)
        expect_eq(code, 1, "`%s check --config %s` exit code (output: %s)" % (binary, os.path.basename(conf),
                                                                             out.strip()))
        base = os.path.basename(conf)
        expect(re.search(r"%s:%d\b" % (re.escape(base), line), out),
               "message should name %s:%d, got: %s" % (base, line, out.strip()))
        expect(key in out, "message should name the key %r, got: %s" % (key, out.strip()))

    @run.case
    def d_check_good_configs_pass():
        code, out = check("hearth-edge", h.edge_conf)
        expect_eq(code, 0, "hearth-edge check on a good config (output: %s)" % out.strip())
        code, out = check("hearth-origin", fresh_origin_conf("checkgood"))
        expect_eq(code, 0, "hearth-origin check on a good config (output: %s)" % out.strip())

    @run.case
    def d_check_edge_unknown_key():
        bad = h.path("bad-edge-unknown.toml")
        n = broken(h.edge_conf, bad, r"\s*listen_https\s*=", 'listen_htps = "127.0.0.1:1"')
        expect_check_fails("hearth-edge", bad, n, "listen_htps")

    @run.case
    def d_check_edge_wrong_type():
        bad = h.path("bad-edge-type.toml")
        n = broken(h.edge_conf, bad, None, replace_re=r"\s*listen_https\s*=", replacement="listen_https = 443")
        expect_check_fails("hearth-edge", bad, n, "listen_https")

    @run.case
    def d_check_edge_unknown_key_in_origins():
        bad = h.path("bad-edge-origins.toml")
        n = broken(h.edge_conf, bad, r'\s*name\s*=\s*"nas"', 'hostname = ["x.test"]')
        expect_check_fails("hearth-edge", bad, n, "hostname")

    @run.case
    def d_check_origin_unknown_key():
        good = fresh_origin_conf("checkbase")
        bad = os.path.join(os.path.dirname(good), "bad-origin-unknown.toml")
        n = broken(good, bad, r"\s*\[origin\]", "conections = 2")
        expect_check_fails("hearth-origin", bad, n, "conections")

    @run.case
    def d_check_origin_wrong_type():
        good = fresh_origin_conf("checkbase2")
        bad = os.path.join(os.path.dirname(good), "bad-origin-type.toml")
        n = broken(good, bad, r"\s*\[origin\]", 'connections = "two"')
        # a duplicate key is itself a TOML error; drop any existing connections line first
        lines = open(bad).read().splitlines()
        dup = [i for i, l in enumerate(lines) if re.match(r"\s*connections\s*=", l) and i != n - 1]
        for i in reversed(dup):
            del lines[i]
            if i < n - 1:
                n -= 1
        open(bad, "w").write("\n".join(lines) + "\n")
        expect_check_fails("hearth-origin", bad, n, "connections")

    @run.case
    def d_check_origin_route_wrong_type():
        good = fresh_origin_conf("checkbase3")
        bad = os.path.join(os.path.dirname(good), "bad-origin-route.toml")
        n = broken(good, bad, None, replace_re=r'\s*service\s*=', replacement="service = 3000")
        expect_check_fails("hearth-origin", bad, n, "service")

    @run.case
    def d_run_with_broken_config_exits_1():
        bad = h.path("bad-edge-unknown.toml")
        if not os.path.exists(bad):
            broken(h.edge_conf, bad, r"\s*listen_https\s*=", 'listen_htps = "127.0.0.1:1"')
        try:
            r = subprocess.run([run.bin("hearth-edge"), "--config", bad], capture_output=True, text=True,
                               timeout=10)
        except subprocess.TimeoutExpired:
            raise Failure("hearth-edge --config <broken> kept running (expected exit 1)")
        expect_eq(r.returncode, 1, "hearth-edge run with a broken config: exit code (stderr: %s)"
                  % r.stderr.strip()[-300:])

    @run.case
    def edge_still_running():
        expect(edge.alive(), "edge exited: %s" % edge.p.returncode)

    run.finish()


if __name__ == "__main__":
    main()
