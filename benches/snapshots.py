#!/usr/bin/env python3
"""Benchmarks of the snapshot commands (issue: manifests and diffing).

1. `pybackup manifest TREE` (SHA-256 of every file) against
   `find TREE -type f -print0 | xargs -0 -P2 sha256sum`;
2. `pybackup manifest --no-hash TREE` against `find TREE -printf '%T@ %s %p\\n'`;
3. `pybackup diff` of two generated 500,000-entry manifests.

Commands run in turn (A B A B ...); medians of wall time are reported, and
ratios for 1 and 2.

    python3 benches/snapshots.py [--rounds N] [--tree PATH]
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def wall(cmd):
    t = time.perf_counter()
    r = subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode not in (0, 1):
        sys.stderr.write(r.stderr.decode(errors="replace"))
        raise SystemExit(f"failed: {cmd}")
    return dt


def compare(name, ours, theirs, rounds):
    a, b = [], []
    for _ in range(rounds):
        a.append(wall(ours))
        b.append(wall(theirs))
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"{name:28} pybackup {ma:7.3f} s   reference {mb:7.3f} s   ratio {ma / mb:5.2f}")


def manifest_line(path, sha, size, mtime):
    return f"{path}\tf\t0644\t{mtime}.000000000\t{size}\t{sha}\t-\n"


def write_manifests(dirname, n):
    """Two manifests of n entries: the second with 1 % edited, 0.5 % moved,
    0.5 % removed and 0.5 % added files."""
    rnd = random.Random(1)
    entries = []
    ndirs = n // 100
    for d in range(ndirs):
        for f in range(100):
            entries.append((f"dir{d:05}/file{f:03}.dat", "%064x" % rnd.getrandbits(256), rnd.randrange(1 << 20)))
    head = "#xtar-manifest 1\n#root /bench\n.\td\t0755\t0.000000000\t0\t-\t-\n"
    dirs = [f"dir{d:05}\td\t0755\t0.000000000\t0\t-\t-\n" for d in range(ndirs)]

    def dump(path, files):
        by_dir = {}
        for p, sha, size in files:
            by_dir.setdefault(p.split("/")[0], []).append((p, sha, size))
        with open(path, "w") as f:
            f.write(head)
            for d in range(ndirs):
                name = f"dir{d:05}"
                f.write(dirs[d])
                for p, sha, size in sorted(by_dir.get(name, []), key=lambda e: e[0].encode()):
                    f.write(manifest_line(p, sha, size, 1700000000))

    a = os.path.join(dirname, "a.manifest")
    b = os.path.join(dirname, "b.manifest")
    dump(a, entries)
    changed = list(entries)
    for i in rnd.sample(range(len(changed)), n // 100):
        p, _, size = changed[i]
        changed[i] = (p, "%064x" % rnd.getrandbits(256), size + 1)
    for i in rnd.sample(range(len(changed)), n // 200):
        p, sha, size = changed[i]
        changed[i] = (p.replace("file", "moved"), sha, size)
    removed = set(rnd.sample(range(len(changed)), n // 200))
    changed = [e for i, e in enumerate(changed) if i not in removed]
    for k in range(n // 200):
        changed.append((f"dir{k % ndirs:05}/new{k:06}.dat", "%064x" % rnd.getrandbits(256), k))
    dump(b, changed)
    return a, b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tree", default=None)
    ap.add_argument("--entries", type=int, default=500_000)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pybackup"], cwd=ROOT, check=True)
    pyb = os.path.join(ROOT, "target/release/pybackup")
    tree = args.tree or subprocess.run(
        ["python3", "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["tar", "-cf", "/dev/null", "-C", tree, "."], check=True)
    print(f"# tree {tree}, rounds {args.rounds}, cpus {os.cpu_count()}")
    compare("manifest (hash) vs sha256sum", f"{pyb} -q manifest '{tree}'",
            f"find '{tree}' -type f -print0 | xargs -0 -P2 sha256sum", args.rounds)
    compare("manifest --no-hash vs find", f"{pyb} -q manifest --no-hash '{tree}'",
            f"find '{tree}' -printf '%T@ %s %p\\n'", args.rounds)
    with tempfile.TemporaryDirectory() as d:
        a, b = write_manifests(d, args.entries)
        times = [wall(f"{pyb} -q diff '{a}' '{b}'") for _ in range(args.rounds)]
        n = sum(1 for _ in open(b))
        print(f"{'diff of two manifests':28} {args.entries} and {n - 2} entries: "
              f"median {statistics.median(times):.3f} s (min {min(times):.3f})")


if __name__ == "__main__":
    main()
