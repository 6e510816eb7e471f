#!/usr/bin/env python3
"""TLS policy on the HTTPS listener (issue 9), checked with openssl s_client.

- intermediate (default): TLS 1.2 and 1.3 only; CBC and RSA-key-exchange suites
  refused; AEAD suites and X25519 accepted; server cipher order.
- an ECDSA and an RSA certificate for the same names share one context: a
  client that only accepts RSA signatures gets the RSA certificate, others the
  ECDSA one.
- modern (a second edge): TLS 1.3 only.
- HEARTH_TESTSSL=1 (and testssl.sh installed): a reduced testssl.sh run
  (protocols, ciphers, server defaults and preferences, vulnerabilities, --fast,
  about 70 s) must show no finding of severity MEDIUM or above except the ones
  about the self-signed test certificate.
"""

import json
import os
import shutil
import subprocess

from harness import Harness, TestRun, expect, expect_eq

run = TestRun("tls_policy")
run.require_binaries()
h = Harness(run)

try:
    h.make_cert()
    rsa_cert, rsa_key = h.path("rsa-cert.pem"), h.path("rsa-key.pem")
    san = "subjectAltName=" + ",".join("DNS:" + n for n in ("app.test", "*.app.test", "other.test"))
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                        "-subj", "/CN=hearth-test", "-addext", san, "-keyout", rsa_key,
                        "-out", rsa_cert], capture_output=True, text=True, timeout=60)
    expect(r.returncode == 0, "openssl req rsa: %s" % r.stderr)
    h.write_edge_config()
    with open(h.edge_conf, "a") as f:
        f.write('\n[[tls.certificates]]\ncert = "%s"\nkey  = "%s"\n' % (rsa_cert, rsa_key))
    edge = h.start_edge()
    intermediate_port = h.https_port
    modern_conf = h.write_edge_config(name="edge-modern", extra_edge='tls_policy = "modern"')
    modern = h.start_edge(modern_conf, name="edge-modern")
    modern_port = h.https_port
except Exception as e:  # noqa: BLE001
    run.setup_failed(e)


def s_client(port, *args):
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "app.test",
            "-brief"] + list(args)
    r = subprocess.run(argv, input="", capture_output=True, text=True, timeout=15)
    out = r.stdout + r.stderr
    ok = "CONNECTION ESTABLISHED" in out or "Protocol version" in out and "alert" not in out
    return ok, out


@run.case
def intermediate_protocols():
    for flag in ("-tls1", "-tls1_1"):
        ok, out = s_client(intermediate_port, flag)
        expect(not ok, "%s must be refused:\n%s" % (flag, out))
    ok, out = s_client(intermediate_port, "-tls1_2")
    expect(ok and "TLSv1.2" in out, "TLS 1.2:\n%s" % out)
    ok, out = s_client(intermediate_port, "-tls1_3")
    expect(ok and "TLSv1.3" in out, "TLS 1.3:\n%s" % out)
    ok, out = s_client(intermediate_port, "-tls1_3", "-groups", "X25519")
    expect(ok and "X25519" in out, "X25519:\n%s" % out)


@run.case
def intermediate_ciphers_aead_only():
    for cipher in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384", "AES128-GCM-SHA256",
                   "AES256-SHA", "ECDHE-ECDSA-AES128-SHA256"):
        ok, out = s_client(intermediate_port, "-tls1_2", "-cipher", cipher)
        expect(not ok, "%s must be refused:\n%s" % (cipher, out))
    for cipher in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305",
                   "ECDHE-RSA-AES256-GCM-SHA384"):
        ok, out = s_client(intermediate_port, "-tls1_2", "-cipher", cipher)
        expect(ok and cipher in out, "%s must be accepted:\n%s" % (cipher, out))
    # Server order: offered weakest-first, the server still picks its first choice.
    ok, out = s_client(intermediate_port, "-tls1_2", "-cipher",
                       "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256")
    expect(ok and "ECDHE-ECDSA-AES128-GCM-SHA256" in out, "server cipher preference:\n%s" % out)


@run.case
def ecdsa_and_rsa_for_one_name():
    ok, out = s_client(intermediate_port, "-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256")
    expect(ok and "RSA" in out, "an RSA-only client gets the RSA certificate:\n%s" % out)
    ok, out = s_client(intermediate_port, "-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256")
    expect(ok and "ECDSA" in out, "an ECDSA client gets the ECDSA certificate:\n%s" % out)
    ok, out = s_client(intermediate_port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    expect(ok, "TLS 1.2 ECDHE-RSA works with the RSA certificate:\n%s" % out)


@run.case
def modern_is_tls13_only():
    ok, out = s_client(modern_port, "-tls1_2")
    expect(not ok, "modern refuses TLS 1.2:\n%s" % out)
    ok, out = s_client(modern_port, "-tls1_3")
    expect(ok and "TLSv1.3" in out, "modern TLS 1.3:\n%s" % out)


@run.case
def testssl_intermediate():
    if os.environ.get("HEARTH_TESTSSL") != "1":
        print("    (skipped: set HEARTH_TESTSSL=1 to run testssl.sh, ~70 s)")
        return
    tool = shutil.which("testssl") or shutil.which("testssl.sh")
    if not tool:
        print("    (skipped: testssl.sh not installed)")
        return
    out = h.path("testssl.json")
    r = subprocess.run([tool, "--quiet", "--color", "0", "--warnings", "off", "--fast", "-p", "-s",
                        "-S", "-P", "-U", "--jsonfile-pretty", out,
                        "127.0.0.1:%d" % intermediate_port],
                       capture_output=True, text=True, timeout=150)
    expect(os.path.exists(out), "testssl wrote no JSON: %s" % r.stderr[-500:])
    findings = []

    def walk(o):
        if isinstance(o, dict):
            if o.get("severity") in ("MEDIUM", "HIGH", "CRITICAL"):
                findings.append((o.get("id", ""), o["severity"], o.get("finding", "")))
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    with open(out) as f:
        walk(json.load(f))
    # The self-signed, short-lived test certificate is the only thing allowed to be flagged.
    bad = [f for f in findings if not f[0].startswith("cert")]
    for f in findings:
        print("    %s %s: %s" % f)
    expect(not bad, "testssl findings beyond the test certificate: %r" % bad)
    text = r.stdout
    expect("VULNERABLE" not in text.replace("not vulnerable", ""), "a VULNERABLE line")


run.finish()
