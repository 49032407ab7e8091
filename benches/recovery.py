#!/usr/bin/env python3
"""Recovery data benchmark: pybackup protect/repair against par2.

On one .xtar of a tree (default: the Python standard library):

1. time `pybackup protect -r 10` and `par2 create -r10` (medians of
   --rounds runs, page cache warm, no writeback pending), and report the overhead of each as a
   percentage of the archive;
2. damage copies of the archive *and* of its recovery files the same way
   (5 % of the 2048-byte sectors overwritten with noise; one burst of 5 %
   of each file), repair with each tool, then extract with pybackup and
   count the files that come back bit-exact.

    python3 benches/recovery.py [--tree PATH] [--rounds N] [--seed N]
"""

import argparse
import glob
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from damage import count_exact, source_files  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECTOR = 2048


def timed(cmd, cwd=None):
    # Start from no pending writeback: pybackup syncs its output before
    # the final rename (par2 does not), and must not wait for another
    # tool's dirty pages.
    os.sync()
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    return dt, r.returncode, r.stderr.decode(errors="replace")


def damage_file(path, pattern, seed):
    size = os.path.getsize(path)
    sectors = max(1, size // SECTOR)
    rng = random.Random(f"{seed}-{pattern}-{os.path.basename(path)}")
    if pattern == "sect 5%":
        picks = rng.sample(range(sectors), max(1, round(sectors * 0.05)))
        ranges = [(s * SECTOR, (s + 1) * SECTOR) for s in picks]
    else:
        length = max(SECTOR, size // 20)
        start = rng.randrange(0, max(1, size - length))
        ranges = [(start, start + length)]
    with open(path, "r+b") as f:
        for s, e in ranges:
            f.seek(s)
            f.write(rng.randbytes(min(e, size) - s))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default=sysconfig.get_paths()["stdlib"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pybackup"], cwd=ROOT, check=True)
    pyb = os.path.join(ROOT, "target", "release", "pybackup")
    work = tempfile.mkdtemp(prefix="bench-recovery-")
    archive = os.path.join(work, "a.xtar")
    subprocess.run([pyb, "-q", "--no-progress", "compress", args.tree, "-o", archive], check=True)
    size = os.path.getsize(archive)
    src = source_files(args.tree)
    print(f"archive: {size / 1e6:.1f} MB of {len(src)} files; pybackup {pyb}; par2 {shutil.which('par2')}")

    # 1. Creation time and overhead.
    times = {"pybackup": [], "par2": []}
    over = {}
    for _ in range(args.rounds):
        subprocess.run(f"cat '{archive}' > /dev/null", shell=True)
        for p in glob.glob(os.path.join(work, "a.p*.xtar-rs")):
            os.remove(p)
        dt, rc, err = timed([pyb, "-q", "protect", archive, "-r", "10"])
        assert rc == 0, err
        times["pybackup"].append(dt)
        over["pybackup"] = sum(os.path.getsize(p) for p in glob.glob(os.path.join(work, "a.p*.xtar-rs")))
        for p in glob.glob(os.path.join(work, "*.par2")):
            os.remove(p)
        dt, rc, err = timed(["par2", "create", "-q", "-q", "-r10", "a.xtar.par2", "a.xtar"], cwd=work)
        assert rc == 0, err
        times["par2"].append(dt)
        over["par2"] = sum(os.path.getsize(p) for p in glob.glob(os.path.join(work, "*.par2")))
        print("round: " + "  ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    m = {k: statistics.median(v) for k, v in times.items()}
    print()
    print(f"create 10 %: pybackup {m['pybackup']:.2f} s, par2 {m['par2']:.2f} s, ratio {m['pybackup'] / m['par2']:.3f} (target <= 0.1)")
    for k, v in over.items():
        print(f"overhead {k}: {v / 1e6:.2f} MB = {v / size * 100:.2f} % of the archive (nominal 10 %)")

    # 2. Damage, repair, extract.
    print()
    print(f"{'% of files back bit-exact':34} {'sect 5%':>8} {'burst 5%':>9}")
    rows = {"pybackup repair + extract": [], "par2 repair + pybackup extract": [], "no repair: pybackup salvage": []}
    for pattern in ("sect 5%", "burst 5%"):
        for tool in rows:
            d = os.path.join(work, "d")
            shutil.rmtree(d, ignore_errors=True)
            os.mkdir(d)
            shutil.copy(archive, d)
            recovery = glob.glob(os.path.join(work, "a.p*.xtar-rs")) if tool.startswith("pybackup") else (
                glob.glob(os.path.join(work, "*.par2")) if tool.startswith("par2") else [])
            for p in recovery:
                shutil.copy(p, d)
            for p in [os.path.join(d, "a.xtar")] + [os.path.join(d, os.path.basename(p)) for p in recovery]:
                damage_file(p, pattern, args.seed)
            dest = os.path.join(work, "dest")
            shutil.rmtree(dest, ignore_errors=True)
            if tool.startswith("pybackup"):
                _, rc, _ = timed([pyb, "-q", "repair", os.path.join(d, "a.xtar")])
                timed([pyb, "-q", "--no-progress", "extract", os.path.join(d, "a.xtar"), dest])
            elif tool.startswith("par2"):
                _, rc, _ = timed(["par2", "repair", "-q", "-q", "a.xtar.par2"], cwd=d)
                timed([pyb, "-q", "--no-progress", "extract", os.path.join(d, "a.xtar"), dest])
            else:
                timed([pyb, "-q", "--no-progress", "salvage", os.path.join(d, "a.xtar"), dest])
            rows[tool].append(count_exact(dest, src) / len(src) * 100)
    for tool, v in rows.items():
        print(f"{tool:34} {v[0]:8.1f} {v[1]:9.1f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
