"""Medians, ratios, targets; latest.md, latest.csv, latest-raw.csv, latest.png."""

import csv
import os
import statistics
import subprocess

from stacks import STACK_LABEL, STACKS, log

# key, label, unit, better ("hi"/"lo"), decimals, S1 floor (hearth/S1 at least this), extra target
ROWS = [
    ("https.rps", "small HTTPS GET, requests/s (wrk, keep-alive)", "req/s", "hi", 0, 0.8, None),
    ("https.p50_ms", "small HTTPS GET, p50 latency", "ms", "lo", 2, None, None),
    ("https.p99_ms", "small HTTPS GET, p99 latency", "ms", "lo", 2, None, None),
    ("h2.rps", "small HTTPS GET over HTTP/2, requests/s (h2load, 64 clients x 10 streams)", "req/s", "hi", 0, None, None),
    ("https.vps_cpu_us", "VPS-side CPU per small request (user+system)", "µs", "lo", 1, 1.0, None),
    ("https.home_cpu_us", "  home-side tunnel process CPU per small request (info)", "µs", "lo", 1, None, "info"),
    ("dl1.mbs", "large download, 1 stream", "MB/s", "hi", 0, 0.8, None),
    ("dl1.vps_cpu_ms_gb", "VPS-side CPU per GB downloaded, 1 stream", "ms/GB", "lo", 0, None, "cpu_gb"),
    ("dl1.home_cpu_ms_gb", "  home-side tunnel process CPU per GB, 1 stream (info)", "ms/GB", "lo", 0, None, "info"),
    ("dl8.mbs", "large download, 8 in parallel", "MB/s", "hi", 0, 0.8, None),
    ("dl8.vps_cpu_ms_gb", "VPS-side CPU per GB downloaded, 8 in parallel", "ms/GB", "lo", 0, None, "cpu_gb"),
    ("ws.msgs", "WS echo, 1,000 sockets, messages/s", "msg/s", "hi", 0, None, None),
    ("ws.p50_ms", "WS echo, 1,000 sockets, RTT p50", "ms", "lo", 2, None, None),
    ("ws.p99_ms", "WS echo, 1,000 sockets, RTT p99", "ms", "lo", 2, None, "rtt"),
    ("probe.p50_ms", "WS RTT p50, idle (10 sockets, 1 msg/10 ms each)", "ms", "lo", 3, None, None),
    ("probe.p99_ms", "WS RTT p99, idle", "ms", "lo", 3, None, "rtt"),
    ("busy.p50_ms", "WS RTT p50 while a download saturates", "ms", "lo", 2, None, None),
    ("busy.p99_ms", "WS RTT p99 while a download saturates", "ms", "lo", 2, None, "rtt"),
    ("busy.bg_mbs", "  that download meanwhile (info)", "MB/s", "hi", 0, None, "info"),
    ("idle.bytes_per_conn", "idle WSS: VPS-side memory per connection", "bytes", "lo", 0, None, "mem"),
    ("idle.home_bytes_per_conn", "  home-side tunnel process per connection (info)", "bytes", "lo", 0, None, "info"),
    ("recovery.recovery_ms", "recovery: restart of the home side to first 200", "ms", "lo", 0, None, "recovery"),
]
MEM_LIMIT = 10000  # bytes ("10 KB")
RTT_SLACK_MS = 1.0
RECOVERY_LIMIT_MS = 1000.0


def medians(samples):
    """samples: list of (round, stack, key, value) -> {key: {stack: median}}"""
    acc = {}
    for _, stack, key, value in samples:
        if value is None:
            continue
        acc.setdefault(key, {}).setdefault(stack, []).append(value)
    return {k: {s: statistics.median(v) for s, v in d.items()} for k, d in acc.items()}, acc


def advantage(h, x, better):
    """How many times better hearth is than x (>= 1.00: at least as good)."""
    if h is None or x is None or h == 0 or x == 0:
        return None
    return h / x if better == "hi" else x / h


def evaluate(med):
    """Per row: ratios against S1/S2/S3 and the verdict against issue 4's targets."""
    out = []
    for key, label, unit, better, dec, s1_floor, extra in ROWS:
        m = med.get(key, {})
        h = m.get("S4")
        ratios = {s: advantage(h, m.get(s), better) for s in ("S1", "S2", "S3")}
        checks = []
        if h is not None and extra != "info":
            for s in ("S2", "S3"):
                if ratios[s] is not None:
                    checks.append(("≥1.0× %s" % s, ratios[s] >= 1.0))
            if s1_floor and ratios["S1"] is not None:
                checks.append(("≥%.1f× S1" % s1_floor, ratios["S1"] >= s1_floor))
            if extra == "rtt" and m.get("S1") is not None:
                checks.append(("≤ S1 + 1 ms", h <= m["S1"] + RTT_SLACK_MS))
            if extra == "cpu_gb" and m.get("S1") is not None:  # issue 11: at most 1.5x nginx's
                checks.append(("≤1.5× S1's CPU", h <= 1.5 * m["S1"]))
            if extra == "mem":
                checks.append(("≤ 10 KB", h <= MEM_LIMIT))
            if extra == "recovery":
                checks.append(("< 1 s", h < RECOVERY_LIMIT_MS))
        out.append(dict(key=key, label=label, unit=unit, better=better, dec=dec, med=m,
                        ratios=ratios, checks=checks))
    return out


def _fmt(v, dec):
    if v is None:
        return "—"
    if dec == 0:
        return "{:,.0f}".format(v)
    return "{:,.{d}f}".format(v, d=dec)


def _ratio(r):
    return "—" if r is None else "%.2f×" % r


def markdown(rows, meta, acc):
    lines = []
    lines.append("| workload | unit | " + " | ".join(STACK_LABEL[s] for s in STACKS) +
                 " | hearth vs S1 | vs S2 | vs S3 | target (hearth) | met? |")
    lines.append("|---|---|" + "---:|" * len(STACKS) + "---:|---:|---:|---|---|")
    for r in rows:
        cells = [_fmt(r["med"].get(s), r["dec"]) for s in STACKS]
        targets = "; ".join(c[0] for c in r["checks"]) or ("info" if "(info)" in r["label"] else "")
        if not r["checks"]:
            met = ""
        else:
            met = "yes" if all(ok for _, ok in r["checks"]) else \
                "**no** (" + ", ".join(c[0] for c in r["checks"] if not c[1]) + ")"
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["label"], r["unit"], " | ".join(cells), _ratio(r["ratios"]["S1"]),
            _ratio(r["ratios"]["S2"]), _ratio(r["ratios"]["S3"]), targets, met))
    misses = [r for r in rows if r["checks"] and not all(ok for _, ok in r["checks"])]
    summary = []
    total = sum(len(r["checks"]) for r in rows)
    passed = sum(ok for r in rows for _, ok in r["checks"])
    summary.append("hearth meets %d of %d target checks on this run." % (passed, total))
    if misses:
        summary.append("Misses: " + "; ".join(
            "%s (%s)" % (r["label"].strip(), ", ".join(c[0] for c in r["checks"] if not c[1])) for r in misses) + ".")
    return "\n".join(lines), " ".join(summary)


def write_all(out_dir, samples, meta, params_md):
    os.makedirs(out_dir, exist_ok=True)
    med, acc = medians(samples)
    rows = evaluate(med)
    table, summary = markdown(rows, meta, acc)
    # latest-raw.csv: every sample.
    with open(os.path.join(out_dir, "latest-raw.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "stack", "metric", "value"])
        for rnd, stack, key, value in samples:
            w.writerow([rnd, stack, key, "" if value is None else "%.6g" % value])
    # latest.csv: medians, ratios, verdicts.
    with open(os.path.join(out_dir, "latest.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["metric", "label", "unit", "better"] + STACKS +
                   ["hearth_vs_S1", "hearth_vs_S2", "hearth_vs_S3", "targets", "met", "samples_per_stack"])
        for r in rows:
            n = max((len(v) for v in acc.get(r["key"], {}).values()), default=0)
            w.writerow([r["key"], r["label"].strip(), r["unit"], r["better"]] +
                       ["" if r["med"].get(s) is None else "%.6g" % r["med"][s] for s in STACKS] +
                       ["" if r["ratios"][s] is None else "%.3f" % r["ratios"][s] for s in ("S1", "S2", "S3")] +
                       ["; ".join(c[0] for c in r["checks"]),
                        "" if not r["checks"] else ("yes" if all(ok for _, ok in r["checks"]) else "no"), n])
    md = ["# hearth bench: latest results", "",
          "Written by `bench/run` on %s (%s mode, %s). Medians of %s round(s); ratios are "
          "\"how many times better hearth (S4) is\" (higher is better on every row: S4/Sx for "
          "throughput, Sx/S4 for latency, memory and time)." % (meta["date"], meta["mode"], meta["commit"], meta["rounds"]),
          "", table, "", summary, "", "## Parameters", "", params_md, "", "## Machine and versions", ""]
    md += ["- %s: %s" % (k, v) for k, v in meta["machine"].items()]
    md += ["", "Per-sample values: `latest-raw.csv`; the chart: `latest.png`.", ""]
    with open(os.path.join(out_dir, "latest.md"), "w") as f:
        f.write("\n".join(md))
    chart(out_dir, med)
    return table, summary, rows


CHART = [
    ("https.rps", "HTTPS GET req/s (higher better)"),
    ("https.p99_ms", "HTTPS GET p99 ms (lower better)"),
    ("dl1.mbs", "download 1 stream MB/s (higher)"),
    ("dl8.mbs", "download 8 streams MB/s (higher)"),
    ("ws.msgs", "WS echo 1k sockets msg/s (higher)"),
    ("ws.p99_ms", "WS 1k sockets RTT p99 ms (lower)"),
    ("probe.p99_ms", "WS RTT p99 idle ms (lower)"),
    ("busy.p99_ms", "WS RTT p99 during download ms (lower)"),
    ("idle.bytes_per_conn", "VPS bytes per idle WSS (lower)"),
    ("recovery.recovery_ms", "recovery after restart ms (lower)"),
]


def chart(out_dir, med):
    dat = os.path.join(out_dir, "latest.dat")
    with open(dat, "w") as f:
        f.write("# stack " + " ".join(k for k, _ in CHART) + "\n")
        for s in STACKS:
            vals = []
            for k, _ in CHART:
                v = med.get(k, {}).get(s)
                vals.append("NaN" if v is None else "%.6g" % v)
            f.write("%s %s\n" % (s, " ".join(vals)))
    gp = ["set terminal pngcairo size 1800,760 font 'DejaVu Sans,10'",
          "set output '%s'" % os.path.join(out_dir, "latest.png"),
          "set datafile missing 'NaN'",
          "set style fill solid 0.8 border -1",
          "set boxwidth 0.7",
          "set grid ytics lc rgb '#dddddd'",
          "set yrange [0:*]",
          "unset key",
          "set xtics nomirror",
          "set multiplot layout 2,5 title 'hearth bench: S0 direct, S1 nginx TLS, S2 nginx+ssh -R, "
          "S3 nginx+WireGuard, S4 hearth (medians)'"]
    gp.append("set xrange [-0.6:4.6]")
    gp.append("set xtics (" + ", ".join("'%s' %d" % (s, i) for i, s in enumerate(STACKS)) + ")")
    for i, (k, title) in enumerate(CHART):
        col = i + 2
        gp.append("set title \"%s\"" % title)
        if not med.get(k):
            gp.append("set yrange [0:1]")
            gp.append("set label 1 'not measured' at 2,0.5 center")
            gp.append("plot NaN notitle")
            gp.append("unset label 1")
            gp.append("set yrange [0:*]")
            continue
        gp.append("plot '%s' using 0:%d:($0==4 ? 0xd62728 : 0x1f77b4) with boxes lc rgb variable, "
                  "'' using 0:%d:(sprintf('%%.3g', $%d)) with labels offset 0,0.6 font ',8'" % (dat, col, col, col))
    gp.append("unset multiplot")
    script = os.path.join(out_dir, "latest.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if r.returncode != 0:
        log("gnuplot failed: " + r.stderr[-1000:])
    os.unlink(script)
    os.unlink(dat)


def update_docs(doc_path, text):
    """Replace what is between the results markers of docs/benchmarks.md."""
    begin, end = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
    try:
        with open(doc_path) as f:
            doc = f.read()
    except OSError:
        return False
    if begin not in doc or end not in doc:
        return False
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(doc_path, "w") as f:
        f.write(head + begin + "\n" + text.strip() + "\n" + end + tail)
    return True
