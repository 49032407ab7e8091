#!/usr/bin/env python3
"""Damage benchmark: how many files each format gives back after the kinds
of damage discs suffer.

Archives of one tree are made with pybackup (format versions 3 and 2, and
with --zstd version 6; --zstd-baseline BIN adds a version 5 archive made
by an older pybackup BIN, salvaged by this one),
`tar czf`, `zip -r -6` and `dar -z6`. Copies of each are damaged in the same deterministic ways
(random 2048-byte sectors overwritten with noise: 0.1 %, 1 % and 5 % of
them; one 1 MiB burst, of noise and of zeros at the same place; the first
64 KiB; the last 64 KiB; the last 5, 20, 50 and 80 % cut off, and the last
20 % zeroed), then recovered with each tool's own means, and the files that come
back bit-exact (same path, same SHA-256 as the source) are counted.

For pybackup the script also computes the optimum: the number of files
whose member bytes (version 2: tar header to end of data; version 3: zip
entry) were not hit, plus, for version 3, the files that need no data
(recreated from the manifest): a bound, not quite the most that can be
recovered, since salvage also finds a file whose tar header (version 2)
or zip local header alone (version 3, through the central directory
record and the manifest's SHA-256) was hit. For the cuts, it checks the promise of format version 3: at
least (100 - X) % of the files by count, less one, when the last X % of
the bytes are lost, and never fewer than tar.gz or zip -FF. For the
random patterns (sectors, burst), one seed is one draw; it also prints,
for versions 2 and 3, the files each would lose in expectation over all
draws, computed exactly from where the files' data lies.

    python3 benches/damage.py [--tree PATH] [--seed N] [--only NAME ...] [--zstd [--zstd-baseline BIN]] [--encrypt]

Needs: pigz is not used; tar, gzip, zip, unzip, dar. Nothing is downloaded.
The default tree is the Python standard library.
"""

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECTOR = 2048
FF_TIMEOUT = 300
HUNG = []

# The spec's stock recipe for version 3 (docs/format/xtar.md, A8).
RECIPE3 = r"""
archive=$1 out=$2 stage=$2.stage damaged=
mkdir -p "$stage" "$out"
tar -i -xf "$archive" -C "$stage" 2>/dev/null || damaged=1
for z in "$stage"/.xtar-pack.*.zip; do
    [ -f "$z" ] || continue
    unzip -q -o -d "$out" "$z" >/dev/null 2>&1 && continue
    damaged=1
    [ -n "${FALLBACK:-}" ] || continue
    printf 'y\ne\ne\ne\n' | timeout 300 zip -FF "$z" --out "$z.fixed.zip" >/dev/null 2>&1
    [ -f "$z.fixed.zip" ] && unzip -q -o -d "$out" "$z.fixed.zip" >/dev/null 2>&1
    command -v bsdtar >/dev/null && cat "$z" | timeout 300 bsdtar -xkf - -C "$out" >/dev/null 2>&1
done
if [ -n "${FALLBACK:-}" ] && [ -n "$damaged" ]; then
    printf 'y\ne\ne\ne\n' | timeout 300 zip -FF "$archive" --out "$stage/all.zip" >/dev/null 2>&1
    [ -f "$stage/all.zip" ] && unzip -q -n -d "$out" "$stage/all.zip" >/dev/null 2>&1
fi
tar -xzf "$stage/.xtar-tree.tar.gz" -C "$out" 2>/dev/null || tar -xzf "$stage/.xtar-tree.2.tar.gz" -C "$out" 2>/dev/null
rm -rf "$stage"
exit 0
"""

# The spec's stock recipe for versions 6 and 5 (§A11.1): version 3's, with
# the files' zstd frames decoded by the zstd tool before the tree tar.
RECIPE_ZSTD = r"""
archive=$1 out=$2 stage=$2.stage damaged=
mkdir -p "$stage" "$out"
tar -i -xf "$archive" -C "$stage" 2>/dev/null || damaged=1
for z in "$stage"/.xtar-pack.*.zip; do
    [ -f "$z" ] || continue
    unzip -q -o -d "$out" "$z" >/dev/null 2>&1 && continue
    damaged=1
    printf 'y\ne\ne\ne\n' | timeout 300 zip -FF "$z" --out "$z.fixed.zip" >/dev/null 2>&1
    [ -f "$z.fixed.zip" ] && unzip -q -o -d "$out" "$z.fixed.zip" >/dev/null 2>&1
    command -v bsdtar >/dev/null && cat "$z" | timeout 300 bsdtar -xkf - -C "$out" >/dev/null 2>&1
done
if [ -n "$damaged" ]; then
    printf 'y\ne\ne\ne\n' | timeout 300 zip -FF "$archive" --out "$stage/all.zip" >/dev/null 2>&1
    [ -f "$stage/all.zip" ] && unzip -q -n -d "$out" "$stage/all.zip" >/dev/null 2>&1
fi
want=$(sed -n 's/^#zstd-dict //p' "$stage/.xtar-header" 2>/dev/null)
: > "$stage/dict.zst"
i=0
while :; do
    got=
    for d in "$stage"/.xtar-zstd.*dict.gz; do
        dd if="$d" bs=1047 skip=$i count=1 2>/dev/null | gzip -dc > "$stage/piece" 2>/dev/null && got=1 && break
    done
    [ -n "$got" ] || break
    cat "$stage/piece" >> "$stage/dict.zst"
    [ "$(wc -c < "$stage/piece")" -eq 1024 ] || break
    i=$((i + 1))
done
zstd -q -d -c "$stage/dict.zst" > "$stage/dict" 2>/dev/null || cp "$stage/dict.zst" "$stage/dict"
dict=
if [ -s "$stage/dict" ] && { [ -z "$want" ] || [ "$(sha256sum < "$stage/dict" | cut -c1-64)" = "$want" ]; }; then
    dict=$stage/dict
fi
find "$out" -type f -name '*.zst' -print0 > "$stage/frames"
if [ -n "$dict" ]; then set -- -D "$dict"; else set --; fi
xargs -0 -n 256 zstd -q -d --rm "$@" < "$stage/frames" 2>/dev/null
D=$dict xargs -0 -n 1 sh -c '[ -f "$1" ] || exit 0; zstd -q -d --rm ${D:+-D "$D"} "$1"' sh < "$stage/frames" 2>/dev/null
tar -xzf "$stage/.xtar-tree.tar.gz" -C "$out" 2>/dev/null || tar -xzf "$stage/.xtar-tree.2.tar.gz" -C "$out" 2>/dev/null
rm -rf "$stage"
exit 0
"""

# The spec's stock recipe for encrypted version 3 archives (§A10), without
# its last step (permission bits): GNU tar, unzip, Debian's age and gzip.
RECIPE3E = r"""
archive=$1 out=$2 key=$3 stage=$2.stage
mkdir -p "$stage" "$out"
tar -i -xf "$archive" -C "$stage" 2>/dev/null
hdr="$stage/.xtar-age"
data="$out/$(sed -n 's/^#data //p' "$stage/.xtar-header" 2>/dev/null)"
[ "$data" = "$out/" ] && data="$out/.xtar-data"
mkdir -p "$data"
for z in "$stage"/.xtar-pack.*.zip; do
    [ -f "$z" ] && unzip -q -o -d "$data" "$z" >/dev/null 2>&1
done
for f in "$data"/*; do
    [ -f "$f" ] || continue
    cat "$hdr" "$f" 2>/dev/null | age -d -i "$key" > "$f.gz" 2>/dev/null && gzip -dNf "$f.gz" 2>/dev/null
done
{
    for p in "$stage"/.xtar-names.[0-9]*.tar.gz.age; do
        cat "$hdr" "$p" | age -d -i "$key" > "$stage/piece" 2>/dev/null && cat "$stage/piece"
    done
    for p in "$stage"/.xtar-tree.[0-9]*.tar.gz.age; do
        cat "$hdr" "$p" | age -d -i "$key" > "$stage/piece" 2>/dev/null ||
            cat "$hdr" "$stage/.xtar-tree-end.${p##*/.xtar-tree.}" 2>/dev/null | age -d -i "$key" > "$stage/piece" 2>/dev/null
        cat "$stage/piece"
    done
} 2>/dev/null | tar -xzf - -C "$out" 2>/dev/null
rm -rf "$data" "$stage"
exit 0
"""

# The spec's stock recipe for versions 1 and 2 (docs/format/xtar.md §9);
# the unzip step runs two at a time through xargs, which changes nothing but
# the wall time.
RECIPE = r"""
archive=$1 out=$2 stage=$2.stage
mkdir -p "$stage" "$out"
tar -i -xf "$archive" -C "$stage" 2>/dev/null
while [ -n "$(find "$stage" -name '*.xtar' -type f -print -quit)" ]; do
    find "$stage" -name '*.xtar' -type f -exec sh -c 'tar -i -xf "$1" -C "$2" 2>/dev/null; rm -f -- "$1"' sh {} "$stage" \;
done
(cd "$stage" && find . -type d -exec mkdir -p "$out/{}" \;)
find "$stage" -name '*.zip' -type f -print0 | xargs -0 -r -n 1 -P 2 unzip -q -o -d "$out" >/dev/null 2>&1
rm -rf "$stage"
exit 0
"""


def sh(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def source_files(tree):
    """relative path (bytes) -> sha256 of content, or ('link', target)."""
    out = {}
    base = os.fsencode(tree)
    for dirpath, dirnames, filenames in os.walk(base):
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, base)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    out[rel] = hashlib.file_digest(f, "sha256").digest()
    return out


def count_exact(dest, src):
    n = 0
    base = os.fsencode(dest)
    for rel, want in src.items():
        p = os.path.join(base, rel)
        try:
            if isinstance(want, tuple):
                n += os.path.islink(p) and os.readlink(p) == want[1]
            elif os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    n += hashlib.file_digest(f, "sha256").digest() == want
        except OSError:
            pass
    return n


def member_ranges(path):
    """Every file member of an .xtar: (path, first header byte, end of data)."""
    with open(path, "rb") as f:
        a = f.read()
    cstr = lambda b: b.split(b"\0", 1)[0]

    def num(f):
        if f[0] & 0x80:
            return int.from_bytes(f[-8:], "big")
        s = cstr(f).strip()
        return int(s, 8) if s else 0

    out, pos, long, start = [], 0, None, None
    while pos + 512 <= len(a):
        b = a[pos:pos + 512]
        if b == bytes(512):
            pos += 512
            continue
        size = num(b[124:136])
        first = pos if start is None else start
        start = None
        if b[156:157] == b"L":
            long, start = cstr(a[pos + 512:pos + 512 + size]), first
            pos += 512 + -(-size // 512) * 512
            continue
        if long is not None:
            name, long = long, None
        else:
            name, prefix = cstr(b[:100]), cstr(b[345:500])
            name = prefix + b"/" + name if prefix else name
        pos += 512
        if name.endswith(b".xtar"):
            continue
        if name.endswith(b".zip"):
            out.append((name[:-4], first, pos + size))
        pos += -(-size // 512) * 512
    return out


def entry_ranges(path):
    """Every zip entry in the packs of a version 3 archive: (path, start,
    end), walking the tar members and each pack's local headers here (not
    with the code under test)."""
    with open(path, "rb") as f:
        a = f.read()
    cstr = lambda b: b.split(b"\0", 1)[0]
    out, pos = [], 0
    while pos + 512 <= len(a):
        b = a[pos:pos + 512]
        if b == bytes(512):
            pos += 512
            continue
        size = int(cstr(b[124:136]).strip() or b"0", 8)
        name = cstr(b[:100])
        pos += 512
        if name.startswith(b".xtar-pack."):
            p, end = pos, pos + size
            while p + 30 <= end and a[p:p + 4] == b"PK\x03\x04":
                csize = int.from_bytes(a[p + 18:p + 22], "little")
                n = int.from_bytes(a[p + 26:p + 28], "little")
                x = int.from_bytes(a[p + 28:p + 30], "little")
                if csize == 0xFFFFFFFF:  # zip64: the second 8 bytes of the field
                    csize = int.from_bytes(a[p + 30 + n + 12:p + 30 + n + 20], "little")
                out.append((a[p + 30:p + 30 + n], p, p + 30 + n + x + csize))
                p += 30 + n + x + csize
        pos += -(-size // 512) * 512
    return out


def data_ranges(path, ranges):
    """The data of each file in `ranges` (path, start, end), as
    [start, end) of the archive at `path`: the compressed size after its
    zip local header (the first one at or after `start`)."""
    with open(path, "rb") as f:
        a = f.read()
    out = []
    for name, s, e in ranges:
        p = a.find(b"PK\x03\x04", s, e)
        if p < 0:
            continue
        csize = int.from_bytes(a[p + 18:p + 22], "little")
        n = int.from_bytes(a[p + 26:p + 28], "little")
        x = int.from_bytes(a[p + 28:p + 30], "little")
        start = min(p + 30 + n + x, e)
        # Version 2's members hold the zip's central directory after the
        # data; zip64 sizes (0xFFFFFFFF here) are not read: to the end.
        out.append((name, start, e if csize == 0xFFFFFFFF else min(start + csize, e)))
    return out


def expected_lost(size, data):
    """Files lost on average under the random patterns, exactly (no
    draws): a file is lost when damage reaches its data, which is what
    salvage of versions 2 and 3 loses (a hit header alone costs no file;
    checked against the real runs below). For `k` of the `n` sectors
    picked at random (the sector patterns), a file whose data touches `m`
    sectors is missed by all with probability C(n-m, k) / C(n, k); for
    the burst (its start a random byte, floored to a sector, as
    `patterns` draws it), the share of starts that reach the file. The
    sum over files is the expectation. One seed's row is one draw of it.
    Also the burst's expectation times the archive's size in MiB: the
    files lost when bursts strike at the same rate per byte of medium,
    which does not favour a larger archive for holding fewer files a
    byte."""
    n = size // SECTOR
    out = {}
    spans = [((s // SECTOR), (e - 1) // SECTOR) for _, s, e in data if e > s]
    for pct in (0.1, 1, 5):
        k = max(1, round(n * pct / 100))
        total = 0.0
        for lo, hi in spans:
            miss = 1.0
            for j in range(hi - lo + 1):
                miss *= (n - k - j) / (n - j)
            total += 1 - miss
        out[f"sect {pct}%"] = total
    starts = max(1, size - (1 << 20))
    burst = (1 << 20) // SECTOR
    total = 0.0
    for lo, hi in spans:
        first = max(0, lo - burst + 1)
        total += max(0, min(starts, (hi + 1) * SECTOR) - first * SECTOR) / starts
    out["burst 1M"] = total
    out["burst/MiB"] = total * size / (1 << 20)
    return out


def patterns(size, seed):
    """name -> (list of damaged [start, end) ranges, truncation length or
    None); ranges in a pattern whose name starts with `zero` are zeroed,
    the others overwritten with noise."""
    sectors = size // SECTOR
    out = {}
    for pct in (0.1, 1, 5):
        rng = random.Random(f"{seed}-sectors-{pct}")
        k = max(1, round(sectors * pct / 100))
        picks = rng.sample(range(sectors), k)
        out[f"sect {pct}%"] = ([(s * SECTOR, (s + 1) * SECTOR) for s in sorted(picks)], None)
    rng = random.Random(f"{seed}-burst")
    b = rng.randrange(0, max(1, size - (1 << 20))) // SECTOR * SECTOR
    out["burst 1M"] = ([(b, b + (1 << 20))], None)
    out["zero 1M"] = ([(b, b + (1 << 20))], None)
    out["head 64K"] = ([(0, 64 << 10)], None)
    out["tail 64K"] = ([(max(0, size - (64 << 10)), size)], None)
    # Discs fail from the outer edge, where the end of the data is.
    for lost in (5, 20, 50, 80):
        out[f"cut {lost}%"] = ([], size * (100 - lost) // 100 // SECTOR * SECTOR)
    z = size * 80 // 100 // SECTOR * SECTOR
    out["zero 20%"] = ([(z, size)], None)
    return out


def damage(src, dst, ranges, truncate, seed, zero=False):
    shutil.copyfile(src, dst)
    rng = random.Random(f"{seed}-bytes")
    with open(dst, "r+b") as f:
        for s, e in ranges:
            f.seek(s)
            f.write(bytes(e - s) if zero else rng.randbytes(e - s))
        if truncate is not None:
            f.truncate(truncate)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", action="append", default=[], help="recovery methods to run")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--zstd", action="store_true",
                    help="also a version 6 archive (--codec zstd): pybackup's salvage and the stock recipe with zstd")
    ap.add_argument("--zstd-baseline", default=None, metavar="BIN",
                    help="with --zstd, also a version 5 archive made by the older pybackup BIN")
    ap.add_argument("--encrypt", action="store_true",
                    help="also an encrypted version 3 archive: pybackup's salvage and the stock recipe with age")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pybackup"], cwd=ROOT, check=True)
    pyb = os.path.join(ROOT, "target/release/pybackup")
    tree = args.tree or subprocess.run(
        ["python3", "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True, text=True, check=True).stdout.strip()
    work = tempfile.mkdtemp(prefix="xtar-damage-", dir=args.work)
    src = source_files(tree)
    print(f"# tree {tree}: {len(src)} files; seed {args.seed}")

    arch = {
        "xtar3": os.path.join(work, "a3.xtar"),
        "xtar": os.path.join(work, "a.xtar"),
        "tgz": os.path.join(work, "a.tar.gz"),
        "zip": os.path.join(work, "a.zip"),
        "dar": os.path.join(work, "a.1.dar"),
    }
    subprocess.run([pyb, "-q", "--no-progress", "compress", "--format-version", "3", tree, "-o", arch["xtar3"]],
                   check=True)
    key = os.path.join(work, "damage.key")
    if args.encrypt:
        arch["xtar3e"] = os.path.join(work, "a3e.xtar")
        made = subprocess.run([pyb, "key", "new", "-o", key], capture_output=True, text=True, check=True)
        recipient = made.stderr.strip().rsplit(" ", 1)[-1]
        subprocess.run([pyb, "-q", "--no-progress", "compress", tree, "-o", arch["xtar3e"], "-r", recipient],
                       check=True)
    if args.zstd:
        arch["xtar6"] = os.path.join(work, "a6.xtar")
        subprocess.run([pyb, "-q", "--no-progress", "compress", "--codec", "zstd", tree, "-o", arch["xtar6"]],
                       check=True)
    if args.zstd and args.zstd_baseline:
        arch["xtar5"] = os.path.join(work, "a5.xtar")
        subprocess.run([args.zstd_baseline, "-q", "--no-progress", "compress", "--codec", "zstd", tree,
                        "-o", arch["xtar5"]], check=True)
    subprocess.run([pyb, "-q", "--no-progress", "compress", "--format-version", "2", tree, "-o", arch["xtar"]],
                   check=True)
    subprocess.run(["tar", "-czf", arch["tgz"], "-C", tree, "."], check=True)
    subprocess.run(["sh", "-c", 'cd "$1" && zip -q -y -r -6 "$2" .', "sh", tree, arch["zip"]], check=True)
    sh(["dar", "-Q", "-q", "-w", "-c", os.path.join(work, "a"), "-R", tree, "-z6"], check=True)
    for k, p in arch.items():
        print(f"# {k}: {os.path.getsize(p) / 1e6:.1f} MB")

    def dar_x(extra):
        def run(a, d):
            base = a[:-len(".1.dar")]
            sh(["dar", "-Q", "-q", "-w", "-O", "-x", base, "-R", d] + extra, timeout=3600)
        return run

    def zip_ff(a, d):
        fixed = a + ".fixed.zip"
        # Not -q: with it, zip -FF writes an empty archive (zip 3.0).
        # When the end of the archive is lost, zip -FF asks whether it is a
        # single-disk archive and then which split to read: answer `y`,
        # then `e` (end the archive), as a user would; on no input it
        # loops. It can still loop on damaged input (seen here with zip
        # 3.0): give it a fixed budget, then unzip whatever it wrote.
        try:
            sh(["zip", "-FF", a, "--out", fixed], input=b"y\ne\ne\ne\n", timeout=FF_TIMEOUT)
        except subprocess.TimeoutExpired:
            HUNG.append(os.path.basename(a))
        if os.path.exists(fixed):
            sh(["unzip", "-q", "-o", fixed, "-d", d], timeout=3600)
        if os.path.exists(fixed):
            os.remove(fixed)

    def salvage(a, d):
        sh([pyb, "-q", "--no-progress", "salvage", a, d], timeout=3600)

    def salvage_enc(a, d):
        sh([pyb, "-q", "--no-progress", "salvage", a, d, "-i", key], timeout=3600)

    methods = {
        "salvage v3": ("xtar3", salvage),
        "stock v3 tar+unzip": ("xtar3", lambda a, d: sh(["sh", "-c", RECIPE3, "sh", a, d], timeout=3600)),
        "stock v3 +zip -FF +bsdtar": ("xtar3", lambda a, d: sh(["sh", "-c", RECIPE3, "sh", a, d], timeout=3600,
                                                      env=dict(os.environ, FALLBACK="1"))),
        "salvage v2": ("xtar", salvage),
        "stock recipe v2": ("xtar", lambda a, d: sh(["sh", "-c", RECIPE, "sh", a, d], timeout=3600)),
        "tar xzf": ("tgz", lambda a, d: sh(["tar", "-xzf", a, "-C", d], timeout=3600)),
        "unzip": ("zip", lambda a, d: sh(["unzip", "-q", "-o", a, "-d", d], timeout=3600)),
        "zip -FF + unzip": ("zip", zip_ff),
        "dar -x": ("dar", dar_x([])),
        "dar -x --seq -al": ("dar", dar_x(["--sequential-read", "-al"])),
    }
    if args.encrypt:
        methods["salvage v3 encrypted"] = ("xtar3e", salvage_enc)
        methods["stock v3 enc tar+age"] = ("xtar3e", lambda a, d: sh(["bash", "-c", RECIPE3E, "bash", a, d, key],
                                                                     timeout=3600))
    if args.zstd:
        methods["salvage v6 zstd"] = ("xtar6", salvage)
        methods["stock v6 +zstd"] = ("xtar6", lambda a, d: sh(["sh", "-c", RECIPE_ZSTD, "sh", a, d], timeout=3600))
    if "xtar5" in arch:
        methods["salvage v5 zstd"] = ("xtar5", salvage)
        methods["stock v5 +zstd"] = ("xtar5", lambda a, d: sh(["sh", "-c", RECIPE_ZSTD, "sh", a, d], timeout=3600))
    if args.only:
        methods = {k: v for k, v in methods.items() if k in args.only}

    sizes = {k: os.path.getsize(p) for k, p in arch.items()}
    pats = {k: patterns(s, args.seed) for k, s in sizes.items()}
    names = list(pats["xtar"].keys())
    results = {}
    hung = set()

    # The optimum for pybackup: files whose member bytes were not hit.
    ranges = member_ranges(arch["xtar"])
    optimum = {}
    for pname, (dmg, trunc) in pats["xtar"].items():
        cut = sizes["xtar"] if trunc is None else trunc
        hit = 0
        for _, s, e in ranges:
            if e > cut or any(s < b and a < e for a, b in dmg):
                hit += 1
        optimum[pname] = len(ranges) - hit
    # Files that need no member bytes (symlinks, empty files) are recreated
    # from the index even when their member is hit: count them as the
    # optimum does not.
    print(f"# {len(ranges)} file members in the version 2 archive")
    entries = entry_ranges(arch["xtar3"])
    dataless = len(src) - len(entries)
    optimum3 = {}
    for pname, (dmg, trunc) in pats["xtar3"].items():
        cut = sizes["xtar3"] if trunc is None else trunc
        hit = sum(1 for _, s, e in entries if e > cut or any(s < b and a < e for a, b in dmg))
        optimum3[pname] = len(entries) - hit + dataless
    print(f"# {len(entries)} zip entries in the version 3 archive, {dataless} files without data")

    # Files whose data was hit, for the random patterns: this seed, and
    # the expectation over all draws.
    data = {"xtar": data_ranges(arch["xtar"], ranges), "xtar3": data_ranges(arch["xtar3"], entries)}
    data_lost = {k: {p: sum(1 for _, s, e in data[k] if any(s < b and a < e for a, b in pats[k][p][0]))
                     for p in ("sect 0.1%", "sect 1%", "sect 5%", "burst 1M")} for k in data}
    expected = {k: expected_lost(sizes[k], data[k]) for k in data}

    for mname, (kind, recover) in methods.items():
        results[mname] = {}
        for pname in names:
            dmg, trunc = pats[kind][pname]
            # Same extension as the original: zip -FF insists on `.zip`.
            d_arch = os.path.join(work, "d" + os.path.basename(arch[kind])[1:])
            damage(arch[kind], d_arch, dmg, trunc, args.seed, zero=pname.startswith("zero"))
            dest = os.path.join(work, "out")
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            t = time.monotonic()
            hung_before = len(HUNG)
            try:
                recover(d_arch, dest)
            except subprocess.TimeoutExpired:
                HUNG.append(mname)
            took = time.monotonic() - t
            n = count_exact(dest, src)
            results[mname][pname] = n
            note = " (hung: killed)" if len(HUNG) > hung_before else ""
            if note:
                hung.add((mname, pname))
            print(f"#   {mname:20} {pname:10} {n:6} files  ({took:.0f} s){note}")
            shutil.rmtree(dest, ignore_errors=True)
            os.remove(d_arch)

    total = len(src)
    w = 11
    print(f"\n## files recovered bit-exact, of {total} ({os.path.basename(tree)}), seed {args.seed}")
    print(f"{'method':22}" + "".join(f"{p:>{w}}" for p in names))
    for mname, row in results.items():
        print(f"{mname:22}" + "".join(f"{row[p] / total * 100:>{w - 1}.1f}%" for p in names))
    print(f"{'v3 optimum':22}" + "".join(f"{optimum3[p] / total * 100:>{w - 1}.1f}%" for p in names))
    print(f"{'v2 optimum':22}" + "".join(f"{optimum[p] / total * 100:>{w - 1}.1f}%" for p in names))
    for m, opt in (("salvage v3", optimum3), ("salvage v2", optimum)):
        if m in results:
            short = [p for p in names if results[m][p] < opt[p]]
            print(f"\n{m} reaches the optimum on every pattern" if not short
                  else f"\n{m} is below the optimum on: {', '.join(short)}")
    print("\n## random patterns: files lost when damage reaches their data (no salvage run),"
          "\n## this seed, and the expectation over all draws (exact); burst/MiB: the burst's"
          "\n## times the archive's MiB (bursts at one rate per byte of medium)")
    for k, m in (("xtar3", "salvage v3"), ("xtar", "salvage v2")):
        for p, mean in expected[k].items():
            seed = f"this seed {data_lost[k][p]:5}" if p in data_lost[k] else ""
            real = f", salvage lost {total - results[m][p]}" if m in results and p in results[m] else ""
            print(f"{m[8:]:3} {p:10} {seed + real:40} expected {mean:10.2f}")
    if "salvage v3 encrypted" in results and "salvage v3" in results:
        enc, plain = results["salvage v3 encrypted"], results["salvage v3"]
        short = [p for p in names if enc[p] < 0.99 * plain[p]]
        print("\nencrypted salvage gives back at least 99 % of the unencrypted on every pattern" if not short
              else f"\nencrypted salvage below 99 % of the unencrypted on: {', '.join(short)}")
        for p in names:
            print(f"  {p:10} encrypted {enc[p]:6} / plain {plain[p]:6} = "
                  f"{enc[p] / plain[p] * 100 if plain[p] else 100:.2f} %")
    for sm in ("salvage v3", "salvage v6 zstd", "salvage v5 zstd"):
        if sm not in results:
            continue
        for lost in (5, 20, 50):
            p = f"cut {lost}%"
            need = -(-total * (100 - lost) // 100) - 1
            got = results[sm][p]
            others = {m: results[m][p] for m in ("tar xzf", "zip -FF + unzip") if m in results}
            ok = got >= need and all(got >= v for v in others.values())
            print(f"{p}: {sm} {got} files, promise >= {need}"
                  + "".join(f", {m} {v}" for m, v in others.items()) + (" ok" if ok else " MISSED"))
    for m, p in sorted(hung):
        print(f"note: {m} on {p} did not finish and was killed; what it wrote by then was counted")
    print("\ncounts:")
    for mname, row in results.items():
        print(f"{mname:22}" + "".join(f"{row[p]:>{w}}" for p in names))
    print(f"{'v3 optimum':22}" + "".join(f"{optimum3[p]:>{w}}" for p in names))
    print(f"{'v2 optimum':22}" + "".join(f"{optimum[p]:>{w}}" for p in names))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
