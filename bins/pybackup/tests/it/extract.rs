//! `pybackup extract`: hostile and damaged archives, overwriting, paths.

use std::path::Path;

use xtar::format::tar::{padding, write_member_header};
use xtar::format::zip::{EntryInfo, Method, S_IFLNK, S_IFREG};

use crate::support::*;

/// A zip member holding `data` stored under `name`.
pub fn zip_member(name: &[u8], data: &[u8], unix_mode: u32) -> Vec<u8> {
    let info = EntryInfo {
        name: name.to_vec(),
        method: Method::Stored,
        crc: crc(data),
        csize: data.len() as u64,
        usize: data.len() as u64,
        mtime: 1_700_000_000,
        unix_mode,
        zip64: false,
    };
    let mut z = info.local_header();
    z.extend_from_slice(data);
    z.extend(info.trailer());
    z
}

fn crc(data: &[u8]) -> u32 {
    // Bitwise CRC-32 (IEEE), so the test does not trust the code under test.
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xedb8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// An archive made of the given tar members, after a valid header.
pub fn craft(members: &[(&[u8], Vec<u8>)], version: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut add = |name: &[u8], data: &[u8]| {
        write_member_header(&mut out, name, data.len() as u64, 0, 0o644);
        out.extend_from_slice(data);
        out.resize(out.len() + padding(data.len() as u64), 0);
    };
    add(b".xtar-header", format!("#xtar {version}\n#root /crafted\n").as_bytes());
    for (name, data) in members {
        add(name, data);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn extract_crafted(t: &Path, bytes: &[u8], dest: &Path) -> std::process::Output {
    let archive = t.join("crafted.xtar");
    std::fs::write(&archive, bytes).expect("write");
    run(&[os("extract"), archive.as_os_str(), dest.as_os_str()])
}

#[test]
fn absolute_and_dotdot_paths_are_refused() {
    let t = tempfile::tempdir().expect("tmp");
    let dest = t.path().join("dest");
    let evil_abs = t.path().join("abs-evil");
    let abs_name = format!("{}", evil_abs.display());
    let bytes = craft(
        &[
            (b"../evil.zip", zip_member(b"../evil", b"x", S_IFREG | 0o644)),
            (format!("{abs_name}.zip").as_bytes(), zip_member(abs_name.as_bytes(), b"x", S_IFREG | 0o644)),
            (b"good.zip", zip_member(b"good", b"fine", S_IFREG | 0o644)),
        ],
        1,
    );
    let out = extract_crafted(t.path(), &bytes, &dest);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("`..` component"), "{}", stderr(&out));
    assert!(stderr(&out).contains("absolute path"), "{}", stderr(&out));
    assert!(!t.path().join("evil").exists());
    assert!(!evil_abs.exists());
    assert_eq!(std::fs::read(dest.join("good")).expect("good"), b"fine");
}

#[test]
fn a_symlink_from_the_archive_is_never_followed_by_a_later_file() {
    let t = tempfile::tempdir().expect("tmp");
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    let target = outside.display().to_string();
    let bytes = craft(
        &[
            (b"link.zip", zip_member(b"link", target.as_bytes(), S_IFLNK | 0o777)),
            (b"link/pwned.zip", zip_member(b"link/pwned", b"gotcha", S_IFREG | 0o644)),
        ],
        1,
    );
    let dest = t.path().join("dest");
    let out = extract_crafted(t.path(), &bytes, &dest);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!outside.join("pwned").exists(), "wrote through a symlink");
    assert_eq!(std::fs::read_dir(&outside).expect("readdir").count(), 0);
}

#[test]
fn a_symlink_already_in_the_destination_is_not_followed() {
    let t = tempfile::tempdir().expect("tmp");
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    let dest = t.path().join("dest");
    std::fs::create_dir(&dest).expect("mkdir");
    std::os::unix::fs::symlink(&outside, dest.join("a")).expect("symlink");
    let bytes = craft(&[(b"a/x.zip", zip_member(b"a/x", b"data", S_IFREG | 0o644))], 1);
    let out = extract_crafted(t.path(), &bytes, &dest);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert!(!outside.join("x").exists());
}

#[test]
fn a_member_whose_declared_size_disagrees_is_refused() {
    let t = tempfile::tempdir().expect("tmp");
    let mut lying = zip_member(b"liar", b"12345", S_IFREG | 0o644);
    lying[22..26].copy_from_slice(&10u32.to_le_bytes()); // uncompressed size 10, data 5
    let bytes = craft(&[(b"liar.zip", lying), (b"honest.zip", zip_member(b"honest", b"ok", S_IFREG | 0o644))], 1);
    let dest = t.path().join("dest");
    let out = extract_crafted(t.path(), &bytes, &dest);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("member `liar`"), "{}", stderr(&out));
    assert!(!dest.join("liar").exists());
    assert_eq!(std::fs::read(dest.join("honest")).expect("honest"), b"ok");
}

#[test]
fn a_member_whose_tar_and_zip_names_differ_is_refused() {
    let t = tempfile::tempdir().expect("tmp");
    let bytes = craft(&[(b"a.zip", zip_member(b"b", b"data", S_IFREG | 0o644))], 1);
    let dest = t.path().join("dest");
    let out = extract_crafted(t.path(), &bytes, &dest);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("names disagree"), "{}", stderr(&out));
    assert!(!dest.join("a").exists() && !dest.join("b").exists());
}

#[test]
fn a_header_claiming_a_terabyte_is_handled_in_bounded_memory() {
    let t = tempfile::tempdir().expect("tmp");
    let mut bytes = Vec::new();
    write_member_header(&mut bytes, b".xtar-header", 18, 0, 0o644);
    bytes.extend_from_slice(b"#xtar 1\n#root /x\n\n");
    bytes.resize(bytes.len() + padding(18), 0);
    let z = zip_member(b"huge", b"tiny", S_IFREG | 0o644);
    write_member_header(&mut bytes, b"huge.zip", 1 << 40, 0, 0o644);
    bytes.extend_from_slice(&z);
    let dest = t.path().join("dest");
    let out = extract_crafted(t.path(), &bytes, &dest);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!dest.join("huge").exists());
}

#[test]
fn an_archive_of_another_version_is_refused() {
    let t = tempfile::tempdir().expect("tmp");
    let bytes = craft(&[(b"a.zip", zip_member(b"a", b"data", S_IFREG | 0o644))], 9);
    let out = extract_crafted(t.path(), &bytes, &t.path().join("dest"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("format version 9"), "{}", stderr(&out));
}

#[test]
fn a_file_that_is_not_an_archive_is_refused() {
    let t = tempfile::tempdir().expect("tmp");
    let out = extract_crafted(t.path(), &[0x1f, 0x8b, 8, 0, 1, 2, 3], &t.path().join("dest"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not an xtar archive"), "{}", stderr(&out));
}

fn three_files(root: &Path) {
    write(root, b"a.txt", b"alpha alpha alpha\n");
    write(root, b"sub/b.txt", &b"bravo bravo\n".repeat(100));
    write(root, b"sub/deeper/c.txt", b"charlie\n");
}

#[test]
fn a_damaged_member_is_named_and_every_other_file_is_restored() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    three_files(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let mut bytes = std::fs::read(&archive).expect("read");
    // Find b.txt's zip local header and flip bytes of its deflate data.
    let needle = b"PK\x03\x04";
    let at = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .find(|&i| bytes[i + 30..].starts_with(b"sub/b.txt"))
        .expect("member of sub/b.txt");
    let data = at + 30 + 9 + 9;
    for b in &mut bytes[data + 2..data + 8] {
        *b ^= 0x5a;
    }
    std::fs::write(&archive, &bytes).expect("write");
    let dest = t.path().join("dest");
    let out = run(&[os("extract"), archive.as_os_str(), dest.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("member `sub/b.txt`"), "{}", stderr(&out));
    assert!(!dest.join("sub/b.txt").exists());
    assert_eq!(std::fs::read(dest.join("a.txt")).expect("a"), b"alpha alpha alpha\n");
    assert_eq!(std::fs::read(dest.join("sub/deeper/c.txt")).expect("c"), b"charlie\n");
}

#[test]
fn existing_files_are_replaced_only_with_overwrite() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    three_files(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let dest = t.path().join("dest");
    write(&dest, b"a.txt", b"mine");
    let out = run(&[os("extract"), archive.as_os_str(), dest.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("refusing to overwrite"), "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.join("a.txt")).expect("a"), b"mine");
    assert_eq!(std::fs::read(dest.join("sub/deeper/c.txt")).expect("c"), b"charlie\n");
    let out = run(&[os("extract"), os("--overwrite"), archive.as_os_str(), dest.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &dest);
}

#[test]
fn chosen_paths_only() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    three_files(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let dest = t.path().join("dest");
    let out = run(&[os("extract"), archive.as_os_str(), dest.as_os_str(), os("sub/deeper")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!dest.join("a.txt").exists());
    assert!(!dest.join("sub/b.txt").exists());
    assert_eq!(std::fs::read(dest.join("sub/deeper/c.txt")).expect("c"), b"charlie\n");
    let out = run(&[os("extract"), archive.as_os_str(), t.path().join("d2").as_os_str(), os("nope")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`nope`: not found"), "{}", stderr(&out));
}

#[test]
fn list_json_has_types_and_base64_for_non_utf8_names() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"caf\xe9", b"latin-1 name");
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let out = run(&[os("list"), os("--json"), archive.as_os_str()]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert!(lines.iter().all(|v| v["type"] == "entry"));
    let file = lines.iter().find(|v| v["kind"] == "file").expect("file entry");
    assert_eq!(file["path"]["bytes"], "Y2Fm6Q==");
    assert_eq!(file["size"], 12);
}

/// A deflated zip member whose data is `n` zero bytes; the header declares
/// `declared` bytes.
fn zero_bomb(name: &[u8], n: usize, declared: u64) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut crc = crc32fast::Hasher::new();
    for _ in 0..n / chunk.len() {
        enc.write_all(&chunk).expect("deflate");
        crc.update(&chunk);
    }
    let data = enc.finish().expect("deflate");
    let info = EntryInfo {
        name: name.to_vec(),
        method: Method::Deflated,
        crc: crc.finalize(),
        csize: data.len() as u64,
        usize: declared,
        mtime: 1_700_000_000,
        unix_mode: S_IFREG | 0o644,
        zip64: false,
    };
    let mut z = info.local_header();
    z.extend_from_slice(&data);
    z.extend(info.trailer());
    z
}

#[test]
fn a_zip_bomb_that_lies_about_its_size_is_stopped() {
    let t = tempfile::tempdir().expect("tmp");
    let bomb = zero_bomb(b"bomb", 256 << 20, 1024);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let bytes = craft(&[(b"bomb.zip", bomb), (b"ok.zip", zip_member(b"ok", b"fine", S_IFREG | 0o644))], 2);
    let dest = t.path().join("dest");
    let out = extract_crafted(t.path(), &bytes, &dest);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("longer than its declared size"), "{}", stderr(&out));
    assert!(!dest.join("bomb").exists());
    assert_eq!(std::fs::read(dest.join("ok")).expect("ok"), b"fine");
    let leftovers: Vec<_> = std::fs::read_dir(&dest).expect("readdir").map(|e| e.expect("e").file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("ok")]);
}

#[test]
fn an_honest_zip_bomb_extracts_in_bounded_memory() {
    // 1 GiB of zeros in about 1 MB: restored as a sparse file, with memory
    // bounded by buffers, not by the size.
    let t = tempfile::tempdir().expect("tmp");
    let bytes = craft(&[(b"zeros.zip", zero_bomb(b"zeros", 1 << 30, 1 << 30))], 2);
    let archive = t.path().join("bomb.xtar");
    std::fs::write(&archive, &bytes).expect("write");
    let dest = t.path().join("dest");
    let rss = t.path().join("rss");
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-o")
        .arg(&rss)
        .args(["-f", "%M"])
        .arg(assert_cmd::cargo::cargo_bin("pybackup"))
        .args(["--no-progress", "extract"])
        .arg(&archive)
        .arg(&dest)
        .output()
        .expect("/usr/bin/time runs (.ci/run installs it)");
    // No index: restored with a warning (exit 1), but restored.
    assert!(out.status.code() == Some(1), "{}", stderr(&out));
    let m = std::fs::metadata(dest.join("zeros")).expect("restored");
    assert_eq!(m.len(), 1 << 30);
    // GNU time puts "Command exited with non-zero status 1" first.
    let text = std::fs::read_to_string(&rss).expect("rss");
    let kib: u64 = text.lines().last().unwrap_or_default().trim().parse().expect("number");
    assert!(kib < 200 * 1024, "peak RSS {kib} KiB");
}

#[test]
fn a_truncated_archive_names_the_truncation_and_restores_what_precedes() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    for i in 0..20 {
        write(&src, format!("f{i:02}").as_bytes(), &noise(5000, i + 1));
    }
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let bytes = std::fs::read(&archive).expect("read");
    for cut in [bytes.len() / 3, bytes.len() / 2 + 7, bytes.len() - 600] {
        let dest = t.path().join(format!("d{cut}"));
        let out = extract_crafted(t.path(), &bytes[..cut], &dest);
        assert_ne!(out.status.code(), Some(0), "cut at {cut}");
        assert!(stderr(&out).contains("truncated"), "cut at {cut}: {}", stderr(&out));
        // Every file restored is whole, and no temporary file is left.
        for e in std::fs::read_dir(&dest).expect("readdir") {
            let e = e.expect("entry");
            let orig = std::fs::read(src.join(e.file_name()))
                .unwrap_or_else(|_| panic!("cut at {cut}: unexpected {:?} in the destination", e.file_name()));
            assert_eq!(std::fs::read(e.path()).expect("read"), orig);
        }
    }
}

#[test]
fn salvage_refuses_hostile_members_and_writes_nothing_outside() {
    let t = tempfile::tempdir().expect("tmp");
    let link = zip_member(b"link", b"/", 0o120_000 | 0o777);
    let bytes = craft(
        &[
            (b"../up.zip", zip_member(b"../up", b"x", S_IFREG | 0o644)),
            (b"/abs.zip", zip_member(b"/abs", b"x", S_IFREG | 0o644)),
            (b"link.zip", link),
            (b"link/through.zip", zip_member(b"link/through", b"x", S_IFREG | 0o644)),
            (b"a.zip", zip_member(b"b", b"x", S_IFREG | 0o644)),
            (b"bomb.zip", zero_bomb(b"bomb", 64 << 20, 10)),
            (b"ok.zip", zip_member(b"ok", b"fine", S_IFREG | 0o644)),
        ],
        2,
    );
    let box_dir = t.path().join("box");
    std::fs::create_dir(&box_dir).expect("mkdir");
    let archive = box_dir.join("h.xtar");
    std::fs::write(&archive, &bytes).expect("write");
    let dest = box_dir.join("dest");
    let out = run(&[os("salvage"), archive.as_os_str(), dest.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.join("ok")).expect("ok"), b"fine");
    let mut names: Vec<_> = std::fs::read_dir(&box_dir).expect("readdir").map(|e| e.expect("e").file_name()).collect();
    names.sort();
    assert_eq!(names, vec![std::ffi::OsString::from("dest"), std::ffi::OsString::from("h.xtar")]);
    assert!(!t.path().join("up").exists() && !Path::new("/abs").exists() && !Path::new("/through").exists());
    assert!(!dest.join("bomb").exists() && !dest.join("a").exists() && !dest.join("b").exists());
}
