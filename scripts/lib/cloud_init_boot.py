#!/usr/bin/env python3
"""Plays one telemetryd cloud-init file's first boot in a throwaway root, the way cloud-init does.

    cloud_init_boot.py ROOT CLOUD_INIT.yaml --deb TELEMETRYD.deb --role ROLE [--var name=value]...

ROOT is a writable root filesystem in which dpkg and apt work (scripts/deploy-checks.sh gives it
an overlay of the host's root in a private mount namespace, so nothing reaches the host). As on a
first boot: telemetryd is not installed and its user does not exist (both are removed from ROOT
first if the overlaid host has them), write_files are written (init stage), then each runcmd
entry runs in order through chroot, as cloud-init's runcmd script does: with no terminal (stdin
/dev/null) and no `set -e`, so a failed command does not stop the next one. `${name}` template
variables are filled from --var; telemetryd_deb_url becomes a file:// URL of --deb inside ROOT.

Test harness, not a fake: `systemctl` in ROOT is a stub that records its arguments (there is no
systemd to talk to), and the wait-for-ready helper is skipped (nothing is started).

The boot passes when every command that ran exited 0, the package is "install ok installed",
the telemetryd user exists, /etc/telemetryd/ROLE.yaml is the file cloud-init wrote and
`telemetryd check-config` of it passes as the telemetryd user (the daemon's reader).
Prints each step and the verdict; exit 0 when the boot passed, 1 otherwise.
"""
import argparse
import os
import shutil
import subprocess
import sys

import yaml

ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
       "LANG": "C.UTF-8"}
SKIP = {"/usr/local/sbin/telemetryd-wait-ready": "waits for a running daemon; nothing is started here"}


def chroot(root, argv, user=None, **kw):
    spec = [f"--userspec={user}:{user}"] if user else []
    return subprocess.run(["chroot", *spec, root, *argv], env=ENV, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def fill(text, values):
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("cloud_init")
    ap.add_argument("--deb", required=True)
    ap.add_argument("--role", required=True)
    ap.add_argument("--var", action="append", default=[])
    args = ap.parse_args()
    root = args.root
    values = dict(v.split("=", 1) for v in args.var)
    values["telemetryd_deb_url"] = "file:///var/cache/telemetryd-test/telemetryd.deb"
    doc = yaml.safe_load(open(args.cloud_init))

    # A first boot: no telemetryd package, no role files, no user (the host may have them).
    r = chroot(root, ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "telemetryd"])
    if r.returncode == 0 and r.stdout.strip() not in ("", "un", "pn"):
        print(f"setup: the overlaid root has telemetryd ({r.stdout.strip()}); purging it first")
        chroot(root, ["dpkg", "--purge", "--force-all", "telemetryd"])
    shutil.rmtree(os.path.join(root, "etc/telemetryd"), ignore_errors=True)
    if chroot(root, ["getent", "passwd", "telemetryd"]).returncode == 0:
        chroot(root, ["userdel", "telemetryd"])
    if chroot(root, ["getent", "group", "telemetryd"]).returncode == 0:
        chroot(root, ["groupdel", "telemetryd"])
    os.makedirs(os.path.join(root, "var/cache/telemetryd-test"), exist_ok=True)
    shutil.copy(args.deb, os.path.join(root, "var/cache/telemetryd-test/telemetryd.deb"))
    stub = os.path.join(root, "usr/local/sbin/systemctl")
    os.makedirs(os.path.dirname(stub), exist_ok=True)
    with open(stub, "w") as f:
        f.write('#!/bin/sh\n# test harness: records what cloud-init asked of systemd\n'
                'echo "systemctl $*" >> /var/log/systemctl-stub.log\nexit 0\n')
    os.chmod(stub, 0o755)

    missing = [p for p in doc.get("packages", [])
               if "install ok installed" not in chroot(root, ["dpkg-query", "-W", "-f=${Status}", p]).stdout]
    if missing:
        print(f"packages: not in the root (cloud-init would install them): {missing}")
        return 1
    print(f"packages: {doc.get('packages', [])} present")

    for wf in doc.get("write_files", []):
        path = os.path.join(root, wf["path"].lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(fill(wf.get("content", ""), values))
        os.chmod(path, int(str(wf.get("permissions", "0644")), 8))
        print(f"write_files: {wf['path']} ({wf.get('permissions', '0644')})")

    failed = []
    for entry in doc.get("runcmd", []):
        argv = ["sh", "-c", entry] if isinstance(entry, str) else [str(a) for a in entry]
        argv = [fill(a, values) for a in argv]
        shown = " ".join(argv)
        if argv[0] in SKIP:
            print(f"runcmd: SKIP {shown} ({SKIP[argv[0]]})")
            continue
        r = chroot(root, argv, timeout=600)
        print(f"runcmd: exit {r.returncode}: {shown}")
        for line in r.stdout.splitlines()[-15:]:
            print(f"    | {line}")
        if r.returncode != 0:
            failed.append(shown)

    status = chroot(root, ["dpkg-query", "-W", "-f=${Status}", "telemetryd"]).stdout.strip()
    user = chroot(root, ["getent", "passwd", "telemetryd"]).stdout.strip()
    role_file = f"/etc/telemetryd/{args.role}.yaml"
    # As the daemon reads it: as the telemetryd user.
    check = chroot(root, ["telemetryd", "check-config", role_file], user="telemetryd") if user else None
    written = [fill(wf.get("content", ""), values) for wf in doc.get("write_files", [])
               if wf["path"].endswith(f"/{args.role}.yaml")]
    on_disk = open(os.path.join(root, role_file.lstrip("/"))).read() \
        if os.path.exists(os.path.join(root, role_file.lstrip("/"))) else None
    stub_log = os.path.join(root, "var/log/systemctl-stub.log")
    calls = open(stub_log).read().strip() if os.path.exists(stub_log) else "(none)"
    print(f"after boot: dpkg status of telemetryd: {status or '(not installed)'}")
    print(f"after boot: telemetryd user: {user or '(missing)'}")
    if check:
        print(f"after boot: check-config {role_file} as telemetryd: exit {check.returncode} {check.stdout.strip()}")
    print(f"after boot: {role_file} is the cloud-init one: {bool(written) and on_disk == written[0]}")
    print(f"after boot: systemctl calls: {calls}")
    problems = [f"command failed: {c}" for c in failed]
    if status != "install ok installed":
        problems.append(f"package not configured ({status or 'absent'})")
    if not user:
        problems.append("user telemetryd missing")
    if check is None or check.returncode != 0:
        problems.append("check-config of the role file as the telemetryd user failed")
    if not written or on_disk != written[0]:
        problems.append(f"{role_file} is not the file cloud-init wrote")
    for p in problems:
        print(f"BOOT FAILED: {p}")
    if not problems:
        print("BOOT PASSED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
