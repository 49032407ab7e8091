//! `compress --redundancy`, `protect` and `repair`: damage within the
//! redundancy is repaired to the exact archive; damage beyond it is
//! reported, and salvage still recovers what the damage did not touch.

use std::path::Path;

use crate::salvage::build_tree;
use crate::support::*;

/// Overwrites every 2048-byte sector `pick` chooses; returns how many.
fn damage_sectors(path: &Path, pick: impl Fn(usize) -> bool) -> usize {
    let mut bytes = std::fs::read(path).expect("read");
    let mut n = 0;
    for (i, s) in bytes.chunks_mut(2048).enumerate() {
        if pick(i) {
            s.fill(0x5a);
            n += 1;
        }
    }
    std::fs::write(path, &bytes).expect("write");
    n
}

#[test]
fn sector_damage_and_a_burst_within_the_redundancy_are_repaired() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    build_tree(&src);
    let archive = t.path().join("out/b.xtar");
    std::fs::create_dir_all(t.path().join("out")).expect("mkdir");
    let out = run(&[os("compress"), src.as_os_str(), os("-o"), archive.as_os_str(), os("--redundancy"), os("12")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let parity = t.path().join("out/b.p01.xtar-rs");
    assert!(parity.is_file());
    let pristine = std::fs::read(&archive).expect("read");

    // 5 % of the sectors, then one burst of 5 % of the archive elsewhere.
    let sectors = pristine.len().div_ceil(2048);
    let burst = (sectors * 6 / 10)..(sectors * 6 / 10 + sectors / 20);
    let hit = damage_sectors(&archive, |i| i % 20 == 7 || burst.contains(&i));
    assert!(hit > sectors / 10 - 2, "{hit} of {sectors}");
    let check = run(&[os("repair"), os("--dry-run"), archive.as_os_str()]);
    assert_eq!(check.status.code(), Some(1), "damage is reported");
    assert!(String::from_utf8_lossy(&check.stdout).contains("can be repaired"));
    assert_ne!(std::fs::read(&archive).expect("read"), pristine, "a dry run changes nothing");

    let fixed = run(&[os("repair"), parity.as_os_str()]);
    assert!(
        fixed.status.success(),
        "{}{}",
        String::from_utf8_lossy(&fixed.stdout),
        String::from_utf8_lossy(&fixed.stderr)
    );
    assert_eq!(std::fs::read(&archive).expect("read"), pristine);
    let dest = t.path().join("dest");
    let out = run(&[os("extract"), archive.as_os_str(), dest.as_os_str()]);
    assert!(out.status.success());
    assert_same_tree(&src, &dest);
}

#[test]
fn damage_beyond_the_redundancy_is_reported_and_salvage_still_works() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    build_tree(&src);
    let archive = t.path().join("b.xtar");
    assert!(run(&[os("compress"), src.as_os_str(), os("-o"), archive.as_os_str()]).status.success());
    let out = run(&[os("protect"), archive.as_os_str(), os("-r"), os("5"), os("--json")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["percent"], 5);
    // The parity volume cannot be written twice without --overwrite.
    let again = run(&[os("protect"), archive.as_os_str()]);
    assert_eq!(again.status.code(), Some(2));

    damage_sectors(&archive, |i| i % 5 == 2); // 20 %
    let before = std::fs::read(&archive).expect("read");
    let out = run(&[os("repair"), archive.as_os_str(), os("--json")]);
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(r["complete"], false);
    assert_eq!(r["files"][0]["state"], "damaged");
    assert!(!r["short_groups"].as_array().expect("array").is_empty());
    assert_eq!(std::fs::read(&archive).expect("read"), before, "nothing could be rebuilt, nothing changed");
    // Salvage still recovers the files the damage did not touch.
    let dest = t.path().join("dest");
    let out = run(&[os("salvage"), archive.as_os_str(), dest.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let (want, got) = (snapshot(&src, false), snapshot(&dest, false));
    let exact = want
        .iter()
        .filter(|(p, n)| n.kind == "file" && got.get(*p).is_some_and(|g| g.kind == n.kind && g.content == n.content))
        .count();
    assert!(exact > want.len() / 4, "{exact} of {} files salvaged bit-exact", want.len());
}

#[test]
fn a_lost_disc_is_rebuilt_from_parity_volumes_sized_for_a_medium() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    build_tree(&src);
    let (a, b) = (t.path().join("set.001.xtar"), t.path().join("set.002.xtar"));
    assert!(run(&[os("compress"), src.as_os_str(), os("-o"), a.as_os_str()]).status.success());
    std::fs::write(&b, noise(150_000, 3)).expect("write");
    let size_a = std::fs::metadata(&a).expect("meta").len();
    let vol = (size_a / 2).to_string();
    let out = run(&[os("protect"), a.as_os_str(), b.as_os_str(), os("-r"), os("110"), os("--volume-size"), os(&vol)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(t.path().join("set.p03.xtar-rs").is_file(), "several parity volumes");
    let pristine = std::fs::read(&a).expect("read");
    std::fs::remove_file(&a).expect("rm");
    let out = run(&[os("repair"), b.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing: rebuilt"));
    assert_eq!(std::fs::read(&a).expect("read"), pristine);
    // Presets name media.
    let out = run(&[os("protect"), a.as_os_str(), os("--volume-size"), os("floppy")]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn any_one_lost_volume_of_a_1vol_set_is_rebuilt_byte_exact_as_promised() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    for i in 0..6u64 {
        std::fs::write(src.join(format!("d/n{i}.bin")), noise(180_000 + 7_000 * i as usize, i + 1)).expect("write");
    }
    std::fs::write(src.join("text.txt"), b"some text\n".repeat(5000)).expect("write");
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let base = out.join("set");
    let r = run(&[
        os("compress"),
        src.as_os_str(),
        os("-o"),
        base.as_os_str(),
        os("--volume-size"),
        os("300k"),
        os("--redundancy"),
        os("1vol"),
    ]);
    let err = String::from_utf8_lossy(&r.stderr).into_owned();
    assert!(r.status.success(), "{err}");
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .expect("readdir")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let data = files.iter().filter(|f| f.ends_with(".xtar")).count();
    assert!(data >= 4, "{files:?}");
    // The promise printed counts every volume, data and parity.
    let promise = format!("any 1 of the {} volumes", files.len());
    assert!(err.contains(&promise), "expected `{promise}` in:\n{err}");
    let pristine: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(out.join(f)).expect("read")).collect();
    for (i, lost) in files.iter().enumerate() {
        let copy = t.path().join(format!("copy{i}"));
        std::fs::create_dir_all(&copy).expect("mkdir");
        for (f, bytes) in files.iter().zip(&pristine) {
            if f != lost {
                std::fs::write(copy.join(f), bytes).expect("write");
            }
        }
        let Some(given) = files.iter().find(|f| *f != lost && f.ends_with(".xtar-rs")) else {
            // The only parity volume was lost: no data was, and the set
            // checks clean without it.
            let first = copy.join(files.iter().find(|f| f.ends_with(".001.xtar")).expect("volume 1"));
            let v = run(&[os("verify"), first.as_os_str()]);
            assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
            continue;
        };
        let fixed = run(&[os("repair"), copy.join(given).as_os_str()]);
        assert!(
            fixed.status.success(),
            "losing {lost}: {}{}",
            String::from_utf8_lossy(&fixed.stdout),
            String::from_utf8_lossy(&fixed.stderr)
        );
        for (f, bytes) in files.iter().zip(&pristine) {
            assert_eq!(&std::fs::read(copy.join(f)).expect("rebuilt"), bytes, "{f} after losing {lost}");
        }
    }
}
