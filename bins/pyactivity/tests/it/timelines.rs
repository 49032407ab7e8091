//! Timelines in the formats of the field: the bodyfile read by Debian's
//! `mactime` (The Sleuth Kit), CSV, and MACB timelines.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::{file, pyactivity, tree, HOUR};

/// Odd names: a pipe, a percent sign, a newline, a backslash, bytes that
/// are not UTF-8, and Unicode.
fn odd_names(root: &Path, t: i64) -> Vec<Vec<u8>> {
    let names: Vec<&[u8]> = vec![
        b"odd/pipe|name",
        b"odd/100%",
        b"odd/new\nline",
        b"odd/back\\slash",
        b"odd/latin-\xe9\xff",
        "odd/caf\u{e9}".as_bytes(),
    ];
    std::fs::create_dir_all(root.join("odd")).expect("mkdir");
    for (i, n) in names.iter().enumerate() {
        let p = root.join(std::ffi::OsStr::from_bytes(n));
        std::fs::write(&p, b"x").expect("write");
        filetime::set_file_mtime(&p, filetime::FileTime::from_unix_time(t + i as i64, 0)).expect("mtime");
    }
    names.into_iter().map(<[u8]>::to_vec).collect()
}

/// What mactime prints a name as: our escapes, decoded as it decodes
/// them (`%HH`), control characters as the text `\xHH`.
fn as_mactime_prints(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in p {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b if b < 0x20 || b == 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            b => out.push(b),
        }
    }
    out
}

fn utc(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).expect("time").strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[test]
fn mactime_reads_the_bodyfile_with_every_file_and_its_times() {
    let t = tempfile::tempdir().expect("tmp");
    let root = t.path().join("disk");
    let now = crate::now();
    tree(&root, now);
    let names = odd_names(&root, now - 5 * HOUR);
    let body = t.path().join("body.txt");
    let o = pyactivity().arg(&root).arg("-q").arg("--bodyfile").arg(&body).output().expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = std::process::Command::new("mactime")
        .args(["-b"])
        .arg(&body)
        .args(["-d", "-y", "-z", "UTC"])
        .output()
        .expect("mactime (apt-get install sleuthkit) must be installed");
    assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
    // mactime's CSV lines: date, size, macb, mode, uid, gid, inode, "name".
    let lines: Vec<&[u8]> = m.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut files = vec![
        "photos/2026-11/a.jpg",
        "photos/2026-11/b.jpg",
        "photos/2026-11/c.jpg",
        "notes/todo.txt",
        "notes/done.txt",
        "old/ancient.txt",
    ]
    .into_iter()
    .map(|s| s.as_bytes().to_vec())
    .collect::<Vec<_>>();
    files.extend(names);
    for rel in &files {
        let full = root.join(std::ffi::OsStr::from_bytes(rel));
        let meta = std::fs::symlink_metadata(&full).expect("stat");
        let name = [root.as_os_str().as_bytes(), b"/", &as_mactime_prints(rel)].concat();
        let quoted = [b"\"", &name[..], b"\""].concat();
        for (letter, secs) in [(0usize, meta.mtime()), (1, meta.atime()), (2, meta.ctime())] {
            let date = utc(secs);
            let hit = lines.iter().any(|l| {
                l.starts_with(date.as_bytes())
                    && l.ends_with(&quoted)
                    && l.split(|&b| b == b',').nth(2).is_some_and(|macb| macb.get(letter) == Some(&b"mac"[letter]))
                    && l.split(|&b| b == b',').nth(6) == Some(meta.ino().to_string().as_bytes())
            });
            assert!(hit, "mactime lacks {} {} of {}", &"mac"[letter..=letter], date, String::from_utf8_lossy(&name));
        }
    }
    // Directories are in the bodyfile too, with TSK's mode strings.
    let text = std::fs::read_to_string(&body).expect("read");
    assert!(text.lines().any(|l| l.contains("/photos|") && l.contains("|d/drwx")), "{text}");
}

#[test]
fn csv_has_one_row_per_file_with_its_group() {
    let t = tempfile::tempdir().expect("tmp");
    let root = t.path().join("disk");
    let now = crate::now();
    tree(&root, now);
    file(&root, "notes/with,comma \"quoted\".txt", 3, now - 24 * HOUR + 10);
    let o = pyactivity().arg(&root).arg("-q").args(["--csv", "-"]).output().expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).expect("utf8");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("group,time,time_ns,macb,size,path"));
    let rows: Vec<Vec<String>> = lines.map(parse_csv_line).collect();
    assert_eq!(rows.len(), 7);
    // Groups numbered from the oldest: the old file 1, photos 2, notes 3.
    let group_of = |suffix: &str| rows.iter().find(|r| r[5].ends_with(suffix)).expect(suffix)[0].clone();
    assert_eq!(group_of("ancient.txt"), "1");
    assert_eq!(group_of("c.jpg"), "2");
    assert_eq!(group_of("done.txt"), "3");
    assert_eq!(group_of("with,comma \"quoted\".txt"), "3");
    let times: Vec<i64> = rows.iter().map(|r| r[2].parse().expect("ns")).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time order");
    assert!(rows.iter().all(|r| r[3] == "m..."));
}

/// Splits one line of RFC 4180 CSV (no embedded newlines here).
fn parse_csv_line(l: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = l.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().expect("field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().expect("field").push(c),
        }
    }
    out
}

#[test]
fn all_times_makes_a_macb_timeline() {
    let t = tempfile::tempdir().expect("tmp");
    let root = t.path().join("disk");
    let old = 1_700_000_000;
    file(&root, "a.txt", 1, old);
    let p = root.join("a.txt");
    filetime::set_file_atime(&p, filetime::FileTime::from_unix_time(old + 3 * HOUR, 0)).expect("atime");
    let o = pyactivity().arg(&root).args(["-q", "--all-times", "--csv", "-"]).output().expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).expect("utf8");
    let rows: Vec<Vec<String>> = text.lines().skip(1).map(parse_csv_line).collect();
    // The modification, the access three hours later, and the change (and
    // the birth, where recorded) now: separate events, separate groups.
    let macb: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(&macb[..2], ["m...", ".a.."], "{text}");
    assert!(macb[2] == "..c." || macb[2] == "..cb", "{text}");
    assert_eq!(rows[0][2], (old as i128 * 1_000_000_000).to_string());
    assert_ne!(rows[0][0], rows[1][0], "three hours apart: two groups");
    // One time at a time: --time atime, and birth where the file system has it.
    let o = pyactivity().arg(&root).args(["-q", "--time", "atime", "--csv", "-"]).output().expect("runs");
    let text = String::from_utf8(o.stdout).expect("utf8");
    assert!(text.lines().nth(1).expect("row").contains(",.a..,"), "{text}");
}
