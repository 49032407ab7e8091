//! Encrypted archives (docs/format/xtar.md §A9): round trips with each way
//! in, nothing readable without a key, the stock recipe with Debian's
//! `age`, wrong keys, tampering and damage.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// The recipe of docs/format/xtar.md §A10, as the spec gives it.
pub(crate) const RECIPE: &str = r#"
archive=$1 out=$2 key=$3
stage=$out.stage
mkdir -p "$stage" "$out"
tar -i -xf "$archive" -C "$stage"
hdr="$stage/.xtar-age"
data="$out/$(sed -n 's/^#data //p' "$stage/.xtar-header")"
mkdir -p "$data"
for z in "$stage"/.xtar-pack.*.zip; do
    unzip -q -o -d "$data" "$z"
done
for f in "$data"/*; do
    [ -f "$f" ] || continue
    cat "$hdr" "$f" | age -d -i "$key" > "$f.gz" && gzip -dNf "$f.gz"
done
{
    for p in "$stage"/.xtar-names.[0-9]*.tar.gz.age; do
        cat "$hdr" "$p" | age -d -i "$key" > "$stage/piece" && cat "$stage/piece"
    done
    for p in "$stage"/.xtar-tree.[0-9]*.tar.gz.age; do
        cat "$hdr" "$p" | age -d -i "$key" > "$stage/piece" ||
            cat "$hdr" "$stage/.xtar-tree-end.${p##*/.xtar-tree.}" | age -d -i "$key" > "$stage/piece"
        cat "$stage/piece"
    done
} | tar -xzf - -C "$out"
rm -rf "$data"
for p in "$stage"/.xtar-manifest.*.gz.age; do
    cat "$hdr" "$p" | age -d -i "$key"
done | gzip -dc |
while IFS="$(printf '\t')" read -r path kind mode rest; do
    [ "$kind" = f ] && chmod "$mode" "$out/$(printf '%b' "$path")"
done
exit 0
"#;

/// Keys for the tests: the owner's (protected by a passphrase), a
/// recovery key, two of three shares of it, and their public keys.
pub(crate) struct Keys {
    pub dir: tempfile::TempDir,
}

impl Keys {
    pub(crate) fn new() -> Keys {
        let dir = tempfile::tempdir().expect("tmp");
        let k = Keys { dir };
        std::fs::write(k.path("pass"), "correct horse battery staple\n").expect("write");
        let out = pybackup()
            .args(["key", "new", "--protect", "--passphrase-file"])
            .arg(k.path("pass"))
            .arg("-o")
            .arg(k.path("own.key"))
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", stderr(&out));
        let own = stderr(&out).trim().rsplit(' ').next().expect("public key").to_string();
        std::fs::write(k.path("own.pub"), format!("# the owner\n{own}\n")).expect("write");
        let out = pybackup().arg("key").arg("new").arg("-o").arg(k.path("rec.key")).output().expect("runs");
        assert!(out.status.success(), "{}", stderr(&out));
        let out =
            pybackup().args(["key", "split", "-k", "2", "-n", "3"]).arg(k.path("rec.key")).output().expect("runs");
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8(out.stdout).expect("utf8");
        let shares: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        std::fs::write(k.path("two.shares"), format!("{}\n{}\n", shares[2], shares[0])).expect("write");
        k
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The recovery key's public key.
    pub(crate) fn recovery(&self) -> String {
        let text = std::fs::read_to_string(self.path("rec.key")).expect("key");
        text.lines().find_map(|l| l.strip_prefix("# public key: ")).expect("public key").to_string()
    }

    /// `compress` options that encrypt to both keys.
    pub(crate) fn to(&self) -> Vec<String> {
        vec!["-R".into(), self.path("own.pub").display().to_string(), "--recipient".into(), self.recovery()]
    }
}

/// Keys, a scratch directory, the test tree in it, and its archive
/// encrypted to both keys.
fn encrypted_tree() -> (Keys, tempfile::TempDir, PathBuf, PathBuf) {
    let k = Keys::new();
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &args(&k.to()));
    (k, t, src, archive)
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `pybackup VERB ARCHIVE [DEST] --identity ...`, its output.
fn with_key(verb: &str, archive: &Path, dest: Option<&Path>, key: &[&Path]) -> std::process::Output {
    let mut c = pybackup();
    c.arg(verb).arg(archive);
    if let Some(d) = dest {
        c.arg(d);
    }
    for k in key {
        c.arg("-i").arg(k);
    }
    c.output().expect("runs")
}

/// A tree with every kind of entry, a file over 32 MiB (deflated in
/// chunks, sealed in two passes), and incompressible files (stored).
fn tree(src: &Path) {
    crate::fidelity::rich_tree(src);
    let big: Vec<u8> =
        (0..33u32 << 20).map(|i| b"0123456789abcdef\n"[(i % 17) as usize] ^ ((i >> 16) as u8 & 3)).collect();
    write(src, b"big/over-32-mib.txt", &big);
    write(src, b"noise/one-random.bin", &noise(200_000, 1));
    write(src, b"noise/two-random.bin", &noise(200_000, 2));
    for i in 0..300 {
        write(
            src,
            format!("many/file-{i:03}.txt").as_bytes(),
            format!("small file number {i}, with a line long enough to sample\n").as_bytes(),
        );
    }
}

#[test]
fn each_way_in_opens_an_encrypted_archive_whole() {
    let (k, t, src, archive) = encrypted_tree();
    // The owner's key with its passphrase, the recovery key alone, two of
    // the three shares of the recovery key.
    let ways = [("owner", k.path("own.key")), ("recovery", k.path("rec.key")), ("shares", k.path("two.shares"))];
    for (name, key) in ways {
        let dest = t.path().join(name);
        let mut c = pybackup();
        c.arg("extract").arg(&archive).arg(&dest).arg("-i").arg(&key);
        c.arg("--passphrase-file").arg(k.path("pass"));
        let out = c.output().expect("runs");
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_same_tree(&src, &dest);
        std::fs::remove_dir_all(&dest).expect("rm");
    }
    let out = with_key("verify", &archive, None, &[&k.path("rec.key")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = with_key("list", &archive, None, &[&k.path("rec.key")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("big/over-32-mib.txt"));
}

/// Every byte string of `needles` that occurs in `hay`.
fn found_in<'a>(hay: &[u8], needles: &'a [Vec<u8>]) -> Vec<&'a [u8]> {
    needles.iter().filter(|n| hay.windows(n.len()).any(|w| w == &n[..])).map(|n| &n[..]).collect()
}

#[test]
fn an_encrypted_archive_shows_no_name_and_no_content() {
    let (_keys, t, src, archive) = encrypted_tree();
    let bytes = std::fs::read(&archive).expect("read");
    // Every name component and link target of 6 bytes or more (shorter
    // strings occur by chance in 40 MB of ciphertext), and the root.
    let mut needles: Vec<Vec<u8>> = vec![src.as_os_str().as_encoded_bytes().to_vec()];
    let mut contents = 0;
    for (path, node) in snapshot(&src, false) {
        for c in path.split(|&b| b == b'/') {
            if c.len() >= 6 {
                needles.push(c.to_vec());
            }
        }
        if node.kind == "symlink" && node.content.len() >= 6 {
            needles.push(node.content.clone());
        }
        // A sample of every file's content: 32 bytes from its middle.
        if node.kind == "file" && node.content.len() >= 32 {
            let mid = node.content.len() / 2 - 16;
            needles.push(node.content[mid..mid + 32].to_vec());
            contents += 1;
        }
    }
    needles.sort();
    needles.dedup();
    assert!(needles.len() > 300 && contents > 300, "{} needles, {contents} contents", needles.len());
    let shown = found_in(&bytes, &needles);
    assert!(
        shown.is_empty(),
        "the encrypted archive shows {:?}",
        shown.iter().map(|s| String::from_utf8_lossy(s)).collect::<Vec<_>>()
    );
    // The same search finds them in the archive that is not encrypted:
    // the test can fail.
    let plain = t.path().join("plain.xtar");
    compress(&src, &plain, &[]);
    let plain_bytes = std::fs::read(&plain).expect("read");
    assert!(found_in(&plain_bytes, &needles).len() >= 300);
}

#[test]
fn gnu_tar_debian_age_and_unzip_recover_an_encrypted_archive() {
    let (k, t, src, archive) = encrypted_tree();
    let out = t.path().join("out");
    let res = Command::new("bash")
        .arg("-c")
        .arg(RECIPE)
        .arg("bash")
        .arg(&archive)
        .arg(&out)
        .arg(k.path("rec.key"))
        .output()
        .expect("bash");
    assert!(res.status.success(), "recipe: {}", String::from_utf8_lossy(&res.stderr));
    // Every name (exact bytes: unzip only sees numbers), content, kind,
    // hard-link group and permission bits; mtimes to the second.
    let want = snapshot(&src, false);
    let got = snapshot(&out, false);
    assert_eq!(want.len(), got.len(), "entry counts");
    for (path, w) in &want {
        let g = got.get(path).unwrap_or_else(|| panic!("`{}` missing", String::from_utf8_lossy(path)));
        let name = String::from_utf8_lossy(path);
        assert_eq!((w.kind, &w.content, &w.link_group), (g.kind, &g.content, &g.link_group), "{name}");
        if w.kind != "symlink" {
            assert_eq!(w.mode, g.mode, "{name}: mode");
        }
        // Times to the second between 1970 and 2106: gzip's and ustar's
        // fields hold no others (the manifest does).
        if w.kind != "symlink" && (0..1 << 32).contains(&w.mtime.0) {
            assert_eq!(w.mtime.0, g.mtime.0, "{name}: mtime");
        }
    }
}

#[test]
fn an_archive_encrypted_to_one_key_only_is_said_to_be() {
    // One way in is one lost key from losing the archive: compress says
    // so, and not when a second recipient is given (or -q).
    let k = Keys::new();
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("a.txt"), b"a").expect("write");
    let own = ["-R".to_string(), k.path("own.pub").display().to_string()];
    let same_twice = ["--recipient".to_string(), k.recovery(), "--recipient".to_string(), k.recovery()];
    let note = "encrypted to one key only";
    for (extra, said) in [(&own[..], true), (&same_twice[..], true), (&k.to()[..], false)] {
        let out = compress(&src, &t.path().join("a.xtar"), &[&args(extra)[..], &["--overwrite"]].concat());
        assert_eq!(stderr(&out).contains(note), said, "{extra:?}: {}", stderr(&out));
    }
    let quiet = pybackup()
        .args(["-q", "compress"])
        .arg(&src)
        .arg("-o")
        .arg(t.path().join("q.xtar"))
        .args(args(&own))
        .output()
        .expect("runs");
    assert!(quiet.status.success() && !stderr(&quiet).contains(note), "{}", stderr(&quiet));
}

#[test]
fn a_missing_or_wrong_key_is_one_line_and_writes_nothing() {
    let k = Keys::new();
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"a.txt", b"private\n");
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &args(&k.to()));
    let other = t.path().join("other.key");
    let out = pybackup().arg("key").arg("new").arg("-o").arg(&other).output().expect("runs");
    assert!(out.status.success());
    for (what, key) in [("no key", vec![]), ("a wrong key", vec![other.as_path()])] {
        for verb in ["extract", "salvage", "verify", "list"] {
            let dest = t.path().join(format!("{verb}-dest"));
            let takes_dest = verb == "extract" || verb == "salvage";
            let out = with_key(verb, &archive, takes_dest.then_some(dest.as_path()), &key);
            assert_eq!(out.status.code(), Some(2), "{verb} with {what}: {}", stderr(&out));
            assert_eq!(stderr(&out).lines().count(), 1, "{verb} with {what}: {}", stderr(&out));
            assert!(stderr(&out).contains("is encrypted"), "{}", stderr(&out));
            assert!(!dest.exists(), "{verb} with {what} wrote {}", dest.display());
        }
    }
    // A wrong passphrase for the owner's key: exit 2, nothing written.
    std::fs::write(k.path("bad-pass"), "not it\n").expect("write");
    let dest = t.path().join("never");
    let out = pybackup()
        .arg("extract")
        .arg(&archive)
        .arg(&dest)
        .arg("-i")
        .arg(k.path("own.key"))
        .arg("--passphrase-file")
        .arg(k.path("bad-pass"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("passphrase"), "{}", stderr(&out));
    assert!(!dest.exists());
}

/// The entries of the packs of an archive: (name, offset of its local
/// header, offset of its data, data length).
pub(crate) fn pack_entries(bytes: &[u8]) -> Vec<(Vec<u8>, usize, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() {
        let h = &bytes[at..at + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = &h[..name_end];
        let size_field = std::str::from_utf8(&h[124..136]).expect("size").trim_matches(|c| c == '\0' || c == ' ');
        let size = usize::from_str_radix(size_field, 8).expect("octal size");
        let data = at + 512;
        if name.starts_with(b".xtar-pack.") {
            let mut p = data;
            while bytes[p..p + 4] == *b"PK\x03\x04" {
                let u16_at = |o: usize| usize::from(u16::from_le_bytes([bytes[o], bytes[o + 1]]));
                let csize = u32::from_le_bytes(bytes[p + 18..p + 22].try_into().expect("4")) as usize;
                let (n, x) = (u16_at(p + 26), u16_at(p + 28));
                let d = p + 30 + n + x;
                out.push((bytes[p + 30..p + 30 + n].to_vec(), p, d, csize));
                p = d + csize;
            }
        }
        at = data + size.div_ceil(512) * 512;
    }
    out
}

#[test]
fn flipped_swapped_and_foreign_members_are_detected_and_named() {
    let (k, t, src, archive) = encrypted_tree();
    let bytes = std::fs::read(&archive).expect("read");
    let entries = pack_entries(&bytes);
    assert!(entries.len() > 300, "{} pack entries", entries.len());
    let key = k.path("rec.key");
    let damaged_names = |out: &std::process::Output| -> Vec<String> {
        stderr(out)
            .lines()
            .filter(|l| l.contains("does not authenticate") || l.contains("damaged"))
            .map(str::to_string)
            .collect()
    };

    // One flipped byte in the middle of an entry: that file, named, and no
    // other, is lost; exit 1.
    let (_, _, data, len) = entries[entries.len() / 2];
    let mut flipped = bytes.clone();
    flipped[data + len / 2] ^= 0x20;
    let a = t.path().join("flipped.xtar");
    std::fs::write(&a, &flipped).expect("write");
    let dest = t.path().join("flipped");
    let out = with_key("extract", &a, Some(&dest), &[&key]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = damaged_names(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let restored = snapshot(&dest, false);
    let lost: Vec<_> = snapshot(&src, false).into_iter().filter(|(p, n)| restored.get(p) != Some(n)).collect();
    assert_eq!(lost.len(), 1, "one file lost");
    assert!(lines[0].contains(&*String::from_utf8_lossy(&lost[0].0)), "{lines:?} names {:?}", lost[0].0);

    // Two entries of the same length swapped (the two random files, whose
    // names are as long):
    // both are refused as moved, the rest restored.
    let noise_len = entries.iter().find(|f| f.3 > 150_000 && f.3 < 250_000).expect("a noise file").3;
    let same: Vec<_> = entries.iter().filter(|e| e.3 == noise_len).collect();
    assert_eq!(same.len(), 2, "two entries of equal length");
    let mut swapped = bytes.clone();
    let (x, y, n) = (same[0].2, same[1].2, same[0].3);
    let first = bytes[x..x + n].to_vec();
    swapped.copy_within(y..y + n, x);
    swapped[y..y + n].copy_from_slice(&first);
    let a = t.path().join("swapped.xtar");
    std::fs::write(&a, &swapped).expect("write");
    let out = with_key("extract", &a, Some(&t.path().join("swapped")), &[&key]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let moved = stderr(&out).lines().filter(|l| l.contains("moved, swapped or replayed")).count();
    assert_eq!(moved, 2, "{}", stderr(&out));

    // An entry taken from another archive of the same tree (same layout,
    // another key): refused.
    let b = t.path().join("b.xtar");
    compress(&src, &b, &args(&k.to()));
    let other = std::fs::read(&b).expect("read");
    let (_, _, data, len) = entries[10];
    let mut foreign = bytes.clone();
    foreign[data..data + len].copy_from_slice(&other[data..data + len]);
    let a = t.path().join("foreign.xtar");
    std::fs::write(&a, &foreign).expect("write");
    let out = with_key("extract", &a, Some(&t.path().join("foreign")), &[&key]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().filter(|l| l.contains("replayed")).count(), 1, "{}", stderr(&out));
}

/// A damage pattern: its name, the (start, end) ranges overwritten with
/// noise, and a length to cut the archive to.
type Pattern = (&'static str, Vec<(usize, usize)>, Option<usize>);

/// The damage benchmark's patterns, on a small scale: scattered sectors,
/// a burst, the first and last 64 KiB, the end cut off. (start, end) ranges
/// overwritten with noise, and a length to cut to.
fn damage_patterns(len: usize) -> Vec<Pattern> {
    const SECTOR: usize = 2048;
    let sectors = len / SECTOR;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut pick = |pct: usize| {
        let mut v: Vec<(usize, usize)> = (0..sectors * pct / 100)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let s = (x % sectors as u64) as usize * SECTOR;
                (s, s + SECTOR)
            })
            .collect();
        v.sort_unstable();
        v
    };
    let burst = len / 3 / SECTOR * SECTOR;
    vec![
        ("sect 1%", pick(1), None),
        ("sect 5%", pick(5), None),
        ("burst 256K", vec![(burst, burst + (256 << 10))], None),
        ("head 64K", vec![(0, 64 << 10)], None),
        ("tail 64K", vec![(len - (64 << 10), len)], None),
        ("cut 20%", vec![], Some(len * 80 / 100 / SECTOR * SECTOR)),
    ]
}

#[test]
fn salvage_of_a_damaged_encrypted_archive_gives_back_every_entry_not_hit() {
    let k = Keys::new();
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    crate::fidelity::rich_tree(&src);
    for i in 0..600usize {
        let body = if i % 3 == 0 {
            noise(200 + i * 37, i as u64)
        } else {
            format!("text file {i}\n").repeat(i % 40 + 1).into_bytes()
        };
        write(&src, format!("d{}/f{i:03}.dat", i % 17).as_bytes(), &body);
    }
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &args(&k.to()));
    let bytes = std::fs::read(&archive).expect("read");
    let entries = pack_entries(&bytes);
    for (name, ranges, cut) in damage_patterns(bytes.len()) {
        let mut d = bytes.clone();
        let mut x = 7u8;
        for &(a, b) in &ranges {
            for byte in &mut d[a..b.min(bytes.len())] {
                x = x.wrapping_mul(31).wrapping_add(17);
                *byte ^= x | 1;
            }
        }
        let end = cut.unwrap_or(bytes.len());
        d.truncate(end);
        let damaged = t.path().join("d.xtar");
        std::fs::write(&damaged, &d).expect("write");
        let dest = t.path().join(format!("out-{}", name.replace(['%', ' '], "")));
        let out = pybackup()
            .arg("salvage")
            .arg(&damaged)
            .arg(&dest)
            .arg("-i")
            .arg(k.path("rec.key"))
            .arg("--json")
            .output()
            .expect("runs");
        assert!(out.status.code() == Some(0) || out.status.code() == Some(1), "{name}: {}", stderr(&out));
        let summary: serde_json::Value =
            serde_json::from_slice(out.stdout.split(|&b| b == b'\n').rfind(|l| !l.is_empty()).expect("summary"))
                .expect("json");
        let intact = summary["intact"].as_u64().expect("intact");
        // Entries whose bytes (local header to the end of the payload) no
        // damage touched.
        let untouched = entries
            .iter()
            .filter(|&&(_, header, data, len)| {
                data + len <= end && !ranges.iter().any(|&(a, b)| a < data + len && header < b)
            })
            .count() as u64;
        assert!(untouched > 0 && intact >= untouched, "{name}: {intact} intact, but {untouched} entries untouched");
        // What is restored is exact.
        let want = snapshot(&src, false);
        for (p, n) in snapshot(&dest, false) {
            if n.kind == "file" {
                assert_eq!(
                    Some(&n.content),
                    want.get(&p).map(|w| &w.content),
                    "{name}: {}",
                    String::from_utf8_lossy(&p)
                );
            }
        }
    }
}

/// The pieces of an encrypted volume set, in order.
fn pieces_of(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix(name)).is_some_and(|rest| {
                rest.len() == 4 && rest.starts_with('.') && rest[1..].bytes().all(|b| b.is_ascii_digit())
            })
        })
        .collect();
    v.sort();
    v
}

#[test]
fn an_encrypted_volume_set_round_trips_and_survives_a_lost_piece() {
    let k = Keys::new();
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let set = t.path().join("set.xtar");
    let mut a = k.to();
    a.extend(["--volume-size", "200K", "--redundancy", "1vol"].map(String::from));
    let c = compress(&src, &set, &args(&a));
    assert!(stderr(&c).contains("pieces"), "{}", stderr(&c));
    let pieces = pieces_of(t.path(), "set.xtar");
    assert!(pieces.len() >= 3, "{pieces:?}");
    for p in &pieces[..pieces.len() - 1] {
        assert_eq!(std::fs::metadata(p).expect("stat").len(), 200 << 10, "{}", p.display());
    }
    // No piece shows a name or a sample of content.
    let needles = needles(&src);
    for p in &pieces {
        let shown = found_in(&std::fs::read(p).expect("read"), &needles);
        assert!(shown.is_empty(), "{} shows {shown:?}", p.display());
    }
    // Read whole through any piece, with each way in.
    for (key, piece) in [(k.path("rec.key"), &pieces[0]), (k.path("two.shares"), &pieces[1])] {
        let dest = t.path().join(format!("out-{}", key.file_name().expect("name").to_string_lossy()));
        let x = with_key("extract", piece, Some(&dest), &[&key]);
        assert!(x.status.success(), "{}", stderr(&x));
        assert_same_tree(&src, &dest);
    }
    // A lost piece: extract refuses, naming it, and writes nothing.
    let second = pieces[1].clone();
    let kept = std::fs::read(&second).expect("read");
    std::fs::remove_file(&second).expect("rm");
    let dest = t.path().join("refused");
    let x = with_key("extract", &pieces[0], Some(&dest), &[&k.path("rec.key")]);
    assert!(!x.status.success());
    assert!(stderr(&x).contains("set.xtar.002") && stderr(&x).contains("repair"), "{}", stderr(&x));
    assert!(!dest.exists(), "nothing written");
    // Salvage gives back every file the other pieces hold whole.
    let salvaged = t.path().join("salvaged");
    let s = with_key("salvage", &pieces[0], Some(&salvaged), &[&k.path("rec.key")]);
    assert!(stderr(&s).contains("set.xtar.002"), "{}", stderr(&s));
    let got = snapshot(&salvaged, false);
    let want = snapshot(&src, false);
    let back = want.iter().filter(|(p, n)| n.kind == "file" && got.get(*p).map(|g| &g.content) == Some(&n.content));
    assert!(
        back.count() * 10 >= want.values().filter(|n| n.kind == "file").count() * 9,
        "salvage gave back too little"
    );
    assert!(std::fs::read_dir(&salvaged)
        .expect("ls")
        .all(|e| { !e.expect("entry").file_name().to_string_lossy().contains(".pieces-") }));
    // The parity volumes rebuild it, byte for byte.
    let parity: Vec<PathBuf> = std::fs::read_dir(t.path())
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".xtar-rs"))
        .collect();
    let r = run(&[os("repair"), parity[0].as_os_str()]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(std::fs::read(&second).expect("rebuilt") == kept, "the rebuilt piece differs");
    // The stock recipe: the pieces joined with `cat`, then §A10.
    let joined = t.path().join("joined.xtar");
    let cat = Command::new("sh")
        .arg("-c")
        .arg(r#"cat "$1".[0-9][0-9][0-9] > "$2""#)
        .arg("sh")
        .arg(&set)
        .arg(&joined)
        .status()
        .expect("sh");
    assert!(cat.success());
    let out = t.path().join("stock");
    let res = Command::new("bash")
        .arg("-c")
        .arg(RECIPE)
        .arg("bash")
        .arg(&joined)
        .arg(&out)
        .arg(k.path("rec.key"))
        .output()
        .expect("bash");
    assert!(res.status.success(), "recipe: {}", String::from_utf8_lossy(&res.stderr));
    let got = snapshot(&out, false);
    for (path, w) in &want {
        let g = got.get(path).unwrap_or_else(|| panic!("`{}` missing", String::from_utf8_lossy(path)));
        assert_eq!((w.kind, &w.content), (g.kind, &g.content), "{}", String::from_utf8_lossy(path));
    }
}

#[test]
fn an_encrypted_volume_set_is_replaced_only_when_asked_and_leaves_no_old_piece() {
    let k = Keys::new();
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    for i in 0..40u64 {
        write(&src, format!("f{i:02}").as_bytes(), &noise(20_000, i + 1));
    }
    let set = t.path().join("s.xtar");
    let mut a = k.to();
    a.extend(["--volume-size", "100K"].map(String::from));
    compress(&src, &set, &args(&a));
    let before = pieces_of(t.path(), "s.xtar");
    assert!(before.len() >= 8, "{before:?}");
    let first = std::fs::read(&before[0]).expect("read");
    // Again without --overwrite: refused, nothing changed.
    let mut argv = vec![os("compress"), src.as_os_str(), os("-o"), set.as_os_str()];
    argv.extend(a.iter().map(os));
    let again = run(&argv);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--overwrite"), "{}", stderr(&again));
    assert!(std::fs::read(&before[0]).expect("read") == first);
    // A smaller tree with --overwrite: fewer pieces, none of the old left.
    for i in 10..40u64 {
        std::fs::remove_file(src.join(format!("f{i:02}"))).expect("rm");
    }
    argv.push(os("--overwrite"));
    let c = run(&argv);
    assert!(c.status.success(), "{}", stderr(&c));
    let after = pieces_of(t.path(), "s.xtar");
    assert!(after.len() < before.len(), "{after:?}");
    let dest = t.path().join("out");
    let x = with_key("extract", &set, Some(&dest), &[&k.path("rec.key")]);
    assert!(x.status.success(), "{}", stderr(&x));
    assert_same_tree(&src, &dest);
}
