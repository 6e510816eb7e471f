#!/usr/bin/python3
"""The admin dashboard in a real browser (issue 13).

Starts an edge and an origin, loads GET / of the edge's admin listener in
headless Chromium (Debian `chromium`), lets its script fetch /status, and checks
that the rendered DOM shows the live tunnel (the origin's name and its peer
address), the route and the certificate; the same for the origin's own page.
A screenshot of the edge's page is kept as a test artifact: under $HEARTH_TEST_ARTIFACTS when set,
else BUILD_DIR/test-artifacts/dashboard-edge.png (the --bin-dir's parent); its
path is printed. Exit 77 when chromium is missing.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, TestRun, expect, free_port  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
                  "--mute-audio", "--no-default-browser-check"]


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def main():
    run = TestRun("dashboard", __doc__)
    run.require_binaries()
    browser = chromium()
    if not browser:
        run.skip("chromium is not installed (Debian package chromium)")
    artifacts = os.environ.get("HEARTH_TEST_ARTIFACTS") or os.path.join(
        os.path.dirname(run.bin_dir), "test-artifacts")
    os.makedirs(artifacts, exist_ok=True)
    h = Harness(run)
    try:
        svc = h.start_service("home")
        h.write_edge_config()
        conf = h.pair_origin([("app.test", "/signaling", svc.ws_url), ("app.test", None, svc.http_url)])
        origin_admin = "127.0.0.1:%d" % free_port()
        h.set_key(conf, "listen_admin", '"%s"' % origin_admin)
        edge = h.start_edge()
        origin = h.start_origin(conf)
        edge.wait_event("tunnel.up", timeout=10)
        h.wait_ready(origin=origin)
        for _ in range(5):
            h.request("GET", "/")
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    def browse(url, what, screenshot=True, extra=()):
        profile = tempfile.mkdtemp(prefix="chromium-", dir=h.tmp)
        base = [browser] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile,
                                             "--virtual-time-budget=3000"] + list(extra)
        r = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=60)
        dom = r.stdout
        if not screenshot:
            return r.returncode, dom, r.stderr
        shot = os.path.join(artifacts, "dashboard-%s.png" % what)
        r2 = subprocess.run(base + ["--window-size=1280,900", "--screenshot=" + shot, url],
                            capture_output=True, text=True, timeout=60)
        if r2.returncode != 0 or not os.path.exists(shot):
            print("   screenshot failed: %s" % r2.stderr[-500:])
        else:
            print("   screenshot: %s (%d bytes)" % (shot, os.path.getsize(shot)))
        return r.returncode, dom, r.stderr

    @run.case
    def edge_dashboard_shows_the_live_tunnel():
        rc, dom, err = browse("http://127.0.0.1:%d/" % h.admin_port, "edge")
        expect(rc == 0 and "<html" in dom, "chromium --dump-dom failed (%d): %s" % (rc, err[-800:]))
        tunnels = re.search(r'id="tunnels">(.*?)</section>', dom, re.S)
        expect(tunnels, "no tunnels section in the DOM")
        t = tunnels.group(1)
        expect(">nas<" in t, "the origin's name is not in the tunnels table:\n%s" % t[:2000])
        expect(re.search(r">127\.0\.0\.1:\d+<", t), "no peer address in the tunnels table")
        routes = re.search(r'id="routes">(.*?)</section>', dom, re.S).group(1)
        expect(">app.test<" in routes and ">/signaling<" in routes, "routes missing:\n%s" % routes[:2000])
        expect("*.app.test" in dom, "the certificate's names are not shown")
        expect("serving" in dom, "state not shown")
        expect("Updated " in dom, "the page never rendered a /status answer")

    @run.case
    def origin_dashboard_shows_its_tunnels_and_routes():
        rc, dom, err = browse("http://%s/" % origin_admin, "origin", screenshot=False)
        expect(rc == 0 and "<html" in dom, "chromium --dump-dom failed (%d): %s" % (rc, err[-800:]))
        expect("origin nas" in dom, "the origin's name is not on its page")
        tunnels = re.search(r'id="tunnels">(.*?)</section>', dom, re.S).group(1)
        expect(tunnels.count("<tr>") >= 3, "expected two tunnel rows:\n%s" % tunnels[:2000])
        expect(svc.http_url in dom, "the route's service is not shown")
        expect("connected" in dom, "state not shown")

    run.finish()


if __name__ == "__main__":
    main()
