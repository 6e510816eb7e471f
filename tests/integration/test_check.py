#!/usr/bin/python3
"""`check` catches what `run` would trip on (issue 13).

Each broken config must make `hearth-edge check` / `hearth-origin check` exit 1
with a problem of the form FILE:LINE:COLUMN: KEY: message, naming the key:
a private key that does not match its certificate, a key file or admin token
readable by others, a missing certificate, a state_dir that is not a writable
directory, an admin listener on a non-loopback address without
admin_token_file. As root with a `nobody` account, unreadable files and an
unwritable state_dir are also checked as that user. `run` refuses the same
configs with exit 1.
"""

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, TestRun, expect, expect_eq, free_port  # noqa: E402


def main():
    run = TestRun("check", __doc__)
    run.require_binaries()
    h = Harness(run)
    try:
        h.write_edge_config()
        conf = h.pair_origin([("app.test", None, "http://127.0.0.1:%d" % free_port())])
        with open(h.edge_conf) as f:
            good_edge = f.read()
        with open(conf) as f:
            good_origin = f.read()
        # A second, valid certificate + key whose key does not match the first.
        other_cert, other_key = h.path("other.pem"), h.path("other.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30", "-subj", "/CN=other",
                        "-keyout", other_key, "-out", other_cert], capture_output=True, check=True,
                       timeout=30)
    except Exception as e:  # noqa: BLE001
        run.setup_failed(e)

    def check(binary, text, name, as_user=None, config_dir=None):
        path = os.path.join(config_dir or h.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        argv = [run.bin(binary), "check", "--config", path]
        if as_user:
            pw = pwd.getpwnam(as_user)
            argv = ["setpriv", "--reuid", str(pw.pw_uid), "--regid", str(pw.pw_gid),
                    "--clear-groups"] + argv
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return path, r

    def expect_problem(binary, text, name, key, words, **kw):
        path, r = check(binary, text, name, **kw)
        expect_eq(r.returncode, 1, "%s check of %s exit code (stderr %r)" % (binary, name, r.stderr))
        m = re.search(r"(?m)^%s:(\d+):(\d+): %s: (.*)$" % (re.escape(path), re.escape(key)), r.stderr)
        expect(m, "%s: no FILE:LINE:COL: %s: problem in %r" % (name, key, r.stderr))
        for w in words:
            expect(w in m.group(3), "%s: %r not in %r" % (name, w, m.group(3)))
        print("   %s" % r.stderr.strip().splitlines()[0].replace(h.tmp, "$TMP"))
        return path

    @run.case
    def good_configs_pass():
        for binary, text, name in (("hearth-edge", good_edge, "ok-edge.toml"),
                                   ("hearth-origin", good_origin, "ok-origin.toml")):
            _, r = check(binary, text, name)
            expect_eq(r.returncode, 0, "%s check of a good config (stderr %r)" % (binary, r.stderr))

    @run.case
    def certificate_and_key_that_do_not_match():
        text = re.sub(r'(?m)^key  = ".*"$', 'key  = "%s"' % other_key, good_edge)
        path = expect_problem("hearth-edge", text, "mismatch.toml", "tls.certificates[0].key",
                              ["does not match certificate", "other.key"])
        r = subprocess.run([run.bin("hearth-edge"), "run", "--config", path], capture_output=True,
                           text=True, timeout=30)
        expect_eq(r.returncode, 1, "run with a mismatched key exit code")

    @run.case
    def key_file_readable_by_others():
        open_key = h.path("open.key")
        shutil.copy(h.key, open_key)
        os.chmod(open_key, 0o644)
        text = re.sub(r'(?m)^key  = ".*"$', 'key  = "%s"' % open_key, good_edge)
        expect_problem("hearth-edge", text, "open-key.toml", "tls.certificates[0].key",
                       ["readable or writable by others", "0644"])
        os.chmod(open_key, 0o640)  # root:hearth 0640 is how the units read keys: allowed
        _, r = check("hearth-edge", text, "group-key.toml")
        expect_eq(r.returncode, 0, "a 0640 key (stderr %r)" % r.stderr)
        okey_rel = h.read_key(conf, "key_file")
        okey = os.path.join(os.path.dirname(conf), okey_rel)
        open_okey = h.path("open-origin.key")
        shutil.copy(okey, open_okey)
        os.chmod(open_okey, 0o604)
        text = good_origin.replace('"%s"' % okey_rel, '"%s"' % open_okey)
        expect_problem("hearth-origin", text, "open-origin.toml", "origin.key_file",
                       ["readable or writable by others", "0604"])

    @run.case
    def missing_certificate_file():
        text = good_edge.replace(h.cert, h.path("nope.pem"))
        expect_problem("hearth-edge", text, "missing-cert.toml", "tls.certificates[0].cert",
                       ["file not found"])

    @run.case
    def state_dir_not_a_writable_directory():
        a_file = h.path("a-file")
        open(a_file, "w").close()
        text = re.sub(r'(?m)^state_dir\s*=.*$', 'state_dir     = "%s"' % a_file, good_edge)
        expect_problem("hearth-edge", text, "state-file.toml", "edge.state_dir", ["is not a directory"])
        text = re.sub(r'(?m)^state_dir\s*=.*$', 'state_dir     = "%s/sub/dir"' % a_file, good_edge)
        expect_problem("hearth-edge", text, "state-under-file.toml", "edge.state_dir",
                       ["cannot be created"])

    @run.case
    def admin_on_the_network_needs_a_token():
        text = re.sub(r'(?m)^listen_admin\s*=.*$', 'listen_admin  = "0.0.0.0:%d"' % free_port(), good_edge)
        path = expect_problem("hearth-edge", text, "open-admin.toml", "edge.listen_admin",
                              ["not a loopback address", "admin_token_file"])
        r = subprocess.run([run.bin("hearth-edge"), "run", "--config", path], capture_output=True,
                           text=True, timeout=30)
        expect_eq(r.returncode, 1, "run with an open admin and no token: exit code")
        token = h.path("admin.token")
        with open(token, "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        os.chmod(token, 0o600)
        text2 = text.replace("[[tls.certificates]]",
                             'admin_token_file = "%s"\n\n[[tls.certificates]]' % token, 1)
        _, r = check("hearth-edge", text2, "token-admin.toml")
        expect_eq(r.returncode, 0, "open admin with a token (stderr %r)" % r.stderr)
        os.chmod(token, 0o644)
        expect_problem("hearth-edge", text2, "open-token.toml", "edge.admin_token_file",
                       ["readable or writable by others"])
        otext = re.sub(r"(?m)^\[origin\]$", '[origin]\nlisten_admin = "[::]:%d"' % free_port(), good_origin)
        expect_problem("hearth-origin", otext, "open-origin-admin.toml", "origin.listen_admin",
                       ["not a loopback address"])

    @run.case
    def unreadable_files_and_unwritable_state_dir_as_another_user():
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            print("   (not root or no setpriv: checked as the current user only)")
            return
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            print("   (no nobody account)")
            return
        d = tempfile.mkdtemp(prefix="hearth-check-", dir=h.tmp)
        os.chmod(h.tmp, 0o755)
        os.chmod(d, 0o755)
        state = os.path.join(d, "state")
        os.mkdir(state, 0o755)  # root's: nobody cannot write it
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        shutil.copy(h.cert, cert)
        shutil.copy(h.key, key)
        os.chmod(cert, 0o644)
        os.chmod(key, 0o600)  # root's: nobody cannot read it
        text = good_edge.replace(h.cert, cert).replace(h.key, key)
        text = re.sub(r'(?m)^state_dir\s*=.*$', 'state_dir     = "%s"' % state, text)
        path, r = check("hearth-edge", text, "as-nobody.toml", as_user="nobody", config_dir=d)
        expect_eq(r.returncode, 1, "check as nobody exit code (stderr %r)" % r.stderr)
        expect(re.search(r"(?m)^%s:\d+:\d+: tls.certificates\[0\].key: cannot read" % re.escape(path),
                         r.stderr), "no unreadable-key problem: %r" % r.stderr)
        expect(re.search(r"(?m)^%s:\d+:\d+: edge.state_dir: cannot write to" % re.escape(path),
                         r.stderr), "no unwritable state_dir problem: %r" % r.stderr)
        for line in r.stderr.strip().splitlines():
            print("   " + line.replace(h.tmp, "$TMP"))

    run.finish()


if __name__ == "__main__":
    main()
