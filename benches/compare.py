#!/usr/bin/env python3
"""Whole-process comparison of `pybackup compress` / `extract` (format
version 3, the default, version 2, and version 6: `--codec zstd`) against `tar czf`, `tar -I pigz`,
`zip -r -6`, `dar -z6` and `tar -I zstd` on real trees.

Each tool runs in turn (A B C D E, then again), so that the noise of a shared
machine hits all of them alike. Prints the median wall time, the median peak
RSS (from /usr/bin/time) and the output size of each, and their ratios to
pigz. Nothing is downloaded: the trees are the Python standard library and
the Rust documentation that every machine of this kind has.

    python3 benches/compare.py [--rounds N] [--tree NAME=PATH ...] [--dest DIR] [--encrypt]

--encrypt adds `pyb-enc` (format version 4: encrypted to one age
recipient, extracted with its key) and prints its cost as ratios to
unencrypted `pybackup`: compress and extract wall time, size.

--dest puts the extracted trees elsewhere (for example /dev/shm): on a
disk whose file system is busy allocating inodes (many files created and
deleted a moment ago), kernel time dominates every tool's extract and
hides their own cost.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def default_trees():
    stdlib = subprocess.run(
        ["python3", "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True, text=True, check=True).stdout.strip()
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True,
                             check=True).stdout.strip()
    trees = {"python-stdlib": stdlib}
    docs = os.path.join(sysroot, "share/doc/rust/html")
    if os.path.isdir(docs):
        trees["rust-docs"] = docs
    return trees


def tools(pyb, jobs):
    """name -> (compress argv, extract argv, output file name). {T} tree,
    {O} output file, {D} destination, {W} work dir."""
    return {
        "pybackup": (
            [pyb, "-q", "--no-progress", "-j", str(jobs), "compress", "{T}", "-o", "{O}"],
            [pyb, "-q", "--no-progress", "-j", str(jobs), "extract", "{O}", "{D}"],
            "out.xtar"),
        "pyb-v2": (
            [pyb, "-q", "--no-progress", "-j", str(jobs), "compress", "--format-version", "2", "{T}", "-o", "{O}"],
            [pyb, "-q", "--no-progress", "-j", str(jobs), "extract", "{O}", "{D}"],
            "out.xtar"),
        "pyb-zstd": (
            [pyb, "-q", "--no-progress", "-j", str(jobs), "compress", "--codec", "zstd", "{T}", "-o", "{O}"],
            [pyb, "-q", "--no-progress", "-j", str(jobs), "extract", "{O}", "{D}"],
            "out.xtar"),
        "tar-gz": (
            ["tar", "-czf", "{O}", "-C", "{T}", "."],
            ["tar", "-xzf", "{O}", "-C", "{D}"],
            "out.tar.gz"),
        "tar-pigz": (
            ["tar", "-I", "pigz", "-cf", "{O}", "-C", "{T}", "."],
            ["tar", "-I", "pigz", "-xf", "{O}", "-C", "{D}"],
            "out.tar.gz"),
        "zip-6": (
            ["sh", "-c", 'cd "$1" && zip -q -r -6 "$2" .', "sh", "{T}", "{O}"],
            ["unzip", "-q", "{O}", "-d", "{D}"],
            "out.zip"),
        "dar-z6": (
            ["dar", "-Q", "-q", "-w", "-c", "{W}/out", "-R", "{T}", "-z6"],
            ["dar", "-Q", "-q", "-w", "-O", "-x", "{W}/out", "-R", "{D}"],
            "out.1.dar"),
        "tar-zst": (
            ["tar", "-I", "zstd -T0", "-cf", "{O}", "-C", "{T}", "."],
            ["tar", "-I", "zstd", "-xf", "{O}", "-C", "{D}"],
            "out.tar.zst"),
    }


def timed(argv):
    """Runs argv under /usr/bin/time; returns (seconds, peak RSS in KiB).
    Dirty pages left by the previous command are flushed first, so that no
    tool pays for another's writes (pybackup fsyncs its archive before the
    rename, and on ext4 that fsync would otherwise flush them)."""
    subprocess.run(["sync"], check=True)
    with tempfile.NamedTemporaryFile("r") as t:
        r = subprocess.run(["/usr/bin/time", "-o", t.name, "-f", "%e %M"] + argv,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode not in (0,):
            sys.stderr.write(r.stderr.decode(errors="replace")[-2000:])
            raise SystemExit(f"failed ({r.returncode}): {' '.join(argv)}")
        wall, rss = t.read().split()[-2:]
        return float(wall), int(rss)


def fill(argv, **kw):
    return [a.format(**kw) for a in argv]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--tree", action="append", default=[], help="NAME=PATH")
    ap.add_argument("--only", action="append", default=[], help="run only these tools")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--dest", default=None, help="where to extract (default: in the scratch directory)")
    ap.add_argument("--encrypt", action="store_true", help="also pybackup encrypted, and its cost")
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pybackup"], cwd=ROOT, check=True)
    pyb = os.path.join(ROOT, "target/release/pybackup")
    trees = dict(t.split("=", 1) for t in args.tree) if args.tree else default_trees()
    all_tools = tools(pyb, args.jobs)
    keydir = tempfile.mkdtemp(prefix="xtar-bench-key-")
    if args.encrypt:
        key = os.path.join(keydir, "bench.key")
        made = subprocess.run([pyb, "key", "new", "-o", key], capture_output=True, text=True, check=True)
        recipient = made.stderr.strip().rsplit(" ", 1)[-1]
        all_tools["pyb-enc"] = (
            [pyb, "-q", "--no-progress", "-j", str(args.jobs), "compress", "{T}", "-o", "{O}", "-r", recipient],
            [pyb, "-q", "--no-progress", "-j", str(args.jobs), "extract", "{O}", "{D}", "-i", key],
            "out.xtar")
    names = [n for n in all_tools if not args.only or n in args.only or n in ("tar-pigz", "pyb-enc")]
    if args.encrypt and "pybackup" not in names:
        names.insert(0, "pybackup")
    for n in names:
        exe = all_tools[n][0][0] if all_tools[n][0][0] != "sh" else "zip"
        if n == "tar-zst":
            exe = "zstd"
        if shutil.which(exe) is None:
            raise SystemExit(f"{exe} is missing: apt-get install -y pigz dar zip unzip zstd")

    sys.stdout.reconfigure(line_buffering=True)
    print(f"# jobs={args.jobs} rounds={args.rounds} cpus={os.cpu_count()}")
    for tree_name, tree in trees.items():
        work = tempfile.mkdtemp(prefix="xtar-bench-", dir=args.work)
        # Warm the page cache so every tool reads from memory alike.
        subprocess.run(["tar", "-cf", "/dev/null", "-C", tree, "."], check=True)
        res = {n: {"cw": [], "cr": [], "xw": [], "xr": [], "size": 0} for n in names}
        for _ in range(args.rounds):
            for n in names:
                comp, extr, out_name = all_tools[n]
                wdir = os.path.join(work, n)
                shutil.rmtree(wdir, ignore_errors=True)
                os.makedirs(wdir)
                out = os.path.join(wdir, out_name)
                dest = os.path.join(args.dest or wdir, f"dest-{n}")
                shutil.rmtree(dest, ignore_errors=True)
                os.makedirs(dest)
                # Warm the tree again: this kernel reclaims cold pages
                # proactively (DAMON), so a tree read minutes ago may be gone.
                subprocess.run(["tar", "-cf", "/dev/null", "-C", tree, "."], check=True)
                # Each timed run starts with nothing left to write back:
                # else the one after an extract pays for its writes (and
                # for the removal of the tree it wrote) to the disk.
                os.sync()
                w, r = timed(fill(comp, T=tree, O=out, D=dest, W=wdir))
                res[n]["cw"].append(w)
                res[n]["cr"].append(r)
                res[n]["size"] = os.path.getsize(out)
                os.sync()
                w, r = timed(fill(extr, T=tree, O=out, D=dest, W=wdir))
                res[n]["xw"].append(w)
                res[n]["xr"].append(r)
                shutil.rmtree(wdir)
                shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        base = res["tar-pigz"]
        med = statistics.median
        print(f"\n## {tree_name}: {tree}")
        print(f"{'tool':10} {'compress s':>10} {'x pigz':>7} {'extract s':>10} {'x pigz':>7} "
              f"{'x tar xzf':>9} {'size MB':>8} {'x pigz':>7} {'x zip':>6} {'x dar':>6} {'x tgz':>6} "
              f"{'RSS c/x MiB':>12}")
        for n in names:
            r = res[n]
            zip_size = res["zip-6"]["size"] if "zip-6" in res else 0
            dar_size = res["dar-z6"]["size"] if "dar-z6" in res else 0
            tgz_x = med(res["tar-gz"]["xw"]) if "tar-gz" in res else 0
            tgz_size = res["tar-gz"]["size"] if "tar-gz" in res else 0
            print(f"{n:10} {med(r['cw']):10.2f} {med(r['cw']) / med(base['cw']):7.2f} "
                  f"{med(r['xw']):10.2f} {med(r['xw']) / med(base['xw']):7.2f} "
                  f"{(med(r['xw']) / tgz_x) if tgz_x else 0:9.2f} "
                  f"{r['size'] / 1e6:8.1f} {r['size'] / base['size']:7.2f} "
                  f"{(r['size'] / zip_size) if zip_size else 0:6.2f} "
                  f"{(r['size'] / dar_size) if dar_size else 0:6.2f} "
                  f"{(r['size'] / tgz_size) if tgz_size else 0:6.3f} "
                  f"{med(r['cr']) / 1024:5.0f}/{med(r['xr']) / 1024:<5.0f}")
        if "pyb-enc" in res and "pybackup" in res:
            e, p = res["pyb-enc"], res["pybackup"]
            print(f"encryption cost (pyb-enc / pybackup): compress {med(e['cw']) / med(p['cw']):.3f}x, "
                  f"extract {med(e['xw']) / med(p['xw']):.3f}x, size {e['size'] / p['size']:.4f}x "
                  f"(medians of {args.rounds} rounds)")
    shutil.rmtree(keydir, ignore_errors=True)


if __name__ == "__main__":
    main()
