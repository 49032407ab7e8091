#!/usr/bin/env python3
"""Benchmark of volume sets (issue: volumes written in one pass).

On a real tree (default: the Python standard library), in one run and in
turn (A B A B): `pybackup compress SRC -o OUT` (one archive) and
`pybackup compress SRC -o BASE --volume-size SIZE` (a set). Reports the
median wall times, the ratio set / archive (target <= 1.1), how full the
volumes are, and the peak disk use of the set's directory while it is
written (sampled), against the size of the finished set. With
`--baseline BIN` the same set is also written by another pybackup binary.

    python3 benches/volumes.py [--rounds N] [--tree PATH] [--size 50M] [--baseline BIN]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def run(cmd, watch=None):
    """Wall time, and the peak disk use of `watch` sampled every 20 ms."""
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], du(watch))
            time.sleep(0.02)

    t = threading.Thread(target=sample) if watch else None
    if t:
        t.start()
    start = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    done.set()
    if t:
        t.join()
    if r.returncode != 0:
        sys.stderr.write(r.stderr.decode(errors="replace"))
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}")
    return wall, peak[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", default=sysconfig.get_paths()["stdlib"])
    ap.add_argument("--size", default="50M")
    ap.add_argument("--baseline", help="another pybackup binary to write the same set with")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pybackup"], cwd=ROOT, check=True)
    pyb = os.path.join(ROOT, "target", "release", "pybackup")
    work = tempfile.mkdtemp(prefix="bench-volumes-")
    subprocess.run(f"find '{args.tree}' -type f -print0 | xargs -0 cat > /dev/null", shell=True, check=True)
    runs = {"archive": [], "set": [], "baseline set": []}
    peaks = {"set": [], "baseline set": []}
    sizes = {}
    for rnd in range(args.rounds):
        steps = [("archive", pyb), ("set", pyb)] + ([("baseline set", args.baseline)] if args.baseline else [])
        for name, binary in steps:
            out = os.path.join(work, name.replace(" ", "-"))
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            os.sync()
            if name == "archive":
                cmd = [binary, "-q", "--no-progress", "compress", args.tree, "-o", os.path.join(out, "a.xtar")]
                wall, _ = run(cmd)
            else:
                cmd = [binary, "-q", "--no-progress", "compress", args.tree, "-o", os.path.join(out, "set"),
                       "--volume-size", args.size]
                wall, peak = run(cmd, watch=out)
                peaks[name].append(peak)
                vols = sorted(os.listdir(out))
                sizes[name] = [os.path.getsize(os.path.join(out, v)) for v in vols]
            runs[name].append(wall)
        print(f"round {rnd + 1}: " + "  ".join(f"{k} {v[-1]:.2f} s" for k, v in runs.items() if v), flush=True)
    m = {k: statistics.median(v) for k, v in runs.items() if v}
    print()
    print(f"one archive: median {m['archive']:.2f} s")
    for name in ("set", "baseline set"):
        if name not in m:
            continue
        vols = sizes[name]
        full = [s / vols[0] for s in vols[:-1]] if len(vols) > 1 else [1.0]
        total = sum(vols)
        print(f"{name}: median {m[name]:.2f} s = {m[name] / m['archive']:.3f} x one archive (target <= 1.1); "
              f"{len(vols)} volumes, {total / 1e6:.1f} MB; peak disk use while writing "
              f"{max(peaks[name]) / 1e6:.1f} MB = {max(peaks[name]) / total:.2f} x the finished set")
        print(f"  volumes but the last: {min(vols[:-1] or [0]) / 1e6:.2f} to {max(vols[:-1] or [0]) / 1e6:.2f} MB "
              f"(largest / smallest {max(full):.3f} / {min(full):.3f})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
