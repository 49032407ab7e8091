#!/usr/bin/env python3
"""Benchmark of `pybackup forget` (issue: members copied as they are).

On a copy of a real tree (default: the Python standard library): a first
backup, then three backups each after 1 % of the files changed content,
then `forget --keep-last 1`, which drops three snapshots and rewrites the
first archive to hold only what the kept snapshot needs. Each timed
forget runs on a fresh copy of the same repository. With `--baseline BIN`
the same forget also runs with another pybackup binary (for example the
one before this change), alternating A B A B, so both are measured in one
run. Reports medians of wall time and peak RSS (GNU time), the ratio of
forget to the first backup, and the ratio to the baseline.

    python3 benches/forget.py [--rounds N] [--tree PATH] [--baseline BIN]
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

from backup import files_of  # the same tree listing as the backup benchmark

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GNU_TIME = "/usr/bin/time"


def timed(cmd):
    """Wall seconds and peak RSS (KiB) of a command, through GNU time."""
    t = time.perf_counter()
    r = subprocess.run([GNU_TIME, "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    err = r.stderr.decode(errors="replace")
    if r.returncode != 0:
        sys.stderr.write(err)
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}")
    return dt, int(err.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", default=sysconfig.get_paths()["stdlib"])
    ap.add_argument("--baseline", help="another pybackup binary to run the same forget with")
    args = ap.parse_args()
    if not os.path.exists(GNU_TIME):
        raise SystemExit("needs GNU time (apt-get install time)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pybackup"], cwd=ROOT, check=True)
    pyb = os.path.join(ROOT, "target", "release", "pybackup")
    work = tempfile.mkdtemp(prefix="bench-forget-")
    src = os.path.join(work, "src")
    print(f"copying {args.tree} ...", flush=True)
    shutil.copytree(args.tree, src, symlinks=True)
    files = files_of(src)
    repo = os.path.join(work, "repo")
    backup = [pyb, "-q", "--no-progress", "backup", src, repo]
    first, _ = timed(backup)
    for i in range(3):
        for p in files[i::100]:
            with open(p, "ab") as f:
                f.write(f"\n# change {i}\n".encode())
        timed(backup)
    print(f"tree: {len(files)} files; first backup {first:.2f} s; 4 snapshots", flush=True)

    runs = {"new": [], "baseline": []}
    bins = [("new", pyb)] + ([("baseline", args.baseline)] if args.baseline else [])
    for rnd in range(args.rounds):
        for name, binary in bins:
            copy = os.path.join(work, "copy")
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(repo, copy)
            os.sync()
            runs[name].append(timed([binary, "-q", "--no-progress", "forget", copy, "--keep-last", "1"]))
            check = subprocess.run([pyb, "-q", "check", copy], capture_output=True)
            if check.returncode != 0:
                raise SystemExit(f"check failed after forget by {name}: {check.stderr.decode(errors='replace')}")
        print(f"round {rnd + 1}: " + "  ".join(f"{n} {v[-1][0]:.2f} s {v[-1][1] / 1024:.0f} MiB"
                                               for n, v in runs.items() if v), flush=True)
    print()
    for name, v in runs.items():
        if not v:
            continue
        wall = statistics.median(x[0] for x in v)
        rss = statistics.median(x[1] for x in v) / 1024
        print(f"forget ({name}): median {wall:.2f} s, peak RSS {rss:.0f} MiB, {wall / first:.3f} x first backup")
    if runs["baseline"]:
        new = statistics.median(x[0] for x in runs["new"])
        old = statistics.median(x[0] for x in runs["baseline"])
        print(f"new / baseline wall time: {new / old:.3f} (target <= 0.3)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
