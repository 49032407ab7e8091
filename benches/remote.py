#!/usr/bin/env python3
"""Backups into an S3-compatible store (issue 17), against a local
repository and restic's `s3:` backend, in one run.

Starts a one-node Garage server on 127.0.0.1 (the `garage` binary, as the
tests do) behind a byte-counting TCP proxy, then, each round, for the tree
(default: the Python standard library):

1. pybackup: a first backup into a new local repository;
2. pybackup: a first backup into a new prefix of the bucket, then an
   unchanged backup, then the restore of one file;
3. restic: the same three steps into a new `s3:` repository of the bucket.

It prints medians of wall time and, for the store, the bytes sent to it
and received from it (counted by the proxy), with the ratios the issue
sets targets for (first backup into the store <= 1.3 x local) and the
ratios to restic.

    python3 benches/remote.py [--rounds N] [--tree PATH] [--no-restic]
    python3 benches/remote.py --limits     # 16 MiB at 1024 KiB/s each way
"""

import argparse
import os
import socket
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, proc, what):
    give_up = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited early")
            if time.time() > give_up:
                raise SystemExit(f"{what} did not listen on {port}")
            time.sleep(0.05)


def tool(name):
    p = os.path.expanduser(f"~/.cargo/bin/{name}")
    return p if os.path.exists(p) else shutil.which(name)


def garage(work):
    """A one-node Garage with bucket `bench`; returns (process, port, key id, secret)."""
    exe = tool("garage")
    if not exe:
        raise SystemExit("garage is missing: cargo install garage --locked (.ci/run does)")
    rpc, s3 = free_port(), free_port()
    cfg = os.path.join(work, "garage.toml")
    secret = "".join(f"{(i * 37 + 11) % 256:02x}" for i in range(32))
    with open(cfg, "w") as f:
        f.write(
            f'metadata_dir = "{work}/meta"\ndata_dir = "{work}/data"\ndb_engine = "sqlite"\n'
            f'replication_factor = 1\nrpc_bind_addr = "127.0.0.1:{rpc}"\nrpc_public_addr = "127.0.0.1:{rpc}"\n'
            f'rpc_secret = "{secret}"\n[s3_api]\ns3_region = "garage"\napi_bind_addr = "127.0.0.1:{s3}"\n'
            f'root_domain = ".s3.garage.localhost"\n'
        )
    proc = subprocess.Popen([exe, "-c", cfg, "server"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(rpc, proc, "garage")

    def g(*args):
        return subprocess.run([exe, "-c", cfg, *args], check=True, capture_output=True, text=True).stdout

    node = g("node", "id", "-q").strip().split("@")[0]
    g("layout", "assign", "-z", "dc1", "-c", "10G", node)
    g("layout", "apply", "--version", "1")
    g("bucket", "create", "bench")
    key = g("key", "create", "bench-key")
    field = lambda name: next(l.split(":", 1)[1].strip() for l in key.splitlines() if l.startswith(name))
    g("bucket", "allow", "--read", "--write", "--owner", "bench", "--key", "bench-key")
    wait_for(s3, proc, "garage's S3 API")
    return proc, s3, field("Key ID"), field("Secret key")


class Proxy:
    """Relays 127.0.0.1:port to the server, counting bytes each way."""

    def __init__(self, target):
        self.target, self.up, self.down = target, 0, 0
        self.lock = threading.Lock()
        self.log = None  # a list of (time, bytes up, bytes down) while set
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.sock.accept()
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self.pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self.pipe, args=(server, client, False), daemon=True).start()

    def pipe(self, a, b, up):
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                b.sendall(data)
                with self.lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                    if self.log is not None:
                        self.log.append((time.perf_counter(), len(data) if up else 0, 0 if up else len(data)))
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def take(self):
        with self.lock:
            r = (self.up, self.down)
            self.up = self.down = 0
        return r


def wall(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if r.returncode != 0:
        sys.stderr.write(r.stderr.decode(errors="replace"))
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}")
    return time.perf_counter() - t


def worst_second(log, k):
    """The most bytes of direction k (1 up, 2 down) in any one-second window."""
    events = [(t, e[k]) for e in log for t in [e[0]] if e[k]]
    worst, j, total = 0, 0, 0
    for i, (t, n) in enumerate(events):
        total += n
        while events[j][0] < t - 1.0:
            total -= events[j][1]
            j += 1
        worst = max(worst, total)
    return worst


def limits(pyb, proxy, env, work, rounds):
    """Point 6 of issue 17: 16 MiB up at --limit-upload 1024 (KiB/s), then
    down at --limit-download 1024, through the proxy; time and the worst
    one-second window, medians of the rounds."""
    src = os.path.join(work, "limit-src")
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, "noise.bin"), "wb") as f:
        f.write(os.urandom(16 << 20))
    rate = 1 << 20
    up, down = [], []
    for i in range(rounds):
        url = f"s3://bench/limit{i}"
        proxy.log = []
        t = wall([pyb, "-q", "--limit-upload", "1024", "backup", src, url], env)
        up.append((t, sum(e[1] for e in proxy.log), worst_second(proxy.log, 1)))
        dest = os.path.join(work, f"limit-dest{i}")
        proxy.log = []
        t = wall([pyb, "-q", "--limit-download", "1024", "restore", url, dest], env)
        down.append((t, sum(e[2] for e in proxy.log), worst_second(proxy.log, 2)))
        proxy.log = None
        shutil.rmtree(dest)
    print(f"\nlimits: 16 MiB of noise at 1024 KiB/s through the proxy, medians of {rounds}")
    for label, runs in [("--limit-upload 1024 (backup)", up), ("--limit-download 1024 (restore)", down)]:
        t = statistics.median(r[0] for r in runs)
        moved = statistics.median(r[1] for r in runs)
        worst = statistics.median(r[2] for r in runs)
        expect = moved / rate
        print(f"{label:34} {t:6.2f} s for {moved / 2**20:.2f} MiB (at the rate: {expect:.2f} s, "
              f"{(t / expect - 1) * 100:+.1f} %); worst second {worst / rate:.2f} x the limit (target <= 1.5)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", default=sysconfig.get_paths()["stdlib"])
    ap.add_argument("--no-restic", action="store_true")
    ap.add_argument("--limits", action="store_true", help="only the bandwidth limits (issue 17 point 6)")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "pybackup"], cwd=ROOT, check=True)
    pyb = os.path.join(ROOT, "target/release/pybackup")
    restic = None if args.no_restic else shutil.which("restic")
    work = tempfile.mkdtemp(prefix="xtar-remote-")
    proc, s3, key_id, secret = garage(work)
    proxy = Proxy(s3)
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", AWS_REGION="garage",
               AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret, RESTIC_PASSWORD="bench",
               PYBACKUP_STAGING_DIR=os.path.join(work, "staging"))
    if args.limits:
        try:
            limits(pyb, proxy, env, work, args.rounds)
        finally:
            proc.terminate()
            proc.wait()
            shutil.rmtree(work, ignore_errors=True)
        return
    one = None
    for d, _, files in os.walk(args.tree):
        if files:
            one = os.path.relpath(os.path.join(d, sorted(files)[0]), args.tree)
            break
    subprocess.run(f"find '{args.tree}' -type f -print0 | xargs -0 cat > /dev/null", shell=True, check=True)
    r = {k: [] for k in ["local", "s3", "s3_same", "s3_one", "restic", "restic_same", "restic_one"]}
    bytes_ = {k: [] for k in r}
    try:
        for i in range(args.rounds):
            local = os.path.join(work, f"local{i}")
            r["local"].append(wall([pyb, "-q", "backup", args.tree, local], env))
            shutil.rmtree(local)
            url = f"s3://bench/pyb{i}"
            proxy.take()
            r["s3"].append(wall([pyb, "-q", "backup", args.tree, url], env))
            bytes_["s3"].append(proxy.take())
            r["s3_same"].append(wall([pyb, "-q", "backup", args.tree, url], env))
            bytes_["s3_same"].append(proxy.take())
            dest = os.path.join(work, f"one{i}")
            r["s3_one"].append(wall([pyb, "-q", "restore", url, dest, one], env))
            bytes_["s3_one"].append(proxy.take())
            shutil.rmtree(dest)
            if restic:
                repo = f"s3:http://127.0.0.1:{proxy.port}/bench/restic{i}"
                wall([restic, "-q", "-r", repo, "init"], env)
                proxy.take()
                r["restic"].append(wall([restic, "-q", "-r", repo, "backup", args.tree], env))
                bytes_["restic"].append(proxy.take())
                r["restic_same"].append(wall([restic, "-q", "-r", repo, "backup", args.tree], env))
                bytes_["restic_same"].append(proxy.take())
                r["restic_one"].append(wall([restic, "-q", "-r", repo, "restore", "latest", "--target", dest,
                                             "--include", os.path.join(args.tree, one)], env))
                bytes_["restic_one"].append(proxy.take())
                shutil.rmtree(dest, ignore_errors=True)
            print(f"round {i + 1}: done", flush=True)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    med = lambda k: statistics.median(r[k]) if r[k] else float("nan")
    mb = lambda k, j: statistics.median(b[j] for b in bytes_[k]) / 1e6 if bytes_[k] else float("nan")
    print(f"\ntree {args.tree}; one file: {one}; medians of {args.rounds} rounds; Garage 1 node on 127.0.0.1")
    print(f"{'':28}{'wall s':>9}{'sent MB':>10}{'received MB':>13}")
    for k, label in [("local", "pybackup first, local"), ("s3", "pybackup first, s3"), ("s3_same", "pybackup unchanged, s3"),
                     ("s3_one", "pybackup 1-file restore, s3"), ("restic", "restic first, s3"),
                     ("restic_same", "restic unchanged, s3"), ("restic_one", "restic 1-file restore, s3")]:
        if r[k]:
            sent = "" if k == "local" else f"{mb(k, 0):10.3f}{mb(k, 1):13.3f}"
            print(f"{label:28}{med(k):9.2f}{sent}")
    print(f"\nfirst backup into the store / local: {med('s3') / med('local'):.3f} (target <= 1.3)")
    if r["restic"]:
        print(f"pybackup / restic into the store: first {med('s3') / med('restic'):.3f}, "
              f"unchanged {med('s3_same') / med('restic_same'):.3f}, 1-file restore {med('s3_one') / med('restic_one'):.3f}")


if __name__ == "__main__":
    main()
