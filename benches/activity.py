#!/usr/bin/env python3
"""pyactivity on a generated tree of one million files, against
`find DIR -printf '%T@ %s %p\\n' | sort -n`, in turn; plus peak RSS, and the
clustering of one million records alone (benches/src/bin/cluster.rs). Then
the timeline outputs against the plain scan (`pyactivity -q DIR`), in turn:
`--bodyfile` (target: at most 1.2x), `--csv` and `--html` (with the page's
size), and their peak RSS.

    python3 benches/activity.py [--files N] [--rounds N] [--keep DIR]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def generate(root, n):
    """About 200 directories wide, 200 deep-ish subdirectories each, with
    mtimes in sessions spread over a year."""
    per_dir = max(1, n // (200 * 200))
    made = 0
    base = 1_700_000_000
    for a in range(200):
        for b in range(200):
            if made >= n:
                return made
            d = os.path.join(root, f"d{a:03}", f"s{b:03}")
            os.makedirs(d, exist_ok=True)
            session = base + ((a * 200 + b) % 500) * 4 * 3600
            for k in range(per_dir):
                p = os.path.join(d, f"f{k:03}")
                fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
                os.close(fd)
                t = session + k * 7
                os.utime(p, (t, t))
                made += 1
    return made


def wall(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", default=None, help="reuse or keep the tree in this directory")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pyactivity", "-p", "benches"], cwd=ROOT, check=True)
    pya = os.path.join(ROOT, "target/release/pyactivity")
    root = args.keep or tempfile.mkdtemp(prefix="pyactivity-bench-")
    marker = os.path.join(root, ".generated")
    if not os.path.exists(marker):
        t = time.perf_counter()
        n = generate(root, args.files)
        open(marker, "w").write(str(n))
        print(f"# generated {n} files in {time.perf_counter() - t:.0f} s under {root}")
    n = int(open(marker).read())
    subprocess.run(["find", root, "-printf", ""], check=True)
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(wall(f"{pya} '{root}'"))
        theirs.append(wall(f"find '{root}' -printf '%T@ %s %p\\n' | sort -n"))
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"pyactivity {mo:.2f} s, find | sort -n {mt:.2f} s: ratio {mo / mt:.2f} ({n} files)")
    r = subprocess.run(["/usr/bin/time", "-f", "%M", pya, root], capture_output=True, text=True, check=True)
    rss_kib = int(r.stderr.strip().splitlines()[-1])
    print(f"pyactivity peak RSS {rss_kib / 1024:.0f} MiB = {rss_kib * 1024 / n:.0f} bytes per file")
    print(subprocess.run([os.path.join(ROOT, "target/release/cluster"), str(n)], capture_output=True, text=True,
                         check=True).stdout.strip())
    out = tempfile.mkdtemp(prefix="pyactivity-out-")
    runs = {
        "plain scan": f"{pya} -q '{root}'",
        "--bodyfile": f"{pya} -q --bodyfile '{out}/body' '{root}'",
        "--csv": f"{pya} -q --csv '{out}/out.csv' '{root}'",
        "--html": f"{pya} -q --html '{out}/out.html' '{root}'",
    }
    times = {k: [] for k in runs}
    for _ in range(args.rounds):
        for k, cmd in runs.items():
            times[k].append(wall(cmd))
    base = statistics.median(times["plain scan"])
    for k, cmd in runs.items():
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "sh", "-c", cmd], capture_output=True, text=True, check=True)
        rss = int(r.stderr.strip().splitlines()[-1]) / 1024
        m = statistics.median(times[k])
        print(f"{k:12} {m:6.2f} s  {m / base:5.2f}x the plain scan  peak RSS {rss:5.0f} MiB")
    for name in ("body", "out.csv", "out.html"):
        print(f"  {name}: {os.path.getsize(os.path.join(out, name)) / 1e6:.1f} MB")
    shutil.rmtree(out)
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
