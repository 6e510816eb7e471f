#!/usr/bin/python3
"""Chromium (headless) loads a page with 30 assets and a WebSocket through
edge -> tunnel -> origin -> home service: every asset over h2 on one
connection, and the WebSocket over the same h2 connection (RFC 8441).
Skips (77) when chromium is not installed.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, TestRun, expect, expect_eq  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main():
    run = TestRun("chromium_h2", __doc__)
    run.require_binaries()
    browser = shutil.which("chromium")
    if not browser:
        run.skip("chromium is not installed")
    h = Harness(run)
    try:
        svc = h.start_service("page")
        h.write_edge_config()
        conf = h.pair_origin([("app.test", "/signaling", svc.ws_url),
                              ("app.test", None, svc.http_url)])
        edge = h.start_edge()
        origin = h.start_origin(conf)
        edge.wait_event("tunnel.up", timeout=10)
        h.wait_ready(origin=origin)
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    @run.case
    def page_with_30_assets_and_websocket_over_h2():
        mark = edge.mark()
        for attempt in (1, 2):  # headless --dump-dom may dump before the echo: one more try
            profile = tempfile.mkdtemp(prefix="hearth-chromium-", dir=h.path())
            r = subprocess.run([browser] + FLAGS + [
                "--user-data-dir=" + profile, "--ignore-certificate-errors",
                "--host-resolver-rules=MAP app.test 127.0.0.1", "--virtual-time-budget=15000",
                "--dump-dom", h.url("/page?assets=30")], capture_output=True, text=True, timeout=90)
            out = re.findall(r'<div id="out">(.*?)</div>', r.stdout)
            if out and out[0] != "pending":
                break
        print("   chromium: %s" % out)
        expect(out, "no result in the DOM (exit %d): %s" % (r.returncode, r.stderr[-800:]))
        expect_eq(out[0], 'RESULT assets=30 protos={"h2":30} ws=ping-h2 nav=h2', "page outcome")
        reqs = edge.find_all("request", since=mark)
        conns = {e.get("conn") for e in reqs if e.get("proto") == "h2"}
        ws = [e for e in reqs if e.get("path") == "/signaling"]
        expect(ws and ws[0].get("proto") == "h2" and ws[0].get("status") == 101,
               "the WebSocket went over h2: %r" % ws)
        expect(len(conns) == attempt, "one h2 connection per page load: %r" % conns)

    run.finish()


if __name__ == "__main__":
    main()
