#!/usr/bin/env python3
"""Benchmarks of backup sets (issue: versioned snapshots, incremental runs).

On a copy of a real tree (default: the Python standard library), for
pybackup and for `restic backup` in the same run, each round:

1. a first, full backup into an empty repository;
2. a second backup of the unchanged tree;
3. a backup after touching (new mtime) 1 % of the files;
then, for pybackup once: five more incremental backups, each changing 20
files, and `pybackup restore REPO DEST PATH` of one file, timed 15 times.

With `--chain N` (issue 15), afterwards, in the same run, for pybackup, for
a baseline pybackup (`--baseline BINARY`, for example the build of a commit
before repository format 2) and for restic, each in its own repository: a
first backup, then N daily snapshots with 1 % of the files touched (new
mtime, same content) each day, then one unchanged snapshot; it prints the
bytes the N snapshots added in all (touched files have the same content, so
all of it is metadata), the bytes the unchanged one added, the wall time and
peak RSS of each kind of run (medians), and the restore of one file from
the last snapshot. `--files N` backs up a generated tree of N small files
instead of a copy of `--tree` (the scale test: `--files 1000000`).

The tree is read once before every timed step (the machine's proactive
reclaim evicts it otherwise). Medians are reported, with the ratios that
the issue sets targets for (unchanged ≤ 0.05 × first, 1 % ≤ 0.1 × first,
one-file restore < 50 ms) and the ratios to restic.

    python3 benches/backup.py [--rounds N] [--tree PATH] [--no-restic]
        [--chain N [--baseline BINARY] [--files N] [--skip-basic] [--first-rounds N]]
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


def timed(cmd, env=None):
    """Wall seconds and peak RSS (KiB) of one command."""
    with tempfile.NamedTemporaryFile("r") as f:
        t = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-o", f.name, "-f", "%M"] + cmd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, env=env)
        dt = time.perf_counter() - t
        if r.returncode != 0:
            sys.stderr.write(r.stderr.decode(errors="replace"))
            raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}")
        rss = int(f.read().strip().splitlines()[-1])
    return dt, rss


def generate(root, n):
    """A tree of n small files, 100 per directory, 100 directories per level."""
    for i in range(n):
        d = os.path.join(root, f"{i // 10000:03d}", f"{i // 100 % 100:02d}")
        if i % 100 == 0:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:07d}.txt"), "w") as f:
            f.write(f"file {i}\n" * (1 + i % 7))


def chain_bench(args, src, files, work, pyb, restic, env):
    tools = [("pybackup", pyb)]
    if args.baseline:
        tools.append(("baseline", os.path.abspath(args.baseline)))
    if restic:
        tools.append(("restic", restic))
    res = {}
    for name, binary in tools:
        repo = os.path.join(work, f"chain-{name}")
        if name == "restic":
            cmd = [binary, "-q", "--repo", repo, "backup", src]
        else:
            cmd = [binary, "-q", "--no-progress", "backup", src, repo]
        # The first backup three times, each into an empty repository: the
        # median is the denominator of "unchanged / first".
        firsts = []
        for _ in range(args.first_rounds):
            shutil.rmtree(repo, ignore_errors=True)
            if name == "restic":
                subprocess.run([binary, "init", "-q", "--repo", repo], env=env, check=True,
                               stdout=subprocess.DEVNULL)
            warm(src)
            firsts.append(timed(cmd, env))
        first = (statistics.median(f[0] for f in firsts), max(f[1] for f in firsts))
        size0 = du(repo)
        daily = []
        for day in range(args.chain):
            now = time.time() + 86400 * (day + 1)
            for p in files[day % 100 :: 100]:
                os.utime(p, (now, now))
            daily.append(timed(cmd, env))
        size1 = du(repo)
        same = [timed(cmd, env) for _ in range(3)]
        size2 = du(repo)
        target = files[len(files) // 3]
        rel = os.path.relpath(target, src)
        restores = []
        for i in range(9):
            dest = os.path.join(work, f"chain-restore-{name}-{i}")
            if name == "restic":
                rcmd = [binary, "-q", "--repo", repo, "restore", "latest", "--target", dest,
                        "--include", target]
                got = os.path.join(dest, target.lstrip("/"))
            else:
                rcmd = [binary, "-q", "--no-progress", "restore", repo, dest, rel]
                got = os.path.join(dest, rel)
            restores.append(wall(rcmd, env))
            with open(got, "rb") as a, open(target, "rb") as b:
                assert a.read() == b.read(), f"{name}: restored file differs"
            shutil.rmtree(dest)
        res[name] = {
            "first": first, "size0": size0, "daily_bytes": size1 - size0, "same_bytes": (size2 - size1) / 3,
            "daily_wall": statistics.median(d[0] for d in daily), "same_wall": statistics.median(d[0] for d in same),
            "rss": max(x[1] for x in [first] + daily + same), "restore": statistics.median(restores),
        }
        r = res[name]
        print(f"chain {name}: first {first[0]:.2f} s ({size0 / 1e6:.1f} MB); {args.chain} days added "
              f"{r['daily_bytes'] / 1e6:.2f} MB; unchanged adds {r['same_bytes'] / 1e3:.1f} KB", flush=True)
        shutil.rmtree(repo, ignore_errors=True)
    print()
    print(f"{args.chain} daily snapshots, 1 % of {len(files)} files touched each day (medians)")
    print(f"{'':24}" + "".join(f"{n:>14}" for n in res))
    rows = [
        ("first backup (s)", lambda r: f"{r['first'][0]:.2f}"),  # median of --first-rounds
        ("first backup (MB)", lambda r: f"{r['size0'] / 1e6:.1f}"),
        (f"{args.chain} days added (MB)", lambda r: f"{r['daily_bytes'] / 1e6:.3f}"),
        ("unchanged adds (KB)", lambda r: f"{r['same_bytes'] / 1e3:.1f}"),
        ("daily run (s)", lambda r: f"{r['daily_wall']:.3f}"),
        ("unchanged run (s)", lambda r: f"{r['same_wall']:.3f}"),
        ("unchanged / first", lambda r: f"{r['same_wall'] / r['first'][0]:.3f}"),
        ("peak RSS (MiB)", lambda r: f"{r['rss'] / 1024:.0f}"),
        ("restore 1 file (ms)", lambda r: f"{r['restore'] * 1000:.1f}"),
    ]
    for label, f in rows:
        print(f"{label:24}" + "".join(f"{f(r):>14}" for r in res.values()))
    p = res["pybackup"]
    for other in [n for n in res if n != "pybackup"]:
        o = res[other]
        print(f"pybackup / {other}: {args.chain} days added {p['daily_bytes'] / max(o['daily_bytes'], 1):.3f}, "
              f"unchanged adds {p['same_bytes'] / max(o['same_bytes'], 1):.3f}, "
              f"unchanged run {p['same_wall'] / o['same_wall']:.3f}")
    print("targets: unchanged adds <= 120 KB; days added <= 0.05 x the baseline's; unchanged run <= 0.05 x first; "
          "restore < 50 ms; peak RSS <= 256 MiB")


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
    ap.add_argument("--chain", type=int, default=0)
    ap.add_argument("--baseline")
    ap.add_argument("--files", type=int, default=0)
    ap.add_argument("--skip-basic", action="store_true")
    ap.add_argument("--first-rounds", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pybackup"], cwd=ROOT, check=True)
    pyb = os.path.join(ROOT, "target", "release", "pybackup")
    restic = None if args.no_restic else shutil.which("restic")
    work = tempfile.mkdtemp(prefix="bench-backup-")
    src = os.path.join(work, "src")
    if args.files:
        print(f"generating {args.files} files ...", flush=True)
        generate(src, args.files)
    else:
        print(f"copying {args.tree} ...", flush=True)
        shutil.copytree(args.tree, src, symlinks=True)
    files = files_of(src)
    print(f"tree: {len(files)} files, {du(src) / 1e6:.1f} MB; pybackup {pyb}; restic {restic or 'not run'}")
    env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_CACHE_DIR=os.path.join(work, "restic-cache"))
    if args.skip_basic:
        chain_bench(args, src, files, work, pyb, restic, env)
        shutil.rmtree(work, ignore_errors=True)
        return
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
    if args.chain:
        print()
        chain_bench(args, src, files, work, pyb, restic, env)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
