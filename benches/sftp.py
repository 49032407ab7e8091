#!/usr/bin/env python3
"""Backups over SFTP (issue 18), against a local repository and restic's
`sftp:` backend to the same server, in one run.

Starts Debian's OpenSSH server on 127.0.0.1 (a high port, keys made here,
SFTP only), then, each round, for the tree (default: the Python standard
library):

1. pybackup: a first backup into a new local repository;
2. pybackup: a first backup into a new directory over SFTP, then an
   unchanged backup, then a restore of everything;
3. pybackup: a first backup into a new *encrypted* repository over SFTP;
4. restic: a first backup into a new `sftp:` repository on the same
   server (restic always encrypts), an unchanged one, a restore.

It prints medians of wall time, and the ratio the issue sets a target for
(first backup over SFTP <= 1.5 x local) and the ratios to restic.

    python3 benches/sftp.py [--rounds N] [--tree PATH] [--no-restic]
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from remote import free_port, wall  # noqa: E402  (the same helpers as the S3 bench)


def sshd(work):
    """sshd on a free port; returns (process, port, user, ssh command)."""
    port = free_port()
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    for k in ["host", "id"]:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{work}/{k}"], check=True)
    shutil.copy(f"{work}/id.pub", f"{work}/authorized_keys")
    os.makedirs("/run/sshd", exist_ok=True)
    with open(f"{work}/sshd_config", "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work}/host\nPidFile {work}/sshd.pid\n"
                f"AuthorizedKeysFile {work}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n"
                f"KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n"
                f"AllowUsers {user}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n")
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{work}/sshd_config"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    give_up = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > give_up:
                raise SystemExit("sshd did not start (apt-get install openssh-server)")
            time.sleep(0.05)
    key = open(f"{work}/host.pub").read().split()
    with open(f"{work}/known_hosts", "w") as f:
        f.write(f"[127.0.0.1]:{port} {key[0]} {key[1]}\n")
    ssh = (f"ssh -F /dev/null -i {work}/id -o IdentitiesOnly=yes -o UserKnownHostsFile={work}/known_hosts "
           f"-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes")
    return proc, port, user, ssh


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", default=sysconfig.get_paths()["stdlib"])
    ap.add_argument("--no-restic", action="store_true")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pybackup"], cwd=ROOT, check=True)
    pyb = os.path.join(ROOT, "target/release/pybackup")
    restic = None if args.no_restic else shutil.which("restic")
    work = tempfile.mkdtemp(prefix="xtar-sftp-")
    proc, port, user, ssh = sshd(work)
    env = dict(os.environ, PYBACKUP_SSH_COMMAND=ssh, RESTIC_PASSWORD="bench",
               PYBACKUP_STAGING_DIR=os.path.join(work, "staging"), PYBACKUP_CACHE_DIR=os.path.join(work, "cache"))
    subprocess.run(f"find '{args.tree}' -type f -print0 | xargs -0 cat > /dev/null", shell=True, check=True)
    keys = ["local", "sftp", "sftp_same", "sftp_restore", "sealed", "restic", "restic_same", "restic_restore"]
    r = {k: [] for k in keys}
    try:
        for i in range(args.rounds):
            local = os.path.join(work, f"local{i}")
            r["local"].append(wall([pyb, "-q", "backup", args.tree, local], env))
            shutil.rmtree(local)
            url = f"sftp://{user}@127.0.0.1:{port}{work}/remote{i}"
            r["sftp"].append(wall([pyb, "-q", "backup", args.tree, url], env))
            r["sftp_same"].append(wall([pyb, "-q", "backup", args.tree, url], env))
            dest = os.path.join(work, f"back{i}")
            r["sftp_restore"].append(wall([pyb, "-q", "restore", url, dest], env))
            shutil.rmtree(dest)
            shutil.rmtree(f"{work}/remote{i}")
            sealed = f"sftp://{user}@127.0.0.1:{port}{work}/sealed{i}"
            wall([pyb, "-q", "init", sealed, "--encrypt", "--recovery-key", f"{work}/rec{i}.key"], env)
            r["sealed"].append(wall([pyb, "-q", "backup", args.tree, sealed], env))
            shutil.rmtree(f"{work}/sealed{i}")
            if restic:
                repo = f"sftp:{user}@127.0.0.1:{work}/restic{i}"
                opt = ["-o", f"sftp.command={ssh} -p {port} {user}@127.0.0.1 -s sftp"]
                wall([restic, "-q", "-r", repo, *opt, "init"], env)
                r["restic"].append(wall([restic, "-q", "-r", repo, *opt, "backup", args.tree], env))
                r["restic_same"].append(wall([restic, "-q", "-r", repo, *opt, "backup", args.tree], env))
                r["restic_restore"].append(wall([restic, "-q", "-r", repo, *opt, "restore", "latest",
                                                 "--target", dest], env))
                shutil.rmtree(dest, ignore_errors=True)
                shutil.rmtree(f"{work}/restic{i}")
            print(f"round {i + 1}: done", flush=True)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    med = lambda k: statistics.median(r[k]) if r[k] else float("nan")
    print(f"\ntree {args.tree}; medians of {args.rounds} rounds; OpenSSH sshd on 127.0.0.1")
    labels = [("local", "pybackup first, local"), ("sftp", "pybackup first, sftp"),
              ("sftp_same", "pybackup unchanged, sftp"), ("sftp_restore", "pybackup restore all, sftp"),
              ("sealed", "pybackup first, encrypted, sftp"), ("restic", "restic first, sftp"),
              ("restic_same", "restic unchanged, sftp"), ("restic_restore", "restic restore all, sftp")]
    for k, label in labels:
        if r[k]:
            print(f"{label:34}{med(k):9.2f} s")
    print(f"\nfirst backup over SFTP / local: {med('sftp') / med('local'):.3f} (target <= 1.5)")
    if r["restic"]:
        print(f"pybackup / restic over SFTP: first {med('sftp') / med('restic'):.3f} "
              f"(encrypted {med('sealed') / med('restic'):.3f}), unchanged {med('sftp_same') / med('restic_same'):.3f}, "
              f"restore {med('sftp_restore') / med('restic_restore'):.3f}")


if __name__ == "__main__":
    main()
