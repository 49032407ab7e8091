#!/usr/bin/env python3
"""Where the bytes of an .xtar go: tar headers (with long-name records),
padding, zip headers and trailers, file data, indexes, the manifest, the
tree tar (version 3), and the end and pads. For choosing what a smaller
format must attack. Reads the archive as the reader does, stepping into
nested containers (version 2) and packs (version 3); it trusts the archive
(run it on undamaged ones).

    python3 benches/overhead.py ARCHIVE.xtar
"""

import struct
import sys


def main():
    path = sys.argv[1]
    data = open(path, "rb").read()
    n = len(data)
    cat = {k: 0 for k in ("tar headers", "padding", "zip headers", "file data", "indexes", "manifest",
                          "tree tar", "end and pad", "other")}
    files = 0
    pos = 0
    long = None
    while pos + 512 <= n:
        h = data[pos:pos + 512]
        if h == bytes(512):
            cat["end and pad"] += 512
            pos += 512
            continue
        name = h[0:100].rstrip(b"\0")
        prefix = h[345:500].rstrip(b"\0")
        if h[124] & 0x80:
            size = int.from_bytes(h[125:136], "big")
        else:
            size = int(h[124:136].rstrip(b"\0 ") or b"0", 8)
        kind = h[156:157]
        full = prefix + b"/" + name if prefix else name
        cat["tar headers"] += 512
        pos += 512
        pad = -size % 512
        if kind == b"L":
            cat["tar headers"] += size + pad
            long = data[pos:pos + size].rstrip(b"\0")
            pos += size + pad
            continue
        if long is not None:
            full, long = long, None
        if full.endswith(b".xtar"):
            continue  # a container: its members follow
        body = data[pos:pos + size]
        if full.startswith(b".xtar-pack."):
            # Version 3: local headers and data, then the central directory.
            p = 0
            while p + 30 <= size and body[p:p + 4] == b"PK\x03\x04":
                files += 1
                csize = struct.unpack("<I", body[p + 18:p + 22])[0]
                name_len, extra_len = struct.unpack("<HH", body[p + 26:p + 30])
                if csize == 0xFFFFFFFF:
                    csize = struct.unpack("<Q", body[p + 30 + name_len + 12:p + 30 + name_len + 20])[0]
                cat["file data"] += csize
                cat["zip headers"] += 30 + name_len + extra_len
                p += 30 + name_len + extra_len + csize
            cat["zip headers"] += size - p
        elif full in (b".xtar-tree.tar.gz", b".xtar-tree.2.tar.gz"):
            cat["tree tar"] += size
        elif full == b".xtar-manifest.gz":
            cat["manifest"] += size
        elif full.endswith(b".zip"):
            files += 1
            name_len, extra_len = struct.unpack("<HH", body[26:30])
            csize = struct.unpack("<I", body[18:22])[0]
            if csize == 0xFFFFFFFF:
                extra = body[30 + name_len:30 + name_len + extra_len]
                i = 0
                while i < len(extra):
                    hid, hl = struct.unpack("<HH", extra[i:i + 4])
                    if hid == 1:
                        csize = struct.unpack("<Q", extra[i + 12:i + 20])[0]
                    i += 4 + hl
            cat["file data"] += csize
            cat["zip headers"] += size - csize
        elif full.endswith(b".xtar-index"):
            cat["indexes"] += size
        elif full == b".xtar-manifest":
            cat["manifest"] += size
        elif full == b".xtar-pad":
            cat["end and pad"] += size
        else:
            cat["other"] += size
        cat["padding"] += pad
        pos += size + pad
    print(f"{path}: {n} bytes, {files} file members")
    for k, v in cat.items():
        print(f"  {k:12} {v / 1e6:9.2f} MB  {100 * v / n:5.1f} %  {v / max(files, 1):8.1f} B/file")


if __name__ == "__main__":
    main()
