#!/usr/bin/python3
"""The Debian package (issue 13), built and installed for real.

Builds the .deb with CPack from the already-built tree (the --bin-dir's parent:
no rebuild), checks its contents and lintian (no errors), installs it with
`dpkg -i` on this machine, runs `hearth-edge --version` and `check` on the
installed examples, `systemd-analyze verify` and `security` on the installed
units, checks the hearth user, state dir and that an edited conffile survives a
reinstall, then removes and purges it (purge removes /var/lib/hearth).

This installs into the real /usr/bin and /etc: it needs root and dpkg-deb
(exit 77 otherwise; also 77 for a sanitizer build dir, where stripping and
linting the big ASan binaries would cost ~100 s for nothing new), refuses to run (77) when a hearth package, /var/lib/hearth,
/etc/hearth or /usr/bin/hearth-edge exist that it did not create, serializes
itself with a lock file, and purges what it installed whatever happens (a
marker under /run lets the next run clean up after a killed one).
"""

import fcntl
import glob
import os
import pwd
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, TestRun, expect, expect_eq  # noqa: E402

MARKER = "/run/hearth-package-test.installed"
LOCK = "/run/lock/hearth-package-test.lock"


def sh(argv, timeout=120, check=False, env=None):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r


def installed():
    r = sh(["dpkg-query", "-W", "-f=${db:Status-Status}", "hearth"])
    return r.returncode == 0 and r.stdout.strip() not in ("", "not-installed")


def dpkg_env():
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return env


def purge_ours():
    """Purge the package this test (or a killed earlier run) installed; remove its user."""
    if not os.path.exists(MARKER):
        return
    with open(MARKER) as f:
        made_user = "user" in f.read()
    if installed():
        sh(["dpkg", "--purge", "hearth"], env=dpkg_env())
    for leftover in ("/etc/hearth/edge.toml", "/etc/hearth/origin.toml"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    if os.path.isdir("/etc/hearth") and not os.listdir("/etc/hearth"):
        os.rmdir("/etc/hearth")
    if made_user:
        try:
            pwd.getpwnam("hearth")
            sh(["userdel", "hearth"])
            sh(["groupdel", "hearth"])
        except KeyError:
            pass
    os.unlink(MARKER)


def main():
    run = TestRun("package", __doc__)
    run.require_binaries()
    if os.geteuid() != 0:
        run.skip("needs root: it installs the package with dpkg -i")
    for tool in ("dpkg-deb", "dpkg", "cpack"):
        if not shutil.which(tool):
            run.skip("%s is missing" % tool)
    build_dir = os.path.dirname(run.bin_dir)
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            if re.search(r"(?m)^HEARTH_SANITIZE:BOOL=ON$", f.read()):
                # Stripping and linting ASan binaries takes ~100 s and tests nothing new.
                run.skip("sanitizer build: the package is tested with the Release build")
    except OSError:
        pass
    cpack_config = os.path.join(build_dir, "CPackConfig.cmake")
    if not os.path.exists(cpack_config):
        run.skip("no CPackConfig.cmake in %s (configure the build with this tree's CMakeLists)" % build_dir)
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    lock = open(LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # one package test at a time on this machine
    purge_ours()  # a killed earlier run's package
    if installed():
        run.skip("a hearth package that this test did not install is present: refusing to touch it")
    for path in ("/var/lib/hearth", "/etc/hearth", "/usr/bin/hearth-edge", "/usr/bin/hearth-origin",
                 "/lib/systemd/system/hearth-edge.service"):
        if os.path.lexists(path):
            run.skip("%s exists and is not this test's: refusing to install over it" % path)
    try:
        pwd.getpwnam("hearth")
        had_user = True
    except KeyError:
        had_user = False

    h = Harness(run)
    run.on_cleanup(purge_ours)
    state = {}

    @run.case
    def build_package_from_the_build_tree():
        out = h.path("pkg")
        r = sh(["cpack", "-G", "DEB", "-B", out, "--config", cpack_config], timeout=240)
        debs = glob.glob(os.path.join(out, "*.deb"))
        expect(r.returncode == 0 and len(debs) == 1, "cpack failed (%d):\n%s%s" % (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
        state["deb"] = debs[0]
        files = sh(["dpkg-deb", "-c", debs[0]], check=True).stdout
        for f in ("./usr/bin/hearth-edge", "./usr/bin/hearth-origin",
                  "./lib/systemd/system/hearth-edge.service", "./lib/systemd/system/hearth-origin.service",
                  "./etc/hearth/edge.toml.example", "./etc/hearth/origin.toml.example",
                  "./usr/share/doc/hearth/README.md", "./usr/share/doc/hearth/copyright",
                  "./usr/share/doc/hearth/changelog.gz"):
            expect(re.search(r"(?m) %s$" % re.escape(f), files), "%s not in the package:\n%s" % (f, files))
        expect("/usr/local" not in files, "the package installs into /usr/local")
        conffiles = sh(["dpkg-deb", "-I", debs[0], "conffiles"], check=True).stdout.split()
        expect_eq(sorted(conffiles), ["/etc/hearth/edge.toml.example", "/etc/hearth/origin.toml.example"],
                  "conffiles")
        print("   %s (%d KB)" % (os.path.basename(debs[0]), os.path.getsize(debs[0]) // 1024))

    @run.case
    def lintian_reports_no_errors():
        if "deb" not in state:
            raise AssertionError("no package")
        if not shutil.which("lintian"):
            print("   lintian missing: not checked")
            return
        r = sh(["lintian", "--tag-display-limit", "0", state["deb"]], timeout=240)
        errors = [l for l in r.stdout.splitlines() if l.startswith("E:")]
        expect(not errors, "lintian errors:\n    " + "\n    ".join(errors))
        warnings = [l for l in r.stdout.splitlines() if l.startswith("W:")]
        print("   lintian: 0 errors, %d warnings%s" % (len(warnings), (": " + "; ".join(warnings)) if warnings else ""))

    @run.case
    def install_with_dpkg():
        if "deb" not in state:
            raise AssertionError("no package")
        with open(MARKER, "w") as f:
            f.write("installed%s\n" % ("" if had_user else " user"))
        sh(["dpkg", "-i", state["deb"]], env=dpkg_env(), check=True)
        expect(installed(), "dpkg -i did not install hearth")
        r = sh(["/usr/bin/hearth-edge", "--version"], check=True)
        expect("hearth-edge" in r.stdout, "hearth-edge --version: %r" % r.stdout)
        r = sh(["/usr/bin/hearth-origin", "--version"], check=True)
        pw = pwd.getpwnam("hearth")
        expect(pw.pw_uid < 1000 and pw.pw_shell.endswith("nologin"), "hearth is not a system user: %r" % (pw,))
        st = os.stat("/var/lib/hearth")
        expect(st.st_uid == pw.pw_uid and (st.st_mode & 0o777) == 0o750,
               "/var/lib/hearth: owner %d mode %o" % (st.st_uid, st.st_mode & 0o777))
        st = os.stat("/etc/hearth")
        expect(st.st_gid == pw.pw_gid and (st.st_mode & 0o777) == 0o750,
               "/etc/hearth: group %d mode %o" % (st.st_gid, st.st_mode & 0o777))
        print("   " + r.stdout.strip())

    @run.case
    def check_the_installed_examples():
        # As shipped, only the certificate and key files (which the user provides) are missing.
        r = sh(["/usr/bin/hearth-edge", "check", "--config", "/etc/hearth/edge.toml.example"])
        problems = r.stderr.strip().splitlines()
        expect(r.returncode == 1 and problems, "check of edge.toml.example: exit %d %r" % (r.returncode, r.stderr))
        for p in problems:
            expect(re.match(r"/etc/hearth/edge\.toml\.example:\d+:\d+: tls\.certificates\[0\]\.(cert|key): "
                            r"file not found", p), "unexpected problem in edge.toml.example: %s" % p)
        # With a real certificate it passes.
        h.make_cert()
        text = open("/etc/hearth/edge.toml.example").read()
        text = text.replace("/etc/hearth/app.example.com/fullchain.pem", h.cert)
        text = text.replace("/etc/hearth/app.example.com/privkey.pem", h.key)
        with open("/etc/hearth/edge.toml", "w") as f:
            f.write(text)
        r = sh(["/usr/bin/hearth-edge", "check", "--config", "/etc/hearth/edge.toml"])
        expect_eq(r.returncode, 0, "check of the edited edge example (stderr %r)" % r.stderr)
        r = sh(["/usr/bin/hearth-origin", "check", "--config", "/etc/hearth/origin.toml.example"])
        problems = r.stderr.strip().splitlines()
        expect(r.returncode == 1 and len(problems) == 1 and
               re.match(r"/etc/hearth/origin\.toml\.example:\d+:\d+: origin\.key_file: file not found", problems[0]),
               "check of origin.toml.example: exit %d %r" % (r.returncode, r.stderr))
        key = h.path("origin.key")
        sh(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True)
        os.chmod(key, 0o600)
        text = open("/etc/hearth/origin.toml.example").read().replace("/etc/hearth/origin.key", key)
        with open("/etc/hearth/origin.toml", "w") as f:
            f.write(text)
        r = sh(["/usr/bin/hearth-origin", "check", "--config", "/etc/hearth/origin.toml"])
        expect_eq(r.returncode, 0, "check of the edited origin example (stderr %r)" % r.stderr)

    @run.case
    def systemd_units_verify_and_score():
        if not shutil.which("systemd-analyze"):
            print("   systemd-analyze missing: not checked")
            return
        units = ["/lib/systemd/system/hearth-edge.service", "/lib/systemd/system/hearth-origin.service"]
        r = sh(["systemd-analyze", "verify"] + units)
        ours = [l for l in (r.stdout + r.stderr).splitlines() if "hearth" in l]
        expect(r.returncode == 0 and not ours, "systemd-analyze verify (exit %d):\n%s%s" % (r.returncode, r.stdout, r.stderr))
        for u in units:
            r = sh(["systemd-analyze", "security", "--offline=yes", u])
            m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
            expect(m, "no exposure level for %s: %s%s" % (u, r.stdout[-500:], r.stderr[-500:]))
            expect(float(m.group(1)) <= 2.0, "%s exposure %s > 2.0" % (u, m.group(1)))
            print("   systemd-analyze security %s: %s" % (os.path.basename(u), m.group(1)))
        text = open(units[0]).read()
        for line in ("Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID",
                     "ExecStart=/usr/bin/hearth-edge"):
            expect(line in text, "%s not in the edge unit" % line)

    @run.case
    def edited_conffile_survives_a_reinstall():
        with open("/etc/hearth/edge.toml.example", "a") as f:
            f.write("# edited by the package test\n")
        sh(["dpkg", "-i", "--force-confold", state["deb"]], env=dpkg_env(), check=True)
        expect("# edited by the package test" in open("/etc/hearth/edge.toml.example").read(),
               "reinstalling overwrote the edited edge.toml.example")
        expect(os.path.exists("/etc/hearth/edge.toml"), "reinstalling removed the user's edge.toml")

    @run.case
    def remove_then_purge():
        sh(["dpkg", "--remove", "hearth"], env=dpkg_env(), check=True)
        expect(not os.path.exists("/usr/bin/hearth-edge"), "remove left /usr/bin/hearth-edge")
        expect(os.path.isdir("/var/lib/hearth"), "remove (not purge) deleted the state dir")
        sh(["dpkg", "--purge", "hearth"], env=dpkg_env(), check=True)
        expect(not installed(), "purge left the package installed")
        expect(not os.path.exists("/var/lib/hearth"), "purge left /var/lib/hearth")
        expect(not os.path.exists("/etc/hearth/edge.toml.example"), "purge left the conffiles")
        expect(os.path.exists("/etc/hearth/edge.toml"), "purge removed a file that is not the package's")

    run.finish()


if __name__ == "__main__":
    main()
