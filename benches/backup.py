#!/usr/bin/env python3
"""Benchmarks of backup sets (issue: versioned snapshots, incremental runs).

On a copy of a real tree (default: the Python standard library), for
pybackup and for `restic backup` in the same run, each round:

1. a first, full backup into an empty repository;
2. a second backup of the unchanged tree;
3. a backup after touching (new mtime) 1 % of the files;
then, for pybackup once: five more incremental backups, each changing 20
files, and `pybackup restore REPO DEST PATH` of one file, timed 15 times.

The tree is read once before every timed step (the machine's proactive
reclaim evicts it otherwise). Medians are reported, with the ratios that
the issue sets targets for (unchanged ≤ 0.05 × first, 1 % ≤ 0.1 × first,
one-file restore < 50 ms) and the ratios to restic.

    python3 benches/backup.py [--rounds N] [--tree PATH] [--no-restic]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def wall(cmd, env=None):
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.stderr.write(r.stderr.decode(errors="replace"))
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}")
    return dt


def warm(tree):
    """Reads the tree into the page cache, and flushes pending writes (the
    previous step's archive) so that no step pays for another's writeback."""
    subprocess.run(f"find '{tree}' -type f -print0 | xargs -0 cat > /dev/null", shell=True, check=True)
    os.sync()


def files_of(tree):
    out = []
    for d, dirs, files in os.walk(tree):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(p)
    return out


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(d, f)).st_size
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", default=sysconfig.get_paths()["stdlib"])
    ap.add_argument("--no-restic", action="store_true")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pybackup"], cwd=ROOT, check=True)
    pyb = os.path.join(ROOT, "target", "release", "pybackup")
    restic = None if args.no_restic else shutil.which("restic")
    work = tempfile.mkdtemp(prefix="bench-backup-")
    src = os.path.join(work, "src")
    print(f"copying {args.tree} ...", flush=True)
    shutil.copytree(args.tree, src, symlinks=True)
    files = files_of(src)
    print(f"tree: {len(files)} files, {du(src) / 1e6:.1f} MB; pybackup {pyb}; restic {restic or 'not run'}")
    env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_CACHE_DIR=os.path.join(work, "restic-cache"))
    t = {k: [] for k in ("p_first", "p_same", "p_touch", "r_first", "r_same", "r_touch")}
    sizes = {}
    for rnd in range(args.rounds):
        prepo = os.path.join(work, "prepo")
        rrepo = os.path.join(work, "rrepo")
        shutil.rmtree(prepo, ignore_errors=True)
        shutil.rmtree(rrepo, ignore_errors=True)
        if restic:
            subprocess.run([restic, "init", "-q", "--repo", rrepo], env=env, check=True, stdout=subprocess.DEVNULL)
        pcmd = [pyb, "-q", "--no-progress", "backup", src, prepo]
        rcmd = [restic, "-q", "--repo", rrepo, "backup", src] if restic else None
        for step, prep in (("first", None), ("same", None), ("touch", rnd)):
            if prep is not None:
                # Touch a different 1 % each round: every 100th file, offset by the round.
                now = time.time() + 60 * (rnd + 1)
                for p in files[rnd % 100 :: 100]:
                    os.utime(p, (now, now))
            warm(src)
            t["p_" + step].append(wall(pcmd))
            if rcmd:
                warm(src)
                t["r_" + step].append(wall(rcmd, env))
        sizes["pybackup"] = du(prepo)
        if restic:
            sizes["restic"] = du(rrepo)
        print(f"round {rnd + 1}: " + "  ".join(f"{k} {v[-1]:.3f}" for k, v in t.items() if v), flush=True)

    # Restore one file from a snapshot five incrementals deep.
    prepo = os.path.join(work, "prepo")
    for i in range(5):
        for p in files[i * 20 + 7 :: len(files) // 20][:20]:
            with open(p, "ab") as f:
                f.write(b"\n# changed\n")
        subprocess.run(pcmd, check=True)
    target = files[len(files) // 2]
    rel = os.path.relpath(target, src)
    restores = []
    for i in range(15):
        dest = os.path.join(work, f"restore{i}")
        restores.append(wall([pyb, "-q", "--no-progress", "restore", prepo, dest, rel]))
        with open(os.path.join(dest, rel), "rb") as a, open(target, "rb") as b:
            assert a.read() == b.read(), "restored file differs"
    snaps = subprocess.run([pyb, "snapshots", prepo], capture_output=True, text=True, check=True).stdout
    depth = len(snaps.strip().splitlines()) - 1

    m = {k: statistics.median(v) for k, v in t.items() if v}
    print()
    print(f"medians of {args.rounds} rounds (s)     pybackup   restic")
    for step, label in (("first", "first backup"), ("same", "unchanged"), ("touch", "1 % touched")):
        r = f"{m['r_' + step]:8.3f}" if restic else "       -"
        print(f"{label:30} {m['p_' + step]:8.3f}  {r}")
    print(f"unchanged / first              {m['p_same'] / m['p_first']:8.3f}  (target <= 0.05)")
    print(f"1 % touched / first            {m['p_touch'] / m['p_first']:8.3f}  (target <= 0.1)")
    if restic:
        for step in ("first", "same", "touch"):
            print(f"pybackup / restic, {step:11} {m['p_' + step] / m['r_' + step]:8.3f}")
        print(f"repository size: pybackup {sizes['pybackup'] / 1e6:.1f} MB, restic {sizes['restic'] / 1e6:.1f} MB")
    print(f"restore of one file from snapshot {depth} ({depth - 1} incrementals deep after the first): "
          f"median {statistics.median(restores) * 1000:.1f} ms, min {min(restores) * 1000:.1f} ms (target < 50 ms)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
