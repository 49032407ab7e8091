//! Format version 6 (`compress --codec zstd`): each file's data as zstd
//! frames with a dictionary made of the tree's own small files; what it
//! keeps, what stock tools make of it, what damage costs.

use std::path::Path;
use std::process::Command;

use crate::support::*;
use crate::v3::{files_back, have, modes_mtimes_and_hard_links, run_recipe, same_shape, tree};

/// Level 3: the tests check the format, not the ratio of level 19.
const Z: &[&str] = &["--codec", "zstd", "--zstd-level", "3"];

/// The recipe of docs/format/xtar.md §A11.1 as the spec gives it (the
/// version 3 recipe, with the files' frames decoded by the `zstd` tool
/// between unzip and the tree tar).
fn recipe() -> String {
    crate::v3::spec_recipe("### A11.1 ")
}

/// Many small files that look alike, as source trees and documentation
/// are: what a dictionary is for.
fn alike(src: &Path, n: usize) {
    for i in 0..n {
        let body: String = (0..30)
            .map(|j| {
                format!("    def method_{j}(self, value):\n        return self.field_{} * value + {j}\n\n", i % 13)
            })
            .collect();
        let text =
            format!("import os\nimport sys\n\n\nclass Thing{i}(object):\n    \"\"\"Thing number {i}.\"\"\"\n\n{body}");
        write(src, format!("pkg/sub{}/mod_{i:03}.py", i % 7).as_bytes(), text.as_bytes());
    }
}

/// Files of text that compresses only about twice (hexadecimal digits of
/// a pseudo-random sequence): first in walk order (`data/`) and large
/// enough that the dictionary, made of the tree's first sampled files, is
/// several pieces long in its copies even once compressed.
fn noisy(src: &Path, n: usize, size: usize) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        let mut text = String::with_capacity(size);
        while text.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push_str(&format!("{x:016x}\n"));
        }
        write(src, format!("data/noise_{i}.txt").as_bytes(), text.as_bytes());
    }
}

/// A scratch directory, a tree of 60 alike files and 6 noisy ones in it,
/// and its version 6 archive, whose dictionary is 7 pieces long in each
/// copy.
fn alike_archive() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    alike(&src, 60);
    noisy(&src, 6, 100_000);
    let archive = t.path().join("a.xtar");
    assert!(compress(&src, &archive, Z).status.success());
    (t, src, archive)
}

fn members(archive: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tf").arg(archive).output().expect("tar");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn every_kind_of_entry_round_trips_through_a_zstd_archive() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    alike(&src, 60);
    let archive = t.path().join("a.xtar");
    let c = compress(&src, &archive, Z);
    assert!(c.status.success(), "{}", stderr(&c));
    let head = std::fs::read(&archive).expect("read");
    assert!(head[512..].starts_with(b"#xtar 6\n"), "version 6 header");
    let m = members(&archive);
    for copy in [".xtar-zstd.dict.gz", ".xtar-zstd.2.dict.gz", ".xtar-zstd.3.dict.gz", ".xtar-zstd.4.dict.gz"] {
        assert!(m.iter().any(|n| n == copy), "{copy} in {m:?}");
    }
    let dest = t.path().join("dest");
    let x = extract(&archive, &dest);
    assert!(x.status.success(), "{}", stderr(&x));
    assert_same_tree(&src, &dest);
    let v = run(&[os("verify"), archive.as_os_str()]);
    assert!(v.status.success(), "{}", stderr(&v));
    // The same tree gives the same bytes, whatever the number of workers.
    let again = t.path().join("b.xtar");
    let c = run(&[os("-j"), os("1"), os("compress"), src.as_os_str(), os("-o"), again.as_os_str(), os("-q")]
        .into_iter()
        .chain(Z.iter().map(os))
        .collect::<Vec<_>>());
    assert!(c.status.success(), "{}", stderr(&c));
    assert!(std::fs::read(&again).expect("read") == head, "output depends on the number of workers");
}

#[test]
fn gnu_tar_unzip_and_zstd_recover_every_name_and_hard_link() {
    assert!(have("unzip", "-v"), "Info-ZIP unzip is needed (.ci/run installs it)");
    assert!(have("zstd", "--version"), "the zstd tool is needed (.ci/run installs it)");
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    alike(&src, 60);
    let archive = t.path().join("a.xtar");
    assert!(compress(&src, &archive, Z).status.success());
    let out = t.path().join("out");
    run_recipe("sh", &recipe(), &archive, &out);
    same_shape(&src, &out, "GNU tar + unzip + zstd", true);
    modes_mtimes_and_hard_links(&src, &out);
    let left: Vec<_> = snapshot(&out, false).into_keys().filter(|p| p.ends_with(b".zst")).collect();
    assert!(left.is_empty(), "frame files left: {left:?}");
}

#[test]
fn the_dictionary_makes_alike_files_smaller_than_deflate() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    alike(&src, 400);
    let (z, d) = (t.path().join("z.xtar"), t.path().join("d.xtar"));
    assert!(compress(&src, &z, &["--codec", "zstd"]).status.success());
    assert!(compress(&src, &d, &[]).status.success());
    // The packs (the files' entries), without the guards and metadata
    // that a tree this small is mostly made of.
    let packs = |a: &Path| -> u64 {
        let out = Command::new("tar").arg("-tvf").arg(a).output().expect("tar");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .filter(|l| l.contains(".xtar-pack."))
            .map(|l| l.split_whitespace().nth(2).and_then(|n| n.parse::<u64>().ok()).expect("size"))
            .sum()
    };
    let (zl, dl) = (packs(&z), packs(&d));
    // Each file is still compressed on its own: only the dictionary,
    // learnt from the tree, knows what they share.
    assert!(zl * 10 < dl * 7, "zstd packs {zl} bytes against deflate {dl}");
    // The dictionary is the tree's own files: a frame in each copy that
    // `zstd -d` decodes to the first sampled file and more.
    let dict = Command::new("sh")
        .arg("-c")
        .arg(r#"tar -xOf "$1" .xtar-zstd.dict.gz | gzip -dc | zstd -dc"#)
        .arg("sh")
        .arg(&z)
        .output()
        .expect("tar");
    let first = std::fs::read(src.join("pkg/sub0/mod_000.py")).expect("read");
    assert!(dict.stdout.starts_with(&first) && dict.stdout.len() > first.len(), "{}", dict.stdout.len());
    let dest = t.path().join("dest");
    assert!(extract(&z, &dest).status.success());
    assert_same_tree(&src, &dest);
}

#[test]
fn salvage_and_the_recipe_survive_head_and_tail_damage() {
    assert!(have("zstd", "--version"), "the zstd tool is needed (.ci/run installs it)");
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    crate::salvage::build_tree(&src);
    alike(&src, 60);
    let archive = t.path().join("a.xtar");
    assert!(compress(&src, &archive, Z).status.success());
    for (name, damaged) in damaged_ends(&archive, t.path()) {
        // The head holds the header and the first copy of the dictionary,
        // the tail the second: either end lost, every file comes back.
        let out = t.path().join(format!("{name}-salvaged"));
        let s = run(&[os("salvage"), damaged.as_os_str(), out.as_os_str()]);
        files_back(&src, &out, &[], false, &format!("salvage, {name}"));
        assert!(!stderr(&s).contains("cannot be decoded"), "{}", stderr(&s));
        let out = t.path().join(format!("{name}-stock"));
        let _ = Command::new("sh").arg("-c").arg(recipe()).arg("sh").arg(&damaged).arg(&out).output().expect("sh");
        files_back(&src, &out, &[], true, &format!("stock, {name}"));
    }
}

#[test]
fn a_damaged_frame_costs_its_file_only() {
    let (t, src, archive) = alike_archive();
    let mut bytes = std::fs::read(&archive).expect("read");
    // The data of three entries, found by their names in their local
    // headers: their first bytes, zstd's magic number, so that `zstd`
    // cannot read what unzip leaves of them at all.
    let damaged: [&[u8]; 3] = [b"pkg/sub3/mod_010.py", b"pkg/sub0/mod_014.py", b"pkg/sub6/mod_020.py"];
    for path in damaged {
        let name = [path, b".zst"].concat();
        let at = bytes.windows(name.len()).position(|w| w == &name[..]).expect("entry") + name.len() + 9;
        for b in &mut bytes[at..at + 8] {
            *b ^= 0x5a;
        }
    }
    std::fs::write(&archive, &bytes).expect("write");
    let dest = t.path().join("dest");
    let x = run(&[os("extract"), archive.as_os_str(), dest.as_os_str()]);
    assert!(!x.status.success(), "damage must fail the extract");
    let got = snapshot(&dest, false);
    for path in damaged {
        assert!(stderr(&x).contains(&*String::from_utf8_lossy(path)), "{}", stderr(&x));
        assert!(!got.contains_key(path), "a damaged file must not be written under its name");
    }
    files_back(&src, &dest, &damaged, false, "extract");
    // The stock recipe gives back every other file too.
    let stock = t.path().join("stock");
    let _ = Command::new("sh").arg("-c").arg(recipe()).arg("sh").arg(&archive).arg(&stock).output().expect("sh");
    files_back(&src, &stock, &damaged, false, "stock");
}

#[test]
fn zstd_refuses_what_version_6_cannot_hold() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    alike(&src, 3);
    let out = t.path().join("a.xtar");
    let key = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    for (extra, says) in [
        (vec!["--codec", "zstd", "--recipient", key], "not encrypted"),
        (vec!["--codec", "zstd", "--volume-size", "cd700"], "single file"),
        (vec!["--codec", "zstd", "--format-version", "3"], "version 6"),
        (vec!["--codec", "zstd", "--level", "9"], "--zstd-level"),
        (vec!["--zstd-level", "9"], "needs --codec zstd"),
    ] {
        let mut args = vec![os("compress"), src.as_os_str(), os("-o"), out.as_os_str()];
        args.extend(extra.iter().map(os));
        let r = run(&args);
        assert!(!r.status.success(), "{extra:?} was accepted");
        assert!(stderr(&r).contains(says), "{extra:?}: {}", stderr(&r));
        assert!(!out.exists(), "{extra:?} left an archive");
    }
}

/// Where the data of each copy of the dictionary starts in `bytes`, in
/// the order of the copies' numbers (found by their tar headers here).
fn dict_copies(bytes: &[u8]) -> Vec<usize> {
    let names = [".xtar-zstd.dict.gz", ".xtar-zstd.2.dict.gz", ".xtar-zstd.3.dict.gz", ".xtar-zstd.4.dict.gz"];
    names
        .iter()
        .map(|n| {
            let at = (0..bytes.len() / 512)
                .map(|b| b * 512)
                .find(|&h| bytes[h..].starts_with(n.as_bytes()) && bytes[h + n.len()] == 0)
                .unwrap_or_else(|| panic!("{n} not found"));
            at + 512
        })
        .collect()
}

/// Bytes a piece of the dictionary takes in a copy (docs/format/xtar.md
/// §A11: 1 KiB of dictionary in a stored gzip member).
const STRIDE: usize = 1024 + 23;

/// The size of member `name` of `archive`, as `tar -tv` lists it.
fn member_size(archive: &Path, name: &str) -> u64 {
    let out = Command::new("tar").arg("-tvf").arg(archive).output().expect("tar");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.ends_with(&format!(" {name}")))
        .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

#[test]
fn damage_to_every_copy_of_the_dictionary_in_other_pieces_costs_nothing() {
    let (t, src, archive) = alike_archive();
    // Pieces 0 to 3 are damaged below: the frame must have more.
    assert!(member_size(&archive, ".xtar-zstd.dict.gz") > 5 * STRIDE as u64);
    let mut bytes = std::fs::read(&archive).expect("read");
    // Copy i loses piece i: no copy is whole, the pieces together are.
    for (i, at) in dict_copies(&bytes).into_iter().enumerate() {
        bytes[at + i * STRIDE + 500] ^= 0xff;
    }
    std::fs::write(&archive, &bytes).expect("write");
    let dest = t.path().join("dest");
    let x = run(&[os("extract"), archive.as_os_str(), dest.as_os_str()]);
    assert!(x.status.success(), "{}", stderr(&x));
    assert!(stderr(&x).contains("copy of the zstd dictionary is damaged"), "{}", stderr(&x));
    assert_same_tree(&src, &dest);
    let out = t.path().join("salvaged");
    let s = run(&[os("salvage"), archive.as_os_str(), out.as_os_str()]);
    assert!(s.status.success(), "{}", stderr(&s));
    assert_same_tree(&src, &out);
    // The stock recipe puts the pieces together too.
    let stock = t.path().join("stock");
    run_recipe("sh", &recipe(), &archive, &stock);
    files_back(&src, &stock, &[], false, "stock");
    // The same piece lost in every copy: nothing decodes, and both say so.
    for at in dict_copies(&bytes) {
        bytes[at + 2 * STRIDE + 10] ^= 0xff;
    }
    std::fs::write(&archive, &bytes).expect("write");
    let lost = t.path().join("lost");
    let s = run(&[os("salvage"), archive.as_os_str(), lost.as_os_str()]);
    assert!(!s.status.success());
    assert!(stderr(&s).contains("cannot be decoded"), "{}", stderr(&s));
}

#[test]
fn the_copy_at_the_end_completes_the_dictionary_for_extract() {
    let (t, src, archive) = alike_archive();
    let mut bytes = std::fs::read(&archive).expect("read");
    // The same piece lost in the three copies a stream reads before the
    // first pack (the first, and the two among the packs).
    let copies = dict_copies(&bytes);
    for at in [copies[0], copies[2], copies[3]] {
        bytes[at + 100] ^= 0xff;
    }
    std::fs::write(&archive, &bytes).expect("write");
    // A file: extract reads the copy at the end, and says so.
    let dest = t.path().join("dest");
    let x = run(&[os("extract"), archive.as_os_str(), dest.as_os_str()]);
    assert!(x.status.success(), "{}", stderr(&x));
    assert!(stderr(&x).contains("copy of the zstd dictionary at the end"), "{}", stderr(&x));
    assert_same_tree(&src, &dest);
    // A stream cannot be read at its end: every file is refused, clearly,
    // and none is written.
    let piped = t.path().join("piped");
    let x = pybackup().arg("extract").arg("-").arg(&piped).pipe_stdin(&archive).expect("stdin").output().expect("runs");
    assert!(!x.status.success());
    assert!(stderr(&x).contains("salvage"), "{}", stderr(&x));
    assert!(snapshot(&piped, false).values().all(|n| n.kind != "file"), "no file written from undecodable frames");
    let out = t.path().join("salvaged");
    let s = run(&[os("salvage"), archive.as_os_str(), out.as_os_str()]);
    assert!(s.status.success(), "{}", stderr(&s));
    assert_same_tree(&src, &out);
}

#[test]
fn the_recipe_and_extract_read_version_5_archives() {
    // The golden version 5 archive (a trained dictionary, held as it is
    // in its copies): the spec's recipe, which takes version 6's frame
    // apart, falls back to the copy's bytes and gives what extract gives.
    assert!(have("zstd", "--version"), "the zstd tool is needed (.ci/run installs it)");
    let v5 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/xtar/tests/golden/v5-zstd.xtar");
    let t = tempfile::tempdir().expect("tmp");
    let (dest, stock) = (t.path().join("dest"), t.path().join("stock"));
    let x = extract(&v5, &dest);
    assert!(x.status.success(), "{}", stderr(&x));
    run_recipe("sh", &recipe(), &v5, &stock);
    files_back(&dest, &stock, &[], false, "stock, version 5");
    assert!(snapshot(&dest, false).len() > 60);
}

/// The alike tree's archive, damaged by `damage` (given the bytes and
/// where each copy of the dictionary starts), salvaged into `salvaged` in
/// the scratch directory.
fn salvage_alike_damaged(
    damage: impl FnOnce(&mut Vec<u8>, &[usize]),
) -> (tempfile::TempDir, std::path::PathBuf, std::process::Output) {
    let (t, src, archive) = alike_archive();
    let mut bytes = std::fs::read(&archive).expect("read");
    let copies = dict_copies(&bytes);
    damage(&mut bytes, &copies);
    std::fs::write(&archive, &bytes).expect("write");
    let out = t.path().join("salvaged");
    let s = run(&[os("salvage"), archive.as_os_str(), out.as_os_str()]);
    (t, src, s)
}

#[test]
fn salvage_takes_pieces_from_the_copies_among_the_packs() {
    // The same piece lost in the copies at both ends: only copies 3 and 4,
    // before the packs, have it (salvage once read the two ends alone).
    let (t, src, s) = salvage_alike_damaged(|bytes, copies| {
        for at in [copies[0], copies[1]] {
            bytes[at + 2 * STRIDE + 10] ^= 0xff;
        }
        bytes[copies[2] + 4 * STRIDE + 10] ^= 0xff;
    });
    assert!(s.status.success(), "{}", stderr(&s));
    assert_same_tree(&src, &t.path().join("salvaged"));
}

#[test]
fn salvage_finds_copies_of_the_dictionary_whose_tar_header_is_lost() {
    // Copies 1 and 2 lose their tar headers; copies 3 and 4 the same
    // piece: only 1 and 2, found where they must lie, have it.
    let (t, src, s) = salvage_alike_damaged(|bytes, copies| {
        for at in [copies[0], copies[1]] {
            bytes[at - 512..at].fill(0x33);
        }
        for at in [copies[2], copies[3]] {
            bytes[at + 2 * STRIDE + 10] ^= 0xff;
        }
    });
    assert!(!stderr(&s).contains("cannot be decoded"), "{}", stderr(&s));
    files_back(&src, &t.path().join("salvaged"), &[], false, "salvage");
}
